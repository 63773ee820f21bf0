//! Errors of the control plane that reach the wire. Each request-level fault maps in one
//! place ([`RequestError::status`]) to the SIP status and reason phrase voxgate answers with.

use crate::sip::{Defect, HeaderError, UriError};

/// Why voxgate itself rejects a request before any application logic sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    #[error("{0}")]
    Defect(#[from] Defect),
    #[error("{0}")]
    Header(#[from] HeaderError),
    #[error("Malformed Request-URI: {0}")]
    Uri(UriError),
    #[error("Headers In Request-URI")]
    UriHeaders,
    #[error("Request-URI Too Long")]
    UriTooLong,
    #[error("Unsupported URI Scheme")]
    UnsupportedScheme,
    #[error("Version Not Supported")]
    Version,
    #[error("CSeq Method Mismatch")]
    CSeqMismatch,
    #[error("Too Many Hops")]
    TooManyHops,
    #[error("Loop Detected")]
    Loop,
    #[error("Too Many Via Values")]
    TooManyVias,
    #[error("Bad Extension")]
    BadExtension { unsupported: Vec<bytes::Bytes> },
    #[error("Not Implemented")]
    UnknownMethod,
    #[error("Unsupported Media Type")]
    UnsupportedMediaType,
    #[error("Not Acceptable")]
    NotAcceptable,
}

impl RequestError {
    /// The status code and reason phrase sent for this error. The reason phrase names the
    /// fault so a peer's engineer can see what was wrong without a capture.
    pub fn status(&self) -> (u16, String) {
        let code = match self {
            RequestError::Defect(_) | RequestError::Header(_) | RequestError::Uri(_) => 400,
            RequestError::UriHeaders | RequestError::CSeqMismatch | RequestError::TooManyVias => {
                400
            }
            RequestError::UriTooLong => 414,
            RequestError::UnsupportedScheme => 416,
            RequestError::Version => 505,
            RequestError::TooManyHops => 483,
            RequestError::Loop => 482,
            RequestError::BadExtension { .. } => 420,
            RequestError::UnknownMethod => 501,
            RequestError::UnsupportedMediaType => 415,
            RequestError::NotAcceptable => 406,
        };
        let reason = match code {
            400 => format!("Bad Request ({self})"),
            _ => self.to_string(),
        };
        (code, reason)
    }
}
