//! Results of a run and their one-line JSON form.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::{LoadgenError, MAX_LATENCY_US};

/// A latency histogram in microseconds, 3 significant digits.
pub fn new_histogram() -> Result<Histogram<u64>, LoadgenError> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .map_err(|e| LoadgenError::Histogram(e.to_string()))
}

/// Records `d` in microseconds, clamped to the histogram's range.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros())
        .unwrap_or(MAX_LATENCY_US)
        .clamp(1, MAX_LATENCY_US);
    h.saturating_record(us);
}

/// Counters and latencies of one run (all loops merged).
#[derive(Debug, Clone)]
pub struct Report {
    /// `keepalive`, `handshakes` or `idle`.
    pub mode: &'static str,
    /// Concurrent loops or connections.
    pub connections: usize,
    /// Completed requests (any status).
    pub requests: u64,
    /// Connects, handshakes or requests that failed or timed out.
    pub errors: u64,
    /// Completed requests whose status was not 2xx.
    pub non_2xx: u64,
    /// Wall time from the first connect to the end of the last request.
    pub elapsed: Duration,
    /// Request latency in keep-alive mode; connect + handshake + request
    /// in handshake and idle mode.
    pub latency: Histogram<u64>,
    /// What the first successful connection negotiated.
    pub tls: Option<String>,
    /// The first error seen, for diagnosis.
    pub first_error: Option<String>,
}

impl Report {
    /// Completed requests (one per handshake in handshake mode) per second.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.requests as f64 / secs
        } else {
            0.0
        }
    }

    fn percentile(&self, q: f64) -> u64 {
        if self.latency.is_empty() {
            0
        } else {
            self.latency.value_at_quantile(q)
        }
    }

    /// One JSON object on one line. The rate is named `rps`, or
    /// `handshakes_per_s` in handshake mode.
    pub fn to_json(&self) -> String {
        let rate_key = if self.mode == "handshakes" {
            "handshakes_per_s"
        } else {
            "rps"
        };
        let mut s = String::with_capacity(256);
        let _ = write!(
            s,
            "{{\"mode\":\"{}\",\"connections\":{},\"duration_s\":{:.3},\"requests\":{},\"errors\":{},\"non_2xx\":{},\"{rate_key}\":{:.1},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{}",
            json_escape(self.mode),
            self.connections,
            self.elapsed.as_secs_f64(),
            self.requests,
            self.errors,
            self.non_2xx,
            self.rate(),
            self.percentile(0.50),
            self.percentile(0.99),
            self.percentile(0.999),
        );
        for (key, value) in [("tls", &self.tls), ("first_error", &self.first_error)] {
            if let Some(v) = value {
                let _ = write!(s, ",\"{key}\":\"{}\"", json_escape(v));
            }
        }
        s.push('}');
        s
    }
}

/// Escapes `s` for a JSON string literal.
pub fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
