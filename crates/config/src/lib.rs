//! Portcullis configuration.
//!
//! One YAML file is parsed into raw structs that refuse unknown fields
//! ([`raw`]), then validated into the typed [`Config`]: every value is
//! checked, every referenced file (certificates, keys, CRLs, the signing
//! key) is read and parsed, and relative paths are resolved against the
//! directory of the configuration file. A [`Config`] that exists is
//! usable; errors name the file, the key path and what is wrong.
//!
//! There is no key that disables certificate verification: a listener
//! always verifies client certificates against its `client_ca`.
//!
//! This crate does not start anything; the gateway does.

mod duration;
mod error;
mod raw;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use portcullis_authn::ClientAuthConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use duration::parse_duration;
pub use error::ConfigError;
pub use validate::{
    compile_policy, load_policy, policy_warnings, LoadedPolicy, MAX_POLICY_FILE_BYTES,
};

/// Largest configuration file read, in bytes: a real one is a few KiB.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;
/// Default cap on request header fields (hyper's own default is 100).
pub const DEFAULT_MAX_HEADER_COUNT: usize = 100;
/// Default cap on the total size of request headers, like nginx's
/// `large_client_header_buffers 4 8k`.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
/// Default cap on the request target (path and query).
pub const DEFAULT_MAX_URI_LEN: usize = 8 * 1024;
/// Default cap on a request body; streaming, so this bounds transfer, not memory.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
/// Default cap on concurrent connections per listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Hard caps: larger values are refused as configuration mistakes.
pub const HARD_MAX_HEADER_COUNT: usize = 1_000;
pub const HARD_MAX_HEADER_BYTES: usize = 1024 * 1024;
pub const HARD_MAX_URI_LEN: usize = 64 * 1024;
/// Time a client has to send complete request headers (slowloris bound).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a TLS handshake to complete.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time an HTTP/1 keep-alive connection may wait for its next request
/// (and a new connection for its first one) before it is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Time for the upstream to produce response headers.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A body that sends nothing for this long is cut off (both directions), so
/// a stalled client or upstream cannot hold a connection pair forever.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle upstream connections are closed after this long.
pub const DEFAULT_UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
pub const DEFAULT_POLICY_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// How often a bundle source is checked.
pub const DEFAULT_BUNDLE_POLL_INTERVAL: Duration = Duration::from_secs(30);
/// Without a confirmed bundle for this long, the gateway fails closed.
pub const DEFAULT_BUNDLE_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Largest bundle downloaded or read.
pub const DEFAULT_BUNDLE_MAX_BYTES: usize = 64 * 1024 * 1024;
pub const DEFAULT_ADMIN_BIND: &str = "127.0.0.1:9901";
pub const DEFAULT_ASSERTION_ISSUER: &str = "portcullis";
/// The name the gateway gives itself in the `Via` of forwarded requests.
pub const DEFAULT_VIA_PSEUDONYM: &str = "portcullis";
/// Longest `via.pseudonym` accepted.
pub const MAX_VIA_PSEUDONYM_LEN: usize = 64;
/// Identity assertions are short-lived: an upstream that logs or leaks
/// one hands out at most this much access.
pub const DEFAULT_ASSERTION_TTL: Duration = Duration::from_secs(60);
pub const MAX_ASSERTION_TTL: Duration = Duration::from_secs(600);
pub const DEFAULT_AUDIT_QUEUE_CAPACITY: usize = 65_536;
pub const DEFAULT_AUDIT_DENY_WAIT: Duration = Duration::from_secs(1);
/// Bounds the memory a stalled audit sink can pin (about 1 GiB at ~1 KiB
/// per record); the audit writer refuses more.
pub const MAX_AUDIT_QUEUE_CAPACITY: usize = 1 << 20;
pub const MAX_AUDIT_DENY_WAIT: Duration = Duration::from_secs(10);
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Verified tokens remembered so repeated requests skip the signature check.
pub const DEFAULT_TOKEN_CACHE_ENTRIES: usize = 10_000;
/// At about 2 KiB per entry this bounds the cache near 2 GiB.
pub const MAX_TOKEN_CACHE_ENTRIES: usize = 1_000_000;
/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub const DEFAULT_TOKEN_LEEWAY: Duration = Duration::from_secs(30);
/// More skew than this hides broken clocks and stretches token lifetimes.
pub const MAX_TOKEN_LEEWAY: Duration = Duration::from_secs(300);
/// Tokens larger than this are refused before any parsing.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// A token cannot be longer than the `Authorization` header value that
/// carries it, which the listener bounds at 8 KiB
/// (`portcullis_http_guard::MAX_HEADER_VALUE_LEN`; a longer one is 431):
/// a larger limit here would promise what no request can use.
pub const HARD_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// JWKS refresh bounds: `Cache-Control: max-age` is clamped into
/// [min, max]; without it, the default applies.
pub const DEFAULT_JWKS_MIN_REFRESH: Duration = Duration::from_secs(60);
pub const DEFAULT_JWKS_MAX_REFRESH: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(300);
/// An IdP cannot be asked more often than this (no storm from garbage kids).
pub const MIN_JWKS_REFRESH: Duration = Duration::from_secs(1);
/// A token with an unknown `kid` refetches the JWKS at most this often.
pub const DEFAULT_JWKS_UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(30);
/// Last good keys are used this long after the last successful fetch.
pub const DEFAULT_JWKS_MAX_STALENESS: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_JWKS_MAX_BYTES: usize = 256 * 1024;
/// The key set parser's own bound (`portcullis_token::MAX_JWKS_BYTES`):
/// a larger body limit would download what it then refuses.
pub const HARD_MAX_JWKS_BYTES: usize = portcullis_token::MAX_JWKS_BYTES;
pub const DEFAULT_SESSION_COOKIE: &str = "__Host-portcullis-session";
pub const DEFAULT_SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_SESSION_ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
/// A session longer than this is a standing credential, not a session.
/// Sessions are checked this often for provider tokens about to expire.
pub const DEFAULT_PROVIDER_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
pub const MAX_SESSION_ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);
/// Redis answers on loopback in well under a millisecond; a slow store
/// makes requests wait this long before failing closed with 503.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(500);
pub const MAX_REDIS_TIMEOUT: Duration = Duration::from_secs(10);
/// Secret files (client secret, passwords, keys) are small.
pub const MAX_SECRET_FILE_BYTES: usize = 64 * 1024;

/// A validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The file this was loaded from.
    pub source: PathBuf,
    /// Every certificate, key and CRL file it read (the gateway reloads
    /// when one of them changes).
    pub inputs: Vec<PathBuf>,
    pub listeners: Vec<Listener>,
    pub routes: Vec<Route>,
    pub policy: PolicySource,
    pub admin: Option<Admin>,
    pub assertion: Assertion,
    /// The pseudonym the gateway adds to the `Via` of every forwarded
    /// request (RFC 9110 §7.6.3); `None` with `via.send: false`.
    pub via: Option<String>,
    pub audit: Audit,
    pub drain_timeout: Duration,
    /// Bearer token verification; `None` when no issuer is configured
    /// (then `Authorization: Bearer` is refused with 401).
    pub bearer: Option<Bearer>,
    /// Browser login (OpenID Connect) and sessions: both or neither.
    pub oidc: Option<Oidc>,
    pub sessions: Option<Sessions>,
}

/// Trusted token issuers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bearer {
    pub issuers: Vec<Issuer>,
    pub cache_entries: usize,
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerKeys {
    /// `{issuer}/.well-known/openid-configuration`, then its `jwks_uri`.
    Discovery,
    JwksUri(http::Uri),
    JwksFile(PathBuf),
}

/// One trusted issuer, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    /// Compared exactly with `iss`.
    pub issuer: String,
    pub audiences: Vec<String>,
    pub keys: IssuerKeys,
    /// CA bundle for fetching keys; `None` = the system store.
    pub ca: Option<Vec<CertificateDer<'static>>>,
    pub algorithms: Vec<portcullis_token::Alg>,
    pub leeway: Duration,
    pub required_claims: Vec<String>,
    pub typ: Vec<String>,
    pub max_token_bytes: usize,
    pub min_refresh: Duration,
    pub max_refresh: Duration,
    pub default_refresh: Duration,
    pub unknown_kid_interval: Duration,
    pub max_staleness: Duration,
    pub fetch_timeout: Duration,
    pub max_jwks_bytes: usize,
}

#[derive(Debug)]
pub struct Listener {
    pub name: String,
    pub bind: SocketAddr,
    pub tls: ListenerTls,
    /// Host names served (lowercase); empty means any.
    pub server_names: Vec<String>,
    pub limits: Limits,
    pub header_read_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    /// Longest wait for the next request on an HTTP/1 connection.
    pub idle_timeout: Duration,
}

pub struct ListenerTls {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: Arc<PrivateKeyDer<'static>>,
    pub client_auth: ClientAuthConfig,
}

impl std::fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerTls")
            .field("chain_len", &self.chain.len())
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_header_count: usize,
    pub max_header_bytes: usize,
    pub max_uri_len: usize,
    pub max_body_bytes: u64,
    pub max_connections: usize,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    /// Lowercase host without port; `None` matches any host.
    pub host: Option<String>,
    /// Segment-aligned prefix, starting with `/`, without trailing `/`
    /// (except the root `/`).
    pub path_prefix: String,
    /// Empty means any method.
    pub methods: Vec<http::Method>,
    pub upstream: Upstream,
    /// Forward the client's bearer token upstream (default `false`).
    pub pass_bearer_token: bool,
    /// Browsers without a session are sent to the OpenID provider.
    pub browser_login: bool,
    /// When set, the only client request headers forwarded (lowercase,
    /// sorted, unique); `content-length` and, with `pass_bearer_token`,
    /// the verified `Authorization` always go. `None`: every header the
    /// gateway does not remove.
    pub client_headers: Option<std::sync::Arc<[http::HeaderName]>>,
}

#[derive(Clone)]
pub struct Upstream {
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    /// Trust anchors for `https` upstreams.
    pub ca: Option<Vec<CertificateDer<'static>>>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    /// Longest silence inside a request or response body being streamed.
    pub body_timeout: Duration,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("url", &format_args!("{}://{}", self.scheme, self.authority))
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct PolicySource {
    /// The policy file. With `bundle`, the file the gateway installs from
    /// the last verified bundle (`<state_dir>/active-bundle.tar`).
    pub path: PathBuf,
    pub watch: bool,
    pub poll_interval: Duration,
    /// Signed policy bundles; `None` for a plain policy file.
    pub bundle: Option<BundleSource>,
}

/// Where signed bundles come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleLocation {
    /// A bundle tar file, re-read when it changes.
    File(PathBuf),
    /// An unpacked bundle directory.
    Dir(PathBuf),
    /// An HTTPS URL polled with `If-None-Match`.
    Url(http::Uri),
}

/// Signed policy bundle settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSource {
    pub location: BundleLocation,
    /// The initial trust root (a newer one from a verified root update is
    /// kept in the state directory).
    pub trust_root: PathBuf,
    /// Rollback state and the installed policy.
    pub state_dir: PathBuf,
    pub poll_interval: Duration,
    /// Fail closed (503) when no bundle was confirmed for this long.
    pub max_age: Duration,
    pub ca: Option<Vec<CertificateDer<'static>>>,
    pub max_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct Admin {
    pub bind: SocketAddr,
    /// Bearer token required by the session admin API (`/admin/sessions`);
    /// without it that API is disabled.
    pub token: Option<Secret>,
}

/// A secret read from a file or the environment: redacted in `Debug`,
/// zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub zeroize::Zeroizing<String>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How the gateway authenticates to the provider's token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    ClientSecretBasic,
    ClientSecretPost,
}

/// The OpenID provider browsers log in at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oidc {
    /// Exact issuer; discovery at `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub auth_method: ClientAuth,
    /// The gateway's callback, e.g. `https://gw.example.com/.portcullis/callback`.
    pub redirect_uri: http::Uri,
    pub post_logout_redirect_uri: Option<http::Uri>,
    pub scopes: Vec<String>,
    pub ca: Option<Vec<CertificateDer<'static>>>,
    pub algorithms: Vec<portcullis_token::Alg>,
    pub leeway: Duration,
}

/// Where sessions live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStoreConfig {
    /// A redb file (the default): one gateway instance.
    Embedded { path: PathBuf },
    /// Redis: several gateway instances.
    Redis {
        url: String,
        username: Option<String>,
        password: Option<Secret>,
        ca: Option<Vec<CertificateDer<'static>>>,
        timeout: Duration,
        key_prefix: String,
    },
}

/// Browser sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sessions {
    pub store: SessionStoreConfig,
    /// Starts with `__Host-`.
    pub cookie_name: String,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    /// How often sessions are checked for provider tokens to refresh.
    pub provider_refresh_interval: Duration,
    /// (id, 32-byte key); the first seals new refresh tokens.
    pub refresh_token_keys: Vec<(String, Secret)>,
}

pub struct Assertion {
    /// PKCS#8 DER of the ES256 signing key; `None`: generate one at start.
    pub signing_key_pkcs8: Option<zeroize::Zeroizing<Vec<u8>>>,
    pub issuer: String,
    pub ttl: Duration,
    pub scope: AssertionScope,
}

/// How often an identity assertion is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssertionScope {
    /// A new assertion for every request, naming it (`rid`, `jti`).
    #[default]
    Request,
    /// On a connection whose requests are authenticated by its client
    /// certificate alone, one assertion per route and set of roles, reused
    /// until half of its lifetime has passed; it carries its own `jti` and
    /// no request id (the request id stays in `x-portcullis-request-id`).
    /// Requests with a bearer token or a session always get their own.
    Connection,
}

impl std::fmt::Debug for Assertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assertion")
            .field(
                "signing_key",
                &if self.signing_key_pkcs8.is_some() {
                    "<from file>"
                } else {
                    "<generated>"
                },
            )
            .field("issuer", &self.issuer)
            .field("ttl", &self.ttl)
            .field("scope", &self.scope)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditDest {
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    pub dest: AuditDest,
    pub queue_capacity: usize,
    pub deny_wait: Duration,
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            read_bounded(path, MAX_CONFIG_BYTES).map_err(|m| ConfigError::new(path, "", m))?;
        Self::from_yaml(path, &text)
    }

    /// Parses and validates `text` as if read from `path` (relative paths
    /// inside are resolved against `path`'s directory).
    pub fn from_yaml(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw = validate::parse_raw(path, text)?;
        validate::validate(path, raw)
    }
}

/// Reads a regular file of at most `max` bytes as UTF-8. Anything else (a
/// FIFO, whose open would wait for a writer forever while the reload
/// lock is held; a device) is refused before it is opened.
pub(crate) fn read_bounded(path: &Path, max: usize) -> Result<String, String> {
    use std::io::Read;
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("`{}` is not a regular file", path.display()));
    }
    let f =
        std::fs::File::open(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let mut buf = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    f.take(limit)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    if buf.len() > max {
        return Err(format!("`{}` is larger than {max} bytes", path.display()));
    }
    String::from_utf8(buf).map_err(|_| format!("`{}` is not UTF-8", path.display()))
}

#[cfg(test)]
mod tests;
