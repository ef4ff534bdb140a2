//! Errors: building a source, fetching keys, and why no keys are available.

use std::path::PathBuf;
use std::time::Duration;

/// Why a [`crate::KeySource`] could not be built. A failed first fetch is
/// not one of these: the source then starts empty and keeps retrying.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The URL is `http://`: keys are only fetched over https.
    #[error("refusing insecure url `{url}`: only https is allowed")]
    InsecureUrl {
        /// The URL, with any query redacted.
        url: String,
    },
    /// The URL or issuer cannot be used.
    #[error("invalid url `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given, with any query redacted.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A configured CA certificate is not usable as a trust anchor.
    #[error("ca certificate {index} of the bundle is invalid: {reason}")]
    BadCaCertificate {
        /// Position in the bundle, from 0.
        index: usize,
        /// The parser's reason.
        reason: String,
    },
    /// The configured CA bundle is empty.
    #[error("the ca bundle is empty")]
    EmptyCaBundle,
    /// The operating system's store has no usable certificate.
    #[error("no usable ca certificate in the system store{detail}")]
    NoSystemRoots {
        /// Errors met while loading, prefixed with `: `, or empty.
        detail: String,
    },
    /// rustls refused the client configuration.
    #[error("cannot build the tls client configuration: {0}")]
    Tls(String),
}

/// Why [`crate::KeySource::current`] has no keys to verify with: tokens of
/// that issuer are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unavailable {
    /// No fetch has succeeded yet.
    #[error("no keys fetched yet for issuer `{issuer}`")]
    NeverFetched {
        /// The source's name.
        issuer: String,
    },
    /// The last successful fetch is older than `max_staleness`.
    #[error("keys of issuer `{issuer}` are stale: last successful fetch {age:?} ago, limit {max_staleness:?}")]
    Stale {
        /// The source's name.
        issuer: String,
        /// Time since the last successful fetch.
        age: Duration,
        /// The configured limit.
        max_staleness: Duration,
    },
}

/// Why one fetch failed. The text goes to logs and
/// [`crate::SourceStatus::last_error`]; it holds URLs with their query
/// redacted, and never a response body.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("fetch did not finish within {0:?}")]
    Timeout(Duration),
    #[error("request to `{url}` failed: {detail}")]
    Request { url: String, detail: String },
    #[error("`{url}` answered with status {status}")]
    Status { url: String, status: u16 },
    #[error("`{url}` answered with a redirect (status {status}), which is not followed")]
    Redirect { url: String, status: u16 },
    #[error("response body of `{url}` exceeds {limit} bytes")]
    BodyTooLarge { url: String, limit: usize },
    #[error("cannot read the response body of `{url}`: {detail}")]
    Body { url: String, detail: String },
    #[error("invalid discovery document from `{url}`: {reason}")]
    Discovery { url: String, reason: String },
    #[error("invalid jwks from {from}: {source}")]
    Jwks {
        from: String,
        #[source]
        source: portcullis_token::JwksError,
    },
    #[error("cannot read key file `{}`: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("key file `{}` exceeds {limit} bytes", path.display())]
    FileTooLarge { path: PathBuf, limit: usize },
}
