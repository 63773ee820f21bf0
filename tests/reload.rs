//! Configuration reload (SIG-26, ARCHITECTURE "Reload"): a bad file is refused by SIGHUP and
//! by `POST /api/v1/reload`, the running config keeps serving, the failure is counted in
//! `voxgate_config_reloads_total{result="error"}` and reported as `file:line:col`; a good file
//! then takes effect through both paths; SIGTERM afterwards exits 0.

use std::time::Duration;

use voxgate_test_harness::{new_branch, request, wait_until, UdpClient, Voxgate};

const BIN: &str = env!("CARGO_BIN_EXE_voxgate");

/// A full config with the given domain; `extra_sip_line` goes on line 4, inside `[sip]`.
fn config(domain: &str, extra_sip_line: &str) -> String {
    format!(
        "[sip]\n\
         listen = [\"udp:127.0.0.1:0\", \"tcp:127.0.0.1:0\"]\n\
         domain = \"{domain}\"\n\
         {extra_sip_line}\n\
         \n\
         [admin]\n\
         listen = \"127.0.0.1:0\"\n\
         \n\
         [store]\n\
         path = \"@DIR@/store\"\n"
    )
}

/// The final response code to `OPTIONS sip:DOMAIN` (no user part) over UDP.
fn options_to_domain(voxgate: &Voxgate, domain: &str) -> u16 {
    let client = UdpClient::bind_loopback(voxgate.udp());
    let msg = request(
        "OPTIONS",
        &format!("sip:{domain}"),
        "UDP",
        client.local_addr(),
        &new_branch(),
    );
    voxgate.request_with(&client, msg.as_bytes()).code
}

fn reloads(voxgate: &Voxgate, result: &str) -> f64 {
    voxgate
        .metrics()
        .value("voxgate_config_reloads_total", &[("result", result)])
        .unwrap_or(0.0)
}

/// Counters change asynchronously after a signal: poll (a failure deadline, not a bound).
fn wait_for_reloads(voxgate: &Voxgate, result: &str, at_least: f64) {
    let reached = wait_until(Duration::from_secs(15), || {
        reloads(voxgate, result) >= at_least
    });
    assert!(
        reached,
        "voxgate_config_reloads_total{{result=\"{result}\"}} did not reach {at_least}:\n{}",
        voxgate.metrics().text
    );
}

#[test]
fn bad_reload_is_refused_and_good_reload_applies() {
    let mut voxgate = Voxgate::start(BIN, &config("voxgate.test", ""));
    assert_eq!(voxgate.options_udp().code, 200);
    assert_eq!(options_to_domain(&voxgate, "voxgate.test"), 200);
    // Not (yet) voxgate's identity: a request for another domain, not for voxgate itself.
    let foreign = options_to_domain(&voxgate, "voxgate2.test");
    assert_ne!(
        foreign, 200,
        "OPTIONS to a foreign domain answered as if for voxgate"
    );

    // A broken file (unknown key on line 4), by signal: refused and counted.
    voxgate.rewrite_config(&config("voxgate2.test", "no_such_key = true"));
    voxgate.signal("HUP");
    wait_for_reloads(&voxgate, "error", 1.0);
    assert_eq!(voxgate.options_udp().code, 200);
    assert_eq!(
        options_to_domain(&voxgate, "voxgate.test"),
        200,
        "the old config must keep serving after a refused reload"
    );
    assert_eq!(options_to_domain(&voxgate, "voxgate2.test"), foreign);

    // The same file through the API: refused, with file:line:col in a JSON error.
    let (status, body) = voxgate.admin_http("POST", "/api/v1/reload");
    assert!(
        (400..600).contains(&status),
        "POST /api/v1/reload of a broken file: status {status}, body {body}"
    );
    let json: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("reload error is not JSON ({e}): {body}"));
    let location = "config.toml:4:";
    assert!(
        json.to_string().contains(location),
        "reload error does not point at {location}COL: {body}"
    );
    wait_for_reloads(&voxgate, "error", 2.0);
    assert_eq!(options_to_domain(&voxgate, "voxgate.test"), 200);
    assert!(voxgate.is_running());

    // Fixed file (new domain) through the API: applied.
    voxgate.rewrite_config(&config("voxgate2.test", ""));
    let (status, body) = voxgate.admin_http("POST", "/api/v1/reload");
    assert_eq!(status, 200, "POST /api/v1/reload of a good file: {body}");
    serde_json::from_str::<serde_json::Value>(&body)
        .unwrap_or_else(|e| panic!("reload answer is not JSON ({e}): {body}"));
    wait_for_reloads(&voxgate, "ok", 1.0);
    assert_eq!(
        options_to_domain(&voxgate, "voxgate2.test"),
        200,
        "the new sip.domain must be voxgate's identity after the reload"
    );

    // A good file by signal: applied too.
    voxgate.rewrite_config(&config("voxgate3.test", ""));
    voxgate.signal("HUP");
    wait_for_reloads(&voxgate, "ok", 2.0);
    assert_eq!(options_to_domain(&voxgate, "voxgate3.test"), 200);
    assert_eq!(voxgate.options_udp().code, 200);
    assert_eq!(
        reloads(&voxgate, "error"),
        2.0,
        "no further failures counted"
    );

    let status = voxgate.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM must exit 0, got {status:?}"
    );
}
