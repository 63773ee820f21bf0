//! The records the store keeps, and their conversion from and to the control plane's
//! in-memory types.
//!
//! Owns the wall-clock form of expiry times (`Instant` does not survive a restart, so a
//! record holds Unix seconds) and the byte encoding of each record: one format byte, then
//! a postcard body. Does not own which records exist (the registrar and security policy
//! decide) or the database (`super`).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use voxgate_controlplane::registrar::{Binding, Flow};
use voxgate_controlplane::security::{Ban, BanReason};
use voxgate_controlplane::sip::Transport;

/// First byte of every encoded record; bump it when a record's layout changes, and teach
/// `decode_*` the old one.
const FORMAT_V1: u8 = 1;

/// One contact binding as stored. The key is (`aor`, `contact`); the connection id of a
/// TCP/TLS flow is not stored, since connections die with the process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBinding {
    /// Part of the key, so not repeated in the value.
    #[serde(skip)]
    pub aor: String,
    #[serde(skip)]
    pub contact: String,
    #[serde(with = "transport_code")]
    pub transport: Transport,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// Wall-clock expiry, seconds since the Unix epoch.
    pub expires_unix: u64,
    pub q: Option<u16>,
    pub instance: Option<String>,
    pub reg_id: Option<u32>,
    pub path: Vec<String>,
    pub call_id: String,
    pub cseq: u32,
    pub user_agent: Option<String>,
}

impl StoredBinding {
    /// The stored form of `binding`, given the monotonic and wall-clock readings of the
    /// same moment. Remaining lifetime rounds up to whole seconds, so a binding never
    /// expires early because it was stored.
    pub fn from_binding(binding: &Binding, now: Instant, now_unix: u64) -> StoredBinding {
        StoredBinding {
            aor: binding.aor.clone(),
            contact: binding.contact.clone(),
            transport: binding.flow.transport,
            remote: binding.flow.remote,
            local: binding.flow.local,
            expires_unix: unix_deadline(binding.expires, now, now_unix),
            q: binding.q,
            instance: binding.instance.clone(),
            reg_id: binding.reg_id,
            path: binding.path.clone(),
            call_id: binding.call_id.clone(),
            cseq: binding.cseq,
            user_agent: binding.user_agent.clone(),
        }
    }

    /// The in-memory binding, or `None` when it has expired by `now_unix`. The flow has no
    /// connection: a TCP/TLS contact is reached again once it reconnects (or through a new
    /// connection to its address).
    pub fn to_binding(&self, now: Instant, now_unix: u64) -> Option<Binding> {
        Some(Binding {
            aor: self.aor.clone(),
            contact: self.contact.clone(),
            flow: Flow {
                transport: self.transport,
                remote: self.remote,
                local: self.local,
                conn: None,
            },
            expires: instant_deadline(self.expires_unix, now, now_unix)?,
            q: self.q,
            instance: self.instance.clone(),
            reg_id: self.reg_id,
            path: self.path.clone(),
            call_id: self.call_id.clone(),
            cseq: self.cseq,
            user_agent: self.user_agent.clone(),
        })
    }

    /// Whether the binding is still alive at `now_unix`.
    pub fn is_live(&self, now_unix: u64) -> bool {
        self.expires_unix > now_unix
    }
}

/// A ban as stored, keyed by its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBan {
    pub ip: IpAddr,
    /// Wall-clock end of the ban, seconds since the Unix epoch.
    pub expires_unix: u64,
    pub reason: BanReason,
}

impl StoredBan {
    /// The stored form of `ban` (remaining time rounded up to whole seconds).
    pub fn from_ban(ban: &Ban, now: Instant, now_unix: u64) -> StoredBan {
        StoredBan {
            ip: ban.ip,
            expires_unix: unix_deadline(ban.until, now, now_unix),
            reason: ban.reason,
        }
    }

    /// The in-memory ban, or `None` when it has ended by `now_unix`.
    pub fn to_ban(self, now: Instant, now_unix: u64) -> Option<Ban> {
        Some(Ban {
            ip: self.ip,
            until: instant_deadline(self.expires_unix, now, now_unix)?,
            reason: self.reason,
        })
    }

    /// Whether the ban is still in force at `now_unix`.
    pub fn is_live(self, now_unix: u64) -> bool {
        self.expires_unix > now_unix
    }
}

/// An extension defined through the admin API (EXT-01), keyed by its number. The
/// password itself is never stored: only its digest HA1 values for the realm it was set
/// in, which is all authentication needs (and an HA1 is useless in any other realm).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredExtension {
    /// The key, so not repeated in the value.
    #[serde(skip)]
    pub number: String,
    pub auth_id: String,
    pub name: Option<String>,
    /// Allowed source networks as text (`192.0.2.0/24`); empty means anywhere.
    pub networks: Vec<String>,
    /// The digest realm the HA1 values were computed in.
    pub realm: String,
    /// Lower-case hex `H(auth_id:realm:password)` per algorithm.
    pub ha1_md5: Option<String>,
    pub ha1_sha256: Option<String>,
    pub ha1_sha512_256: Option<String>,
    /// When it was created, seconds since the Unix epoch.
    pub created_unix: u64,
}

impl std::fmt::Debug for StoredExtension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // An HA1 is password-equivalent in its realm: never printed.
        f.debug_struct("StoredExtension")
            .field("number", &self.number)
            .field("auth_id", &self.auth_id)
            .field("name", &self.name)
            .field("networks", &self.networks)
            .field("realm", &self.realm)
            .field("created_unix", &self.created_unix)
            .finish_non_exhaustive()
    }
}

/// `deadline` (monotonic) as Unix seconds, rounded up; a deadline already past maps to
/// `now_unix` (expired).
fn unix_deadline(deadline: Instant, now: Instant, now_unix: u64) -> u64 {
    let left = deadline.saturating_duration_since(now);
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    now_unix.saturating_add(secs)
}

/// Unix seconds as a monotonic deadline, or `None` when already past (or so far ahead
/// that `Instant` cannot represent it, which no real record is).
fn instant_deadline(expires_unix: u64, now: Instant, now_unix: u64) -> Option<Instant> {
    let left = expires_unix.checked_sub(now_unix).filter(|&s| s > 0)?;
    now.checked_add(Duration::from_secs(left))
}

/// Why a stored record could not be read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("empty record")]
    Empty,
    #[error("record format {found} is not known to this version of voxgate")]
    Format { found: u8 },
    #[error("undecodable record body: {0}")]
    Body(#[source] postcard::Error),
    #[error("unknown ban reason {0:?}")]
    BanReason(String),
    #[error("ban key of {len} bytes is neither an IPv4 nor an IPv6 address")]
    BanKey { len: usize },
}

pub(crate) fn encode_binding(binding: &StoredBinding) -> Vec<u8> {
    encode(binding)
}

pub(crate) fn decode_binding(
    aor: &str,
    contact: &str,
    bytes: &[u8],
) -> Result<StoredBinding, RecordError> {
    let mut binding: StoredBinding = decode(bytes)?;
    aor.clone_into(&mut binding.aor);
    contact.clone_into(&mut binding.contact);
    Ok(binding)
}

pub(crate) fn encode_extension(extension: &StoredExtension) -> Vec<u8> {
    encode(extension)
}

pub(crate) fn decode_extension(number: &str, bytes: &[u8]) -> Result<StoredExtension, RecordError> {
    let mut extension: StoredExtension = decode(bytes)?;
    number.clone_into(&mut extension.number);
    Ok(extension)
}

#[derive(Serialize, Deserialize)]
struct BanRecord<'a> {
    expires_unix: u64,
    /// [`BanReason::as_str`]: names survive a reordering of the enum.
    reason: &'a str,
}

pub(crate) fn encode_ban(ban: &StoredBan) -> Vec<u8> {
    encode(&BanRecord {
        expires_unix: ban.expires_unix,
        reason: ban.reason.as_str(),
    })
}

pub(crate) fn decode_ban(key: &[u8], bytes: &[u8]) -> Result<StoredBan, RecordError> {
    let ip = ip_from_key(key)?;
    let record: BanRecord<'_> = decode(bytes)?;
    let reason = ban_reason(record.reason)
        .ok_or_else(|| RecordError::BanReason(record.reason.to_owned()))?;
    Ok(StoredBan {
        ip,
        expires_unix: record.expires_unix,
        reason,
    })
}

/// The ban table's key: 4 bytes for IPv4, 16 for IPv6.
pub(crate) fn ip_key(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn ip_from_key(key: &[u8]) -> Result<IpAddr, RecordError> {
    if let Ok(v4) = <[u8; 4]>::try_from(key) {
        Ok(IpAddr::from(v4))
    } else if let Ok(v6) = <[u8; 16]>::try_from(key) {
        Ok(IpAddr::from(v6))
    } else {
        Err(RecordError::BanKey { len: key.len() })
    }
}

fn ban_reason(text: &str) -> Option<BanReason> {
    [BanReason::AuthFailures, BanReason::Flood, BanReason::Manual]
        .into_iter()
        .find(|r| r.as_str() == text)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_V1];
    // Serializing plain structs of strings, integers and addresses into a Vec cannot fail.
    let body = postcard::to_allocvec(value).expect("postcard encodes plain data into a Vec");
    out.extend_from_slice(&body);
    out
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, RecordError> {
    match bytes.split_first() {
        None => Err(RecordError::Empty),
        Some((&FORMAT_V1, body)) => postcard::from_bytes(body).map_err(RecordError::Body),
        Some((&found, _)) => Err(RecordError::Format { found }),
    }
}

/// `Transport` as one byte; the codes are part of the file format.
mod transport_code {
    use serde::{Deserialize, Deserializer, Serializer};
    use voxgate_controlplane::sip::Transport;

    pub(super) fn serialize<S: Serializer>(t: &Transport, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(match t {
            Transport::Udp => 0,
            Transport::Tcp => 1,
            Transport::Tls => 2,
        })
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Transport, D::Error> {
        match u8::deserialize(d)? {
            0 => Ok(Transport::Udp),
            1 => Ok(Transport::Tcp),
            2 => Ok(Transport::Tls),
            other => Err(serde::de::Error::custom(format_args!(
                "unknown transport code {other}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use voxgate_controlplane::endpoint::ConnId;

    use super::*;

    #[expect(clippy::disallowed_methods, reason = "tests stand in for the driver")]
    fn now() -> Instant {
        Instant::now()
    }

    pub(crate) fn binding(aor: &str, contact: &str, expires: Instant) -> Binding {
        Binding {
            aor: aor.into(),
            contact: contact.into(),
            flow: Flow {
                transport: Transport::Tcp,
                remote: "192.0.2.7:49152".parse().expect("addr"),
                local: "[2001:db8::1]:5060".parse().expect("addr"),
                conn: Some(ConnId(42)),
            },
            expires,
            q: Some(500),
            instance: Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>".into()),
            reg_id: Some(1),
            path: vec!["<sip:edge.example.test;lr>".into()],
            call_id: "a84b4c76e66710".into(),
            cseq: 314_159,
            user_agent: Some("Linphone/5.2".into()),
        }
    }

    #[test]
    fn binding_round_trips_through_bytes_and_time() {
        let t0 = now();
        let b = binding(
            "100",
            "sip:100@192.0.2.7:49152;transport=tcp",
            t0 + Duration::from_secs(600),
        );
        let stored = StoredBinding::from_binding(&b, t0, 1_700_000_000);
        assert_eq!(stored.expires_unix, 1_700_000_600);
        let bytes = encode_binding(&stored);
        assert_eq!(bytes[0], FORMAT_V1);
        let back = decode_binding(&b.aor, &b.contact, &bytes).expect("decodes");
        assert_eq!(back, stored);

        // "Restart": another monotonic origin, 100 s later on the wall clock.
        let t1 = now() + Duration::from_secs(5);
        let restored = back.to_binding(t1, 1_700_000_100).expect("still live");
        assert_eq!(restored.expires, t1 + Duration::from_secs(500));
        assert_eq!(restored.flow.conn, None, "connections are not persisted");
        let mut expected = b.clone();
        expected.flow.conn = None;
        expected.expires = restored.expires;
        assert_eq!(restored, expected);

        assert!(
            back.to_binding(t1, 1_700_000_600).is_none(),
            "expired at its second"
        );
        assert!(back.to_binding(t1, 1_800_000_000).is_none());
        assert!(back.is_live(1_700_000_599));
        assert!(!back.is_live(1_700_000_600));
    }

    #[test]
    fn partial_seconds_round_up_and_past_deadlines_expire() {
        let t0 = now();
        let b = binding("100", "sip:a@x", t0 + Duration::from_millis(1500));
        assert_eq!(StoredBinding::from_binding(&b, t0, 1000).expires_unix, 1002);
        let past = binding("100", "sip:a@x", t0);
        let stored = StoredBinding::from_binding(&past, t0 + Duration::from_secs(9), 1000);
        assert_eq!(stored.expires_unix, 1000);
        assert!(stored.to_binding(t0, 1000).is_none());
    }

    #[test]
    fn ban_round_trips() {
        let t0 = now();
        for ip in ["203.0.113.9", "2001:db8:1:2::"] {
            let ban = Ban {
                ip: ip.parse().expect("ip"),
                until: t0 + Duration::from_secs(3600),
                reason: BanReason::AuthFailures,
            };
            let stored = StoredBan::from_ban(&ban, t0, 50);
            assert_eq!(stored.expires_unix, 3650);
            let back = decode_ban(&ip_key(ban.ip), &encode_ban(&stored)).expect("decodes");
            assert_eq!(back, stored);
            let restored = back.to_ban(t0, 50).expect("live");
            assert_eq!(restored, ban);
            assert!(back.to_ban(t0, 3650).is_none());
        }
        for reason in [BanReason::AuthFailures, BanReason::Flood, BanReason::Manual] {
            assert_eq!(ban_reason(reason.as_str()), Some(reason));
        }
    }

    #[test]
    fn bad_records_are_errors_not_panics() {
        assert!(matches!(
            decode_binding("1", "c", &[]),
            Err(RecordError::Empty)
        ));
        assert!(matches!(
            decode_binding("1", "c", &[9, 0, 0]),
            Err(RecordError::Format { found: 9 })
        ));
        assert!(matches!(
            decode_binding("1", "c", &[FORMAT_V1, 7]),
            Err(RecordError::Body(_))
        ));
        assert!(matches!(
            decode_ban(
                &[1, 2, 3],
                &encode_ban(&StoredBan {
                    ip: "192.0.2.1".parse().expect("ip"),
                    expires_unix: 1,
                    reason: BanReason::Flood
                })
            ),
            Err(RecordError::BanKey { len: 3 })
        ));
        let odd = encode(&BanRecord {
            expires_unix: 1,
            reason: "bored",
        });
        assert!(matches!(
            decode_ban(&[192, 0, 2, 1], &odd),
            Err(RecordError::BanReason(r)) if r == "bored"
        ));
        // Every truncation of a valid record fails cleanly.
        let t0 = now();
        let full = encode_binding(&StoredBinding::from_binding(
            &binding("100", "sip:a@x", t0),
            t0,
            1,
        ));
        for len in 0..full.len() {
            assert!(
                decode_binding("100", "sip:a@x", &full[..len]).is_err(),
                "{len}"
            );
        }
    }

    pub(crate) fn extension(number: &str) -> StoredExtension {
        StoredExtension {
            number: number.into(),
            auth_id: format!("u{number}"),
            name: Some("Alice Example".into()),
            networks: vec!["192.0.2.0/24".into(), "2001:db8::/32".into()],
            realm: "voxgate.test".into(),
            ha1_md5: Some("0123456789abcdef0123456789abcdef".into()),
            ha1_sha256: Some("ab".repeat(32)),
            ha1_sha512_256: None,
            created_unix: 1_700_000_000,
        }
    }

    #[test]
    fn extension_round_trips_and_hides_its_ha1() {
        let ext = extension("1000");
        let bytes = encode_extension(&ext);
        assert_eq!(bytes[0], FORMAT_V1);
        let back = decode_extension("1000", &bytes).expect("decodes");
        assert_eq!(back, ext);
        let debug = format!("{back:?}");
        assert!(
            debug.contains("u1000") && !debug.contains("0123456789abcdef"),
            "{debug}"
        );
        for len in 0..bytes.len() {
            assert!(decode_extension("1000", &bytes[..len]).is_err(), "{len}");
        }
    }

    #[test]
    fn a_typical_binding_is_small_on_disk() {
        let t0 = now();
        let b = binding("100", "sip:100@192.0.2.7:49152;transport=tcp", t0);
        let bytes = encode_binding(&StoredBinding::from_binding(&b, t0, 1_700_000_000));
        // The strings alone are ~120 bytes; the framing around them stays small.
        assert!(bytes.len() < 200, "{} bytes", bytes.len());
    }
}
