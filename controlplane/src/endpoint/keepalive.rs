//! NAT keep-alives for registered UDP contacts (SIG-14): the registrar says when a flow
//! needs one; the endpoint sends an OPTIONS over that flow in a client transaction and
//! reports whether anything came back.

use std::time::Instant;

use bytes::Bytes;

use crate::registrar::{Flow, KeepAliveOutcome};
use crate::sip::{Message, StartLine};

use super::{Endpoint, Peer, BRANCH_PREFIX};

impl Endpoint {
    /// Send the keep-alives the registrar asked for during the last input.
    pub(super) fn send_keepalives(&mut self, now: Instant) {
        for (flow, aor, contact) in std::mem::take(&mut self.pending_keepalives) {
            let request = self.keepalive_request(&flow, &aor, &contact);
            let next_hop = Peer {
                transport: flow.transport,
                remote: flow.remote,
                local: flow.local,
                conn: flow.conn,
            };
            match request.and_then(|r| self.transactions.send_request(now, next_hop, r).ok()) {
                Some(tx) => {
                    self.keepalives.insert(tx, flow);
                }
                None => self.keepalive_result(now, flow, false),
            }
        }
    }

    pub(super) fn keepalive_result(&mut self, now: Instant, flow: Flow, answered: bool) {
        let outcome = if answered {
            KeepAliveOutcome::Answered
        } else {
            KeepAliveOutcome::Timeout
        };
        self.registrar.handle_keepalive_result(now, &flow, outcome);
        self.drain_components();
    }

    /// `OPTIONS <contact>` from voxgate's domain to the extension, with a fresh branch.
    fn keepalive_request(&mut self, flow: &Flow, aor: &str, contact: &str) -> Option<Message> {
        let branch = format!("{BRANCH_PREFIX}{}", self.next_random_hex());
        let tag = self.next_random_hex();
        let call_id = self.next_random_hex();
        let domain = &self.config.domain;
        // A registered contact may carry escaped headers (`?Route=…`): they never belong in
        // a Request-URI (RFC 3261 §19.1.5).
        let contact = contact.split('?').next().unwrap_or(contact);
        let text = format!(
            "OPTIONS {contact} SIP/2.0\r\n\
             Via: SIP/2.0/{} {};branch={branch};rport\r\n\
             Max-Forwards: {}\r\n\
             From: <sip:{domain}>;tag={tag}\r\n\
             To: <sip:{aor}@{domain}>\r\n\
             Call-ID: {call_id}@{domain}\r\n\
             CSeq: 1 OPTIONS\r\n\
             User-Agent: {}\r\n\
             Content-Length: 0\r\n\r\n",
            flow.transport.via_token(),
            flow.local,
            self.config.max_forwards,
            self.config.user_agent,
        );
        let msg = Message::parse_datagram(Bytes::from(text), &self.config.limits).ok()?;
        matches!(msg.start_line(), StartLine::Request(_)).then_some(msg)
    }
}
