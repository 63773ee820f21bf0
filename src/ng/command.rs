//! Typed ng requests and responses, and the error reasons rtpengine answers with.
//!
//! Key spellings: rtpengine accepts most keys with a space or a hyphen (`transport protocol`
//! and `transport-protocol`), and flags in the `flags` list likewise; both are accepted here.
//! Keys voxgate does not act on are ignored, as rtpengine ignores unknown keys.

use std::net::IpAddr;

use voxgate_controlplane::sdp::{Sdp, SdpError};

use super::bencode::{DecodeError, Dict, Value};
use super::rewrite::RewriteError;

/// Why a request failed. The `Display` text is the exact `error-reason` rtpengine sends for
/// the same fault (rtpengine 10.5 `daemon/control_ng.c` and `daemon/call_interfaces.c`),
/// so controlling proxies that match on it behave the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NgError {
    #[error("Invalid data (no payload)")]
    NoPayload,
    /// The payload is neither a bencoded dictionary (`d…`) nor anything else voxgate reads;
    /// JSON payloads (`{…}`), which rtpengine also accepts, land here too.
    #[error("Invalid NG data format")]
    InvalidFormat,
    #[error("Could not decode bencode dictionary")]
    Decode(#[source] DecodeError),
    #[error("Dictionary contains no key \"command\"")]
    NoCommand,
    #[error("Unrecognized command")]
    UnknownCommand,
    #[error("No SDP body in message")]
    NoSdp,
    #[error("No call-id in message")]
    NoCallId,
    #[error("No from-tag in message")]
    NoFromTag,
    #[error("No to-tag in message")]
    NoToTag,
    #[error("Failed to parse SDP")]
    BadSdp(#[source] SdpError),
    #[error("Unknown call-id")]
    UnknownCall,
    /// `delete` of an unknown call: a `warning` on an `ok` reply unless the `fatal` flag asks
    /// for an error.
    #[error("Call-ID not found or tags didn't match")]
    CallNotFound,
    #[error("invalid limit, must be >= 0")]
    InvalidLimit,
    #[error("Error rewriting SDP")]
    Rewrite(#[source] RewriteError),
    #[error("Ran out of ports")]
    OutOfPorts,
}

impl NgError {
    /// The error reply dictionary: `result: error` and `error-reason`, nothing else (the ng
    /// documentation: "No other keys should be present in the error case").
    pub fn to_dict(&self) -> Dict {
        let mut dict = Dict::new();
        dict.insert("result", "error");
        dict.insert("error-reason", self.to_string());
        dict
    }
}

/// The commands voxgate implements. Other rtpengine commands (`start recording`,
/// `block DTMF`, `play media`, …) are answered `Unrecognized command` until they exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Ping,
    Offer,
    Answer,
    Delete,
    Query,
    List,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Offer => "offer",
            Self::Answer => "answer",
            Self::Delete => "delete",
            Self::Query => "query",
            Self::List => "list",
        }
    }
}

/// `ICE` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceMode {
    Remove,
    Force,
    Default,
    ForceRelay,
    Optional,
}

/// RTP profiles of `transport protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportProtocol {
    Avp,
    Avpf,
    Savp,
    Savpf,
}

impl TransportProtocol {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "RTP/AVP" => Self::Avp,
            "RTP/AVPF" => Self::Avpf,
            "RTP/SAVP" => Self::Savp,
            "RTP/SAVPF" => Self::Savpf,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Avp => "RTP/AVP",
            Self::Avpf => "RTP/AVPF",
            Self::Savp => "RTP/SAVP",
            Self::Savpf => "RTP/SAVPF",
        }
    }

    /// Whether the profile is SRTP (needs `a=crypto` or DTLS).
    pub fn is_secure(self) -> bool {
        matches!(self, Self::Savp | Self::Savpf)
    }
}

/// `transport protocol` key: a profile to rewrite to, or `accept` (answers only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportOverride {
    To(TransportProtocol),
    Accept,
}

/// The flags of `offer`/`answer` that voxgate understands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// `replace: [origin]`: rewrite the `o=` address.
    pub replace_origin: bool,
    /// `replace: [session connection]`: rewrite the session-level `c=` address.
    pub replace_session_connection: bool,
    pub ice: Option<IceMode>,
    pub transport_protocol: Option<TransportOverride>,
    /// `direction`: the two logical interface names (from, to). voxgate has one media
    /// interface today, so it is recorded, not acted on.
    pub direction: Option<[String; 2]>,
    /// `media address`: documented by rtpengine as overriding the SDP sender's addresses;
    /// rtpengine 10.5 also advertises it in the rewritten `c=`/`o=`, and so does
    /// [`super::rewrite::rewrite_sdp`].
    pub media_address: Option<IpAddr>,
    /// `record call` / the `record call` flag: accepted and ignored until recording exists.
    pub record_call: bool,
    /// `flags` entries voxgate does not act on, kept for logging.
    pub other: Vec<String>,
}

/// `offer` or `answer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferAnswer {
    pub call_id: String,
    pub from_tag: String,
    /// Required in `answer`.
    pub to_tag: Option<String>,
    pub via_branch: Option<String>,
    pub sdp: Vec<u8>,
    pub flags: Flags,
}

impl OfferAnswer {
    /// The SDP body, parsed (a parse failure is rtpengine's `Failed to parse SDP`).
    pub fn parse_sdp(&self) -> Result<Sdp, NgError> {
        Sdp::parse(&self.sdp).map_err(NgError::BadSdp)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub call_id: String,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
    pub via_branch: Option<String>,
    /// `flags: [fatal]`: an unknown call is an error instead of a warning.
    pub fatal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub call_id: String,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List {
    /// `limit`, default 32 (rtpengine's default).
    pub limit: u32,
}

/// A decoded ng request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Ping,
    Offer(OfferAnswer),
    Answer(OfferAnswer),
    Delete(Delete),
    Query(Query),
    List(List),
}

impl Request {
    /// Decodes a request payload (the bytes after the cookie). Checks run in rtpengine's
    /// order so the same bad request gets the same `error-reason`.
    pub fn decode(payload: &[u8]) -> Result<Self, NgError> {
        if payload.is_empty() {
            return Err(NgError::NoPayload);
        }
        if payload[0] != b'd' {
            return Err(NgError::InvalidFormat);
        }
        let value = super::bencode::decode(payload).map_err(NgError::Decode)?;
        let dict = value
            .as_dict()
            .expect("a value that starts with 'd' decodes to a dictionary");
        Self::from_dict(dict)
    }

    /// Builds a request from a decoded dictionary.
    pub fn from_dict(dict: &Dict) -> Result<Self, NgError> {
        let command = dict
            .get("command")
            .and_then(Value::as_bytes)
            .ok_or(NgError::NoCommand)?;
        Ok(match command {
            b"ping" => Self::Ping,
            b"offer" => Self::Offer(offer_answer(dict, Command::Offer)?),
            b"answer" => Self::Answer(offer_answer(dict, Command::Answer)?),
            b"delete" => Self::Delete(Delete {
                call_id: string(dict, &["call-id"]).ok_or(NgError::NoCallId)?,
                from_tag: string(dict, &["from-tag"]),
                to_tag: string(dict, &["to-tag"]),
                via_branch: string(dict, &["via-branch"]),
                fatal: flag_list(dict).any(|f| f == "fatal"),
            }),
            b"query" => Self::Query(Query {
                call_id: string(dict, &["call-id"]).ok_or(NgError::NoCallId)?,
                from_tag: string(dict, &["from-tag"]),
                to_tag: string(dict, &["to-tag"]),
            }),
            b"list" => Self::List(List {
                limit: list_limit(dict)?,
            }),
            _ => return Err(NgError::UnknownCommand),
        })
    }

    pub fn command(&self) -> Command {
        match self {
            Self::Ping => Command::Ping,
            Self::Offer(_) => Command::Offer,
            Self::Answer(_) => Command::Answer,
            Self::Delete(_) => Command::Delete,
            Self::Query(_) => Command::Query,
            Self::List(_) => Command::List,
        }
    }

    /// The `call-id`, for logs.
    pub fn call_id(&self) -> Option<&str> {
        match self {
            Self::Offer(r) | Self::Answer(r) => Some(&r.call_id),
            Self::Delete(r) => Some(&r.call_id),
            Self::Query(r) => Some(&r.call_id),
            Self::Ping | Self::List(_) => None,
        }
    }
}

/// A text value under any of `keys`. Non-UTF-8 values count as absent: SIP call-ids and
/// tags are ASCII, and a lossy conversion could merge two calls.
fn string(dict: &Dict, keys: &[&str]) -> Option<String> {
    dict.get_any(keys)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The `flags` list, each entry with hyphens read as spaces (`trust-address` = `trust
/// address`), as rtpengine reads them.
fn flag_list(dict: &Dict) -> impl Iterator<Item = String> + '_ {
    dict.get("flags")
        .and_then(Value::as_list)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_str)
        .map(|f| f.replace('-', " "))
}

/// `limit`: an integer or a decimal string (rtpengine's `get_int_str`), default 32.
fn list_limit(dict: &Dict) -> Result<u32, NgError> {
    let limit = match dict.get("limit") {
        None => 32,
        Some(Value::Int(i)) => *i,
        Some(v) => v.as_str().and_then(|s| s.parse().ok()).unwrap_or(32),
    };
    if limit < 0 {
        return Err(NgError::InvalidLimit);
    }
    Ok(u32::try_from(limit).unwrap_or(u32::MAX))
}

fn offer_answer(dict: &Dict, command: Command) -> Result<OfferAnswer, NgError> {
    let sdp = dict
        .get("sdp")
        .and_then(Value::as_bytes)
        .ok_or(NgError::NoSdp)?
        .to_vec();
    let call_id = string(dict, &["call-id"]).ok_or(NgError::NoCallId)?;
    let from_tag = string(dict, &["from-tag"]).ok_or(NgError::NoFromTag)?;
    let to_tag = string(dict, &["to-tag"]);
    if command == Command::Answer && to_tag.is_none() {
        return Err(NgError::NoToTag);
    }
    Ok(OfferAnswer {
        call_id,
        from_tag,
        to_tag,
        via_branch: string(dict, &["via-branch"]),
        sdp,
        flags: flags(dict),
    })
}

fn flags(dict: &Dict) -> Flags {
    let mut flags = Flags::default();
    let replace = dict
        .get("replace")
        .and_then(Value::as_list)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_str)
        .map(|r| r.replace('-', " "));
    for item in replace {
        match item.as_str() {
            "origin" => flags.replace_origin = true,
            "session connection" => flags.replace_session_connection = true,
            _ => {}
        }
    }
    for flag in flag_list(dict) {
        match flag.as_str() {
            "record call" => flags.record_call = true,
            "replace origin" => flags.replace_origin = true,
            "replace session connection" => flags.replace_session_connection = true,
            _ => flags.other.push(flag),
        }
    }
    flags.ice = dict
        .get("ICE")
        .and_then(Value::as_str)
        .and_then(|v| match v {
            "remove" => Some(IceMode::Remove),
            "force" => Some(IceMode::Force),
            "default" => Some(IceMode::Default),
            "force-relay" | "force relay" => Some(IceMode::ForceRelay),
            "optional" => Some(IceMode::Optional),
            _ => None,
        });
    flags.transport_protocol = dict
        .get_any(&["transport protocol", "transport-protocol"])
        .and_then(Value::as_str)
        .and_then(|v| match v {
            "accept" => Some(TransportOverride::Accept),
            other => TransportProtocol::parse(other).map(TransportOverride::To),
        });
    flags.direction = dict
        .get("direction")
        .and_then(Value::as_list)
        .and_then(|list| match list {
            [from, to] => Some([from.as_str()?.to_owned(), to.as_str()?.to_owned()]),
            _ => None,
        });
    // rtpengine ignores an unparsable media address (answers ok), and so does voxgate.
    flags.media_address = dict
        .get_any(&["media address", "media-address"])
        .and_then(Value::as_str)
        .and_then(|a| a.parse().ok());
    if let Some(record) = dict
        .get_any(&["record call", "record-call"])
        .and_then(Value::as_str)
    {
        flags.record_call = matches!(record, "yes" | "on");
    }
    flags
}

/// `{family, address, port}` as rtpengine's `ng_stats_endpoint` writes it.
fn endpoint_dict(addr: std::net::SocketAddr) -> Dict {
    let mut dict = Dict::new();
    dict.insert("family", family(addr.ip()));
    dict.insert("address", addr.ip().to_string());
    dict.insert("port", i64::from(addr.port()));
    dict
}

fn family(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    }
}

/// Packet counters of one stream or of a call's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketStats {
    pub packets: u64,
    pub bytes: u64,
    pub errors: u64,
}

impl PacketStats {
    fn to_dict(self) -> Dict {
        let mut dict = Dict::new();
        dict.insert("packets", saturating_i64(self.packets));
        dict.insert("bytes", saturating_i64(self.bytes));
        dict.insert("errors", saturating_i64(self.errors));
        dict
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One packet stream (RTP or RTCP) of a media section, as in rtpengine's `query` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStats {
    pub local: std::net::SocketAddr,
    /// Where packets are sent (learned or from the SDP).
    pub endpoint: Option<std::net::SocketAddr>,
    /// What the SDP advertised.
    pub advertised_endpoint: Option<std::net::SocketAddr>,
    /// Unix seconds of the last packet received.
    pub last_packet: u64,
    /// `RTP`, `RTCP`, `filled`, `confirmed`, …
    pub flags: Vec<String>,
    pub stats: PacketStats,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaStats {
    /// From 1.
    pub index: u32,
    /// `audio`, `video`, …
    pub media_type: String,
    pub protocol: String,
    pub streams: Vec<StreamStats>,
    /// `initialized`, `send`, `recv`, `rtcp-mux`, `SDES`, `ICE`, …
    pub flags: Vec<String>,
}

/// One party (SIP tag) of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagStats {
    pub tag: String,
    /// Unix seconds.
    pub created: u64,
    /// The tags this party receives media from and sends media to (rtpengine 10.5's
    /// `subscriptions`/`subscribers`, type `offer/answer` for a plain call).
    pub peers: Vec<String>,
    pub medias: Vec<MediaStats>,
}

/// The statistics of one call: rtpengine's `query` reply body, also added to `delete`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStats {
    /// Unix time of creation, seconds and the microsecond part.
    pub created: u64,
    pub created_us: u32,
    pub last_signal: u64,
    pub tags: Vec<TagStats>,
    pub totals_rtp: PacketStats,
    pub totals_rtcp: PacketStats,
}

impl CallStats {
    /// Writes the keys in rtpengine 10.5's order into `dict`.
    pub fn write_into(&self, dict: &mut Dict) {
        dict.insert("created", saturating_i64(self.created));
        dict.insert("created_us", i64::from(self.created_us));
        dict.insert("last signal", saturating_i64(self.last_signal));
        // Per-SSRC statistics come with the relay's RTCP processing.
        dict.insert("SSRC", Dict::new());
        let mut tags = Dict::new();
        for tag in &self.tags {
            tags.insert(tag.tag.as_str(), tag_dict(tag));
        }
        dict.insert("tags", tags);
        let mut totals = Dict::new();
        totals.insert("RTP", self.totals_rtp.to_dict());
        totals.insert("RTCP", self.totals_rtcp.to_dict());
        dict.insert("totals", totals);
    }
}

fn tag_dict(tag: &TagStats) -> Dict {
    let peers = || -> Value {
        tag.peers
            .iter()
            .map(|p| {
                let mut d = Dict::new();
                d.insert("tag", p.as_str());
                d.insert("type", "offer/answer");
                Value::Dict(d)
            })
            .collect::<Vec<_>>()
            .into()
    };
    let mut dict = Dict::new();
    dict.insert("tag", tag.tag.as_str());
    dict.insert("created", saturating_i64(tag.created));
    dict.insert("subscriptions", peers());
    dict.insert("subscribers", peers());
    let medias: Vec<Value> = tag.medias.iter().map(|m| media_dict(m).into()).collect();
    dict.insert("medias", medias);
    dict
}

fn media_dict(media: &MediaStats) -> Dict {
    let mut dict = Dict::new();
    dict.insert("index", i64::from(media.index));
    dict.insert("type", media.media_type.as_str());
    dict.insert("protocol", media.protocol.as_str());
    let streams: Vec<Value> = media
        .streams
        .iter()
        .map(|s| stream_dict(s).into())
        .collect();
    dict.insert("streams", streams);
    dict.insert("flags", strings(&media.flags));
    dict
}

fn stream_dict(stream: &StreamStats) -> Dict {
    let mut dict = Dict::new();
    dict.insert("local port", i64::from(stream.local.port()));
    dict.insert("local address", stream.local.ip().to_string());
    dict.insert("family", family(stream.local.ip()));
    if let Some(endpoint) = stream.endpoint {
        dict.insert("endpoint", endpoint_dict(endpoint));
    }
    if let Some(advertised) = stream.advertised_endpoint {
        dict.insert("advertised endpoint", endpoint_dict(advertised));
    }
    dict.insert("last packet", saturating_i64(stream.last_packet));
    dict.insert("flags", strings(&stream.flags));
    dict.insert("stats", stream.stats.to_dict());
    dict
}

fn strings(items: &[String]) -> Value {
    items
        .iter()
        .map(|s| Value::from(s.as_str()))
        .collect::<Vec<_>>()
        .into()
}

/// A successful reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `ping`: `result: pong`.
    Pong,
    /// `offer`/`answer`: the rewritten SDP.
    Sdp(Vec<u8>),
    /// `delete`: the call's final statistics when a party was named, and a warning when
    /// the call was not found (without `fatal`).
    Deleted {
        stats: Option<CallStats>,
        warning: Option<String>,
    },
    Query(CallStats),
    /// `list`: call-ids.
    List(Vec<String>),
}

impl Response {
    /// The reply dictionary, keys in rtpengine's order (`result` last).
    pub fn to_dict(&self) -> Dict {
        let mut dict = Dict::new();
        let result = match self {
            Self::Pong => "pong",
            Self::Sdp(sdp) => {
                dict.insert("sdp", sdp.clone());
                "ok"
            }
            Self::Deleted { stats, warning } => {
                if let Some(stats) = stats {
                    stats.write_into(&mut dict);
                }
                if let Some(warning) = warning {
                    dict.insert("warning", warning.as_str());
                }
                "ok"
            }
            Self::Query(stats) => {
                stats.write_into(&mut dict);
                "ok"
            }
            Self::List(calls) => {
                dict.insert("calls", strings(calls));
                "ok"
            }
        };
        dict.insert("result", result);
        dict
    }
}

#[cfg(test)]
mod tests {
    use super::super::bencode::decode;
    use super::*;

    fn request(wire: &[u8]) -> Result<Request, NgError> {
        Request::decode(wire)
    }

    #[test]
    fn offer_with_the_common_flags() {
        let wire = b"d7:command5:offer7:call-id3:abc8:from-tag2:ft3:sdp5:v=0\r\n\
            7:replacel6:origin18:session-connectione3:ICE6:remove\
            18:transport-protocol8:RTP/SAVP9:directionl8:internal8:externale\
            13:media-address8:10.0.0.911:record-call3:yes5:flagsl13:trust-addressee";
        let Ok(Request::Offer(offer)) = request(wire) else {
            panic!("not an offer: {:?}", request(wire));
        };
        assert_eq!(offer.call_id, "abc");
        assert_eq!(offer.from_tag, "ft");
        assert_eq!(offer.sdp, b"v=0\r\n");
        let f = offer.flags;
        assert!(f.replace_origin && f.replace_session_connection && f.record_call);
        assert_eq!(f.ice, Some(IceMode::Remove));
        assert_eq!(
            f.transport_protocol,
            Some(TransportOverride::To(TransportProtocol::Savp))
        );
        assert_eq!(f.direction, Some(["internal".into(), "external".into()]));
        assert_eq!(f.media_address, Some("10.0.0.9".parse().expect("literal")));
        assert_eq!(f.other, ["trust address"]);
    }

    #[test]
    fn spaced_key_spellings_are_accepted() {
        let wire = b"d7:command6:answer7:call-id1:c8:from-tag1:f6:to-tag1:t3:sdp3:v=0\
            18:transport protocol6:accept13:media address3:::111:record call2:one";
        let Ok(Request::Answer(answer)) = request(wire) else {
            panic!("not an answer");
        };
        assert_eq!(answer.to_tag.as_deref(), Some("t"));
        assert_eq!(
            answer.flags.transport_protocol,
            Some(TransportOverride::Accept)
        );
        assert_eq!(
            answer.flags.media_address,
            Some("::1".parse().expect("literal"))
        );
        assert!(answer.flags.record_call);
    }

    #[test]
    fn errors_match_rtpengine_reasons_in_its_order() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "Invalid data (no payload)"),
            (b"i5e", "Invalid NG data format"),
            (b"l7:command4:pinge", "Invalid NG data format"),
            (b"{\"command\":\"ping\"}", "Invalid NG data format"),
            (b"d7:command", "Could not decode bencode dictionary"),
            (b"d7:call-id1:xe", "Dictionary contains no key \"command\""),
            (b"d7:command10:frobnicatee", "Unrecognized command"),
            (b"d7:command5:offer7:call-id1:ce", "No SDP body in message"),
            (b"d7:command5:offer3:sdp3:v=0e", "No call-id in message"),
            (
                b"d7:command5:offer3:sdp3:v=07:call-id1:ce",
                "No from-tag in message",
            ),
            (
                b"d7:command6:answer3:sdp3:v=07:call-id1:c8:from-tag1:fe",
                "No to-tag in message",
            ),
            (b"d7:command6:delete8:from-tag1:xe", "No call-id in message"),
            (b"d7:command5:querye", "No call-id in message"),
            (
                b"d7:command4:list5:limiti-1ee",
                "invalid limit, must be >= 0",
            ),
        ];
        for (wire, reason) in cases {
            let error = request(wire).expect_err(&String::from_utf8_lossy(wire));
            assert_eq!(error.to_string(), *reason);
            let dict = error.to_dict();
            assert_eq!(
                dict.keys().collect::<Vec<_>>(),
                [&b"result"[..], b"error-reason"]
            );
        }
    }

    #[test]
    fn list_limit_default_and_string_form() {
        assert_eq!(
            request(b"d7:command4:liste"),
            Ok(Request::List(List { limit: 32 }))
        );
        assert_eq!(
            request(b"d7:command4:list5:limit1:5e"),
            Ok(Request::List(List { limit: 5 }))
        );
    }

    #[test]
    fn delete_fatal_flag() {
        let Ok(Request::Delete(delete)) =
            request(b"d7:command6:delete7:call-id1:c5:flagsl5:fatalee")
        else {
            panic!("not a delete");
        };
        assert!(delete.fatal);
        assert_eq!(delete.from_tag, None);
    }

    #[test]
    fn responses_have_rtpengine_shapes() {
        assert_eq!(
            Value::Dict(Response::Pong.to_dict()).to_bytes(),
            b"d6:result4:ponge"
        );
        assert_eq!(
            Value::Dict(Response::Sdp(b"v=0\r\n".to_vec()).to_dict()).to_bytes(),
            b"d3:sdp5:v=0\r\n6:result2:oke"
        );
        // The exact bytes rtpengine 10.5 sent for `list` and for deleting an unknown call.
        assert_eq!(
            Value::Dict(Response::List(vec!["call1".into()]).to_dict()).to_bytes(),
            b"d5:callsl5:call1e6:result2:oke"
        );
        let warning = Response::Deleted {
            stats: None,
            warning: Some(NgError::CallNotFound.to_string()),
        };
        assert_eq!(
            Value::Dict(warning.to_dict()).to_bytes(),
            &b"d7:warning38:Call-ID not found or tags didn't match6:result2:oke"[..]
        );
    }

    #[test]
    fn query_reply_decodes_with_the_documented_keys() {
        let addr = |s: &str| s.parse::<std::net::SocketAddr>().expect("literal");
        let stats = CallStats {
            created: 1_700_000_000,
            created_us: 5,
            last_signal: 1_700_000_001,
            tags: vec![TagStats {
                tag: "ft".into(),
                created: 1_700_000_000,
                peers: vec!["tt".into()],
                medias: vec![MediaStats {
                    index: 1,
                    media_type: "audio".into(),
                    protocol: "RTP/AVP".into(),
                    streams: vec![StreamStats {
                        local: addr("127.0.0.1:30000"),
                        endpoint: Some(addr("10.0.0.1:49170")),
                        advertised_endpoint: Some(addr("10.0.0.1:49170")),
                        last_packet: 1_700_000_002,
                        flags: vec!["RTP".into()],
                        stats: PacketStats::default(),
                    }],
                    flags: vec!["initialized".into()],
                }],
            }],
            totals_rtp: PacketStats::default(),
            totals_rtcp: PacketStats::default(),
        };
        let wire = Value::Dict(Response::Query(stats).to_dict()).to_bytes();
        let value = decode(&wire).expect("our own encoding decodes");
        let dict = value.as_dict().expect("dict");
        let stream = dict
            .get("tags")
            .and_then(Value::as_dict)
            .and_then(|t| t.get("ft"))
            .and_then(Value::as_dict)
            .and_then(|t| t.get("medias"))
            .and_then(Value::as_list)
            .and_then(|m| {
                m[0].as_dict()?.get("streams")?.as_list()?[0]
                    .as_dict()
                    .cloned()
            })
            .expect("a stream");
        assert_eq!(
            stream
                .get("endpoint")
                .and_then(|e| e.as_dict()?.get("port")?.as_int()),
            Some(49170)
        );
        assert_eq!(dict.get("result").and_then(Value::as_str), Some("ok"));
    }
}
