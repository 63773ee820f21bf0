//! Turns the raw file ([`RawConfig`]) into a validated [`Config`], or the first error with
//! its position. Checks single values (ranges, syntaxes) and relations between them
//! (T2 ≥ T1, duplicate listeners and ports, TLS listeners need a certificate, duplicate and
//! reserved extension numbers), and loads the TLS certificate so that check-config catches
//! a bad one.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU32, NonZeroU8, NonZeroUsize};
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use voxgate_controlplane::config::TimerConfig;
use voxgate_controlplane::sip::Transport;

use crate::config::error::FeedCaError;
use crate::config::error::{ConfigError, ConfigErrorKind, Locator};
use crate::config::raw::{
    RawAuth, RawConfig, RawDuration, RawExtension, RawLimits, RawListen, RawLog, RawMedia, RawNat,
    RawRatio, RawRegistrar, RawSecurity, RawSip, RawStore, RawTls, RawTrunk,
};
use crate::config::value::{
    check_alias, check_auth_id, check_email, check_extension_number, check_fqdn, check_ha1,
    check_language, check_name, check_password, check_phone_number, check_quoted_text,
    check_voicemail_pin, parse_acl_source, parse_cidr, parse_duration, parse_duration_range,
    parse_feed_source, parse_listen, parse_percent, parse_port_range, ratio_from_fraction,
    FieldError, Listen, Ratio, RatioError, Role, Secret, MIN_PASSWORD_CHARS,
};
use crate::config::{
    AdminConfig, AuthConfig, AuthFailConfig, Config, Credential, DigestAlgorithm, ExtensionConfig,
    ExtensionRecord, FeedCa, FloodConfig, IpNet, LimitsConfig, ListenAcl, LogConfig, LogFormat,
    LogLevel, MediaConfig, NatConfig, NgConfig, RateConfig, RegistrarConfig, SecurityConfig,
    SipConfig, StoreConfig, TlsCertificate, TlsConfig, TrunkConfig,
};
use crate::tls::{self, TlsError, TlsMinVersion};

type Result<T> = std::result::Result<T, ConfigError>;

const DOMAIN_WHY: &str = ": it is the system identity, a fully qualified domain name (SIG-22)";

/// Validates a parsed file. `loc` turns spans into positions.
pub(crate) fn validate(raw: RawConfig, loc: Locator<'_>) -> Result<Config> {
    let v = Validator { loc };
    let tls = v.tls(raw.tls)?;
    let Some(raw_sip) = raw.sip else {
        return Err(v.at(
            0..0,
            ConfigErrorKind::MissingKey {
                key: "sip.domain",
                why: DOMAIN_WHY,
            },
        ));
    };
    let sip = v.sip(raw_sip, &tls)?;
    let media = v.media(raw.media)?;
    let (admin, admin_span) = match raw.admin.and_then(|a| a.listen) {
        Some(listen) => (
            AdminConfig {
                listen: v.socket_addr("admin.listen", &listen)?,
            },
            Some(listen.span()),
        ),
        None => (AdminConfig::default(), None),
    };
    let store = v.store(raw.store)?;
    let (ng, ng_span) = match raw.ng {
        None => (None, None),
        Some(ng) => match ng.listen {
            Some(listen) => (
                Some(NgConfig {
                    listen: v.socket_addr("ng.listen", &listen)?,
                }),
                Some(listen.span()),
            ),
            None => (Some(NgConfig::default()), None),
        },
    };
    let registrar = v.registrar(raw.registrar)?;
    let auth = v.auth(raw.auth, &sip.config.domain)?;
    let nat = v.nat(raw.nat)?;
    let security = v.security(raw.security)?;
    let limits = v.limits(raw.limits)?;
    let log = v.log(raw.log)?;
    let extensions = v.extensions(raw.extension, &auth)?;
    let trunks = v.trunks(raw.trunk)?;

    let config = Config {
        sip: sip.config,
        media: media.config,
        admin,
        store,
        ng,
        registrar,
        auth,
        nat,
        security,
        limits,
        tls,
        log,
        extensions,
        trunks,
    };
    v.port_clashes(
        &config,
        &sip.listen_spans,
        admin_span,
        ng_span,
        media.rtp_span,
    )?;
    Ok(config)
}

struct Validator<'a> {
    loc: Locator<'a>,
}

struct SipOut {
    config: SipConfig,
    /// Span of each listener in `config.listen`; `None` for defaults not in the file.
    listen_spans: Vec<Option<Range<usize>>>,
}

struct MediaOut {
    config: MediaConfig,
    rtp_span: Option<Range<usize>>,
}

impl Validator<'_> {
    fn at(&self, span: Range<usize>, kind: ConfigErrorKind) -> ConfigError {
        self.loc.at(span, kind)
    }

    fn int(&self, key: &'static str, value: &Spanned<i64>, min: i64, max: i64) -> Result<i64> {
        let v = *value.get_ref();
        if (min..=max).contains(&v) {
            Ok(v)
        } else {
            Err(self.at(
                value.span(),
                ConfigErrorKind::OutOfRange {
                    key,
                    value: v,
                    min,
                    max,
                },
            ))
        }
    }

    /// An integer key whose range fits in `usize` (bounds are small constants).
    fn usize_in(
        &self,
        key: &'static str,
        value: &Option<Spanned<i64>>,
        default: usize,
        range: RangeInclusive<usize>,
    ) -> Result<usize> {
        match value {
            None => Ok(default),
            Some(value) => {
                let min = i64::try_from(*range.start()).expect("bounds are small constants");
                let max = i64::try_from(*range.end()).expect("bounds are small constants");
                let v = self.int(key, value, min, max)?;
                Ok(usize::try_from(v).expect("checked to lie within usize bounds"))
            }
        }
    }

    fn duration(
        &self,
        key: &'static str,
        value: &Option<Spanned<RawDuration>>,
        default: Duration,
        range: RangeInclusive<Duration>,
    ) -> Result<Duration> {
        let Some(value) = value else {
            return Ok(default);
        };
        let parsed = match value.get_ref() {
            RawDuration::Text(text) => parse_duration(text),
            RawDuration::Number(n) => {
                Err(crate::config::value::DurationError::MissingUnit { number: *n })
            }
        }
        .map_err(|source| self.at(value.span(), ConfigErrorKind::Duration { key, source }))?;
        if !range.contains(&parsed) {
            return Err(self.at(
                value.span(),
                ConfigErrorKind::DurationOutOfRange {
                    key,
                    value: parsed,
                    min: *range.start(),
                    max: *range.end(),
                },
            ));
        }
        Ok(parsed)
    }

    /// Like [`Validator::duration`], for values SIP carries in whole seconds.
    fn seconds(
        &self,
        key: &'static str,
        value: &Option<Spanned<RawDuration>>,
        default: Duration,
        range: RangeInclusive<Duration>,
    ) -> Result<Duration> {
        let d = self.duration(key, value, default, range)?;
        match value {
            Some(value) if d.subsec_nanos() != 0 => Err(self.at(
                value.span(),
                ConfigErrorKind::NotWholeSeconds { key, value: d },
            )),
            _ => Ok(d),
        }
    }

    /// A list of networks; an exact duplicate is an error (likely a copy-paste slip).
    fn cidrs(&self, key: &'static str, entries: &[Spanned<String>]) -> Result<Vec<IpNet>> {
        let mut out: Vec<IpNet> = Vec::with_capacity(entries.len());
        for entry in entries {
            let cidr = parse_cidr(entry.get_ref()).map_err(|source| {
                self.at(
                    entry.span(),
                    ConfigErrorKind::Cidr {
                        key,
                        value: entry.get_ref().clone(),
                        source,
                    },
                )
            })?;
            if out.contains(&cidr) {
                return Err(self.at(
                    entry.span(),
                    ConfigErrorKind::Duplicate {
                        key,
                        value: cidr.to_string(),
                    },
                ));
            }
            out.push(cidr);
        }
        Ok(out)
    }

    /// `value` must not exceed `limit`; the error points at `value` when the file sets it,
    /// else at `limit`.
    fn duration_order(
        &self,
        key: &'static str,
        value: Duration,
        value_span: &Option<Spanned<RawDuration>>,
        limit_key: &'static str,
        limit: Duration,
        limit_span: &Option<Spanned<RawDuration>>,
    ) -> Result<()> {
        if value <= limit {
            return Ok(());
        }
        let span = value_span
            .as_ref()
            .or(limit_span.as_ref())
            .map_or(0..0, Spanned::span);
        Err(self.at(
            span,
            ConfigErrorKind::DurationAboveOther {
                key,
                value,
                limit_key,
                limit,
            },
        ))
    }

    fn registrar(&self, raw: Option<RawRegistrar>) -> Result<RegistrarConfig> {
        let d = RegistrarConfig::default();
        let Some(raw) = raw else {
            return Ok(d);
        };
        // RFC 3261 §20.19: Expires is a 32-bit count of seconds; a week is plenty.
        let range = Duration::from_secs(1)..=Duration::from_secs(7 * 86_400);
        let min_expires = self.seconds(
            "registrar.min_expires",
            &raw.min_expires,
            d.min_expires,
            range.clone(),
        )?;
        let default_expires = self.seconds(
            "registrar.default_expires",
            &raw.default_expires,
            d.default_expires,
            range.clone(),
        )?;
        let max_expires = self.seconds(
            "registrar.max_expires",
            &raw.max_expires,
            d.max_expires,
            range,
        )?;
        self.duration_order(
            "registrar.min_expires",
            min_expires,
            &raw.min_expires,
            "registrar.default_expires",
            default_expires,
            &raw.default_expires,
        )?;
        self.duration_order(
            "registrar.default_expires",
            default_expires,
            &raw.default_expires,
            "registrar.max_expires",
            max_expires,
            &raw.max_expires,
        )?;
        let max_contacts = self.nonzero_u32(
            "registrar.max_contacts",
            &raw.max_contacts,
            d.max_contacts,
            100,
        )?;
        Ok(RegistrarConfig {
            default_expires,
            min_expires,
            max_expires,
            max_contacts,
        })
    }

    fn auth(&self, raw: Option<RawAuth>, domain: &str) -> Result<AuthConfig> {
        let d = AuthConfig::with_realm(domain.to_owned());
        let Some(raw) = raw else {
            return Ok(d);
        };
        let algorithms = match &raw.algorithms {
            None => d.algorithms,
            Some(list) => {
                if list.get_ref().is_empty() {
                    return Err(self.at(
                        list.span(),
                        ConfigErrorKind::EmptyList {
                            key: "auth.algorithms",
                            why: ": phones could not authenticate at all",
                        },
                    ));
                }
                let mut out: Vec<DigestAlgorithm> = Vec::with_capacity(list.get_ref().len());
                for entry in list.get_ref() {
                    let algorithm = DigestAlgorithm::from_token(entry.get_ref().as_bytes())
                        .ok_or_else(|| {
                            self.at(
                                entry.span(),
                                ConfigErrorKind::NotOneOf {
                                    key: "auth.algorithms",
                                    value: entry.get_ref().clone(),
                                    expected: "\"MD5\", \"SHA-256\", \"SHA-512-256\"",
                                },
                            )
                        })?;
                    if out.contains(&algorithm) {
                        return Err(self.at(
                            entry.span(),
                            ConfigErrorKind::Duplicate {
                                key: "auth.algorithms",
                                value: algorithm.to_string(),
                            },
                        ));
                    }
                    out.push(algorithm);
                }
                out
            }
        };
        let nonce_ttl = self.seconds(
            "auth.nonce_ttl",
            &raw.nonce_ttl,
            d.nonce_ttl,
            Duration::from_secs(10)..=Duration::from_secs(86_400),
        )?;
        let realm = match raw.realm {
            None => d.realm,
            Some(realm) => {
                check_quoted_text(realm.get_ref(), 253).map_err(|source| {
                    self.at(
                        realm.span(),
                        ConfigErrorKind::QuotedText {
                            key: "auth.realm",
                            value: realm.get_ref().clone(),
                            source,
                        },
                    )
                })?;
                realm.into_inner()
            }
        };
        let min_password_length = self.usize_in(
            "auth.min_password_length",
            &raw.min_password_length,
            d.min_password_length,
            MIN_PASSWORD_CHARS..=128,
        )?;
        Ok(AuthConfig {
            algorithms,
            nonce_ttl,
            realm,
            min_password_length,
        })
    }

    fn nat(&self, raw: Option<RawNat>) -> Result<NatConfig> {
        let d = NatConfig::default();
        let Some(raw) = raw else {
            return Ok(d);
        };
        Ok(NatConfig {
            keepalive_interval: self.seconds(
                "nat.keepalive_interval",
                &raw.keepalive_interval,
                d.keepalive_interval,
                Duration::from_secs(5)..=Duration::from_secs(3600),
            )?,
        })
    }

    fn security(&self, raw: Option<RawSecurity>) -> Result<SecurityConfig> {
        let d = SecurityConfig::default();
        let Some(raw) = raw else {
            return Ok(d);
        };
        let allow = self.cidrs("security.allow", &raw.allow)?;
        let block = self.cidrs("security.block", &raw.block)?;
        // A network in both lists would be trusted and dropped at once; the operator meant
        // one of the two. (Overlap is fine: block one host inside an allowed network.)
        if let Some((cidr, entry)) = block
            .iter()
            .zip(&raw.block)
            .find(|(cidr, _)| allow.contains(cidr))
        {
            return Err(self.at(
                entry.span(),
                ConfigErrorKind::AllowedAndBlocked { network: *cidr },
            ));
        }
        let scanner_user_agents = match &raw.scanner_user_agents {
            None => d.scanner_user_agents,
            Some(list) => {
                let mut out: Vec<String> = Vec::with_capacity(list.len());
                for entry in list {
                    let key = "security.scanner_user_agents";
                    check_quoted_text(entry.get_ref(), 256).map_err(|source| {
                        self.at(
                            entry.span(),
                            ConfigErrorKind::QuotedText {
                                key,
                                value: entry.get_ref().clone(),
                                source,
                            },
                        )
                    })?;
                    if out
                        .iter()
                        .any(|ua| ua.eq_ignore_ascii_case(entry.get_ref()))
                    {
                        return Err(self.at(
                            entry.span(),
                            ConfigErrorKind::Duplicate {
                                key,
                                value: format!("{:?}", entry.get_ref()),
                            },
                        ));
                    }
                    out.push(entry.get_ref().clone());
                }
                out
            }
        };
        let auth_fail = match raw.auth_fail {
            None => d.auth_fail,
            Some(raw) => {
                let d = AuthFailConfig::default();
                AuthFailConfig {
                    per_account: self.nonzero_u32(
                        "security.auth_fail.per_account",
                        &raw.per_account,
                        d.per_account,
                        1000,
                    )?,
                    per_ip: self.nonzero_u32(
                        "security.auth_fail.per_ip",
                        &raw.per_ip,
                        d.per_ip,
                        100_000,
                    )?,
                    window: self.duration(
                        "security.auth_fail.window",
                        &raw.window,
                        d.window,
                        Duration::from_secs(1)..=Duration::from_secs(86_400),
                    )?,
                    ban: self.duration(
                        "security.auth_fail.ban",
                        &raw.ban,
                        d.ban,
                        Duration::from_secs(1)..=Duration::from_secs(30 * 86_400),
                    )?,
                }
            }
        };
        let flood = match raw.flood {
            None => d.flood,
            Some(raw) => {
                let d = FloodConfig::default();
                FloodConfig {
                    requests: self.nonzero_u32(
                        "security.flood.requests",
                        &raw.requests,
                        d.requests,
                        1_000_000,
                    )?,
                    window: self.duration(
                        "security.flood.window",
                        &raw.window,
                        d.window,
                        Duration::from_millis(100)..=Duration::from_secs(3600),
                    )?,
                    ban: self.duration(
                        "security.flood.ban",
                        &raw.ban,
                        d.ban,
                        Duration::from_secs(1)..=Duration::from_secs(30 * 86_400),
                    )?,
                }
            }
        };
        let rate = match raw.rate {
            None => d.rate,
            Some(raw) => {
                let d = RateConfig::default();
                let rate = self.nonzero_u32("security.rate.rate", &raw.rate, d.rate, 1_000_000)?;
                // Without `burst` in the file, a raised rate raises the default burst too.
                let default_burst = d.burst.max(rate);
                let burst =
                    self.nonzero_u32("security.rate.burst", &raw.burst, default_burst, 10_000_000)?;
                if burst < rate {
                    let span = raw
                        .burst
                        .as_ref()
                        .or(raw.rate.as_ref())
                        .map_or(0..0, Spanned::span);
                    return Err(self.at(
                        span,
                        ConfigErrorKind::AboveOther {
                            key: "security.rate.rate",
                            value: i64::from(rate.get()),
                            limit_key: "security.rate.burst",
                            limit: i64::from(burst.get()),
                        },
                    ));
                }
                RateConfig { rate, burst }
            }
        };
        let mut blocklist_feeds = Vec::with_capacity(raw.blocklist_feeds.len());
        for entry in &raw.blocklist_feeds {
            let feed = parse_feed_source(entry.get_ref()).map_err(|source| {
                self.at(
                    entry.span(),
                    ConfigErrorKind::BlockFeed {
                        value: entry.get_ref().clone(),
                        source,
                    },
                )
            })?;
            if blocklist_feeds.contains(&feed) {
                return Err(self.at(
                    entry.span(),
                    ConfigErrorKind::Duplicate {
                        key: "security.blocklist_feeds",
                        value: format!("{:?}", feed.label()),
                    },
                ));
            }
            blocklist_feeds.push(feed);
        }
        let blocklist_feed_refresh = self.duration(
            "security.blocklist_feed_refresh",
            &raw.blocklist_feed_refresh,
            d.blocklist_feed_refresh,
            Duration::from_secs(60)..=Duration::from_secs(7 * 86_400),
        )?;
        let blocklist_feed_ca = match &raw.blocklist_feed_ca {
            None => None,
            Some(path) => Some(self.feed_ca(path)?),
        };
        Ok(SecurityConfig {
            allow,
            block,
            scanner_user_agents,
            auth_fail,
            flood,
            rate,
            blocklist_feeds,
            blocklist_feed_refresh,
            blocklist_feed_ca,
        })
    }

    /// Reads `security.blocklist_feed_ca` now, so check-config reports a missing or broken file.
    fn feed_ca(&self, path: &Spanned<String>) -> Result<FeedCa> {
        use rustls_pki_types::pem::PemObject as _;
        use rustls_pki_types::CertificateDer;
        let fail = |source| {
            self.at(
                path.span(),
                ConfigErrorKind::FeedCa {
                    path: path.get_ref().clone(),
                    source,
                },
            )
        };
        let bytes = std::fs::read(path.get_ref()).map_err(|e| fail(FeedCaError::Read(e)))?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| fail(FeedCaError::Pem(e)))?;
        if certs.is_empty() {
            return Err(fail(FeedCaError::NoCertificates));
        }
        Ok(FeedCa {
            path: PathBuf::from(path.get_ref()),
            certs,
        })
    }

    fn ratio(&self, key: &'static str, value: &Spanned<RawRatio>) -> Result<Ratio> {
        let min = Ratio::from_permille(10).expect("10 is at most 1000");
        let max = Ratio::from_permille(1000).expect("1000 is at most 1000");
        match value.get_ref() {
            RawRatio::Float(f) => ratio_from_fraction(*f, min, max),
            RawRatio::Text(text) => parse_percent(text, min, max),
            RawRatio::Integer(n) => Err(RatioError::Integer { value: *n }),
        }
        .map_err(|source| self.at(value.span(), ConfigErrorKind::Ratio { key, source }))
    }

    fn socket_addr(&self, key: &'static str, value: &Spanned<String>) -> Result<SocketAddr> {
        value.get_ref().parse().map_err(|_| {
            self.at(
                value.span(),
                ConfigErrorKind::SocketAddress {
                    key,
                    value: value.get_ref().clone(),
                },
            )
        })
    }

    fn sip(&self, raw: Spanned<RawSip>, tls: &TlsConfig) -> Result<SipOut> {
        let table_span = raw.span();
        let raw = raw.into_inner();
        let Some(domain) = raw.domain else {
            return Err(self.at(
                table_span,
                ConfigErrorKind::MissingKey {
                    key: "sip.domain",
                    why: DOMAIN_WHY,
                },
            ));
        };
        check_fqdn(domain.get_ref()).map_err(|source| {
            self.at(
                domain.span(),
                ConfigErrorKind::Domain {
                    value: domain.get_ref().clone(),
                    source,
                },
            )
        })?;
        let aliases = raw
            .aliases
            .iter()
            .map(|alias| {
                check_alias(alias.get_ref()).map_err(|source| {
                    self.at(
                        alias.span(),
                        ConfigErrorKind::Alias {
                            value: alias.get_ref().clone(),
                            source,
                        },
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;

        let (listen, listen_spans, listen_acls) = match &raw.listen {
            Some(entries) => {
                let mut listen: Vec<Listen> = Vec::with_capacity(entries.get_ref().len());
                let mut spans = Vec::with_capacity(entries.get_ref().len());
                let mut listen_acls = Vec::new();
                for entry in entries.get_ref() {
                    let (text, text_span) = match entry.get_ref() {
                        RawListen::Text(text) => (text, entry.span()),
                        RawListen::Table(table) => match &table.address {
                            Some(address) => (address.get_ref(), address.span()),
                            None => {
                                return Err(self.at(
                                    entry.span(),
                                    ConfigErrorKind::MissingKey {
                                        key: "sip.listen.address",
                                        why: "",
                                    },
                                ))
                            }
                        },
                    };
                    let parsed = parse_listen(text).map_err(|source| {
                        self.at(
                            text_span.clone(),
                            ConfigErrorKind::Listen {
                                value: text.clone(),
                                source,
                            },
                        )
                    })?;
                    if let RawListen::Table(table) = entry.get_ref() {
                        let allow = self.cidrs("sip.listen.allow", &table.allow)?;
                        let block = self.cidrs("sip.listen.block", &table.block)?;
                        if let Some((cidr, at)) = block
                            .iter()
                            .zip(&table.block)
                            .find(|(cidr, _)| allow.contains(cidr))
                        {
                            return Err(self.at(
                                at.span(),
                                ConfigErrorKind::ListenAllowedAndBlocked {
                                    listen: parsed,
                                    network: *cidr,
                                },
                            ));
                        }
                        if !allow.is_empty() || !block.is_empty() {
                            listen_acls.push(ListenAcl {
                                index: listen.len(),
                                allow,
                                block,
                            });
                        }
                    }
                    // Port 0 means "any free port": two of those are two sockets.
                    if parsed.addr.port() != 0 && listen.contains(&parsed) {
                        return Err(self.at(
                            text_span.clone(),
                            ConfigErrorKind::DuplicateListener { listen: parsed },
                        ));
                    }
                    if parsed.transport == Transport::Tls && tls.certificate.is_none() {
                        return Err(self.at(
                            text_span.clone(),
                            ConfigErrorKind::TlsWithoutCertificate { listen: parsed },
                        ));
                    }
                    listen.push(parsed);
                    spans.push(Some(text_span));
                }
                (listen, spans, listen_acls)
            }
            None => {
                let listen = SipConfig::default_listen(tls.certificate.is_some());
                let spans = vec![None; listen.len()];
                (listen, spans, Vec::new())
            }
        };

        let max_forwards = match &raw.max_forwards {
            None => SipConfig::DEFAULT_MAX_FORWARDS,
            Some(value) => {
                let v = self.int("sip.max_forwards", value, 1, 255)?;
                u8::try_from(v)
                    .ok()
                    .and_then(NonZeroU8::new)
                    .expect("checked to lie in 1..=255")
            }
        };

        let defaults = TimerConfig::default();
        let timers = match &raw.timers {
            None => defaults,
            Some(t) => {
                let t1 = self.duration(
                    "sip.timers.t1",
                    &t.t1,
                    defaults.t1,
                    Duration::from_millis(10)..=Duration::from_secs(60),
                )?;
                let t2 = self.duration(
                    "sip.timers.t2",
                    &t.t2,
                    defaults.t2,
                    Duration::from_millis(10)..=Duration::from_secs(600),
                )?;
                let t4 = self.duration(
                    "sip.timers.t4",
                    &t.t4,
                    defaults.t4,
                    Duration::from_millis(10)..=Duration::from_secs(600),
                )?;
                if t2 < t1 {
                    // Point at whichever of the two the file sets, preferring t2.
                    let span = t.t2.as_ref().or(t.t1.as_ref()).map_or(0..0, Spanned::span);
                    return Err(self.at(span, ConfigErrorKind::T2BelowT1 { t1, t2 }));
                }
                TimerConfig { t1, t2, t4 }
            }
        };

        Ok(SipOut {
            config: SipConfig {
                listen,
                listen_acls,
                domain: domain.into_inner(),
                aliases,
                max_forwards,
                force_rport: raw.force_rport.unwrap_or(true),
                timers,
            },
            listen_spans,
        })
    }

    fn media(&self, raw: Option<RawMedia>) -> Result<MediaOut> {
        let defaults = MediaConfig::default();
        let Some(raw) = raw else {
            return Ok(MediaOut {
                config: defaults,
                rtp_span: None,
            });
        };
        let workers = match &raw.workers {
            None => defaults.workers,
            Some(value) => {
                let v = self.int("media.workers", value, 1, 1024)?;
                Some(
                    usize::try_from(v)
                        .ok()
                        .and_then(NonZeroUsize::new)
                        .expect("checked to lie in 1..=1024"),
                )
            }
        };
        let bind = match &raw.bind {
            None => defaults.bind,
            Some(value) => value.get_ref().parse().map_err(|_| {
                self.at(
                    value.span(),
                    ConfigErrorKind::IpAddress {
                        key: "media.bind",
                        value: value.get_ref().clone(),
                    },
                )
            })?,
        };
        let rtp_ports = match &raw.rtp_ports {
            None => defaults.rtp_ports,
            Some(value) => parse_port_range(value.get_ref()).map_err(|source| {
                self.at(
                    value.span(),
                    ConfigErrorKind::PortRange {
                        value: value.get_ref().clone(),
                        source,
                    },
                )
            })?,
        };
        Ok(MediaOut {
            config: MediaConfig {
                workers,
                bind,
                rtp_ports,
            },
            rtp_span: raw.rtp_ports.as_ref().map(Spanned::span),
        })
    }

    fn store(&self, raw: Option<RawStore>) -> Result<StoreConfig> {
        let defaults = StoreConfig::default();
        let Some(raw) = raw else {
            return Ok(defaults);
        };
        let path = match raw.path {
            None => defaults.path,
            Some(path) if path.get_ref().is_empty() => {
                return Err(self.at(path.span(), ConfigErrorKind::EmptyPath))
            }
            Some(path) => PathBuf::from(path.into_inner()),
        };
        let redis = match raw.redis {
            None => None,
            Some(url) if is_redis_url(url.get_ref()) => Some(Secret::new(url.into_inner())),
            Some(url) => {
                // The URL may hold a password: do not echo it back.
                let value = redact_userinfo(url.get_ref());
                return Err(self.at(url.span(), ConfigErrorKind::RedisUrl { value }));
            }
        };
        Ok(StoreConfig { path, redis })
    }

    fn limits(&self, raw: Option<RawLimits>) -> Result<LimitsConfig> {
        let d = LimitsConfig::default();
        let Some(raw) = raw else {
            return Ok(d);
        };
        let max_message_bytes = self.usize_in(
            "limits.max_message_bytes",
            &raw.max_message_bytes,
            d.max_message_bytes,
            1500..=65_535,
        )?;
        let max_request_uri_bytes = self.usize_in(
            "limits.max_request_uri_bytes",
            &raw.max_request_uri_bytes,
            d.max_request_uri_bytes,
            64..=65_535,
        )?;
        let max_headers = self.usize_in(
            "limits.max_headers",
            &raw.max_headers,
            d.max_headers,
            16..=4096,
        )?;
        let max_header_bytes = self.usize_in(
            "limits.max_header_bytes",
            &raw.max_header_bytes,
            d.max_header_bytes,
            256..=65_535,
        )?;
        let max_vias = self.usize_in("limits.max_vias", &raw.max_vias, d.max_vias, 1..=1024)?;
        for (key, value, raw_value) in [
            (
                "limits.max_request_uri_bytes",
                max_request_uri_bytes,
                &raw.max_request_uri_bytes,
            ),
            (
                "limits.max_header_bytes",
                max_header_bytes,
                &raw.max_header_bytes,
            ),
        ] {
            if value > max_message_bytes {
                let span = raw_value
                    .as_ref()
                    .or(raw.max_message_bytes.as_ref())
                    .map_or(0..0, Spanned::span);
                return Err(self.at(
                    span,
                    ConfigErrorKind::AboveOther {
                        key,
                        value: to_i64(value),
                        limit_key: "limits.max_message_bytes",
                        limit: to_i64(max_message_bytes),
                    },
                ));
            }
        }
        let tcp_per_ip = self.nonzero_u32(
            "limits.tcp_per_ip",
            &raw.tcp_per_ip,
            d.tcp_per_ip,
            1_000_000,
        )?;
        let tcp_total =
            self.nonzero_u32("limits.tcp_total", &raw.tcp_total, d.tcp_total, 10_000_000)?;
        if tcp_per_ip > tcp_total {
            let span = raw
                .tcp_per_ip
                .as_ref()
                .or(raw.tcp_total.as_ref())
                .map_or(0..0, Spanned::span);
            return Err(self.at(
                span,
                ConfigErrorKind::AboveOther {
                    key: "limits.tcp_per_ip",
                    value: i64::from(tcp_per_ip.get()),
                    limit_key: "limits.tcp_total",
                    limit: i64::from(tcp_total.get()),
                },
            ));
        }
        let tcp_idle = self.duration(
            "limits.tcp_idle",
            &raw.tcp_idle,
            d.tcp_idle,
            Duration::from_secs(1)..=Duration::from_secs(86_400),
        )?;
        let partial_message_timeout = self.duration(
            "limits.partial_message_timeout",
            &raw.partial_message_timeout,
            d.partial_message_timeout,
            Duration::from_millis(100)..=Duration::from_secs(600),
        )?;
        let max_cps = self.nonzero_u32("limits.max_cps", &raw.max_cps, d.max_cps, 1_000_000)?;
        let queue_high_water = match &raw.queue_high_water {
            None => d.queue_high_water,
            Some(value) => self.ratio("limits.queue_high_water", value)?,
        };
        let retry_after = match &raw.retry_after {
            None => d.retry_after,
            Some(value) => self.retry_after(value)?,
        };
        Ok(LimitsConfig {
            max_message_bytes,
            max_request_uri_bytes,
            max_headers,
            max_header_bytes,
            max_vias,
            tcp_per_ip,
            tcp_total,
            tcp_idle,
            partial_message_timeout,
            max_cps,
            queue_high_water,
            retry_after,
        })
    }

    /// `limits.retry_after`: whole seconds (Retry-After is delta-seconds, RFC 3261
    /// §20.33), 1 s to 1 h.
    fn retry_after(&self, value: &Spanned<RawDuration>) -> Result<RangeInclusive<Duration>> {
        let key = "limits.retry_after";
        let text = match value.get_ref() {
            RawDuration::Text(text) => text,
            RawDuration::Number(n) => {
                return Err(self.at(
                    value.span(),
                    ConfigErrorKind::Duration {
                        key,
                        source: crate::config::value::DurationError::MissingUnit { number: *n },
                    },
                ))
            }
        };
        let range = parse_duration_range(text).map_err(|source| {
            self.at(
                value.span(),
                ConfigErrorKind::DurationRange {
                    key,
                    value: text.clone(),
                    source,
                },
            )
        })?;
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(3600));
        for bound in [*range.start(), *range.end()] {
            if bound.subsec_nanos() != 0 {
                return Err(self.at(
                    value.span(),
                    ConfigErrorKind::NotWholeSeconds { key, value: bound },
                ));
            }
            if !(min..=max).contains(&bound) {
                return Err(self.at(
                    value.span(),
                    ConfigErrorKind::DurationOutOfRange {
                        key,
                        value: bound,
                        min,
                        max,
                    },
                ));
            }
        }
        Ok(range)
    }

    fn nonzero_u32(
        &self,
        key: &'static str,
        value: &Option<Spanned<i64>>,
        default: NonZeroU32,
        max: u32,
    ) -> Result<NonZeroU32> {
        match value {
            None => Ok(default),
            Some(value) => {
                let v = self.int(key, value, 1, i64::from(max))?;
                Ok(u32::try_from(v)
                    .ok()
                    .and_then(NonZeroU32::new)
                    .expect("checked to lie in 1..=max, max a u32"))
            }
        }
    }

    fn tls(&self, raw: Option<RawTls>) -> Result<TlsConfig> {
        let d = TlsConfig::default();
        let Some(raw) = raw else {
            return Ok(d);
        };
        let min_version = match &raw.min_version {
            None => d.min_version,
            Some(value) => TlsMinVersion::from_config(value.get_ref()).ok_or_else(|| {
                self.at(
                    value.span(),
                    ConfigErrorKind::NotOneOf {
                        key: "tls.min_version",
                        value: value.get_ref().clone(),
                        expected: "\"1.2\", \"1.3\"",
                    },
                )
            })?,
        };
        let handshake_timeout = self.duration(
            "tls.handshake_timeout",
            &raw.handshake_timeout,
            d.handshake_timeout,
            Duration::from_millis(100)..=Duration::from_secs(600),
        )?;
        let certificate = match (&raw.cert, &raw.key) {
            (None, None) => None,
            (Some(only), None) | (None, Some(only)) => {
                return Err(self.at(only.span(), ConfigErrorKind::TlsHalfConfigured))
            }
            (Some(cert), Some(key)) => {
                let cert_path = PathBuf::from(cert.get_ref());
                let key_path = PathBuf::from(key.get_ref());
                let server_config = tls::server_config(&cert_path, &key_path, min_version)
                    .map_err(|source| {
                        let span = if tls_error_is_about(&source, &key_path) {
                            key.span()
                        } else {
                            cert.span()
                        };
                        self.at(span, ConfigErrorKind::Tls { source })
                    })?;
                Some(TlsCertificate {
                    cert: cert_path,
                    key: key_path,
                    server_config,
                })
            }
        };
        Ok(TlsConfig {
            min_version,
            handshake_timeout,
            certificate,
        })
    }

    fn log(&self, raw: Option<RawLog>) -> Result<LogConfig> {
        let d = LogConfig::default();
        let Some(raw) = raw else {
            return Ok(d);
        };
        let level = match &raw.level {
            None => d.level,
            Some(value) => LogLevel::from_config(value.get_ref()).ok_or_else(|| {
                self.at(
                    value.span(),
                    ConfigErrorKind::NotOneOf {
                        key: "log.level",
                        value: value.get_ref().clone(),
                        expected: "\"error\", \"warn\", \"info\", \"debug\", \"trace\"",
                    },
                )
            })?,
        };
        let format = match &raw.format {
            None => d.format,
            Some(value) => LogFormat::from_config(value.get_ref()).ok_or_else(|| {
                self.at(
                    value.span(),
                    ConfigErrorKind::NotOneOf {
                        key: "log.format",
                        value: value.get_ref().clone(),
                        expected: "\"text\", \"json\"",
                    },
                )
            })?,
        };
        Ok(LogConfig { level, format })
    }

    fn extensions(
        &self,
        raw: Vec<Spanned<RawExtension>>,
        auth: &AuthConfig,
    ) -> Result<Vec<ExtensionConfig>> {
        // Spans, not lines: a line number counts from the start of the file, so it is
        // computed only for the error that needs it (per entry it made loading quadratic).
        let mut first_seen: HashMap<String, Range<usize>> = HashMap::with_capacity(raw.len());
        // Auth ID → (extension number, span): the digest user name picks the credential.
        let mut auth_ids: HashMap<String, (String, Range<usize>)> =
            HashMap::with_capacity(raw.len());
        let mut out = Vec::with_capacity(raw.len());
        for ext in raw {
            let table_span = ext.span();
            let mut ext = ext.into_inner();
            let Some(ext_number) = ext.number.take() else {
                return Err(self.at(
                    table_span,
                    ConfigErrorKind::MissingKey {
                        key: "extension.number",
                        why: "",
                    },
                ));
            };
            let number = ext_number.get_ref();
            check_extension_number(number).map_err(|source| {
                self.at(
                    ext_number.span(),
                    ConfigErrorKind::ExtensionNumber {
                        value: number.clone(),
                        source,
                    },
                )
            })?;
            if let Some(first) = first_seen.get(number) {
                return Err(self.at(
                    ext_number.span(),
                    ConfigErrorKind::DuplicateExtension {
                        number: number.clone(),
                        first_line: self.loc.line_of(first),
                    },
                ));
            }
            first_seen.insert(number.clone(), ext_number.span());

            let (auth_id, auth_id_span) = match &ext.auth_id {
                None => (number.clone(), ext_number.span()),
                Some(auth_id) => {
                    check_auth_id(auth_id.get_ref()).map_err(|source| {
                        self.at(
                            auth_id.span(),
                            ConfigErrorKind::AuthId {
                                number: number.clone(),
                                value: auth_id.get_ref().clone(),
                                source,
                            },
                        )
                    })?;
                    (auth_id.get_ref().clone(), auth_id.span())
                }
            };
            if let Some((first_number, first_span)) = auth_ids.get(&auth_id) {
                return Err(self.at(
                    auth_id_span,
                    ConfigErrorKind::DuplicateAuthId {
                        number: number.clone(),
                        auth_id,
                        first_number: first_number.clone(),
                        first_line: self.loc.line_of(first_span),
                    },
                ));
            }
            auth_ids.insert(auth_id.clone(), (number.clone(), ext_number.span()));

            let credential = match (&ext.password, &ext.ha1) {
                (Some(password), None) => {
                    check_password(
                        password.get_ref(),
                        auth.min_password_length,
                        number,
                        &auth_id,
                    )
                    .map_err(|source| {
                        self.at(
                            password.span(),
                            ConfigErrorKind::WeakPassword {
                                number: number.clone(),
                                source,
                            },
                        )
                    })?;
                    Credential::Password(Secret::new(password.get_ref().clone()))
                }
                (None, Some(ha1)) => {
                    let hex = check_ha1(ha1.get_ref()).map_err(|source| {
                        self.at(
                            ha1.span(),
                            ConfigErrorKind::Ha1 {
                                number: number.clone(),
                                source,
                            },
                        )
                    })?;
                    if !auth.algorithms.contains(&DigestAlgorithm::Md5) {
                        return Err(self.at(
                            ha1.span(),
                            ConfigErrorKind::Ha1NeedsMd5 {
                                number: number.clone(),
                            },
                        ));
                    }
                    Credential::Ha1Md5(Secret::new(hex))
                }
                (Some(_), Some(second)) => {
                    // Point at whichever comes second in the file.
                    let span = match (&ext.password, &ext.ha1) {
                        (Some(p), Some(h)) if p.span().start > h.span().start => p.span(),
                        _ => second.span(),
                    };
                    return Err(self.at(
                        span,
                        ConfigErrorKind::ExtensionCredential {
                            number: number.clone(),
                            both: true,
                        },
                    ));
                }
                (None, None) => {
                    return Err(self.at(
                        table_span,
                        ConfigErrorKind::ExtensionCredential {
                            number: number.clone(),
                            both: false,
                        },
                    ))
                }
            };
            let name = match ext.name.take() {
                None => None,
                // A display name ends up inside SIP header fields: CR/LF would inject headers.
                Some(name) if name.get_ref().chars().any(char::is_control) => {
                    return Err(self.at(
                        name.span(),
                        ConfigErrorKind::ExtensionName {
                            number: number.clone(),
                        },
                    ))
                }
                Some(name) => Some(name.into_inner()),
            };
            let networks = match &ext.networks {
                None => Vec::new(),
                Some(list) => self.cidrs("extension.networks", list)?,
            };
            let record = self.extension_record(&ext, number)?;
            out.push(ExtensionConfig {
                number: ext_number.into_inner(),
                auth_id,
                credential,
                name,
                networks,
                record,
            });
        }
        Ok(out)
    }

    /// The EXT-01 fields of one extension.
    fn extension_record(&self, ext: &RawExtension, number: &str) -> Result<ExtensionRecord> {
        let field = |key: &'static str,
                     value: &Option<Spanned<String>>,
                     check: fn(&str) -> std::result::Result<(), FieldError>|
         -> Result<Option<String>> {
            let Some(value) = value else {
                return Ok(None);
            };
            check(value.get_ref()).map_err(|source| {
                self.at(
                    value.span(),
                    ConfigErrorKind::ExtensionField {
                        number: number.to_owned(),
                        key,
                        value: value.get_ref().clone(),
                        source,
                    },
                )
            })?;
            Ok(Some(value.get_ref().clone()))
        };
        let first_name = field("first_name", &ext.first_name, check_name)?;
        let last_name = field("last_name", &ext.last_name, check_name)?;
        let email = field("email", &ext.email, check_email)?;
        let outbound_caller_id = field(
            "outbound_caller_id",
            &ext.outbound_caller_id,
            check_phone_number,
        )?;
        let mobile = field("mobile", &ext.mobile, check_phone_number)?;
        let language = field("language", &ext.language, check_language)?;
        let voicemail_pin = match &ext.voicemail_pin {
            None => None,
            Some(pin) => {
                check_voicemail_pin(pin.get_ref(), number).map_err(|source| {
                    self.at(
                        pin.span(),
                        ConfigErrorKind::VoicemailPin {
                            number: number.to_owned(),
                            source,
                        },
                    )
                })?;
                Some(Secret::new(pin.get_ref().clone()))
            }
        };
        let role = match &ext.role {
            None => Role::default(),
            Some(role) => Role::from_config(role.get_ref()).ok_or_else(|| {
                self.at(
                    role.span(),
                    ConfigErrorKind::NotOneOf {
                        key: "extension.role",
                        value: role.get_ref().clone(),
                        expected: "\"user\", \"manager\", \"admin\"",
                    },
                )
            })?,
        };
        let mut departments: Vec<String> = Vec::new();
        for entry in ext.departments.iter().flatten() {
            let department = field("departments", &Some(entry.clone()), check_name)?
                .expect("the value was given");
            if departments.contains(&department) {
                return Err(self.at(
                    entry.span(),
                    ConfigErrorKind::Duplicate {
                        key: "extension.departments",
                        value: format!("{department:?}"),
                    },
                ));
            }
            departments.push(department);
        }
        Ok(ExtensionRecord {
            first_name,
            last_name,
            email,
            outbound_caller_id,
            voicemail_pin,
            mobile,
            language,
            role,
            departments,
        })
    }

    /// `[[trunk]]`: unique names; ACL entries parsed, none on two trunks.
    fn trunks(&self, raw: Vec<Spanned<RawTrunk>>) -> Result<Vec<TrunkConfig>> {
        let mut names: HashMap<String, Range<usize>> = HashMap::with_capacity(raw.len());
        let mut sources: HashMap<(IpNet, Option<u16>), String> = HashMap::new();
        let mut out = Vec::with_capacity(raw.len());
        for trunk in raw {
            let table_span = trunk.span();
            let trunk = trunk.into_inner();
            let Some(name) = trunk.name else {
                return Err(self.at(
                    table_span,
                    ConfigErrorKind::MissingKey {
                        key: "trunk.name",
                        why: "",
                    },
                ));
            };
            let name_ok = (1..=64).contains(&name.get_ref().len())
                && name
                    .get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !name_ok {
                return Err(self.at(
                    name.span(),
                    ConfigErrorKind::TrunkName {
                        value: name.get_ref().clone(),
                    },
                ));
            }
            if let Some(first) = names.get(name.get_ref()) {
                return Err(self.at(
                    name.span(),
                    ConfigErrorKind::DuplicateTrunk {
                        name: name.get_ref().clone(),
                        first_line: self.loc.line_of(first),
                    },
                ));
            }
            names.insert(name.get_ref().clone(), name.span());
            let mut acl = Vec::with_capacity(trunk.acl.len());
            for entry in &trunk.acl {
                let source = parse_acl_source(entry.get_ref()).map_err(|source| {
                    self.at(
                        entry.span(),
                        ConfigErrorKind::TrunkAcl {
                            trunk: name.get_ref().clone(),
                            value: entry.get_ref().clone(),
                            source,
                        },
                    )
                })?;
                if let Some(first_trunk) = sources.get(&(source.net, source.port)) {
                    return Err(self.at(
                        entry.span(),
                        ConfigErrorKind::DuplicateTrunkAcl {
                            trunk: name.get_ref().clone(),
                            value: entry.get_ref().clone(),
                            first_trunk: first_trunk.clone(),
                        },
                    ));
                }
                sources.insert((source.net, source.port), name.get_ref().clone());
                acl.push(source);
            }
            out.push(TrunkConfig {
                name: name.into_inner(),
                acl,
            });
        }
        Ok(out)
    }

    /// Two sockets of one protocol on one port and overlapping addresses cannot both bind.
    fn port_clashes(
        &self,
        config: &Config,
        listen_spans: &[Option<Range<usize>>],
        admin_span: Option<Range<usize>>,
        ng_span: Option<Range<usize>>,
        rtp_span: Option<Range<usize>>,
    ) -> Result<()> {
        struct Socket {
            tcp: bool,
            ip: IpAddr,
            ports: RangeInclusive<u16>,
            label: String,
            span: Option<Range<usize>>,
        }
        let one = |port: u16| port..=port;
        let mut sockets: Vec<Socket> = config
            .sip
            .listen
            .iter()
            .zip(listen_spans)
            .map(|(l, span)| Socket {
                tcp: l.transport.is_reliable(),
                ip: l.addr.ip(),
                ports: one(l.addr.port()),
                label: format!("`sip.listen` {l}"),
                span: span.clone(),
            })
            .collect();
        sockets.push(Socket {
            tcp: true,
            ip: config.admin.listen.ip(),
            ports: one(config.admin.listen.port()),
            label: format!("`admin.listen` {}", config.admin.listen),
            span: admin_span,
        });
        if let Some(ng) = &config.ng {
            sockets.push(Socket {
                tcp: false,
                ip: ng.listen.ip(),
                ports: one(ng.listen.port()),
                label: format!("`ng.listen` {}", ng.listen),
                span: ng_span,
            });
        }
        let rtp = &config.media.rtp_ports;
        sockets.push(Socket {
            tcp: false,
            ip: config.media.bind,
            ports: rtp.clone(),
            label: format!("`media.rtp_ports` {}-{}", rtp.start(), rtp.end()),
            span: rtp_span,
        });

        for (j, second) in sockets.iter().enumerate() {
            for first in &sockets[..j] {
                if first.tcp != second.tcp || !ips_overlap(first.ip, second.ip) {
                    continue;
                }
                let start = (*first.ports.start()).max(*second.ports.start());
                let end = (*first.ports.end()).min(*second.ports.end());
                // Port 0 asks the OS for a free port and never clashes.
                if start > end || start == 0 {
                    continue;
                }
                let span = second.span.clone().or(first.span.clone()).unwrap_or(0..0);
                return Err(self.at(
                    span,
                    ConfigErrorKind::PortClash {
                        first: first.label.clone(),
                        second: second.label.clone(),
                        tcp: first.tcp,
                        port: start,
                    },
                ));
            }
        }
        Ok(())
    }
}

/// Whether two bind addresses can conflict: the same address, or a wildcard of the same
/// family (an IPv6 wildcard may be dual-stack, but the driver sets IPV6_V6ONLY).
fn ips_overlap(a: IpAddr, b: IpAddr) -> bool {
    a == b || (a.is_ipv4() == b.is_ipv4() && (a.is_unspecified() || b.is_unspecified()))
}

fn to_i64(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Whether a TLS error concerns the key file (so the error points at `tls.key`).
fn tls_error_is_about(err: &TlsError, key: &Path) -> bool {
    match err {
        TlsError::Read { path, .. } | TlsError::Pem { path, .. } => path == key,
        TlsError::NoPrivateKey { .. } | TlsError::KeyMismatch { .. } => true,
        _ => false,
    }
}

/// `redis://[USER[:PASSWORD]@]HOST[:PORT][/DB]` or `rediss://…`.
fn is_redis_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("rediss://"))
    else {
        return false;
    };
    let (authority, db) = match rest.split_once('/') {
        Some((authority, db)) => (authority, Some(db)),
        None => (rest, None),
    };
    if let Some(db) = db {
        if !db.is_empty() && db.parse::<u32>().is_err() {
            return false;
        }
    }
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        match v6.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, port)) => match port.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return false,
            },
            None => return false,
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
    host_ok && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p != 0))
}

/// Replaces `user:password@` in a URL with `***@`.
fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_redis_urls() {
        for ok in [
            "redis://127.0.0.1",
            "redis://127.0.0.1:6379",
            "redis://redis.example.net:6379/2",
            "rediss://:secret@redis.example.net",
            "redis://user:pw@[2001:db8::1]:6379/0",
            "redis://[::1]",
        ] {
            assert!(is_redis_url(ok), "{ok}");
        }
        for bad in [
            "127.0.0.1:6379",
            "http://redis",
            "redis://",
            "redis://:6379",
            "redis://host:notaport",
            "redis://host:0",
            "redis://host/db",
            "redis://[::1",
            "redis://host name",
        ] {
            assert!(!is_redis_url(bad), "{bad}");
        }
        assert_eq!(
            redact_userinfo("redis://:hunter2@host:1/"),
            "redis://***@host:1/"
        );
        assert_eq!(redact_userinfo("redis//host"), "redis//host");
    }

    #[test]
    fn config_ip_overlap() {
        let v4: IpAddr = "127.0.0.1".parse().expect("ip");
        let v4b: IpAddr = "127.0.0.2".parse().expect("ip");
        let any4: IpAddr = "0.0.0.0".parse().expect("ip");
        let any6: IpAddr = "::".parse().expect("ip");
        assert!(ips_overlap(v4, v4));
        assert!(!ips_overlap(v4, v4b));
        assert!(ips_overlap(v4, any4));
        assert!(ips_overlap(any4, v4b));
        assert!(!ips_overlap(any6, v4));
    }
}
