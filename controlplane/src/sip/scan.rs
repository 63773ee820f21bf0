//! A small cursor over header-value bytes: RFC 3261 §25.1 tokens, quoted strings and
//! separators, where linear white space (SP, HT and folded line ends) may stand between
//! any two elements.

/// RFC 3261 `token` characters, as a table: the parser tests every header-name byte.
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        b += 1;
    }
    t
};

/// RFC 3261 `token` characters.
pub(crate) fn is_token(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// RFC 3261 `word` characters (Call-ID).
pub(crate) fn is_word(b: u8) -> bool {
    is_token(b) || b"()<>:\\\"/[]?{}".contains(&b)
}

pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trim linear white space on both ends.
pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if is_lws(*first) {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if is_lws(*last) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

#[derive(Debug, Clone)]
pub(crate) struct Scanner<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn skip_lws(&mut self) -> bool {
        let start = self.pos;
        while self.pos < self.buf.len() && is_lws(self.buf[self.pos]) {
            self.pos += 1;
        }
        self.pos > start
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }

    /// Skip LWS, then consume `c` if it is next.
    pub(crate) fn eat(&mut self, c: u8) -> bool {
        let save = self.pos;
        self.skip_lws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            self.pos = save;
            false
        }
    }

    /// Consume bytes while `pred` holds (no LWS skipping).
    pub(crate) fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.pos < self.buf.len() && pred(self.buf[self.pos]) {
            self.pos += 1;
        }
        &self.buf[start..self.pos]
    }

    /// Skip LWS, then read a non-empty token.
    pub(crate) fn token(&mut self) -> Option<&'a [u8]> {
        let save = self.pos;
        self.skip_lws();
        let t = self.take_while(is_token);
        if t.is_empty() {
            self.pos = save;
            None
        } else {
            Some(t)
        }
    }

    /// Skip LWS, then read a quoted string; returns it with its quotes. `None` when there is
    /// no opening quote or no closing one (an unterminated string, RFC 4475 §3.1.2.6).
    pub(crate) fn quoted(&mut self) -> Option<&'a [u8]> {
        let save = self.pos;
        self.skip_lws();
        if self.peek() != Some(b'"') {
            self.pos = save;
            return None;
        }
        let start = self.pos;
        self.pos += 1;
        while self.pos < self.buf.len() {
            match self.buf[self.pos] {
                b'\\' => self.pos += 2,
                b'"' => {
                    self.pos += 1;
                    return Some(&self.buf[start..self.pos]);
                }
                _ => self.pos += 1,
            }
        }
        self.pos = save;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_with_escapes_and_unterminated() {
        let mut s = Scanner::new(br#"  "J Rosenberg \\\"" <x>"#);
        assert_eq!(s.quoted(), Some(&br#""J Rosenberg \\\"""#[..]));
        let mut s = Scanner::new(br#""Mr. J. User <sip:j.user@example.com>"#);
        assert_eq!(s.quoted(), None);
    }

    #[test]
    fn tokens_across_folding() {
        let mut s = Scanner::new(b"SIP  /\r\n /UDP");
        assert_eq!(s.token(), Some(&b"SIP"[..]));
        assert!(s.eat(b'/'));
        assert!(!s.eat(b'x'));
        assert!(s.eat(b'/'));
        assert_eq!(s.token(), Some(&b"UDP"[..]));
        assert!(s.is_empty());
    }
}
