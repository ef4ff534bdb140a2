//! What one issuer requires of its tokens.

use crate::alg::Alg;
use crate::error::RulesError;

/// Default token size limit: real access tokens are 1-3 KiB; this leaves
/// room for group claims without letting garbage cost much.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Hard cap on any token, whatever the rules say: request headers are
/// bounded well below this by the HTTP layer anyway.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// Default clock skew tolerance for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;

/// Largest accepted leeway: more than a few minutes of skew means a broken
/// clock, and a large leeway silently extends every token's lifetime.
pub const MAX_LEEWAY_SECS: u64 = 600;

/// What one issuer requires of its tokens. Built by the configuration from
/// validated settings; the constructor and setters refuse values that
/// would weaken verification (empty issuer, no audience, no algorithm).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerRules {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Alg>,
    leeway_secs: u64,
    required_claims: Vec<String>,
    typ: Vec<String>,
    max_token_bytes: usize,
}

impl IssuerRules {
    /// Rules for `issuer` (the exact `iss`), accepting tokens whose `aud`
    /// contains one of `audiences`, signed with one of `algorithms`.
    /// Leeway defaults to [`DEFAULT_LEEWAY_SECS`], the size limit to
    /// [`DEFAULT_MAX_TOKEN_BYTES`], `typ` to absent, `JWT` or `at+jwt`.
    pub fn new(
        issuer: impl Into<String>,
        audiences: Vec<String>,
        algorithms: Vec<Alg>,
    ) -> Result<Self, RulesError> {
        let issuer = issuer.into();
        if issuer.is_empty() {
            return Err(RulesError::EmptyIssuer);
        }
        if audiences.is_empty() {
            return Err(RulesError::NoAudiences);
        }
        if audiences.iter().any(String::is_empty) {
            return Err(RulesError::EmptyAudience);
        }
        if algorithms.is_empty() {
            return Err(RulesError::NoAlgorithms);
        }
        Ok(Self {
            issuer,
            audiences,
            algorithms,
            leeway_secs: DEFAULT_LEEWAY_SECS,
            required_claims: Vec::new(),
            typ: Vec::new(),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        })
    }

    /// Clock skew tolerance applied to `exp`, `nbf` and `iat`, at most
    /// [`MAX_LEEWAY_SECS`].
    pub fn with_leeway_secs(mut self, secs: u64) -> Result<Self, RulesError> {
        if secs > MAX_LEEWAY_SECS {
            return Err(RulesError::LeewayTooLarge(secs));
        }
        self.leeway_secs = secs;
        Ok(self)
    }

    /// Top-level claims that must be present (`exp` always is).
    pub fn with_required_claims(mut self, names: Vec<String>) -> Result<Self, RulesError> {
        if names.iter().any(String::is_empty) {
            return Err(RulesError::EmptyClaimName);
        }
        self.required_claims = names;
        Ok(self)
    }

    /// Accepted `typ` header values, compared case-insensitively and with
    /// or without the `application/` prefix (RFC 7515 section 4.1.9). With
    /// a non-empty list, `typ` must be present. An empty list accepts an
    /// absent `typ`, `JWT` or `at+jwt`.
    pub fn with_typ(mut self, typ: Vec<String>) -> Result<Self, RulesError> {
        if typ.iter().any(|t| normalize_typ(t).is_empty()) {
            return Err(RulesError::EmptyTyp);
        }
        self.typ = typ;
        Ok(self)
    }

    /// Token size limit, between 1 and [`MAX_TOKEN_BYTES`].
    pub fn with_max_token_bytes(mut self, max: usize) -> Result<Self, RulesError> {
        if max == 0 || max > MAX_TOKEN_BYTES {
            return Err(RulesError::BadMaxTokenBytes(max));
        }
        self.max_token_bytes = max;
        Ok(self)
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    pub fn algorithms(&self) -> &[Alg] {
        &self.algorithms
    }

    pub fn leeway_secs(&self) -> u64 {
        self.leeway_secs
    }

    pub fn required_claims(&self) -> &[String] {
        &self.required_claims
    }

    pub fn typ(&self) -> &[String] {
        &self.typ
    }

    pub fn max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }

    /// Whether a token with this `typ` header (or none) is accepted.
    pub fn accepts_typ(&self, typ: Option<&str>) -> bool {
        match typ {
            None => self.typ.is_empty(),
            Some(t) => {
                let t = normalize_typ(t);
                if self.typ.is_empty() {
                    t.eq_ignore_ascii_case("jwt") || t.eq_ignore_ascii_case("at+jwt")
                } else {
                    self.typ
                        .iter()
                        .any(|accepted| normalize_typ(accepted).eq_ignore_ascii_case(t))
                }
            }
        }
    }
}

/// Drops a leading `application/` (any case), RFC 7515 section 4.1.9.
fn normalize_typ(t: &str) -> &str {
    const PREFIX: &str = "application/";
    match t.get(..PREFIX.len()) {
        Some(head) if head.eq_ignore_ascii_case(PREFIX) => t.get(PREFIX.len()..).unwrap_or(""),
        _ => t,
    }
}

#[cfg(test)]
mod tests;
