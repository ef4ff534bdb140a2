//! The request target's form and host (RFC 9112 §3.2, RFC 9113 §8.3.1),
//! and the host-versus-SNI check.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::header::HOST;
use http::{HeaderMap, StatusCode, Uri, Version};

/// Longest host name, in bytes, without a trailing dot: the DNS limit
/// (RFC 1035 §2.3.4, 255 octets on the wire = 253 in text).
pub const MAX_HOST_LEN: usize = 253;
/// Longest DNS label, in bytes (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;

/// Why the request target or its host is refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    #[error("http version is not supported")]
    UnsupportedVersion,
    #[error("request has no host")]
    MissingHost,
    #[error("request has more than one `host` header")]
    DuplicateHost,
    #[error("request target authority and `host` header disagree")]
    HostMismatch,
    #[error("authority-form request target (`connect`) is not accepted")]
    AuthorityForm,
    #[error("asterisk-form request target (`*`) is not accepted")]
    AsteriskForm,
    #[error("request target scheme must be `http` or `https`")]
    BadScheme,
    #[error("request target is malformed")]
    Malformed,
    #[error("invalid host: {reason}")]
    BadHost { reason: &'static str },
}

impl TargetError {
    /// A stable, low-cardinality label for metrics.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::UnsupportedVersion => "unsupported_version",
            Self::MissingHost => "missing_host",
            Self::DuplicateHost => "duplicate_host",
            Self::HostMismatch => "host_mismatch",
            Self::AuthorityForm => "authority_form",
            Self::AsteriskForm => "asterisk_form",
            Self::BadScheme => "bad_scheme",
            Self::Malformed => "malformed_target",
            Self::BadHost { .. } => "bad_host",
        }
    }

    /// The status the gateway answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnsupportedVersion => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A validated authority: canonical host and optional port.
#[derive(Debug, PartialEq, Eq)]
struct HostPort {
    /// Lowercase, without a trailing dot; IPv6 in canonical form in
    /// brackets.
    host: String,
    port: Option<u16>,
}

impl HostPort {
    /// The port, with the scheme's default port treated as absent
    /// (RFC 3986 §6.2.3).
    fn effective_port(&self, scheme: Option<&str>) -> Option<u16> {
        let default = match scheme {
            Some(s) if s.eq_ignore_ascii_case("http") => Some(80),
            Some(s) if s.eq_ignore_ascii_case("https") => Some(443),
            _ => None,
        };
        self.port.filter(|p| Some(*p) != default)
    }

    fn same_as(&self, other: &Self, scheme: Option<&str>) -> bool {
        self.host == other.host && self.effective_port(scheme) == other.effective_port(scheme)
    }
}

/// Returns the host the request is for: lowercase, without port and
/// without a trailing dot; an IPv6 literal in canonical form in brackets
/// (`[2001:db8::1]`).
///
/// - HTTP/1.x origin-form: exactly one valid `Host` header (also required
///   for HTTP/1.0: the gateway cannot route without it).
/// - HTTP/1.x absolute-form: scheme `http` or `https`, no user info, and
///   the authority must agree with the (required, single) `Host` header,
///   else the request is ambiguous. A port equal to the scheme's default
///   counts as absent when comparing.
/// - HTTP/2 and HTTP/3: `:authority` (the URI's authority); a `Host`
///   header, if also present, must be single and agree. Without
///   `:authority`, exactly one `Host` header is required.
/// - authority-form (`CONNECT`) and asterisk-form (`OPTIONS *`) are
///   refused: the gateway is not a forward proxy.
///
/// Host syntax: a DNS-style name of labels `[A-Za-z0-9_-]{1,63}`, at most
/// [`MAX_HOST_LEN`] bytes, one optional trailing dot; an IPv4 address in
/// dotted-decimal form only (a name whose last label is numeric must be
/// one, so `127.1`, `0x7f.0.0.1` and `2130706433` are refused); or an IPv6
/// literal in brackets without zone. An optional port of 1–5 digits up to
/// 65535 may follow; an empty port is refused.
pub fn effective_host(
    uri: &Uri,
    headers: &HeaderMap,
    version: Version,
) -> Result<String, TargetError> {
    if !matches!(
        version,
        Version::HTTP_10 | Version::HTTP_11 | Version::HTTP_2 | Version::HTTP_3
    ) {
        return Err(TargetError::UnsupportedVersion);
    }
    if uri.path() == "*" {
        return Err(TargetError::AsteriskForm);
    }
    let host_header = single_host_header(headers)?;
    match (uri.scheme_str(), uri.authority()) {
        // Origin-form (HTTP/1.x, or HTTP/2 without `:authority`).
        (None, None) => host_header.map(|h| h.host).ok_or(TargetError::MissingHost),
        (None, Some(_)) => Err(TargetError::AuthorityForm),
        (Some(scheme), Some(authority)) => {
            if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
                return Err(TargetError::BadScheme);
            }
            let target = parse_authority(authority.as_str())?;
            match host_header {
                Some(h) if !h.same_as(&target, Some(scheme)) => Err(TargetError::HostMismatch),
                Some(_) => Ok(target.host),
                // HTTP/2 and HTTP/3 carry the host in `:authority`.
                None if matches!(version, Version::HTTP_2 | Version::HTTP_3) => Ok(target.host),
                // HTTP/1.x absolute-form needs the agreeing `Host` header.
                None => Err(TargetError::MissingHost),
            }
        }
        (Some(_), None) => Err(TargetError::Malformed),
    }
}

/// Whether `host` (as returned by [`effective_host`]: no port) may be
/// served on a TLS connection whose client sent `sni`. The comparison is
/// ASCII case-insensitive and ignores one trailing dot on either side.
///
/// Without SNI the answer is `true` only when `host` is an IP literal:
/// clients connecting to an IP address send no SNI (RFC 6066 §3 forbids IP
/// literals in it), while a client that names a host and omits SNI could
/// otherwise reach a virtual host whose certificate it never checked. The
/// gateway answers 421 (Misdirected Request) when this returns `false`.
pub fn host_matches_sni(host: &str, sni: Option<&str>) -> bool {
    let host = strip_trailing_dot(host);
    match sni {
        None => is_ip_literal(host),
        Some(sni) => {
            let sni = strip_trailing_dot(sni);
            !sni.is_empty() && host.eq_ignore_ascii_case(sni)
        }
    }
}

fn strip_trailing_dot(s: &str) -> &str {
    s.strip_suffix('.').unwrap_or(s)
}

fn is_ip_literal(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().is_ok();
    }
    host.parse::<IpAddr>().is_ok()
}

/// The single `Host` header, parsed; `None` when absent.
fn single_host_header(headers: &HeaderMap) -> Result<Option<HostPort>, TargetError> {
    let mut values = headers.get_all(HOST).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(TargetError::DuplicateHost);
    }
    let value = value.to_str().map_err(|_| TargetError::BadHost {
        reason: "not visible ascii",
    })?;
    parse_authority(value).map(Some)
}

/// Parses `host[:port]` strictly. User info, zones, IPvFuture and
/// percent-encoding are refused.
fn parse_authority(s: &str) -> Result<HostPort, TargetError> {
    let bad = |reason| TargetError::BadHost { reason };
    if s.is_empty() {
        return Err(bad("empty"));
    }
    if s.contains('@') {
        return Err(bad("user info is not allowed"));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest
            .split_once(']')
            .ok_or(bad("unterminated ipv6 literal"))?;
        let addr: Ipv6Addr = inner.parse().map_err(|_| bad("invalid ipv6 literal"))?;
        let port = match after {
            "" => None,
            _ => Some(parse_port(
                after
                    .strip_prefix(':')
                    .ok_or(bad("junk after ipv6 literal"))?,
            )?),
        };
        (format!("[{addr}]"), port)
    } else {
        let (name, port) = match s.split_once(':') {
            Some((name, port)) => (name, Some(parse_port(port)?)),
            None => (s, None),
        };
        (parse_reg_name(name)?, port)
    };
    Ok(HostPort { host, port })
}

fn parse_port(p: &str) -> Result<u16, TargetError> {
    let bad = |reason| TargetError::BadHost { reason };
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("invalid port"));
    }
    p.parse().map_err(|_| bad("invalid port"))
}

/// Validates a DNS-style name and returns it lowercase without a trailing
/// dot.
fn parse_reg_name(name: &str) -> Result<String, TargetError> {
    let bad = |reason| TargetError::BadHost { reason };
    let name = strip_trailing_dot(name);
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > MAX_HOST_LEN {
        return Err(bad("name is too long"));
    }
    let mut last_label = "";
    for label in name.split('.') {
        if label.is_empty() {
            return Err(bad("empty label"));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(bad("label is too long"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad("invalid character in name"));
        }
        last_label = label;
    }
    // A numeric last label makes the name an IPv4 address to URL parsers
    // and resolvers; only the canonical dotted-decimal form is accepted.
    if looks_numeric(last_label) && name.parse::<Ipv4Addr>().is_err() {
        return Err(bad("ipv4 address not in dotted-decimal form"));
    }
    Ok(name.to_ascii_lowercase())
}

/// Whether a label would be read as a number (decimal, or hex with `0x`).
fn looks_numeric(label: &str) -> bool {
    let hex = label
        .strip_prefix("0x")
        .or_else(|| label.strip_prefix("0X"));
    match hex {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_hexdigit()),
        None => label.bytes().all(|b| b.is_ascii_digit()),
    }
}

#[cfg(test)]
mod tests;
