//! ng protocol conformance against the reference: rtpengine (Debian `rtpengine-daemon`,
//! userspace forwarding, no kernel module) on loopback.
//!
//! The same datagrams go to rtpengine and to voxgate's ng engine (`src/ng`, compiled into
//! this test, driven by a stand-in call table because the relay does not exist yet). Every
//! rtpengine reply must carry the request's cookie and decode with voxgate's bencode codec;
//! error replies must be byte-identical; successful replies must have the same shape (the
//! same keys at every level, the same value types), and the rewritten SDPs must agree on
//! what voxgate decides alike (connection and origin address, profile, formats, ICE gone).

#[path = "../src/ng/mod.rs"]
mod ng;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ng::bencode::{decode, Dict, Value};
use ng::command::{
    CallStats, Delete, List, MediaStats, NgError, OfferAnswer, PacketStats, Query, Response,
    StreamStats, TagStats,
};
use ng::rewrite::{rewrite_sdp, Allocation, MediaAllocation};
use ng::{CallControl, NgServer};
use voxgate_controlplane::sdp::{Crypto, Sdp};
use voxgate_test_harness::{now, require_tool, wait_until};

const OFFER_SDP: &str = "v=0\r\n\
    o=alice 2890844526 2890844526 IN IP4 10.0.0.1\r\n\
    s=-\r\n\
    c=IN IP4 10.0.0.1\r\n\
    t=0 0\r\n\
    m=audio 49170 RTP/AVP 0 8 101\r\n\
    a=rtpmap:0 PCMU/8000\r\n\
    a=rtpmap:8 PCMA/8000\r\n\
    a=rtpmap:101 telephone-event/8000\r\n\
    a=fmtp:101 0-15\r\n\
    a=ptime:20\r\n\
    a=sendrecv\r\n\
    a=ice-ufrag:abcd\r\n\
    a=ice-pwd:0123456789abcdef012345\r\n\
    a=candidate:1 1 UDP 2130706431 10.0.0.1 49170 typ host\r\n";

/// rtpengine in the foreground, killed and reaped on drop.
struct Rtpengine {
    child: Child,
    ng: SocketAddr,
}

impl Rtpengine {
    fn start() -> Self {
        // A free UDP port for ng; rtpengine binds it right after we release it.
        let ng = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free loopback port");
        // Media ports: a 100-port range that depends on the ng port, away from voxgate's
        // default 20000-29999 and from the ephemeral range.
        let base = 30_000 + (ng.port() % 200) * 100;
        let child = Command::new("rtpengine")
            .args([
                "--config-file=none",
                "--table=-1",
                "--interface=127.0.0.1",
                &format!("--listen-ng={ng}"),
                &format!("--port-min={base}"),
                &format!("--port-max={}", base + 99),
                "--foreground",
                "--log-stderr",
                "--log-level=4",
                "--delete-delay=0",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("rtpengine starts");
        Self { child, ng }
    }
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one datagram and returns the reply (generous deadline; not a speed check).
fn exchange(socket: &UdpSocket, to: SocketAddr, datagram: &[u8]) -> Option<Vec<u8>> {
    socket.send_to(datagram, to).expect("send on loopback");
    let mut buf = vec![0u8; 65_536];
    match socket.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// A stand-in for the relay's call table: remembers offers and answers and reports them
/// through voxgate's reply types.
#[derive(Default)]
struct StandIn {
    calls: BTreeMap<String, Vec<(String, Sdp)>>,
}

fn allocation(sdp: &Sdp, secure: bool) -> Allocation {
    let crypto = vec![Crypto {
        tag: 1,
        suite: "AES_CM_128_HMAC_SHA1_80".into(),
        key_params: "inline:hLnusvi57QG/xuaC1GLVCd3O/tA0WA8sQQ+yoZyG".into(),
        session_params: vec![],
    }];
    Allocation {
        address: "127.0.0.1".parse().expect("literal"),
        media: (0..sdp.media().len())
            .map(|i| {
                let port = 20_000 + 2 * u16::try_from(i).expect("few media");
                MediaAllocation {
                    rtp_port: port,
                    rtcp_port: Some(port + 1),
                    crypto: if secure { crypto.clone() } else { vec![] },
                }
            })
            .collect(),
    }
}

impl StandIn {
    fn rewrite(&mut self, request: &OfferAnswer, tag: &str) -> Result<Response, NgError> {
        let sdp = request.parse_sdp()?;
        let secure = matches!(
            request.flags.transport_protocol,
            Some(ng::command::TransportOverride::To(p)) if p.is_secure()
        );
        let out = rewrite_sdp(&sdp, &request.flags, &allocation(&sdp, secure))
            .map_err(NgError::Rewrite)?;
        self.calls
            .entry(request.call_id.clone())
            .or_default()
            .push((tag.to_owned(), sdp));
        Ok(Response::Sdp(out.to_bytes()))
    }

    fn stats(&self, call_id: &str) -> Option<CallStats> {
        let parties = self.calls.get(call_id)?;
        let tags = parties
            .iter()
            .map(|(tag, sdp)| {
                let peers = parties
                    .iter()
                    .filter(|(t, _)| t != tag)
                    .map(|(t, _)| t.clone())
                    .collect();
                let medias = sdp
                    .media()
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        let ip: IpAddr = sdp
                            .effective_connection(i)
                            .and_then(|c| c.ip())
                            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
                        let stream = |port: u16, kind: &str| StreamStats {
                            local: SocketAddr::new("127.0.0.1".parse().expect("literal"), 20_000),
                            endpoint: Some(SocketAddr::new(ip, port)),
                            advertised_endpoint: Some(SocketAddr::new(ip, port)),
                            last_packet: 0,
                            flags: vec![kind.into(), "filled".into()],
                            stats: PacketStats::default(),
                        };
                        MediaStats {
                            index: u32::try_from(i + 1).expect("few media"),
                            media_type: m.kind().into(),
                            protocol: m.proto().into(),
                            streams: vec![
                                stream(m.port(), "RTP"),
                                stream(m.port().saturating_add(1), "RTCP"),
                            ],
                            flags: vec!["initialized".into()],
                        }
                    })
                    .collect();
                TagStats {
                    tag: tag.clone(),
                    created: 0,
                    peers,
                    medias,
                }
            })
            .collect();
        Some(CallStats {
            created: 0,
            created_us: 0,
            last_signal: 0,
            tags,
            totals_rtp: PacketStats::default(),
            totals_rtcp: PacketStats::default(),
        })
    }
}

impl CallControl for StandIn {
    fn offer(&mut self, request: &OfferAnswer) -> Result<Response, NgError> {
        let tag = request.from_tag.clone();
        self.rewrite(request, &tag)
    }

    fn answer(&mut self, request: &OfferAnswer) -> Result<Response, NgError> {
        if !self.calls.contains_key(&request.call_id) {
            return Err(NgError::UnknownCall);
        }
        let tag = request.to_tag.clone().unwrap_or_default();
        self.rewrite(request, &tag)
    }

    fn delete(&mut self, request: &Delete) -> Result<Response, NgError> {
        let stats = self.stats(&request.call_id).ok_or(NgError::CallNotFound)?;
        self.calls.remove(&request.call_id);
        Ok(Response::Deleted {
            stats: request.from_tag.as_ref().map(|_| stats),
            warning: None,
        })
    }

    fn query(&mut self, request: &Query) -> Result<Response, NgError> {
        self.stats(&request.call_id)
            .map(Response::Query)
            .ok_or(NgError::UnknownCall)
    }

    fn list(&mut self, request: &List) -> Result<Response, NgError> {
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        Ok(Response::List(
            self.calls.keys().take(limit).cloned().collect(),
        ))
    }
}

/// The shape of a value: dictionaries by their keys, lists by the distinct shapes of their
/// elements (so `flags: [RTP, filled]` and `flags: [RTP, filled, ICE]` agree), leaves by type.
#[derive(Debug, PartialEq, Eq)]
enum Shape {
    Bytes,
    Int,
    List(Vec<Shape>),
    Dict(BTreeMap<String, Shape>),
}

fn shape(value: &Value) -> Shape {
    match value {
        Value::Bytes(_) => Shape::Bytes,
        Value::Int(_) => Shape::Int,
        Value::List(items) => {
            let mut shapes: Vec<Shape> = Vec::new();
            for item in items.iter().map(shape) {
                if !shapes.contains(&item) {
                    shapes.push(item);
                }
            }
            Shape::List(shapes)
        }
        Value::Dict(dict) => Shape::Dict(
            dict.iter()
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), shape(v)))
                .collect(),
        ),
    }
}

/// Splits a reply datagram, checks the cookie, and decodes the dictionary with voxgate's codec.
fn decode_reply(cookie: &str, reply: &[u8]) -> Dict {
    let frame = ng::frame::split(reply).expect("reply has a cookie");
    assert_eq!(frame.cookie, cookie.as_bytes(), "reply cookie");
    let value = decode(frame.payload).unwrap_or_else(|e| {
        panic!(
            "voxgate cannot decode rtpengine's reply {:?}: {e}",
            String::from_utf8_lossy(reply)
        )
    });
    value.as_dict().expect("reply is a dictionary").clone()
}

fn dict(entries: &[(&str, Value)]) -> Vec<u8> {
    let mut d = Dict::new();
    for (k, v) in entries {
        d.insert(*k, v.clone());
    }
    Value::Dict(d).to_bytes()
}

fn s(text: &str) -> Value {
    Value::from(text)
}

fn list(items: &[&str]) -> Value {
    Value::List(items.iter().map(|i| s(i)).collect())
}

/// How the replies of both must compare.
enum Expect {
    /// Byte-identical datagrams.
    Identical,
    /// Same shape; for `offer`/`answer` also the same SDP decisions.
    SameShape,
}

#[test]
fn rtpengine_and_voxgate_agree_on_ng_replies() {
    if !require_tool("rtpengine", "rtpengine-daemon") {
        return;
    }
    let rtpengine = Rtpengine::start();
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    assert!(
        wait_until(Duration::from_secs(20), || {
            exchange(&socket, rtpengine.ng, b"up d7:command4:pinge").is_some()
        }),
        "rtpengine did not answer ping on {}",
        rtpengine.ng
    );

    let offer = |call: &str, extra: &[(&str, Value)]| {
        let mut entries = vec![
            ("command", s("offer")),
            ("call-id", s(call)),
            ("from-tag", s("ft1")),
            ("sdp", s(OFFER_SDP)),
            ("replace", list(&["origin", "session-connection"])),
            ("ICE", s("remove")),
        ];
        entries.extend(extra.iter().cloned());
        dict(&entries)
    };
    let answer_sdp = OFFER_SDP
        .replace("10.0.0.1", "10.0.0.2")
        .replace("49170", "50000");
    let answer = dict(&[
        ("command", s("answer")),
        ("call-id", s("call1")),
        ("from-tag", s("ft1")),
        ("to-tag", s("tt1")),
        ("sdp", s(&answer_sdp)),
        ("replace", list(&["origin", "session-connection"])),
        ("ICE", s("remove")),
    ]);
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("p1", dict(&[("command", s("ping"))]), Expect::Identical),
        (
            "o1",
            offer("call1", &[("record-call", s("yes"))]),
            Expect::SameShape,
        ),
        ("a1", answer, Expect::SameShape),
        (
            "q1",
            dict(&[("command", s("query")), ("call-id", s("call1"))]),
            Expect::SameShape,
        ),
        ("l1", dict(&[("command", s("list"))]), Expect::Identical),
        (
            "d1",
            dict(&[
                ("command", s("delete")),
                ("call-id", s("call1")),
                ("from-tag", s("ft1")),
            ]),
            Expect::SameShape,
        ),
        (
            "q2",
            dict(&[("command", s("query")), ("call-id", s("call1"))]),
            Expect::Identical,
        ),
        (
            "o2",
            offer(
                "call2",
                &[
                    ("transport-protocol", s("RTP/SAVP")),
                    ("direction", list(&["internal", "external"])),
                    ("media-address", s("10.9.9.9")),
                ],
            ),
            Expect::SameShape,
        ),
        (
            "d2",
            dict(&[("command", s("delete")), ("call-id", s("call2"))]),
            Expect::Identical,
        ),
        // Errors and warnings: byte-identical.
        (
            "e1",
            dict(&[
                ("command", s("delete")),
                ("call-id", s("nope")),
                ("from-tag", s("ft1")),
            ]),
            Expect::Identical,
        ),
        (
            "e2",
            dict(&[
                ("command", s("delete")),
                ("call-id", s("nope")),
                ("flags", list(&["fatal"])),
            ]),
            Expect::Identical,
        ),
        ("e3", b"d7:command".to_vec(), Expect::Identical),
        ("e4", b"l7:command4:pinge".to_vec(), Expect::Identical),
        (
            "e5",
            dict(&[("command", s("frobnicate"))]),
            Expect::Identical,
        ),
        ("e6", Vec::new(), Expect::Identical),
        ("e7", dict(&[("call-id", s("x"))]), Expect::Identical),
        (
            "e8",
            dict(&[
                ("command", s("offer")),
                ("call-id", s("call3")),
                ("from-tag", s("f")),
            ]),
            Expect::Identical,
        ),
        (
            "e9",
            dict(&[
                ("command", s("offer")),
                ("call-id", s("call3")),
                ("from-tag", s("f")),
                ("sdp", s("garbage")),
            ]),
            Expect::Identical,
        ),
        (
            "e10",
            dict(&[
                ("command", s("answer")),
                ("call-id", s("nope")),
                ("from-tag", s("f")),
                ("to-tag", s("t")),
                ("sdp", s(OFFER_SDP)),
            ]),
            Expect::Identical,
        ),
        (
            "e11",
            dict(&[("command", s("list")), ("limit", Value::Int(-1))]),
            Expect::Identical,
        ),
        // A retransmission (same cookie, other content) gets the first reply from both.
        ("p1", dict(&[("command", s("list"))]), Expect::Identical),
    ];

    let mut voxgate = NgServer::default();
    let mut stand_in = StandIn::default();
    let mut sdps: HashMap<&str, (Sdp, Sdp)> = HashMap::new();
    for (cookie, payload, expect) in &cases {
        let mut datagram = format!("{cookie} ").into_bytes();
        datagram.extend_from_slice(payload);
        let theirs = exchange(&socket, rtpengine.ng, &datagram)
            .unwrap_or_else(|| panic!("rtpengine did not answer {cookie}"));
        let ours = voxgate
            .handle_datagram(&datagram, now(), &mut stand_in)
            .expect("voxgate answers every datagram with a cookie");
        let their_dict = decode_reply(cookie, &theirs);
        let our_dict = decode_reply(cookie, &ours);
        match expect {
            Expect::Identical => assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs),
                "{cookie}: replies differ"
            ),
            Expect::SameShape => {
                assert_eq!(
                    shape(&Value::Dict(our_dict.clone())),
                    shape(&Value::Dict(their_dict.clone())),
                    "{cookie}: reply shapes differ:\n ours: {our_dict:?}\ntheirs: {their_dict:?}"
                );
                if let (Some(o), Some(t)) = (our_dict.get("sdp"), their_dict.get("sdp")) {
                    let parse = |v: &Value| {
                        Sdp::parse(v.as_bytes().expect("sdp is a string"))
                            .unwrap_or_else(|e| panic!("{cookie}: SDP does not parse: {e}"))
                    };
                    sdps.insert(cookie, (parse(o), parse(t)));
                }
            }
        }
    }

    // What both decided about the rewritten SDPs.
    for (cookie, (ours, theirs)) in &sdps {
        assert_eq!(ours.origin(), theirs.origin(), "{cookie}: o=");
        assert_eq!(ours.connection(), theirs.connection(), "{cookie}: c=");
        assert_eq!(ours.media().len(), theirs.media().len(), "{cookie}");
        for (o, t) in ours.media().iter().zip(theirs.media()) {
            assert_eq!(o.proto(), t.proto(), "{cookie}: profile");
            assert_eq!(o.formats(), t.formats(), "{cookie}: formats");
            assert_eq!(o.rtpmaps().count(), t.rtpmaps().count(), "{cookie}");
            assert_eq!(o.ptime(), t.ptime(), "{cookie}: ptime");
            assert_eq!(o.direction(), t.direction(), "{cookie}: direction");
            assert_eq!(o.has_ice(), t.has_ice(), "{cookie}: ICE");
            assert_eq!(o.rtcp().is_some(), t.rtcp().is_some(), "{cookie}: a=rtcp");
            assert_eq!(
                o.crypto().next().is_some(),
                t.crypto().next().is_some(),
                "{cookie}: a=crypto"
            );
        }
    }
    assert_eq!(sdps.len(), 3, "offer, answer and the SRTP offer compared");
    assert!(sdps["o2"].1.media()[0].crypto().next().is_some());
}
