//! The OAuth 2.1 / OpenID Connect pieces of `portcullis login`: discovery,
//! PKCE (S256 only), state and nonce, the authorization URL, callback
//! validation, token requests (code, device code, refresh) and the checks
//! on the ID token's claims.
//!
//! The ID token's signature is not verified: it comes straight from the
//! token endpoint over TLS (OpenID Connect Core 3.1.3.7), and the CLI
//! only reads `iss`, `aud`, `nonce` and `sub` from it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::error::printable;
use super::https::{HttpsClient, HttpsUrl, Response};
use super::LoginError;
use crate::command::token_store::Secret;

/// Random bytes in a PKCE code verifier: 32 bytes give the RFC 7636
/// minimum of 43 characters and 256 bits of entropy.
pub(crate) const VERIFIER_BYTES: usize = 32;
/// Random bytes in `state` and `nonce` (256 bits; at least 128 needed).
pub(crate) const STATE_BYTES: usize = 32;
/// The device grant's polling interval when the server names none (RFC 8628 3.5).
pub(crate) const DEFAULT_POLL_INTERVAL_SECS: u64 = 5;
/// Longest polling interval honoured, `slow_down` included.
pub(crate) const MAX_POLL_INTERVAL_SECS: u64 = 60;
/// The OAuth grant type of the device flow.
pub(crate) const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

// ---------------------------------------------------------- randomness

/// `n` random bytes from aws-lc-rs's `SystemRandom` (the OS-seeded
/// generator of the crypto provider), base64url without padding.
pub(crate) fn random_b64(n: usize) -> Result<Zeroizing<String>, LoginError> {
    let mut bytes = Zeroizing::new(vec![0u8; n]);
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| LoginError::Random)?;
    Ok(Zeroizing::new(URL_SAFE_NO_PAD.encode(&*bytes)))
}

/// A PKCE pair (RFC 7636): the secret verifier and its S256 challenge.
pub(crate) struct Pkce {
    pub(crate) verifier: Secret,
    pub(crate) challenge: String,
}

impl Pkce {
    pub(crate) fn new() -> Result<Self, LoginError> {
        let verifier = random_b64(VERIFIER_BYTES)?;
        Ok(Self::from_verifier(Secret::new(verifier.to_string())))
    }

    pub(crate) fn from_verifier(verifier: Secret) -> Self {
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.expose().as_bytes());
        Self {
            challenge: URL_SAFE_NO_PAD.encode(digest.as_ref()),
            verifier,
        }
    }
}

/// Compares secrets in constant time (for equal lengths).
pub(crate) fn ct_eq(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

// ------------------------------------------------------- url encoding

pub(crate) use portcullis_http_guard::{form_component as encode, form_decode as decode};

/// An `application/x-www-form-urlencoded` body or query, zeroized on drop
/// (written without reallocating, so no unzeroized copy is left).
pub(crate) fn form(pairs: &[(&str, &str)]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::new());
    portcullis_http_guard::form_encode_into(&mut out, pairs);
    out
}

// ----------------------------------------------------------- discovery

/// What the CLI uses from the provider's discovery document.
#[derive(Debug, Clone)]
pub(crate) struct Metadata {
    pub(crate) issuer: String,
    pub(crate) authorization_endpoint: HttpsUrl,
    pub(crate) token_endpoint: HttpsUrl,
    pub(crate) device_authorization_endpoint: Option<HttpsUrl>,
    /// RFC 9207: the authorization response carries `iss`.
    pub(crate) iss_parameter_supported: bool,
}

#[derive(Deserialize)]
struct RawMetadata {
    issuer: String,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    device_authorization_endpoint: Option<String>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
    code_challenge_methods_supported: Option<Vec<String>>,
}

/// The issuer from `--issuer`: an https URL without query or fragment.
pub(crate) fn validate_issuer(issuer: &str) -> Result<HttpsUrl, LoginError> {
    let url = HttpsUrl::parse(issuer)?;
    if issuer.contains('?') {
        return Err(LoginError::Url {
            url: printable(issuer),
            reason: "an issuer has no query",
        });
    }
    Ok(url)
}

/// The discovery URL of an issuer (OpenID Connect Discovery 4).
pub(crate) fn discovery_url(issuer: &str) -> Result<HttpsUrl, LoginError> {
    HttpsUrl::parse(&format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ))
}

/// Fetches and checks the discovery document of `issuer`.
pub(crate) async fn discover(client: &HttpsClient, issuer: &str) -> Result<Metadata, LoginError> {
    let url = discovery_url(issuer)?;
    let resp = client.get(&url).await?;
    if resp.status != 200 {
        return Err(LoginError::Status {
            url: url.as_str().to_owned(),
            status: resp.status,
        });
    }
    let raw: RawMetadata = serde_json::from_slice(&resp.body).map_err(|e| LoginError::Json {
        url: url.as_str().to_owned(),
        detail: e.to_string(),
    })?;
    check_metadata(issuer, raw)
}

fn check_metadata(issuer: &str, raw: RawMetadata) -> Result<Metadata, LoginError> {
    if raw.issuer != issuer {
        return Err(LoginError::IssuerMismatch {
            expected: printable(issuer),
            found: printable(&raw.issuer),
        });
    }
    if let Some(methods) = &raw.code_challenge_methods_supported {
        if !methods.iter().any(|m| m == "S256") {
            return Err(LoginError::NoS256);
        }
    }
    let endpoint = |field: &'static str, value: Option<String>| {
        value
            .ok_or(LoginError::MissingEndpoint { field })
            .and_then(|v| HttpsUrl::parse(&v))
    };
    Ok(Metadata {
        issuer: raw.issuer,
        authorization_endpoint: endpoint("authorization_endpoint", raw.authorization_endpoint)?,
        token_endpoint: endpoint("token_endpoint", raw.token_endpoint)?,
        device_authorization_endpoint: raw
            .device_authorization_endpoint
            .map(|v| HttpsUrl::parse(&v))
            .transpose()?,
        iss_parameter_supported: raw.authorization_response_iss_parameter_supported,
    })
}

#[cfg(test)]
pub(crate) fn check_metadata_json(issuer: &str, json: &str) -> Result<Metadata, LoginError> {
    let raw: RawMetadata = serde_json::from_str(json).map_err(|e| LoginError::Json {
        url: String::new(),
        detail: e.to_string(),
    })?;
    check_metadata(issuer, raw)
}

// --------------------------------------------------- authorization URL

/// The parameters of one authorization request.
pub(crate) struct AuthRequest<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) redirect_uri: &'a str,
    pub(crate) scope: &'a str,
    pub(crate) state: &'a str,
    /// Sent when the scope has `openid`.
    pub(crate) nonce: Option<&'a str>,
    pub(crate) code_challenge: &'a str,
    pub(crate) resource: Option<&'a str>,
}

/// The authorization URL: always `code_challenge_method=S256`.
pub(crate) fn authorization_url(endpoint: &HttpsUrl, r: &AuthRequest<'_>) -> String {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", r.client_id),
        ("redirect_uri", r.redirect_uri),
        ("scope", r.scope),
        ("state", r.state),
        ("code_challenge", r.code_challenge),
        ("code_challenge_method", "S256"),
    ];
    if let Some(nonce) = r.nonce {
        pairs.push(("nonce", nonce));
    }
    if let Some(resource) = r.resource {
        pairs.push(("resource", resource));
    }
    let base = endpoint.as_str();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{}", form(&pairs).as_str())
}

// ------------------------------------------------------------ callback

/// What a callback must carry to be accepted.
pub(crate) struct CallbackExpect {
    pub(crate) state: Secret,
    pub(crate) issuer: String,
    /// The discovery document promised `iss` (RFC 9207).
    pub(crate) iss_required: bool,
}

/// The authorization response parameters the CLI reads.
#[derive(Default)]
struct CallbackParams {
    code: Option<Secret>,
    state: Option<Secret>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Checks a callback's query string, in this order: `state`, `iss`,
/// `error`, `code`. Returns the authorization code.
/// Whether the callback's query has exactly one `state`, and it is the
/// login's (constant time). Nothing else is looked at.
pub(crate) fn callback_state_matches(query: &str, expect: &CallbackExpect) -> bool {
    let mut found = None;
    for pair in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if decode(k).ok().as_deref() != Some("state") {
            continue;
        }
        let Ok(value) = decode(v).map(Zeroizing::new) else {
            return false;
        };
        if found.replace(value).is_some() {
            return false;
        }
    }
    found.is_some_and(|v| ct_eq(v.as_str(), expect.state.expose()))
}

pub(crate) fn check_callback(query: &str, expect: &CallbackExpect) -> Result<Secret, LoginError> {
    let mut p = CallbackParams::default();
    for pair in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(k).map_err(LoginError::CallbackMalformed)?;
        let value = Zeroizing::new(decode(v).map_err(LoginError::CallbackMalformed)?);
        // RFC 6749 3.1: parameters must not be repeated.
        let dup = match key.as_str() {
            "code" => p.code.replace(Secret::new(value.to_string())).is_some(),
            "state" => p.state.replace(Secret::new(value.to_string())).is_some(),
            "iss" => p.iss.replace(value.to_string()).is_some(),
            "error" => p.error.replace(value.to_string()).is_some(),
            "error_description" => p.error_description.replace(value.to_string()).is_some(),
            _ => false,
        };
        if dup {
            return Err(LoginError::CallbackMalformed("a parameter is repeated"));
        }
    }
    match &p.state {
        Some(s) if ct_eq(s.expose(), expect.state.expose()) => {}
        _ => return Err(LoginError::StateMismatch),
    }
    match &p.iss {
        Some(iss) if iss != &expect.issuer => {
            return Err(LoginError::CallbackIssuerMismatch {
                expected: printable(&expect.issuer),
                found: printable(iss),
            })
        }
        None if expect.iss_required => return Err(LoginError::CallbackIssuerMissing),
        _ => {}
    }
    if let Some(error) = p.error {
        return Err(LoginError::Authorization {
            error: printable(&error),
            description: p.error_description.as_deref().map(printable),
        });
    }
    match p.code {
        Some(code) if !code.expose().is_empty() => Ok(code),
        _ => Err(LoginError::CallbackMalformed("no `code`")),
    }
}

// -------------------------------------------------------------- tokens

/// A successful token response (RFC 6749 5.1).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: Secret,
    pub(crate) token_type: String,
    pub(crate) expires_in: Option<u64>,
    pub(crate) refresh_token: Option<Secret>,
    pub(crate) id_token: Option<Secret>,
    pub(crate) scope: Option<String>,
}

/// An OAuth error response (RFC 6749 5.2).
#[derive(Deserialize)]
pub(crate) struct ErrorResponse {
    pub(crate) error: String,
    pub(crate) error_description: Option<String>,
}

/// Either a token (or device) response, or the server's OAuth error.
pub(crate) enum Outcome<T> {
    Ok(T),
    Refused(ErrorResponse),
}

/// Parses a JSON answer of a token-type endpoint. Parse errors report the
/// position only: serde messages may quote values, and values are tokens.
pub(crate) fn parse_answer<T: DeserializeOwned>(
    url: &HttpsUrl,
    resp: &Response,
) -> Result<Outcome<T>, LoginError> {
    let json_err = |e: serde_json::Error| LoginError::Json {
        url: url.as_str().to_owned(),
        detail: format!("line {}, column {}", e.line(), e.column()),
    };
    match resp.status {
        200 => serde_json::from_slice(&resp.body)
            .map(Outcome::Ok)
            .map_err(json_err),
        400 | 401 | 403 => match serde_json::from_slice::<ErrorResponse>(&resp.body) {
            Ok(e) => Ok(Outcome::Refused(e)),
            Err(_) => Err(LoginError::Status {
                url: url.as_str().to_owned(),
                status: resp.status,
            }),
        },
        status => Err(LoginError::Status {
            url: url.as_str().to_owned(),
            status,
        }),
    }
}

impl ErrorResponse {
    pub(crate) fn into_token_error(self) -> LoginError {
        LoginError::TokenEndpoint {
            error: printable(&self.error),
            description: self.error_description.as_deref().map(printable),
        }
    }
}

/// Posts `pairs` to the token endpoint; a refusal becomes an error.
pub(crate) async fn token_request(
    client: &HttpsClient,
    endpoint: &HttpsUrl,
    pairs: &[(&str, &str)],
) -> Result<TokenResponse, LoginError> {
    match token_request_outcome(client, endpoint, pairs).await? {
        Outcome::Ok(t) => Ok(t),
        Outcome::Refused(e) => Err(e.into_token_error()),
    }
}

pub(crate) async fn token_request_outcome(
    client: &HttpsClient,
    endpoint: &HttpsUrl,
    pairs: &[(&str, &str)],
) -> Result<Outcome<TokenResponse>, LoginError> {
    let resp = client.post_form(endpoint, form(pairs)).await?;
    let outcome = parse_answer::<TokenResponse>(endpoint, &resp)?;
    if let Outcome::Ok(t) = &outcome {
        if !t.token_type.eq_ignore_ascii_case("bearer") {
            return Err(LoginError::TokenType(printable(&t.token_type)));
        }
    }
    Ok(outcome)
}

// ------------------------------------------------------------ ID token

/// The claims of an ID token the CLI checks or shows.
#[derive(Deserialize)]
struct IdClaims {
    iss: String,
    aud: Audience,
    nonce: Option<String>,
    sub: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Checks `iss`, `aud` and (if one was sent) `nonce` of an ID token from
/// the token endpoint; returns its `sub`.
pub(crate) fn check_id_token(
    id_token: &Secret,
    issuer: &str,
    client_id: &str,
    nonce: Option<&Secret>,
) -> Result<Option<String>, LoginError> {
    let mut parts = id_token.expose().split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(LoginError::IdToken("not a compact JWS"));
    };
    let bytes = Zeroizing::new(
        URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| LoginError::IdToken("the payload is not base64url"))?,
    );
    let claims: IdClaims = serde_json::from_slice(&bytes)
        .map_err(|_| LoginError::IdToken("the payload lacks `iss` or `aud`"))?;
    if claims.iss != issuer {
        return Err(LoginError::IdToken("`iss` is not the issuer"));
    }
    let aud_ok = match &claims.aud {
        Audience::One(a) => a == client_id,
        Audience::Many(v) => v.iter().any(|a| a == client_id),
    };
    if !aud_ok {
        return Err(LoginError::IdToken("`aud` does not name this client"));
    }
    if let Some(expected) = nonce {
        match &claims.nonce {
            Some(n) if ct_eq(n, expected.expose()) => {}
            _ => return Err(LoginError::IdToken("`nonce` does not match this login")),
        }
    }
    Ok(claims.sub.as_deref().map(printable))
}

// --------------------------------------------------------- device grant

/// A device authorization response (RFC 8628 3.2).
#[derive(Debug, Deserialize)]
pub(crate) struct DeviceAuthorization {
    pub(crate) device_code: Secret,
    pub(crate) user_code: String,
    pub(crate) verification_uri: String,
    pub(crate) verification_uri_complete: Option<String>,
    pub(crate) expires_in: u64,
    pub(crate) interval: Option<u64>,
}

/// The interval before the next device-grant poll, after a refusal
/// (RFC 8628 3.5): `authorization_pending` keeps it, `slow_down` adds 5
/// seconds, `access_denied` and `expired_token` end the login.
pub(crate) fn next_poll(interval: u64, refusal: ErrorResponse) -> Result<u64, LoginError> {
    match refusal.error.as_str() {
        "authorization_pending" => Ok(interval),
        "slow_down" => Ok(interval.saturating_add(5).min(MAX_POLL_INTERVAL_SECS)),
        "access_denied" => Err(LoginError::DeviceDenied),
        "expired_token" => Err(LoginError::DeviceExpired),
        _ => Err(refusal.into_token_error()),
    }
}

/// The first polling interval: the server's, at least 1 s, at most
/// [`MAX_POLL_INTERVAL_SECS`].
pub(crate) fn first_interval(server: Option<u64>) -> u64 {
    server
        .unwrap_or(DEFAULT_POLL_INTERVAL_SECS)
        .clamp(1, MAX_POLL_INTERVAL_SECS)
}
