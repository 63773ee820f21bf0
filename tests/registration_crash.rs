//! kill -9 in the middle of a registration load, then a restart on the same store: every
//! binding whose REGISTER was answered 200 is listed again, with its flow (issue 3: "a kill -9
//! loses no registration that was answered 200"; SIG-02).
//!
//! The load is the harness's own pipelined UDP client (64 registrations in flight, each
//! REGISTER → 401 → REGISTER with SHA-256 credentials → 200), so the test knows exactly which
//! registrations were confirmed before the process died. Bindings voxgate stored but whose
//! 200 never left may be listed too; that is allowed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use voxgate_test_harness::{
    config_with_store, extension_tables, granted_expires, numbered_extensions, register_load,
    wait_until, DigestAlgorithm, LoadControl, RegisterSession, UdpClient, Voxgate,
};

const BIN: &str = env!("CARGO_BIN_EXE_voxgate");
const DOMAIN: &str = "voxgate.test";
const FIRST: u32 = 3000;
const COUNT: u32 = 2000;
/// Registrations confirmed before the kill: about a third of the load.
const KILL_AFTER: usize = 600;
/// Failure deadline for the load and each wait (debug build, loaded 2-core CI).
const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn every_registration_answered_200_survives_kill_9() {
    let store = tempfile::tempdir().expect("a temp dir can be created");
    let store_path = store.path().join("store");
    std::fs::create_dir_all(&store_path).expect("the temp dir is writable");
    let extensions = numbered_extensions(FIRST, COUNT);
    let config = config_with_store(
        &["udp:127.0.0.1:0"],
        &store_path,
        &format!(
            // The load comes from one address far faster than the per-source flood limit
            // (SEC-13), as from a load balancer: allow-listed.
            "[security]\nallow = [\"127.0.0.1/32\"]\n\n\
             # No keep-alive to the test's socket: the restored bindings must not depend on it.\n\
             [nat]\nkeepalive_interval = \"1h\"\n\n{}",
            extension_tables(&extensions)
        ),
    );
    let mut first = Voxgate::start(BIN, &config);
    let target = first.udp();
    // The socket lives to the end of the test, so the flows the store restores still exist.
    let client = UdpClient::bind("127.0.0.1:0".parse().expect("literal address"));
    let source = client.local_addr();
    let sessions: Vec<RegisterSession> = extensions
        .iter()
        .map(|e| {
            let mut s = RegisterSession::new(e, DOMAIN, "UDP", source);
            s.prefer = DigestAlgorithm::Sha256;
            s
        })
        .collect();
    let control = LoadControl::default();

    let report = std::thread::scope(|scope| {
        let load =
            scope.spawn(|| register_load(&client, target, sessions, 3600, 64, &control, LIMIT));
        let reached = wait_until(LIMIT, || {
            control.confirmed.load(Ordering::SeqCst) >= KILL_AFTER || load.is_finished()
        });
        assert!(
            reached,
            "fewer than {KILL_AFTER} registrations confirmed within {LIMIT:?}:\n{}",
            first.output()
        );
        first.stop_with("KILL");
        control.stop.store(true, Ordering::SeqCst);
        load.join().expect("the load thread does not panic")
    });
    let confirmed = report.confirmed.len();
    assert!(
        report.refused.is_empty(),
        "registrations refused before the kill: {:?}",
        report
            .refused
            .iter()
            .map(|(s, r)| (&s.extension, r))
            .collect::<Vec<_>>()
    );
    assert!(
        confirmed >= KILL_AFTER && !report.unanswered.is_empty(),
        "the kill must land in the middle of the load: {confirmed} confirmed, {} unanswered",
        report.unanswered.len()
    );
    for (session, response) in &report.confirmed {
        assert_eq!(
            granted_expires(response, &session.contact),
            Some(3600),
            "{response:?}"
        );
    }

    let second = Voxgate::start(BIN, &config);
    let listed = second.wait_for_registrations(LIMIT, "every confirmed binding", |list| {
        list.len() >= confirmed
    });
    eprintln!(
        "{confirmed} confirmed before kill -9, {} unanswered; {} listed after restart",
        report.unanswered.len(),
        listed.len()
    );
    let mut missing = Vec::new();
    for (session, _) in &report.confirmed {
        let found = listed.iter().find(|r| r.extension == session.extension);
        match found {
            Some(r)
                if r.contact == session.contact
                    && r.source == source
                    && r.transport == "udp"
                    && r.user_agent.as_deref() == Some("voxgate-test-harness")
                    && r.expires_in > 0 => {}
            other => missing.push((session.extension.clone(), other.cloned())),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {confirmed} bindings answered 200 are missing or changed after kill -9 and \
         restart (extension, what is listed): {:?}\nvoxgate output after restart:\n{}",
        missing.len(),
        missing.iter().take(20).collect::<Vec<_>>(),
        second.output()
    );
    assert!(
        listed.len() <= COUNT as usize,
        "more bindings than extensions: {}",
        listed.len()
    );
    let active = second
        .metrics()
        .value("voxgate_registrations_active", &[])
        .unwrap_or(0.0);
    assert!(
        active >= confirmed as f64,
        "voxgate_registrations_active {active}"
    );
}
