//! Scanner User-Agent matching (SEC-13): requests from SIP scanners are dropped silently.
//!
//! Owns the matcher. Does not own where the User-Agent comes from (the caller reads the
//! header) or the decision to skip the check for trusted sources (the caller's).

/// Case-insensitive substring match against a list of patterns, without allocation.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScannerMatcher {
    /// Lower-cased, non-empty patterns (an empty pattern would match every request).
    patterns: Vec<Box<[u8]>>,
}

impl ScannerMatcher {
    pub(crate) fn new<S: AsRef<str>>(patterns: &[S]) -> ScannerMatcher {
        let patterns = patterns
            .iter()
            .map(|p| {
                p.as_ref()
                    .as_bytes()
                    .to_ascii_lowercase()
                    .into_boxed_slice()
            })
            .filter(|p| !p.is_empty())
            .collect();
        ScannerMatcher { patterns }
    }

    pub(crate) fn matches(&self, user_agent: &[u8]) -> bool {
        self.patterns
            .iter()
            .any(|p| contains_ignore_case(user_agent, p))
    }
}

/// Whether `haystack` contains `needle` (already lower-case), ignoring ASCII case.
fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    if haystack.len() < needle.len() {
        return false;
    }
    let last_start = haystack.len() - needle.len();
    memchr::memchr2_iter(first, first.to_ascii_uppercase(), &haystack[..=last_start])
        .any(|i| haystack[i + 1..i + needle.len()].eq_ignore_ascii_case(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_case_insensitive_substrings() {
        let m = ScannerMatcher::new(&["friendly-scanner", "sipvicious", "", "VaxSIPUserAgent"]);
        assert!(m.matches(b"friendly-scanner"));
        assert!(m.matches(b"Friendly-Scanner 1.0"));
        assert!(m.matches(b"x SIPVICIOUS"));
        assert!(m.matches(b"vaxsipuseragent/3.1"));
        assert!(!m.matches(b"Zoiper rv2.10"));
        assert!(!m.matches(b""));
        assert!(!m.matches(b"friendly-scanne"));
        assert!(!ScannerMatcher::new::<&str>(&[]).matches(b"friendly-scanner"));
    }

    #[test]
    fn needle_at_the_very_end_and_non_utf8() {
        assert!(contains_ignore_case(b"\xff\xfeabcSIPCLI", b"sipcli"));
        assert!(!contains_ignore_case(b"sipcl", b"sipcli"));
    }
}
