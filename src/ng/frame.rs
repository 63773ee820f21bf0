//! ng message framing (`COOKIE SP payload`, one message per UDP datagram) and the reply
//! cache that answers retransmissions with the byte-identical first reply.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::bencode::{encode, Dict, Value};

/// Longest cookie accepted. rtpengine sets no limit; Kamailio's and OpenSIPS' cookies are
/// tens of bytes, and the cap bounds what a hostile sender can make the cache hold.
pub const MAX_COOKIE_LEN: usize = 128;

/// One received datagram split at its first space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub cookie: &'a [u8],
    /// Everything after the space (may be empty: rtpengine answers that with an error).
    pub payload: &'a [u8],
}

/// Splits a datagram. `None` when it has no cookie (no space, or a space first) or an
/// over-long one: such a datagram cannot be answered, and rtpengine drops it too.
pub fn split(datagram: &[u8]) -> Option<Frame<'_>> {
    let space = datagram.iter().position(|b| *b == b' ')?;
    if space == 0 || space > MAX_COOKIE_LEN {
        return None;
    }
    Some(Frame {
        cookie: &datagram[..space],
        payload: &datagram[space + 1..],
    })
}

/// Builds a reply datagram: the request's cookie, a space, the bencoded dictionary.
pub fn reply(cookie: &[u8], body: &Dict) -> Vec<u8> {
    let mut out = Vec::with_capacity(cookie.len() + 64);
    out.extend_from_slice(cookie);
    out.push(b' ');
    encode(&Value::Dict(body.clone()), &mut out);
    out
}

/// Replies by cookie, so a retransmitted request is answered from memory instead of being
/// executed twice (a repeated `offer` must not allocate new ports).
///
/// Like rtpengine's `cookie_cache.c`, it keeps two generations: new replies go into the
/// current one; when it is older than `generation` (or holds `capacity` entries) it becomes
/// the old one and the previous old one is dropped. A reply is therefore kept between one and
/// two generations, with O(1) work per operation and no per-entry timers. The driver passes
/// the time in; the cache never reads a clock.
#[derive(Debug)]
pub struct ReplyCache {
    current: HashMap<Vec<u8>, Vec<u8>>,
    old: HashMap<Vec<u8>, Vec<u8>>,
    started: Option<Instant>,
    generation: Duration,
    capacity: usize,
}

impl ReplyCache {
    /// Default generation: a UDP ng client retransmits for a few seconds, so 30 s is ample.
    pub const DEFAULT_GENERATION: Duration = Duration::from_secs(30);
    /// Default entries per generation (two generations kept).
    pub const DEFAULT_CAPACITY: usize = 16_384;

    pub fn new(generation: Duration, capacity: usize) -> Self {
        Self {
            current: HashMap::new(),
            old: HashMap::new(),
            started: None,
            generation,
            capacity: capacity.max(1),
        }
    }

    fn rotate_if_due(&mut self, now: Instant) {
        let started = *self.started.get_or_insert(now);
        let expired = now.saturating_duration_since(started) >= self.generation;
        if expired || self.current.len() >= self.capacity {
            self.old = std::mem::take(&mut self.current);
            self.started = Some(now);
            if expired && now.saturating_duration_since(started) >= 2 * self.generation {
                // Idle for two generations: everything is stale.
                self.old.clear();
            }
        }
    }

    /// The cached reply to `cookie`, if one is still kept.
    pub fn get(&mut self, cookie: &[u8], now: Instant) -> Option<&[u8]> {
        self.rotate_if_due(now);
        self.current
            .get(cookie)
            .or_else(|| self.old.get(cookie))
            .map(Vec::as_slice)
    }

    /// Remembers the reply sent for `cookie`.
    pub fn insert(&mut self, cookie: &[u8], reply: Vec<u8>, now: Instant) {
        self.rotate_if_due(now);
        self.old.remove(cookie);
        self.current.insert(cookie.to_vec(), reply);
    }

    /// Replies kept (both generations).
    pub fn len(&self) -> usize {
        self.current.len() + self.old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for ReplyCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_GENERATION, Self::DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)] // any instant will do: tests add virtual time to it
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn split_takes_the_first_space() {
        assert_eq!(
            split(b"5323_1 d7:command4:pinge"),
            Some(Frame {
                cookie: b"5323_1",
                payload: b"d7:command4:pinge"
            })
        );
        assert_eq!(
            split(b"c "),
            Some(Frame {
                cookie: b"c",
                payload: b""
            })
        );
        assert_eq!(split(b"nospace"), None);
        assert_eq!(split(b" d7:command4:pinge"), None);
        assert_eq!(split(&[b'x'; MAX_COOKIE_LEN + 2]), None);
        let mut long = vec![b'x'; MAX_COOKIE_LEN];
        long.extend_from_slice(b" de");
        assert!(split(&long).is_some());
    }

    #[test]
    fn reply_carries_the_cookie() {
        let mut body = Dict::new();
        body.insert("result", "pong");
        assert_eq!(reply(b"5323_1", &body), b"5323_1 d6:result4:ponge");
    }

    #[test]
    fn cache_keeps_replies_one_to_two_generations() {
        let t0 = t0();
        let gen = Duration::from_secs(30);
        let mut cache = ReplyCache::new(gen, 100);
        cache.insert(b"a", b"a reply".to_vec(), t0);
        assert_eq!(
            cache.get(b"a", t0 + Duration::from_secs(29)),
            Some(&b"a reply"[..])
        );
        // Rotated into the old generation at 30 s: still answered.
        assert_eq!(cache.get(b"a", t0 + gen), Some(&b"a reply"[..]));
        cache.insert(b"b", b"b reply".to_vec(), t0 + gen);
        // The next rotation drops it.
        assert_eq!(cache.get(b"a", t0 + 2 * gen), None);
        assert_eq!(cache.get(b"b", t0 + 2 * gen), Some(&b"b reply"[..]));
        // After a long idle period nothing stale survives.
        assert_eq!(cache.get(b"b", t0 + 10 * gen), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn cache_is_bounded_under_a_flood_of_cookies() {
        let t0 = t0();
        let mut cache = ReplyCache::new(Duration::from_secs(30), 10);
        for i in 0..1000u32 {
            cache.insert(i.to_string().as_bytes(), vec![0; 8], t0);
            assert!(cache.len() <= 20);
        }
        assert!(cache.get(b"999", t0).is_some());
    }
}
