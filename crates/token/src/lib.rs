//! JWT bearer token verification for Portcullis (RFC 7515, 7519, 8725).
//!
//! The gateway accepts `Authorization: Bearer <JWT>` from trusted issuers.
//! This crate decides whether such a token is genuine and current:
//!
//! - [`KeySet::from_jwks_json`] parses an issuer's JWKS once, skips (and
//!   reports) keys that cannot verify anything for us, refuses sets that
//!   carry private key material, and pre-parses every usable key so that a
//!   verification costs about one raw signature check.
//! - [`peek_issuer`] reads the unverified `iss` to pick the issuer's rules.
//! - [`verify`] checks a compact JWS against one issuer's [`IssuerRules`]
//!   and [`KeySet`]: strict base64url and JSON (duplicate members refused
//!   at every level, bounded size and depth), an asymmetric algorithm from
//!   the allow-list, no embedded or remote keys (`jwk`, `jku`, `x5u`,
//!   `x5c`), no `crit`, the key chosen by `kid` from the issuer's own set,
//!   the signature, and only then the claims (`iss`, `aud`, `exp`, `nbf`,
//!   `iat`, `sub`, `cnf`, required claims).
//! - [`VerifiedCache`] lets a repeated token skip the signature check while
//!   still honouring `exp` and `nbf`.
//!
//! A refusal is a [`TokenError`] whose [`TokenError::reason`] is a stable
//! snake_case code for logs, audit and metrics; clients only ever see a
//! generic 401. Errors never contain the token or signature bytes, and
//! values copied from an unverified token are truncated and escaped.
//!
//! What this crate does not do: no I/O (fetching and refreshing JWKS is the
//! caller's job), no async, no clock (the caller passes `now`), no
//! symmetric (`HS*`) or `none` algorithms, no JWE, no JSON serialization
//! of JWS, no RFC 7797 unencoded payloads, no P-521. It does not decide
//! what a verified token is allowed to do.
//!
//! We do not use the `jsonwebtoken` crate: we need pre-parsed keys, strict
//! header parsing (duplicate members, `crit`) and checks it lacks.

mod alg;
mod b64;
mod cache;
mod error;
mod json;
mod keyset;
mod rules;
mod text;
mod verify;

#[cfg(test)]
mod test_util;

pub use alg::{Alg, UnknownAlg};
pub use cache::{VerifiedCache, MAX_CACHE_SHARDS};
pub use error::{JwkError, JwksError, RulesError, SkippedKey, TokenError};
pub use json::MAX_JSON_DEPTH;
pub use keyset::{
    KeySet, KeySetVersion, VerifyingKey, MAX_JWKS_BYTES, MAX_KEYS, MAX_RSA_EXPONENT_BYTES,
    MAX_RSA_MODULUS_BITS, MIN_RSA_MODULUS_BITS,
};
pub use rules::{
    IssuerRules, DEFAULT_LEEWAY_SECS, DEFAULT_MAX_TOKEN_BYTES, MAX_LEEWAY_SECS, MAX_TOKEN_BYTES,
};
pub use text::MAX_ECHO_CHARS;
pub use verify::{peek_issuer, verify, verify_signature, JoseHeader, VerifiedJws, VerifiedToken};
