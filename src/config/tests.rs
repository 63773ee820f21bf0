//! Config tests: every shipped file parses, `reference.toml` matches the defaults, an unknown
//! key in any table is rejected at its position (STYLE.md §11), and each validation error
//! points at the offending value.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use voxgate_controlplane::config::{LocalListener, TimerConfig};
use voxgate_controlplane::sip::Transport;

use super::error::ConfigErrorKind;
use super::value::{
    AuthIdError, DomainError, DurationError, DurationRangeError, Ha1Error, ListenError,
    NumberError, PasswordError, PortRangeError, RatioError, TextError,
};
use super::*;
use crate::tls::test_support::{handshake, write_self_signed};

const MINIMAL: &str = "[sip]\ndomain = \"pbx.example.test\"\n";

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

fn reference_text() -> String {
    std::fs::read_to_string(configs_dir().join("reference.toml")).expect("reference.toml")
}

/// Loads `text`, expecting an error; returns (line, column, kind, full message).
fn fail(text: &str) -> (usize, usize, ConfigErrorKind, String) {
    match load_str(text, "test.toml") {
        Ok(config) => panic!("expected an error, got {config:#?}\n--- input ---\n{text}"),
        Err(err) => {
            let shown = err.to_string();
            match err {
                ConfigError::Invalid {
                    origin,
                    line,
                    column,
                    kind,
                } => {
                    assert_eq!(origin, "test.toml");
                    (line, column, *kind, shown)
                }
                other => panic!("expected a positioned error, got {other:?}"),
            }
        }
    }
}

/// 1-based (line, column) of the first occurrence of `needle` at or after `after`.
fn pos(text: &str, needle: &str, after: usize) -> (usize, usize) {
    let at = text[after..]
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in test input"))
        + after;
    super::error::line_col(text, at)
}

fn pos_nth(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    let mut after = 0;
    for _ in 0..nth {
        after = text[after..].find(needle).expect("earlier occurrence") + after + 1;
    }
    pos(text, needle, after)
}

fn ok(text: &str) -> Config {
    load_str(text, "test.toml").unwrap_or_else(|e| panic!("{e}\n--- input ---\n{text}"))
}

/// A TOML string literal for `path`.
fn toml_string(path: &Path) -> String {
    toml::Value::String(path.display().to_string()).to_string()
}

// ---------------------------------------------------------------------------------------
// Shipped files

#[test]
fn config_demo_parses_and_is_loopback() {
    let demo = demo();
    assert_eq!(demo.sip.domain, "voxgate.localhost");
    let addr: SocketAddr = "127.0.0.1:5060".parse().expect("addr");
    assert_eq!(
        demo.sip.listen,
        vec![
            Listen {
                transport: Transport::Udp,
                addr
            },
            Listen {
                transport: Transport::Tcp,
                addr
            },
        ]
    );
    assert_eq!(
        demo.admin.listen,
        "127.0.0.1:8080".parse::<SocketAddr>().expect("addr")
    );
    assert_eq!(demo.store.path, PathBuf::from("var/voxgate"));
    assert!(demo.media.bind.is_loopback());
    assert!(demo.ng.is_none());
    assert!(demo.tls.certificate.is_none());
}

/// Every `configs/*.toml` loads with full validation. Certificate paths (which point at
/// system locations such as /etc/voxgate) are redirected to a freshly generated certificate.
#[test]
fn config_every_shipped_file_parses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_self_signed(dir.path(), "sbc.example.test");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(configs_dir()).expect("configs/ exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let mut text = std::fs::read_to_string(&path).expect("readable");
        let table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{path:?}: {e}"));
        if let Some(tls) = table.get("tls").and_then(toml::Value::as_table) {
            for (field, generated) in [("cert", &cert), ("key", &key)] {
                if let Some(original) = tls.get(field) {
                    text = text.replace(&original.to_string(), &toml_string(generated));
                }
            }
        }
        let origin = path.display().to_string();
        if let Err(e) = load_str(&text, &origin) {
            panic!("{e}");
        }
        names.push(path.file_name().expect("file name").to_owned());
    }
    names.sort();
    for required in ["demo.toml", "reference.toml", "edge-sbc.toml"] {
        assert!(
            names.iter().any(|n| n == required),
            "configs/{required} missing"
        );
    }
    assert!(
        names.len() >= 4,
        "expected the realistic examples too: {names:?}"
    );
}

/// `configs/reference.toml` sets every key to its default (except the required domain and
/// the sections whose presence turns something on).
#[test]
fn config_reference_equals_defaults() {
    let reference = load_str(&reference_text(), "reference.toml").expect("reference parses");
    let minimal = ok(MINIMAL);
    assert_eq!(reference.sip, minimal.sip);
    assert_eq!(reference.media, minimal.media);
    assert_eq!(reference.admin, minimal.admin);
    assert_eq!(reference.store, minimal.store);
    assert_eq!(reference.registrar, minimal.registrar);
    assert_eq!(reference.auth, minimal.auth);
    assert_eq!(reference.nat, minimal.nat);
    assert_eq!(reference.security, minimal.security);
    assert_eq!(reference.limits, minimal.limits);
    assert_eq!(reference.tls, minimal.tls);
    assert_eq!(reference.log, minimal.log);
    // [ng] is present in the reference (its presence enables it) with the default listen.
    assert!(minimal.ng.is_none());
    assert_eq!(reference.ng, Some(NgConfig::default()));
    assert!(minimal.extensions.is_empty());
}

#[test]
fn config_defaults_match_features_table() {
    // FEATURES.md §18 and the control plane's RFC defaults.
    let c = ok(MINIMAL);
    let any5060: SocketAddr = "0.0.0.0:5060".parse().expect("addr");
    assert_eq!(
        c.sip.listen,
        vec![
            Listen {
                transport: Transport::Udp,
                addr: any5060
            },
            Listen {
                transport: Transport::Tcp,
                addr: any5060
            }
        ]
    );
    assert_eq!(c.sip.max_forwards.get(), 70);
    assert!(c.sip.force_rport);
    assert_eq!(c.sip.timers.t1, Duration::from_millis(500));
    assert_eq!(c.sip.timers.t2, Duration::from_secs(4));
    assert_eq!(c.sip.timers.t4, Duration::from_secs(5));
    assert_eq!(c.media.rtp_ports, 20_000..=29_999);
    assert_eq!(c.media.workers, None);
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(NgConfig::default().listen.to_string(), "127.0.0.1:2223");
    assert_eq!(c.limits.max_message_bytes, 65_535);
    assert_eq!(c.limits.max_request_uri_bytes, 512);
    assert_eq!(c.limits.max_headers, 256);
    assert_eq!(c.limits.tcp_per_ip.get(), 256);
    assert_eq!(c.limits.tcp_total.get(), 20_000);
    assert_eq!(c.limits.tcp_idle, Duration::from_secs(600));
    assert_eq!(c.limits.partial_message_timeout, Duration::from_secs(30));
    assert_eq!(c.tls.min_version, TlsMinVersion::V1_2);
    assert_eq!(c.tls.handshake_timeout, Duration::from_secs(10));
    assert_eq!(c.log.level, LogLevel::Info);
    assert_eq!(c.log.format, LogFormat::Text);
    let s = Duration::from_secs;
    assert_eq!(c.registrar.default_expires, s(600));
    assert_eq!(c.registrar.min_expires, s(60));
    assert_eq!(c.registrar.max_expires, s(3600));
    assert_eq!(c.registrar.max_contacts.get(), 10);
    assert_eq!(
        c.auth.algorithms,
        [DigestAlgorithm::Md5, DigestAlgorithm::Sha256]
    );
    assert_eq!(c.auth.nonce_ttl, s(300));
    assert_eq!(c.auth.realm, "pbx.example.test");
    assert_eq!(c.auth.min_password_length, 12);
    assert_eq!(c.nat.keepalive_interval, s(30));
    assert!(c.security.allow.is_empty() && c.security.block.is_empty());
    assert_eq!(
        c.security.scanner_user_agents,
        [
            "friendly-scanner",
            "sipvicious",
            "sipcli",
            "VaxSIPUserAgent"
        ]
    );
    assert_eq!(c.security.auth_fail.per_account.get(), 3);
    assert_eq!(c.security.auth_fail.per_ip.get(), 10);
    assert_eq!(c.security.auth_fail.window, s(300));
    assert_eq!(c.security.auth_fail.ban, s(3600));
    assert_eq!(c.security.flood.requests.get(), 30);
    assert_eq!(c.security.flood.window, s(2));
    assert_eq!(c.security.flood.ban, s(300));
    assert_eq!(c.security.rate.rate.get(), 10);
    assert_eq!(c.security.rate.burst.get(), 20);
    assert_eq!(c.limits.max_cps.get(), 200);
    assert_eq!(c.limits.queue_high_water.permille(), 800);
    assert_eq!(c.limits.retry_after, s(5)..=s(15));
}

/// STYLE.md §11: an unknown key in any table of reference.toml is rejected, naming the key,
/// at the key's line and column.
#[test]
fn config_unknown_key_in_every_reference_table_is_rejected() {
    let mut text = reference_text();
    // reference.toml shows [[extension]] and [[trunk]] commented out; add one of each so
    // those tables are covered.
    text.push_str("\n[[extension]]\nnumber = \"100\"\npassword = \"a-long-enough-secret\"\n");
    text.push_str("\n[[trunk]]\nname = \"carrier\"\n");
    let lines: Vec<&str> = text.lines().collect();
    let headers: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with('['))
        .map(|(i, _)| i)
        .collect();
    let mut tables = Vec::new();
    for &i in &headers {
        tables.push(lines[i].trim().to_owned());
        let mut edited: Vec<&str> = lines.clone();
        edited.insert(i + 1, "bogus_key = 1");
        let (line, column, kind, shown) = fail(&edited.join("\n"));
        assert_eq!((line, column), (i + 2, 1), "table {}: {shown}", lines[i]);
        assert!(
            matches!(&kind, ConfigErrorKind::Toml { message } if message.contains("unknown field `bogus_key`")),
            "table {}: {shown}",
            lines[i]
        );
    }
    for required in [
        "[sip]",
        "[sip.timers]",
        "[media]",
        "[admin]",
        "[store]",
        "[ng]",
        "[registrar]",
        "[auth]",
        "[nat]",
        "[security]",
        "[security.auth_fail]",
        "[security.flood]",
        "[security.rate]",
        "[limits]",
        "[tls]",
        "[log]",
        "[[extension]]",
        "[[trunk]]",
    ] {
        assert!(
            tables.iter().any(|t| t == required),
            "reference.toml lacks {required}"
        );
    }
    // And at the top level, before any table.
    let (line, column, kind, shown) = fail(&format!("bogus_key = 1\n{text}"));
    assert_eq!((line, column), (1, 1), "{shown}");
    assert!(matches!(kind, ConfigErrorKind::Toml { .. }), "{shown}");
}

#[test]
fn config_unknown_key_names_the_allowed_keys() {
    let text = "[sip]\ndomain = \"pbx.example.test\"\nlisten_on = []\n";
    let (line, column, _, shown) = fail(text);
    assert_eq!((line, column), (3, 1));
    assert!(shown.contains("listen_on"), "{shown}");
    assert!(
        shown.contains("`listen`") && shown.contains("`domain`"),
        "{shown}"
    );
}

// ---------------------------------------------------------------------------------------
// Errors and their positions

#[test]
fn config_error_display_is_file_line_col_message() {
    let text = "[sip]\ndomain = \"pbx.example.test\"\nmax_forwards = 0\n";
    let err = load_str(text, "etc/voxgate.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "etc/voxgate.toml:3:16: `sip.max_forwards` must be between 1 and 255, not 0"
    );
    assert_eq!(err.position(), Some((3, 16)));
}

#[test]
fn config_unreadable_file_is_an_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.toml");
    let err = load_file(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("{}: ", missing.display())),
        "{err}"
    );
}

#[test]
fn config_load_file_reports_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[sip]\ndomain = \"localhost\"\n").expect("write");
    let err = load_file(&path).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}:2:10: ", path.display())),
        "{err}"
    );
    std::fs::write(&path, MINIMAL).expect("write");
    assert_eq!(
        load_file(&path).expect("valid").sip.domain,
        "pbx.example.test"
    );
}

#[test]
fn config_toml_errors_point_at_the_fault() {
    // Syntax.
    let (line, _, kind, _) =
        fail("[sip]\ndomain = \"pbx.example.test\"\nlisten = [\"udp:1.2.3.4\"\n");
    assert!(line >= 3);
    assert!(matches!(kind, ConfigErrorKind::Toml { .. }));
    // Wrong type, at the value.
    let text = "[sip]\ndomain = \"pbx.example.test\"\nforce_rport = \"yes\"\n";
    let (line, column, kind, shown) = fail(text);
    assert_eq!((line, column), pos(text, "\"yes\"", 0), "{shown}");
    assert!(matches!(kind, ConfigErrorKind::Toml { .. }));
    // Missing required key (at its table) and section (at the start).
    let (line, column, kind, shown) = fail("# comment\n\n[sip]\nlisten = []\n");
    assert!(
        matches!(
            kind,
            ConfigErrorKind::MissingKey {
                key: "sip.domain",
                ..
            }
        ),
        "{shown}"
    );
    assert_eq!((line, column), (3, 1), "{shown}");
    let (line, column, kind, shown) = fail("[media]\nworkers = 2\n");
    assert!(
        matches!(
            kind,
            ConfigErrorKind::MissingKey {
                key: "sip.domain",
                ..
            }
        ),
        "{shown}"
    );
    assert_eq!((line, column), (1, 1));
    let text = format!("{MINIMAL}[[extension]]\nnumber = \"100\"\n");
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::ExtensionCredential { both: false, .. }
        ),
        "{shown}"
    );
    assert_eq!((line, column), (3, 1));
    let text = format!("{MINIMAL}[[extension]]\npassword = \"correct-horse-battery\"\n");
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::MissingKey {
                key: "extension.number",
                ..
            }
        ),
        "{shown}"
    );
    assert_eq!((line, column), (3, 1));
    // An unknown top-level table.
    let text = format!("{MINIMAL}[voicemail]\nmax_messages = 100\n");
    let (line, _, _, shown) = fail(&text);
    assert_eq!(line, 3, "{shown}");
    assert!(shown.contains("voicemail"), "{shown}");
}

/// Each case: (config text, needle whose first occurrence is the expected position, check).
#[test]
fn config_value_errors_point_at_the_value() {
    type Check = fn(&ConfigErrorKind) -> bool;
    let cases: Vec<(String, &str, Check)> = vec![
        (
            "[sip]\ndomain = \"localhost\"\n".into(),
            "\"localhost\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::Domain {
                        source: DomainError::NotQualified,
                        ..
                    }
                )
            },
        ),
        (
            "[sip]\ndomain = \"192.0.2.1\"\n".into(),
            "\"192.0.2.1\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::Domain {
                        source: DomainError::IpAddress,
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}aliases = [\"ok.example\", \"not ok\"]\n"),
            "\"not ok\"",
            |k| matches!(k, ConfigErrorKind::Alias { .. }),
        ),
        (
            format!("{MINIMAL}listen = [\"udp:127.0.0.1:5060\", \"udp:localhost:5060\"]\n"),
            "\"udp:localhost",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::Listen {
                        source: ListenError::Address { .. },
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}listen = [\"quic:127.0.0.1:5060\"]\n"),
            "\"quic",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::Listen {
                        source: ListenError::Transport { .. },
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}listen = [\"tls:127.0.0.1:5061\"]\n"),
            "\"tls:",
            |k| matches!(k, ConfigErrorKind::TlsWithoutCertificate { .. }),
        ),
        (format!("{MINIMAL}max_forwards = 256\n"), "256", |k| {
            matches!(
                k,
                ConfigErrorKind::OutOfRange {
                    key: "sip.max_forwards",
                    ..
                }
            )
        }),
        (
            format!("{MINIMAL}[sip.timers]\nt1 = \"500\"\n"),
            "\"500\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::Duration {
                        key: "sip.timers.t1",
                        source: DurationError::MissingUnit { number: 500 }
                    }
                )
            },
        ),
        (format!("{MINIMAL}[sip.timers]\nt1 = 500\n"), "500", |k| {
            matches!(
                k,
                ConfigErrorKind::Duration {
                    source: DurationError::MissingUnit { number: 500 },
                    ..
                }
            )
        }),
        (
            format!("{MINIMAL}[sip.timers]\nt1 = \"5 seconds\"\n"),
            "\"5 seconds\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::Duration {
                        source: DurationError::Unit { .. },
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[sip.timers]\nt1 = \"0ms\"\n"),
            "\"0ms\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::DurationOutOfRange {
                        key: "sip.timers.t1",
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[sip.timers]\nt1 = \"2s\"\nt2 = \"1s\"\n"),
            "\"1s\"",
            |k| matches!(k, ConfigErrorKind::T2BelowT1 { .. }),
        ),
        (
            // T2 left at its 4 s default, T1 raised above it: point at t1.
            format!("{MINIMAL}[sip.timers]\nt1 = \"5s\"\n"),
            "\"5s\"",
            |k| matches!(k, ConfigErrorKind::T2BelowT1 { .. }),
        ),
        (format!("{MINIMAL}[media]\nworkers = 0\n"), "0", |k| {
            matches!(
                k,
                ConfigErrorKind::OutOfRange {
                    key: "media.workers",
                    value: 0,
                    ..
                }
            )
        }),
        (
            format!("{MINIMAL}[media]\nbind = \"any\"\n"),
            "\"any\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::IpAddress {
                        key: "media.bind",
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[media]\nrtp_ports = \"20001-29999\"\n"),
            "\"20001",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::PortRange {
                        source: PortRangeError::OddStart,
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[media]\nrtp_ports = \"30000-20000\"\n"),
            "\"30000",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::PortRange {
                        source: PortRangeError::TooSmall,
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[admin]\nlisten = \"8080\"\n"),
            "\"8080\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::SocketAddress {
                        key: "admin.listen",
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[ng]\nlisten = \"localhost:2223\"\n"),
            "\"localhost",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::SocketAddress {
                        key: "ng.listen",
                        ..
                    }
                )
            },
        ),
        (format!("{MINIMAL}[store]\npath = \"\"\n"), "\"\"", |k| {
            matches!(k, ConfigErrorKind::EmptyPath)
        }),
        (
            format!("{MINIMAL}[store]\nredis = \"localhost:6379\"\n"),
            "\"localhost",
            |k| matches!(k, ConfigErrorKind::RedisUrl { .. }),
        ),
        (
            format!("{MINIMAL}[security]\nallow = [\"192.0.2.0/24\", \"192.0.2.1/24\"]\n"),
            "\"192.0.2.1/24\"",
            |k| matches!(k, ConfigErrorKind::Cidr { .. }),
        ),
        (
            format!("{MINIMAL}[limits]\nmax_message_bytes = 70000\n"),
            "70000",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::OutOfRange {
                        key: "limits.max_message_bytes",
                        max: 65_535,
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[limits]\nmax_message_bytes = 1000\n"),
            "1000",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::OutOfRange {
                        key: "limits.max_message_bytes",
                        min: 1500,
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[limits]\nmax_message_bytes = 2000\nmax_request_uri_bytes = 4000\n"),
            "4000",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::AboveOther {
                        key: "limits.max_request_uri_bytes",
                        ..
                    }
                )
            },
        ),
        (format!("{MINIMAL}[limits]\nmax_headers = 0\n"), "0", |k| {
            matches!(
                k,
                ConfigErrorKind::OutOfRange {
                    key: "limits.max_headers",
                    ..
                }
            )
        }),
        (
            format!("{MINIMAL}[limits]\ntcp_per_ip = 300\ntcp_total = 100\n"),
            "300",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::AboveOther {
                        key: "limits.tcp_per_ip",
                        ..
                    }
                )
            },
        ),
        (format!("{MINIMAL}[limits]\ntcp_total = -5\n"), "-5", |k| {
            matches!(
                k,
                ConfigErrorKind::OutOfRange {
                    key: "limits.tcp_total",
                    ..
                }
            )
        }),
        (
            format!("{MINIMAL}[limits]\ntcp_idle = \"0s\"\n"),
            "\"0s\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::DurationOutOfRange {
                        key: "limits.tcp_idle",
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[limits]\npartial_message_timeout = \"2w\"\n"),
            "\"2w\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::Duration {
                        key: "limits.partial_message_timeout",
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[tls]\nmin_version = \"1.1\"\n"),
            "\"1.1\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::NotOneOf {
                        key: "tls.min_version",
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[tls]\nhandshake_timeout = \"0ms\"\n"),
            "\"0ms\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::DurationOutOfRange {
                        key: "tls.handshake_timeout",
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[tls]\ncert = \"/etc/voxgate/cert.pem\"\n"),
            "\"/etc",
            |k| matches!(k, ConfigErrorKind::TlsHalfConfigured),
        ),
        (
            format!("{MINIMAL}[log]\nlevel = \"verbose\"\n"),
            "\"verbose\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::NotOneOf {
                        key: "log.level",
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[log]\nformat = \"xml\"\n"),
            "\"xml\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::NotOneOf {
                        key: "log.format",
                        ..
                    }
                )
            },
        ),
        // [registrar]
        (
            format!("{MINIMAL}[registrar]\ndefault_expires = \"90s\"\nmin_expires = \"2m\"\n"),
            "\"2m\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::DurationAboveOther {
                        key: "registrar.min_expires",
                        limit_key: "registrar.default_expires",
                        ..
                    }
                )
            },
        ),
        (
            // Only max_expires in the file, below the default 600 s: point at max.
            format!("{MINIMAL}[registrar]\nmax_expires = \"5m\"\n"),
            "\"5m\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::DurationAboveOther {
                        key: "registrar.default_expires",
                        limit_key: "registrar.max_expires",
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[registrar]\nmin_expires = \"1500ms\"\n"),
            "\"1500ms\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::NotWholeSeconds {
                        key: "registrar.min_expires",
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[registrar]\nmax_expires = \"30w\"\n"),
            "\"30w\"",
            |k| matches!(k, ConfigErrorKind::Duration { key: "registrar.max_expires", .. }),
        ),
        (format!("{MINIMAL}[registrar]\nmax_contacts = 0\n"), "0", |k| {
            matches!(
                k,
                ConfigErrorKind::OutOfRange {
                    key: "registrar.max_contacts",
                    ..
                }
            )
        }),
        // [auth]
        (
            format!("{MINIMAL}[auth]\nalgorithms = [\"MD5\", \"SHA-1\"]\n"),
            "\"SHA-1\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::NotOneOf {
                        key: "auth.algorithms",
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[auth]\nalgorithms = [\"SHA-256\", \"sha-256\"]\n"),
            "\"sha-256\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::Duplicate {
                        key: "auth.algorithms",
                        ..
                    }
                )
            },
        ),
        (format!("{MINIMAL}[auth]\nalgorithms = []\n"), "[]", |k| {
            matches!(
                k,
                ConfigErrorKind::EmptyList {
                    key: "auth.algorithms",
                    ..
                }
            )
        }),
        (
            format!("{MINIMAL}[auth]\nnonce_ttl = \"1s\"\n"),
            "\"1s\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::DurationOutOfRange {
                        key: "auth.nonce_ttl",
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[auth]\nrealm = \"a\\\"b\"\n"),
            "\"a\\",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::QuotedText {
                        key: "auth.realm",
                        source: TextError::Character,
                        ..
                    }
                )
            },
        ),
        (format!("{MINIMAL}[auth]\nrealm = \"\"\n"), "\"\"", |k| {
            matches!(
                k,
                ConfigErrorKind::QuotedText {
                    key: "auth.realm",
                    source: TextError::Empty,
                    ..
                }
            )
        }),
        (
            format!("{MINIMAL}[auth]\nmin_password_length = 8\n"),
            "8",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::OutOfRange {
                        key: "auth.min_password_length",
                        min: 12,
                        ..
                    }
                )
            },
        ),
        // [nat]
        (
            format!("{MINIMAL}[nat]\nkeepalive_interval = \"1s\"\n"),
            "\"1s\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::DurationOutOfRange {
                        key: "nat.keepalive_interval",
                        ..
                    }
                )
            },
        ),
        // [security]
        (
            format!("{MINIMAL}[security]\nblock = [\"10.0.0.0/8\", \"10.1.0.0/8\"]\n"),
            "\"10.1.0.0/8\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::Cidr {
                        key: "security.block",
                        source: voxgate_controlplane::security::IpNetError::HostBits { .. },
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[security]\nallow = [\"10.0.0.0/8\", \"10.0.0.0/8\"]\n"),
            "\"10.0.0.0/8\"]",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::Duplicate {
                        key: "security.allow",
                        ..
                    }
                )
            },
        ),
        (
            format!(
                "{MINIMAL}[security]\nblock = [\"192.0.2.7\", \"192.0.2.0/24\"]\nallow = [\"192.0.2.0/24\"]\n"
            ),
            "\"192.0.2.0/24\"",
            |k| matches!(k, ConfigErrorKind::AllowedAndBlocked { .. }),
        ),
        (
            format!("{MINIMAL}[security]\nscanner_user_agents = [\"sipvicious\", \"\"]\n"),
            "\"\"]",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::QuotedText {
                        key: "security.scanner_user_agents",
                        source: TextError::Empty,
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[security]\nscanner_user_agents = [\"sipcli\", \"SIPcli\"]\n"),
            "\"SIPcli\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::Duplicate {
                        key: "security.scanner_user_agents",
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[security.auth_fail]\nper_account = 0\n"),
            "0",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::OutOfRange {
                        key: "security.auth_fail.per_account",
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[security.auth_fail]\nban = 3600\n"),
            "3600",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::Duration {
                        key: "security.auth_fail.ban",
                        source: DurationError::MissingUnit { number: 3600 }
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[security.flood]\nwindow = \"0s\"\n"),
            "\"0s\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::DurationOutOfRange {
                        key: "security.flood.window",
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[security.rate]\nrate = 50\nburst = 10\n"),
            "10",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::AboveOther {
                        key: "security.rate.rate",
                        ..
                    }
                )
            },
        ),
        // [limits], SEC-15
        (format!("{MINIMAL}[limits]\nmax_cps = 0\n"), "0", |k| {
            matches!(
                k,
                ConfigErrorKind::OutOfRange {
                    key: "limits.max_cps",
                    ..
                }
            )
        }),
        (
            format!("{MINIMAL}[limits]\nqueue_high_water = 80\n"),
            "80",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::Ratio {
                        key: "limits.queue_high_water",
                        source: RatioError::Integer { value: 80 }
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[limits]\nqueue_high_water = 1.5\n"),
            "1.5",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::Ratio {
                        source: RatioError::OutOfRange { .. },
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[limits]\nqueue_high_water = \"80 percent\"\n"),
            "\"80 percent\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::Ratio {
                        source: RatioError::Syntax,
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[limits]\nretry_after = \"15s-5s\"\n"),
            "\"15s-5s\"",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::DurationRange {
                        key: "limits.retry_after",
                        source: DurationRangeError::Reversed,
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[limits]\nretry_after = \"500ms-2s\"\n"),
            "\"500ms",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::NotWholeSeconds {
                        key: "limits.retry_after",
                        ..
                    }
                )
            },
        ),
        (
            format!("{MINIMAL}[limits]\nretry_after = \"0s-10s\"\n"),
            "\"0s",
            |k| {
                matches!(
                    k,
                    ConfigErrorKind::DurationOutOfRange {
                        key: "limits.retry_after",
                        ..
                    }
                )
            },
        ),
        (format!("{MINIMAL}[limits]\nretry_after = 10\n"), "10", |k| {
            matches!(
                k,
                ConfigErrorKind::Duration {
                    key: "limits.retry_after",
                    source: DurationError::MissingUnit { number: 10 }
                }
            )
        }),
    ];
    for (text, needle, check) in cases {
        let (line, column, kind, shown) = fail(&text);
        assert!(check(&kind), "wrong error {kind:?} for\n{text}");
        let after = if text.starts_with(MINIMAL) {
            MINIMAL.len()
        } else {
            0
        };
        assert_eq!(
            (line, column),
            pos(&text, needle, after),
            "wrong position: {shown}\n--- input ---\n{text}"
        );
        assert!(
            shown.starts_with(&format!("test.toml:{line}:{column}: ")),
            "{shown}"
        );
    }
}

#[test]
fn config_redis_url_error_hides_password() {
    let text = format!("{MINIMAL}[store]\nredis = \"http://user:hunter2@cache:6379\"\n");
    let (_, _, _, shown) = fail(&text);
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("http://***@cache:6379"), "{shown}");
}

// ---------------------------------------------------------------------------------------
// Listeners and ports

#[test]
fn config_duplicate_listener_points_at_second() {
    let text = format!(
        "{MINIMAL}listen = [\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5060\", \"udp:127.0.0.1:5060\"]\n"
    );
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(kind, ConfigErrorKind::DuplicateListener { .. }),
        "{shown}"
    );
    assert_eq!((line, column), pos_nth(&text, "\"udp:127.0.0.1:5060\"", 1));
    assert!(
        shown.contains("udp:127.0.0.1:5060 is listed twice"),
        "{shown}"
    );
}

#[test]
fn config_port_zero_listeners_are_not_duplicates() {
    let c = ok(&format!(
        "{MINIMAL}listen = [\"udp:127.0.0.1:0\", \"udp:127.0.0.1:0\", \"tcp:127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n"
    ));
    assert_eq!(c.sip.listen.len(), 3);
}

#[test]
fn config_port_clashes() {
    // TCP and TLS on one port.
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_self_signed(dir.path(), "pbx.example.test");
    let tls = format!(
        "[tls]\ncert = {}\nkey = {}\n",
        toml_string(&cert),
        toml_string(&key)
    );
    let text = format!("{MINIMAL}listen = [\"tcp:0.0.0.0:5060\", \"tls:127.0.0.1:5060\"]\n{tls}");
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::PortClash {
                tcp: true,
                port: 5060,
                ..
            }
        ),
        "{shown}"
    );
    assert_eq!((line, column), pos(&text, "\"tls:", 0));

    // Admin on a SIP TCP port: points at admin.listen.
    let text =
        format!("{MINIMAL}listen = [\"tcp:127.0.0.1:8080\"]\n[admin]\nlisten = \"0.0.0.0:8080\"\n");
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::PortClash {
                tcp: true,
                port: 8080,
                ..
            }
        ),
        "{shown}"
    );
    assert_eq!((line, column), pos(&text, "\"0.0.0.0:8080\"", 0));

    // Default admin (127.0.0.1:8080) against a listener: points at the listener.
    let text = format!("{MINIMAL}listen = [\"tcp:127.0.0.1:8080\"]\n");
    let (line, column, kind, _) = fail(&text);
    assert!(matches!(kind, ConfigErrorKind::PortClash { .. }));
    assert_eq!((line, column), pos(&text, "\"tcp:", 0));

    // ng on a SIP UDP port.
    let text = format!("{MINIMAL}listen = [\"udp:127.0.0.1:2223\"]\n[ng]\n");
    let (_, _, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::PortClash {
                tcp: false,
                port: 2223,
                ..
            }
        ),
        "{shown}"
    );

    // RTP range covering a SIP UDP port.
    let text = format!(
        "{MINIMAL}listen = [\"udp:0.0.0.0:20002\"]\n[media]\nrtp_ports = \"20000-20999\"\n"
    );
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::PortClash {
                tcp: false,
                port: 20002,
                ..
            }
        ),
        "{shown}"
    );
    assert_eq!((line, column), pos(&text, "\"20000-20999\"", 0));

    // No clash: UDP and TCP share a port; different addresses; different families.
    ok(&format!(
        "{MINIMAL}listen = [\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5060\", \"tcp:127.0.0.2:5060\", \"tcp:[::]:5060\", \"udp:127.0.0.1:2223\"]\n[media]\nbind = \"127.0.0.1\"\nrtp_ports = \"30000-30099\"\n"
    ));
}

#[test]
fn config_empty_listen_means_no_sip() {
    let c = ok(&format!("{MINIMAL}listen = []\n"));
    assert!(c.sip.listen.is_empty());
}

#[test]
fn config_listen_accepts_ipv6_and_default_ports() {
    let c = ok(&format!(
        "{MINIMAL}listen = [\"udp:[::1]:5070\", \"tcp:[::1]\", \"udp:127.0.0.1\"]\n"
    ));
    let addrs: Vec<String> = c.sip.listen.iter().map(ToString::to_string).collect();
    assert_eq!(
        addrs,
        ["udp:[::1]:5070", "tcp:[::1]:5060", "udp:127.0.0.1:5060"]
    );
}

// ---------------------------------------------------------------------------------------
// TLS

#[test]
fn config_tls_with_generated_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_self_signed(dir.path(), "pbx.example.test");
    let text = format!(
        "{MINIMAL}[tls]\ncert = {}\nkey = {}\nmin_version = \"1.3\"\nhandshake_timeout = \"5s\"\n",
        toml_string(&cert),
        toml_string(&key)
    );
    let c = ok(&text);
    let certificate = c.tls.certificate.as_ref().expect("configured");
    assert_eq!(certificate.cert, cert);
    assert_eq!(certificate.key, key);
    let server = certificate.server_config.clone();
    let v = handshake(
        server.clone(),
        &cert,
        "pbx.example.test",
        &[&rustls::version::TLS13],
    );
    assert_eq!(v.expect("1.3 handshake"), rustls::ProtocolVersion::TLSv1_3);
    // min_version = "1.3" reached the server configuration.
    handshake(
        server,
        &cert,
        "pbx.example.test",
        &[&rustls::version::TLS12],
    )
    .expect_err("1.2 refused");
    assert_eq!(c.tls.min_version, TlsMinVersion::V1_3);
    assert_eq!(c.tls.handshake_timeout, Duration::from_secs(5));
    // With a certificate and no explicit listeners, TLS 5061 joins the defaults.
    assert_eq!(
        c.sip.listen.last(),
        Some(&Listen {
            transport: Transport::Tls,
            addr: "0.0.0.0:5061".parse().expect("addr")
        })
    );
    // And an explicit tls: listener is accepted.
    let explicit = text.replacen(
        "domain = \"pbx.example.test\"\n",
        "domain = \"pbx.example.test\"\nlisten = [\"tls:127.0.0.1:0\"]\n",
        1,
    );
    assert_eq!(ok(&explicit).sip.listen.len(), 1);
}

#[test]
fn config_tls_file_errors_point_at_the_right_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_self_signed(dir.path(), "one.example.test");
    let (_, other_key) = write_self_signed(dir.path(), "two.example.test");
    let missing = dir.path().join("missing.pem");
    let tls = |c: &Path, k: &Path| {
        format!(
            "{MINIMAL}[tls]\ncert = {}\nkey = {}\n",
            toml_string(c),
            toml_string(k)
        )
    };

    let text = tls(&missing, &key);
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::Tls {
                source: crate::tls::TlsError::Read { .. }
            }
        ),
        "{shown}"
    );
    assert_eq!((line, column), (pos(&text, "cert = ", 0).0, 8), "{shown}");
    assert!(shown.contains("missing.pem"), "{shown}");

    let text = tls(&cert, &missing);
    let (line, column, _, shown) = fail(&text);
    assert_eq!((line, column), (pos(&text, "key = ", 0).0, 7), "{shown}");

    let text = tls(&cert, &other_key);
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::Tls {
                source: crate::tls::TlsError::KeyMismatch { .. }
            }
        ),
        "{shown}"
    );
    assert_eq!((line, column), (pos(&text, "key = ", 0).0, 7), "{shown}");

    // A key where the certificate should be.
    let text = tls(&key, &key);
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::Tls {
                source: crate::tls::TlsError::NoCertificate { .. }
            }
        ),
        "{shown}"
    );
    assert_eq!((line, column), (pos(&text, "cert = ", 0).0, 8), "{shown}");
}

// ---------------------------------------------------------------------------------------
// Extensions

fn ext(number: &str, password: &str) -> String {
    format!("[[extension]]\nnumber = \"{number}\"\npassword = \"{password}\"\n")
}

#[test]
fn config_extensions_parse() {
    let text = format!(
        "{MINIMAL}{}name = \"Alice\"\n{}",
        ext("100", "correct-horse-battery"),
        ext("101", "another-long-secret")
    );
    let c = ok(&text);
    assert_eq!(c.extensions.len(), 2);
    assert_eq!(c.extensions[0].number, "100");
    assert_eq!(c.extensions[0].name.as_deref(), Some("Alice"));
    assert_eq!(
        c.extensions[0].credential,
        Credential::Password(Secret::new("correct-horse-battery".into()))
    );
    assert_eq!(
        c.extensions[0].auth_id, "100",
        "the auth ID defaults to the number"
    );
    assert!(c.extensions[0].networks.is_empty());
    assert!(c.extensions[0].may_register_from("203.0.113.9".parse().expect("ip")));
    assert_eq!(c.extensions[1].name, None);
    // Secrets stay out of debug output (and so out of logs).
    let debug = format!("{c:?}");
    assert!(!debug.contains("correct-horse-battery"), "{debug}");
}

#[test]
fn config_weak_passwords_are_rejected() {
    let text = format!("{MINIMAL}{}", ext("100", "short-pw"));
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::WeakPassword {
                source: PasswordError::TooShort { chars: 8, min: 12 },
                ..
            }
        ),
        "{shown}"
    );
    assert_eq!((line, column), pos(&text, "\"short-pw\"", 0));
    assert!(
        !shown.contains("short-pw"),
        "the password must not be echoed: {shown}"
    );

    let text = format!("{MINIMAL}{}", ext("100200300400", "100200300400"));
    let (_, _, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::WeakPassword {
                source: PasswordError::EqualsNumber,
                ..
            }
        ),
        "{shown}"
    );
}

#[test]
fn config_duplicate_extension_points_at_second() {
    let text = format!(
        "{MINIMAL}{}{}{}",
        ext("100", "correct-horse-battery"),
        ext("101", "correct-horse-battery"),
        ext("100", "correct-horse-battery")
    );
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(&kind, ConfigErrorKind::DuplicateExtension { number, first_line: 4 } if number == "100"),
        "{shown}"
    );
    assert_eq!((line, column), pos_nth(&text, "\"100\"", 1));
}

#[test]
fn config_extension_numbers_must_not_overlap_service_numbers() {
    for (number, expect) in [
        (
            "999",
            NumberError::Reserved {
                reserved: "999",
                service: "voicemail",
            },
        ),
        (
            "700",
            NumberError::Reserved {
                reserved: "700",
                service: "conference",
            },
        ),
        (
            "112",
            NumberError::Reserved {
                reserved: "112",
                service: "emergency",
            },
        ),
        (
            "911",
            NumberError::Reserved {
                reserved: "911",
                service: "emergency",
            },
        ),
        ("*30", NumberError::DialCode),
        ("10x", NumberError::NotDigits),
        ("", NumberError::Empty),
    ] {
        let text = format!("{MINIMAL}{}", ext(number, "correct-horse-battery"));
        let (line, column, kind, shown) = fail(&text);
        assert!(
            matches!(&kind, ConfigErrorKind::ExtensionNumber { source, .. } if *source == expect),
            "{number}: {shown}"
        );
        assert_eq!(
            (line, column),
            pos(&text, &format!("\"{number}\""), MINIMAL.len())
        );
    }
}

#[test]
fn config_extension_name_rejects_control_characters() {
    let text = format!(
        "{MINIMAL}{}name = \"Eve\\r\\nVia: evil\"\n",
        ext("100", "correct-horse-battery")
    );
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(kind, ConfigErrorKind::ExtensionName { .. }),
        "{shown}"
    );
    assert_eq!((line, column), pos(&text, "\"Eve", 0));
}

#[test]
fn config_unknown_extension_key() {
    let text = format!(
        "{MINIMAL}{}pager = \"1234\"\n",
        ext("100", "correct-horse-battery")
    );
    let (line, column, _, shown) = fail(&text);
    assert_eq!((line, column), pos(&text, "pager", 0));
    assert!(shown.contains("pager"), "{shown}");
}

#[test]
fn config_extension_auth_id_ha1_and_networks() {
    let text = format!(
        "{MINIMAL}{}auth_id = \"alice.desk\"\nnetworks = [\"192.0.2.0/24\", \"2001:db8::/48\"]\n\
         [[extension]]\nnumber = \"101\"\nha1 = \"0123456789ABCDEF0123456789abcdef\"\n",
        ext("100", "correct-horse-battery")
    );
    let c = ok(&text);
    let alice = &c.extensions[0];
    assert_eq!(alice.auth_id, "alice.desk");
    assert_eq!(alice.networks.len(), 2);
    assert!(alice.may_register_from("192.0.2.9".parse().expect("ip")));
    assert!(alice.may_register_from("2001:db8::1".parse().expect("ip")));
    assert!(!alice.may_register_from("198.51.100.1".parse().expect("ip")));
    let bob = &c.extensions[1];
    assert_eq!(bob.auth_id, "101");
    assert_eq!(
        bob.credential,
        Credential::Ha1Md5(Secret::new("0123456789abcdef0123456789abcdef".into())),
        "HA1 is kept in lower case"
    );
    let debug = format!("{c:?}");
    assert!(!debug.contains("0123456789"), "{debug}");
}

#[test]
fn config_extension_credential_errors() {
    // Both password and ha1: points at the second of the two.
    let text = format!(
        "{MINIMAL}{}ha1 = \"0123456789abcdef0123456789abcdef\"\n",
        ext("100", "correct-horse-battery")
    );
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::ExtensionCredential { both: true, .. }
        ),
        "{shown}"
    );
    assert_eq!((line, column), pos(&text, "\"0123", 0));
    assert!(!shown.contains("0123456789"), "{shown}");

    let text = format!("{MINIMAL}[[extension]]\nnumber = \"100\"\nha1 = \"abc\"\n");
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::Ha1 {
                source: Ha1Error::Length { chars: 3 },
                ..
            }
        ),
        "{shown}"
    );
    assert_eq!((line, column), pos(&text, "\"abc\"", 0));

    // An MD5 HA1 is useless when MD5 is not offered.
    let text = format!(
        "{MINIMAL}[auth]\nalgorithms = [\"SHA-256\"]\n\
         [[extension]]\nnumber = \"100\"\nha1 = \"0123456789abcdef0123456789abcdef\"\n"
    );
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(kind, ConfigErrorKind::Ha1NeedsMd5 { .. }),
        "{shown}"
    );
    assert_eq!((line, column), pos(&text, "\"0123", 0));

    // SEC-09: not the auth ID either.
    let text = format!(
        "{MINIMAL}{}auth_id = \"correct-horse-battery\"\n",
        ext("100", "correct-horse-battery")
    );
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::WeakPassword {
                source: PasswordError::EqualsAuthId,
                ..
            }
        ),
        "{shown}"
    );
    assert_eq!((line, column), pos(&text, "\"correct", 0));

    // A raised minimum applies.
    let text = format!(
        "{MINIMAL}[auth]\nmin_password_length = 24\n{}",
        ext("100", "correct-horse-battery")
    );
    let (_, _, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::WeakPassword {
                source: PasswordError::TooShort { chars: 21, min: 24 },
                ..
            }
        ),
        "{shown}"
    );

    let text = format!(
        "{MINIMAL}{}auth_id = \"al ice\"\n",
        ext("100", "correct-horse-battery")
    );
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::AuthId {
                source: AuthIdError::Character { found: ' ' },
                ..
            }
        ),
        "{shown}"
    );
    assert_eq!((line, column), pos(&text, "\"al ice\"", 0));

    let text = format!(
        "{MINIMAL}{}networks = [\"192.0.2.1/24\"]\n",
        ext("100", "correct-horse-battery")
    );
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::Cidr {
                key: "extension.networks",
                ..
            }
        ),
        "{shown}"
    );
    assert_eq!((line, column), pos(&text, "\"192.0.2.1/24\"", 0));
}

#[test]
fn config_duplicate_auth_id_points_at_second() {
    // Extension 101's explicit auth ID equals extension 100's default one.
    let text = format!(
        "{MINIMAL}{}{}auth_id = \"100\"\n",
        ext("100", "correct-horse-battery"),
        ext("101", "correct-horse-battery")
    );
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(
            &kind,
            ConfigErrorKind::DuplicateAuthId { number, auth_id, first_number, first_line: 4 }
                if number == "101" && auth_id == "100" && first_number == "100"
        ),
        "{shown}"
    );
    let value_at = text.rfind("\"100\"").expect("auth_id value");
    assert_eq!((line, column), super::error::line_col(&text, value_at));
}

#[test]
fn config_m3_sections_parse() {
    let text = format!(
        "{MINIMAL}[registrar]\ndefault_expires = \"5m\"\nmin_expires = \"30s\"\nmax_expires = \"2h\"\nmax_contacts = 4\n\
         [auth]\nalgorithms = [\"sha-512-256\", \"SHA-256\", \"MD5\"]\nnonce_ttl = \"2m\"\nrealm = \"Example PBX\"\nmin_password_length = 16\n\
         [nat]\nkeepalive_interval = \"25s\"\n\
         [security]\nallow = [\"192.0.2.0/24\"]\nblock = [\"192.0.2.66\", \"203.0.113.0/24\"]\nscanner_user_agents = [\"evil-bot\"]\n\
         [security.auth_fail]\nper_account = 5\nper_ip = 20\nwindow = \"10m\"\nban = \"2h\"\n\
         [security.flood]\nrequests = 100\nwindow = \"500ms\"\nban = \"1m\"\n\
         [security.rate]\nrate = 50\n\
         [limits]\nmax_cps = 50\nqueue_high_water = \"90%\"\nretry_after = \"10s-1m\"\n"
    );
    let c = ok(&text);
    let s = Duration::from_secs;
    assert_eq!(
        c.registrar,
        RegistrarConfig {
            default_expires: s(300),
            min_expires: s(30),
            max_expires: s(7200),
            max_contacts: NonZeroU32::new(4).expect("4"),
        }
    );
    assert_eq!(
        c.auth,
        AuthConfig {
            algorithms: vec![
                DigestAlgorithm::Sha512_256,
                DigestAlgorithm::Sha256,
                DigestAlgorithm::Md5
            ],
            nonce_ttl: s(120),
            realm: "Example PBX".into(),
            min_password_length: 16,
        }
    );
    assert_eq!(c.nat.keepalive_interval, s(25));
    // Blocking one host inside an allowed network is fine.
    assert!(c.security.is_allowed("192.0.2.66".parse().expect("ip")));
    assert!(c.security.is_blocked("192.0.2.66".parse().expect("ip")));
    assert!(c.security.is_blocked("203.0.113.200".parse().expect("ip")));
    assert!(!c.security.is_blocked("192.0.2.67".parse().expect("ip")));
    assert_eq!(c.security.scanner_user_agents, ["evil-bot"]);
    assert_eq!(c.security.auth_fail.per_account.get(), 5);
    assert_eq!(c.security.auth_fail.per_ip.get(), 20);
    assert_eq!(c.security.auth_fail.window, s(600));
    assert_eq!(c.security.auth_fail.ban, s(7200));
    assert_eq!(c.security.flood.requests.get(), 100);
    assert_eq!(c.security.flood.window, Duration::from_millis(500));
    assert_eq!(c.security.flood.ban, s(60));
    // A raised rate without a burst raises the burst with it.
    assert_eq!(c.security.rate.rate.get(), 50);
    assert_eq!(c.security.rate.burst.get(), 50);
    assert_eq!(c.limits.max_cps.get(), 50);
    assert_eq!(c.limits.queue_high_water.permille(), 900);
    assert_eq!(c.limits.retry_after, s(10)..=s(60));

    // Both spellings of the high-water mark mean the same; a single Retry-After is fixed.
    let a = ok(&format!(
        "{MINIMAL}[limits]\nqueue_high_water = 0.75\nretry_after = \"7s\"\n"
    ));
    let b = ok(&format!(
        "{MINIMAL}[limits]\nqueue_high_water = \"75%\"\nretry_after = \"7s-7s\"\n"
    ));
    assert_eq!(a.limits, b.limits);
    assert_eq!(a.limits.retry_after, s(7)..=s(7));
    // Setting only some keys of a sub-table keeps the others' defaults.
    let c = ok(&format!("{MINIMAL}[security.flood]\nrequests = 60\n"));
    assert_eq!(c.security.flood.window, s(2));
    assert_eq!(c.security.auth_fail, AuthFailConfig::default());
    // An explicitly empty scanner list turns the check off.
    let c = ok(&format!("{MINIMAL}[security]\nscanner_user_agents = []\n"));
    assert!(c.security.scanner_user_agents.is_empty());
}

// ---------------------------------------------------------------------------------------
// Conversions

#[test]
fn config_endpoint_config_carries_sip_and_limits() {
    let text = format!(
        "{MINIMAL}aliases = [\"203.0.113.5\", \"pbx\"]\nmax_forwards = 20\nforce_rport = false\n\
         [sip.timers]\nt1 = \"250ms\"\nt2 = \"2s\"\nt4 = \"3s\"\n\
         [limits]\nmax_message_bytes = 9000\nmax_request_uri_bytes = 300\nmax_headers = 64\nmax_header_bytes = 4096\n"
    );
    let c = ok(&text);
    let bound = vec![LocalListener {
        transport: Transport::Udp,
        addr: "127.0.0.1:40000".parse().expect("addr"),
    }];
    let e = c.endpoint_config(bound.clone());
    assert_eq!(e.domain, "pbx.example.test");
    assert_eq!(e.aliases, ["203.0.113.5", "pbx"]);
    assert_eq!(e.listeners, bound);
    assert_eq!(
        e.timers,
        TimerConfig {
            t1: Duration::from_millis(250),
            t2: Duration::from_secs(2),
            t4: Duration::from_secs(3)
        }
    );
    assert_eq!(e.limits.max_message_bytes, 9000);
    assert_eq!(e.limits.max_request_uri_bytes, 300);
    assert_eq!(e.limits.max_headers, 64);
    assert_eq!(e.limits.max_header_bytes, 4096);
    assert_eq!(e.max_forwards, 20);
    assert!(!e.force_rport);
    assert!(e.user_agent.starts_with("voxgate/"));

    let listen = c.sip.listen[0];
    assert_eq!(
        LocalListener::from(listen),
        LocalListener {
            transport: listen.transport,
            addr: listen.addr
        }
    );
}

#[test]
fn config_security_allow_and_misc() {
    let c = ok(&format!(
        "{MINIMAL}[security]\nallow = [\"192.0.2.0/24\", \"2001:db8::/32\", \"198.51.100.7\"]\n\
         [store]\nredis = \"redis://:pw@10.0.0.5:6379/1\"\n[ng]\nlisten = \"127.0.0.1:2224\"\n\
         [log]\nlevel = \"debug\"\nformat = \"json\"\n[media]\nworkers = 3\n"
    ));
    assert!(c.security.is_allowed("192.0.2.200".parse().expect("ip")));
    assert!(c.security.is_allowed("2001:db8::1".parse().expect("ip")));
    assert!(c.security.is_allowed("198.51.100.7".parse().expect("ip")));
    assert!(!c.security.is_allowed("198.51.100.8".parse().expect("ip")));
    assert_eq!(
        c.store.redis.as_ref().map(Secret::expose),
        Some("redis://:pw@10.0.0.5:6379/1")
    );
    assert_eq!(c.ng.expect("enabled").listen.port(), 2224);
    assert_eq!(c.log.level, LogLevel::Debug);
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.media.worker_count().get(), 3);
    assert!(ok(MINIMAL).media.worker_count().get() >= 1);
}

/// The control plane's defaults and ours are the same numbers (FEATURES §18): a config
/// that sets nothing yields exactly the control plane's default policies.
#[test]
fn config_control_plane_configs_default_alike() {
    use voxgate_controlplane::auth::DigestConfig;
    use voxgate_controlplane::registrar::RegistrarConfig as CpRegistrar;
    use voxgate_controlplane::security::SecurityConfig as CpSecurity;

    let c = ok(MINIMAL);
    let digest = c.digest_config();
    assert_eq!(
        digest,
        DigestConfig {
            realm: "pbx.example.test".into(),
            ..DigestConfig::default()
        }
    );
    assert_eq!(digest.validate(), Ok(()));
    let registrar = c.registrar_config();
    assert_eq!(registrar, CpRegistrar::default());
    assert_eq!(registrar.validate(), Ok(()));
    assert_eq!(c.security_config(), CpSecurity::default());
    assert!(c.credentials().is_empty());
}

#[test]
fn config_control_plane_configs_carry_every_key() {
    use voxgate_controlplane::auth::Algorithm;

    let text = format!(
        "{MINIMAL}[registrar]\ndefault_expires = \"5m\"\nmin_expires = \"30s\"\nmax_expires = \"2h\"\nmax_contacts = 4\n\
         [auth]\nalgorithms = [\"SHA-512-256\", \"MD5\"]\nnonce_ttl = \"2m\"\nrealm = \"Example PBX\"\n\
         [nat]\nkeepalive_interval = \"25s\"\n\
         [security]\nallow = [\"192.0.2.0/24\"]\nblock = [\"203.0.113.0/24\", \"2001:db8:bad::/48\"]\nscanner_user_agents = [\"evil-bot\"]\n\
         [security.auth_fail]\nper_account = 5\nper_ip = 20\nwindow = \"10m\"\nban = \"2h\"\n\
         [security.flood]\nrequests = 100\nwindow = \"500ms\"\nban = \"1m\"\n\
         [security.rate]\nrate = 7\nburst = 9\n\
         [limits]\nmax_cps = 50\nqueue_high_water = \"90%\"\nretry_after = \"10s-1m\"\n"
    );
    let c = ok(&text);
    let s = Duration::from_secs;

    let digest = c.digest_config();
    assert_eq!(digest.realm, "Example PBX");
    assert_eq!(digest.algorithms, [Algorithm::Sha512_256, Algorithm::Md5]);
    assert_eq!(digest.nonce_ttl, s(120));
    assert_eq!(digest.validate(), Ok(()));

    let r = c.registrar_config();
    assert_eq!(
        (r.default_expires, r.min_expires, r.max_expires),
        (s(300), s(30), s(7200))
    );
    assert_eq!(r.max_contacts, 4);
    assert_eq!(r.keepalive_interval, s(25));
    assert_eq!(r.validate(), Ok(()));

    let sec = c.security_config();
    assert_eq!(
        sec.allow,
        vec!["192.0.2.0/24".parse::<IpNet>().expect("net")]
    );
    assert_eq!(sec.block.len(), 2);
    assert_eq!(sec.scanner_user_agents, ["evil-bot"]);
    assert_eq!((sec.auth_fail.per_account, sec.auth_fail.per_ip), (5, 20));
    assert_eq!((sec.auth_fail.window, sec.auth_fail.ban), (s(600), s(7200)));
    assert_eq!(sec.flood.requests, 100);
    assert_eq!(sec.flood.window, Duration::from_millis(500));
    assert_eq!(sec.flood.ban, s(60));
    assert_eq!(
        (sec.transactions.rate.get(), sec.transactions.burst.get()),
        (7, 9)
    );
    assert_eq!(sec.overload.max_cps.map(NonZeroU32::get), Some(50));
    assert!((sec.overload.queue_high_water - 0.9).abs() < 1e-6);
    assert_eq!(sec.overload.retry_after_secs, 10..=60);
}

#[test]
fn config_credentials_for_the_auth_lookup() {
    use voxgate_controlplane::auth::{Algorithm, Credential as Cp, Ha1Set};

    let text = format!(
        "{MINIMAL}{}auth_id = \"alice\"\nnetworks = [\"192.0.2.0/24\"]\n\
         [[extension]]\nnumber = \"101\"\nha1 = \"0123456789ABCDEF0123456789ABCDEF\"\n",
        ext("100", "correct-horse-battery")
    );
    let creds = ok(&text).credentials();
    assert_eq!(creds.len(), 2);
    assert_eq!(
        creds[0],
        ExtensionCredentials {
            number: "100".into(),
            auth_id: "alice".into(),
            credential: Cp::password("correct-horse-battery"),
            networks: vec!["192.0.2.0/24".parse().expect("net")],
        }
    );
    assert_eq!(creds[1].auth_id, "101");
    let Cp::Ha1(set) = &creds[1].credential else {
        panic!("ha1 becomes an HA1 set: {:?}", creds[1].credential);
    };
    assert_eq!(
        set.get(Algorithm::Md5),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(set.get(Algorithm::Sha256), None);
    assert!(creds[1].networks.is_empty());
    // No secret in debug output.
    assert!(!format!("{creds:?}").contains("correct-horse"));

    // The HA1 in the shipped office example is that of its documented password.
    let office = load_str(
        &std::fs::read_to_string(configs_dir().join("office-pbx.toml")).expect("read"),
        "office-pbx.toml",
    )
    .expect("parses");
    let bob = office
        .credentials()
        .into_iter()
        .find(|c| c.auth_id == "bob")
        .expect("bob");
    let expected = Ha1Set::from_password(
        &[Algorithm::Md5],
        "bob",
        &office.auth.realm,
        "replace-me-Ug6JdR1tZf5a",
    );
    assert_eq!(bob.credential, Cp::Ha1(expected));
}

// ---------------------------------------------------------------------------------------
// Edge security keys (issue 3): trunks, listener ACLs, max_vias, blocklist feeds

#[test]
fn config_edge_security_defaults() {
    let c = ok(MINIMAL);
    assert!(c.trunks.is_empty());
    assert!(c.sip.listen_acls.is_empty());
    assert_eq!(c.limits.max_vias, 70);
    assert_eq!(c.limits.message_limits().max_vias, 70);
    assert!(c.security.blocklist_feeds.is_empty());
    assert_eq!(
        c.security.blocklist_feed_refresh,
        Duration::from_secs(86_400)
    );
    assert!(c.security.blocklist_feed_ca.is_none());
    let cp = c.security_config();
    assert!(cp.trunks.is_empty() && cp.listeners.is_empty());
    assert!(c.listener_acls(&c.sip.listen, &[]).is_empty());
}

#[test]
fn config_trunks_map_to_security_config() {
    let text = format!(
        "{MINIMAL}[[trunk]]\nname = \"carrier-a\"\nacl = [\"203.0.113.0/28\", \"198.51.100.7:5060\", \"2001:db8::7\", \"[2001:db8::8]:5070\"]\n\
         [[trunk]]\nname = \"pbx_2\"\n"
    );
    let c = ok(&text);
    assert_eq!(c.trunks.len(), 2);
    assert_eq!(c.trunks[0].name, "carrier-a");
    assert_eq!(c.trunks[0].acl.len(), 4);
    assert_eq!(c.trunks[0].acl[1].port, Some(5060));
    assert_eq!(c.trunks[0].acl[2].port, None);
    assert_eq!(c.trunks[0].acl[3].port, Some(5070));
    assert!(c.trunks[1].acl.is_empty());
    let cp = c.security_config();
    assert_eq!(cp.trunks.len(), 2);
    assert_eq!(cp.trunks[0].name, "carrier-a");
    assert_eq!(cp.trunks[0].sources, c.trunks[0].acl);
    let s = |a: &str| a.parse::<SocketAddr>().expect("addr");
    assert!(cp.trunks[0].sources[0].matches(s("203.0.113.15:9999")));
    assert!(!cp.trunks[0].sources[0].matches(s("203.0.113.16:9999")));
    assert!(cp.trunks[0].sources[1].matches(s("198.51.100.7:5060")));
    assert!(!cp.trunks[0].sources[1].matches(s("198.51.100.7:5061")));
    assert!(cp.trunks[0].sources[3].matches(s("[2001:db8::8]:5070")));
}

#[test]
fn config_trunk_errors_point_at_the_value() {
    // Missing name: the table.
    let text = format!("{MINIMAL}[[trunk]]\nacl = []\n");
    let (line, _, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::MissingKey {
                key: "trunk.name",
                ..
            }
        ),
        "{shown}"
    );
    assert_eq!(line, 3);
    for bad in ["", "car rier", "carrier.a", "träger", &"x".repeat(65)] {
        let text = format!("{MINIMAL}[[trunk]]\nname = \"{bad}\"\n");
        let (line, column, kind, shown) = fail(&text);
        assert!(
            matches!(kind, ConfigErrorKind::TrunkName { .. }),
            "{bad}: {shown}"
        );
        assert_eq!((line, column), (4, 8), "{shown}");
    }
    assert_eq!(
        ok(&format!(
            "{MINIMAL}[[trunk]]\nname = \"{}\"\n",
            "x".repeat(64)
        ))
        .trunks
        .len(),
        1
    );
    // Duplicate names: the second, naming the first's line.
    let text = format!("{MINIMAL}[[trunk]]\nname = \"a\"\n[[trunk]]\nname = \"a\"\n");
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(kind, ConfigErrorKind::DuplicateTrunk { first_line: 4, .. }),
        "{shown}"
    );
    assert_eq!((line, column), (6, 8));
    // Bad ACL entries.
    for (bad, expect_port_zero) in [
        ("203.0.113.1/24", false),
        ("203.0.113.1:0", true),
        ("carrier.example.net", false),
        ("203.0.113.0/24:5060", false),
        ("2001:db8::1:5060:x", false),
    ] {
        let text = format!("{MINIMAL}[[trunk]]\nname = \"a\"\nacl = [\"192.0.2.1\", \"{bad}\"]\n");
        let (line, column, kind, shown) = fail(&text);
        match kind {
            ConfigErrorKind::TrunkAcl { source, .. } => {
                assert_eq!(
                    source == value::AclError::PortZero,
                    expect_port_zero,
                    "{bad}: {shown}"
                );
            }
            other => panic!("{bad}: {other:?}"),
        }
        assert_eq!(
            (line, column),
            pos(&text, &format!("\"{bad}\""), 0),
            "{shown}"
        );
        assert!(shown.starts_with("test.toml:5:"), "{shown}");
    }
    // One source on two trunks.
    let text = format!(
        "{MINIMAL}[[trunk]]\nname = \"a\"\nacl = [\"192.0.2.1\"]\n[[trunk]]\nname = \"b\"\nacl = [\"192.0.2.1/32\"]\n"
    );
    let (line, _, kind, shown) = fail(&text);
    assert!(
        matches!(&kind, ConfigErrorKind::DuplicateTrunkAcl { first_trunk, .. } if first_trunk == "a"),
        "{shown}"
    );
    assert_eq!(line, 8);
    // Unknown keys stay errors until M5.
    let text = format!("{MINIMAL}[[trunk]]\nname = \"a\"\nhost = \"sip.carrier.example\"\n");
    let (line, column, _, shown) = fail(&text);
    assert_eq!((line, column), (5, 1), "{shown}");
    assert!(shown.contains("unknown field `host`"), "{shown}");
}

#[test]
fn config_listen_tables_carry_acls() {
    let text = format!(
        "{MINIMAL}listen = [\n  \"udp:127.0.0.1:0\",\n  {{ address = \"udp:127.0.0.1:0\", allow = [\"127.0.0.1/32\"] }},\n  \
         {{ address = \"tcp:127.0.0.1:0\", block = [\"127.0.0.2\", \"10.0.0.0/8\"] }},\n  {{ address = \"tcp:127.0.0.1:5999\" }},\n]\n"
    );
    let c = ok(&text);
    assert_eq!(c.sip.listen.len(), 4);
    assert_eq!(c.sip.listen[1].transport, Transport::Udp);
    assert_eq!(c.sip.listen[3].addr.port(), 5999);
    assert_eq!(
        c.sip.listen_acls.len(),
        2,
        "a table without lists has no ACL"
    );
    assert_eq!(c.sip.listen_acls[0].index, 1);
    assert_eq!(c.sip.listen_acls[0].allow.len(), 1);
    assert!(c.sip.listen_acls[0].block.is_empty());
    assert_eq!(c.sip.listen_acls[1].index, 2);
    assert_eq!(c.sip.listen_acls[1].block.len(), 2);

    // The sockets as bound: port 0 became real ports, in `sip.listen` order.
    let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let bound: Vec<LocalListener> = [
        (Transport::Udp, 41000),
        (Transport::Udp, 41001),
        (Transport::Tcp, 41002),
        (Transport::Tcp, 5999),
    ]
    .into_iter()
    .map(|(transport, p)| LocalListener {
        transport,
        addr: addr(p),
    })
    .collect();
    let acls = c.listener_acls(&c.sip.listen, &bound);
    assert_eq!(acls.len(), 2);
    assert_eq!(
        (acls[0].transport, acls[0].local),
        (Transport::Udp, addr(41001)),
        "the second udp:127.0.0.1:0 socket, not the first"
    );
    assert_eq!(acls[0].allow, c.sip.listen_acls[0].allow);
    assert_eq!(
        (acls[1].transport, acls[1].local),
        (Transport::Tcp, addr(41002))
    );
    assert_eq!(acls[1].block, c.sip.listen_acls[1].block);

    // A reload whose list moved the ACL'd listener still finds its socket; one whose
    // listener is not bound (needs a restart) gets no ACL.
    let reloaded = ok(&format!(
        "{MINIMAL}listen = [\n  {{ address = \"tcp:127.0.0.1:5999\", allow = [\"192.0.2.0/24\"] }},\n  \
         {{ address = \"udp:127.0.0.1:7000\", allow = [\"192.0.2.0/24\"] }},\n]\n"
    ));
    let acls = reloaded.listener_acls(&c.sip.listen, &bound);
    assert_eq!(acls.len(), 1);
    assert_eq!(acls[0].local, addr(5999));
}

#[test]
fn config_listen_table_errors_point_at_the_value() {
    let text = format!("{MINIMAL}listen = [{{ allow = [\"127.0.0.1\"] }}]\n");
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::MissingKey {
                key: "sip.listen.address",
                ..
            }
        ),
        "{shown}"
    );
    assert_eq!((line, column), pos(&text, "{", 0));

    let text =
        format!("{MINIMAL}listen = [\"udp:127.0.0.1:5060\", {{ address = \"udp:nowhere\" }}]\n");
    let (line, column, kind, shown) = fail(&text);
    assert!(matches!(kind, ConfigErrorKind::Listen { .. }), "{shown}");
    assert_eq!((line, column), pos(&text, "\"udp:nowhere\"", 0));

    let text = format!(
        "{MINIMAL}listen = [{{ address = \"udp:127.0.0.1:5060\", allow = [\"127.0.0.1/8\"] }}]\n"
    );
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::Cidr {
                key: "sip.listen.allow",
                ..
            }
        ),
        "{shown}"
    );
    assert_eq!((line, column), pos(&text, "\"127.0.0.1/8\"", 0));

    let text = format!(
        "{MINIMAL}listen = [{{ address = \"udp:127.0.0.1:5060\", allow = [\"10.0.0.0/8\"], block = [\"10.0.0.0/8\"] }}]\n"
    );
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(kind, ConfigErrorKind::ListenAllowedAndBlocked { .. }),
        "{shown}"
    );
    assert_eq!((line, column), pos_nth(&text, "\"10.0.0.0/8\"", 1));

    let text = format!("{MINIMAL}listen = [{{ address = \"udp:127.0.0.1:5060\", alow = [] }}]\n");
    let (line, column, _, shown) = fail(&text);
    assert!(shown.contains("unknown field `alow`"), "{shown}");
    assert_eq!((line, column), pos(&text, "alow", 0));

    let text = format!("{MINIMAL}listen = [\"udp:127.0.0.1:5060\", 5]\n");
    let (line, column, _, shown) = fail(&text);
    assert_eq!((line, column), pos(&text, "5]", 0), "{shown}");

    // Duplicates and TLS rules apply to table entries too.
    let text = format!(
        "{MINIMAL}listen = [\"udp:127.0.0.1:5060\", {{ address = \"udp:127.0.0.1:5060\", allow = [\"127.0.0.1\"] }}]\n"
    );
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(kind, ConfigErrorKind::DuplicateListener { .. }),
        "{shown}"
    );
    assert_eq!((line, column), pos_nth(&text, "\"udp:127.0.0.1:5060\"", 1));
    let text = format!("{MINIMAL}listen = [{{ address = \"tls:127.0.0.1:5061\" }}]\n");
    let (_, _, kind, shown) = fail(&text);
    assert!(
        matches!(kind, ConfigErrorKind::TlsWithoutCertificate { .. }),
        "{shown}"
    );
}

#[test]
fn config_max_vias() {
    let c = ok(&format!("{MINIMAL}[limits]\nmax_vias = 12\n"));
    assert_eq!(c.limits.max_vias, 12);
    assert_eq!(c.limits.message_limits().max_vias, 12);
    let bound = Vec::new();
    assert_eq!(c.endpoint_config(bound).limits.max_vias, 12);
    assert_eq!(
        ok(&format!("{MINIMAL}[limits]\nmax_vias = 1024\n"))
            .limits
            .max_vias,
        1024
    );
    for bad in ["0", "1025", "-1"] {
        let text = format!("{MINIMAL}[limits]\nmax_vias = {bad}\n");
        let (line, column, kind, shown) = fail(&text);
        assert!(
            matches!(
                kind,
                ConfigErrorKind::OutOfRange {
                    key: "limits.max_vias",
                    min: 1,
                    max: 1024,
                    ..
                }
            ),
            "{shown}"
        );
        assert_eq!((line, column), (4, 12));
    }
}

#[test]
fn config_blocklist_feeds() {
    let text = format!(
        "{MINIMAL}[security]\nblocklist_feeds = [\"/var/lib/voxgate/bl.txt\", \"feeds/local.txt\", \"https://feeds.example.net:8443/sip.txt\", \"https://u:pw@[2001:db8::1]/x\"]\n\
         blocklist_feed_refresh = \"7d\"\n"
    );
    let c = ok(&text);
    assert_eq!(
        c.security.blocklist_feeds,
        [
            FeedSource::File("/var/lib/voxgate/bl.txt".into()),
            FeedSource::File("feeds/local.txt".into()),
            FeedSource::Https("https://feeds.example.net:8443/sip.txt".into()),
            FeedSource::Https("https://u:pw@[2001:db8::1]/x".into()),
        ]
    );
    // The password of a URL stays out of labels (logs, metrics).
    assert_eq!(
        c.security.blocklist_feeds[3].label(),
        "https://***@[2001:db8::1]/x"
    );
    assert_eq!(
        c.security.blocklist_feed_refresh,
        Duration::from_secs(7 * 86_400)
    );
    assert_eq!(
        ok(&format!(
            "{MINIMAL}[security]\nblocklist_feed_refresh = \"1m\"\n"
        ))
        .security
        .blocklist_feed_refresh,
        Duration::from_secs(60)
    );

    for (bad, plain_http) in [
        ("", false),
        ("http://feeds.example.net/x", true),
        ("HTTP://feeds.example.net/x", true),
        ("ftp://feeds.example.net/x", false),
        ("https://", false),
        ("https://host:0/x", false),
        ("https://ho st/x", false),
        ("https://[::1/x", false),
    ] {
        let text = format!("{MINIMAL}[security]\nblocklist_feeds = [\"{bad}\"]\n");
        let (line, column, kind, shown) = fail(&text);
        match kind {
            ConfigErrorKind::BlockFeed { source, .. } => assert_eq!(
                source == value::FeedSourceError::PlainHttp,
                plain_http,
                "{bad}: {shown}"
            ),
            other => panic!("{bad}: {other:?}"),
        }
        assert_eq!((line, column), (4, 20), "{shown}");
    }
    let text =
        format!("{MINIMAL}[security]\nblocklist_feeds = [\"a.txt\", \"b.txt\", \"a.txt\"]\n");
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::Duplicate {
                key: "security.blocklist_feeds",
                ..
            }
        ),
        "{shown}"
    );
    assert_eq!((line, column), pos_nth(&text, "\"a.txt\"", 1));
    for bad in ["59s", "8d", "30"] {
        let text = format!("{MINIMAL}[security]\nblocklist_feed_refresh = \"{bad}\"\n");
        let text = text.replace("\"30\"", "30");
        let (line, column, _, shown) = fail(&text);
        assert_eq!((line, column), (4, 26), "{shown}");
        assert!(shown.contains("security.blocklist_feed_refresh"), "{shown}");
    }
}

#[test]
fn config_blocklist_feed_ca_is_loaded_and_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, _key) = write_self_signed(dir.path(), "feeds.example.test");
    let text = format!(
        "{MINIMAL}[security]\nblocklist_feeds = [\"https://feeds.example.test/x\"]\nblocklist_feed_ca = {}\n",
        toml_string(&cert)
    );
    let c = ok(&text);
    let ca = c.security.blocklist_feed_ca.expect("loaded");
    assert_eq!(ca.path, cert);
    assert_eq!(ca.certs.len(), 1);

    let missing = dir.path().join("missing.pem");
    let text = format!(
        "{MINIMAL}[security]\nblocklist_feed_ca = {}\n",
        toml_string(&missing)
    );
    let (line, column, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::FeedCa {
                source: error::FeedCaError::Read(_),
                ..
            }
        ),
        "{shown}"
    );
    assert_eq!((line, column), (4, 21));
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").expect("write");
    let text = format!(
        "{MINIMAL}[security]\nblocklist_feed_ca = {}\n",
        toml_string(&junk)
    );
    let (_, _, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::FeedCa {
                source: error::FeedCaError::NoCertificates,
                ..
            }
        ),
        "{shown}"
    );
}

// ---------------------------------------------------------------------------------------
// The extension record (EXT-01)

#[test]
fn config_extension_record_fields() {
    let text = format!(
        "{MINIMAL}{}first_name = \"Zoë\"\nlast_name = \"O'Brien-Müller\"\nemail = \"zoe.obrien+pbx@example.co.uk\"\n\
         outbound_caller_id = \"+4930123456100\"\nmobile = \"01701234567\"\nvoicemail_pin = \"4711\"\n\
         language = \"de-CH\"\nrole = \"manager\"\ndepartments = [\"Sales\", \"Support EMEA\"]\n{}",
        ext("100", "correct-horse-battery"),
        ext("101", "another-long-secret")
    );
    let c = ok(&text);
    let r = &c.extensions[0].record;
    assert_eq!(r.first_name.as_deref(), Some("Zoë"));
    assert_eq!(r.last_name.as_deref(), Some("O'Brien-Müller"));
    assert_eq!(r.email.as_deref(), Some("zoe.obrien+pbx@example.co.uk"));
    assert_eq!(r.outbound_caller_id.as_deref(), Some("+4930123456100"));
    assert_eq!(r.mobile.as_deref(), Some("01701234567"));
    assert_eq!(r.voicemail_pin.as_ref().map(Secret::expose), Some("4711"));
    assert_eq!(r.language.as_deref(), Some("de-CH"));
    assert_eq!(r.role, Role::Manager);
    assert_eq!(r.departments, ["Sales", "Support EMEA"]);
    assert_eq!(
        c.extensions[0].display_name().as_deref(),
        Some("Zoë O'Brien-Müller"),
        "without `name`, callers see first and last name"
    );
    // Unset fields: none, role user; `name` still wins as the display name.
    assert_eq!(c.extensions[1].record, ExtensionRecord::default());
    assert_eq!(c.extensions[1].record.role, Role::User);
    assert_eq!(c.extensions[1].display_name(), None);
    let named = ok(&format!(
        "{MINIMAL}{}name = \"Desk 100\"\nfirst_name = \"Ann\"\n",
        ext("100", "correct-horse-battery")
    ));
    assert_eq!(
        named.extensions[0].display_name().as_deref(),
        Some("Desk 100")
    );
    // The PIN is a secret.
    assert!(!format!("{c:?}").contains("4711"));
}

#[test]
fn config_extension_record_errors_point_at_the_value() {
    let cases: [(&str, &str); 22] = [
        ("first_name", ""),
        ("first_name", "a\\tb"),
        ("last_name", &"x".repeat(65)),
        ("email", "alice"),
        ("email", "alice@localhost"),
        ("email", "al ice@example.com"),
        ("email", "@example.com"),
        ("email", "alice@example..com"),
        ("outbound_caller_id", "+"),
        ("outbound_caller_id", "030 1234"),
        ("outbound_caller_id", "+1234567890123456"),
        ("mobile", "++49170"),
        ("mobile", "0170-123"),
        ("voicemail_pin", "123"),
        ("voicemail_pin", "12345678901"),
        ("voicemail_pin", "12a4"),
        ("voicemail_pin", "100"),
        ("voicemail_pin", "7777"),
        ("language", "english"),
        ("language", "d"),
        ("language", "de_CH"),
        ("role", "root"),
    ];
    for (key, bad) in cases {
        let text = format!(
            "{MINIMAL}{}{key} = \"{bad}\"\n",
            ext("100", "correct-horse-battery")
        );
        let (line, column, kind, shown) = fail(&text);
        assert_eq!(
            (line, column),
            (6, key.len() + 4),
            "{key} = {bad:?}: {shown}"
        );
        match key {
            "voicemail_pin" => {
                assert!(
                    matches!(kind, ConfigErrorKind::VoicemailPin { .. }),
                    "{shown}"
                );
                assert!(
                    !shown.contains(&format!("\"{bad}\"")),
                    "the PIN is not echoed: {shown}"
                );
            }
            "role" => assert!(
                matches!(
                    kind,
                    ConfigErrorKind::NotOneOf {
                        key: "extension.role",
                        ..
                    }
                ),
                "{shown}"
            ),
            _ => assert!(
                matches!(&kind, ConfigErrorKind::ExtensionField { key: k, .. } if k == &key),
                "{key} = {bad:?}: {shown}"
            ),
        }
    }
    // The PIN equal to the number.
    let text = format!(
        "{MINIMAL}{}voicemail_pin = \"4321\"\n",
        ext("4321", "correct-horse-battery")
    );
    let (_, _, kind, shown) = fail(&text);
    assert!(
        matches!(
            kind,
            ConfigErrorKind::VoicemailPin {
                source: value::PinError::EqualsNumber,
                ..
            }
        ),
        "{shown}"
    );
    // Departments: each a name, no duplicates.
    let text = format!(
        "{MINIMAL}{}departments = [\"Sales\", \"\"]\n",
        ext("100", "correct-horse-battery")
    );
    let (line, column, _, shown) = fail(&text);
    assert_eq!((line, column), pos(&text, "\"\"]", 0), "{shown}");
    let text = format!(
        "{MINIMAL}{}departments = [\"Sales\", \"Sales\"]\n",
        ext("100", "correct-horse-battery")
    );
    let (line, column, kind, shown) = fail(&text);
    assert!(matches!(kind, ConfigErrorKind::Duplicate { .. }), "{shown}");
    assert_eq!((line, column), pos_nth(&text, "\"Sales\"", 1));
}

/// Loading used to count lines from the start of the file for every extension (quadratic:
/// 9.5 s for 20,000). Lines are now computed only for an error; a duplicate at the end of
/// a large file still names the right first line.
#[test]
fn config_many_extensions_load_and_report_lines() {
    let mut text = String::from(MINIMAL);
    for i in 0..20_000 {
        text.push_str(&ext(&format!("{}", 200_000 + i), "correct-horse-battery"));
    }
    let c = ok(&text);
    assert_eq!(c.extensions.len(), 20_000);
    text.push_str(&ext("200005", "correct-horse-battery"));
    let (line, _, kind, shown) = fail(&text);
    // MINIMAL is 2 lines; extension i starts on line 3 + 3 i, its number one line later.
    assert!(
        matches!(
            kind,
            ConfigErrorKind::DuplicateExtension { first_line: 19, .. }
        ),
        "{shown}"
    );
    assert_eq!(line, 3 + 3 * 20_000 + 1);
}
