//! The admin endpoint exports what the appliance did: after a few OPTIONS and one garbage
//! datagram, `GET /metrics` carries the `voxgate_` series the issue names, with counts that
//! include that traffic, and `GET /api/v1/health` answers 200 with JSON (MON-02).

use std::time::Duration;

use voxgate_test_harness::{default_config, wait_until, Metrics, Voxgate};

const BIN: &str = env!("CARGO_BIN_EXE_voxgate");
const PROBES: u32 = 5;

#[test]
fn metrics_and_health() {
    let voxgate = Voxgate::start(BIN, &default_config());
    for _ in 0..PROBES {
        assert_eq!(voxgate.options_udp().code, 200);
    }
    // Not SIP at all: dropped and counted, never answered.
    let garbage = voxgate.send_and_collect(
        b"\x16\x03\x01 this is not SIP\r\n\r\n",
        Duration::from_millis(500),
    );
    assert!(garbage.is_empty(), "garbage was answered: {garbage:?}");

    let options = [("method", "OPTIONS"), ("transport", "udp")];
    let ok = [("code", "200")];
    // Counters may be exported from a snapshot: poll until the traffic shows up (a failure
    // deadline, not a speed bound).
    let mut metrics = Metrics::default();
    let counted = wait_until(Duration::from_secs(15), || {
        metrics = voxgate.metrics();
        metrics.value("voxgate_sip_requests_total", &options) >= Some(f64::from(PROBES))
            && metrics.value("voxgate_sip_responses_total", &ok) >= Some(f64::from(PROBES))
            && metrics.value("voxgate_sip_dropped_total", &[]) >= Some(1.0)
    });
    let page = &metrics.text;
    assert!(
        counted,
        "want voxgate_sip_requests_total{{method=\"OPTIONS\",transport=\"udp\"}} >= {PROBES}, \
         voxgate_sip_responses_total{{code=\"200\"}} >= {PROBES}, \
         voxgate_sip_dropped_total >= 1; got:\n{page}"
    );

    // Every dropped series says why.
    for s in metrics.series("voxgate_sip_dropped_total") {
        assert!(
            s.labels.iter().any(|(k, v)| k == "reason" && !v.is_empty()),
            "dropped series without a reason label: {s:?}"
        );
    }

    let build = metrics.series("voxgate_build_info");
    assert!(
        build.iter().any(|s| s.value == 1.0),
        "voxgate_build_info missing or not 1:\n{page}"
    );
    assert!(
        build.iter().any(|s| s
            .labels
            .iter()
            .any(|(k, v)| k == "version" && !v.is_empty())),
        "voxgate_build_info has no version label:\n{page}"
    );
    assert_eq!(
        metrics.type_of("voxgate_sip_requests_total"),
        Some("counter"),
        "{page}"
    );
    assert_eq!(
        metrics.type_of("voxgate_sip_responses_total"),
        Some("counter"),
        "{page}"
    );
    assert_eq!(
        metrics.type_of("voxgate_sip_dropped_total"),
        Some("counter"),
        "{page}"
    );
    // No reload happened yet: the family must still be exported (with zero series values),
    // so dashboards and alerts see it from the first scrape.
    assert_eq!(
        metrics.type_of("voxgate_config_reloads_total"),
        Some("counter"),
        "{page}"
    );
    assert!(
        !metrics.series("voxgate_config_reloads_total").is_empty(),
        "voxgate_config_reloads_total has no series before the first reload:\n{page}"
    );
    assert_eq!(
        metrics.type_of("voxgate_transactions_active"),
        Some("gauge"),
        "{page}"
    );
    let active = metrics.value("voxgate_transactions_active", &[]);
    assert!(
        active.is_some_and(|v| v >= 0.0),
        "voxgate_transactions_active: {active:?}\n{page}"
    );
    // ARCHITECTURE.md: every name is prefixed `voxgate_` (process metrics included).
    for s in &metrics.samples {
        assert!(
            s.name.starts_with("voxgate_"),
            "metric without the voxgate_ prefix: {}\n{page}",
            s.name
        );
    }

    let (status, body) = voxgate.admin_http("GET", "/api/v1/health");
    assert_eq!(status, 200, "health: {body}");
    let health: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("health is not JSON ({e}): {body}"));
    assert!(health.is_object(), "health JSON is not an object: {body}");
}
