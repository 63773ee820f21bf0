//! A minimal HTTP/1.1 client over `std::net::TcpStream` (one request per connection,
//! `Connection: close`, fixed-length or chunked bodies) and a Prometheus text-format parser.
//! Enough to test voxgate's admin API; not a general HTTP client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Why an HTTP exchange failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    #[error("I/O with {addr}: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed HTTP response from {addr}: {what}")]
    Malformed {
        addr: SocketAddr,
        what: &'static str,
    },
}

/// How long one exchange may take before it fails (a failure deadline).
const IO_LIMIT: Duration = Duration::from_secs(20);

/// `METHOD PATH` with an empty body; returns (status, body). Panics on a transport error or
/// a malformed response (use [`http_request`] to handle those).
pub fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    http_request(addr, method, path, b"").unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// `METHOD PATH` with `body`; returns (status, body as lossy UTF-8).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(u16, String), HttpError> {
    let io = |source| HttpError::Io { addr, source };
    let malformed = |what| HttpError::Malformed { addr, what };
    let mut stream = TcpStream::connect_timeout(&addr, IO_LIMIT).map_err(io)?;
    stream.set_read_timeout(Some(IO_LIMIT)).map_err(io)?;
    stream.set_write_timeout(Some(IO_LIMIT)).map_err(io)?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         User-Agent: voxgate-test-harness\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).map_err(io)?;
    stream.write_all(body).map_err(io)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io)?;

    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| malformed("no end of header section"))?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed("bad status line"))?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(n, v)| {
            n.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        })
    });
    let rest = &raw[head_end + 4..];
    let body = if chunked {
        dechunk(rest).ok_or_else(|| malformed("bad chunked body"))?
    } else {
        rest.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// One sample line of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// A parsed `/metrics` page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metrics {
    pub samples: Vec<Sample>,
    /// Names declared by `# TYPE` lines, with their type.
    pub types: Vec<(String, String)>,
    /// The page as served, for assertion messages.
    pub text: String,
}

impl Metrics {
    /// Parses the text exposition format. Lines it cannot read are skipped (the assertions
    /// then fail on the missing series, with the page in the message).
    pub fn parse(text: &str) -> Metrics {
        let mut metrics = Metrics {
            text: text.to_owned(),
            ..Metrics::default()
        };
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                if let Some((name, kind)) = rest.split_once(' ') {
                    metrics
                        .types
                        .push((name.to_owned(), kind.trim().to_owned()));
                }
            } else if !line.is_empty() && !line.starts_with('#') {
                if let Some(sample) = parse_sample(line) {
                    metrics.samples.push(sample);
                }
            }
        }
        metrics
    }

    /// The sum of every series named `name` whose labels include all of `labels`; None if no
    /// series matches.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|s| s.value)
            .collect();
        (!matching.is_empty()).then(|| matching.iter().sum())
    }

    /// The declared `# TYPE` of `name`, if any.
    pub fn type_of(&self, name: &str) -> Option<&str> {
        self.types
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    }

    /// Every series named `name`.
    pub fn series(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let (labels, rest) = parse_labels(&line[open + 1..])?;
            (&line[..open], labels, rest)
        }
        None => {
            let (name, rest) = line.split_once(' ')?;
            (name, Vec::new(), rest)
        }
    };
    // The value, optionally followed by a timestamp.
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.trim().to_owned(),
        labels,
        value,
    })
}

/// Parses `k="v",k2="v2"}` and returns the labels and the text after `}`.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (key, rest) = s.split_once('=')?;
        let rest = rest.strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.push((key.trim().to_owned(), value));
        s = &rest[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_text() {
        let m = Metrics::parse(
            "# HELP voxgate_x help\n# TYPE voxgate_x counter\n\
             voxgate_x{method=\"OPTIONS\",transport=\"udp\"} 3\n\
             voxgate_x{method=\"INVITE\",transport=\"udp\"} 2\n\
             voxgate_y 1.5e0\n\
             voxgate_z{a=\"q\\\"uote\"} +Inf\n",
        );
        assert_eq!(m.value("voxgate_x", &[("method", "OPTIONS")]), Some(3.0));
        assert_eq!(m.value("voxgate_x", &[("transport", "udp")]), Some(5.0));
        assert_eq!(m.value("voxgate_x", &[("method", "BYE")]), None);
        assert_eq!(m.value("voxgate_y", &[]), Some(1.5));
        assert_eq!(
            m.value("voxgate_z", &[("a", "q\"uote")]),
            Some(f64::INFINITY)
        );
        assert_eq!(m.type_of("voxgate_x"), Some("counter"));
    }

    #[test]
    fn dechunks() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").as_deref(),
            Some(&b"abcde"[..])
        );
        assert_eq!(dechunk(b"5\r\nab"), None);
    }
}
