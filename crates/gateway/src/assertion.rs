//! The identity assertion the gateway adds to every forwarded request: a
//! short-lived ES256 JWT that upstreams verify against the gateway's JWKS
//! (`/.well-known/portcullis/jwks.json`).

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use portcullis_token::VerifiedToken;
use zeroize::Zeroizing;

/// The header the assertion travels in.
pub const IDENTITY_HEADER: &str = "x-portcullis-identity";
/// Where the gateway serves its public keys.
pub const JWKS_PATH: &str = "/.well-known/portcullis/jwks.json";

#[derive(Debug, thiserror::Error)]
pub(crate) enum AssertionError {
    #[error("cannot generate a signing key")]
    Generate,
    #[error("signing key is not a PKCS#8 P-256 ECDSA key")]
    BadKey,
    #[error("cannot sign the identity assertion")]
    Sign,
}

/// What the assertion says about a request.
#[derive(Debug, serde::Serialize)]
pub(crate) struct AssertionClaims<'a> {
    pub(crate) sub: &'a str,
    /// The bearer token's issuer and subject, when the request had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) token_iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) token_sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) spiffe_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cert_thumbprint: Option<&'a str>,
    pub(crate) roles: &'a [String],
    /// The request the assertion was signed for; absent on an assertion
    /// reused across a connection's requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rid: Option<&'a str>,
    pub(crate) route: &'a str,
}

#[derive(serde::Serialize)]
struct FullClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: &'a str,
    #[serde(flatten)]
    c: &'a AssertionClaims<'a>,
}

/// Signs identity assertions. The private key never leaves this struct;
/// its `Debug` shows only the key id.
pub(crate) struct AssertionSigner {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    kid: String,
    issuer: String,
    ttl: Duration,
    /// base64url of the constant JWS header.
    header_b64: String,
    jwks: String,
}

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl AssertionSigner {
    /// Uses the PKCS#8 key given, or generates a fresh one (then every
    /// restart rotates the key; upstreams pick the new key from the JWKS).
    pub(crate) fn new(
        pkcs8: Option<&[u8]>,
        issuer: &str,
        ttl: Duration,
    ) -> Result<Self, AssertionError> {
        let rng = SystemRandom::new();
        let key = match pkcs8 {
            Some(der) => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                .map_err(|_| AssertionError::BadKey)?,
            None => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| AssertionError::Generate)?;
                let der = Zeroizing::new(doc.as_ref().to_vec());
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                    .map_err(|_| AssertionError::BadKey)?
            }
        };
        // Uncompressed point: 0x04 || X (32) || Y (32).
        let public = key.public_key().as_ref();
        let (x, y) = match (public.get(1..33), public.get(33..65)) {
            (Some(x), Some(y)) if public.len() == 65 => (B64.encode(x), B64.encode(y)),
            _ => return Err(AssertionError::BadKey),
        };
        // RFC 7638 JWK thumbprint as key id.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = B64.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            canonical.as_bytes(),
        ));
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": kid});
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"}]});
        Ok(Self {
            key,
            rng,
            header_b64: B64.encode(header.to_string()),
            jwks: jwks.to_string(),
            kid,
            issuer: issuer.to_owned(),
            ttl,
        })
    }

    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS document holding the public key.
    pub(crate) fn jwks_json(&self) -> &str {
        &self.jwks
    }

    /// How long an assertion is valid.
    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A compact JWS, audience = the route name; `jti`: a unique id (the
    /// request id, or a fresh one for a connection's assertion).
    pub(crate) fn sign(
        &self,
        claims: &AssertionClaims<'_>,
        jti: &str,
        now_unix: i64,
    ) -> Result<String, AssertionError> {
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(60);
        let full = FullClaims {
            iss: &self.issuer,
            aud: claims.route,
            iat: now_unix,
            nbf: now_unix,
            exp: now_unix.saturating_add(ttl),
            jti,
            c: claims,
        };
        let payload = serde_json::to_vec(&full).map_err(|_| AssertionError::Sign)?;
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 100);
        token.push_str(&self.header_b64);
        token.push('.');
        B64.encode_string(&payload, &mut token);
        let sig = self
            .key
            .sign(&self.rng, token.as_bytes())
            .map_err(|_| AssertionError::Sign)?;
        token.push('.');
        B64.encode_string(sig.as_ref(), &mut token);
        Ok(token)
    }
}

/// A connection's reusable assertion (`identity_assertion.scope:
/// connection`): one per route and set of roles, for requests whose
/// identity is the connection's own, or the connection's with the same
/// verified bearer token.
#[derive(Default)]
pub(crate) struct ConnAssertion(std::sync::Mutex<Option<Cached>>);

struct Cached {
    route: String,
    roles: Vec<String>,
    /// The verified token the assertion speaks for: the very entry of the
    /// verified-token cache, compared by address. Held here, so the
    /// address cannot be reused by another token while cached.
    token: Option<Arc<VerifiedToken>>,
    signed_at: i64,
    /// Reused until then: half the lifetime, so an upstream never gets an
    /// assertion with less than half of it left, and never past the
    /// token's `exp`.
    refresh_at: i64,
    value: http::HeaderValue,
}

impl ConnAssertion {
    /// The assertion for `route`, `roles` and `token`, when one was signed
    /// on this connection and is still fresh at `now_unix`.
    pub(crate) fn get<'r>(
        &self,
        route: &str,
        roles: impl Iterator<Item = &'r str>,
        token: Option<&Arc<VerifiedToken>>,
        now_unix: i64,
    ) -> Option<http::HeaderValue> {
        let guard = self.0.lock().ok()?;
        let c = guard.as_ref()?;
        let fresh = c.signed_at <= now_unix && now_unix < c.refresh_at;
        let same_token = match (&c.token, token) {
            (None, None) => true,
            (Some(held), Some(given)) => Arc::ptr_eq(held, given),
            _ => false,
        };
        (fresh && same_token && c.route == route && c.roles.iter().map(String::as_str).eq(roles))
            .then(|| c.value.clone())
    }

    /// Keeps `value`, signed at `now_unix` with lifetime `ttl` for `token`
    /// (if any), replacing what the connection had.
    pub(crate) fn put(
        &self,
        route: &str,
        roles: Vec<String>,
        token: Option<Arc<VerifiedToken>>,
        now_unix: i64,
        ttl: Duration,
        value: http::HeaderValue,
    ) {
        let half = i64::try_from(ttl.as_secs() / 2).unwrap_or(0);
        let mut refresh_at = now_unix.saturating_add(half);
        if let Some(t) = &token {
            refresh_at = refresh_at.min(t.expires_at);
        }
        if let Ok(mut guard) = self.0.lock() {
            *guard = Some(Cached {
                route: route.to_owned(),
                roles,
                token,
                signed_at: now_unix,
                refresh_at,
                value,
            });
        }
    }
}

#[cfg(test)]
mod tests;
