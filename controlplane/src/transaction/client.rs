//! Client transaction state machines (RFC 3261 §17.1, RFC 6026 §8.4) and the ACK a client
//! INVITE transaction sends for a non-2xx final response (§17.1.1.3).
//!
//! Like [`super::server`], the machines are pure: each input consumes the old state, returns
//! the next, and pushes [`Action`]s for the manager. Whether a response goes on to the TU is
//! the [`Delivery`] they return.

use std::time::Duration;

use bytes::Bytes;

use crate::sip::{Header, HeaderName, Message, Method, RequestLine, StartLine};

use super::{Ctx, TimerKind, TxState};

/// Timer D on unreliable transports: "at least 32 seconds" (RFC 3261 §17.1.1.2); with a
/// larger T1 it grows to 64·T1 so it still outlives the server's timer H.
const TIMER_D_MIN: Duration = Duration::from_secs(32);

/// Whether a response is passed to the TU or absorbed by the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    ToTu,
    Absorbed,
}

/// The INVITE client transaction (RFC 3261 Figure 5 with the RFC 6026 Accepted state).
#[derive(Debug)]
pub(crate) enum InviteClient {
    /// Sent, nothing heard; `a` is the current timer A interval (unreliable transports).
    Calling {
        a: Duration,
    },
    /// A provisional came; no more retransmissions, no timeout of its own.
    Proceeding,
    /// A 300-699 came and was ACKed; retransmissions of it get the same ACK until timer D.
    Completed {
        ack: Bytes,
    },
    /// A 2xx came (RFC 6026): further 2xx (retransmissions, forks) go to the TU until
    /// timer M.
    Accepted,
    Terminated,
}

impl InviteClient {
    /// Send the INVITE and arm A (unreliable only) and B.
    pub(crate) fn start(request: &Bytes, cx: &mut Ctx<'_>) -> Self {
        cx.send(request.clone());
        if !cx.reliable {
            cx.arm(TimerKind::A, cx.timers.t1);
        }
        cx.arm(TimerKind::B, cx.timers.t64());
        InviteClient::Calling { a: cx.timers.t1 }
    }

    pub(crate) fn state(&self) -> Option<TxState> {
        Some(match self {
            InviteClient::Calling { .. } => TxState::Calling,
            InviteClient::Proceeding => TxState::Proceeding,
            InviteClient::Completed { .. } => TxState::Completed,
            InviteClient::Accepted => TxState::Accepted,
            InviteClient::Terminated => return None,
        })
    }

    /// Whether no final response has come yet (a CANCEL may still matter).
    pub(crate) fn is_pending(&self) -> bool {
        matches!(
            self,
            InviteClient::Calling { .. } | InviteClient::Proceeding
        )
    }

    /// A response matched. `ack` builds the ACK for a non-2xx final; it is called only
    /// when one is needed.
    pub(crate) fn on_response(
        self,
        code: u16,
        ack: impl FnOnce() -> Bytes,
        cx: &mut Ctx<'_>,
    ) -> (Self, Delivery) {
        match self {
            InviteClient::Calling { .. } | InviteClient::Proceeding => {
                cx.disarm(TimerKind::A);
                cx.disarm(TimerKind::B);
                match code {
                    100..=199 => (InviteClient::Proceeding, Delivery::ToTu),
                    200..=299 => {
                        cx.disarm(TimerKind::CancelGuard);
                        cx.arm(TimerKind::M, cx.timers.t64());
                        (InviteClient::Accepted, Delivery::ToTu)
                    }
                    _ => {
                        cx.disarm(TimerKind::CancelGuard);
                        let ack = ack();
                        cx.send(ack.clone());
                        let next = if cx.reliable {
                            // Timer D is zero on reliable transports.
                            InviteClient::Terminated
                        } else {
                            cx.arm(TimerKind::D, TIMER_D_MIN.max(cx.timers.t64()));
                            InviteClient::Completed { ack }
                        };
                        (next, Delivery::ToTu)
                    }
                }
            }
            InviteClient::Completed { ack } => {
                if code >= 300 {
                    // A retransmitted final: our ACK was lost (§17.1.1.2).
                    cx.send(ack.clone());
                }
                (InviteClient::Completed { ack }, Delivery::Absorbed)
            }
            InviteClient::Accepted if (200..300).contains(&code) => {
                (InviteClient::Accepted, Delivery::ToTu)
            }
            other => (other, Delivery::Absorbed),
        }
    }

    pub(crate) fn on_timer(self, kind: TimerKind, request: &Bytes, cx: &mut Ctx<'_>) -> Self {
        match (self, kind) {
            (InviteClient::Calling { a }, TimerKind::A) => {
                cx.send(request.clone());
                // Timer A doubles without a cap (§17.1.1.2); timer B ends it.
                let a = a.saturating_mul(2);
                cx.arm(TimerKind::A, a);
                InviteClient::Calling { a }
            }
            (InviteClient::Calling { .. }, TimerKind::B) => {
                cx.timeout(TimerKind::B);
                InviteClient::Terminated
            }
            (s, TimerKind::CancelGuard) if s.is_pending() => {
                // RFC 3261 §9.1: no final 64·T1 after the CANCEL; the INVITE is given up.
                cx.timeout(TimerKind::CancelGuard);
                InviteClient::Terminated
            }
            (InviteClient::Completed { .. }, TimerKind::D)
            | (InviteClient::Accepted, TimerKind::M) => InviteClient::Terminated,
            (other, _) => other,
        }
    }
}

/// The non-INVITE client transaction (RFC 3261 Figure 6).
#[derive(Debug)]
pub(crate) enum NonInviteClient {
    /// Sent, nothing heard; `e` is the current timer E interval (unreliable transports).
    Trying {
        e: Duration,
    },
    /// A provisional came; retransmissions continue every T2.
    Proceeding,
    /// A final came; response retransmissions are absorbed until timer K.
    Completed,
    Terminated,
}

impl NonInviteClient {
    /// Send the request and arm E (unreliable only) and F.
    pub(crate) fn start(request: &Bytes, cx: &mut Ctx<'_>) -> Self {
        cx.send(request.clone());
        if !cx.reliable {
            cx.arm(TimerKind::E, cx.timers.t1);
        }
        cx.arm(TimerKind::F, cx.timers.t64());
        NonInviteClient::Trying { e: cx.timers.t1 }
    }

    pub(crate) fn state(&self) -> Option<TxState> {
        Some(match self {
            NonInviteClient::Trying { .. } => TxState::Trying,
            NonInviteClient::Proceeding => TxState::Proceeding,
            NonInviteClient::Completed => TxState::Completed,
            NonInviteClient::Terminated => return None,
        })
    }

    pub(crate) fn on_response(self, code: u16, cx: &mut Ctx<'_>) -> (Self, Delivery) {
        match self {
            NonInviteClient::Trying { .. } | NonInviteClient::Proceeding => {
                if code < 200 {
                    return (NonInviteClient::Proceeding, Delivery::ToTu);
                }
                cx.disarm(TimerKind::E);
                cx.disarm(TimerKind::F);
                let next = if cx.reliable {
                    // Timer K is zero on reliable transports.
                    NonInviteClient::Terminated
                } else {
                    cx.arm(TimerKind::K, cx.timers.t4);
                    NonInviteClient::Completed
                };
                (next, Delivery::ToTu)
            }
            other => (other, Delivery::Absorbed),
        }
    }

    pub(crate) fn on_timer(self, kind: TimerKind, request: &Bytes, cx: &mut Ctx<'_>) -> Self {
        match (self, kind) {
            (NonInviteClient::Trying { e }, TimerKind::E) => {
                cx.send(request.clone());
                let e = e.saturating_mul(2).min(cx.timers.t2);
                cx.arm(TimerKind::E, e);
                NonInviteClient::Trying { e }
            }
            (NonInviteClient::Proceeding, TimerKind::E) => {
                cx.send(request.clone());
                cx.arm(TimerKind::E, cx.timers.t2);
                NonInviteClient::Proceeding
            }
            (NonInviteClient::Trying { .. } | NonInviteClient::Proceeding, TimerKind::F) => {
                cx.timeout(TimerKind::F);
                NonInviteClient::Terminated
            }
            (NonInviteClient::Completed, TimerKind::K) => NonInviteClient::Terminated,
            (other, _) => other,
        }
    }
}

/// The ACK for a non-2xx final response to `invite` (RFC 3261 §17.1.1.3): the INVITE's
/// Request-URI, Call-ID, From and CSeq number (method ACK), the To of the response, the
/// INVITE's top Via only, and its Route header fields.
pub(crate) fn build_ack(invite: &Message, cseq: u32, response: &Message) -> Bytes {
    let uri = invite
        .request_line()
        .map(|l| l.uri.clone())
        .unwrap_or_default();
    let mut headers = Vec::with_capacity(8);
    if let Some(via) = invite.values(HeaderName::Via).into_iter().next() {
        headers.push(Header::new(HeaderName::Via, via));
    }
    for route in invite.all(HeaderName::Route) {
        headers.push(Header::new(HeaderName::Route, route.value.clone()));
    }
    let max_forwards = invite
        .first(HeaderName::MaxForwards)
        .map(|h| h.value.clone())
        .unwrap_or_else(|| Bytes::from_static(b"70"));
    headers.push(Header::new(HeaderName::MaxForwards, max_forwards));
    for (name, source) in [
        (HeaderName::From, invite),
        (HeaderName::To, response),
        (HeaderName::CallId, invite),
    ] {
        if let Some(h) = source.first(name) {
            headers.push(Header::new(name, h.value.clone()));
        }
    }
    headers.push(Header::new(
        HeaderName::CSeq,
        Bytes::from(format!("{cseq} ACK")),
    ));
    headers.push(Header::new(
        HeaderName::ContentLength,
        Bytes::from_static(b"0"),
    ));
    let start = StartLine::Request(RequestLine {
        method: Method::Ack,
        uri,
        version: Bytes::from_static(b"SIP/2.0"),
    });
    Message::new(start, headers, Bytes::new()).raw().clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_support::{parse, run};
    use crate::transaction::Action;

    #[test]
    fn timer_e_doubles_to_t2_and_is_t2_after_a_provisional() {
        let req = Bytes::from_static(b"REQ");
        let (mut s, _) = run(false, |cx| NonInviteClient::start(&req, cx));
        let mut intervals = Vec::new();
        for _ in 0..5 {
            let (next, out) = run(false, |cx| s.on_timer(TimerKind::E, &req, cx));
            s = next;
            for a in out {
                if let Action::Arm(TimerKind::E, d) = a {
                    intervals.push(d.as_millis());
                }
            }
        }
        assert_eq!(intervals, vec![1000, 2000, 4000, 4000, 4000]);

        let (s, _) = run(false, |cx| NonInviteClient::start(&req, cx));
        let ((s, d), _) = run(false, |cx| s.on_response(100, cx));
        assert_eq!(d, Delivery::ToTu);
        let (_, out) = run(false, |cx| s.on_timer(TimerKind::E, &req, cx));
        assert!(out.contains(&Action::Arm(TimerKind::E, Duration::from_secs(4))));
    }

    #[test]
    fn invite_reliable_has_no_timer_a_and_no_timer_d() {
        let req = Bytes::from_static(b"INV");
        let (s, out) = run(true, |cx| InviteClient::start(&req, cx));
        assert_eq!(
            out,
            vec![
                Action::Send(req.clone()),
                Action::Arm(TimerKind::B, Duration::from_secs(32))
            ]
        );
        let ((s, d), out) = run(true, |cx| {
            s.on_response(486, || Bytes::from_static(b"ACK"), cx)
        });
        assert_eq!(d, Delivery::ToTu);
        assert!(matches!(s, InviteClient::Terminated));
        assert!(out.contains(&Action::Send(Bytes::from_static(b"ACK"))));
    }

    #[test]
    fn ack_follows_rfc3261_17_1_1_3() {
        let invite = parse(
            "INVITE sip:bob@example.com;transport=udp SIP/2.0\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-vx1\n\
             Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKold\n\
             Route: <sip:p1.example.com;lr>\n\
             Route: <sip:p2.example.com;lr>\n\
             Max-Forwards: 69\n\
             From: \"A\" <sip:alice@example.com>;tag=a1\n\
             To: <sip:bob@example.com>\n\
             Call-ID: c1@192.0.2.1\n\
             CSeq: 314 INVITE\n\
             Contact: <sip:alice@192.0.2.1>\n\
             Content-Length: 0\n\n",
        );
        let response = parse(
            "SIP/2.0 486 Busy Here\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-vx1\n\
             Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKold\n\
             From: \"A\" <sip:alice@example.com>;tag=a1\n\
             To: <sip:bob@example.com>;tag=b7\n\
             Call-ID: c1@192.0.2.1\n\
             CSeq: 314 INVITE\n\
             Content-Length: 0\n\n",
        );
        let ack = parse(std::str::from_utf8(&build_ack(&invite, 314, &response)).expect("utf8"));
        assert_eq!(ack.method(), Some(&Method::Ack));
        assert_eq!(
            &ack.request_line().expect("request").uri[..],
            b"sip:bob@example.com;transport=udp"
        );
        let vias = ack.vias().expect("vias");
        assert_eq!(vias.len(), 1);
        assert_eq!(vias[0].branch().map(|b| &b[..]), Some(&b"z9hG4bK-vx1"[..]));
        assert_eq!(ack.route_set(HeaderName::Route).expect("routes").len(), 2);
        assert_eq!(
            ack.from().expect("from").tag().map(|t| &t[..]),
            Some(&b"a1"[..])
        );
        assert_eq!(
            ack.to().expect("to").tag().map(|t| &t[..]),
            Some(&b"b7"[..])
        );
        assert_eq!(&ack.call_id().expect("call-id")[..], b"c1@192.0.2.1");
        let cseq = ack.cseq().expect("cseq");
        assert_eq!((cseq.seq, cseq.method), (314, Method::Ack));
        assert_eq!(ack.max_forwards().expect("mf"), Some(69));
        assert_eq!(ack.content_length().expect("cl"), Some(0));
        assert!(ack.first(HeaderName::Contact).is_none());
    }
}
