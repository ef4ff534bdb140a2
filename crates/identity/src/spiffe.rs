//! SPIFFE IDs parsed strictly per the SPIFFE ID specification
//! (<https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md>).

use std::fmt;

/// Longest SPIFFE ID accepted, in bytes (SPIFFE-ID.md §2.3: URIs longer
/// than 2048 bytes must not be accepted).
pub const MAX_SPIFFE_ID_LEN: usize = 2048;
/// Longest trust domain name, in bytes (SPIFFE-ID.md §2.1: 255 bytes).
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

const SCHEME: &str = "spiffe://";

/// Why a string is not a SPIFFE ID. Messages carry no user input so they
/// can be logged without escaping concerns; callers add the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeIdError {
    #[error("spiffe id is empty")]
    Empty,
    #[error("spiffe id is longer than 2048 bytes")]
    TooLong,
    #[error("scheme must be `spiffe://` (lowercase)")]
    WrongScheme,
    #[error("trust domain is missing")]
    MissingTrustDomain,
    #[error("trust domain is longer than 255 bytes")]
    TrustDomainTooLong,
    #[error("trust domain may only hold lowercase letters, digits, `.`, `-` and `_`")]
    BadTrustDomainChar,
    #[error("spiffe id must not carry a port, user info, query or fragment")]
    ForbiddenUriPart,
    #[error("path segment is empty (duplicate or trailing `/`)")]
    EmptySegment,
    #[error("path segment `.` or `..` is not allowed")]
    DotSegment,
    #[error("path may only hold letters, digits, `.`, `-`, `_` and `/`")]
    BadPathChar,
}

/// A SPIFFE trust domain, e.g. `example.org`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// Parses a bare trust domain name (no scheme).
    pub fn parse(s: &str) -> Result<Self, SpiffeIdError> {
        validate_trust_domain(s)?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustDomain({})", self.0)
    }
}

/// A SPIFFE ID: `spiffe://<trust domain><path>`.
///
/// INVARIANT: `id` is a valid SPIFFE ID and `td_end` is the byte index where
/// the trust domain ends (the path, possibly empty, starts there).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    id: String,
    td_end: usize,
}

impl SpiffeId {
    /// Parses a SPIFFE ID strictly: lowercase `spiffe` scheme, a trust
    /// domain of `[a-z0-9._-]`, an optional path of non-empty segments of
    /// `[a-zA-Z0-9._-]` that are not `.` or `..`, no trailing slash, and
    /// no port, user info, query or fragment.
    pub fn parse(s: &str) -> Result<Self, SpiffeIdError> {
        if s.is_empty() {
            return Err(SpiffeIdError::Empty);
        }
        if s.len() > MAX_SPIFFE_ID_LEN {
            return Err(SpiffeIdError::TooLong);
        }
        let rest = s.strip_prefix(SCHEME).ok_or(SpiffeIdError::WrongScheme)?;
        let (td, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        validate_trust_domain(td)?;
        validate_path(path)?;
        Ok(Self {
            id: s.to_owned(),
            td_end: SCHEME.len() + td.len(),
        })
    }

    /// The whole ID as a string.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The trust domain name, e.g. `example.org`.
    pub fn trust_domain(&self) -> &str {
        self.id.get(SCHEME.len()..self.td_end).unwrap_or_default()
    }

    /// The path, e.g. `/ns/prod/sa/web`; empty for a trust-domain ID.
    pub fn path(&self) -> &str {
        self.id.get(self.td_end..).unwrap_or_default()
    }

    /// The path's segments, e.g. `["ns", "prod", "sa", "web"]`.
    pub fn segments(&self) -> impl Iterator<Item = &str> + '_ {
        self.path().split('/').skip(1)
    }

    /// Whether `prefix` is this ID or one of its ancestors, compared at
    /// segment boundaries: `spiffe://td/ns/prod` is a prefix of
    /// `spiffe://td/ns/prod/sa/web` but not of `spiffe://td/ns/production`.
    pub fn has_prefix(&self, prefix: &SpiffeId) -> bool {
        match self.id.strip_prefix(prefix.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({})", self.id)
    }
}

impl std::str::FromStr for SpiffeId {
    type Err = SpiffeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for SpiffeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.id)
    }
}

impl<'de> serde::Deserialize<'de> for SpiffeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn validate_trust_domain(td: &str) -> Result<(), SpiffeIdError> {
    if td.is_empty() {
        return Err(SpiffeIdError::MissingTrustDomain);
    }
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(SpiffeIdError::TrustDomainTooLong);
    }
    for b in td.bytes() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => {}
            b':' | b'@' | b'?' | b'#' => return Err(SpiffeIdError::ForbiddenUriPart),
            _ => return Err(SpiffeIdError::BadTrustDomainChar),
        }
    }
    Ok(())
}

fn validate_path(path: &str) -> Result<(), SpiffeIdError> {
    if path.is_empty() {
        return Ok(());
    }
    // `path` starts with '/', so the first split item is the empty prefix.
    for seg in path.split('/').skip(1) {
        if seg.is_empty() {
            return Err(SpiffeIdError::EmptySegment);
        }
        if seg == "." || seg == ".." {
            return Err(SpiffeIdError::DotSegment);
        }
        for b in seg.bytes() {
            match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => {}
                b'?' | b'#' => return Err(SpiffeIdError::ForbiddenUriPart),
                _ => return Err(SpiffeIdError::BadPathChar),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
