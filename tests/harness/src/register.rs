//! Registering to voxgate as a phone would: extensions and configs for the registrar tests,
//! one REGISTER dialogue at a time ([`RegisterSession`]: REGISTER → 401 → REGISTER with
//! credentials, refresh, unregister, over UDP or a stream), and a pipelined load of many
//! such dialogues over one UDP socket ([`register_load`]).
//!
//! What it does not do: keep-alives, outbound (RFC 5626) flow tokens, or anything after
//! the registration; and it never computes digests with voxgate's code (see `digest.rs`).

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::digest::{Challenge, DigestAlgorithm};
use crate::process::{test_config, DIR_PLACEHOLDER};
use crate::sip::{new_branch, read_stream_response, Response, UdpClient};

/// How long a UAC waits before resending a request over UDP (RFC 3261 T1).
const RETRANSMIT: Duration = Duration::from_millis(500);

/// One extension of a generated config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestExtension {
    pub number: String,
    pub password: String,
}

impl TestExtension {
    /// Extension `number` with a password derived from it: distinct per extension, longer
    /// than 12 characters and never equal to the number (SEC-09).
    pub fn numbered(number: u32) -> TestExtension {
        TestExtension {
            number: number.to_string(),
            password: format!("pw-{number}-Vx7kQ2mZ"),
        }
    }
}

/// `count` extensions numbered from `first`, see [`TestExtension::numbered`]. check-config
/// rejects numbers that overlap a prefix of 112, 911, 700 or 999: pick a range without them
/// (1000-1999 holds 1120-1129; 2000-2999 is clean).
pub fn numbered_extensions(first: u32, count: u32) -> Vec<TestExtension> {
    (first..first + count)
        .map(TestExtension::numbered)
        .collect()
}

/// `[[extension]]` tables for `extensions`.
pub fn extension_tables(extensions: &[TestExtension]) -> String {
    let mut out = String::with_capacity(extensions.len() * 64);
    for e in extensions {
        out.push_str(&format!(
            "[[extension]]\nnumber = \"{}\"\npassword = \"{}\"\n\n",
            e.number, e.password
        ));
    }
    out
}

/// [`test_config`] with the store at `store` (an absolute path the test owns) instead of the
/// process's private temp dir, so a second process can start on the same store.
pub fn config_with_store(sip_listen: &[&str], store: &Path, extra_sections: &str) -> String {
    let store = store.to_str().expect("temp dir paths are UTF-8");
    test_config(sip_listen, extra_sections).replace(&format!("{DIR_PLACEHOLDER}/store"), store)
}

/// The `branch` parameter of a message's top Via, if any.
pub fn via_branch(message: &Response) -> Option<String> {
    let via = message.header("Via")?;
    let first = via.split(',').next()?;
    first.split(';').skip(1).find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("branch")
            .then(|| value.trim().to_owned())
    })
}

/// The value of parameter `name` in a header value such as a Contact (`<…>;expires=60`).
pub fn header_param(value: &str, name: &str) -> Option<String> {
    // Parameters after the closing '>' (or after the URI when there are no brackets).
    let params = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    params.split(';').skip(1).find_map(|p| {
        let (n, v) = p.split_once('=')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// The `expires` a 200 to a REGISTER grants the binding of `contact_uri` (RFC 3261 §10.3
/// step 8 lists every binding of the AOR, each with its expiry). None when that contact is
/// not listed or has no `expires` parameter.
pub fn granted_expires(response: &Response, contact_uri: &str) -> Option<u32> {
    let wanted = format!("<{contact_uri}>");
    response
        .header_values("Contact")
        .iter()
        .flat_map(|v| v.split(','))
        .find(|c| c.trim().starts_with(&wanted))
        .and_then(|c| header_param(c, "expires"))
        .and_then(|e| e.parse().ok())
}

/// The request line of a request as received (`OPTIONS sip:… SIP/2.0`), or "" if the bytes
/// have none.
pub fn request_line(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    text.split("\r\n").next().unwrap_or_default().to_owned()
}

/// A response to a request voxgate sent (such as a keep-alive OPTIONS): the status line,
/// then Via, From, To (with a tag added when it has none), Call-ID and CSeq copied from the
/// request (RFC 3261 §8.2.6.2).
pub fn respond_to(request: &[u8], code: u16, reason: &str) -> String {
    let r = Response::parse(request);
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for via in r.header_values("Via") {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        let Some(mut value) = r.header(name) else {
            continue;
        };
        if name == "To" && header_param(&value, "tag").is_none() {
            value.push_str(";tag=harness-answer");
        }
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

/// Sends `msg` from `client` to `to`, resends it every 500 ms, and returns the first final
/// response whose top Via branch is `branch` (so a late copy of an earlier answer is never
/// mistaken for this one). None if nothing arrives within `limit`.
pub fn transact(
    client: &UdpClient,
    to: SocketAddr,
    msg: &[u8],
    branch: &str,
    limit: Duration,
) -> Option<Response> {
    let deadline = crate::now() + limit;
    loop {
        client.send_to(msg, to);
        let resend_at = (crate::now() + RETRANSMIT).min(deadline);
        loop {
            let left = resend_at.saturating_duration_since(crate::now());
            if left.is_zero() {
                break;
            }
            if let Some(r) = client.recv(left) {
                if r.is_final() && via_branch(&r).as_deref() == Some(branch) {
                    return Some(r);
                }
            }
        }
        if crate::now() >= deadline {
            return None;
        }
    }
}

/// A request ready to send, with the branch its answer will carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRequest {
    pub branch: String,
    pub text: String,
}

/// One phone's registration dialogue for one extension: Call-ID and From tag fixed, CSeq
/// counting up, the last digest challenge kept and answered with an increasing nonce count
/// (as phones do on refresh).
#[derive(Debug, Clone)]
pub struct RegisterSession {
    pub extension: String,
    /// Digest user name (the extension number unless the extension has an `auth_id`).
    pub auth_user: String,
    pub password: String,
    /// Request-URI host and AOR domain.
    pub domain: String,
    /// Via transport token: `UDP` or `TCP`.
    pub via_transport: &'static str,
    /// Via sent-by.
    pub sent_by: SocketAddr,
    /// The Contact URI (without angle brackets).
    pub contact: String,
    pub call_id: String,
    pub from_tag: String,
    /// CSeq of the last request built (the next one uses `cseq + 1`).
    pub cseq: u32,
    pub user_agent: String,
    /// The algorithm answered when the challenge offers it (MD5 otherwise).
    pub prefer: DigestAlgorithm,
    challenge: Option<Challenge>,
    nc: u32,
}

impl RegisterSession {
    /// A session for `extension` registering from `sent_by` over `via_transport`, with
    /// Contact `sip:EXT@SENT_BY` (`;transport=tcp` for TCP) and User-Agent
    /// `voxgate-test-harness`.
    pub fn new(
        extension: &TestExtension,
        domain: &str,
        via_transport: &'static str,
        sent_by: SocketAddr,
    ) -> RegisterSession {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let contact = if via_transport.eq_ignore_ascii_case("UDP") {
            format!("sip:{}@{sent_by}", extension.number)
        } else {
            format!(
                "sip:{}@{sent_by};transport={}",
                extension.number,
                via_transport.to_ascii_lowercase()
            )
        };
        RegisterSession {
            extension: extension.number.clone(),
            auth_user: extension.number.clone(),
            password: extension.password.clone(),
            domain: domain.to_owned(),
            via_transport,
            sent_by,
            contact,
            call_id: format!("reg-{}-{n}@harness.voxgate.test", std::process::id()),
            from_tag: format!("ft{n}"),
            cseq: 0,
            user_agent: "voxgate-test-harness".to_owned(),
            prefer: DigestAlgorithm::Md5,
            challenge: None,
            nc: 0,
        }
    }

    /// The next REGISTER (CSeq + 1), with `Expires` when given and credentials for the last
    /// challenge when there was one.
    pub fn request(&mut self, expires: Option<u32>) -> OutgoingRequest {
        self.cseq += 1;
        let branch = new_branch();
        let uri = format!("sip:{}", self.domain);
        let mut text = format!(
            "REGISTER {uri} SIP/2.0\r\n\
             Via: SIP/2.0/{} {};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{ext}@{domain}>;tag={tag}\r\n\
             To: <sip:{ext}@{domain}>\r\n\
             Call-ID: {}\r\n\
             CSeq: {} REGISTER\r\n\
             Contact: <{}>\r\n",
            self.via_transport,
            self.sent_by,
            self.call_id,
            self.cseq,
            self.contact,
            ext = self.extension,
            domain = self.domain,
            tag = self.from_tag,
        );
        if let Some(expires) = expires {
            text.push_str(&format!("Expires: {expires}\r\n"));
        }
        if let Some(challenge) = &self.challenge {
            self.nc += 1;
            let cnonce = format!("c{}n{}", self.cseq, self.nc);
            let value = challenge.authorization(
                &self.auth_user,
                &self.password,
                "REGISTER",
                &uri,
                &cnonce,
                self.nc,
            );
            text.push_str(&format!("Authorization: {value}\r\n"));
        }
        text.push_str(&format!(
            "User-Agent: {}\r\nContent-Length: 0\r\n\r\n",
            self.user_agent
        ));
        OutgoingRequest { branch, text }
    }

    /// Takes the challenge of a 401 (the preferred algorithm if offered, else MD5). Returns
    /// whether there was one to answer.
    pub fn take_challenge(&mut self, response: &Response) -> bool {
        if response.code != 401 {
            return false;
        }
        let challenge = Challenge::find(response, self.prefer)
            .or_else(|| Challenge::find(response, DigestAlgorithm::Md5));
        match challenge {
            Some(c) => {
                self.challenge = Some(c);
                self.nc = 0;
                true
            }
            None => false,
        }
    }

    /// Whether the session holds a challenge (so its next request carries credentials).
    pub fn has_challenge(&self) -> bool {
        self.challenge.is_some()
    }

    /// One registration over UDP from `client` to `to`: REGISTER (with credentials if a
    /// challenge is known), and on a 401 once more with credentials for the new challenge.
    /// Returns the final answer, or None if some request went unanswered for 10 s.
    pub fn register_udp(
        &mut self,
        client: &UdpClient,
        to: SocketAddr,
        expires: Option<u32>,
    ) -> Option<Response> {
        let limit = Duration::from_secs(10);
        let req = self.request(expires);
        let first = transact(client, to, req.text.as_bytes(), &req.branch, limit)?;
        if first.code == 401 && self.take_challenge(&first) {
            let req = self.request(expires);
            return transact(client, to, req.text.as_bytes(), &req.branch, limit);
        }
        Some(first)
    }

    /// Like [`RegisterSession::register_udp`] over a connected stream (the caller sets its
    /// read timeout). Responses to other branches (late copies) are skipped.
    pub fn register_stream(
        &mut self,
        stream: &mut TcpStream,
        expires: Option<u32>,
    ) -> std::io::Result<Response> {
        let req = self.request(expires);
        let first = stream_transact(stream, &req)?;
        if first.code == 401 && self.take_challenge(&first) {
            let req = self.request(expires);
            return stream_transact(stream, &req);
        }
        Ok(first)
    }
}

fn stream_transact(stream: &mut TcpStream, req: &OutgoingRequest) -> std::io::Result<Response> {
    stream.write_all(req.text.as_bytes())?;
    loop {
        let r = read_stream_response(stream)?;
        if r.is_final() && via_branch(&r).as_deref() == Some(req.branch.as_str()) {
            return Ok(r);
        }
    }
}

/// Shared between a [`register_load`] and the test thread that watches it.
#[derive(Debug, Default)]
pub struct LoadControl {
    /// Registrations answered 200 so far.
    pub confirmed: AtomicUsize,
    /// Set to end the load: nothing new is sent, answers already on their way are read
    /// until the socket has been quiet for a moment, the rest count as unanswered.
    pub stop: AtomicBool,
}

/// What a [`register_load`] saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Sessions whose registration was answered 200, with that answer.
    pub confirmed: Vec<(RegisterSession, Response)>,
    /// Sessions answered with something else at the end (code and session).
    pub refused: Vec<(RegisterSession, Response)>,
    /// Sessions started but not answered, or never started.
    pub unanswered: Vec<RegisterSession>,
}

/// Registers every session over UDP from `client` to `to` with `Expires: expires`, keeping
/// up to `window` dialogues in flight and resending unanswered requests every 500 ms, until
/// every session is answered, `control.stop` is set, or `limit` passes.
pub fn register_load(
    client: &UdpClient,
    to: SocketAddr,
    sessions: Vec<RegisterSession>,
    expires: u32,
    window: usize,
    control: &LoadControl,
    limit: Duration,
) -> LoadReport {
    struct InFlight {
        session: usize,
        bytes: Vec<u8>,
        sent: Instant,
    }
    let deadline = crate::now() + limit;
    let mut sessions: Vec<Option<RegisterSession>> = sessions.into_iter().map(Some).collect();
    let mut next: VecDeque<usize> = (0..sessions.len()).collect();
    let mut in_flight: HashMap<String, InFlight> = HashMap::new();
    let mut report = LoadReport::default();
    let send = |in_flight: &mut HashMap<String, InFlight>, index: usize, req: OutgoingRequest| {
        client.send_to(req.text.as_bytes(), to);
        in_flight.insert(
            req.branch,
            InFlight {
                session: index,
                bytes: req.text.into_bytes(),
                sent: crate::now(),
            },
        );
    };
    let mut quiet_since: Option<Instant> = None;
    loop {
        let stopping = control.stop.load(Ordering::SeqCst) || crate::now() >= deadline;
        if !stopping {
            while in_flight.len() < window {
                let Some(index) = next.pop_front() else { break };
                let session = sessions[index].as_mut().expect("sessions not yet started");
                let req = session.request(Some(expires));
                send(&mut in_flight, index, req);
            }
            if next.is_empty() && in_flight.is_empty() {
                break;
            }
            let now = crate::now();
            for flight in in_flight.values_mut() {
                if now.duration_since(flight.sent) >= RETRANSMIT {
                    client.send_to(&flight.bytes, to);
                    flight.sent = now;
                }
            }
        }
        match client.recv(Duration::from_millis(50)) {
            Some(response) => {
                quiet_since = None;
                let Some(flight) = via_branch(&response).and_then(|b| in_flight.remove(&b)) else {
                    continue; // a late copy of an answer already handled
                };
                if !response.is_final() {
                    in_flight.insert(
                        via_branch(&response).expect("matched by branch above"),
                        flight,
                    );
                    continue;
                }
                let index = flight.session;
                let session = sessions[index].as_mut().expect("in flight sessions exist");
                if response.code == 401 && !stopping && session.take_challenge(&response) {
                    let req = session.request(Some(expires));
                    send(&mut in_flight, index, req);
                } else {
                    let session = sessions[index].take().expect("answered once");
                    if response.code == 200 {
                        control.confirmed.fetch_add(1, Ordering::SeqCst);
                        report.confirmed.push((session, response));
                    } else {
                        report.refused.push((session, response));
                    }
                }
            }
            None if stopping => {
                // Answers already queued on the socket arrive at once; a quiet half second
                // after the stop means there are no more.
                let since = *quiet_since.get_or_insert_with(crate::now);
                if crate::now().duration_since(since) >= Duration::from_millis(500) {
                    break;
                }
            }
            None => {}
        }
    }
    report.unanswered = sessions.into_iter().flatten().collect();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_register_with_and_without_credentials() {
        let ext = TestExtension::numbered(1000);
        assert!(ext.password.len() >= 12 && ext.password != ext.number);
        let local: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let mut s = RegisterSession::new(&ext, "voxgate.test", "UDP", local);
        let first = s.request(Some(600));
        assert!(first
            .text
            .starts_with("REGISTER sip:voxgate.test SIP/2.0\r\n"));
        assert!(first.text.contains("CSeq: 1 REGISTER\r\n"));
        assert!(first
            .text
            .contains("Contact: <sip:1000@127.0.0.1:4000>\r\n"));
        assert!(first.text.contains("Expires: 600\r\n"));
        assert!(!first.text.contains("Authorization"));
        let challenge = Response::parse(
            b"SIP/2.0 401 Unauthorized\r\n\
              WWW-Authenticate: Digest realm=\"voxgate.test\", nonce=\"n1\", algorithm=MD5, qop=\"auth\"\r\n\
              WWW-Authenticate: Digest realm=\"voxgate.test\", nonce=\"n2\", algorithm=SHA-256, qop=\"auth\"\r\n\r\n",
        );
        assert!(s.take_challenge(&challenge));
        let second = s.request(None);
        assert!(second.text.contains("CSeq: 2 REGISTER\r\n"));
        assert!(second.text.contains("nonce=\"n1\""));
        assert!(second.text.contains("nc=00000001"));
        assert!(s.request(None).text.contains("nc=00000002"));
        s.prefer = DigestAlgorithm::Sha256;
        assert!(s.take_challenge(&challenge));
        assert!(s.request(None).text.contains("algorithm=SHA-256"));
    }

    #[test]
    fn reads_branch_and_contact_params() {
        let r = Response::parse(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4:5;rport=5;branch=z9hG4bKx;received=1.2.3.4\r\n\
              Contact: <sip:1000@1.2.3.4:5;transport=udp>;expires=3600\r\n\r\n",
        );
        assert_eq!(via_branch(&r).as_deref(), Some("z9hG4bKx"));
        let contact = r.header("Contact").unwrap();
        assert_eq!(header_param(&contact, "expires").as_deref(), Some("3600"));
        assert_eq!(header_param(&contact, "transport"), None);
        let two = Response::parse(
            b"SIP/2.0 200 OK\r\nContact: <sip:1@a:1>;expires=599, <sip:1@b:2>;expires=600\r\n\
              Contact: <sip:1@c:3>;expires=30\r\n\r\n",
        );
        assert_eq!(granted_expires(&two, "sip:1@b:2"), Some(600));
        assert_eq!(granted_expires(&two, "sip:1@c:3"), Some(30));
        assert_eq!(granted_expires(&two, "sip:1@d:4"), None);
    }

    #[test]
    fn answers_a_request() {
        let options = b"OPTIONS sip:1000@127.0.0.1:5 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-vx1;rport\r\n\
            From: <sip:voxgate.test>;tag=a\r\nTo: <sip:1000@voxgate.test>\r\n\
            Call-ID: k@voxgate.test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            request_line(options),
            "OPTIONS sip:1000@127.0.0.1:5 SIP/2.0"
        );
        let answer = respond_to(options, 200, "OK");
        assert!(answer.starts_with("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;"));
        assert!(answer.contains("To: <sip:1000@voxgate.test>;tag=harness-answer\r\n"));
        assert!(answer.contains("CSeq: 1 OPTIONS\r\n") && answer.ends_with("\r\n\r\n"));
    }

    #[test]
    fn extension_tables_and_store_config() {
        let tables = extension_tables(&numbered_extensions(100, 2));
        assert!(tables.contains("number = \"100\"\npassword = \"pw-100-Vx7kQ2mZ\""));
        assert!(tables.contains("number = \"101\""));
        let c = config_with_store(&["udp:127.0.0.1:0"], Path::new("/tmp/s"), "");
        assert!(c.contains("path = \"/tmp/s\""));
    }
}
