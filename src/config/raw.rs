//! The config file's shape, as serde reads it: every table rejects unknown keys, and every
//! value that is checked later keeps its byte span so an error can point at it.
//!
//! Owns only structure (which keys exist, which are tables, lists, strings or numbers).
//! Values stay raw here; `validate` turns them into the typed [`crate::config::Config`].

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) sip: Option<Spanned<RawSip>>,
    pub(crate) media: Option<RawMedia>,
    pub(crate) admin: Option<RawAdmin>,
    pub(crate) store: Option<RawStore>,
    pub(crate) ng: Option<RawNg>,
    pub(crate) registrar: Option<RawRegistrar>,
    pub(crate) auth: Option<RawAuth>,
    pub(crate) nat: Option<RawNat>,
    pub(crate) security: Option<RawSecurity>,
    pub(crate) limits: Option<RawLimits>,
    pub(crate) tls: Option<RawTls>,
    pub(crate) log: Option<RawLog>,
    #[serde(default)]
    pub(crate) extension: Vec<Spanned<RawExtension>>,
    #[serde(default)]
    pub(crate) trunk: Vec<Spanned<RawTrunk>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSip {
    pub(crate) listen: Option<Spanned<Vec<Spanned<RawListen>>>>,
    pub(crate) domain: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) aliases: Vec<Spanned<String>>,
    pub(crate) max_forwards: Option<Spanned<i64>>,
    pub(crate) force_rport: Option<bool>,
    pub(crate) timers: Option<RawTimers>,
}

/// One `sip.listen` entry: `"udp:203.0.113.1:5060"`, or a table with the same `address`
/// and the listener's own `allow`/`block` lists. (Not `#[serde(untagged)]`: buffering would
/// lose the spans of the table's values.)
#[derive(Debug)]
pub(crate) enum RawListen {
    Text(String),
    Table(RawListenTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListenTable {
    pub(crate) address: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) allow: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) block: Vec<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawListen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListenVisitor;

        impl<'de> Visitor<'de> for ListenVisitor {
            type Value = RawListen;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a listener like \"udp:0.0.0.0:5060\" or a table like \
                     { address = \"udp:0.0.0.0:5060\", allow = [\"192.0.2.0/24\"] }",
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawListen, E> {
                Ok(RawListen::Text(v.to_owned()))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RawListen, A::Error> {
                RawListenTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawListen::Table)
            }
        }

        deserializer.deserialize_any(ListenVisitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimers {
    pub(crate) t1: Option<Spanned<RawDuration>>,
    pub(crate) t2: Option<Spanned<RawDuration>>,
    pub(crate) t4: Option<Spanned<RawDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMedia {
    pub(crate) workers: Option<Spanned<i64>>,
    pub(crate) bind: Option<Spanned<String>>,
    pub(crate) rtp_ports: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub(crate) listen: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    pub(crate) path: Option<Spanned<String>>,
    pub(crate) redis: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNg {
    pub(crate) listen: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRegistrar {
    pub(crate) default_expires: Option<Spanned<RawDuration>>,
    pub(crate) min_expires: Option<Spanned<RawDuration>>,
    pub(crate) max_expires: Option<Spanned<RawDuration>>,
    pub(crate) max_contacts: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    pub(crate) algorithms: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) nonce_ttl: Option<Spanned<RawDuration>>,
    pub(crate) realm: Option<Spanned<String>>,
    pub(crate) min_password_length: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNat {
    pub(crate) keepalive_interval: Option<Spanned<RawDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecurity {
    #[serde(default)]
    pub(crate) allow: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) block: Vec<Spanned<String>>,
    pub(crate) scanner_user_agents: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(crate) blocklist_feeds: Vec<Spanned<String>>,
    pub(crate) blocklist_feed_refresh: Option<Spanned<RawDuration>>,
    pub(crate) blocklist_feed_ca: Option<Spanned<String>>,
    pub(crate) auth_fail: Option<RawAuthFail>,
    pub(crate) flood: Option<RawFlood>,
    pub(crate) rate: Option<RawRate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuthFail {
    pub(crate) per_account: Option<Spanned<i64>>,
    pub(crate) per_ip: Option<Spanned<i64>>,
    pub(crate) window: Option<Spanned<RawDuration>>,
    pub(crate) ban: Option<Spanned<RawDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFlood {
    pub(crate) requests: Option<Spanned<i64>>,
    pub(crate) window: Option<Spanned<RawDuration>>,
    pub(crate) ban: Option<Spanned<RawDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRate {
    pub(crate) rate: Option<Spanned<i64>>,
    pub(crate) burst: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub(crate) max_message_bytes: Option<Spanned<i64>>,
    pub(crate) max_request_uri_bytes: Option<Spanned<i64>>,
    pub(crate) max_headers: Option<Spanned<i64>>,
    pub(crate) max_header_bytes: Option<Spanned<i64>>,
    pub(crate) max_vias: Option<Spanned<i64>>,
    pub(crate) tcp_per_ip: Option<Spanned<i64>>,
    pub(crate) tcp_total: Option<Spanned<i64>>,
    pub(crate) tcp_idle: Option<Spanned<RawDuration>>,
    pub(crate) partial_message_timeout: Option<Spanned<RawDuration>>,
    pub(crate) max_cps: Option<Spanned<i64>>,
    pub(crate) queue_high_water: Option<Spanned<RawRatio>>,
    pub(crate) retry_after: Option<Spanned<RawDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub(crate) cert: Option<Spanned<String>>,
    pub(crate) key: Option<Spanned<String>>,
    pub(crate) min_version: Option<Spanned<String>>,
    pub(crate) handshake_timeout: Option<Spanned<RawDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub(crate) level: Option<Spanned<String>>,
    pub(crate) format: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExtension {
    pub(crate) number: Option<Spanned<String>>,
    pub(crate) auth_id: Option<Spanned<String>>,
    pub(crate) password: Option<Spanned<String>>,
    pub(crate) ha1: Option<Spanned<String>>,
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) networks: Option<Vec<Spanned<String>>>,
    pub(crate) first_name: Option<Spanned<String>>,
    pub(crate) last_name: Option<Spanned<String>>,
    pub(crate) email: Option<Spanned<String>>,
    pub(crate) outbound_caller_id: Option<Spanned<String>>,
    pub(crate) voicemail_pin: Option<Spanned<String>>,
    pub(crate) mobile: Option<Spanned<String>>,
    pub(crate) language: Option<Spanned<String>>,
    pub(crate) role: Option<Spanned<String>>,
    pub(crate) departments: Option<Vec<Spanned<String>>>,
}

/// `[[trunk]]`: only what M3 needs (the name and the source ACL, SEC-17); M5 adds the rest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrunk {
    pub(crate) name: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) acl: Vec<Spanned<String>>,
}

/// A duration as written: normally a string with a unit; a bare integer is kept so the
/// error can say "add a unit" instead of "wrong type".
#[derive(Debug)]
pub(crate) enum RawDuration {
    Text(String),
    Number(i64),
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = RawDuration;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration string like \"500ms\", \"4s\", \"10m\" or \"1h\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration::Text(v.to_owned()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                Ok(RawDuration::Number(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration::Number(i64::try_from(v).unwrap_or(i64::MAX)))
            }
        }

        deserializer.deserialize_any(DurationVisitor)
    }
}

/// A fraction as written: a float (`0.8`) or a percentage string (`"80%"`); an integer is
/// kept so the error can say which form to use.
#[derive(Debug)]
pub(crate) enum RawRatio {
    Float(f64),
    Text(String),
    Integer(i64),
}

impl<'de> Deserialize<'de> for RawRatio {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RatioVisitor;

        impl Visitor<'_> for RatioVisitor {
            type Value = RawRatio;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a fraction like 0.8 or a percentage like \"80%\"")
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawRatio, E> {
                Ok(RawRatio::Float(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawRatio, E> {
                Ok(RawRatio::Text(v.to_owned()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawRatio, E> {
                Ok(RawRatio::Integer(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawRatio, E> {
                Ok(RawRatio::Integer(i64::try_from(v).unwrap_or(i64::MAX)))
            }
        }

        deserializer.deserialize_any(RatioVisitor)
    }
}
