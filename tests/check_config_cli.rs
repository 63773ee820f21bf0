//! `voxgate check-config FILE` (SIG-26): exit 0 for a valid file; for an invalid one exit 2
//! and print `file:line:col: message` on stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn check_config(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_voxgate"))
        .arg("check-config")
        .arg(path)
        .output()
        .expect("the voxgate binary runs")
}

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn check_config_accepts_shipped_files_without_certificates() {
    for name in [
        "demo.toml",
        "reference.toml",
        "office-pbx.toml",
        "media-relay.toml",
    ] {
        let out = check_config(&configs_dir().join(name));
        assert!(
            out.status.success(),
            "{name}: {:?}\n{}",
            out.status,
            stderr(&out)
        );
    }
}

#[test]
fn check_config_reports_file_line_col_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[sip]\ndomain = \"pbx.example.test\"\n\n[media]\nworkers = 0\n",
    )
    .expect("write");
    let out = check_config(&path);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let expected = format!(
        "{}:5:11: `media.workers` must be between 1 and 1024, not 0",
        path.display()
    );
    assert!(
        stderr(&out).lines().any(|l| l == expected),
        "expected the line {expected:?} in stderr:\n{}",
        stderr(&out)
    );
}

#[test]
fn check_config_rejects_unknown_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("typo.toml");
    std::fs::write(
        &path,
        "[sip]\ndomain = \"pbx.example.test\"\nlisten_on = []\n",
    )
    .expect("write");
    let out = check_config(&path);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let prefix = format!("{}:3:1: ", path.display());
    assert!(
        stderr(&out)
            .lines()
            .any(|l| l.starts_with(&prefix) && l.contains("listen_on")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_config_reports_missing_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent.toml");
    let out = check_config(&path);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{}: ", path.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_config_checks_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certified = rcgen::generate_simple_self_signed(vec!["sbc.example.test".to_owned()])
        .expect("rcgen generates a certificate");
    let cert = dir.path().join("sbc.crt");
    let key = dir.path().join("sbc.key");
    std::fs::write(&cert, certified.cert.pem()).expect("write");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write");
    let config = |cert: &Path, key: &Path| {
        format!(
            "[sip]\nlisten = [\"tls:127.0.0.1:5061\"]\ndomain = \"sbc.example.test\"\n\
             [tls]\ncert = {}\nkey = {}\n",
            toml::Value::String(cert.display().to_string()),
            toml::Value::String(key.display().to_string())
        )
    };

    let good = dir.path().join("good.toml");
    std::fs::write(&good, config(&cert, &key)).expect("write");
    let out = check_config(&good);
    assert!(out.status.success(), "{}", stderr(&out));

    // The key file where the certificate belongs: reported at tls.cert (line 5, column 8).
    let bad = dir.path().join("bad-cert.toml");
    std::fs::write(&bad, config(&key, &key)).expect("write");
    let out = check_config(&bad);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let prefix = format!("{}:5:8: ", bad.display());
    assert!(
        stderr(&out).lines().any(|l| l.starts_with(&prefix)),
        "{}",
        stderr(&out)
    );
}
