//! Resident memory per registration binding (issue 3, "Benchmarks": goal ≤ 1 KiB per binding
//! at 100,000 registered contacts).
//!
//! Two measurements:
//!
//! - `binding_memory registrar [COUNT]` drives [`Registrar`] directly, in this process: COUNT
//!   REGISTERs for COUNT distinct extensions, each parsed from a realistic datagram (Via with
//!   branch and rport, a Contact with the phone's private address, Call-ID, User-Agent, one in
//!   three with RFC 5626 `+sip.instance`/`reg-id`), each from its own NAT flow. It reads
//!   `VmRSS` from `/proc/self/status` before and at checkpoints and prints bytes per binding.
//!   Only the registrar's table is measured: no transactions, no store, no sockets.
//! - `binding_memory process [COUNT] [--rate R] [--voxgate PATH]` measures the real binary
//!   (default `target/release/voxgate`): it writes a configuration with COUNT extensions,
//!   starts `voxgate run`, registers every extension over UDP on loopback with a digest
//!   answer (REGISTER → 401 → REGISTER → 200, 100 in flight, each extension from its own
//!   source address 127.x.y.z, paced at R registrations/s, default 1,000, 0 = unpaced) and
//!   reads the voxgate process's `VmRSS` before the first REGISTER, at checkpoints, right
//!   after the last 200, and again once the server transactions (Timer J, 64·T1 = 32 s)
//!   have ended. The difference includes everything registering costs the running
//!   appliance: registrar table, transaction state (about rate × 2 × 32 s live
//!   transactions), store write path, nonce-replay table, allocator slack; the marginal
//!   bytes between two checkpoints after the first 32 s leave out the transaction term,
//!   which by then no longer grows.
//!
//! What it does not do: count heap bytes exactly (that would need a counting global
//! allocator, i.e. `unsafe`, which the workspace forbids); RSS is what an operator sees.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use voxgate_controlplane::auth::client::{authorization_value, DigestAnswer};
use voxgate_controlplane::config::MessageLimits;
use voxgate_controlplane::registrar::{Flow, RegisterOutcome, Registrar, RegistrarConfig};
use voxgate_controlplane::sip::{HeaderName, Message, Method, Transport};

const DOMAIN: &str = "bench.test";
const FIRST_EXTENSION: u64 = 2_000_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("registrar");
    let count = args
        .get(1)
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(100_000);
    let result = match mode {
        "registrar" => registrar_mode(count),
        "process" => {
            let option = |name: &str| {
                args.iter()
                    .position(|a| a == name)
                    .and_then(|i| args.get(i + 1))
            };
            let voxgate = option("--voxgate")
                .map(PathBuf::from)
                .unwrap_or_else(default_voxgate);
            let rate = option("--rate")
                .and_then(|r| r.parse().ok())
                .unwrap_or(1000);
            process_mode(count, rate, &voxgate)
        }
        _ => Err(format!(
            "usage: binding_memory registrar [COUNT] | \
             binding_memory process [COUNT] [--rate R] [--voxgate PATH] (got {mode})"
        )),
    };
    if let Err(e) = result {
        eprintln!("binding_memory: {e}");
        std::process::exit(1);
    }
}

/// The clock, read by this driver only (the control plane takes time as an argument).
#[allow(clippy::disallowed_methods)]
fn clock() -> Instant {
    Instant::now()
}

// ------------------------------------------------------------------------------- registrar

fn registrar_mode(count: u64) -> Result<(), String> {
    let limits = MessageLimits::default();
    let mut rng = SplitMix(0x5eed_0fb1_d14a_1100);
    let local: SocketAddr = "192.0.2.10:5060".parse().expect("a literal socket address");
    let mut registrar = Registrar::new(RegistrarConfig::default());
    let now = clock();

    let before = rss_kib(Path::new("/proc/self/status"))?;
    println!("registrar mode: {count} bindings, one extension each, default RegistrarConfig");
    println!("VmRSS before: {before} KiB");
    println!(
        "{:>9} {:>12} {:>16} {:>22}",
        "bindings", "VmRSS KiB", "bytes/binding", "marginal bytes/binding"
    );
    let checkpoints = checkpoints(count);
    let (mut last_n, mut last_rss) = (0u64, before);
    let mut rejected = 0u64;
    for i in 0..count {
        let ext = FIRST_EXTENSION + i;
        let nat = nat_address(i);
        let phone = Phone::new(i, &mut rng);
        let text = phone.register(ext, &phone.lan, 1, None);
        let msg = Message::parse_datagram(Bytes::from(text), &limits)
            .map_err(|e| format!("generated REGISTER {i} does not parse: {e}"))?;
        let flow = Flow {
            transport: Transport::Udp,
            remote: SocketAddr::V4(nat),
            local,
            conn: None,
        };
        match registrar.handle_register(now, flow, &ext.to_string(), &msg) {
            RegisterOutcome::Registered(_) => {}
            RegisterOutcome::Rejected(_) => rejected += 1,
        }
        // The driver drains events after every input; Bound events carry a copy of the
        // binding for the store and must not pile up here.
        while registrar.poll_event().is_some() {}
        let n = i + 1;
        if checkpoints.contains(&n) {
            let rss = rss_kib(Path::new("/proc/self/status"))?;
            println!(
                "{n:>9} {rss:>12} {:>16.0} {:>22.0}",
                per_binding(before, rss, n),
                per_binding(last_rss, rss, n - last_n),
            );
            (last_n, last_rss) = (n, rss);
        }
    }
    if rejected > 0 || registrar.len() as u64 != count {
        return Err(format!(
            "{rejected} REGISTERs rejected, {} bindings held (expected {count})",
            registrar.len()
        ));
    }
    println!(
        "result: {:.0} bytes of resident memory per binding at {count} bindings \
         ({} extensions registered)",
        per_binding(before, last_rss, count),
        registrar.registered_aors()
    );
    Ok(())
}

fn checkpoints(count: u64) -> Vec<u64> {
    let mut c: Vec<u64> = [10_000, 25_000, 50_000, 75_000]
        .into_iter()
        .filter(|&n| n < count)
        .collect();
    c.push(count);
    c
}

fn per_binding(before_kib: u64, after_kib: u64, n: u64) -> f64 {
    (after_kib.saturating_sub(before_kib) * 1024) as f64 / n.max(1) as f64
}

/// The NAT address a phone's REGISTER arrives from: a distinct public (CGNAT range) address
/// and port per phone.
fn nat_address(i: u64) -> SocketAddrV4 {
    let ip = Ipv4Addr::new(
        100,
        64 + ((i >> 16) & 63) as u8,
        ((i >> 8) & 255) as u8,
        (i & 255) as u8,
    );
    SocketAddrV4::new(ip, 1024 + (i.wrapping_mul(7919) % 60_000) as u16)
}

/// One simulated phone: the values a real one keeps across its REGISTERs.
#[derive(Debug)]
struct Phone {
    /// Its address on its own LAN, as it writes it in Via and Contact.
    lan: String,
    call_id: String,
    from_tag: String,
    rinstance: String,
    /// RFC 5626 instance id (Linphone-style phones), one in three.
    instance: Option<String>,
    user_agent: &'static str,
}

const USER_AGENTS: [&str; 4] = [
    "Yealink SIP-T46S 66.86.0.15",
    "Zoiper rv2.10.19.6",
    "Linphone Desktop/5.2.6 (Ubuntu 24.04 LTS, Qt 5.15.13) LinphoneCore/5.3.72",
    "PolycomVVX-VVX_450-UA/6.4.3.5018",
];

impl Phone {
    fn new(i: u64, rng: &mut SplitMix) -> Self {
        let lan = format!(
            "192.168.{}.{}:{}",
            (i >> 8) & 255,
            1 + (i % 253),
            5060 + (i % 3) * 1000
        );
        let instance = (i % 3 == 0).then(|| {
            let (a, b) = (rng.next(), rng.next());
            format!(
                "<urn:uuid:{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}>",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xfff,
                (b >> 48) & 0xfff,
                b & 0xffff_ffff_ffff
            )
        });
        Self {
            lan,
            call_id: format!("{:016x}{:016x}", rng.next(), rng.next()),
            from_tag: format!("{:08x}", rng.next() as u32),
            rinstance: format!("{:016x}", rng.next()),
            instance,
            user_agent: USER_AGENTS[(i % USER_AGENTS.len() as u64) as usize],
        }
    }

    /// A REGISTER for extension `ext`. `via` is the sent-by address (the LAN address in the
    /// registrar mode, the real socket in the process mode); `authorization` is the digest
    /// answer for the second REGISTER of a challenge.
    fn register(&self, ext: u64, via: &str, cseq: u32, authorization: Option<&str>) -> String {
        let branch = format!("z9hG4bK-{:08x}{}", cseq, &self.call_id[..12]);
        let contact = match &self.instance {
            Some(uuid) => format!(
                "<sip:{ext}@{};transport=udp;ob>;+sip.instance=\"{uuid}\";reg-id=1;expires=3600",
                self.lan
            ),
            None => format!(
                "<sip:{ext}@{};rinstance={};transport=UDP>;expires=3600",
                self.lan, self.rinstance
            ),
        };
        let supported = if self.instance.is_some() {
            "replaces, outbound, gruu, path"
        } else {
            "replaces, timer"
        };
        let mut m = format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {via};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             Contact: {contact}\r\n\
             To: <sip:{ext}@{DOMAIN}>\r\n\
             From: <sip:{ext}@{DOMAIN}>;tag={}\r\n\
             Call-ID: {}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Expires: 3600\r\n\
             Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
             Supported: {supported}\r\n\
             User-Agent: {}\r\n\
             Allow-Events: presence, kpml, talk\r\n",
            self.from_tag, self.call_id, self.user_agent
        );
        if let Some(a) = authorization {
            m.push_str("Authorization: ");
            m.push_str(a);
            m.push_str("\r\n");
        }
        m.push_str("Content-Length: 0\r\n\r\n");
        m
    }
}

/// A small deterministic generator (SplitMix64) for ids: repeatable runs, no dependency.
#[derive(Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// `VmRSS` in KiB from a `/proc/PID/status` file.
fn rss_kib(status: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(status)
        .map_err(|e| format!("cannot read {}: {e}", status.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no VmRSS in {}", status.display()))
}

// --------------------------------------------------------------------------------- process

fn default_voxgate() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/voxgate")
}

fn password_of(ext: u64) -> String {
    format!("Bench-{ext}-secret!")
}

/// The running server, stopped (and its directory removed) when dropped.
#[derive(Debug)]
struct Server {
    child: Child,
    dir: PathBuf,
    sip: SocketAddr,
    admin: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM for a clean stop; the kill(1) binary avoids `unsafe` libc calls.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_voxgate(voxgate: &Path, count: u64) -> Result<Server, String> {
    if !voxgate.is_file() {
        return Err(format!(
            "{} not found: cargo build --release --bin voxgate",
            voxgate.display()
        ));
    }
    let dir = std::env::temp_dir().join(format!("voxgate-binding-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut config = format!(
        "[sip]\nlisten = [\"udp:127.0.0.1:0\"]\ndomain = \"{DOMAIN}\"\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [store]\npath = \"{}\"\n\n\
         # Every REGISTER comes from loopback at a high rate: trusted, or the flood ban\n\
         # (SEC-13) stops the run.\n\
         [security]\nallow = [\"127.0.0.0/8\"]\n\n\
         # The client's sockets close after registering: no keep-alives during the run.\n\
         [nat]\nkeepalive_interval = \"1h\"\n\n\
         [log]\nlevel = \"warn\"\n",
        dir.join("store").display()
    );
    for i in 0..count {
        let ext = FIRST_EXTENSION + i;
        config.push_str(&format!(
            "\n[[extension]]\nnumber = \"{ext}\"\npassword = \"{}\"\n",
            password_of(ext)
        ));
    }
    let config_path = dir.join("voxgate.toml");
    std::fs::write(&config_path, config)
        .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
    let mut child = Command::new(voxgate)
        .arg("run")
        .arg("--config")
        .arg(&config_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", voxgate.display()))?;
    let stdout = child.stdout.take().expect("stdout was piped");
    // Build the guard first so the process is stopped on every early return below.
    let mut server = Server {
        child,
        dir,
        sip: SocketAddr::from(([127, 0, 0, 1], 0)),
        admin: SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = match lines.next() {
            Some(Ok(line)) => line,
            _ => return Err("voxgate exited before printing `ready`".into()),
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["listening", "sip", "udp", addr] => server.sip = parse_addr(addr)?,
            ["listening", "admin", addr] => server.admin = parse_addr(addr)?,
            ["ready"] => break,
            _ => {}
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    if server.sip.port() == 0 {
        return Err("voxgate printed no UDP listener".into());
    }
    Ok(server)
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|e| format!("bad address {s:?} from voxgate: {e}"))
}

/// The source address of phone `i`: its own loopback address, so every binding has its own
/// flow, as phones behind different NATs do.
fn loopback_source(i: u64) -> SocketAddr {
    let ip = Ipv4Addr::new(
        127,
        1 + (i / 62_500) as u8,
        1 + ((i / 250) % 250) as u8,
        1 + (i % 250) as u8,
    );
    SocketAddr::from((ip, 0))
}

/// Registrations in flight at once (each from its own socket).
const BATCH: u64 = 100;

fn process_mode(count: u64, rate: u64, voxgate: &Path) -> Result<(), String> {
    let started = clock();
    let server = start_voxgate(voxgate, count)?;
    let pid = server.child.id();
    let status = PathBuf::from(format!("/proc/{pid}/status"));
    // Let start-up allocations settle before the baseline.
    std::thread::sleep(Duration::from_secs(1));
    let before = rss_kib(&status)?;
    println!(
        "process mode: {count} extensions in the config, voxgate pid {pid}, sip {}, \
         started in {:.1} s",
        server.sip,
        started.elapsed().as_secs_f64()
    );
    println!("VmRSS before the first REGISTER: {before} KiB");

    let limits = MessageLimits::default();
    let mut rng = SplitMix(0x0bad_cafe_f00d);
    if rate > 0 {
        println!("pacing: {rate} registrations/s");
    }
    println!(
        "{:>9} {:>12} {:>16} {:>22}",
        "bindings", "VmRSS KiB", "bytes/binding", "marginal bytes/binding"
    );
    let checkpoints = checkpoints(count);
    let (mut last_n, mut last_rss) = (0u64, before);
    let t0 = clock();
    let mut ok = 0u64;
    let mut failed = 0u64;
    let mut i = 0u64;
    while i < count {
        let n = BATCH.min(count - i);
        let (o, f) = register_batch(&server, i, n, &mut rng, &limits)?;
        ok += o;
        failed += f;
        i += n;
        if rate > 0 {
            // Keep to the rate: registration i is due at i / rate seconds.
            let due = Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(t0.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        if checkpoints.contains(&i) {
            let rss = rss_kib(&status)?;
            println!(
                "{i:>9} {rss:>12} {:>16.0} {:>22.0}",
                per_binding(before, rss, ok),
                per_binding(last_rss, rss, i - last_n),
            );
            (last_n, last_rss) = (i, rss);
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(&status)?;
    let active = metric(server.admin, "voxgate_registrations_active").unwrap_or(-1.0);
    println!(
        "registered {ok} ({failed} failed) in {elapsed:.1} s ({:.0}/s); \
         voxgate_registrations_active {active}",
        ok as f64 / elapsed
    );
    println!(
        "VmRSS right after the last 200: {after} KiB: {:.0} bytes per binding",
        per_binding(before, after, ok)
    );
    // Non-INVITE server transactions linger for Timer J (64·T1 = 32 s over UDP).
    std::thread::sleep(Duration::from_secs(40));
    let settled = rss_kib(&status)?;
    println!(
        "VmRSS 40 s later (transactions ended): {settled} KiB: {:.0} bytes per binding",
        per_binding(before, settled, ok)
    );
    if failed > 0 || active < 0.0 || active as u64 != ok {
        return Err(format!(
            "{failed} registrations failed; the server reports {active} bindings for {ok} \
             answered 200"
        ));
    }
    drop(server);
    Ok(())
}

/// Register phones `first..first + n`, each from its own socket: all first REGISTERs, then
/// each answer's digest REGISTER, then the 200s. Returns (registered, failed).
fn register_batch(
    server: &Server,
    first: u64,
    n: u64,
    rng: &mut SplitMix,
    limits: &MessageLimits,
) -> Result<(u64, u64), String> {
    let mut phones = Vec::with_capacity(n as usize);
    for i in first..first + n {
        let socket = UdpSocket::bind(loopback_source(i))
            .map_err(|e| format!("cannot bind {}: {e}", loopback_source(i)))?;
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| format!("set_read_timeout: {e}"))?;
        let local = socket
            .local_addr()
            .map_err(|e| format!("local_addr: {e}"))?;
        let phone = Phone::new(i, rng);
        phones.push((i, socket, local, phone));
    }
    for (i, socket, local, phone) in &phones {
        let text = phone.register(FIRST_EXTENSION + i, &local.to_string(), 1, None);
        send(socket, server.sip, &text)?;
    }
    let mut failed = 0;
    let mut challenged = Vec::with_capacity(phones.len());
    for (i, socket, local, phone) in &phones {
        let ext = FIRST_EXTENSION + i;
        let first = phone.register(ext, &local.to_string(), 1, None);
        let Some(challenge) = exchange(socket, server.sip, &first, 401, limits, false)? else {
            failed += 1;
            continue;
        };
        let params = challenge
            .auth(HeaderName::WwwAuthenticate)
            .map_err(|e| format!("401 with a malformed challenge: {e}"))?;
        let md5 = params
            .iter()
            .find(|p| p.is_digest())
            .ok_or("401 without a Digest challenge")?;
        let password = password_of(ext);
        let cnonce = format!("{:016x}", rng.next());
        let user = ext.to_string();
        let answer = DigestAnswer {
            username: &user,
            password: &password,
            method: &Method::Register,
            uri: &format!("sip:{DOMAIN}"),
            cnonce: &cnonce,
            nc: 1,
        };
        let value = authorization_value(md5, &answer)
            .map_err(|e| format!("cannot answer the challenge: {e}"))?;
        let second = phone.register(ext, &local.to_string(), 2, Some(&value));
        send(socket, server.sip, &second)?;
        challenged.push((socket, second));
    }
    let mut ok = 0;
    for (socket, second) in challenged {
        match exchange(socket, server.sip, &second, 200, limits, false)? {
            Some(_) => ok += 1,
            None => failed += 1,
        }
    }
    Ok((ok, failed))
}

fn send(socket: &UdpSocket, to: SocketAddr, text: &str) -> Result<(), String> {
    socket
        .send_to(text.as_bytes(), to)
        .map(|_| ())
        .map_err(|e| format!("send_to {to}: {e}"))
}

/// Wait for the final response to a request already sent (resending it once on a timeout,
/// as a UDP client retransmits); `Some` if its status is `want`.
fn exchange(
    socket: &UdpSocket,
    to: SocketAddr,
    request: &str,
    want: u16,
    limits: &MessageLimits,
    resent: bool,
) -> Result<Option<Message>, String> {
    let mut buf = vec![0u8; 65_535];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((len, _)) => {
                let Ok(msg) = Message::parse_datagram(Bytes::copy_from_slice(&buf[..len]), limits)
                else {
                    continue;
                };
                match msg.code() {
                    Some(code) if code < 200 => continue,
                    Some(code) if code == want => return Ok(Some(msg)),
                    Some(code) => {
                        eprintln!("binding_memory: got {code}, wanted {want}");
                        return Ok(None);
                    }
                    None => continue, // a request (keep-alive OPTIONS): not ours to answer here
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if resent {
                    return Ok(None);
                }
                send(socket, to, request)?;
                return exchange(socket, to, request, want, limits, true);
            }
            Err(e) => return Err(format!("recv_from: {e}")),
        }
    }
}

/// One sample from the server's `/metrics` (plain HTTP/1.0 on loopback).
fn metric(admin: SocketAddr, name: &str) -> Option<f64> {
    let mut stream = TcpStream::connect_timeout(&admin, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}
