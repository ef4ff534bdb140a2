use std::time::Duration;

use crate::command::token_store::StoreError;

/// Why a login, refresh or discovery failed. Messages name URLs, claims
/// and OAuth error codes, never tokens, codes or verifiers.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoginError {
    #[error("invalid URL `{url}`: {reason}")]
    Url { url: String, reason: &'static str },
    #[error("`{url}` must use https (http would expose the login to the network)")]
    NotHttps { url: String },
    #[error("cannot use {origin}: {reason}")]
    Ca { origin: String, reason: String },
    #[error("cannot load the system trust store: {0}")]
    SystemRoots(String),
    #[error("cannot set up TLS: {0}")]
    TlsConfig(String),
    #[error("cannot connect to `{authority}`: {source}")]
    Connect {
        authority: String,
        source: std::io::Error,
    },
    #[error("TLS with `{authority}` failed: {source}")]
    Tls {
        authority: String,
        source: std::io::Error,
    },
    #[error("request to `{url}` failed: {reason}")]
    Http { url: String, reason: String },
    #[error("request to `{url}` timed out after {}s", .after.as_secs())]
    Timeout { url: String, after: Duration },
    #[error("`{url}` answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("response from `{url}` is larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("response from `{url}` is not the expected JSON ({detail})")]
    Json { url: String, detail: String },
    #[error(
        "discovery document of `{expected}` names issuer `{found}`; the issuer must match exactly"
    )]
    IssuerMismatch { expected: String, found: String },
    #[error("the discovery document has no `{field}`")]
    MissingEndpoint { field: &'static str },
    #[error("the authorization server does not support PKCE with S256 (`code_challenge_methods_supported`)")]
    NoS256,
    #[error("callback `state` does not match this login (possible cross-site request forgery)")]
    StateMismatch,
    #[error("callback `iss` `{found}` is not the issuer `{expected}` (possible mix-up attack)")]
    CallbackIssuerMismatch { expected: String, found: String },
    #[error("callback has no `iss` although the authorization server promises it (RFC 9207)")]
    CallbackIssuerMissing,
    #[error("callback is malformed: {0}")]
    CallbackMalformed(&'static str),
    #[error("the authorization server refused the login: `{error}`{}", describe(.description))]
    Authorization {
        error: String,
        description: Option<String>,
    },
    #[error("the token endpoint refused the request: `{error}`{}", describe(.description))]
    TokenEndpoint {
        error: String,
        description: Option<String>,
    },
    #[error("the token endpoint answered with token type `{0}`, expected `Bearer`")]
    TokenType(String),
    #[error("ID token is invalid: {0}")]
    IdToken(&'static str),
    #[error("no login completed within {}s", .0.as_secs())]
    LoginTimeout(Duration),
    #[error("the device code expired before the login was confirmed")]
    DeviceExpired,
    #[error("the login was denied on the device verification page (`access_denied`)")]
    DeviceDenied,
    #[error("the authorization server has no device authorization endpoint")]
    NoDeviceEndpoint,
    #[error("the system random number generator failed")]
    Random,
    #[error("cannot listen on 127.0.0.1 for the login callback: {0}")]
    Listen(std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the login was not started because its tokens could not be stored: {0}")]
    NotStarted(StoreError),
}

fn describe(description: &Option<String>) -> String {
    description
        .as_deref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default()
}

/// Longest error code or description shown from a server or callback.
pub(crate) const MAX_SHOWN_TEXT: usize = 200;

/// `text` with control and non-ASCII characters replaced and cut to
/// [`MAX_SHOWN_TEXT`], safe to print on a terminal.
pub(crate) fn printable(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_SHOWN_TEXT)
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect();
    if text.chars().count() > MAX_SHOWN_TEXT {
        out.push_str("...");
    }
    out
}
