//! An mTLS HTTP/1.1 load generator for the side-by-side benchmark
//! (`bench/compare.sh`): the same client drives nginx, haproxy and
//! Portcullis, so the numbers differ only by the server.
//!
//! Three measurements:
//! - [`run::keepalive`]: concurrent keep-alive connections sending
//!   requests back to back (throughput and latency percentiles);
//! - [`run::handshakes`]: a full mTLS handshake and one request per
//!   iteration, without session resumption (handshakes per second);
//! - [`run::idle`]: many connections opened, used once and held open, so
//!   the server's memory per idle connection can be read meanwhile.
//!
//! It only connects to `127.0.0.1` ([`target::parse_target`] refuses any
//! other host), every run is bounded in time and connection count (the
//! `MAX_*` constants), and it sends `GET` requests without a body, with
//! optional extra headers ([`headers`]: e.g. a bearer token, fixed or
//! rotating through a list). It does not speak HTTP/2, follow redirects
//! or verify response bodies.

pub mod error;
pub mod headers;
pub mod report;
pub mod run;
pub mod target;
pub mod tls;

use std::time::Duration;

pub use error::LoadgenError;

/// Most concurrent loops in keep-alive and handshake mode: far above what
/// a two-core benchmark needs, low enough not to exhaust descriptors.
pub const MAX_CONCURRENCY: usize = 4_096;
/// Most connections held in idle mode: the memory measurement needs
/// 10 000; the headroom stays under the default ephemeral port range.
pub const MAX_IDLE_CONNECTIONS: usize = 20_000;
/// Longest load run: a benchmark step, not a soak test.
pub const MAX_DURATION: Duration = Duration::from_secs(300);
/// Longest time idle connections are held.
pub const MAX_HOLD: Duration = Duration::from_secs(600);
/// Most runtime worker threads: the client must not starve the server.
pub const MAX_THREADS: usize = 16;
/// Connections opened at once in idle mode, so the server's accept
/// backlog never overflows.
pub const IDLE_OPEN_CONCURRENCY: usize = 128;
/// Time for TCP connect plus TLS handshake before it counts as an error.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for one request (headers and body) before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body read; the benchmark upstream sends a few bytes.
pub const MAX_RESPONSE_BODY: usize = 1024 * 1024;
/// Pause after a failed connect, so a refusing server is not hammered.
pub const RETRY_PAUSE: Duration = Duration::from_millis(10);
/// Highest latency the histograms track (one minute, in microseconds);
/// larger samples are clamped.
pub const MAX_LATENCY_US: u64 = 60_000_000;

/// Checks that `value` lies in `min..=max`.
pub fn check_bound<T>(what: &'static str, value: T, min: T, max: T) -> Result<T, LoadgenError>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    if value < min || value > max {
        return Err(LoadgenError::OutOfBounds {
            what,
            value: value.to_string(),
            min: min.to_string(),
            max: max.to_string(),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests;
