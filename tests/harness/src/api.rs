//! The admin API's registration and ban lists as typed values (`GET /api/v1/registrations`,
//! `GET /api/v1/bans`, `DELETE /api/v1/bans/{ip}`), and waits on them. The lists are
//! snapshots the driver republishes at most about once a second, so tests wait for a state
//! rather than read it once.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::Value;

use crate::process::Voxgate;

/// One entry of `GET /api/v1/registrations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationEntry {
    pub extension: String,
    pub contact: String,
    /// Where the REGISTER came from (the flow).
    pub source: SocketAddr,
    /// `udp`, `tcp` or `tls`.
    pub transport: String,
    pub user_agent: Option<String>,
    pub expires_in: u64,
}

/// One entry of `GET /api/v1/bans`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanEntry {
    pub ip: IpAddr,
    /// `auth_failures`, `flood` or `manual`.
    pub reason: String,
    pub expires_in: u64,
}

fn field<'a>(v: &'a Value, name: &str, body: &str) -> &'a Value {
    v.get(name)
        .unwrap_or_else(|| panic!("no `{name}` in API entry {v} of:\n{body}"))
}

fn text(v: &Value, name: &str, body: &str) -> String {
    field(v, name, body)
        .as_str()
        .unwrap_or_else(|| panic!("`{name}` is not a string in {v}"))
        .to_owned()
}

fn number(v: &Value, name: &str, body: &str) -> u64 {
    field(v, name, body)
        .as_u64()
        .unwrap_or_else(|| panic!("`{name}` is not an unsigned integer in {v}"))
}

/// Parses a `{"count": N, "<list>": [...]}` page and checks that count matches.
fn list(body: &str, key: &str) -> Vec<Value> {
    let page: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("API page is not JSON ({e}):\n{body}"));
    let items = page
        .get(key)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no `{key}` array in:\n{body}"))
        .clone();
    let count = page.get("count").and_then(Value::as_u64);
    assert_eq!(
        count,
        Some(items.len() as u64),
        "`count` disagrees with the list in:\n{body}"
    );
    items
}

impl Voxgate {
    /// `GET /api/v1/registrations`, parsed. Panics unless the status is 200 and every entry
    /// has the documented fields.
    pub fn registrations(&self) -> Vec<RegistrationEntry> {
        let (status, body) = self.admin_http("GET", "/api/v1/registrations");
        assert_eq!(status, 200, "GET /api/v1/registrations: {body}");
        list(&body, "registrations")
            .iter()
            .map(|v| RegistrationEntry {
                extension: text(v, "extension", &body),
                contact: text(v, "contact", &body),
                source: text(v, "source", &body)
                    .parse()
                    .unwrap_or_else(|e| panic!("`source` is not ip:port ({e}) in {v}")),
                transport: text(v, "transport", &body),
                user_agent: match field(v, "user_agent", &body) {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other => panic!("`user_agent` is neither null nor a string: {other}"),
                },
                expires_in: number(v, "expires_in", &body),
            })
            .collect()
    }

    /// `GET /api/v1/bans`, parsed. Panics unless the status is 200 and every entry has the
    /// documented fields.
    pub fn bans(&self) -> Vec<BanEntry> {
        let (status, body) = self.admin_http("GET", "/api/v1/bans");
        assert_eq!(status, 200, "GET /api/v1/bans: {body}");
        list(&body, "bans")
            .iter()
            .map(|v| BanEntry {
                ip: text(v, "ip", &body)
                    .parse()
                    .unwrap_or_else(|e| panic!("`ip` is not an address ({e}) in {v}")),
                reason: text(v, "reason", &body),
                expires_in: number(v, "expires_in", &body),
            })
            .collect()
    }

    /// `DELETE /api/v1/bans/{ip}`; returns the HTTP status (204 lifted, 404 not banned).
    pub fn unban(&self, ip: IpAddr) -> u16 {
        self.admin_http("DELETE", &format!("/api/v1/bans/{ip}")).0
    }

    /// Polls the registration list until `condition` holds for it, and returns that list.
    /// Panics after `limit` (a failure deadline) with `what`, the last list and the process
    /// output.
    pub fn wait_for_registrations(
        &self,
        limit: Duration,
        what: &str,
        mut condition: impl FnMut(&[RegistrationEntry]) -> bool,
    ) -> Vec<RegistrationEntry> {
        let mut last = Vec::new();
        let held = crate::wait_until(limit, || {
            last = self.registrations();
            condition(&last)
        });
        if !held {
            let shown: Vec<_> = last.iter().take(20).collect();
            panic!(
                "registrations never showed {what} within {limit:?}; last list ({} entries, \
                 first 20): {shown:#?}\nvoxgate output:\n{}",
                last.len(),
                self.output()
            );
        }
        last
    }

    /// Polls the ban list until `condition` holds for it, and returns that list; panics
    /// like [`Voxgate::wait_for_registrations`].
    pub fn wait_for_bans(
        &self,
        limit: Duration,
        what: &str,
        mut condition: impl FnMut(&[BanEntry]) -> bool,
    ) -> Vec<BanEntry> {
        let mut last = Vec::new();
        let held = crate::wait_until(limit, || {
            last = self.bans();
            condition(&last)
        });
        if !held {
            panic!(
                "bans never showed {what} within {limit:?}; last list: {last:#?}\n\
                 voxgate output:\n{}",
                self.output()
            );
        }
        last
    }
}
