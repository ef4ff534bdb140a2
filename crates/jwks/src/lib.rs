//! Fetching and keeping up to date the JSON Web Key Set (JWKS) of a
//! trusted token issuer.
//!
//! A [`KeySource`] holds the current [`portcullis_token::KeySet`] of one
//! issuer, read from OpenID Connect discovery, a `jwks_uri`, or a local
//! file ([`JwksSource`]):
//!
//! - https only (rustls with aws-lc-rs, the system store or a configured
//!   CA bundle); `http://` is refused when the source is built; redirects
//!   are never followed;
//! - each fetch is bounded in time (`fetch_timeout`, discovery included)
//!   and body size (`max_body_bytes`, read incrementally);
//! - keys are refreshed by a background task before their
//!   `Cache-Control: max-age` expires, clamped to
//!   `[min_refresh, max_refresh]` ([`freshness_lifetime`]); failed fetches
//!   are retried with jittered exponential backoff ([`retry_delay`]);
//! - a token with an unknown `kid` triggers at most one refetch per
//!   `unknown_kid_interval`, and concurrent callers share a fetch in
//!   progress ([`KeySource::refresh_for_unknown_kid`]);
//! - the last good key set is kept when a fetch fails or returns an
//!   invalid JWKS, until `max_staleness` after the last success; then
//!   [`KeySource::current`] refuses. A new key set replaces the old one
//!   whole, so removed keys stop verifying.
//!
//! It does not verify tokens or parse keys (that is `portcullis-token`),
//! does not read configuration files, and does not cache discovery
//! metadata other than the `jwks_uri`.

mod error;
mod fetch;
mod redact;
mod schedule;
mod settings;
mod source;

pub use error::{StartError, Unavailable};
pub use fetch::{IDLE_CONNECTION_TIMEOUT, MAX_IDLE_CONNECTIONS, MAX_SHOWN_CHARS};
pub use schedule::{
    clamp_refresh, freshness_lifetime, refresh_delay, retry_delay, EARLY_REFRESH_PERCENT,
    MIN_SCHEDULE_DELAY, RETRY_JITTER_PERCENT,
};
pub use settings::{
    FetchSettings, JwksSource, DEFAULT_FETCH_TIMEOUT, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_REFRESH,
    DEFAULT_MAX_STALENESS, DEFAULT_MIN_REFRESH, DEFAULT_REFRESH, DEFAULT_UNKNOWN_KID_INTERVAL,
    DISCOVERY_PATH,
};
pub use source::{KeySource, SourceStatus};
