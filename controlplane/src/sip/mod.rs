//! The SIP message model (RFC 3261 §7, §20, §25).
//!
//! A [`Message`] keeps the bytes it was parsed from: the start line is parsed eagerly, header
//! fields are indexed as raw name/value slices in their original order, and typed values
//! ([`Via`], [`NameAddr`], [`CSeq`] …) are parsed from those slices when first asked for.
//! Unknown headers are never touched, so a message prints back as it came.
//!
//! What it does not do: transactions, routing or policy. Whether a malformed header makes a
//! request unanswerable or a 400 is the endpoint's decision ([`crate::endpoint`]).

mod builder;
pub mod framing;
mod header;
mod message;
mod method;
mod name;
mod parse;
mod scan;
mod uri;

pub use builder::{reason_phrase, ResponseBuilder};
pub use header::split_commas as split_list;
pub use header::{AuthParams, CSeq, ContactValue, ContentType, NameAddr, Param, Params, Via};
pub use message::{Header, HeaderError, Message, RequestLine, StartLine, StatusLine};
pub use method::Method;
pub use name::HeaderName;
pub use parse::ParseError;
pub use parse::{Defect, Framing};
pub use scan::trim as trim_lws;
pub use uri::{unescape, Host, SipUri, TelUri, Uri, UriError};

use std::fmt;

/// A SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    pub const COUNT: usize = 3;
    pub const ALL: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];

    /// Lower-case label (`udp`, `tcp`, `tls`) for config and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// The token used in a Via sent-protocol (`UDP`, `TCP`, `TLS`).
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// Whether the transport is reliable (timers A, E, G, I, J, K depend on it).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// RFC 3261 §19.1.2: 5061 for TLS, 5060 otherwise.
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls => 5061,
            _ => 5060,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
