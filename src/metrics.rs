//! Prometheus export for the whole binary (FEATURES MON-02, issue 2 item 7).
//!
//! Owns the one `prometheus::Registry` of the process and every metric name, all prefixed
//! `voxgate_`. Libraries count, the binary exports (STYLE 12): the sans-IO endpoint keeps
//! plain counters in [`EndpointStats`]; the SIP driver hands a snapshot to
//! [`Metrics::publish_sip`] a few times a second, and a custom collector turns the latest
//! snapshot into metric families at scrape time, so the packet path never touches an
//! atomic shared with Prometheus. The same snapshot carries the registrar and edge-security
//! numbers of M3 (registrations, bans, overload rejections, authentication failures by
//! reason), so they need no publishing of their own.
//!
//! Does not own: serving HTTP (`admin`), measuring disk space (`admin` sets
//! [`Metrics::store_disk_free_ratio`] when it checks the store), or deciding when a reload
//! succeeded (`main` increments [`Metrics::config_reloads`]).

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use voxgate_controlplane::stats::EndpointStats;

/// Prefix of every metric name, also given to the process collector as its namespace.
const NAMESPACE: &str = "voxgate";

/// `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Reasons a stream connection is refused or closed early; label values of
/// `voxgate_sip_connections_rejected_total{reason}`. The driver may use others, these are
/// pre-created at zero so dashboards and alerts see the series before the first event.
pub const REJECT_REASONS: [&str; 5] = [
    "per_ip_limit",
    "total_limit",
    "tls_handshake",
    "idle",
    "partial_timeout",
];

/// Why the metric export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A family could not be encoded in the text format (a bug in a collector).
    #[error("encoding metrics in the Prometheus text format: {0}")]
    Encode(#[source] prometheus::Error),
}

/// Every metric of the process. Shared as `Arc<Metrics>`: the driver thread updates the
/// transport metrics and publishes SIP snapshots, the admin thread renders.
pub struct Metrics {
    registry: Registry,
    /// `voxgate_config_reloads_total{result="ok"|"error"}`; incremented by whoever runs a
    /// reload (SIGHUP or `POST /api/v1/reload`).
    pub config_reloads: IntCounterVec,
    /// `voxgate_sip_connections{transport="tcp"|"tls"}`: stream connections open now.
    pub tcp_connections: IntGaugeVec,
    /// `voxgate_sip_connections_rejected_total{reason}`: see [`REJECT_REASONS`].
    pub connections_rejected: IntCounterVec,
    /// `voxgate_tls_handshake_failures_total`.
    pub tls_handshake_failures: IntCounter,
    /// `voxgate_store_disk_free_ratio`: free fraction (0..=1) of the filesystem holding the
    /// store, as last measured by the admin health/metrics handlers.
    pub store_disk_free_ratio: Gauge,
    /// `voxgate_blocklist_feed_errors_total{feed}`: blocklist feed refreshes that failed
    /// (the feed's previous list stayed), by feed (SEC-08).
    pub blocklist_feed_errors: IntCounterVec,
    /// `voxgate_blocklist_feed_bad_lines_total{feed}`: feed lines skipped as not an
    /// address or network, by feed (SEC-08).
    pub blocklist_feed_bad_lines: IntCounterVec,
    /// The latest SIP endpoint snapshot, read by [`ScrapeTimeCollector`].
    sip: Arc<ArcSwap<EndpointStats>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The registry's Debug dumps every collector; a name is enough in logs.
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric. Panics only on a programming error in this
    /// module (an invalid or duplicate metric name), which the unit tests exercise.
    pub fn new() -> Metrics {
        let registry = Registry::new();

        let build_info = IntGaugeVec::new(
            Opts::new(
                "voxgate_build_info",
                "Build of the running binary; the value is always 1.",
            ),
            &["version", "commit"],
        )
        .expect("static metric definition is valid");
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                // Set by the build environment when it knows the commit; absent in a plain
                // `cargo build` of a source tree.
                option_env!("VOXGATE_GIT_COMMIT").unwrap_or("unknown"),
            ])
            .set(1);

        let config_reloads = IntCounterVec::new(
            Opts::new(
                "voxgate_config_reloads_total",
                "Configuration reloads attempted, by result.",
            ),
            &["result"],
        )
        .expect("static metric definition is valid");
        for result in ["ok", "error"] {
            config_reloads.with_label_values(&[result]);
        }

        let tcp_connections = IntGaugeVec::new(
            Opts::new(
                "voxgate_sip_connections",
                "SIP stream connections open now, by transport.",
            ),
            &["transport"],
        )
        .expect("static metric definition is valid");
        for transport in ["tcp", "tls"] {
            tcp_connections.with_label_values(&[transport]);
        }

        let connections_rejected = IntCounterVec::new(
            Opts::new(
                "voxgate_sip_connections_rejected_total",
                "SIP stream connections refused or closed by a limit, by reason.",
            ),
            &["reason"],
        )
        .expect("static metric definition is valid");
        for reason in REJECT_REASONS {
            connections_rejected.with_label_values(&[reason]);
        }

        let tls_handshake_failures = IntCounter::new(
            "voxgate_tls_handshake_failures_total",
            "TLS handshakes that failed (protocol version, certificate, framing).",
        )
        .expect("static metric definition is valid");

        let store_disk_free_ratio = Gauge::new(
            "voxgate_store_disk_free_ratio",
            "Free fraction (0 to 1) of the filesystem holding the store.",
        )
        .expect("static metric definition is valid");

        let blocklist_feed_errors = IntCounterVec::new(
            Opts::new(
                "voxgate_blocklist_feed_errors_total",
                "Blocklist feed refreshes that failed, by feed; the feed's previous list stays.",
            ),
            &["feed"],
        )
        .expect("static metric definition is valid");
        let blocklist_feed_bad_lines = IntCounterVec::new(
            Opts::new(
                "voxgate_blocklist_feed_bad_lines_total",
                "Blocklist feed lines skipped as not an address or network, by feed.",
            ),
            &["feed"],
        )
        .expect("static metric definition is valid");

        let sip = Arc::new(ArcSwap::from_pointee(EndpointStats::default()));
        #[expect(
            clippy::disallowed_methods,
            reason = "the binary owns the clock; uptime counts from metrics creation at start"
        )]
        let started = Instant::now();
        let scrape_time = ScrapeTimeCollector::new(Arc::clone(&sip), started);

        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(build_info),
            Box::new(config_reloads.clone()),
            Box::new(tcp_connections.clone()),
            Box::new(connections_rejected.clone()),
            Box::new(tls_handshake_failures.clone()),
            Box::new(store_disk_free_ratio.clone()),
            Box::new(blocklist_feed_errors.clone()),
            Box::new(blocklist_feed_bad_lines.clone()),
            Box::new(scrape_time),
        ];
        for collector in collectors {
            registry
                .register(collector)
                .expect("metric names are unique within this module");
        }
        register_process_collector(&registry);

        Metrics {
            registry,
            config_reloads,
            tcp_connections,
            connections_rejected,
            tls_handshake_failures,
            store_disk_free_ratio,
            blocklist_feed_errors,
            blocklist_feed_bad_lines,
            sip,
        }
    }

    /// Stores a snapshot of the SIP endpoint's counters; the next scrape renders it.
    /// Called by the driver thread a few times a second; costs one clone and one pointer
    /// swap, never blocks on a scrape in progress.
    pub fn publish_sip(&self, stats: &EndpointStats) {
        self.sip.store(Arc::new(stats.clone()));
    }

    /// All metrics in the Prometheus text exposition format 0.0.4.
    pub fn try_render(&self) -> Result<String, MetricsError> {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .map_err(MetricsError::Encode)
    }

    /// Like [`Metrics::try_render`]; an encoding failure (a bug) is logged and yields an
    /// empty exposition rather than a panic in the admin thread.
    #[allow(
        dead_code,
        reason = "API for callers without an error path; admin uses try_render"
    )]
    pub fn render(&self) -> String {
        self.try_render().unwrap_or_else(|error| {
            tracing::error!(%error, "metrics export failed");
            String::new()
        })
    }
}

/// Process CPU seconds, resident memory, open and max file descriptors, start time and
/// threads, read from `/proc/self` at scrape time. Linux only: the prometheus crate's
/// collector reads procfs.
#[cfg(target_os = "linux")]
fn register_process_collector(registry: &Registry) {
    use prometheus::process_collector::ProcessCollector;

    // A pid always fits in pid_t on Linux (pid_max is at most 2^22).
    let Ok(pid) = i32::try_from(std::process::id()) else {
        tracing::warn!("process id does not fit pid_t; process metrics disabled");
        return;
    };
    registry
        .register(Box::new(ProcessCollector::new(pid, NAMESPACE)))
        .expect("process metric names are unique within this module");
}

#[cfg(not(target_os = "linux"))]
fn register_process_collector(_registry: &Registry) {}

/// Metrics whose value exists only when someone looks: the SIP counters of the latest
/// endpoint snapshot, and uptime. Families are built fresh on each collect from the
/// snapshot, so a scrape sees one consistent snapshot and the driver never waits.
struct ScrapeTimeCollector {
    stats: Arc<ArcSwap<EndpointStats>>,
    started: Instant,
    descs: Vec<Desc>,
}

impl ScrapeTimeCollector {
    fn new(stats: Arc<ArcSwap<EndpointStats>>, started: Instant) -> Self {
        // Describe with the same definitions collect() uses, so they cannot drift.
        let empty = Families::new();
        let descs = empty.descs();
        ScrapeTimeCollector {
            stats,
            started,
            descs,
        }
    }
}

/// The families of [`ScrapeTimeCollector`], built per scrape.
struct Families {
    requests: IntCounterVec,
    responses: IntCounterVec,
    dropped: IntCounterVec,
    transactions_active: IntGauge,
    registrations_active: IntGauge,
    extensions_registered: IntGauge,
    bans_active: IntGauge,
    blocklist_entries: IntGauge,
    alg_suspected: IntCounter,
    overload_rejections: IntCounter,
    auth_failures: IntCounterVec,
    uptime: Gauge,
}

impl Families {
    fn new() -> Self {
        Families {
            requests: IntCounterVec::new(
                Opts::new(
                    "voxgate_sip_requests_total",
                    "SIP requests received, by method and transport.",
                ),
                &["method", "transport"],
            )
            .expect("static metric definition is valid"),
            responses: IntCounterVec::new(
                Opts::new(
                    "voxgate_sip_responses_total",
                    "SIP responses sent by voxgate, by status code.",
                ),
                &["code"],
            )
            .expect("static metric definition is valid"),
            dropped: IntCounterVec::new(
                Opts::new(
                    "voxgate_sip_dropped_total",
                    "SIP messages dropped without an answer, by reason.",
                ),
                &["reason"],
            )
            .expect("static metric definition is valid"),
            transactions_active: IntGauge::new(
                "voxgate_transactions_active",
                "SIP transactions alive now.",
            )
            .expect("static metric definition is valid"),
            registrations_active: IntGauge::new(
                "voxgate_registrations_active",
                "Contact bindings held by the registrar now (SIG-02).",
            )
            .expect("static metric definition is valid"),
            extensions_registered: IntGauge::new(
                "voxgate_extensions_registered",
                "Extensions with at least one contact binding now.",
            )
            .expect("static metric definition is valid"),
            bans_active: IntGauge::new(
                "voxgate_bans_active",
                "Source addresses (IPv6: /64 networks) banned now (SEC-03, SEC-13).",
            )
            .expect("static metric definition is valid"),
            blocklist_entries: IntGauge::new(
                "voxgate_blocklist_entries",
                "Networks merged from blocklist feeds now (SEC-08).",
            )
            .expect("static metric definition is valid"),
            alg_suspected: IntCounter::new(
                "voxgate_sip_alg_suspected_total",
                "Requests that looked rewritten by a SIP ALG on their path (SIG-14).",
            )
            .expect("static metric definition is valid"),
            overload_rejections: IntCounter::new(
                "voxgate_overload_rejections_total",
                "New INVITE, REGISTER and SUBSCRIBE requests answered 503 for overload (SEC-15).",
            )
            .expect("static metric definition is valid"),
            auth_failures: IntCounterVec::new(
                Opts::new(
                    "voxgate_auth_failures_total",
                    "Failed digest authentications, by reason (never shown on the wire, SEC-14).",
                ),
                &["reason"],
            )
            .expect("static metric definition is valid"),
            uptime: Gauge::new(
                "voxgate_uptime_seconds",
                "Seconds since the metrics of this process were created (process start).",
            )
            .expect("static metric definition is valid"),
        }
    }

    fn descs(&self) -> Vec<Desc> {
        let mut descs = Vec::new();
        descs.extend(self.requests.desc().into_iter().cloned());
        descs.extend(self.responses.desc().into_iter().cloned());
        descs.extend(self.dropped.desc().into_iter().cloned());
        descs.extend(self.transactions_active.desc().into_iter().cloned());
        descs.extend(self.registrations_active.desc().into_iter().cloned());
        descs.extend(self.extensions_registered.desc().into_iter().cloned());
        descs.extend(self.bans_active.desc().into_iter().cloned());
        descs.extend(self.blocklist_entries.desc().into_iter().cloned());
        descs.extend(self.alg_suspected.desc().into_iter().cloned());
        descs.extend(self.overload_rejections.desc().into_iter().cloned());
        descs.extend(self.auth_failures.desc().into_iter().cloned());
        descs.extend(self.uptime.desc().into_iter().cloned());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = Vec::new();
        families.extend(self.requests.collect());
        families.extend(self.responses.collect());
        families.extend(self.dropped.collect());
        families.extend(self.transactions_active.collect());
        families.extend(self.registrations_active.collect());
        families.extend(self.extensions_registered.collect());
        families.extend(self.bans_active.collect());
        families.extend(self.blocklist_entries.collect());
        families.extend(self.alg_suspected.collect());
        families.extend(self.overload_rejections.collect());
        families.extend(self.auth_failures.collect());
        families.extend(self.uptime.collect());
        families
    }
}

impl Collector for ScrapeTimeCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let stats = self.stats.load();
        let families = Families::new();
        for (method, transport, n) in stats.requests() {
            families
                .requests
                .with_label_values(&[method, transport])
                .inc_by(n);
        }
        for (code, n) in stats.responses() {
            families
                .responses
                .with_label_values(&[code.to_string().as_str()])
                .inc_by(n);
        }
        for (reason, n) in stats.dropped() {
            families
                .dropped
                .with_label_values(&[reason.as_str()])
                .inc_by(n);
        }
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        families
            .transactions_active
            .set(gauge(stats.transactions_active));
        families
            .registrations_active
            .set(gauge(stats.registrations_active));
        families
            .extensions_registered
            .set(gauge(stats.aors_registered));
        families.bans_active.set(gauge(stats.bans_active));
        families
            .blocklist_entries
            .set(gauge(stats.blocklist_entries));
        families.alg_suspected.inc_by(stats.alg_suspected);
        families
            .overload_rejections
            .inc_by(stats.overload_rejections);
        // Every reason, zeros included, so alerts see the series before the first failure.
        for (reason, n) in stats.auth_failures() {
            families
                .auth_failures
                .with_label_values(&[reason])
                .inc_by(n);
        }
        families.uptime.set(self.started.elapsed().as_secs_f64());
        families.collect()
    }
}

#[cfg(test)]
mod tests {
    use voxgate_controlplane::auth::AuthFailure;
    use voxgate_controlplane::sip::{Method, Transport};
    use voxgate_controlplane::stats::DropReason;

    use super::*;

    /// The value of the sample line `series` (name plus labels, exactly as rendered).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                (name == series).then(|| value.parse().ok())?
            })
    }

    #[test]
    fn fresh_registry_has_static_families() {
        let metrics = Metrics::new();
        let text = metrics.render();
        for name in [
            "voxgate_build_info",
            "voxgate_config_reloads_total",
            "voxgate_sip_connections",
            "voxgate_sip_connections_rejected_total",
            "voxgate_tls_handshake_failures_total",
            "voxgate_store_disk_free_ratio",
            "voxgate_sip_dropped_total",
            "voxgate_transactions_active",
            "voxgate_registrations_active",
            "voxgate_extensions_registered",
            "voxgate_bans_active",
            "voxgate_overload_rejections_total",
            "voxgate_sip_alg_suspected_total",
            "voxgate_auth_failures_total",
            "voxgate_uptime_seconds",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} missing from\n{text}"
            );
        }
        assert_eq!(
            sample(&text, r#"voxgate_config_reloads_total{result="error"}"#),
            Some(0.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"voxgate_sip_connections_rejected_total{reason="per_ip_limit"}"#
            ),
            Some(0.0)
        );
        let build = text
            .lines()
            .find(|l| l.starts_with("voxgate_build_info{"))
            .expect("build info sample");
        assert!(build.contains(&format!(r#"version="{}""#, env!("CARGO_PKG_VERSION"))));
        assert!(build.ends_with(" 1"), "{build}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_are_prefixed() {
        let text = Metrics::new().render();
        for name in [
            "voxgate_process_cpu_seconds_total",
            "voxgate_process_resident_memory_bytes",
            "voxgate_process_open_fds",
            "voxgate_process_start_time_seconds",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}\n{text}");
        }
    }

    #[test]
    fn publish_sip_renders_snapshot() {
        let metrics = Metrics::new();
        let mut stats = EndpointStats::default();
        stats.count_request(&Method::Options, Transport::Udp);
        stats.count_request(&Method::Options, Transport::Udp);
        stats.count_request(&Method::Invite, Transport::Tls);
        stats.count_response(200);
        stats.count_response(200);
        stats.count_response(501);
        stats.count_drop(DropReason::Malformed);
        stats.transactions_active = 3;
        metrics.publish_sip(&stats);

        let text = metrics.render();
        assert_eq!(
            sample(
                &text,
                r#"voxgate_sip_requests_total{method="OPTIONS",transport="udp"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"voxgate_sip_requests_total{method="INVITE",transport="tls"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"voxgate_sip_responses_total{code="200"}"#),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, r#"voxgate_sip_responses_total{code="501"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"voxgate_sip_dropped_total{reason="malformed"}"#),
            Some(1.0)
        );
        // Every reason is present, zeros included.
        for reason in DropReason::ALL {
            let series = format!(
                r#"voxgate_sip_dropped_total{{reason="{}"}}"#,
                reason.as_str()
            );
            assert!(sample(&text, &series).is_some(), "{series} missing");
        }
        assert_eq!(sample(&text, "voxgate_transactions_active"), Some(3.0));

        // A later snapshot replaces, not adds to, the earlier one.
        stats.count_response(200);
        stats.transactions_active = 0;
        metrics.publish_sip(&stats);
        let text = metrics.render();
        assert_eq!(
            sample(&text, r#"voxgate_sip_responses_total{code="200"}"#),
            Some(3.0)
        );
        assert_eq!(sample(&text, "voxgate_transactions_active"), Some(0.0));
    }

    #[test]
    fn publish_sip_renders_registrar_and_security_numbers() {
        let metrics = Metrics::new();
        let text = metrics.render();
        for failure in AuthFailure::ALL {
            let series = format!(
                r#"voxgate_auth_failures_total{{reason="{}"}}"#,
                failure.as_str()
            );
            assert_eq!(sample(&text, &series), Some(0.0), "{series}");
        }
        assert_eq!(sample(&text, "voxgate_registrations_active"), Some(0.0));
        assert_eq!(
            sample(&text, "voxgate_overload_rejections_total"),
            Some(0.0)
        );

        let mut stats = EndpointStats::default();
        stats.registrations_active = 1000;
        stats.aors_registered = 400;
        stats.bans_active = 2;
        stats.overload_rejections = 17;
        stats.count_auth_failure(AuthFailure::WrongResponse);
        stats.count_auth_failure(AuthFailure::WrongResponse);
        stats.count_auth_failure(AuthFailure::UnknownUser);
        stats.count_drop(DropReason::ALL[DropReason::ALL.len() - 1]);
        metrics.publish_sip(&stats);
        let text = metrics.render();
        assert_eq!(sample(&text, "voxgate_registrations_active"), Some(1000.0));
        assert_eq!(sample(&text, "voxgate_extensions_registered"), Some(400.0));
        assert_eq!(sample(&text, "voxgate_bans_active"), Some(2.0));
        assert_eq!(
            sample(&text, "voxgate_overload_rejections_total"),
            Some(17.0)
        );
        assert_eq!(
            sample(
                &text,
                &format!(
                    r#"voxgate_auth_failures_total{{reason="{}"}}"#,
                    AuthFailure::WrongResponse.as_str()
                )
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                &format!(
                    r#"voxgate_auth_failures_total{{reason="{}"}}"#,
                    AuthFailure::UnknownUser.as_str()
                )
            ),
            Some(1.0)
        );
        let last = DropReason::ALL[DropReason::ALL.len() - 1];
        assert_eq!(
            sample(
                &text,
                &format!(r#"voxgate_sip_dropped_total{{reason="{}"}}"#, last.as_str())
            ),
            Some(1.0)
        );
    }

    #[test]
    fn transport_metrics_render() {
        let metrics = Metrics::new();
        metrics.tcp_connections.with_label_values(&["tls"]).set(4);
        metrics
            .connections_rejected
            .with_label_values(&["idle"])
            .inc();
        metrics.tls_handshake_failures.inc_by(2);
        metrics.config_reloads.with_label_values(&["ok"]).inc();
        metrics.store_disk_free_ratio.set(0.25);
        let text = metrics.render();
        assert_eq!(
            sample(&text, r#"voxgate_sip_connections{transport="tls"}"#),
            Some(4.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"voxgate_sip_connections_rejected_total{reason="idle"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "voxgate_tls_handshake_failures_total"),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, r#"voxgate_config_reloads_total{result="ok"}"#),
            Some(1.0)
        );
        assert_eq!(sample(&text, "voxgate_store_disk_free_ratio"), Some(0.25));
    }

    #[test]
    fn metrics_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Metrics>();
    }
}
