//! Keeping flows alive and dropping dead ones (FEATURES SIG-14, RFC 5626 §7).
//!
//! Every UDP flow that carries a binding gets an OPTIONS keep-alive every
//! `keepalive_interval`: one per flow, not per binding, so a DECT base registering ten
//! extensions from one address (PRV-10) gets one ping. A REGISTER arriving on the flow
//! counts as traffic and starts the interval over. After `keepalive_failures` unanswered
//! keep-alives in a row, or at once on a transport error, every binding on the flow is
//! dropped with [`UnboundReason::FlowFailed`]. TCP/TLS flows get no OPTIONS (the driver
//! answers RFC 5626 CRLF pings); when their connection closes, their bindings go.
//!
//! What it does not do: send the OPTIONS (the endpoint does, through its transaction
//! layer) or decide when a connection is dead (the driver reports it).

use std::time::Instant;

use super::{Flow, Registrar, RegistrarEvent, UnboundReason};
use crate::endpoint::ConnId;

/// How a keep-alive OPTIONS ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeepAliveOutcome {
    /// Any response came back (even 404 or 405: the NAT binding carried it).
    Answered,
    /// The transaction timed out (RFC 3261 Timer F) with no response.
    Timeout,
    /// The transport reported the flow unusable (ICMP unreachable, send error).
    TransportError,
}

impl Registrar {
    /// Report how the keep-alive sent for [`RegistrarEvent::KeepAlive`] on `flow` ended.
    pub fn handle_keepalive_result(
        &mut self,
        _now: Instant,
        flow: &Flow,
        outcome: KeepAliveOutcome,
    ) {
        let Some(f) = self.table.flow_slot(flow) else {
            // Its bindings are already gone.
            return;
        };
        let dead = match outcome {
            KeepAliveOutcome::Answered => {
                self.table.keepalive_answered(f);
                false
            }
            KeepAliveOutcome::Timeout => {
                self.table.keepalive_failed(f) >= self.config.keepalive_failures
            }
            KeepAliveOutcome::TransportError => true,
        };
        if dead {
            tracing::debug!(remote = %flow.remote, ?outcome, "flow failed; dropping its bindings");
            self.drop_flow(f);
        }
        self.table.prune();
    }

    /// The driver closed (or lost) connection `conn`: bindings on it can no longer be
    /// reached (RFC 5626 §7 "the flow died").
    pub fn handle_flow_closed(&mut self, _now: Instant, conn: ConnId) {
        for f in self.table.conn_flows(conn) {
            self.drop_flow(f);
        }
        self.table.prune();
    }

    fn drop_flow(&mut self, f: u32) {
        let slots = self.table.flow_bindings(f).to_vec();
        for slot in slots {
            self.remove(slot, UnboundReason::FlowFailed);
        }
    }

    /// A keep-alive timer fired for flow slot `f`.
    pub(super) fn keepalive_due(&mut self, now: Instant, f: u32) {
        let Some(flow) = self.table.flow(f).copied() else {
            return;
        };
        // Any binding on the flow names the OPTIONS target; they all share the NAT binding.
        let Some(b) = self
            .table
            .flow_bindings(f)
            .first()
            .and_then(|s| self.table.binding(*s))
        else {
            return;
        };
        self.events.push_back(RegistrarEvent::KeepAlive {
            flow,
            aor: b.aor.clone(),
            contact: b.contact.clone(),
        });
        let interval = self.config.keepalive_interval;
        if !interval.is_zero() {
            self.table.schedule_keepalive(f, now + interval);
        }
    }
}
