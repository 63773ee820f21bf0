//! Server transaction state machines (RFC 3261 §17.2, RFC 6026 §7.1).
//!
//! Each state is a variant holding what that state needs (the last response to resend, the
//! current timer G interval); every input consumes the old state and returns the next. The
//! machines are pure: they push [`Action`]s (send these bytes, arm or disarm that timer,
//! report a timeout) and the manager carries them out. They never see sockets, clocks or
//! other transactions.

use std::time::Duration;

use bytes::Bytes;

use super::{Ctx, TimerKind, TxState};

/// The INVITE server transaction (RFC 3261 Figure 7 with the RFC 6026 Accepted state).
#[derive(Debug)]
pub(crate) enum InviteServer {
    /// Waiting for the TU. `last` is the latest provisional (at first the layer's own
    /// 100 Trying), resent for each retransmitted INVITE; `tu_responded` says whether the TU
    /// has sent one itself (then the pending 100 Trying is not sent).
    Proceeding {
        last: Bytes,
        tu_responded: bool,
    },
    /// A 300-699 was sent; it is retransmitted on timer G until the ACK comes or timer H.
    Completed {
        response: Bytes,
        g: Duration,
    },
    /// The ACK came; timer I absorbs its retransmissions.
    Confirmed,
    /// A 2xx was sent (RFC 6026): retransmitted INVITEs are absorbed, 2xx retransmissions
    /// from the TU pass through, until timer L.
    Accepted,
    Terminated,
}

/// What an ACK that matched an INVITE server transaction means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckOutcome {
    /// The ACK for a non-2xx (or a retransmission of it): consumed here.
    Absorbed,
    /// The ACK for a 2xx that happened to match (RFC 6026 §7.1: it goes to the TU).
    ForTu,
}

impl InviteServer {
    /// A new transaction whose 100 Trying is `trying`.
    pub(crate) fn new(trying: Bytes) -> Self {
        InviteServer::Proceeding {
            last: trying,
            tu_responded: false,
        }
    }

    pub(crate) fn state(&self) -> Option<TxState> {
        Some(match self {
            InviteServer::Proceeding { .. } => TxState::Proceeding,
            InviteServer::Completed { .. } => TxState::Completed,
            InviteServer::Confirmed => TxState::Confirmed,
            InviteServer::Accepted => TxState::Accepted,
            InviteServer::Terminated => return None,
        })
    }

    /// The layer's 100 Trying, while the TU has not answered yet.
    pub(crate) fn pending_trying(&self) -> Option<&Bytes> {
        match self {
            InviteServer::Proceeding {
                last,
                tu_responded: false,
            } => Some(last),
            _ => None,
        }
    }

    /// Whether the TU may send a response with this code now.
    pub(crate) fn accepts_response(&self, code: u16) -> bool {
        match self {
            InviteServer::Proceeding { .. } => true,
            // RFC 6026 §7.1: 2xx retransmissions from the TU are sent in Accepted.
            InviteServer::Accepted => (200..300).contains(&code),
            _ => false,
        }
    }

    /// The INVITE came again (RFC 3261 §17.2.1): resend the latest response.
    pub(crate) fn on_retransmission(self, cx: &mut Ctx<'_>) -> Self {
        match &self {
            InviteServer::Proceeding { last, .. } => cx.send(last.clone()),
            InviteServer::Completed { response, .. } => cx.send(response.clone()),
            // Confirmed and Accepted absorb it without a word (RFC 6026 §7.1).
            InviteServer::Confirmed | InviteServer::Accepted | InviteServer::Terminated => {}
        }
        self
    }

    pub(crate) fn on_ack(self, cx: &mut Ctx<'_>) -> (Self, AckOutcome) {
        match self {
            InviteServer::Completed { .. } => {
                cx.disarm(TimerKind::G);
                cx.disarm(TimerKind::H);
                // Timer I: T4 on unreliable transports, zero on reliable ones.
                let next = if cx.reliable {
                    InviteServer::Terminated
                } else {
                    cx.arm(TimerKind::I, cx.timers.t4);
                    InviteServer::Confirmed
                };
                (next, AckOutcome::Absorbed)
            }
            InviteServer::Accepted => (InviteServer::Accepted, AckOutcome::ForTu),
            // An ACK before any final response acknowledges nothing; ignoring it is all
            // that can be done.
            other => (other, AckOutcome::Absorbed),
        }
    }

    /// The TU's response (the caller checked [`InviteServer::accepts_response`]).
    pub(crate) fn on_response(self, code: u16, wire: Bytes, cx: &mut Ctx<'_>) -> Self {
        match self {
            InviteServer::Proceeding { .. } => {
                cx.send(wire.clone());
                match code {
                    100..=199 => InviteServer::Proceeding {
                        last: wire,
                        tu_responded: true,
                    },
                    200..=299 => {
                        cx.arm(TimerKind::L, cx.timers.t64());
                        InviteServer::Accepted
                    }
                    _ => {
                        if !cx.reliable {
                            cx.arm(TimerKind::G, cx.timers.t1);
                        }
                        cx.arm(TimerKind::H, cx.timers.t64());
                        InviteServer::Completed {
                            response: wire,
                            g: cx.timers.t1,
                        }
                    }
                }
            }
            InviteServer::Accepted if (200..300).contains(&code) => {
                cx.send(wire);
                InviteServer::Accepted
            }
            other => other,
        }
    }

    pub(crate) fn on_timer(self, kind: TimerKind, cx: &mut Ctx<'_>) -> Self {
        match (self, kind) {
            (InviteServer::Completed { response, g }, TimerKind::G) => {
                cx.send(response.clone());
                let g = (g.saturating_mul(2)).min(cx.timers.t2);
                cx.arm(TimerKind::G, g);
                InviteServer::Completed { response, g }
            }
            (InviteServer::Completed { .. }, TimerKind::H) => {
                // The ACK never came (RFC 3261 §17.2.1).
                cx.timeout(TimerKind::H);
                InviteServer::Terminated
            }
            (InviteServer::Confirmed, TimerKind::I) | (InviteServer::Accepted, TimerKind::L) => {
                InviteServer::Terminated
            }
            (other, _) => other,
        }
    }
}

/// The non-INVITE server transaction (RFC 3261 Figure 8).
#[derive(Debug)]
pub(crate) enum NonInviteServer {
    /// No response yet: retransmissions are absorbed silently.
    Trying,
    /// A provisional was sent; retransmissions get it again.
    Proceeding {
        last: Bytes,
    },
    /// The final response was sent; retransmissions get it again until timer J.
    Completed {
        last: Bytes,
    },
    Terminated,
}

impl NonInviteServer {
    pub(crate) fn state(&self) -> Option<TxState> {
        Some(match self {
            NonInviteServer::Trying => TxState::Trying,
            NonInviteServer::Proceeding { .. } => TxState::Proceeding,
            NonInviteServer::Completed { .. } => TxState::Completed,
            NonInviteServer::Terminated => return None,
        })
    }

    pub(crate) fn accepts_response(&self) -> bool {
        matches!(
            self,
            NonInviteServer::Trying | NonInviteServer::Proceeding { .. }
        )
    }

    pub(crate) fn on_retransmission(self, cx: &mut Ctx<'_>) -> Self {
        match &self {
            NonInviteServer::Proceeding { last } | NonInviteServer::Completed { last } => {
                cx.send(last.clone())
            }
            NonInviteServer::Trying | NonInviteServer::Terminated => {}
        }
        self
    }

    pub(crate) fn on_response(self, code: u16, wire: Bytes, cx: &mut Ctx<'_>) -> Self {
        match self {
            NonInviteServer::Trying | NonInviteServer::Proceeding { .. } => {
                cx.send(wire.clone());
                if code < 200 {
                    NonInviteServer::Proceeding { last: wire }
                } else if cx.reliable {
                    // Timer J is zero on reliable transports.
                    NonInviteServer::Terminated
                } else {
                    cx.arm(TimerKind::J, cx.timers.t64());
                    NonInviteServer::Completed { last: wire }
                }
            }
            other => other,
        }
    }

    pub(crate) fn on_timer(self, kind: TimerKind) -> Self {
        match (self, kind) {
            (NonInviteServer::Completed { .. }, TimerKind::J) => NonInviteServer::Terminated,
            (other, _) => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_support::run;
    use crate::transaction::Action;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn invite_non_2xx_arms_g_and_h_on_udp_only_h_on_tcp() {
        let (s, out) = run(false, |cx| {
            InviteServer::new(b("100")).on_response(486, b("486"), cx)
        });
        assert!(matches!(s, InviteServer::Completed { .. }));
        assert_eq!(
            out,
            vec![
                Action::Send(b("486")),
                Action::Arm(TimerKind::G, Duration::from_millis(500)),
                Action::Arm(TimerKind::H, Duration::from_secs(32)),
            ]
        );
        let (_, out) = run(true, |cx| {
            InviteServer::new(b("100")).on_response(486, b("486"), cx)
        });
        assert_eq!(
            out,
            vec![
                Action::Send(b("486")),
                Action::Arm(TimerKind::H, Duration::from_secs(32))
            ]
        );
    }

    #[test]
    fn timer_g_doubles_up_to_t2() {
        let mut s = InviteServer::Completed {
            response: b("486"),
            g: Duration::from_millis(500),
        };
        let mut intervals = Vec::new();
        for _ in 0..5 {
            let (next, out) = run(false, |cx| s.on_timer(TimerKind::G, cx));
            s = next;
            for a in out {
                if let Action::Arm(TimerKind::G, d) = a {
                    intervals.push(d.as_millis());
                }
            }
        }
        assert_eq!(intervals, vec![1000, 2000, 4000, 4000, 4000]);
    }

    #[test]
    fn ack_confirms_and_i_is_zero_on_reliable() {
        let completed = || InviteServer::Completed {
            response: b("486"),
            g: Duration::from_millis(500),
        };
        let ((s, o), _) = run(false, |cx| completed().on_ack(cx));
        assert!(matches!(s, InviteServer::Confirmed));
        assert_eq!(o, AckOutcome::Absorbed);
        let ((s, _), _) = run(true, |cx| completed().on_ack(cx));
        assert!(matches!(s, InviteServer::Terminated));
        let ((s, o), _) = run(false, |cx| InviteServer::Accepted.on_ack(cx));
        assert!(matches!(s, InviteServer::Accepted));
        assert_eq!(o, AckOutcome::ForTu);
    }

    #[test]
    fn trying_is_pending_until_the_tu_answers() {
        let s = InviteServer::new(b("100"));
        assert_eq!(s.pending_trying(), Some(&b("100")));
        let (s, _) = run(false, |cx| s.on_response(180, b("180"), cx));
        assert_eq!(s.pending_trying(), None);
        assert!(s.accepts_response(200));
        let (s, _) = run(false, |cx| s.on_response(200, b("200"), cx));
        assert!(s.accepts_response(200));
        assert!(!s.accepts_response(486));
    }

    #[test]
    fn non_invite_j_is_zero_on_reliable() {
        let (s, out) = run(false, |cx| {
            NonInviteServer::Trying.on_response(200, b("200"), cx)
        });
        assert!(matches!(s, NonInviteServer::Completed { .. }));
        assert!(out.contains(&Action::Arm(TimerKind::J, Duration::from_secs(32))));
        let (s, _) = run(true, |cx| {
            NonInviteServer::Trying.on_response(200, b("200"), cx)
        });
        assert!(matches!(s, NonInviteServer::Terminated));
    }
}
