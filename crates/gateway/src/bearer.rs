//! Bearer token authentication: `Authorization: Bearer <JWT>` verified
//! against the configured issuers (RFC 6750, RFC 8725), certificate-bound
//! tokens checked against the connection's client certificate (RFC 8705).
//!
//! The issuer is chosen by the token's unverified `iss`, and only a
//! configured issuer's own key set is ever used; a token cannot make the
//! gateway fetch anything except, at most once per `unknown_kid_interval`,
//! the JWKS of an issuer it already trusts.

use std::collections::HashMap;
use std::sync::Arc;

use portcullis_config::{Bearer, Issuer, IssuerKeys};
use portcullis_identity::{CertIdentity, Thumbprint, TokenIdentity};
use portcullis_jwks::{FetchSettings, JwksSource, KeySource};
use portcullis_token::{IssuerRules, TokenError, VerifiedCache, VerifiedToken};

// A token longer than the `Authorization` value that carries it may be
// cannot arrive: the configuration's bound must not promise more.
const _: () =
    assert!(portcullis_config::HARD_MAX_TOKEN_BYTES <= portcullis_http_guard::MAX_HEADER_VALUE_LEN);

/// Why a token was refused: a stable code for metrics and audit, and the
/// operator detail. The client only ever sees a generic 401.
#[derive(Debug)]
pub(crate) struct TokenRefusal {
    pub(crate) code: &'static str,
    pub(crate) detail: String,
}

impl TokenRefusal {
    fn new(code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

impl From<TokenError> for TokenRefusal {
    fn from(e: TokenError) -> Self {
        Self::new(e.reason(), e.to_string())
    }
}

/// One trusted issuer: its rules and its live key source.
pub(crate) struct TrustedIssuer {
    config: Issuer,
    rules: IssuerRules,
    keys: Arc<KeySource>,
}

/// The bearer authenticator of one snapshot. Issuers whose configuration
/// did not change are carried over on reload with their keys and cache.
pub(crate) struct BearerAuth {
    issuers: HashMap<String, Arc<TrustedIssuer>>,
    cache: Arc<VerifiedCache>,
    cache_entries: usize,
    /// Largest token any issuer accepts: bigger ones are refused before
    /// their `iss` is even read.
    max_token_bytes: usize,
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuth")
            .field("issuers", &self.issuers.keys().collect::<Vec<_>>())
            .field("cache_entries", &self.cache_entries)
            .finish()
    }
}

/// The issuer's status for `/readyz`.
#[derive(Debug, serde::Serialize)]
pub(crate) struct IssuerStatus {
    pub(crate) issuer: String,
    pub(crate) keys: usize,
    pub(crate) usable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) unavailable: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) last_error: Option<String>,
    pub(crate) fetches_ok: u64,
    pub(crate) fetches_failed: u64,
    /// Refetches caused by tokens with an unknown `kid`, and those the
    /// rate limit turned away.
    pub(crate) refetches_unknown_kid: u64,
    pub(crate) refetches_rate_limited: u64,
}

impl BearerAuth {
    /// Builds the authenticator for `cfg`, starting key sources for new
    /// issuers (the first fetch is waited for, bounded by its timeout; a
    /// failed one leaves the issuer without keys, so its tokens are
    /// refused until a retry succeeds). Must run on a blocking thread of
    /// the gateway's runtime.
    pub(crate) fn build(
        cfg: &Bearer,
        previous: Option<&BearerAuth>,
        rt: &tokio::runtime::Handle,
    ) -> Result<BearerAuth, String> {
        let mut issuers = HashMap::with_capacity(cfg.issuers.len());
        let mut max_token_bytes = 0;
        // Whether every issuer is the previous one, unchanged.
        let mut all_unchanged = previous.is_some_and(|p| p.issuers.len() == cfg.issuers.len());
        for iss in &cfg.issuers {
            max_token_bytes = max_token_bytes.max(iss.max_token_bytes);
            if let Some(prev) = previous.and_then(|p| p.issuers.get(&iss.issuer)) {
                if prev.config == *iss {
                    issuers.insert(iss.issuer.clone(), Arc::clone(prev));
                    continue;
                }
            }
            all_unchanged = false;
            let rules = rules(iss).map_err(|e| format!("issuer `{}`: {e}", iss.issuer))?;
            let source = match &iss.keys {
                IssuerKeys::Discovery => JwksSource::Discovery {
                    issuer: iss.issuer.clone(),
                },
                IssuerKeys::JwksUri(u) => JwksSource::Uri(u.clone()),
                IssuerKeys::JwksFile(p) => JwksSource::File(p.clone()),
            };
            let settings = FetchSettings {
                roots: iss.ca.clone(),
                min_refresh: iss.min_refresh,
                max_refresh: iss.max_refresh,
                default_refresh: iss.default_refresh,
                unknown_kid_interval: iss.unknown_kid_interval,
                max_staleness: iss.max_staleness,
                fetch_timeout: iss.fetch_timeout,
                max_body_bytes: iss.max_jwks_bytes,
            };
            let keys = rt
                .block_on(KeySource::start(iss.issuer.clone(), source, settings))
                .map_err(|e| format!("issuer `{}`: {e}", iss.issuer))?;
            if let Err(e) = keys.current() {
                tracing::warn!(issuer = %iss.issuer, error = %e, "issuer keys not available yet; its tokens are refused until they are");
            }
            issuers.insert(
                iss.issuer.clone(),
                Arc::new(TrustedIssuer {
                    config: iss.clone(),
                    rules,
                    keys,
                }),
            );
        }
        // The cache keys entries by issuer and key-set version, so it
        // survives a reload that leaves every issuer as it was. An entry
        // records a verification under its issuer's rules (audiences,
        // algorithms, `typ`, required claims, leeway): when any issuer
        // changed, the same keys no longer mean the same verdict, so the
        // reload starts a new cache. So does a new size.
        let cache = match previous {
            Some(p) if all_unchanged && p.cache_entries == cfg.cache_entries => {
                Arc::clone(&p.cache)
            }
            _ => Arc::new(VerifiedCache::new(cfg.cache_entries)),
        };
        Ok(BearerAuth {
            issuers,
            cache,
            cache_entries: cfg.cache_entries,
            max_token_bytes,
        })
    }

    /// Verifies a bearer token. `cert` is the connection's verified client
    /// certificate, if any. `now` is Unix seconds. Also says whether the
    /// token came from the cache (no signature check).
    pub(crate) async fn authenticate(
        &self,
        token: &str,
        cert: Option<&CertIdentity>,
        now: i64,
    ) -> Result<(Arc<TokenIdentity>, Arc<VerifiedToken>, bool), TokenRefusal> {
        if token.len() > self.max_token_bytes {
            return Err(TokenRefusal::new(
                "too_large",
                format!(
                    "token of {} bytes exceeds {}",
                    token.len(),
                    self.max_token_bytes
                ),
            ));
        }
        // With one issuer the unverified `iss` need not be parsed first:
        // `verify` checks it against that issuer (and a foreign token is
        // still never allowed to trigger a key fetch, see below).
        let single = self.issuers.len() == 1;
        let issuer = match self.issuers.values().next() {
            Some(only) if single => only,
            _ => {
                let iss = portcullis_token::peek_issuer(token)?;
                self.issuers.get(&iss).ok_or_else(|| unknown_issuer(&iss))?
            }
        };
        let iss = issuer.config.issuer.as_str();
        let keys = issuer
            .keys
            .current()
            .map_err(|e| TokenRefusal::new("keys_unavailable", e.to_string()))?;
        let mut cached = true;
        let verified = match self.cache.get(token, iss, keys.version(), now) {
            Some(v) => v,
            None => {
                cached = false;
                let v = match portcullis_token::verify(token, &issuer.rules, &keys, now) {
                    Ok(v) => v,
                    Err(TokenError::UnknownKid(_)) => {
                        // Only a token that claims to be from this issuer
                        // may ask for its keys again.
                        if single {
                            let claimed = portcullis_token::peek_issuer(token)?;
                            if claimed != iss {
                                return Err(unknown_issuer(&claimed));
                            }
                        }
                        // A key the issuer may have just published: one
                        // refetch per interval, shared by all callers.
                        match issuer.keys.refresh_for_unknown_kid(keys.version()).await {
                            Some(fresh) => {
                                portcullis_token::verify(token, &issuer.rules, &fresh, now)?
                            }
                            None => {
                                return Err(TokenRefusal::new(
                                    "unknown_kid",
                                    "the token's key id is not in the issuer's key set",
                                ))
                            }
                        }
                    }
                    Err(TokenError::WrongIssuer(_)) if single => {
                        let claimed = portcullis_token::peek_issuer(token)?;
                        return Err(unknown_issuer(&claimed));
                    }
                    Err(e) => return Err(e.into()),
                };
                let v = Arc::new(v);
                self.cache
                    .insert(token, Arc::clone(&v), issuer.rules.leeway_secs());
                v
            }
        };
        Ok((identity(&verified, cert)?, verified, cached))
    }

    /// Per-issuer status for `/readyz`.
    pub(crate) fn status(&self) -> Vec<IssuerStatus> {
        let mut out: Vec<IssuerStatus> = self
            .issuers
            .values()
            .map(|i| {
                let st = i.keys.status();
                let current = i.keys.current();
                IssuerStatus {
                    issuer: i.config.issuer.clone(),
                    keys: st.key_count,
                    usable: current.is_ok(),
                    unavailable: current.err().map(|e| e.to_string()),
                    last_error: st.last_error,
                    fetches_ok: st.fetches_ok,
                    fetches_failed: st.fetches_failed,
                    refetches_unknown_kid: st.refetches_unknown_kid,
                    refetches_rate_limited: st.refetches_rate_limited,
                }
            })
            .collect();
        out.sort_by(|a, b| a.issuer.cmp(&b.issuer));
        out
    }
}

fn unknown_issuer(iss: &str) -> TokenRefusal {
    TokenRefusal::new(
        "unknown_issuer",
        format!("issuer {} is not configured", portcullis_token_echo(iss)),
    )
}

/// A value from an unverified token, safe for a log line.
fn portcullis_token_echo(s: &str) -> String {
    let mut out = String::from("`");
    for c in s.chars().take(portcullis_token::MAX_ECHO_CHARS) {
        out.extend(c.escape_default());
    }
    out.push('`');
    out
}

fn rules(iss: &Issuer) -> Result<IssuerRules, portcullis_token::RulesError> {
    IssuerRules::new(
        iss.issuer.clone(),
        iss.audiences.clone(),
        iss.algorithms.clone(),
    )?
    .with_leeway_secs(iss.leeway.as_secs())?
    .with_required_claims(iss.required_claims.clone())?
    .with_typ(iss.typ.clone())?
    .with_max_token_bytes(iss.max_token_bytes)
}

/// The identity of a verified token, after the RFC 8705 binding check: a
/// token that names a certificate is only good over a connection
/// presenting exactly that certificate.
fn identity(
    v: &VerifiedToken,
    cert: Option<&CertIdentity>,
) -> Result<Arc<TokenIdentity>, TokenRefusal> {
    let bound_to = match v.cnf_x5t_s256.map(Thumbprint) {
        None => None,
        Some(want) => match cert {
            None => {
                return Err(TokenRefusal::new(
                    "cnf_without_certificate",
                    "the token is bound to a client certificate (cnf.x5t#S256) but the connection presented none",
                ))
            }
            Some(c) if c.thumbprint == want => Some(want),
            Some(c) => {
                return Err(TokenRefusal::new(
                    "cnf_mismatch",
                    format!(
                        "the token is bound to certificate {} but the connection presented {}",
                        want.to_hex(),
                        c.thumbprint.to_hex()
                    ),
                ))
            }
        },
    };
    Ok(Arc::new(TokenIdentity {
        issuer: v.issuer.clone(),
        subject: v.subject.clone(),
        claims: v.claims.clone(),
        bound_to,
    }))
}

/// The token of an `Authorization` header, if it uses the Bearer scheme
/// (case-insensitive, RFC 9110 section 11.1). `Err` for a Bearer header
/// that is not the scheme, one or more spaces and a single token68: a
/// value that starts like a bearer token but is spelled otherwise (a tab
/// or a non-breaking space after the scheme, a byte that is not ASCII) is
/// refused rather than passed on unverified, since upstreams that split
/// on any whitespace or drop such bytes would read a token in it.
pub(crate) fn bearer_token(value: &http::HeaderValue) -> Option<Result<&str, &'static str>> {
    const SCHEME: &[u8] = b"bearer";
    let bytes = value.as_bytes();
    let starts_bearer = bytes
        .get(..SCHEME.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(SCHEME));
    if !starts_bearer {
        return None;
    }
    let Ok(s) = value.to_str() else {
        return Some(Err("bearer credentials hold bytes that are not ascii"));
    };
    let rest = s.get(SCHEME.len()..).unwrap_or("");
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Some(Err("bearer scheme is not followed by a space"));
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() {
        return Some(Err("empty bearer token"));
    }
    // token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let ok = token
        .trim_end_matches('=')
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'));
    if !ok {
        return Some(Err("bearer credentials are not a single token"));
    }
    Some(Ok(token))
}

#[cfg(test)]
mod tests;
