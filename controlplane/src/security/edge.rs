//! [`EdgeSecurity`]: the sans-IO policy object that ties lists, flood counting, rate
//! limits, brute-force lockout, bans and overload admission together.
//!
//! Owns the per-source tables and the order of the checks. Does not own any I/O; see the
//! module docs of [`crate::security`] for the driver contract.

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::auth_fail::AuthFailures;
use super::bans::BanTable;
use super::flood::SlidingCounter;
use super::overload::Overload;
use super::ratelimit::TokenBucket;
use super::scanner::ScannerMatcher;
use super::table::{SourceTable, Tracked};
use super::{
    source_key, Admission, Ban, BanReason, IpSet, OverloadReason, SecurityConfig, SecurityDrop,
    SecurityEvent, SecurityStats, SourceVerdict, Trust, UnbanReason,
};
use crate::sip::Method;

/// How often idle per-source state is swept while any is held. Sweeping loses nothing
/// (an idle entry holds no count that could still matter); it only returns memory.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// The seed [`EdgeSecurity::new`] uses for Retry-After jitter.
const DEFAULT_SEED: u64 = 0x766f_7867_6174_6521;

/// Flood and rate-limit state of one source (an IPv4 address or an IPv6 /64).
#[derive(Debug, Clone)]
struct SourceState {
    last_seen: Instant,
    flood: SlidingCounter,
    transactions: TokenBucket,
}

impl Tracked for SourceState {
    fn last_seen(&self) -> Instant {
        self.last_seen
    }
}

/// Derived values of the configuration, kept so the hot path does no arithmetic on it.
#[derive(Debug, Clone, Copy)]
struct Limits {
    flood_slot: Duration,
    rate: u32,
    burst: u32,
}

impl Limits {
    fn of(config: &SecurityConfig) -> Limits {
        Limits {
            flood_slot: SlidingCounter::slot_for(config.flood.window),
            rate: config.transactions.rate.get(),
            burst: config.transactions.burst.get(),
        }
    }

    /// Whether a source's state can be dropped without changing any later decision.
    fn idle(self, now: Instant, s: &mut SourceState) -> bool {
        s.flood.is_empty_at(now, self.flood_slot)
            && s.transactions.is_full_at(now, self.rate, self.burst)
    }
}

/// A listener ACL, compiled.
#[derive(Debug)]
struct ListenerSets {
    transport: crate::sip::Transport,
    local: std::net::SocketAddr,
    allow: IpSet,
    block: IpSet,
}

fn allow_set(config: &SecurityConfig) -> IpSet {
    let trunks = config
        .trunks
        .iter()
        .flat_map(|t| t.sources.iter().map(|s| s.net));
    IpSet::new(config.allow.iter().copied().chain(trunks))
}

fn listener_sets(config: &SecurityConfig) -> Vec<ListenerSets> {
    config
        .listeners
        .iter()
        .map(|l| ListenerSets {
            transport: l.transport,
            local: l.local,
            allow: IpSet::new(l.allow.iter().copied()),
            block: IpSet::new(l.block.iter().copied()),
        })
        .collect()
}

/// Edge security policy (see [`crate::security`]). Single-threaded, no I/O, time passed in.
#[derive(Debug)]
pub struct EdgeSecurity {
    config: SecurityConfig,
    limits: Limits,
    /// `allow` and every trunk ACL network.
    allow: IpSet,
    block: IpSet,
    /// Blocklist feeds (SEC-08), replaced whole on every refresh.
    feed_block: IpSet,
    listeners: Vec<ListenerSets>,
    scanner: ScannerMatcher,
    sources: SourceTable<SourceState>,
    auth: SourceTable<AuthFailures>,
    bans: BanTable,
    overload: Overload,
    /// Keys account names into fixed-size hashes. Its random keys only make collisions
    /// unpredictable to an attacker; no decision depends on their value.
    account_hasher: RandomState,
    next_sweep: Option<Instant>,
    events: VecDeque<SecurityEvent>,
    stats: SecurityStats,
}

impl EdgeSecurity {
    /// A policy with a fixed Retry-After seed; see [`EdgeSecurity::with_seed`].
    pub fn new(config: SecurityConfig) -> EdgeSecurity {
        EdgeSecurity::with_seed(config, DEFAULT_SEED)
    }

    /// A policy whose Retry-After jitter comes from `seed` (the binary may pass a random
    /// one; tests pass a fixed one).
    pub fn with_seed(config: SecurityConfig, seed: u64) -> EdgeSecurity {
        EdgeSecurity {
            limits: Limits::of(&config),
            allow: allow_set(&config),
            block: IpSet::new(config.block.iter().copied()),
            feed_block: IpSet::default(),
            listeners: listener_sets(&config),
            scanner: ScannerMatcher::new(&config.scanner_user_agents),
            sources: SourceTable::new(config.max_tracked_sources),
            auth: SourceTable::new(config.max_tracked_sources),
            bans: BanTable::new(config.max_tracked_sources),
            overload: Overload::new(seed),
            account_hasher: RandomState::new(),
            next_sweep: None,
            events: VecDeque::new(),
            stats: SecurityStats::default(),
            config,
        }
    }

    pub fn config(&self) -> &SecurityConfig {
        &self.config
    }

    /// Applies a reloaded configuration (or an API change to the lists). Bans, counters
    /// and tracked state are kept. If the flood window changed, flood counts restart
    /// (their slots no longer fit). A lower `max_tracked_sources` trims the tables at once
    /// (bans soonest to end go first, reported as [`UnbanReason::Evicted`]).
    pub fn set_config(&mut self, config: SecurityConfig) {
        let window_changed = config.flood.window != self.config.flood.window;
        self.limits = Limits::of(&config);
        self.allow = allow_set(&config);
        self.block = IpSet::new(config.block.iter().copied());
        self.listeners = listener_sets(&config);
        self.scanner = ScannerMatcher::new(&config.scanner_user_agents);
        if window_changed {
            self.sources.for_each(|s| s.flood.reset(s.last_seen));
        }
        let cap = config.max_tracked_sources;
        self.sources.set_cap(cap);
        self.auth.set_cap(cap);
        let before = self.events.len();
        self.bans.set_cap(cap, &mut self.events);
        self.count_unbans_since(before);
        self.config = config;
    }

    /// Replaces the networks merged from blocklist feeds (SEC-08). They are dropped like
    /// `block` entries; the allow list does not override them either.
    pub fn set_feed_blocks(&mut self, nets: impl IntoIterator<Item = super::IpNet>) {
        self.feed_block = IpSet::new(nets);
    }

    /// Networks currently merged from blocklist feeds.
    pub fn feed_blocks(&self) -> usize {
        self.feed_block.len()
    }

    /// The per-listener ACL, for traffic that arrived on `local` over `transport`: `false`
    /// (counted as [`SecurityDrop::ListenerAcl`]) when that listener's ACL keeps `ip` out.
    /// Listeners without an ACL let everyone on to [`EdgeSecurity::check_source`].
    pub fn check_listener(
        &mut self,
        transport: crate::sip::Transport,
        local: std::net::SocketAddr,
        ip: IpAddr,
    ) -> bool {
        let Some(acl) = self
            .listeners
            .iter()
            .find(|l| l.transport == transport && l.local == local)
        else {
            return true;
        };
        let admitted = !acl.block.contains(ip) && (acl.allow.is_empty() || acl.allow.contains(ip));
        if !admitted {
            self.stats.count_drop(SecurityDrop::ListenerAcl);
        }
        admitted
    }

    /// The IP-authenticated trunk whose ACL `remote` matches (SEC-17), first match in
    /// configuration order.
    pub fn trunk_of(&self, remote: std::net::SocketAddr) -> Option<&str> {
        self.config
            .trunks
            .iter()
            .find(|t| t.sources.iter().any(|s| s.matches(remote)))
            .map(|t| t.name.as_str())
    }

    /// The first check for every datagram or stream message, before parsing:
    /// block list, then bans, then allow list, then the flood limit. The flood count
    /// includes this message; the message that goes over the limit bans its source.
    pub fn check_source(&mut self, now: Instant, ip: IpAddr) -> SourceVerdict {
        self.check_source_of(now, ip, false)
    }

    /// [`EdgeSecurity::check_source`] for a message whose flow (transport, address and
    /// port, or connection) belongs to a registered contact when `registered_flow` is
    /// true: such a flow is not flood-counted (SEC-17: a DECT base re-registering many
    /// handsets is not a flood), though block lists and bans still apply.
    pub fn check_source_of(
        &mut self,
        now: Instant,
        ip: IpAddr,
        registered_flow: bool,
    ) -> SourceVerdict {
        if self.block.contains(ip) || self.feed_block.contains(ip) {
            return self.drop(SecurityDrop::Blocked);
        }
        let key = source_key(ip);
        if self.is_banned(now, key) {
            return self.drop(SecurityDrop::Banned);
        }
        if self.allow.contains(ip) {
            return SourceVerdict::Trusted;
        }
        if registered_flow {
            return SourceVerdict::Untrusted;
        }
        let limits = self.limits;
        let source = self.sources.entry(
            key,
            || SourceState {
                last_seen: now,
                flood: SlidingCounter::new(now),
                transactions: TokenBucket::new(now, limits.burst),
            },
            |s| limits.idle(now, s),
        );
        source.last_seen = now;
        let count = source.flood.record(now, limits.flood_slot);
        self.schedule_sweep(now);
        if count > self.config.flood.requests {
            self.ban(now, key, self.config.flood.ban, BanReason::Flood);
            return self.drop(SecurityDrop::Flood);
        }
        SourceVerdict::Untrusted
    }

    /// Whether the User-Agent is a known scanner (SEC-13); if so, counts the drop. The
    /// caller drops the request silently, and skips this check for trusted sources.
    pub fn check_user_agent(&mut self, user_agent: &[u8]) -> bool {
        let scanner = self.scanner.matches(user_agent);
        if scanner {
            self.stats.count_drop(SecurityDrop::Scanner);
        }
        scanner
    }

    /// Whether the User-Agent is a known scanner, without counting.
    pub fn is_scanner(&self, user_agent: &[u8]) -> bool {
        self.scanner.matches(user_agent)
    }

    /// Takes a token from the source's new-transaction bucket. `false`: drop the request
    /// silently (counted as [`SecurityDrop::RateLimited`]). Allow-listed sources always
    /// pass; the caller also skips this for other trusted traffic (registered flows).
    pub fn admit_transaction(&mut self, now: Instant, ip: IpAddr) -> bool {
        if self.allow.contains(ip) {
            return true;
        }
        let limits = self.limits;
        let source = self.sources.entry(
            source_key(ip),
            || SourceState {
                last_seen: now,
                flood: SlidingCounter::new(now),
                transactions: TokenBucket::new(now, limits.burst),
            },
            |s| limits.idle(now, s),
        );
        source.last_seen = now;
        let admitted = source.transactions.take(now, limits.rate, limits.burst);
        self.schedule_sweep(now);
        if !admitted {
            self.stats.count_drop(SecurityDrop::RateLimited);
        }
        admitted
    }

    /// Overload admission (SEC-15) for a request about to be processed. In-dialog
    /// requests, and methods other than INVITE, REGISTER and SUBSCRIBE, are always
    /// admitted. New INVITEs count against `max_cps` only when admitted, so admitted
    /// throughput levels off at the limit instead of collapsing. `queue_fill` is the
    /// driver's input-queue fill, 0.0–1.0 (per class, if it keeps one queue per class).
    pub fn admit_new_request(
        &mut self,
        now: Instant,
        method: &Method,
        in_dialog: bool,
        trust: Trust,
        queue_fill: f32,
    ) -> Admission {
        let admission = self.overload.admit(
            &self.config.overload,
            now,
            method,
            in_dialog,
            trust,
            queue_fill,
        );
        if let Admission::Reject503 { reason, .. } = admission {
            match reason {
                OverloadReason::Queue => self.stats.overload_queue += 1,
                OverloadReason::CallsPerSecond => self.stats.overload_cps += 1,
                OverloadReason::UntrustedCallsPerSecond => self.stats.overload_untrusted_cps += 1,
            }
        }
        admission
    }

    /// Records a failed authentication of `account` from `ip` (SIP digest, web or API
    /// login) and bans the source when it has more than `per_account` failures for this
    /// account, or more than `per_ip` for any accounts, inside the window (SEC-03).
    /// Allow-listed sources are counted in stats but never tracked or banned; a source
    /// already banned is not banned again (its deadline stays).
    pub fn record_auth_failure(&mut self, now: Instant, ip: IpAddr, account: &str) -> Option<Ban> {
        self.stats.auth_failures += 1;
        if self.allow.contains(ip) {
            return None;
        }
        let key = source_key(ip);
        if self.is_banned(now, key) {
            return None;
        }
        let window = self.config.auth_fail.window;
        let account = self.account_hasher.hash_one(account);
        let entry = self.auth.entry(
            key,
            || AuthFailures::new(now),
            |a| a.is_idle_at(now, window),
        );
        let counts = entry.record(now, window, account);
        self.schedule_sweep(now);
        let limits = &self.config.auth_fail;
        if counts.account > limits.per_account as usize || counts.source > limits.per_ip as usize {
            let ban = self.config.auth_fail.ban;
            return Some(self.ban(now, key, ban, BanReason::AuthFailures));
        }
        None
    }

    /// Records a successful authentication: forgets this account's failures from this
    /// source, so a user who mistyped twice starts again from zero. The source's total
    /// (`per_ip`) is kept, so a valid account cannot be used to launder guesses at others.
    pub fn record_auth_success(&mut self, now: Instant, ip: IpAddr, account: &str) {
        let window = self.config.auth_fail.window;
        let key = source_key(ip);
        let account = self.account_hasher.hash_one(account);
        if let Some(entry) = self.auth.get_mut(&key) {
            entry.clear_account(account);
            if entry.is_idle_at(now, window) {
                self.auth.remove(&key);
            }
        }
    }

    /// Bans the source of `ip` (its /64 for IPv6) for `duration` from `now`, replacing any
    /// ban it has. This is also the operator's manual ban, which applies even to
    /// allow-listed sources (bans are checked before the allow list); automatic bans never
    /// touch them. The source's flood, rate and failure state is forgotten, so it starts
    /// afresh when the ban ends. Emits [`SecurityEvent::Banned`].
    pub fn ban(&mut self, now: Instant, ip: IpAddr, duration: Duration, reason: BanReason) -> Ban {
        let key = source_key(ip);
        let ban = Ban {
            ip: key,
            until: deadline(now, duration),
            reason,
        };
        let before = self.events.len();
        self.bans.insert(now, ban, &mut self.events);
        self.count_unbans_since(before);
        self.sources.remove(&key);
        self.auth.remove(&key);
        match reason {
            BanReason::AuthFailures => self.stats.bans_auth_failures += 1,
            BanReason::Flood => self.stats.bans_flood += 1,
            BanReason::Manual => self.stats.bans_manual += 1,
        }
        self.events.push_back(SecurityEvent::Banned(ban));
        ban
    }

    /// Lifts the ban on the source of `ip`. `false` if it had none. Emits
    /// [`SecurityEvent::Unbanned`] with [`UnbanReason::Manual`].
    pub fn unban(&mut self, ip: IpAddr) -> bool {
        let key = source_key(ip);
        if self.bans.remove(&key).is_none() {
            return false;
        }
        self.stats.unbans_manual += 1;
        self.events.push_back(SecurityEvent::Unbanned {
            ip: key,
            reason: UnbanReason::Manual,
        });
        true
    }

    /// The bans held, in no order. A ban whose deadline has passed stays listed until
    /// [`EdgeSecurity::handle_timeout`] or a lookup of its source lifts it.
    pub fn bans(&self) -> impl Iterator<Item = &Ban> {
        self.bans.iter()
    }

    /// The ban in force on the source of `ip` at `now`, if any.
    pub fn ban_of(&self, now: Instant, ip: IpAddr) -> Option<&Ban> {
        self.bans.get(&source_key(ip)).filter(|b| b.until > now)
    }

    /// Loads bans from the store after a restart (SEC-08). Bans already over are not
    /// loaded and are reported as [`UnbanReason::Expired`] so the store deletes them;
    /// loaded bans emit nothing. An address is keyed as [`source_key`] would key it; if
    /// two restored bans share a key, the later deadline wins.
    pub fn restore_bans(&mut self, now: Instant, bans: impl IntoIterator<Item = Ban>) {
        for ban in bans {
            let key = source_key(ban.ip);
            if ban.until <= now {
                self.stats.unbans_expired += 1;
                self.events.push_back(SecurityEvent::Unbanned {
                    ip: ban.ip,
                    reason: UnbanReason::Expired,
                });
                continue;
            }
            if self.bans.get(&key).is_some_and(|b| b.until >= ban.until) {
                continue;
            }
            let before = self.events.len();
            self.bans
                .insert(now, Ban { ip: key, ..ban }, &mut self.events);
            self.count_unbans_since(before);
        }
    }

    /// The next time [`EdgeSecurity::handle_timeout`] has work: a ban ends, or idle state
    /// is due to be swept.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.bans.next_expiry(), self.next_sweep) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Lifts bans whose time is up ([`UnbanReason::Expired`] events) and sweeps idle
    /// per-source state when due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let before = self.events.len();
        self.bans.expire(now, &mut self.events);
        self.count_unbans_since(before);
        if self.next_sweep.is_some_and(|at| at <= now) {
            let limits = self.limits;
            self.sources.sweep(|s| limits.idle(now, s));
            let window = self.config.auth_fail.window;
            self.auth.sweep(|a| a.is_idle_at(now, window));
            self.next_sweep = None;
            self.schedule_sweep(now);
        }
    }

    /// The next ban or unban to persist and log.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SecurityEvent> {
        self.events.pop_front()
    }

    /// A snapshot of the counters with the gauges filled in.
    pub fn stats(&self) -> SecurityStats {
        SecurityStats {
            bans_active: self.bans.len() as u64,
            sources_tracked: self.sources.len() as u64,
            auth_sources_tracked: self.auth.len() as u64,
            sources_evicted: self.sources.forced_evictions() + self.auth.forced_evictions(),
            ..self.stats.clone()
        }
    }

    /// Sources held in the flood/rate-limit table (never more than
    /// [`SecurityConfig::max_tracked_sources`]).
    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }

    /// Sources held in the authentication-failure table (same cap).
    pub fn tracked_auth_sources(&self) -> usize {
        self.auth.len()
    }

    /// Whether `key` is banned at `now`; a ban found over is lifted here (lazy expiry).
    fn is_banned(&mut self, now: Instant, key: IpAddr) -> bool {
        let Some(ban) = self.bans.get(&key) else {
            return false;
        };
        if ban.until > now {
            return true;
        }
        self.bans.remove(&key);
        self.stats.unbans_expired += 1;
        self.events.push_back(SecurityEvent::Unbanned {
            ip: key,
            reason: UnbanReason::Expired,
        });
        false
    }

    fn drop(&mut self, reason: SecurityDrop) -> SourceVerdict {
        self.stats.count_drop(reason);
        SourceVerdict::Drop(reason)
    }

    fn schedule_sweep(&mut self, now: Instant) {
        if self.next_sweep.is_none() && (self.sources.len() > 0 || self.auth.len() > 0) {
            self.next_sweep = Some(deadline(now, SWEEP_INTERVAL));
        }
    }

    /// Counts the unban events the ban table pushed since `before`.
    fn count_unbans_since(&mut self, before: usize) {
        for event in self.events.iter().skip(before) {
            if let SecurityEvent::Unbanned { reason, .. } = event {
                match reason {
                    UnbanReason::Expired => self.stats.unbans_expired += 1,
                    UnbanReason::Manual => self.stats.unbans_manual += 1,
                    UnbanReason::Evicted => self.stats.unbans_evicted += 1,
                }
            }
        }
    }
}

/// `now + d`, or the latest representable deadline near it on overflow (a ban "for
/// ever" configured as a huge duration).
fn deadline(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(u64::from(u32::MAX))))
        .unwrap_or(now)
}
