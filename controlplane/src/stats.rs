//! Plain counters kept by the endpoint. Single writer, no atomics: the binary takes a
//! [`EndpointStats`] snapshot (a clone) after each batch and exports it; only `src/` knows
//! Prometheus.

use crate::auth::AuthFailure;
use crate::sip::{Method, Transport};

/// Why a message was dropped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Not parseable far enough to answer (no request line, no Via, …).
    Malformed,
    /// Larger than `limits.max_message_bytes`.
    TooLarge,
    /// A response that matched no client transaction.
    StrayResponse,
    /// A response that could not be parsed (overlarge code or scalar fields).
    MalformedResponse,
    /// An ACK that matched no transaction (an ACK for a 2xx is end to end).
    StrayAck,
    /// A stream that lost its framing.
    StreamFraming,
    /// Keep-alive or blank datagrams (counted, never answered).
    KeepAlive,
    /// A response could not be routed (no usable Via).
    Unroutable,
    /// The source is on the block list (SEC-04).
    Blocked,
    /// The source is banned (SEC-03, SEC-13).
    Banned,
    /// The source just went over the flood limit (SEC-13).
    Flood,
    /// The User-Agent is a known scanner (SEC-13).
    Scanner,
    /// The source sent new transactions faster than its token bucket allows.
    RateLimited,
    /// The listener's ACL keeps the source out.
    ListenerAcl,
}

impl DropReason {
    pub const ALL: [DropReason; 14] = [
        DropReason::Malformed,
        DropReason::TooLarge,
        DropReason::StrayResponse,
        DropReason::MalformedResponse,
        DropReason::StrayAck,
        DropReason::StreamFraming,
        DropReason::KeepAlive,
        DropReason::Unroutable,
        DropReason::Blocked,
        DropReason::Banned,
        DropReason::Flood,
        DropReason::Scanner,
        DropReason::RateLimited,
        DropReason::ListenerAcl,
    ];

    /// The Prometheus label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::TooLarge => "too_large",
            DropReason::StrayResponse => "stray_response",
            DropReason::MalformedResponse => "malformed_response",
            DropReason::StrayAck => "stray_ack",
            DropReason::StreamFraming => "stream_framing",
            DropReason::KeepAlive => "keepalive",
            DropReason::Unroutable => "unroutable",
            DropReason::Blocked => "blocked",
            DropReason::Banned => "banned",
            DropReason::Flood => "flood",
            DropReason::Scanner => "scanner",
            DropReason::RateLimited => "rate_limited",
            DropReason::ListenerAcl => "listener_acl",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Counters of the endpoint since start.
#[derive(Debug, Clone)]
pub struct EndpointStats {
    /// Requests received, by method (`Method::LABELS` order) and transport.
    requests: [[u64; Transport::COUNT]; Method::LABEL_COUNT],
    /// Responses sent by voxgate, by status code 100..=699.
    responses: Box<[u64; 600]>,
    dropped: [u64; DropReason::ALL.len()],
    /// Transactions alive now.
    pub transactions_active: u64,
    /// Contact bindings held by the registrar now.
    pub registrations_active: u64,
    /// Extensions with at least one binding now.
    pub aors_registered: u64,
    /// Sources banned now.
    pub bans_active: u64,
    /// New requests answered 503 because of overload (SEC-15).
    pub overload_rejections: u64,
    /// Networks merged from blocklist feeds now (SEC-08).
    pub blocklist_entries: u64,
    /// Requests that looked rewritten by a SIP ALG (SIG-14).
    pub alg_suspected: u64,
    /// Failed digest authentications, by [`AuthFailure::ALL`] order.
    auth_failures: [u64; AuthFailure::ALL.len()],
}

impl Default for EndpointStats {
    fn default() -> Self {
        Self {
            requests: [[0; Transport::COUNT]; Method::LABEL_COUNT],
            responses: Box::new([0; 600]),
            dropped: [0; DropReason::ALL.len()],
            transactions_active: 0,
            registrations_active: 0,
            aors_registered: 0,
            bans_active: 0,
            overload_rejections: 0,
            blocklist_entries: 0,
            alg_suspected: 0,
            auth_failures: [0; AuthFailure::ALL.len()],
        }
    }
}

impl EndpointStats {
    pub fn count_request(&mut self, method: &Method, transport: Transport) {
        self.requests[method.label_index()][transport.index()] += 1;
    }

    pub fn count_response(&mut self, code: u16) {
        if (100..700).contains(&code) {
            self.responses[usize::from(code - 100)] += 1;
        }
    }

    pub fn count_drop(&mut self, reason: DropReason) {
        self.dropped[reason.index()] += 1;
    }

    /// `(method label, transport label, count)` for every non-zero pair.
    pub fn requests(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        self.requests.iter().enumerate().flat_map(|(m, row)| {
            row.iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(move |(t, n)| (Method::LABELS[m], Transport::ALL[t].as_str(), *n))
        })
    }

    /// `(status code, count)` for every code sent at least once.
    pub fn responses(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.responses
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (i as u16 + 100, *n))
    }

    /// `(reason, count)` for every reason, zero included, so dashboards see the series.
    pub fn dropped(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.dropped[r.index()]))
    }

    pub fn dropped_for(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()]
    }

    pub fn count_auth_failure(&mut self, failure: AuthFailure) {
        if let Some(i) = AuthFailure::ALL.iter().position(|f| *f == failure) {
            self.auth_failures[i] += 1;
        }
    }

    /// `(reason label, count)` for every failure reason, zero included.
    pub fn auth_failures(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        AuthFailure::ALL
            .iter()
            .zip(self.auth_failures.iter())
            .map(|(f, n)| (f.as_str(), *n))
    }
}
