//! The identity taken from a verified bearer token.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value};

use crate::Thumbprint;

/// Longest claim path accepted in a policy, in bytes.
pub const MAX_CLAIM_PATH_LEN: usize = 256;
/// Deepest nesting a claim path may name; real IdPs nest two or three levels.
pub const MAX_CLAIM_PATH_DEPTH: usize = 8;

/// A bearer token whose signature, issuer, audience and lifetime were
/// verified. Only the gateway's token verifier builds one for live traffic
/// (tests and `policy eval` build them from JSON input).
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenIdentity {
    /// `iss`, exactly as configured for the issuer that verified it.
    pub issuer: String,
    /// `sub`, when the token has one.
    pub subject: Option<String>,
    /// The whole verified payload.
    pub claims: Map<String, Value>,
    /// The token is certificate-bound (RFC 8705 `cnf.x5t#S256`) and the
    /// request came over an mTLS connection with that certificate.
    pub bound_to: Option<Thumbprint>,
}

impl fmt::Debug for TokenIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Claims are not secret, but they can be large: name the identity only.
        f.debug_struct("TokenIdentity")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("claims", &self.claims.len())
            .field("bound_to", &self.bound_to)
            .finish()
    }
}

impl TokenIdentity {
    /// The claim at `path`, if present.
    pub fn claim(&self, path: &ClaimPath) -> Option<&Value> {
        path.lookup(&self.claims)
    }

    /// The values of a claim for matching: a string is one value, an array
    /// gives its scalar elements, a boolean or number its JSON text
    /// (`true`, `42`); objects and `null` give nothing.
    pub fn claim_values<'a>(&'a self, path: &ClaimPath) -> Vec<Cow<'a, str>> {
        match self.claim(path) {
            Some(Value::Array(items)) => items.iter().filter_map(scalar_text).collect(),
            Some(v) => scalar_text(v).into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// The granted scopes: the space-separated `scope` claim (RFC 9068),
    /// or the `scp` array some issuers use.
    pub fn scopes(&self) -> Vec<&str> {
        match self.claims.get("scope") {
            Some(Value::String(s)) => s.split_ascii_whitespace().collect(),
            _ => match self.claims.get("scp") {
                Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
                Some(Value::String(s)) => s.split_ascii_whitespace().collect(),
                _ => Vec::new(),
            },
        }
    }

    /// `amr`: the authentication methods (RFC 8176 values such as `pwd`,
    /// `otp`, `hwk`).
    pub fn amr(&self) -> Vec<&str> {
        match self.claims.get("amr") {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// `acr`, when a string.
    pub fn acr(&self) -> Option<&str> {
        self.claims.get("acr").and_then(Value::as_str)
    }

    /// `auth_time` in Unix seconds, when a number.
    pub fn auth_time(&self) -> Option<i64> {
        match self.claims.get("auth_time")? {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
            _ => None,
        }
    }
}

fn scalar_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s.as_str())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Number(n) => Some(Cow::Owned(number_text(n))),
        _ => None,
    }
}

/// A number as claims and policy values compare it: an integral value
/// as an integer (`1000.0` and `1e3` are `1000`), whichever way the
/// issuer or the policy's YAML wrote it, so the number format alone
/// never decides whether a condition holds.
pub fn number_text(n: &serde_json::Number) -> String {
    /// Integers up to 2^53 are exact in an f64.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() <= EXACT => {
            format!("{}", f as i64)
        }
        _ => n.to_string(),
    }
}

/// Where a claim lives in a token payload: a top-level name
/// (`groups`, `https://example.com/roles`) or a dotted path into nested
/// objects (`realm_access.roles`, as Keycloak writes roles).
///
/// A path whose whole text is a top-level member name is that member,
/// so namespaced claim names containing dots work as written; otherwise
/// the path is split at `.` and followed through nested objects. A token
/// where a dotted path finds both (a top-level `realm_access.roles` next
/// to `realm_access: {roles}`) is ambiguous ([`Self::is_ambiguous_in`]):
/// the path finds nothing there, and the policy denies such a token
/// outright, so whoever can add a top-level claim can neither stand in
/// for the nested one nor hide it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClaimPath {
    text: Box<str>,
    parts: Box<[Box<str>]>,
}

impl ClaimPath {
    /// Parses a claim path; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s.is_empty() {
            return Err("claim path is empty");
        }
        if s.len() > MAX_CLAIM_PATH_LEN {
            return Err("claim path is longer than 256 bytes");
        }
        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("claim path may not contain whitespace or control characters");
        }
        let parts: Vec<Box<str>> = s.split('.').map(Box::from).collect();
        if parts.len() > MAX_CLAIM_PATH_DEPTH {
            return Err("claim path is nested deeper than 8 levels");
        }
        if parts.iter().any(|p| p.is_empty()) {
            return Err("claim path has an empty segment (`..`, or a leading or trailing `.`)");
        }
        Ok(Self {
            text: s.into(),
            parts: parts.into_boxed_slice(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value at this path in `claims`: `None` when it is missing, or
    /// found both as a top-level name and through nested objects.
    pub fn lookup<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a Value> {
        let whole = claims.get(&*self.text);
        if self.parts.len() < 2 {
            return whole;
        }
        match (whole, self.nested(claims)) {
            (Some(_), Some(_)) => None,
            (whole, nested) => whole.or(nested),
        }
    }

    /// Whether this path finds a value both as a top-level name and
    /// through nested objects in `claims`.
    pub fn is_ambiguous_in(&self, claims: &Map<String, Value>) -> bool {
        self.parts.len() >= 2 && claims.contains_key(&*self.text) && self.nested(claims).is_some()
    }

    /// Whether the path has more than one segment (it could be ambiguous).
    pub fn is_dotted(&self) -> bool {
        self.parts.len() >= 2
    }

    fn nested<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a Value> {
        let mut parts = self.parts.iter();
        let first = parts.next()?;
        let mut cur = claims.get(&**first)?;
        for p in parts {
            cur = cur.as_object()?.get(&**p)?;
        }
        Some(cur)
    }
}

impl fmt::Display for ClaimPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests;
