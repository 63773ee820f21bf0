//! voxgate benchmarks: the messages the criterion benches parse, shared with the profiling
//! loop in `src/bin/parse_loop.rs`. The benches live in `benches/`; numbers and the commands
//! that produced them are in `RESULTS.md`.
//!
//! This crate ships nothing: it only measures.

/// A typical INVITE with an SDP offer (PCMU, PCMA, telephone-event), as a desk phone sends it
/// through a NAT: Via with branch and rport, display names, tags, Allow/Supported lists.
pub const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.101:5060;branch=z9hG4bK776asdhds-4711;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice Liddell\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
To: \"Bob Builder\" <sip:bob@biloxi.example.com>\r\n\
Call-ID: a84b4c76e66710-4d3f7a2c@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.101:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE, INFO, REFER, NOTIFY\r\n\
Supported: replaces, timer, 100rel\r\n\
User-Agent: Acme DeskPhone 9000 v4.2.17\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 289\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\n\
s=-\r\n\
c=IN IP4 192.0.2.101\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=sendrecv\r\n\
a=rtcp:49171 IN IP4 192.0.2.101\r\n";

/// A REGISTER answering a Digest challenge (RFC 2617 / RFC 8760 parameters).
pub const REGISTER: &[u8] = b"REGISTER sip:biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.202:5060;branch=z9hG4bKnashds7-0002;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Bob Builder\" <sip:bob@biloxi.example.com>;tag=a73kszlfl\r\n\
To: \"Bob Builder\" <sip:bob@biloxi.example.com>\r\n\
Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.202\r\n\
CSeq: 2 REGISTER\r\n\
Contact: <sip:bob@192.0.2.202:5060;transport=udp>;expires=3600\r\n\
Authorization: Digest username=\"bob\", realm=\"biloxi.example.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"sip:biloxi.example.com\", response=\"245f23415f11432b3434341c022a3432\", algorithm=MD5, cnonce=\"0a4f113b\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\", qop=auth, nc=00000001\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE, INFO, REFER, NOTIFY\r\n\
User-Agent: Acme DeskPhone 9000 v4.2.17\r\n\
Expires: 3600\r\n\
Content-Length: 0\r\n\
\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// The SDP's Content-Length must match the body, or the parsers would disagree on it.
    #[test]
    fn content_length_matches_body() {
        for msg in [INVITE, REGISTER] {
            let text = std::str::from_utf8(msg).expect("ASCII fixture");
            let (head, body) = text
                .split_once("\r\n\r\n")
                .expect("fixture has a header end");
            let cl: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .expect("fixture has Content-Length")
                .parse()
                .expect("numeric Content-Length");
            assert_eq!(cl, body.len());
        }
    }
}
