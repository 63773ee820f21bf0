//! Transaction identities: which transaction a message belongs to (RFC 3261 §17.1.3,
//! §17.2.3).
//!
//! - [`ServerKey`]: a request with an RFC 3261 branch (magic cookie `z9hG4bK`) is keyed by
//!   branch, top-Via sent-by and method, ACK counting as INVITE. A request without one (an
//!   RFC 2543 peer) is keyed by Request-URI, From tag, Call-ID, CSeq number, top Via and
//!   method; the To tag is compared after the look-up (see [`Legacy`]), because the ACK
//!   carries the tag of the response, not that of the INVITE.
//! - [`ClientKey`]: a response matches the client transaction whose request carried its top
//!   Via branch and whose method is its CSeq method.
//! - [`AckKey`]: the dialog-level identity of the ACK for a 2xx, which has a branch of its
//!   own and so never matches the INVITE's key (RFC 6026 §7.1).
//!
//! What it does not do: decide what a match means (the manager and the state machines do).

use std::net::IpAddr;

use bytes::Bytes;

use crate::sip::{Host, Message, Method, Via};

use super::TransactionError;

/// An owned copy of bytes taken from a message. Keys and tags that outlive the message are
/// copied so that a transaction does not keep the whole request datagram alive (a `Bytes`
/// slice holds its entire buffer).
fn owned(b: &[u8]) -> Box<[u8]> {
    b.into()
}

/// A detached copy of a message slice, as `Bytes` (for values handed back as `Bytes`).
pub(crate) fn detach(b: &Bytes) -> Bytes {
    Bytes::copy_from_slice(b)
}

/// A method that owns its name (an extension method's name is copied out of the request).
fn owned_method(method: Method) -> Method {
    match method {
        Method::Other(name) => Method::Other(detach(&name)),
        known => known,
    }
}

/// The host of a sent-by as compared for matching: an address as parsed, a name
/// case-folded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum HostKey {
    Ip(IpAddr),
    Name(Box<[u8]>),
}

/// The sent-by of a Via as compared for matching: host case-folded, port explicit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SentBy {
    host: HostKey,
    port: u16,
}

impl SentBy {
    fn of(via: &Via) -> SentBy {
        let default_port = match via.known_transport() {
            Some(t) => t.default_port(),
            None => 5060,
        };
        let host = match &via.host {
            Host::Ip(ip) => HostKey::Ip(*ip),
            Host::Domain(name) => HostKey::Name(name.to_ascii_lowercase().into_boxed_slice()),
        };
        SentBy {
            host,
            port: via.port.unwrap_or(default_port),
        }
    }
}

/// The RFC 2543 identity of a request (RFC 3261 §17.2.3, last paragraph), To tag excluded.
///
/// "Matching is done based on the matching rules defined for each of those header fields":
/// the Request-URI and Call-ID are compared octet by octet (a retransmission and the ACK of
/// §17.1.1.3 repeat them exactly), the top Via by transport, sent-by and branch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Legacy {
    request_uri: Box<[u8]>,
    from_tag: Option<Box<[u8]>>,
    call_id: Box<[u8]>,
    cseq: u32,
    via_transport: Box<[u8]>,
    via_sent_by: SentBy,
    via_branch: Option<Box<[u8]>>,
}

/// The key of a server transaction. It owns its bytes (see [`owned`]); the RFC 2543 form,
/// rare and large, is boxed so that the common form stays small.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ServerKey {
    /// RFC 3261: branch + sent-by + method (ACK and CANCEL lookups use INVITE).
    Branch {
        branch: Box<[u8]>,
        sent_by: SentBy,
        method: Method,
    },
    /// RFC 2543 fallback.
    Legacy { ids: Box<Legacy>, method: Method },
}

impl ServerKey {
    pub(crate) fn is_legacy(&self) -> bool {
        matches!(self, ServerKey::Legacy { .. })
    }
}

/// What a request says about the transaction it belongs to.
#[derive(Debug, Clone)]
pub(crate) struct RequestIds {
    pub(crate) key: ServerKey,
    /// The To tag of a request with an RFC 2543 key (an owned copy), compared after the
    /// look-up. Always `None` for an RFC 3261 key, whose matching ignores the To tag (so
    /// the To header is not even parsed then).
    pub(crate) to_tag: Option<Bytes>,
}

/// The server key of `msg`, as a request of method `method` (INVITE for an ACK or when
/// looking up the INVITE a CANCEL refers to).
pub(crate) fn server_ids(msg: &Message, method: Method) -> Result<RequestIds, TransactionError> {
    let line = msg.request_line().ok_or(TransactionError::NotARequest)?;
    let via = msg.top_via()?;
    if let Some(branch) = via.rfc3261_branch() {
        return Ok(RequestIds {
            key: ServerKey::Branch {
                branch: owned(branch),
                sent_by: SentBy::of(&via),
                method: owned_method(method),
            },
            to_tag: None,
        });
    }
    let from = msg.from()?;
    let ids = Legacy {
        request_uri: owned(&line.uri),
        from_tag: from.tag().map(|t| owned(t)),
        call_id: owned(msg.call_id()?),
        cseq: msg.cseq()?.seq,
        via_transport: via.transport.to_ascii_uppercase().into_boxed_slice(),
        via_sent_by: SentBy::of(&via),
        via_branch: via.branch().map(|b| owned(b)),
    };
    // A legacy request needs a To header too (its tag is compared after the look-up).
    let to_tag = msg.to()?.tag().map(detach);
    Ok(RequestIds {
        key: ServerKey::Legacy {
            ids: Box::new(ids),
            method: owned_method(method),
        },
        to_tag,
    })
}

/// The method a request is matched under: ACK belongs to the INVITE transaction.
pub(crate) fn match_method(method: &Method) -> Method {
    match method {
        Method::Ack => Method::Invite,
        other => other.clone(),
    }
}

/// The key of a client transaction: the branch it put in its Via and its method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey {
    branch: Bytes,
    method: Method,
}

impl ClientKey {
    /// The key of the transaction with the same branch and another method (the INVITE a
    /// CANCEL cancels).
    pub(crate) fn with_method(&self, method: Method) -> ClientKey {
        ClientKey {
            branch: self.branch.clone(),
            method,
        }
    }
}

/// The key of a request voxgate sends; it must carry an RFC 3261 branch, which is what the
/// response will be matched by.
pub(crate) fn client_key_of_request(msg: &Message) -> Result<ClientKey, TransactionError> {
    let method = msg.method().cloned().ok_or(TransactionError::NotARequest)?;
    let via = msg.top_via()?;
    let branch = via
        .rfc3261_branch()
        .ok_or(TransactionError::NoBranch)?
        .clone();
    Ok(ClientKey { branch, method })
}

/// The key a response is matched by (RFC 3261 §17.1.3); `None` when it has no usable top
/// Via branch or CSeq (such a response matches nothing).
pub(crate) fn client_key_of_response(msg: &Message) -> Option<ClientKey> {
    let via = msg.top_via().ok()?;
    let branch = via.branch()?.clone();
    let method = msg.cseq().ok()?.method;
    Some(ClientKey { branch, method })
}

/// The dialog-level identity of an ACK for a 2xx: Call-ID, From tag, CSeq number and the To
/// tag of the 2xx (RFC 3261 §13.2.2.4, §17.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct AckKey {
    call_id: Bytes,
    from_tag: Option<Bytes>,
    cseq: u32,
    to_tag: Option<Bytes>,
}

/// The part of an [`AckKey`] an INVITE determines (everything but the To tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AckBase {
    call_id: Bytes,
    from_tag: Option<Bytes>,
    cseq: u32,
}

impl AckBase {
    pub(crate) fn of_request(msg: &Message) -> Option<AckBase> {
        // Owned copies: an INVITE transaction keeps its AckBase while it lives.
        Some(AckBase {
            call_id: detach(msg.call_id().ok()?),
            from_tag: msg.from().ok()?.tag().map(detach),
            cseq: msg.cseq().ok()?.seq,
        })
    }

    pub(crate) fn with_to_tag(&self, to_tag: Option<Bytes>) -> AckKey {
        AckKey {
            call_id: self.call_id.clone(),
            from_tag: self.from_tag.clone(),
            cseq: self.cseq,
            to_tag,
        }
    }
}

/// The [`AckKey`] of an ACK.
pub(crate) fn ack_key(ack: &Message) -> Option<AckKey> {
    let base = AckBase::of_request(ack)?;
    let to_tag = ack.to().ok()?.tag().cloned();
    Some(base.with_to_tag(to_tag))
}

/// The To tag of a message, if it has a parseable To with a tag (an owned copy).
pub(crate) fn to_tag(msg: &Message) -> Option<Bytes> {
    msg.to().ok().and_then(|t| t.tag().map(detach))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_support::parse;

    fn request(method: &str, via: &str, to: &str, cseq: &str) -> Message {
        parse(&format!(
            "{method} sip:bob@example.com SIP/2.0\n\
             Via: {via}\n\
             From: <sip:alice@example.com>;tag=a1\n\
             To: {to}\n\
             Call-ID: c1@host\n\
             CSeq: {cseq}\n\
             Content-Length: 0\n\n"
        ))
    }

    #[test]
    fn rfc3261_key_ignores_case_of_host_and_default_port() {
        let a = request(
            "INVITE",
            "SIP/2.0/UDP Host.Example.com;branch=z9hG4bK1",
            "<sip:bob@example.com>",
            "1 INVITE",
        );
        let b = request(
            "INVITE",
            "SIP/2.0/UDP host.example.com:5060;branch=z9hG4bK1",
            "<sip:bob@example.com>",
            "1 INVITE",
        );
        let ka = server_ids(&a, Method::Invite).expect("key").key;
        let kb = server_ids(&b, Method::Invite).expect("key").key;
        assert_eq!(ka, kb);
        assert!(!ka.is_legacy());
    }

    #[test]
    fn rfc3261_key_differs_by_branch_sent_by_and_method() {
        let base = request(
            "INVITE",
            "SIP/2.0/UDP h;branch=z9hG4bK1",
            "<sip:b@x>",
            "1 INVITE",
        );
        let k = |m: &Message, meth| server_ids(m, meth).expect("key").key;
        let other_branch = request(
            "INVITE",
            "SIP/2.0/UDP h;branch=z9hG4bK2",
            "<sip:b@x>",
            "1 INVITE",
        );
        let other_host = request(
            "INVITE",
            "SIP/2.0/UDP h2;branch=z9hG4bK1",
            "<sip:b@x>",
            "1 INVITE",
        );
        assert_ne!(k(&base, Method::Invite), k(&other_branch, Method::Invite));
        assert_ne!(k(&base, Method::Invite), k(&other_host, Method::Invite));
        assert_ne!(k(&base, Method::Invite), k(&base, Method::Cancel));
        assert_eq!(match_method(&Method::Ack), Method::Invite);
    }

    #[test]
    fn legacy_key_without_cookie() {
        let inv = request("INVITE", "SIP/2.0/UDP h;branch=1", "<sip:b@x>", "1 INVITE");
        let ack = request("ACK", "SIP/2.0/UDP h;branch=1", "<sip:b@x>;tag=t9", "1 ACK");
        let ki = server_ids(&inv, Method::Invite).expect("key");
        let ka = server_ids(&ack, match_method(&Method::Ack)).expect("key");
        assert!(ki.key.is_legacy());
        assert_eq!(ki.key, ka.key);
        assert_eq!(ki.to_tag, None);
        assert_eq!(ka.to_tag.as_deref(), Some(&b"t9"[..]));
        let next = request("INVITE", "SIP/2.0/UDP h;branch=1", "<sip:b@x>", "2 INVITE");
        assert_ne!(ki.key, server_ids(&next, Method::Invite).expect("key").key);
    }

    #[test]
    fn client_keys_match_request_and_response() {
        let req = request(
            "OPTIONS",
            "SIP/2.0/UDP h;branch=z9hG4bKx",
            "<sip:b@x>",
            "5 OPTIONS",
        );
        let resp = parse(
            "SIP/2.0 200 OK\n\
             Via: SIP/2.0/UDP h;branch=z9hG4bKx\n\
             From: <sip:alice@example.com>;tag=a1\n\
             To: <sip:b@x>;tag=b\n\
             Call-ID: c1@host\n\
             CSeq: 5 OPTIONS\n\
             Content-Length: 0\n\n",
        );
        assert_eq!(
            client_key_of_request(&req).expect("key"),
            client_key_of_response(&resp).expect("key")
        );
        let legacy = request(
            "OPTIONS",
            "SIP/2.0/UDP h;branch=1",
            "<sip:b@x>",
            "5 OPTIONS",
        );
        assert_eq!(
            client_key_of_request(&legacy),
            Err(TransactionError::NoBranch)
        );
    }

    #[test]
    fn ack_key_uses_to_tag() {
        let inv = request(
            "INVITE",
            "SIP/2.0/UDP h;branch=z9hG4bK1",
            "<sip:b@x>",
            "7 INVITE",
        );
        let ack = request(
            "ACK",
            "SIP/2.0/UDP h;branch=z9hG4bK2",
            "<sip:b@x>;tag=t",
            "7 ACK",
        );
        let base = AckBase::of_request(&inv).expect("base");
        assert_eq!(
            Some(base.with_to_tag(Some(Bytes::from_static(b"t")))),
            ack_key(&ack)
        );
        assert_ne!(Some(base.with_to_tag(None)), ack_key(&ack));
    }
}
