//! Blocklist feeds (SEC-08): plain lists of IP addresses and networks, read from local
//! files or fetched over HTTPS, merged into the control plane's block list.
//!
//! Owns: the feed format ([`parse_feed`]: one address or network per line, `#` and `;`
//! comments, bad lines skipped and reported), the size limits, fetching ([`fetch`]), and
//! the background thread ([`spawn`]) that refreshes every feed at start, every
//! `security.blocklist_feed_refresh` and on every reload, keeps each feed's last good list when
//! a fetch fails, and hands the union of all feeds to a sink (the binary passes one that
//! sends it to the SIP driver, which calls `Endpoint::set_feed_blocks`).
//!
//! Does not own: the driver or the endpoint (it knows them only as the sink), or the
//! configuration syntax (`crate::config` validates `blocklist_feeds` and reads the CA file).
//! Disk and network I/O happen only on the feed thread, never on the control thread.

use std::collections::HashMap;
use std::io::{self, Read as _};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use voxgate_controlplane::security::{IpNet, IpNetError};

use crate::config::{Config, FeedSource};
use crate::metrics::Metrics;

/// A feed larger than this is refused as a whole.
pub const MAX_FEED_BYTES: usize = 16 << 20;
/// A feed with more entries than this is refused as a whole.
pub const MAX_FEED_ENTRIES: usize = 1_000_000;
/// How many bad line numbers one log line names (the count is always complete).
const BAD_LINES_SHOWN: usize = 10;
/// A whole HTTPS fetch (connect, TLS, body) must finish within this.
const HTTPS_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a feed could not be used; its previous list stays in force.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeedError {
    #[error("reading: {0}")]
    Read(#[source] io::Error),
    #[error("larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("more than {limit} entries")]
    TooManyEntries { limit: usize },
    #[error("fetching: {0}")]
    Http(#[source] Box<ureq::Error>),
}

/// What a line that is not an address or network is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadLine {
    #[error("not UTF-8")]
    NotUtf8,
    #[error("{0}")]
    Network(#[source] IpNetError),
}

/// A parsed feed: its networks, and the lines that were skipped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedFeed {
    pub nets: Vec<IpNet>,
    /// Every skipped line, as (1-based line number, why).
    pub bad_lines: Vec<(usize, BadLine)>,
}

/// Parses a feed: one address (`192.0.2.7`, `2001:db8::7`) or network (`192.0.2.0/24`,
/// host bits zero, as in `security.block`) per line. `#` or `;` starts a comment (also
/// after an entry: `192.0.2.0/24 ; SBL123`); blank lines are skipped. A bad line is
/// skipped and reported, so one typo does not lose the whole feed; more than
/// [`MAX_FEED_ENTRIES`] entries refuse it.
pub fn parse_feed(bytes: &[u8]) -> Result<ParsedFeed, FeedError> {
    let mut feed = ParsedFeed::default();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let Ok(line) = std::str::from_utf8(raw) else {
            feed.bad_lines.push((line_no, BadLine::NotUtf8));
            continue;
        };
        let entry = line.split(['#', ';']).next().unwrap_or_default().trim();
        if entry.is_empty() {
            continue;
        }
        match entry.parse::<IpNet>() {
            Ok(net) => {
                if feed.nets.len() == MAX_FEED_ENTRIES {
                    return Err(FeedError::TooManyEntries {
                        limit: MAX_FEED_ENTRIES,
                    });
                }
                feed.nets.push(net);
            }
            Err(e) => feed.bad_lines.push((line_no, BadLine::Network(e))),
        }
    }
    Ok(feed)
}

/// Reads a feed's bytes, at most [`MAX_FEED_BYTES`]. Blocks: call it on the feed thread.
pub fn fetch(source: &FeedSource, agent: &ureq::Agent) -> Result<Vec<u8>, FeedError> {
    let too_large = FeedError::TooLarge {
        limit: MAX_FEED_BYTES,
    };
    match source {
        FeedSource::File(path) => {
            let file = std::fs::File::open(path).map_err(FeedError::Read)?;
            let mut bytes = Vec::new();
            file.take(MAX_FEED_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(FeedError::Read)?;
            if bytes.len() > MAX_FEED_BYTES {
                return Err(too_large);
            }
            Ok(bytes)
        }
        FeedSource::Https(url) => {
            let mut response = agent
                .get(url)
                .call()
                .map_err(|e| FeedError::Http(Box::new(e)))?;
            response
                .body_mut()
                .with_config()
                .limit(MAX_FEED_BYTES as u64)
                .read_to_vec()
                .map_err(|e| match e {
                    ureq::Error::BodyExceedsLimit(_) => too_large,
                    e => FeedError::Http(Box::new(e)),
                })
        }
    }
}

/// What the feed thread needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedConfig {
    pub sources: Vec<FeedSource>,
    pub refresh: Duration,
    /// Extra trusted roots for HTTPS feeds (the webpki roots stay trusted).
    pub extra_roots: Vec<CertificateDer<'static>>,
}

impl FeedConfig {
    pub fn of(config: &Config) -> FeedConfig {
        FeedConfig {
            sources: config.security.blocklist_feeds.clone(),
            refresh: config.security.blocklist_feed_refresh,
            extra_roots: config
                .security
                .blocklist_feed_ca
                .as_ref()
                .map(|ca| ca.certs.clone())
                .unwrap_or_default(),
        }
    }

    /// An HTTPS client that trusts the webpki roots plus `extra_roots`, and only HTTPS
    /// (redirects included).
    fn agent(&self) -> ureq::Agent {
        use ureq::tls::{Certificate, RootCerts, TlsConfig};
        let roots = if self.extra_roots.is_empty() {
            RootCerts::WebPki
        } else {
            webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .chain(&self.extra_roots)
                .map(|der| Certificate::from_der(der.as_ref()).to_owned())
                .into()
        };
        ureq::Agent::config_builder()
            .https_only(true)
            .timeout_global(Some(HTTPS_TIMEOUT))
            .user_agent(concat!("voxgate/", env!("CARGO_PKG_VERSION")))
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            .build()
            .into()
    }
}

/// Tells the feed thread about a reloaded configuration; it refreshes at once.
#[derive(Debug, Clone)]
pub struct FeedHandle {
    tx: mpsc::Sender<FeedConfig>,
}

impl FeedHandle {
    /// Applies `config` and refreshes every feed now (SEC-08: a reload refreshes). Never
    /// blocks; returns false when the feed thread is gone.
    pub fn reconfigure(&self, config: FeedConfig) -> bool {
        self.tx.send(config).is_ok()
    }
}

/// Starts the feed thread. It refreshes every feed now, then every `config.refresh` and on
/// every [`FeedHandle::reconfigure`], and after each refresh calls `sink` with the union
/// of all feeds (sorted, without duplicates). The thread ends when `sink` returns false
/// (the driver stopped) or every [`FeedHandle`] is dropped.
pub fn spawn(
    config: FeedConfig,
    metrics: Arc<Metrics>,
    sink: impl FnMut(Vec<IpNet>) -> bool + Send + 'static,
) -> io::Result<FeedHandle> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("blocklist-feeds".into())
        .spawn(move || run(config, &rx, &metrics, sink))?;
    Ok(FeedHandle { tx })
}

fn run(
    mut config: FeedConfig,
    rx: &mpsc::Receiver<FeedConfig>,
    metrics: &Metrics,
    mut sink: impl FnMut(Vec<IpNet>) -> bool,
) {
    // Each feed's last good list: a failed fetch keeps it.
    let mut lists: HashMap<FeedSource, Vec<IpNet>> = HashMap::new();
    loop {
        lists.retain(|source, _| config.sources.contains(source));
        let agent = config.agent();
        for source in &config.sources {
            if let Some(nets) = refresh_one(source, &agent, metrics) {
                lists.insert(source.clone(), nets);
            }
        }
        let mut union: Vec<IpNet> = lists.values().flatten().copied().collect();
        union.sort_unstable();
        union.dedup();
        if !config.sources.is_empty() {
            tracing::info!(
                feeds = config.sources.len(),
                networks = union.len(),
                "blocklist feeds refreshed"
            );
        }
        if !sink(union) {
            return;
        }
        match rx.recv_timeout(config.refresh) {
            // Several reloads in a row: the last one counts.
            Ok(new) => config = rx.try_iter().last().unwrap_or(new),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Fetches and parses one feed; `None` (logged and counted) keeps its previous list.
fn refresh_one(source: &FeedSource, agent: &ureq::Agent, metrics: &Metrics) -> Option<Vec<IpNet>> {
    let label = source.label();
    let parsed = fetch(source, agent).and_then(|bytes| parse_feed(&bytes));
    match parsed {
        Ok(feed) => {
            if !feed.bad_lines.is_empty() {
                let shown: Vec<String> = feed
                    .bad_lines
                    .iter()
                    .take(BAD_LINES_SHOWN)
                    .map(|(line, why)| format!("{line} ({why})"))
                    .collect();
                tracing::warn!(
                    feed = %label,
                    bad_lines = feed.bad_lines.len(),
                    lines = %shown.join(", "),
                    "blocklist feed: lines skipped"
                );
                metrics
                    .blocklist_feed_bad_lines
                    .with_label_values(&[label.as_str()])
                    .inc_by(feed.bad_lines.len() as u64);
            }
            tracing::debug!(feed = %label, networks = feed.nets.len(), "blocklist feed read");
            Some(feed.nets)
        }
        Err(error) => {
            tracing::warn!(feed = %label, %error, "blocklist feed not refreshed; its previous list stays");
            metrics
                .blocklist_feed_errors
                .with_label_values(&[label.as_str()])
                .inc();
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        text.parse().expect("test network")
    }

    #[test]
    fn feeds_parse_comments_blank_lines_and_v6() {
        let text = b"# Spamhaus-style feed\n\
            ; another comment\n\
            \n\
            192.0.2.7\n\
            198.51.100.0/24 ; SBL123\n\
            \t203.0.113.0/28   # trailing comment\r\n\
            2001:db8::/32\n\
            2001:db8:1::7\n";
        let feed = parse_feed(text).expect("parses");
        assert_eq!(
            feed.nets,
            [
                net("192.0.2.7/32"),
                net("198.51.100.0/24"),
                net("203.0.113.0/28"),
                net("2001:db8::/32"),
                net("2001:db8:1::7/128"),
            ]
        );
        assert!(feed.bad_lines.is_empty(), "{:?}", feed.bad_lines);
        assert_eq!(parse_feed(b"").expect("empty"), ParsedFeed::default());
    }

    #[test]
    fn feeds_bad_lines_are_skipped_with_their_numbers() {
        let text = b"192.0.2.7\n\
            192.0.2.1/24\n\
            not-an-address\n\
            198.51.100.9\n\
            10.0.0.0/33\n\
            \xff\xfe\n\
            1.2.3.4 5.6.7.8\n\
            2001:db8::1/32\n\
            203.0.113.5\n";
        let feed = parse_feed(text).expect("one bad line does not lose the feed");
        assert_eq!(
            feed.nets,
            [net("192.0.2.7"), net("198.51.100.9"), net("203.0.113.5")]
        );
        let lines: Vec<usize> = feed.bad_lines.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [2, 3, 5, 6, 7, 8]);
        // Host bits set: skipped (a likely typo), like in security.block.
        assert!(matches!(
            feed.bad_lines[0].1,
            BadLine::Network(IpNetError::HostBits { .. })
        ));
        assert_eq!(feed.bad_lines[3].1, BadLine::NotUtf8);
        assert!(matches!(
            feed.bad_lines[5].1,
            BadLine::Network(IpNetError::HostBits { .. })
        ));
    }

    #[test]
    fn feeds_over_the_entry_limit_are_refused() {
        let mut text = String::with_capacity(MAX_FEED_ENTRIES * 12);
        for i in 0..MAX_FEED_ENTRIES as u32 {
            let [a, b, c, d] = (0x0a00_0000 + i).to_be_bytes();
            text.push_str(&format!("{a}.{b}.{c}.{d}\n"));
        }
        let feed = parse_feed(text.as_bytes()).expect("exactly the limit is fine");
        assert_eq!(feed.nets.len(), MAX_FEED_ENTRIES);
        text.push_str("192.0.2.1\n");
        assert!(matches!(
            parse_feed(text.as_bytes()),
            Err(FeedError::TooManyEntries { .. })
        ));
    }

    #[test]
    fn feeds_files_are_read_up_to_the_size_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let agent = FeedConfig {
            sources: Vec::new(),
            refresh: Duration::from_secs(60),
            extra_roots: Vec::new(),
        }
        .agent();
        let path = dir.path().join("feed.txt");
        std::fs::write(&path, "192.0.2.7\n").expect("write");
        let source = FeedSource::File(path.clone());
        assert_eq!(fetch(&source, &agent).expect("read"), b"192.0.2.7\n");
        let file = std::fs::File::create(&path).expect("create");
        file.set_len(MAX_FEED_BYTES as u64 + 1)
            .expect("sparse file");
        assert!(matches!(
            fetch(&source, &agent),
            Err(FeedError::TooLarge { .. })
        ));
        let missing = FeedSource::File(dir.path().join("missing.txt"));
        assert!(matches!(fetch(&missing, &agent), Err(FeedError::Read(_))));
    }

    /// A failed refresh keeps the feed's last list; a removed feed's list goes; the sink
    /// gets the sorted union.
    #[test]
    fn feeds_thread_keeps_the_last_good_list() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.txt");
        let b = dir.path().join("b.txt");
        std::fs::write(&a, "198.51.100.0/24\n192.0.2.7\n").expect("write");
        std::fs::write(&b, "192.0.2.7\n10.0.0.0/8\n").expect("write");
        let config = FeedConfig {
            sources: vec![FeedSource::File(a.clone()), FeedSource::File(b.clone())],
            refresh: Duration::from_secs(3600),
            extra_roots: Vec::new(),
        };
        let metrics = Arc::new(Metrics::new());
        let (tx, rx) = mpsc::channel();
        let handle = spawn(config.clone(), metrics.clone(), move |nets| {
            tx.send(nets).is_ok()
        })
        .expect("spawn");
        let next = || rx.recv_timeout(Duration::from_secs(10)).expect("a refresh");
        assert_eq!(
            next(),
            [net("10.0.0.0/8"), net("192.0.2.7"), net("198.51.100.0/24")]
        );

        // `b` disappears: its last list stays, and the failure is counted.
        std::fs::remove_file(&b).expect("remove");
        std::fs::write(&a, "203.0.113.0/24\n").expect("write");
        assert!(handle.reconfigure(config.clone()));
        assert_eq!(
            next(),
            [net("10.0.0.0/8"), net("192.0.2.7"), net("203.0.113.0/24")]
        );
        let label = FeedSource::File(b.clone()).label();
        assert_eq!(
            metrics
                .blocklist_feed_errors
                .with_label_values(&[label.as_str()])
                .get(),
            1
        );

        // `b` removed from the config: its list goes.
        assert!(handle.reconfigure(FeedConfig {
            sources: vec![FeedSource::File(a)],
            ..config
        }));
        assert_eq!(next(), [net("203.0.113.0/24")]);
    }
}
