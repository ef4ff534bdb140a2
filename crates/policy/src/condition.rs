//! Rule conditions (`when:`): source address, time window, path parameter
//! equal to a principal attribute.
//!
//! Fail closed: a condition that cannot be evaluated (the principal lacks
//! the attribute) is *not met* for an allow rule and *met* for a deny rule,
//! so a missing attribute never grants access and never escapes a deny.

use std::net::IpAddr;

use ipnet::IpNet;
use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use portcullis_identity::{AttributeRef, Principal};

use crate::name::{quoted, Name};
use crate::pattern::PathSegments;

/// All conditions of one rule; every one must hold (AND).
#[derive(Debug, Default)]
pub(crate) struct Conditions {
    pub(crate) source_ip: Option<Box<[IpNet]>>,
    pub(crate) time: Option<TimeWindow>,
    pub(crate) equal: Box<[Equal]>,
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
}

/// Which condition did not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    SourceIp,
    Time,
    /// Index into [`Conditions::equal`].
    Equal(usize),
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
        }
    }
}

impl Equal {
    fn check(&self, cx: &Context<'_>) -> Tri {
        let Some(value) = cx.segments.get(self.segment) else {
            return Tri::Unknown;
        };
        match cx.principal.attribute(&self.attr) {
            Some(attr) if attr == value => Tri::Met,
            Some(_) => Tri::NotMet,
            None => Tri::Unknown,
        }
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

/// Parses a CIDR (`10.0.0.0/8`) or a single address (a /32 or /128).
/// Rejects host bits set, which usually hides a typo in the prefix length.
pub(crate) fn parse_cidr(s: &str) -> Result<IpNet, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
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
    Ok(net)
}

#[cfg(test)]
mod tests;
