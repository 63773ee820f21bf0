//! REGISTER processing: RFC 3261 §10.3 steps 6–8, RFC 3327 §5.3 (Path) and RFC 5626 §6
//! (outbound), for a request that is already authenticated.
//!
//! The rules, in the order they are applied:
//! 1. No Contact: a query; the 200 lists the current bindings.
//! 2. `Contact: *` must be alone and come with `Expires: 0`, else 400. It removes every
//!    binding of the extension, unless one has the request's Call-ID with a CSeq not below
//!    the request's: then nothing changes and the answer is 500 (step 6).
//! 3. Each contact's requested expiry is its `expires` parameter, else the Expires header,
//!    else `default_expires`. A request between 1 s and `min_expires` gets 423 with
//!    `Min-Expires`; a longer one than `max_expires` is shortened to it; 0 removes the
//!    binding (step 7).
//! 4. A contact matches an existing binding by `+sip.instance` and `reg-id` when it has both
//!    (RFC 5626 §6), by `+sip.instance` alone when it has no `reg-id` (RFC 5627 §7.1.2.1),
//!    else by RFC 3261 §19.1.4 URI comparison against bindings without an instance. A match
//!    with the same Call-ID and a CSeq not above the stored one aborts the whole request
//!    with 500 (step 7).
//! 5. Beyond `max_contacts`, the least recently registered or refreshed bindings are
//!    replaced (SIG-03). A request with more Contact values than `max_contacts` or 32,
//!    whichever is larger, gets 400 (it bounds the work one request causes).
//! 6. All updates commit together or none does (step 7); the 200 lists every binding with
//!    its remaining `expires` (step 8), echoes Path, and carries `Require: outbound` when
//!    outbound rules were applied for a client that supports them.
//!
//! Path (RFC 3327 §5.3): stored and echoed when the client sends `Supported: path`; a Path
//! from a client that does not is rejected with 420, the RFC's recommended policy.
//! Outbound (RFC 5626 §6): when voxgate is not the first hop (more than one Via) and the
//! first Path URI has no `ob` parameter, `reg-id` is ignored, or the request gets 439 if
//! the client supports outbound. Several contacts with a non-zero expiry where one has a
//! `reg-id` get 400.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::contact::{
    format_qvalue, parse_delta_seconds, parse_qvalue, parse_stored, uri_equivalent,
};
use super::{Binding, Flow, Registrar, RegistrarConfig, RegistrarEvent, UnboundReason};
use crate::sip::{
    reason_phrase, ContactValue, HeaderError, HeaderName, Message, NameAddr, ResponseBuilder, Uri,
};

/// The longest User-Agent kept with a binding; the rest is cut (memory per binding stays
/// bounded whatever a client sends).
const MAX_USER_AGENT: usize = 256;

/// RFC 3261 §10.3 step 7: 423 only for a request "smaller than one hour".
const ONE_HOUR: u32 = 3600;

/// Contact values one REGISTER may carry, unless `max_contacts` is larger.
const MIN_CONTACTS_PER_REQUEST: usize = 32;

/// What to answer a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum RegisterOutcome {
    /// 200 OK, with the extension's bindings after the update.
    Registered(Registered),
    /// 400, 420, 423, 439 or 500: nothing changed.
    Rejected(RegisterError),
}

/// The contents of a REGISTER's 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// Every current binding of the extension (RFC 3261 §10.3 step 8).
    pub contacts: Vec<RegisteredContact>,
    /// The request's Path values, to echo (RFC 3327 §5.3); empty when the client did not
    /// send `Supported: path`.
    pub path: Vec<String>,
    /// Outbound rules were applied and the client supports them: `Require: outbound`
    /// (RFC 5626 §6).
    pub outbound: bool,
}

/// One Contact of a REGISTER's 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredContact {
    pub uri: String,
    /// Remaining seconds, rounded up.
    pub expires: u32,
    pub q: Option<u16>,
    pub instance: Option<String>,
    pub reg_id: Option<u32>,
}

/// Why a REGISTER was refused. Each variant knows its status code ([`Self::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// A header the registrar reads is missing, repeated or malformed: 400.
    #[error("{0}")]
    Header(#[from] HeaderError),
    /// A Path value that is not a name-addr (RFC 3327 §4): 400.
    #[error("Malformed Path")]
    MalformedPath,
    /// `*` with other contacts, or without `Expires: 0` (RFC 3261 §10.3 step 6): 400.
    #[error("'*' Contact must be alone, with Expires: 0")]
    InvalidWildcard,
    /// Several contacts with a non-zero expiry, one of them with `reg-id`
    /// (RFC 5626 §6): 400.
    #[error("several contacts where one has reg-id")]
    SeveralOutboundContacts,
    /// A Path header from a client that did not send `Supported: path`
    /// (RFC 3327 §5.3): 420 with `Unsupported: path`.
    #[error("Path without Supported: path")]
    PathNotSupported,
    /// `reg-id` and `Supported: outbound` through a first hop that did not mark its Path
    /// with `ob` (RFC 5626 §6): 439.
    #[error("first hop lacks outbound support")]
    FirstHopLacksOutbound,
    /// More Contact values in one REGISTER than any device needs (at least 32, at least
    /// `max_contacts`): 400. Bounds the work one request can cause.
    #[error("more than {max} contacts in one request")]
    TooManyContacts { max: usize },
    /// A non-zero expiry below the minimum (RFC 3261 §10.3 step 7): 423 with
    /// `Min-Expires`.
    #[error("expiry below {min_expires} s")]
    IntervalTooBrief { min_expires: u32 },
    /// A binding was last refreshed by this Call-ID with a CSeq at or above the request's:
    /// an out-of-order REGISTER (RFC 3261 §10.3 steps 6 and 7): 500.
    #[error("CSeq {cseq} is not above the binding's {stored}")]
    OutOfOrder { cseq: u32, stored: u32 },
}

impl RegisterError {
    /// Status code and reason phrase.
    pub fn status(&self) -> (u16, Cow<'static, str>) {
        match self {
            RegisterError::Header(e) => (400, Cow::Owned(e.to_string())),
            RegisterError::MalformedPath => (400, Cow::Borrowed("Malformed Path")),
            RegisterError::InvalidWildcard => (400, Cow::Borrowed("Invalid Wildcard Contact")),
            RegisterError::SeveralOutboundContacts => {
                (400, Cow::Borrowed("Several Contacts With reg-id"))
            }
            RegisterError::PathNotSupported => (420, Cow::Borrowed(reason_phrase(420))),
            RegisterError::FirstHopLacksOutbound => {
                (439, Cow::Borrowed("First Hop Lacks Outbound Support"))
            }
            RegisterError::TooManyContacts { .. } => (400, Cow::Borrowed("Too Many Contacts")),
            RegisterError::IntervalTooBrief { .. } => (423, Cow::Borrowed(reason_phrase(423))),
            RegisterError::OutOfOrder { .. } => (500, Cow::Borrowed(reason_phrase(500))),
        }
    }
}

impl RegisterOutcome {
    pub fn status(&self) -> u16 {
        match self {
            RegisterOutcome::Registered(_) => 200,
            RegisterOutcome::Rejected(e) => e.status().0,
        }
    }

    /// The response to `request`, with Via/From/To/Call-ID/CSeq copied and this outcome's
    /// headers added. The caller adds its Server header (and anything else) and builds it.
    pub fn response(&self, request: &Message, to_tag: Option<&str>) -> ResponseBuilder {
        match self {
            RegisterOutcome::Registered(r) => {
                let mut b = ResponseBuilder::new(request, 200, reason_phrase(200), to_tag);
                for c in &r.contacts {
                    b = b.header(HeaderName::Contact, c.header_value());
                }
                if !r.path.is_empty() {
                    b = b.raw_header("Path", r.path.join(", "));
                }
                if r.outbound {
                    b = b
                        .header(HeaderName::Require, "outbound")
                        .header(HeaderName::Supported, "path, outbound");
                }
                b
            }
            RegisterOutcome::Rejected(e) => {
                let (code, reason) = e.status();
                let b =
                    ResponseBuilder::new(request, code, Bytes::from(reason.into_owned()), to_tag);
                match e {
                    RegisterError::IntervalTooBrief { min_expires } => {
                        b.header(HeaderName::MinExpires, min_expires.to_string())
                    }
                    RegisterError::PathNotSupported => b.header(HeaderName::Unsupported, "path"),
                    _ => b,
                }
            }
        }
    }
}

impl RegisteredContact {
    /// `<uri>;expires=N[;q=…][;+sip.instance="…"][;reg-id=…]`.
    pub fn header_value(&self) -> String {
        let mut v = String::with_capacity(self.uri.len() + 64);
        let _ = write!(v, "<{}>;expires={}", self.uri, self.expires);
        if let Some(q) = self.q {
            let _ = write!(v, ";q={}", format_qvalue(q));
        }
        if let Some(i) = &self.instance {
            let _ = write!(v, ";+sip.instance=\"{i}\"");
        }
        if let Some(r) = self.reg_id {
            let _ = write!(v, ";reg-id={r}");
        }
        v
    }
}

/// One Contact of the request, checked.
#[derive(Debug)]
struct RequestContact {
    uri_raw: String,
    uri: Uri,
    expires: Option<u32>,
    q: Option<u16>,
    instance: Option<String>,
    reg_id: Option<u32>,
}

#[derive(Debug)]
enum Contacts {
    Query,
    Wildcard,
    List(Vec<RequestContact>),
}

/// The parts of a REGISTER the registrar uses.
#[derive(Debug)]
struct Parsed {
    call_id: String,
    cseq: u32,
    expires: Option<u32>,
    contacts: Contacts,
    /// Path values to store and echo (empty unless `Supported: path`).
    path: Vec<String>,
    /// Some contact was processed with outbound rules.
    outbound_used: bool,
    outbound_supported: bool,
    user_agent: Option<String>,
}

/// What happens to one binding of the extension (existing or new) in this request.
#[derive(Debug)]
enum Change {
    Keep,
    Update(Box<Binding>),
    Remove(UnboundReason),
}

#[derive(Debug)]
struct Work {
    slot: Option<u32>,
    order: u64,
    change: Change,
    /// Already matched by a contact of this request: a later duplicate of that contact is
    /// not an out-of-order request.
    touched: bool,
    /// The binding's contact URI, parsed once per request for RFC 3261 §19.1.4 matching
    /// (`None` for bindings matched by instance).
    uri: Option<Uri>,
}

impl Work {
    fn live(&self) -> bool {
        !matches!(self.change, Change::Remove(_))
    }
}

impl Registrar {
    pub(super) fn register(
        &mut self,
        now: Instant,
        flow: Flow,
        aor: &str,
        request: &Message,
    ) -> RegisterOutcome {
        let parsed = match parse(request) {
            Ok(p) => p,
            Err(e) => return RegisterOutcome::Rejected(e),
        };
        // Bindings whose expiry passed but whose timer has not been handled yet are gone:
        // they must not match, count toward the cap, or be listed in the 200.
        let stale: Vec<u32> = self
            .table
            .slots_of(aor)
            .iter()
            .copied()
            .filter(|s| self.table.binding(*s).is_some_and(|b| b.expires <= now))
            .collect();
        for slot in stale {
            self.remove(slot, UnboundReason::Expired);
        }
        let was_registered = !self.table.slots_of(aor).is_empty();
        let applied = match &parsed.contacts {
            Contacts::Query => Ok(()),
            Contacts::Wildcard => self.remove_all(aor, &parsed),
            Contacts::List(list) => self.update(now, flow, aor, &parsed, list),
        };
        if let Err(e) = applied {
            tracing::debug!(aor, error = %e, "REGISTER refused");
            return RegisterOutcome::Rejected(e);
        }
        self.table
            .flow_alive(&flow, now, self.config.keepalive_interval);
        let registered = !self.table.slots_of(aor).is_empty();
        if registered != was_registered {
            self.events.push_back(RegistrarEvent::AorState {
                aor: aor.to_owned(),
                registered,
            });
        }
        let contacts = self
            .table
            .bindings_of(aor)
            .map(|b| RegisteredContact {
                uri: b.contact.clone(),
                expires: remaining_secs(b.expires, now),
                q: b.q,
                instance: b.instance.clone(),
                reg_id: b.reg_id,
            })
            .collect();
        RegisterOutcome::Registered(Registered {
            contacts,
            path: parsed.path,
            outbound: parsed.outbound_used && parsed.outbound_supported,
        })
    }

    /// `Contact: *` (RFC 3261 §10.3 step 6).
    fn remove_all(&mut self, aor: &str, p: &Parsed) -> Result<(), RegisterError> {
        let slots = self.table.slots_of(aor).to_vec();
        for &slot in &slots {
            if let Some(b) = self.table.binding(slot) {
                check_order(b, p)?;
            }
        }
        for slot in slots {
            self.remove_quiet_state(slot, UnboundReason::Removed);
        }
        Ok(())
    }

    /// Contacts (RFC 3261 §10.3 step 7): plan every change, then commit them together.
    fn update(
        &mut self,
        now: Instant,
        flow: Flow,
        aor: &str,
        p: &Parsed,
        list: &[RequestContact],
    ) -> Result<(), RegisterError> {
        let max = self.config.max_contacts.max(MIN_CONTACTS_PER_REQUEST);
        if list.len() > max {
            return Err(RegisterError::TooManyContacts { max });
        }
        let granted = list
            .iter()
            .map(|c| grant(&self.config, c.expires.or(p.expires)))
            .collect::<Result<Vec<u32>, RegisterError>>()?;
        let mut work: Vec<Work> = self
            .table
            .slots_of(aor)
            .iter()
            .map(|&slot| Work {
                slot: Some(slot),
                order: self.table.order(slot),
                change: Change::Keep,
                touched: false,
                uri: self
                    .table
                    .binding(slot)
                    .filter(|b| b.instance.is_none())
                    .and_then(|b| parse_stored(&b.contact)),
            })
            .collect();
        for (c, secs) in list.iter().zip(granted) {
            let found = work.iter().position(|w| {
                w.live()
                    && self
                        .current(w)
                        .is_some_and(|b| matches_contact(b, w.uri.as_ref(), c))
            });
            match found {
                Some(i) => {
                    if !work[i].touched {
                        if let Some(b) = self.current(&work[i]) {
                            check_order(b, p)?;
                        }
                    }
                    let order = self.table.next_order();
                    let w = &mut work[i];
                    w.touched = true;
                    if secs == 0 {
                        w.change = Change::Remove(UnboundReason::Removed);
                    } else {
                        w.change =
                            Change::Update(Box::new(new_binding(now, flow, aor, p, c, secs)));
                        w.order = order;
                        w.uri = Some(c.uri.clone());
                    }
                }
                None if secs == 0 => {}
                None => {
                    let order = self.table.next_order();
                    work.push(Work {
                        slot: None,
                        order,
                        change: Change::Update(Box::new(new_binding(now, flow, aor, p, c, secs))),
                        touched: true,
                        uri: Some(c.uri.clone()),
                    });
                }
            }
        }
        // SIG-03: over the cap, the oldest make room.
        while work.iter().filter(|w| w.live()).count() > self.config.max_contacts {
            let oldest = work
                .iter_mut()
                .filter(|w| w.live())
                .min_by_key(|w| w.order)
                .expect("more live entries than the cap, so at least one");
            oldest.change = Change::Remove(UnboundReason::Replaced);
        }
        self.commit(now, work);
        Ok(())
    }

    /// The binding a work item stands for now.
    fn current<'a>(&'a self, w: &'a Work) -> Option<&'a Binding> {
        match (&w.change, w.slot) {
            (Change::Update(b), _) => Some(b),
            (_, Some(slot)) => self.table.binding(slot),
            (_, None) => None,
        }
    }

    fn commit(&mut self, now: Instant, work: Vec<Work>) {
        let keepalive = self.config.keepalive_interval;
        // Removals first: their slots and contact-cap room are free for what follows.
        for w in &work {
            if let (Some(slot), Change::Remove(reason)) = (w.slot, &w.change) {
                self.remove_quiet_state(slot, *reason);
            }
        }
        for w in work {
            let Change::Update(b) = w.change else {
                continue;
            };
            match w.slot {
                Some(slot) => {
                    if let Some(old) = self.table.binding(slot) {
                        let same_identity = old.contact == b.contact
                            && old.instance == b.instance
                            && old.reg_id == b.reg_id;
                        if !same_identity {
                            let old = old.clone();
                            self.events
                                .push_back(RegistrarEvent::unbound(old, UnboundReason::Replaced));
                        }
                    }
                    self.table
                        .update(slot, (*b).clone(), w.order, now, keepalive);
                }
                None => self.table.insert((*b).clone(), w.order, now, keepalive),
            }
            self.events.push_back(RegistrarEvent::Bound(*b));
        }
    }
}

/// RFC 3261 §10.3 steps 6 and 7: a binding last touched by this Call-ID changes only for a
/// higher CSeq.
fn check_order(b: &Binding, p: &Parsed) -> Result<(), RegisterError> {
    if b.call_id == p.call_id && p.cseq <= b.cseq {
        return Err(RegisterError::OutOfOrder {
            cseq: p.cseq,
            stored: b.cseq,
        });
    }
    Ok(())
}

/// The expiry to grant, in seconds (0 removes).
fn grant(config: &RegistrarConfig, requested: Option<u32>) -> Result<u32, RegisterError> {
    let min = RegistrarConfig::secs(config.min_expires);
    let max = RegistrarConfig::secs(config.max_expires);
    match requested {
        Some(0) => Ok(0),
        Some(r) if r < min && r < ONE_HOUR => {
            Err(RegisterError::IntervalTooBrief { min_expires: min })
        }
        Some(r) => Ok(r.min(max).max(min)),
        None => Ok(RegistrarConfig::secs(config.default_expires)
            .min(max)
            .max(min)),
    }
}

/// Whether request contact `c` names binding `b` (whose parsed contact URI is `uri`).
fn matches_contact(b: &Binding, uri: Option<&Uri>, c: &RequestContact) -> bool {
    match (&c.instance, c.reg_id) {
        (Some(i), Some(r)) => b.instance.as_deref() == Some(i) && b.reg_id == Some(r),
        (Some(i), None) => b.instance.as_deref() == Some(i) && b.reg_id.is_none(),
        (None, _) => b.instance.is_none() && uri.is_some_and(|u| uri_equivalent(u, &c.uri)),
    }
}

fn new_binding(
    now: Instant,
    flow: Flow,
    aor: &str,
    p: &Parsed,
    c: &RequestContact,
    secs: u32,
) -> Binding {
    Binding {
        aor: aor.to_owned(),
        contact: c.uri_raw.clone(),
        flow,
        expires: now + Duration::from_secs(u64::from(secs)),
        q: c.q,
        instance: c.instance.clone(),
        reg_id: c.reg_id,
        path: p.path.clone(),
        call_id: p.call_id.clone(),
        cseq: p.cseq,
        user_agent: p.user_agent.clone(),
    }
}

fn remaining_secs(expires: Instant, now: Instant) -> u32 {
    let d = expires.saturating_duration_since(now);
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

const MALFORMED_CONTACT: RegisterError =
    RegisterError::Header(HeaderError::Malformed(HeaderName::Contact));

fn parse(request: &Message) -> Result<Parsed, RegisterError> {
    let call_id = std::str::from_utf8(request.call_id()?)
        .map_err(|_| HeaderError::Malformed(HeaderName::CallId))?
        .to_owned();
    let cseq = request.cseq()?.seq;
    let expires = match request.single(HeaderName::Expires) {
        Ok(v) => Some(
            parse_delta_seconds(crate::sip::trim_lws(v))
                .ok_or(HeaderError::Malformed(HeaderName::Expires))?,
        ),
        Err(HeaderError::Missing(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let supported = request.tokens(HeaderName::Supported)?;
    let supports = |tag: &str| {
        supported
            .iter()
            .any(|t| t.eq_ignore_ascii_case(tag.as_bytes()))
    };
    let path_supported = supports("path");
    let outbound_supported = supports("outbound");

    let path_values: Vec<Bytes> = request
        .headers()
        .iter()
        .filter(|h| h.name == HeaderName::Other && h.is_named("Path"))
        .flat_map(|h| crate::sip::split_list(&h.value))
        .collect();
    let path_error = RegisterError::MalformedPath;
    let mut path_first_ob = false;
    for (i, v) in path_values.iter().enumerate() {
        let addr = NameAddr::parse(v).map_err(|_| path_error)?;
        if i == 0 {
            path_first_ob = addr.uri.as_sip().is_some_and(|u| u.param("ob").is_some());
        }
    }
    if !path_values.is_empty() && !path_supported {
        return Err(RegisterError::PathNotSupported);
    }
    let path = path_values
        .iter()
        .map(|v| String::from_utf8(v.to_vec()).map_err(|_| path_error))
        .collect::<Result<Vec<String>, RegisterError>>()?;

    let values = request.contacts()?;
    let contacts = if values.is_empty() {
        Contacts::Query
    } else if values.iter().any(|v| matches!(v, ContactValue::Star)) {
        if values.len() != 1 || expires != Some(0) {
            return Err(RegisterError::InvalidWildcard);
        }
        Contacts::Wildcard
    } else {
        let mut list = Vec::with_capacity(values.len());
        for v in values {
            let ContactValue::Addr(addr) = v else {
                unreachable!("the star case is handled above");
            };
            list.push(request_contact(*addr)?);
        }
        Contacts::List(list)
    };

    // RFC 5626 §6: outbound applies when voxgate is the first hop, or the first hop marked
    // its Path with `ob`. A reg-id without an instance is ignored.
    let first_hop = request.vias()?.len() <= 1;
    let outbound_allowed = first_hop || path_first_ob;
    let mut outbound_used = false;
    let mut contacts = contacts;
    if let Contacts::List(list) = &mut contacts {
        for c in list.iter_mut() {
            if c.reg_id.is_none() {
                continue;
            }
            if c.instance.is_none() {
                c.reg_id = None;
            } else if !outbound_allowed {
                if outbound_supported {
                    return Err(RegisterError::FirstHopLacksOutbound);
                }
                c.reg_id = None;
            } else {
                outbound_used = true;
            }
        }
        let nonzero = |c: &&RequestContact| c.expires.or(expires) != Some(0);
        let several = list.iter().filter(nonzero).count() > 1;
        if several && list.iter().filter(nonzero).any(|c| c.reg_id.is_some()) {
            return Err(RegisterError::SeveralOutboundContacts);
        }
    }

    let user_agent = request.first(HeaderName::UserAgent).map(|h| {
        let mut ua = String::from_utf8_lossy(&h.value).into_owned();
        if ua.len() > MAX_USER_AGENT {
            let mut cut = MAX_USER_AGENT;
            while !ua.is_char_boundary(cut) {
                cut -= 1;
            }
            ua.truncate(cut);
        }
        ua
    });
    Ok(Parsed {
        call_id,
        cseq,
        expires,
        contacts,
        path: if path_supported { path } else { Vec::new() },
        outbound_used,
        outbound_supported,
        user_agent,
    })
}

fn request_contact(addr: NameAddr) -> Result<RequestContact, RegisterError> {
    let uri_raw = String::from_utf8(addr.uri_raw.to_vec()).map_err(|_| MALFORMED_CONTACT)?;
    let expires = match addr.params.get("expires") {
        None => None,
        Some(Some(v)) => Some(parse_delta_seconds(v).ok_or(MALFORMED_CONTACT)?),
        Some(None) => return Err(MALFORMED_CONTACT),
    };
    let q = match addr.params.get("q") {
        None => None,
        Some(Some(v)) => Some(parse_qvalue(v).ok_or(MALFORMED_CONTACT)?),
        Some(None) => return Err(MALFORMED_CONTACT),
    };
    let instance = match addr.params.get("+sip.instance") {
        None => None,
        Some(Some(v)) => {
            let inner = v
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .ok_or(MALFORMED_CONTACT)?;
            if inner.is_empty() {
                return Err(MALFORMED_CONTACT);
            }
            Some(String::from_utf8(inner.to_vec()).map_err(|_| MALFORMED_CONTACT)?)
        }
        Some(None) => return Err(MALFORMED_CONTACT),
    };
    // RFC 5626 §4.2: reg-id is 1 to 2^31 - 1.
    let reg_id = match addr.params.get("reg-id") {
        None => None,
        Some(Some(v)) => Some(
            std::str::from_utf8(v)
                .ok()
                .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u32>().ok())
                .filter(|r| (1..=0x7fff_ffff).contains(r))
                .ok_or(MALFORMED_CONTACT)?,
        ),
        Some(None) => return Err(MALFORMED_CONTACT),
    };
    Ok(RequestContact {
        uri_raw,
        uri: addr.uri,
        expires,
        q,
        instance,
        reg_id,
    })
}
