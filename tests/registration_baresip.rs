//! baresip (Debian package `baresip`), a real softphone, registers to the running binary
//! with a configuration this test writes: the admin API lists the binding with baresip's
//! flow and user agent, and when baresip quits it unregisters. A second test follows the
//! README's "Register a softphone" section against the demo configuration (SIG-01, SIG-14).
//!
//! baresip runs headless: a config file with no audio, console or control modules, SIP on
//! an ephemeral loopback port, and `-t` as a failure deadline. Debian 12's baresip 1.0
//! (libre 1.x) answers MD5 challenges only and gives up ("Function not implemented") on a
//! 401 that also carries a SHA-256 challenge, so the voxgate it registers to offers MD5
//! only.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use voxgate_test_harness::{require_tool, test_config, wait_until, RegistrationEntry, Voxgate};

const BIN: &str = env!("CARGO_BIN_EXE_voxgate");
const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/demo.toml");
/// Failure deadline for each wait (registration, unregistration, exit).
const LIMIT: Duration = Duration::from_secs(30);

/// A headless baresip configuration: SIP on an ephemeral loopback port, G.711 only (no audio
/// device), and the account module that reads `accounts`.
const BARESIP_CONFIG: &str = "\
poll_method\t\tepoll\n\
sip_listen\t\t127.0.0.1:0\n\
module_path\t\t/usr/lib/baresip/modules\n\
module\t\t\tg711.so\n\
module_app\t\taccount.so\n";

/// A running baresip with its config directory; killed on drop if still running.
struct Baresip {
    child: Child,
    dir: tempfile::TempDir,
}

impl Baresip {
    fn start(accounts_line: &str) -> Baresip {
        let dir = tempfile::tempdir().expect("a temp dir can be created");
        std::fs::write(dir.path().join("config"), BARESIP_CONFIG).expect("writable");
        std::fs::write(dir.path().join("accounts"), format!("{accounts_line}\n"))
            .expect("writable");
        let log = |name: &str| {
            Stdio::from(std::fs::File::create(dir.path().join(name)).expect("writable"))
        };
        let child = Command::new("baresip")
            .arg("-f")
            .arg(dir.path())
            // Quit on its own if the test never stops it (a failure deadline).
            .args(["-t", "120"])
            .stdin(Stdio::null())
            .stdout(log("stdout.log"))
            .stderr(log("stderr.log"))
            .spawn()
            .expect("baresip runs");
        Baresip { child, dir }
    }

    fn output(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "---- baresip stdout ----\n{}---- baresip stderr ----\n{}",
            read("stdout.log"),
            read("stderr.log")
        )
    }

    /// SIGTERM (baresip unregisters before it exits) and wait for the exit.
    fn quit(&mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("the `kill` command runs");
        assert!(status.success(), "kill -TERM baresip");
        let exited = wait_until(LIMIT, || matches!(self.child.try_wait(), Ok(Some(_))));
        assert!(exited, "baresip did not quit:\n{}", self.output());
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.output());
        }
    }
}

/// Waits for `extension` to be listed with baresip's user agent; returns its binding.
fn wait_for_baresip(voxgate: &Voxgate, baresip: &Baresip, extension: &str) -> RegistrationEntry {
    let mut found = None;
    let listed = wait_until(LIMIT, || {
        // libre's answer to a challenge algorithm it does not know: no retry will help.
        assert!(
            !baresip
                .output()
                .contains("Register: Function not implemented"),
            "baresip gave up on voxgate's challenge: Debian 12's baresip 1.0 answers MD5 \
             only and fails on a 401 that also offers SHA-256; the config must set \
             [auth] algorithms = [\"MD5\"]\n{}",
            baresip.output()
        );
        found = voxgate.registrations().into_iter().find(|r| {
            r.extension == extension
                && r.user_agent
                    .as_deref()
                    .is_some_and(|ua| ua.starts_with("baresip"))
        });
        found.is_some()
    });
    assert!(
        listed,
        "extension {extension} never listed with baresip's user agent; registrations: {:?}\n{}\n\
         voxgate output:\n{}",
        voxgate.registrations(),
        baresip.output(),
        voxgate.output()
    );
    found.expect("waited for it")
}

/// Registered, listed with the flow baresip used; after quitting, unregistered.
fn register_list_quit(voxgate: &Voxgate, accounts_line: &str, extension: &str) {
    let mut baresip = Baresip::start(accounts_line);
    let binding = wait_for_baresip(voxgate, &baresip, extension);
    assert_eq!(binding.transport, "udp", "{binding:?}");
    assert!(
        binding.source.ip().is_loopback()
            && binding.contact.contains(&format!("@{}", binding.source)),
        "baresip listens on 127.0.0.1 and registers that address: {binding:?}"
    );
    assert!(binding.expires_in > 0, "{binding:?}");

    baresip.quit();
    let gone = wait_until(LIMIT, || {
        !voxgate
            .registrations()
            .iter()
            .any(|r| r.extension == extension)
    });
    assert!(
        gone,
        "baresip's binding outlived its unregistration: {:?}\n{}",
        voxgate.registrations(),
        baresip.output()
    );
}

#[test]
fn baresip_registers_is_listed_with_its_user_agent_and_unregisters() {
    if !require_tool("baresip", "baresip") {
        return;
    }
    let voxgate = Voxgate::start(
        BIN,
        &test_config(
            &["udp:127.0.0.1:0"],
            "[auth]\nalgorithms = [\"MD5\"]\n\n\
             [[extension]]\nnumber = \"1000\"\npassword = \"softphone-secret-1000\"\n",
        ),
    );
    let line = format!(
        "<sip:1000@voxgate.test;transport=udp>;auth_pass=softphone-secret-1000;\
         outbound=\"sip:{};transport=udp\";regint=600",
        voxgate.udp()
    );
    register_list_quit(&voxgate, &line, "1000");
}

/// `configs/demo.toml` on ephemeral ports with a private store, otherwise unchanged.
fn demo_config() -> String {
    let demo = std::fs::read_to_string(DEMO).expect("configs/demo.toml is readable");
    let mut config = demo.clone();
    for (from, to) in [
        ("\"udp:127.0.0.1:5060\"", "\"udp:127.0.0.1:0\""),
        ("\"tcp:127.0.0.1:5060\"", "\"tcp:127.0.0.1:0\""),
        ("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\""),
        ("path = \"var/voxgate\"", "path = \"@DIR@/store\""),
    ] {
        assert!(
            config.contains(from),
            "configs/demo.toml no longer has {from}; update this test"
        );
        config = config.replace(from, to);
    }
    config
}

/// The accounts line the README tells a new user to write (the first line that starts with
/// `<sip:` and sets `auth_pass`).
fn readme_accounts_line() -> String {
    let readme = std::fs::read_to_string(README).expect("README.md is readable");
    readme
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("<sip:") && l.contains("auth_pass="))
        .unwrap_or_else(|| panic!("README.md gives no baresip accounts line"))
        .to_owned()
}

#[test]
fn baresip_registers_to_the_demo_config_as_the_readme_says() {
    if !require_tool("baresip", "baresip") {
        return;
    }
    let voxgate = Voxgate::start(BIN, &demo_config());
    // The README's line names the demo's fixed address; the test's voxgate is on port 0.
    let line = readme_accounts_line().replace("127.0.0.1:5060", &voxgate.udp().to_string());
    let extension = line
        .strip_prefix("<sip:")
        .and_then(|l| l.split('@').next())
        .unwrap_or_else(|| panic!("no extension in {line}"))
        .to_owned();
    register_list_quit(&voxgate, &line, &extension);
}

#[test]
fn the_readme_line_and_demo_config_are_found() {
    // Independent of baresip: the README section and the demo config stay in step.
    let line = readme_accounts_line();
    assert!(line.contains("127.0.0.1:5060"), "{line}");
    let demo = std::fs::read_to_string(DEMO).expect("readable");
    let password = line
        .split(';')
        .find_map(|p| p.strip_prefix("auth_pass="))
        .unwrap_or_else(|| panic!("no auth_pass in {line}"));
    assert!(
        demo.contains(&format!("password = \"{password}\"")),
        "the README's password is not the demo's"
    );
    let _ = demo_config();
}
