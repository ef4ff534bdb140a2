//! Compact JWS parsing, signature verification and JWT claim checks.

use serde_json::{Map, Value};

use portcullis_identity::Thumbprint;

use crate::alg::Alg;
use crate::b64;
use crate::error::TokenError;
use crate::json::{self, JsonFault};
use crate::keyset::{KeySet, KeySetVersion};
use crate::rules::{IssuerRules, MAX_TOKEN_BYTES};
use crate::text::echo;

/// Header members that carry or point to a key: never trusted, the key
/// must come from the issuer's own set (RFC 8725 section 3.10).
const EMBEDDED_KEY_HEADERS: [&str; 4] = ["jwk", "jku", "x5u", "x5c"];

/// The JOSE header members we use. Other members (`x5t`, `x5t#S256`, ...)
/// are ignored: they are hints, keys are chosen by `kid` only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoseHeader {
    pub alg: Alg,
    pub kid: Option<String>,
    pub typ: Option<String>,
    pub cty: Option<String>,
}

/// A compact JWS whose signature verified. The payload is signed but not
/// interpreted: no claim has been checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedJws {
    pub header: JoseHeader,
    pub payload: Vec<u8>,
    pub key_set_version: KeySetVersion,
}

/// A token that passed every check of [`verify`]. Holds claims, never the
/// token itself, so `Debug` output is safe to log at debug level.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedToken {
    pub alg: Alg,
    pub kid: Option<String>,
    pub typ: Option<String>,
    pub issuer: String,
    pub subject: Option<String>,
    pub audiences: Vec<String>,
    /// `exp`, rounded down to whole seconds.
    pub expires_at: i64,
    /// `nbf`, rounded up to whole seconds.
    pub not_before: Option<i64>,
    /// `iat`, rounded up to whole seconds.
    pub issued_at: Option<i64>,
    /// The whole payload.
    pub claims: Map<String, Value>,
    /// `cnf.x5t#S256`: SHA-256 of the client certificate the token is bound
    /// to (RFC 8705 section 3.1).
    pub cnf_x5t_s256: Option<[u8; 32]>,
    pub key_set_version: KeySetVersion,
}

impl VerifiedToken {
    /// The certificate thumbprint the token is bound to, comparable with
    /// the thumbprint of the mTLS client certificate.
    pub fn cnf_thumbprint(&self) -> Option<Thumbprint> {
        self.cnf_x5t_s256.map(Thumbprint)
    }

    /// A top-level claim.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }
}

/// The three parts of a compact JWS, with the header parsed.
struct Compact<'a> {
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
    header: JoseHeader,
}

/// Splits a compact JWS into exactly three parts; header and signature
/// must not be empty.
fn split(token: &str, max: usize) -> Result<(&str, &str, &str, &str), TokenError> {
    if token.len() > max {
        return Err(TokenError::TooLarge {
            len: token.len(),
            max,
        });
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("fewer than three parts"));
    };
    if parts.next().is_some() {
        return Err(TokenError::Malformed("more than three parts"));
    }
    if header.is_empty() {
        return Err(TokenError::Malformed("empty header"));
    }
    if signature.is_empty() {
        return Err(TokenError::Malformed("empty signature"));
    }
    let signing_input = token
        .get(..header.len() + 1 + payload.len())
        .ok_or(TokenError::Malformed("fewer than three parts"))?;
    Ok((signing_input, header, payload, signature))
}

fn json_error(fault: JsonFault, not_json: &'static str, not_object: &'static str) -> TokenError {
    match fault {
        JsonFault::Duplicate => TokenError::DuplicateMember,
        JsonFault::TooDeep => TokenError::NestingTooDeep,
        JsonFault::Syntax => TokenError::Malformed(not_json),
        JsonFault::NotObject => TokenError::Malformed(not_object),
    }
}

fn decode_header(part: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = b64::decode(part).ok_or(TokenError::Malformed("header is not base64url"))?;
    json::parse_object(&bytes)
        .map_err(|f| json_error(f, "header is not json", "header is not a json object"))
}

fn parse_payload(bytes: &[u8]) -> Result<Map<String, Value>, TokenError> {
    json::parse_object(bytes)
        .map_err(|f| json_error(f, "payload is not json", "payload is not a json object"))
}

fn optional_string(
    map: &Map<String, Value>,
    name: &str,
    wrong_type: &'static str,
) -> Result<Option<String>, TokenError> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(TokenError::Malformed(wrong_type)),
    }
}

/// Header checks, all before any key lookup: `alg` named and allowed, no
/// embedded keys, no `crit`, no `b64`, string `kid`/`typ`/`cty`.
fn parse_header(map: &Map<String, Value>, allowed: &[Alg]) -> Result<JoseHeader, TokenError> {
    let alg = match map.get("alg") {
        Some(Value::String(name)) => {
            Alg::from_name(name).ok_or_else(|| TokenError::UnsupportedAlg(echo(name)))?
        }
        Some(_) => return Err(TokenError::Malformed("header `alg` is not a string")),
        None => return Err(TokenError::Malformed("header has no `alg`")),
    };
    if !allowed.contains(&alg) {
        return Err(TokenError::AlgNotAllowed(alg));
    }
    if let Some(name) = EMBEDDED_KEY_HEADERS
        .into_iter()
        .find(|n| map.contains_key(*n))
    {
        return Err(TokenError::EmbeddedKey(name));
    }
    if map.contains_key("crit") {
        return Err(TokenError::CritUnsupported);
    }
    if map.contains_key("b64") {
        return Err(TokenError::UnencodedPayload);
    }
    Ok(JoseHeader {
        alg,
        kid: optional_string(map, "kid", "header `kid` is not a string")?,
        typ: optional_string(map, "typ", "header `typ` is not a string")?,
        cty: optional_string(map, "cty", "header `cty` is not a string")?,
    })
}

fn parse_compact<'a>(
    token: &'a str,
    max: usize,
    allowed: &[Alg],
) -> Result<Compact<'a>, TokenError> {
    let (signing_input, header, payload, signature) = split(token, max)?;
    let header = parse_header(&decode_header(header)?, allowed)?;
    Ok(Compact {
        signing_input,
        payload,
        signature,
        header,
    })
}

/// Decodes payload and signature, picks the key and checks the signature.
/// Returns the decoded (still uninterpreted) payload.
fn check_signature(c: &Compact<'_>, keys: &KeySet) -> Result<Vec<u8>, TokenError> {
    let payload =
        b64::decode(c.payload).ok_or(TokenError::Malformed("payload is not base64url"))?;
    let signature =
        b64::decode(c.signature).ok_or(TokenError::Malformed("signature is not base64url"))?;
    let key = keys.select(c.header.kid.as_deref(), c.header.alg)?;
    key.verify(c.header.alg, c.signing_input.as_bytes(), &signature)?;
    Ok(payload)
}

/// Untrusted look at a token to choose the issuer: the payload's `iss`.
///
/// Checks structure only (three strict base64url parts, header and payload
/// JSON objects without duplicate members, at most [`MAX_TOKEN_BYTES`]);
/// nothing is verified. Use the result only to pick the rules and key set
/// for [`verify`], which checks `iss` again.
pub fn peek_issuer(token: &str) -> Result<String, TokenError> {
    let (_, header, payload, signature) = split(token, MAX_TOKEN_BYTES)?;
    if payload.is_empty() {
        return Err(TokenError::Malformed("empty payload"));
    }
    decode_header(header)?;
    let payload = b64::decode(payload).ok_or(TokenError::Malformed("payload is not base64url"))?;
    b64::decode(signature).ok_or(TokenError::Malformed("signature is not base64url"))?;
    match parse_payload(&payload)?.remove("iss") {
        Some(Value::String(iss)) => Ok(iss),
        Some(_) => Err(TokenError::BadClaimType("iss".into())),
        None => Err(TokenError::MissingClaim("iss".into())),
    }
}

/// Verifies the signature of a compact JWS only: structure, header rules,
/// key selection from `keys` and the signature, with `alg` restricted to
/// `allowed`. The payload may be any bytes and no claim is checked; use
/// [`verify`] for JWTs. Tokens are bounded by [`MAX_TOKEN_BYTES`].
pub fn verify_signature(
    token: &str,
    keys: &KeySet,
    allowed: &[Alg],
) -> Result<VerifiedJws, TokenError> {
    let compact = parse_compact(token, MAX_TOKEN_BYTES, allowed)?;
    let payload = check_signature(&compact, keys)?;
    Ok(VerifiedJws {
        header: compact.header,
        payload,
        key_set_version: keys.version(),
    })
}

/// Fully verifies a JWT bearer token of the issuer described by `rules`,
/// with that issuer's `keys`, at `now` (Unix seconds).
///
/// Order: size and structure, header (`alg` allow-list, embedded keys,
/// `crit`, `b64`, `typ`), key selection, signature, and only then the
/// claims: `iss` exact, `aud` (string or array) contains an accepted
/// audience, `exp` required, `exp`/`nbf`/`iat` numeric and current within
/// the leeway (`exp` is exclusive, RFC 7519 section 4.1.4), `sub` a string,
/// `cnf` well formed, required claims present.
pub fn verify(
    token: &str,
    rules: &IssuerRules,
    keys: &KeySet,
    now: i64,
) -> Result<VerifiedToken, TokenError> {
    let max = rules.max_token_bytes().min(MAX_TOKEN_BYTES);
    let compact = parse_compact(token, max, rules.algorithms())?;
    if !rules.accepts_typ(compact.header.typ.as_deref()) {
        return Err(TokenError::BadTyp(compact.header.typ.as_deref().map(echo)));
    }
    if compact.payload.is_empty() {
        return Err(TokenError::Malformed("empty payload"));
    }
    let payload = check_signature(&compact, keys)?;
    // Everything below reads signed data.
    let claims = parse_payload(&payload)?;
    check_claims(claims, compact.header, rules, keys.version(), now)
}

fn check_claims(
    claims: Map<String, Value>,
    header: JoseHeader,
    rules: &IssuerRules,
    key_set_version: KeySetVersion,
    now: i64,
) -> Result<VerifiedToken, TokenError> {
    let issuer = match claims.get("iss") {
        Some(Value::String(iss)) if iss == rules.issuer() => iss.clone(),
        Some(Value::String(iss)) => return Err(TokenError::WrongIssuer(echo(iss))),
        Some(_) => return Err(TokenError::BadClaimType("iss".into())),
        None => return Err(TokenError::MissingClaim("iss".into())),
    };

    let audiences = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| TokenError::BadClaimType("aud".into()))?,
        Some(_) => return Err(TokenError::BadClaimType("aud".into())),
        None => return Err(TokenError::MissingClaim("aud".into())),
    };
    if !audiences.iter().any(|a| rules.audiences().contains(a)) {
        return Err(TokenError::WrongAudience);
    }

    let expires_at = match claims.get("exp") {
        Some(v) => {
            numeric_date(v, Rounding::Down).ok_or_else(|| TokenError::BadClaimType("exp".into()))?
        }
        None => return Err(TokenError::MissingClaim("exp".into())),
    };
    let not_before = optional_date(&claims, "nbf")?;
    let issued_at = optional_date(&claims, "iat")?;

    let leeway = i64::try_from(rules.leeway_secs()).unwrap_or(i64::MAX);
    if now.saturating_sub(leeway) >= expires_at {
        return Err(TokenError::Expired { expires_at, now });
    }
    if let Some(not_before) = not_before {
        if not_before > now.saturating_add(leeway) {
            return Err(TokenError::NotYetValid { not_before, now });
        }
    }
    if let Some(issued_at) = issued_at {
        if issued_at > now.saturating_add(leeway) {
            return Err(TokenError::IssuedInFuture { issued_at, now });
        }
    }

    let subject = match claims.get("sub") {
        None => None,
        Some(Value::String(sub)) => Some(sub.clone()),
        Some(_) => return Err(TokenError::BadClaimType("sub".into())),
    };

    let cnf_x5t_s256 = match claims.get("cnf") {
        None => None,
        Some(Value::Object(cnf)) => {
            // Every member must be a binding the gateway checks: a token
            // bound to a DPoP key (`jkt`) or another proof must not pass
            // as a bearer token.
            if let Some(other) = cnf.keys().find(|k| *k != "x5t#S256") {
                return Err(TokenError::UnsupportedCnf(other.chars().take(32).collect()));
            }
            match cnf.get("x5t#S256") {
                // An empty `cnf` binds to nothing known.
                None => return Err(TokenError::UnsupportedCnf(String::new())),
                Some(Value::String(t)) => Some(
                    b64::decode(t)
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                        .ok_or(TokenError::BadCnf(
                            "`x5t#S256` is not base64url of 32 bytes",
                        ))?,
                ),
                Some(_) => return Err(TokenError::BadCnf("`x5t#S256` is not a string")),
            }
        }
        Some(_) => return Err(TokenError::BadCnf("`cnf` is not an object")),
    };

    if let Some(missing) = rules
        .required_claims()
        .iter()
        .find(|name| !claims.contains_key(name.as_str()))
    {
        return Err(TokenError::MissingClaim(missing.clone()));
    }

    Ok(VerifiedToken {
        alg: header.alg,
        kid: header.kid,
        typ: header.typ,
        issuer,
        subject,
        audiences,
        expires_at,
        not_before,
        issued_at,
        claims,
        cnf_x5t_s256,
        key_set_version,
    })
}

#[derive(Clone, Copy)]
enum Rounding {
    /// For `exp`: a fractional expiry counts from the earlier second.
    Down,
    /// For `nbf` and `iat`: a fractional start counts from the later second.
    Up,
}

/// A NumericDate (RFC 7519 section 2): any JSON number, saturated to i64.
fn numeric_date(v: &Value, rounding: Rounding) -> Option<i64> {
    let Value::Number(n) = v else { return None };
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    if n.as_u64().is_some() {
        return Some(i64::MAX);
    }
    let f = n.as_f64()?;
    let rounded = match rounding {
        Rounding::Down => f.floor(),
        Rounding::Up => f.ceil(),
    };
    // `as` saturates at the i64 bounds.
    Some(rounded as i64)
}

fn optional_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => numeric_date(v, Rounding::Up)
            .map(Some)
            .ok_or_else(|| TokenError::BadClaimType(name.into())),
    }
}

#[cfg(test)]
mod tests;
