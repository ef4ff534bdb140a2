//! Where a key set comes from and how it is fetched.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use rustls_pki_types::CertificateDer;

/// Shortest time between two scheduled refreshes: an issuer cannot make us
/// poll it more often than once a minute with `max-age=0`.
pub const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(60);
/// Longest time between two refreshes: a removed key stops verifying within
/// a day even if the issuer announced a longer `max-age`.
pub const DEFAULT_MAX_REFRESH: Duration = Duration::from_secs(24 * 60 * 60);
/// Refresh interval when the response has no usable `Cache-Control`
/// (and for key files): five minutes, the usual IdP rotation overlap.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(5 * 60);
/// At most one refetch per issuer this often because of a token with an
/// unknown `kid`, so garbage tokens cannot turn into a fetch storm.
pub const DEFAULT_UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(30);
/// How long the last good keys are used while the issuer cannot be
/// reached; after that tokens of the issuer are refused.
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(24 * 60 * 60);
/// Bound on one fetch (connect, TLS, headers and body; discovery included),
/// so a slow issuer cannot hold a refresh open.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on a JWKS or discovery body: real key sets are a few KiB, so
/// 256 KiB leaves room for large RSA sets without buffering unbounded input.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// Path of the OpenID Connect discovery document under the issuer
/// (OpenID Connect Discovery 1.0, section 4).
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// Where the keys of one issuer come from.
#[derive(Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// OpenID Connect discovery: `GET {issuer}/.well-known/openid-configuration`,
    /// whose `issuer` must equal this value exactly and whose `jwks_uri`
    /// must be `https`.
    Discovery {
        /// The issuer identifier, an `https` URL without query or fragment.
        issuer: String,
    },
    /// A `jwks_uri` given directly; must be `https`.
    Uri(http::Uri),
    /// A local JWKS file, re-read when its modification time or size
    /// changes.
    File(PathBuf),
}

impl fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Discovery { issuer } => {
                f.debug_struct("Discovery").field("issuer", issuer).finish()
            }
            Self::Uri(uri) => f
                .debug_tuple("Uri")
                .field(&crate::redact::Redacted(uri))
                .finish(),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// How keys are fetched and kept. Values are taken as given (small values
/// are allowed for tests); the configuration layer enforces sane minima.
#[derive(Clone)]
pub struct FetchSettings {
    /// Trust anchors for the issuer's TLS certificate; `None` uses the
    /// operating system's store.
    pub roots: Option<Vec<CertificateDer<'static>>>,
    /// Lower bound of the refresh interval (also `no-cache`/`no-store`,
    /// and the first retry delay after a failure).
    pub min_refresh: Duration,
    /// Upper bound of the refresh interval.
    pub max_refresh: Duration,
    /// Refresh interval without `Cache-Control: max-age`, and for files.
    pub default_refresh: Duration,
    /// At most one refetch per this interval for tokens with an unknown `kid`.
    pub unknown_kid_interval: Duration,
    /// How long after the last successful fetch the keys are still used.
    pub max_staleness: Duration,
    /// Bound on one fetch, discovery included.
    pub fetch_timeout: Duration,
    /// Bound on a response body (or key file) in bytes; the key set parser
    /// also refuses documents over `portcullis_token::MAX_JWKS_BYTES`.
    pub max_body_bytes: usize,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            roots: None,
            min_refresh: DEFAULT_MIN_REFRESH,
            max_refresh: DEFAULT_MAX_REFRESH,
            default_refresh: DEFAULT_REFRESH,
            unknown_kid_interval: DEFAULT_UNKNOWN_KID_INTERVAL,
            max_staleness: DEFAULT_MAX_STALENESS,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl fmt::Debug for FetchSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchSettings")
            .field("roots", &self.roots.as_ref().map(Vec::len))
            .field("min_refresh", &self.min_refresh)
            .field("max_refresh", &self.max_refresh)
            .field("default_refresh", &self.default_refresh)
            .field("unknown_kid_interval", &self.unknown_kid_interval)
            .field("max_staleness", &self.max_staleness)
            .field("fetch_timeout", &self.fetch_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}
