//! Process-wide logging (FEATURES MON-07, issue 2 item 8).
//!
//! Owns the `tracing` subscriber: text or JSON lines on stdout (journald picks stdout up
//! under systemd), an `EnvFilter` that `RUST_LOG` overrides, and a reload handle so a
//! config reload can change the level without a restart. Also owns the redaction of
//! secrets in SIP text before it reaches a log line: digest `response`/`nonce` values,
//! Basic credentials, passwords in SIP URIs and SRTP keys in SDP.
//!
//! Does not own: which messages get logged in full (per call/extension/trunk switches are
//! the driver's and the config's), spans (each layer opens its own), or redaction of phone
//! numbers and addresses (PII wrappers belong where those values are typed).

use std::borrow::Cow;
use std::fmt;
use std::io::IsTerminal;
use std::ops::Range;
use std::str::FromStr;

use tracing_subscriber::filter::{EnvFilter, LevelFilter, ParseError};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::{SubscriberInitExt, TryInitError};
use tracing_subscriber::{reload, Layer, Registry};

/// The environment variable that, when set, wins over the configured level.
pub const ENV_VAR: &str = "RUST_LOG";

/// Shape of each log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable single lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl FromStr for LogFormat {
    type Err = LoggingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(LoggingError::UnknownFormat {
                format: other.to_owned(),
            }),
        }
    }
}

/// Why logging could not be set up or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoggingError {
    /// The level is neither a level name nor a filter directive list.
    #[error(
        "unknown log level {level:?}: expected error, warn, info, debug, trace, off, \
         or directives such as \"info,voxgate=debug\""
    )]
    UnknownLevel { level: String },
    /// A directive list that `EnvFilter` rejects.
    #[error("invalid log filter {filter:?}: {source}")]
    InvalidFilter {
        filter: String,
        #[source]
        source: ParseError,
    },
    /// `RUST_LOG` is set but not a valid filter; refused rather than silently ignored.
    #[error("invalid {ENV_VAR}={value:?}: {source}")]
    InvalidEnv {
        value: String,
        #[source]
        source: ParseError,
    },
    #[error("unknown log format {format:?}: expected \"text\" or \"json\"")]
    UnknownFormat { format: String },
    /// `init` was called twice, or something else installed a global subscriber.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled(#[source] TryInitError),
    /// The subscriber holding the filter was dropped (cannot happen once installed
    /// globally, which is forever).
    #[error("changing the log level: {0}")]
    Reload(#[source] reload::Error),
}

/// Parses a configured level: a bare level name (case-insensitive) or, for experts, an
/// `EnvFilter` directive list containing `=` or `,`. A bare word that is not a level is
/// refused: `EnvFilter` would read it as "trace for target `<word>`" and silence everything
/// else, which is never what a config typo meant. `check-config` can call this to validate.
pub fn parse_level(level: &str) -> Result<EnvFilter, LoggingError> {
    let trimmed = level.trim();
    // Only the names: `LevelFilter::from_str` also takes "" and digits, which in a config
    // file are more likely mistakes than intent.
    let named = [
        ("error", LevelFilter::ERROR),
        ("warn", LevelFilter::WARN),
        ("info", LevelFilter::INFO),
        ("debug", LevelFilter::DEBUG),
        ("trace", LevelFilter::TRACE),
        ("off", LevelFilter::OFF),
    ];
    if let Some((_, filter)) = named.iter().find(|(n, _)| trimmed.eq_ignore_ascii_case(n)) {
        return Ok(EnvFilter::default().add_directive((*filter).into()));
    }
    if !trimmed.contains(['=', ',']) {
        return Err(LoggingError::UnknownLevel {
            level: level.to_owned(),
        });
    }
    EnvFilter::builder()
        .parse(trimmed)
        .map_err(|source| LoggingError::InvalidFilter {
            filter: level.to_owned(),
            source,
        })
}

/// Changes the level of the installed subscriber. Cheap to clone.
#[derive(Clone)]
pub struct LogHandle {
    filter: reload::Handle<EnvFilter, Registry>,
    /// `RUST_LOG` as it was at start, if set: it keeps winning over the config.
    env_override: Option<String>,
}

impl fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogHandle")
            .field("env_override", &self.env_override)
            .finish_non_exhaustive()
    }
}

impl LogHandle {
    /// Applies a level from a reloaded config. When `RUST_LOG` was set at start it stays in
    /// force (the operator asked for it explicitly) and the level is only validated.
    pub fn set_level(&self, level: &str) -> Result<(), LoggingError> {
        let filter = parse_level(level)?;
        if let Some(env) = &self.env_override {
            tracing::info!(
                configured = level,
                env = env.as_str(),
                "{ENV_VAR} is set; keeping it instead of the configured log level"
            );
            return Ok(());
        }
        self.filter.reload(filter).map_err(LoggingError::Reload)?;
        tracing::info!(level, "log level changed");
        Ok(())
    }

    /// The `RUST_LOG` value in force, if any.
    pub fn env_override(&self) -> Option<&str> {
        self.env_override.as_deref()
    }
}

/// Installs the global subscriber: `level` unless `RUST_LOG` is set, lines in `format` on
/// stdout. Call once, early in `main`.
pub fn init(level: &str, format: LogFormat) -> Result<LogHandle, LoggingError> {
    let env = std::env::var(ENV_VAR).ok().filter(|v| !v.trim().is_empty());
    // ANSI colours only for a human at a terminal, never into journald or a file.
    let ansi = std::io::stdout().is_terminal();
    let (subscriber, handle) = build(level, env, format, ansi, std::io::stdout)?;
    subscriber
        .try_init()
        .map_err(LoggingError::AlreadyInstalled)?;
    Ok(handle)
}

/// The subscriber and its handle, not installed; `writer` receives every line.
fn build<W>(
    level: &str,
    env: Option<String>,
    format: LogFormat,
    ansi: bool,
    writer: W,
) -> Result<(impl tracing::Subscriber + Send + Sync, LogHandle), LoggingError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // Validate the configured level even when RUST_LOG wins, so a bad config is never
    // accepted just because the environment hides it.
    let configured = parse_level(level)?;
    let filter = match &env {
        Some(value) => {
            EnvFilter::builder()
                .parse(value)
                .map_err(|source| LoggingError::InvalidEnv {
                    value: value.clone(),
                    source,
                })?
        }
        None => configured,
    };
    let (filter_layer, filter_handle) = reload::Layer::new(filter);
    let output = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(writer)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(writer)
            .boxed(),
    };
    let subscriber = Registry::default().with(filter_layer).with(output);
    let handle = LogHandle {
        filter: filter_handle,
        env_override: env,
    };
    Ok((subscriber, handle))
}

/// Replacement text for a secret.
const MASK: &str = "<redacted>";

/// Headers whose auth-params may carry digest secrets (RFC 3261 §20, RFC 2617 §3.2.3).
const AUTH_HEADERS: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "www-authenticate",
    "proxy-authenticate",
    "authentication-info",
    "proxy-authentication-info",
];

/// Auth-params whose values are secret or enough for an offline dictionary attack on the
/// password or a replay: the digest itself, the nonces it was computed over, AKA `auts`.
const SECRET_PARAMS: [&str; 6] = [
    "response",
    "rspauth",
    "nonce",
    "cnonce",
    "nextnonce",
    "auts",
];

/// A SIP message (or any text) displayed with its secrets masked:
/// `tracing::debug!(msg = %Redacted(text))`. Bytes from the wire go through
/// `String::from_utf8_lossy` first.
#[derive(Clone, Copy)]
pub struct Redacted<'a>(pub &'a str);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_sip(self.0))
    }
}

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*redact_sip(self.0), f)
    }
}

/// `text` with every secret value replaced by `<redacted>`; borrowed when there is none.
///
/// Masks: values of `response`, `rspauth`, `nonce`, `cnonce`, `nextnonce` and `auts` in
/// Authorization/Authenticate/Authentication-Info headers (folded lines included) and the
/// token after `Basic`; the password of `sip:user:password@host` URIs anywhere; the key of
/// SDP `a=crypto:` `inline:` parameters (RFC 4568), the data of `a=key-mgmt:` and any `k=`
/// line. It errs on the side of masking more: it is for logs, never for the wire.
pub fn redact_sip(text: &str) -> Cow<'_, str> {
    let mut secrets = Vec::new();
    for group in logical_lines(text) {
        let line = &text[group.clone()];
        if let Some(value_start) = auth_header_value(line) {
            auth_secrets(text, group.start + value_start..group.end, &mut secrets);
        } else if let Some(rest) = line.strip_prefix("a=crypto:") {
            crypto_secrets(text, group.end - rest.len()..group.end, &mut secrets);
        } else if let Some(rest) = line.strip_prefix("a=key-mgmt:") {
            // `a=key-mgmt:<protocol id> <data>` (RFC 4567): mask the data.
            let data = rest.find([' ', '\t']).map_or(rest.len(), |i| i + 1);
            push_trimmed(text, group.end - rest.len() + data..group.end, &mut secrets);
        } else if let Some(rest) = line.strip_prefix("k=") {
            push_trimmed(text, group.end - rest.len()..group.end, &mut secrets);
        }
    }
    uri_password_secrets(text, &mut secrets);
    apply_masks(text, secrets)
}

/// Byte ranges of the logical lines of a SIP message: each header with its folded
/// continuation lines (RFC 3261 §7.3.1), then each body line on its own. Line ends are
/// included in the range; callers trim them.
fn logical_lines(text: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut lines = text.split_inclusive('\n').scan(0usize, |offset, line| {
        let start = *offset;
        *offset += line.len();
        Some(start..*offset)
    });
    let mut pending: Option<Range<usize>> = None;
    let mut in_headers = true;
    std::iter::from_fn(move || loop {
        let Some(line) = lines.next() else {
            return pending.take();
        };
        let content = text[line.clone()].trim_end_matches(['\r', '\n']);
        let continues = in_headers && content.starts_with([' ', '\t']);
        if content.is_empty() {
            // The blank line ends the headers; no folding in the body.
            in_headers = false;
        }
        match pending.take() {
            Some(current) if continues => pending = Some(current.start..line.end),
            Some(current) => {
                pending = Some(line);
                return Some(current);
            }
            None => pending = Some(line),
        }
    })
}

/// If `line` is one of [`AUTH_HEADERS`], the offset where its value starts.
fn auth_header_value(line: &str) -> Option<usize> {
    let colon = line.find(':')?;
    let name = line[..colon].trim_end_matches([' ', '\t']);
    let is_token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
    (is_token && AUTH_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h))).then_some(colon + 1)
}

fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Scans `scheme param=value, param="value", …` and records the secret values.
fn auth_secrets(text: &str, span: Range<usize>, out: &mut Vec<Range<usize>>) {
    let bytes = text.as_bytes();
    let end = span.end;
    let mut i = span.start;
    let mut previous_was_basic = false;
    while i < end {
        while i < end && (is_lws(bytes[i]) || bytes[i] == b',') {
            i += 1;
        }
        if previous_was_basic {
            // `Basic <base64 user:password>`: the token (with its `=` padding) is the
            // credential itself.
            let start = i;
            while i < end && !is_lws(bytes[i]) && bytes[i] != b',' {
                i += 1;
            }
            out.push(start..i);
            previous_was_basic = false;
            continue;
        }
        let name_start = i;
        while i < end && !is_lws(bytes[i]) && !matches!(bytes[i], b'=' | b',' | b'"') {
            i += 1;
        }
        let name = &text[name_start..i];
        let mut j = i;
        while j < end && is_lws(bytes[j]) {
            j += 1;
        }
        if j < end && bytes[j] == b'=' {
            j += 1;
            while j < end && is_lws(bytes[j]) {
                j += 1;
            }
            let (value, next) = auth_value(bytes, j, end);
            if SECRET_PARAMS.iter().any(|p| name.eq_ignore_ascii_case(p)) {
                out.push(value);
            }
            i = next;
        } else if name.is_empty() {
            // A stray quote or `=`: step over it so the scan always advances.
            i += 1;
        } else {
            previous_was_basic = name.eq_ignore_ascii_case("basic");
        }
    }
}

/// A quoted-string (without its quotes) or a token starting at `start`, and the offset
/// after it.
fn auth_value(bytes: &[u8], start: usize, end: usize) -> (Range<usize>, usize) {
    if start < end && bytes[start] == b'"' {
        let mut i = start + 1;
        while i < end && bytes[i] != b'"' {
            // quoted-pair (RFC 3261 §25.1): the escaped byte cannot close the string.
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        let close = i.min(end);
        (start + 1..close, (close + 1).min(end))
    } else {
        let mut i = start;
        while i < end && !is_lws(bytes[i]) && bytes[i] != b',' {
            i += 1;
        }
        (start..i, i)
    }
}

/// `a=crypto:<tag> <suite> inline:<key>[|lifetime][|MKI:len][;inline:…] …`: the keys.
fn crypto_secrets(text: &str, span: Range<usize>, out: &mut Vec<Range<usize>>) {
    let value = &text[span.clone()];
    let mut from = 0;
    while let Some(found) = find_ascii_ci(&value[from..], "inline:") {
        let key_start = from + found + "inline:".len();
        let key_len = value[key_start..]
            .find(['|', ';', ' ', '\t', '\r', '\n'])
            .unwrap_or(value.len() - key_start);
        out.push(span.start + key_start..span.start + key_start + key_len);
        from = key_start + key_len;
    }
}

/// Records `span` without its trailing line end.
fn push_trimmed(text: &str, span: Range<usize>, out: &mut Vec<Range<usize>>) {
    let trimmed = text[span.clone()].trim_end_matches(['\r', '\n']).len();
    out.push(span.start..span.start + trimmed);
}

/// Passwords in `sip:user:password@host` and `sips:` URIs (RFC 3261 §19.1.1 allows them;
/// they must never reach a log).
fn uri_password_secrets(text: &str, out: &mut Vec<Range<usize>>) {
    let bytes = text.as_bytes();
    for scheme in ["sip:", "sips:"] {
        let mut from = 0;
        while let Some(found) = find_ascii_ci(&text[from..], scheme) {
            let at = from + found;
            from = at + scheme.len();
            // Part of a longer word ("xsip:") is not a URI scheme.
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || b"+-.".contains(&bytes[at - 1]))
            {
                continue;
            }
            let userinfo_start = from;
            let Some(len) =
                text[userinfo_start..].find(['@', ' ', '\t', '\r', '\n', '<', '>', '"'])
            else {
                continue;
            };
            if bytes[userinfo_start + len] != b'@' {
                continue;
            }
            if let Some(colon) = text[userinfo_start..userinfo_start + len].find(':') {
                out.push(userinfo_start + colon + 1..userinfo_start + len);
            }
        }
    }
}

/// Byte offset of the first ASCII-case-insensitive occurrence of `needle` (ASCII).
fn find_ascii_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// `text` with each (possibly overlapping) range replaced by [`MASK`].
fn apply_masks(text: &str, mut ranges: Vec<Range<usize>>) -> Cow<'_, str> {
    ranges.retain(|r| !r.is_empty());
    if ranges.is_empty() {
        return Cow::Borrowed(text);
    }
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for range in merged {
        // Every range starts and ends next to an ASCII delimiter or at the end of the
        // text, so these are char boundaries.
        out.push_str(&text[copied..range.start]);
        out.push_str(MASK);
        copied = range.end;
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("capture lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("capture lock").clone()).expect("utf-8 logs")
        }
    }

    fn capture(
        level: &str,
        env: Option<&str>,
        format: LogFormat,
    ) -> (Capture, impl tracing::Subscriber + Send + Sync, LogHandle) {
        let sink = Capture::default();
        let writer = sink.clone();
        let (subscriber, handle) = build(level, env.map(str::to_owned), format, false, move || {
            writer.clone()
        })
        .expect("valid logging setup");
        (sink, subscriber, handle)
    }

    #[test]
    fn level_filters_and_reloads() {
        let (sink, subscriber, handle) = capture("info", None, LogFormat::Text);
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!("hidden-one");
            tracing::info!("shown-one");
            handle.set_level("debug").expect("valid level");
            tracing::debug!("shown-two");
            handle.set_level("warn").expect("valid level");
            tracing::info!("hidden-two");
        });
        let text = sink.text();
        assert!(text.contains("shown-one"), "{text}");
        assert!(text.contains("shown-two"), "{text}");
        assert!(!text.contains("hidden-one"), "{text}");
        assert!(!text.contains("hidden-two"), "{text}");
    }

    #[test]
    fn env_override_wins_over_set_level() {
        let (sink, subscriber, handle) = capture("info", Some("error"), LogFormat::Text);
        assert_eq!(handle.env_override(), Some("error"));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!("hidden-warn");
            handle.set_level("trace").expect("valid level");
            tracing::warn!("hidden-again");
            tracing::error!("shown-error");
        });
        let text = sink.text();
        assert!(text.contains("shown-error"), "{text}");
        assert!(!text.contains("hidden"), "{text}");
    }

    #[test]
    fn json_lines_are_json() {
        let (sink, subscriber, _handle) = capture("info", None, LogFormat::Json);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(call = 7, "hello json");
        });
        let text = sink.text();
        let line = text.lines().next().expect("one line");
        let value: serde_json::Value = serde_json::from_str(line).expect("valid JSON");
        assert_eq!(value["fields"]["message"], "hello json");
        assert_eq!(value["fields"]["call"], 7);
        assert_eq!(value["level"], "INFO");
    }

    #[test]
    fn bad_levels_are_refused() {
        for ok in [
            "info",
            "DEBUG",
            "off",
            " warn ",
            "info,voxgate=debug",
            "voxgate=trace",
        ] {
            assert!(parse_level(ok).is_ok(), "{ok}");
        }
        assert!(matches!(
            parse_level("verbose"),
            Err(LoggingError::UnknownLevel { .. })
        ));
        for bad in ["", "3", "verbose"] {
            assert!(
                matches!(parse_level(bad), Err(LoggingError::UnknownLevel { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_level("voxgate=loud"),
            Err(LoggingError::InvalidFilter { .. })
        ));
        assert!(matches!(
            build(
                "info",
                Some("x=loud".into()),
                LogFormat::Text,
                false,
                std::io::sink
            ),
            Err(LoggingError::InvalidEnv { .. })
        ));
        let (_sink, _subscriber, handle) = capture("info", None, LogFormat::Text);
        assert!(handle.set_level("chatty").is_err());
        assert_eq!("json".parse::<LogFormat>().ok(), Some(LogFormat::Json));
        assert!("xml".parse::<LogFormat>().is_err());
    }

    const REGISTER: &str = "REGISTER sip:pbx.example.test SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n\
        From: <sip:1000@pbx.example.test>;tag=1928301774\r\n\
        Authorization: Digest username=\"1000\", realm=\"pbx.example.test\",\r\n \
        nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"sip:pbx.example.test\",\r\n \
        response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, cnonce=\"0a4f113b\",\r\n \
        qop=auth, nc=00000001\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn digest_secrets_are_masked_across_folded_lines() {
        let out = redact_sip(REGISTER);
        for secret in [
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "6629fae49393a05397450978507c4ef1",
            "0a4f113b",
        ] {
            assert!(!out.contains(secret), "{secret} leaked:\n{out}");
        }
        assert!(out.contains("response=\"<redacted>\""), "{out}");
        assert!(out.contains("nonce=\"<redacted>\""), "{out}");
        // Everything else is untouched.
        assert!(out.contains("username=\"1000\""), "{out}");
        assert!(out.contains("uri=\"sip:pbx.example.test\""), "{out}");
        assert!(out.contains("algorithm=MD5"), "{out}");
        assert!(out.contains("branch=z9hG4bK776asdhds"), "{out}");
        assert!(out.ends_with("Content-Length: 0\r\n\r\n"), "{out}");
        assert_eq!(
            out.len(),
            REGISTER.len() + 3 * MASK.len()
                - "dcd98b7102dd2f0e8b11d0f600bfb0c093".len()
                - "6629fae49393a05397450978507c4ef1".len()
                - "0a4f113b".len()
        );
    }

    #[test]
    fn challenge_and_info_headers_are_masked() {
        let text = "SIP/2.0 401 Unauthorized\r\n\
            WWW-Authenticate: Digest realm=\"x\", nonce=abc123, opaque=\"o\"\r\n\
            proxy-authentication-info : rspauth=\"ffee\", nextnonce=\"n2\"\r\n\r\n";
        let out = redact_sip(text);
        assert!(out.contains("nonce=<redacted>, opaque=\"o\""), "{out}");
        assert!(
            out.contains("rspauth=\"<redacted>\", nextnonce=\"<redacted>\""),
            "{out}"
        );
        assert!(!out.contains("abc123") && !out.contains("ffee") && !out.contains("n2"));
    }

    #[test]
    fn quoted_pairs_and_basic_credentials() {
        let text = "Authorization: Digest response=\"a\\\"b\", nonce=\"n\"\r\n\
            Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n";
        let out = redact_sip(text);
        assert_eq!(
            out,
            "Authorization: Digest response=\"<redacted>\", nonce=\"<redacted>\"\r\n\
             Proxy-Authorization: Basic <redacted>\r\n"
        );
    }

    #[test]
    fn non_auth_headers_keep_their_params() {
        // `nonce` outside an auth header is not a digest secret; the header is untouched.
        let text = "X-Debug: nonce=visible\r\nSubject: response=\"visible\"\r\n";
        assert!(matches!(redact_sip(text), Cow::Borrowed(_)));
    }

    #[test]
    fn uri_passwords_are_masked() {
        let text = "INVITE sip:bob:hunter2@example.test SIP/2.0\r\n\
            To: <sips:Bob:s3cret;x@example.test:5061>\r\n\
            Contact: <sip:10.0.0.1:5060;ob>\r\n\
            Route: <sip:alice@example.test>\r\n\r\n";
        let out = redact_sip(text);
        assert!(
            out.starts_with("INVITE sip:bob:<redacted>@example.test SIP/2.0\r\n"),
            "{out}"
        );
        assert!(
            out.contains("<sips:Bob:<redacted>@example.test:5061>"),
            "{out}"
        );
        assert!(out.contains("<sip:10.0.0.1:5060;ob>"), "{out}");
        assert!(out.contains("<sip:alice@example.test>"), "{out}");
    }

    #[test]
    fn sdp_keys_are_masked() {
        let text = "Content-Type: application/sdp\r\n\r\n\
            v=0\r\n\
            k=clear:topsecret\r\n\
            a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4;inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3|2^20 FEC_ORDER=FEC_SRTP\r\n\
            a=key-mgmt:mikey AQAFgM0XflABAAAAAAAAAAAAAAsAyOb\r\n\
            a=rtpmap:0 PCMU/8000\r\n";
        let out = redact_sip(text);
        assert!(out.contains("k=<redacted>\r\n"), "{out}");
        assert!(
            out.contains(
                "inline:<redacted>|2^20|1:4;inline:<redacted>|2^20 FEC_ORDER=FEC_SRTP\r\n"
            ),
            "{out}"
        );
        assert!(out.contains("a=key-mgmt:mikey <redacted>\r\n"), "{out}");
        assert!(out.contains("a=rtpmap:0 PCMU/8000\r\n"), "{out}");
    }

    #[test]
    fn clean_text_is_borrowed_and_hostile_text_does_not_panic() {
        let clean = "OPTIONS sip:pbx.example.test SIP/2.0\r\nMax-Forwards: 70\r\n\r\n";
        assert!(matches!(redact_sip(clean), Cow::Borrowed(_)));
        for hostile in [
            "Authorization:",
            "Authorization: Digest response=\"unterminated",
            "Authorization: Digest response=\"x\\",
            "Authorization: Basic",
            "Authorization: ==\"\"\"===,,,",
            "sip:",
            "sip:a:@",
            "a=crypto:1 inline:",
            "a=key-mgmt:",
            "k=",
            "\r\n \r\n\t",
            "Authorization: Digest nonce=\"é\", response=ü€",
        ] {
            let out = redact_sip(hostile);
            assert!(!out.contains("unterminated") && !out.contains('ü'), "{out}");
        }
        assert_eq!(
            format!("{}", Redacted("Authorization: Digest nonce=\"é\"")),
            "Authorization: Digest nonce=\"<redacted>\""
        );
    }
}
