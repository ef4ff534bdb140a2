//! Rule conditions (`when:`): source address, time window, path parameter
//! equal to a principal attribute, token claims, MFA freshness, the kinds
//! of credential presented, and roles that must be held as well.
//!
//! Fail closed: a condition that cannot be evaluated (the principal lacks
//! the attribute) is *not met* for an allow rule and *met* for a deny rule,
//! so a missing attribute never grants access and never escapes a deny.

use std::net::IpAddr;

use ipnet::IpNet;
use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use portcullis_identity::{AttributeRef, ClaimPath, Principal};

use crate::index::RoleIdx;
use crate::name::{quoted, Name};
use crate::pattern::PathSegments;

/// All conditions of one rule; every one must hold (AND).
#[derive(Debug, Default)]
pub(crate) struct Conditions {
    pub(crate) source_ip: Option<Box<[IpNet]>>,
    pub(crate) time: Option<TimeWindow>,
    pub(crate) equal: Box<[Equal]>,
    pub(crate) claims: Box<[ClaimCond]>,
    /// Credential kinds that must all be present; see [`Authn`].
    pub(crate) authn: Authn,
    /// Roles the principal must hold as well (sorted), with their names.
    pub(crate) has_roles: Box<[(RoleIdx, Name)]>,
    pub(crate) mfa: Option<Mfa>,
}

/// `when.claims.<path>: value | [values]`: the claim has one of the values.
#[derive(Debug)]
pub(crate) struct ClaimCond {
    pub(crate) path: ClaimPath,
    pub(crate) values: Box<[Box<str>]>,
}

/// `when.authn: [mtls, token, bound_token]` as bits.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Authn(pub(crate) u8);

impl Authn {
    pub(crate) const MTLS: u8 = 1;
    pub(crate) const TOKEN: u8 = 2;
    pub(crate) const BOUND_TOKEN: u8 = 4;
    pub(crate) const NAMES: [(&'static str, u8); 3] = [
        ("mtls", Self::MTLS),
        ("token", Self::TOKEN),
        ("bound_token", Self::BOUND_TOKEN),
    ];

    fn of(p: &Principal) -> u8 {
        let mut bits = 0;
        if p.cert.is_some() {
            bits |= Self::MTLS;
        }
        if let Some(t) = &p.token {
            bits |= Self::TOKEN;
            // Bound means: the token names a certificate and the request
            // came over a connection with exactly that certificate.
            if t.bound_to.is_some() && t.bound_to.as_ref() == p.cert.as_ref().map(|c| &c.thumbprint)
            {
                bits |= Self::BOUND_TOKEN;
            }
        }
        bits
    }
}

/// `when.mfa`: the token's authentication is fresh and strong enough.
#[derive(Debug)]
pub(crate) struct Mfa {
    /// `amr` must contain one of these (empty: any).
    pub(crate) methods: Box<[Box<str>]>,
    /// `acr` must be one of these (empty: any).
    pub(crate) acr: Box<[Box<str>]>,
    /// `auth_time` at most this many seconds before the request.
    pub(crate) max_age_secs: Option<i64>,
}

/// `when.equal.<param>: <attribute>`.
#[derive(Debug)]
pub(crate) struct Equal {
    pub(crate) param: Name,
    /// Index of the request path segment the parameter captures.
    pub(crate) segment: usize,
    pub(crate) attr: AttributeRef,
}

/// `when.time`: a weekly window in a time zone.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    /// Bit `n` set = weekday `n` (Monday = 0) is listed.
    pub(crate) days: u8,
    /// Minutes after local midnight, `from` inclusive and `to` exclusive;
    /// `from > to` is an overnight window. `None` = the whole day.
    pub(crate) span: Option<(u16, u16)>,
    pub(crate) tz: TimeZone,
    pub(crate) tz_name: Box<str>,
}

pub(crate) const ALL_DAYS: u8 = 0b111_1111;

/// What a condition is checked against.
pub(crate) struct Context<'a> {
    pub(crate) principal: &'a Principal,
    /// Source address with IPv4-mapped IPv6 addresses turned into IPv4.
    pub(crate) ip: IpAddr,
    pub(crate) now: Timestamp,
    pub(crate) segments: &'a PathSegments<'a>,
    /// The principal's effective roles, sorted.
    pub(crate) roles: &'a [RoleIdx],
}

/// Which condition did not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    SourceIp,
    Time,
    /// Index into [`Conditions::equal`].
    Equal(usize),
    /// Index into [`Conditions::claims`].
    Claim(usize),
    Authn,
    HasRoles,
    Mfa,
}

/// Outcome of one `equal` check.
enum Tri {
    Met,
    NotMet,
    Unknown,
}

impl Conditions {
    /// Key paths of the conditions present, e.g. `when.time`.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.source_ip.is_some() {
            out.push(self.name(Which::SourceIp));
        }
        if self.time.is_some() {
            out.push(self.name(Which::Time));
        }
        out.extend((0..self.equal.len()).map(|i| self.name(Which::Equal(i))));
        out.extend((0..self.claims.len()).map(|i| self.name(Which::Claim(i))));
        if self.authn.0 != 0 {
            out.push(self.name(Which::Authn));
        }
        if !self.has_roles.is_empty() {
            out.push(self.name(Which::HasRoles));
        }
        if self.mfa.is_some() {
            out.push(self.name(Which::Mfa));
        }
        out
    }

    /// Checks every condition; `unknown_is_met` says how a condition that
    /// cannot be evaluated counts (`false` for allow, `true` for deny rules).
    pub(crate) fn check(&self, cx: &Context<'_>, unknown_is_met: bool) -> Result<(), Which> {
        if let Some(nets) = &self.source_ip {
            if !nets.iter().any(|n| n.contains(&cx.ip)) {
                return Err(Which::SourceIp);
            }
        }
        if let Some(window) = &self.time {
            if !window.contains(cx.now) {
                return Err(Which::Time);
            }
        }
        for (i, eq) in self.equal.iter().enumerate() {
            match eq.check(cx) {
                Tri::Met => {}
                Tri::Unknown if unknown_is_met => {}
                Tri::NotMet | Tri::Unknown => return Err(Which::Equal(i)),
            }
        }
        for (i, c) in self.claims.iter().enumerate() {
            match c.check(cx.principal) {
                Tri::Met => {}
                Tri::Unknown if unknown_is_met => {}
                Tri::NotMet | Tri::Unknown => return Err(Which::Claim(i)),
            }
        }
        if self.authn.0 != 0 && Authn::of(cx.principal) & self.authn.0 != self.authn.0 {
            return Err(Which::Authn);
        }
        if !self
            .has_roles
            .iter()
            .all(|(r, _)| cx.roles.binary_search(r).is_ok())
        {
            return Err(Which::HasRoles);
        }
        // Last, so a failed MFA condition is reported only when nothing
        // else stands in the way (a fresh login would then allow).
        if let Some(mfa) = &self.mfa {
            match mfa.check(cx) {
                Ok(()) => {}
                // A deny rule is not escaped by a token that lacks the
                // claim it checks, or holds it in another shape.
                Err(miss) if unknown_is_met && miss.is_unknown(cx) => {}
                Err(_) => return Err(Which::Mfa),
            }
        }
        Ok(())
    }

    /// The key path of a condition, e.g. `when.equal.tenant`.
    pub(crate) fn name(&self, which: Which) -> String {
        match which {
            Which::SourceIp => "when.source_ip".to_owned(),
            Which::Time => "when.time".to_owned(),
            Which::Equal(i) => match self.equal.get(i) {
                Some(eq) => format!("when.equal.{}", eq.param),
                None => "when.equal".to_owned(),
            },
            Which::Claim(i) => match self.claims.get(i) {
                Some(c) => format!("when.claims.{}", c.path),
                None => "when.claims".to_owned(),
            },
            Which::Authn => "when.authn".to_owned(),
            Which::HasRoles => "when.has_roles".to_owned(),
            Which::Mfa => "when.mfa".to_owned(),
        }
    }

    /// Why a condition did not hold, for the decision's explanation.
    pub(crate) fn describe(&self, which: Which, cx: &Context<'_>) -> String {
        match which {
            Which::SourceIp => format!("source address `{}` is in none of the networks", cx.ip),
            Which::Time => match &self.time {
                Some(w) => {
                    let local = w.tz.to_datetime(cx.now);
                    format!(
                        "local time {} {:02}:{:02} in `{}` is outside the window",
                        day_name(local.weekday()),
                        local.hour(),
                        local.minute(),
                        w.tz_name
                    )
                }
                None => "time window not met".to_owned(),
            },
            Which::Equal(i) => match self.equal.get(i) {
                Some(eq) => {
                    let value = cx.segments.get(eq.segment).unwrap_or_default();
                    match cx.principal.attribute(&eq.attr) {
                        Some(attr) => format!(
                            "path parameter `{}` is {} but `{}` is {}",
                            eq.param,
                            quoted(value),
                            eq.attr,
                            quoted(attr)
                        ),
                        None => format!(
                            "the principal has no attribute `{}` (a missing attribute never satisfies an allow rule)",
                            eq.attr
                        ),
                    }
                }
                None => "equal condition not met".to_owned(),
            },
            Which::Claim(i) => match self.claims.get(i) {
                Some(c) => match &cx.principal.token {
                    None => "the request carries no token (a missing claim never satisfies an allow rule)".to_owned(),
                    Some(t) => {
                        let have = t.claim_values(&c.path);
                        if have.is_empty() {
                            format!("the token has no claim `{}`", c.path)
                        } else {
                            format!(
                                "claim `{}` is [{}], none of [{}]",
                                c.path,
                                list(have.iter().map(|v| v.as_ref())),
                                list(c.values.iter().map(|v| &**v))
                            )
                        }
                    }
                },
                None => "claim condition not met".to_owned(),
            },
            Which::Authn => {
                let have = Authn::of(cx.principal);
                let missing: Vec<&str> = Authn::NAMES
                    .iter()
                    .filter(|(_, bit)| self.authn.0 & bit != 0 && have & bit == 0)
                    .map(|(name, _)| *name)
                    .collect();
                format!("the request lacks the credentials [{}]", missing.join(", "))
            }
            Which::HasRoles => {
                let missing: Vec<&str> = self
                    .has_roles
                    .iter()
                    .filter(|(r, _)| cx.roles.binary_search(r).is_err())
                    .map(|(_, n)| n.as_str())
                    .collect();
                format!("the principal lacks the roles [{}]", missing.join(", "))
            }
            Which::Mfa => match &self.mfa {
                Some(m) => match m.check(cx) {
                    Ok(()) => "mfa condition not met".to_owned(),
                    Err(miss) => miss.describe(m),
                },
                None => "mfa condition not met".to_owned(),
            },
        }
    }
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.map(quoted).collect::<Vec<_>>().join(", ")
}

impl ClaimCond {
    fn check(&self, p: &Principal) -> Tri {
        let Some(token) = &p.token else {
            return Tri::Unknown;
        };
        let have = token.claim_values(&self.path);
        if have.is_empty() {
            return Tri::Unknown;
        }
        if have.iter().any(|h| self.values.iter().any(|v| **v == **h)) {
            Tri::Met
        } else {
            Tri::NotMet
        }
    }
}

/// Why an MFA condition does not hold.
enum MfaMiss {
    NoToken,
    Methods(Vec<String>),
    Acr(Option<String>),
    NoAuthTime,
    TooOld { age: i64 },
}

impl Mfa {
    fn check(&self, cx: &Context<'_>) -> Result<(), MfaMiss> {
        let Some(token) = &cx.principal.token else {
            return Err(MfaMiss::NoToken);
        };
        if !self.methods.is_empty() {
            let amr = token.amr();
            if !amr
                .iter()
                .any(|m| self.methods.iter().any(|want| **want == **m))
            {
                return Err(MfaMiss::Methods(
                    amr.iter().map(|s| (*s).to_owned()).collect(),
                ));
            }
        }
        if !self.acr.is_empty() {
            let acr = token.acr();
            if !acr.is_some_and(|a| self.acr.iter().any(|want| **want == *a)) {
                return Err(MfaMiss::Acr(acr.map(str::to_owned)));
            }
        }
        if let Some(max) = self.max_age_secs {
            let Some(at) = token.auth_time() else {
                return Err(MfaMiss::NoAuthTime);
            };
            let age = cx.now.as_second().saturating_sub(at);
            // An auth_time in the future is as suspect as a stale one.
            if age > max || age < -MAX_AUTH_TIME_SKEW_SECS {
                return Err(MfaMiss::TooOld { age });
            }
        }
        Ok(())
    }
}

/// How far `auth_time` may lie in the future (clock skew between the
/// issuer and the gateway) before the authentication counts as not fresh.
pub(crate) const MAX_AUTH_TIME_SKEW_SECS: i64 = 60;

impl MfaMiss {
    /// Whether the condition missed for want of what it checks: no token,
    /// or a token without `amr` as an array of strings, `acr` as a string,
    /// or a numeric `auth_time`. A token that states another method, level
    /// or time is a definite answer.
    fn is_unknown(&self, cx: &Context<'_>) -> bool {
        let Some(token) = &cx.principal.token else {
            return true;
        };
        match self {
            MfaMiss::NoToken | MfaMiss::NoAuthTime | MfaMiss::Acr(None) => true,
            MfaMiss::Methods(_) => !matches!(
                token.claims.get("amr"),
                Some(serde_json::Value::Array(items)) if items.iter().all(serde_json::Value::is_string)
            ),
            MfaMiss::Acr(Some(_)) | MfaMiss::TooOld { .. } => false,
        }
    }

    fn describe(&self, m: &Mfa) -> String {
        match self {
            MfaMiss::NoToken => {
                "the request carries no token, so no authentication methods".to_owned()
            }
            MfaMiss::Methods(have) => format!(
                "authentication methods (amr) [{}] include none of [{}]",
                list(have.iter().map(String::as_str)),
                list(m.methods.iter().map(|v| &**v))
            ),
            MfaMiss::Acr(have) => format!(
                "acr {} is none of [{}]",
                have.as_deref()
                    .map_or_else(|| "(absent)".to_owned(), quoted),
                list(m.acr.iter().map(|v| &**v))
            ),
            MfaMiss::NoAuthTime => "the token has no numeric `auth_time`".to_owned(),
            MfaMiss::TooOld { age } => format!(
                "authentication is {age}s old, more than the {}s allowed",
                m.max_age_secs.unwrap_or(0)
            ),
        }
    }
}

impl Equal {
    fn check(&self, cx: &Context<'_>) -> Tri {
        let Some(value) = cx.segments.get(self.segment) else {
            return Tri::Unknown;
        };
        match cx.principal.attribute(&self.attr) {
            Some(attr) if decoded_eq(value, attr) => Tri::Met,
            Some(_) => Tri::NotMet,
            None => Tri::Unknown,
        }
    }
}

/// Whether the path segment `encoded` (normalised: what is not allowed raw
/// in a path stays percent-encoded) says `plain`: an attribute such as
/// `Acme Corp` can only arrive as `Acme%20Corp`, and comparing the two
/// spellings would never match, which for a deny rule means never deny.
fn decoded_eq(encoded: &str, plain: &str) -> bool {
    if !encoded.contains('%') {
        return encoded == plain;
    }
    fn hex(b: u8) -> Option<u8> {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let (mut e, mut p) = (encoded.as_bytes(), plain.as_bytes());
    loop {
        let (byte, rest) = match e {
            [] => return p.is_empty(),
            [b'%', h, l, rest @ ..] => match (hex(*h), hex(*l)) {
                (Some(h), Some(l)) => (h * 16 + l, rest),
                _ => return false,
            },
            [b'%', ..] => return false,
            [b, rest @ ..] => (*b, rest),
        };
        match p {
            [first, tail @ ..] if *first == byte => p = tail,
            _ => return false,
        }
        e = rest;
    }
}

impl TimeWindow {
    /// Whether `now`, read as wall-clock time in the window's zone, is
    /// inside the window. An overnight window (`from > to`) belongs to the
    /// day it starts on: `fri 22:00-06:00` includes Saturday 03:00.
    pub(crate) fn contains(&self, now: Timestamp) -> bool {
        let local = self.tz.to_datetime(now);
        let day = local.weekday();
        let minute = minute_of_day(local.hour(), local.minute());
        match self.span {
            None => self.has_day(day),
            Some((from, to)) if from < to => self.has_day(day) && from <= minute && minute < to,
            Some((from, to)) => {
                (self.has_day(day) && minute >= from)
                    || (self.has_day(day.previous()) && minute < to)
            }
        }
    }

    fn has_day(&self, day: Weekday) -> bool {
        let bit = u8::try_from(day.to_monday_zero_offset()).unwrap_or(0);
        self.days & (1u8 << (bit & 7)) != 0
    }
}

fn minute_of_day(hour: i8, minute: i8) -> u16 {
    u16::try_from(i16::from(hour) * 60 + i16::from(minute)).unwrap_or(0)
}

/// Parses `HH:MM`; `24:00` only when `allow_end_of_day`.
pub(crate) fn parse_hhmm(s: &str, allow_end_of_day: bool) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    if h < 24 && m < 60 {
        Some(h * 60 + m)
    } else if allow_end_of_day && h == 24 && m == 0 {
        Some(24 * 60)
    } else {
        None
    }
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Parses a day name (`mon` … `sun`, lowercase) into its bit.
pub(crate) fn parse_day(s: &str) -> Option<u8> {
    DAY_NAMES
        .iter()
        .position(|d| *d == s)
        .and_then(|i| u32::try_from(i).ok())
        .map(|i| 1u8 << i)
}

fn day_name(day: Weekday) -> &'static str {
    usize::try_from(day.to_monday_zero_offset())
        .ok()
        .and_then(|i| DAY_NAMES.get(i))
        .copied()
        .unwrap_or("?")
}

/// Parses a duration such as `90s`, `15m`, `12h` or `7d` into seconds.
pub(crate) fn parse_duration_secs(s: &str) -> Option<i64> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    if num.is_empty() || num.len() > 9 {
        return None;
    }
    let n: i64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult).filter(|v| *v > 0)
}

/// Parses a CIDR (`10.0.0.0/8`) or a single address (a /32 or /128).
/// Rejects host bits set, which usually hides a typo in the prefix length.
pub(crate) fn parse_cidr(s: &str) -> Result<IpNet, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(ipv4_if_mapped(IpNet::from(ip)));
    }
    let net: IpNet = s
        .parse()
        .map_err(|_| "expected an address or a network such as `10.0.0.0/8`".to_owned())?;
    if net.trunc() != net {
        return Err(format!(
            "host bits are set; did you mean `{}`?",
            net.trunc()
        ));
    }
    Ok(ipv4_if_mapped(net))
}

/// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as the IPv4 network
/// it covers (`10.0.0.0/8`): request addresses are compared in their
/// canonical form (a mapped address as IPv4), so a rule written in the
/// mapped form, as dual-stack logs show addresses, would otherwise never
/// match. A network wider than the mapped range is kept as written.
fn ipv4_if_mapped(net: IpNet) -> IpNet {
    const MAPPED_PREFIX_LEN: u8 = 96;
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= MAPPED_PREFIX_LEN => {
            match v6.network().to_ipv4_mapped() {
                Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - MAPPED_PREFIX_LEN)
                    .map(IpNet::V4)
                    .unwrap_or(net),
                None => net,
            }
        }
        _ => net,
    }
}

#[cfg(test)]
mod tests;
