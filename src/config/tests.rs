//! Config tests: every shipped file parses, `reference.toml` matches the defaults, an unknown
//! key in any table is rejected at its position (STYLE.md §11), and each validation error
//! points at the offending value.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use voxgate_controlplane::config::{LocalListener, TimerConfig};
use voxgate_controlplane::sip::Transport;

use super::error::ConfigErrorKind;
use super::value::{
    DomainError, DurationError, ListenError, NumberError, PasswordError, PortRangeError,
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
}

/// STYLE.md §11: an unknown key in any table of reference.toml is rejected, naming the key,
/// at the key's line and column.
#[test]
fn config_unknown_key_in_every_reference_table_is_rejected() {
    let mut text = reference_text();
    // reference.toml shows [[extension]] commented out; add one so that table is covered.
    text.push_str("\n[[extension]]\nnumber = \"100\"\npassword = \"a-long-enough-secret\"\n");
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
        "[security]",
        "[limits]",
        "[tls]",
        "[log]",
        "[[extension]]",
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
            ConfigErrorKind::MissingKey {
                key: "extension.password",
                ..
            }
        ),
        "{shown}"
    );
    assert_eq!((line, column), (3, 1));
    // An unknown top-level table.
    let text = format!("{MINIMAL}[registrar]\nmax_contacts = 10\n");
    let (line, _, _, shown) = fail(&text);
    assert_eq!(line, 3, "{shown}");
    assert!(shown.contains("registrar"), "{shown}");
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
            format!("{MINIMAL}[limits]\npartial_message_timeout = \"2d\"\n"),
            "\"2d\"",
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
    assert_eq!(c.extensions[0].password.expose(), "correct-horse-battery");
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
        "{MINIMAL}{}voicemail_pin = \"1234\"\n",
        ext("100", "correct-horse-battery")
    );
    let (line, column, _, shown) = fail(&text);
    assert_eq!((line, column), pos(&text, "voicemail_pin", 0));
    assert!(shown.contains("voicemail_pin"), "{shown}");
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
