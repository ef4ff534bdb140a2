//! When to fetch next: the freshness lifetime from `Cache-Control`, early
//! refresh before expiry, and retry backoff. Pure functions.

use std::time::Duration;

use http::HeaderValue;

use crate::FetchSettings;

/// No refresh or retry is scheduled sooner than this, whatever the
/// settings say: a zero interval would make the refresh task spin.
pub const MIN_SCHEDULE_DELAY: Duration = Duration::from_millis(10);
/// A scheduled refresh happens up to this share (percent) of the freshness
/// lifetime early, so it lands before expiry and a fleet of gateways does
/// not poll the issuer in lockstep.
pub const EARLY_REFRESH_PERCENT: u32 = 10;
/// Retry jitter: up to this share (percent) of the backoff delay is added,
/// so gateways that lost the issuer together do not retry together.
pub const RETRY_JITTER_PERCENT: u32 = 25;

/// How long a fetched key set is fresh, from the response's
/// `Cache-Control` header values (RFC 9111, section 5.2), clamped to
/// `[min_refresh, max_refresh]`:
///
/// - `no-store` or `no-cache` (qualified or not): `min_refresh`;
/// - `max-age=N` (`N` may be quoted): `N` seconds; a malformed or repeated
///   `max-age` makes the response stale (RFC 9111, 4.2.1): `min_refresh`;
/// - otherwise (no header, no such directive, or a header that is not
///   visible ASCII): `default_refresh`.
///
/// `s-maxage` is for shared caches and ignored; so are `Age` and `Expires`.
pub fn freshness_lifetime<'a>(
    cache_control: impl IntoIterator<Item = &'a HeaderValue>,
    settings: &FetchSettings,
) -> Duration {
    let mut max_age: Option<Option<u64>> = None;
    let mut stale = false;
    for value in cache_control {
        let Ok(text) = value.to_str() else {
            continue;
        };
        for (name, arg) in directives(text) {
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                stale = true;
            } else if name.eq_ignore_ascii_case("max-age") {
                let parsed = arg.and_then(delta_seconds);
                max_age = match max_age {
                    // A second `max-age` is a conflict: treat as invalid.
                    Some(_) => Some(None),
                    None => Some(parsed),
                };
            }
        }
    }
    let lifetime = if stale {
        settings.min_refresh
    } else {
        match max_age {
            Some(Some(secs)) => Duration::from_secs(secs),
            Some(None) => settings.min_refresh,
            None => settings.default_refresh,
        }
    };
    clamp_refresh(lifetime, settings)
}

/// `d` bounded to `[min_refresh, max_refresh]`, and to half of
/// `max_staleness`: keys are refreshed while they are still usable, with
/// time left for retries, however long the issuer says they stay fresh
/// (`max_staleness: 1h` with an issuer sending `max-age` of a day would
/// otherwise refuse its tokens for 23 hours a day). If the bounds are
/// crossed, `min_refresh` wins (never poll faster than the floor).
pub fn clamp_refresh(d: Duration, settings: &FetchSettings) -> Duration {
    d.min(settings.max_refresh)
        .min(settings.max_staleness / 2)
        .max(settings.min_refresh)
}

/// Delay until the scheduled refresh of a key set fresh for `lifetime`:
/// up to [`EARLY_REFRESH_PERCENT`] early (by `random`), never sooner than
/// `min_refresh` nor [`MIN_SCHEDULE_DELAY`].
pub fn refresh_delay(lifetime: Duration, settings: &FetchSettings, random: u64) -> Duration {
    let early = fraction(lifetime, EARLY_REFRESH_PERCENT, random);
    lifetime
        .saturating_sub(early)
        .max(settings.min_refresh.min(lifetime))
        .max(MIN_SCHEDULE_DELAY)
}

/// Delay before retrying after `failures` consecutive failed fetches
/// (1 for the first): exponential from `min_refresh`, doubling per failure,
/// capped at the normal refresh interval (`default_refresh` clamped to
/// `[min_refresh, max_refresh]`), plus up to [`RETRY_JITTER_PERCENT`]
/// jitter (by `random`). An outage thus never makes us poll faster than
/// `min_refresh`, and never slower than about the normal interval, so
/// recovery is seen long before `max_staleness`.
pub fn retry_delay(failures: u32, settings: &FetchSettings, random: u64) -> Duration {
    let cap = clamp_refresh(settings.default_refresh, settings);
    let doublings = failures.saturating_sub(1).min(31);
    let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
    let base = settings
        .min_refresh
        .checked_mul(factor)
        .unwrap_or(Duration::MAX)
        .min(cap)
        .max(settings.min_refresh);
    base.saturating_add(fraction(base, RETRY_JITTER_PERCENT, random))
        .max(MIN_SCHEDULE_DELAY)
}

/// `random / u64::MAX` of `percent`% of `d`.
fn fraction(d: Duration, percent: u32, random: u64) -> Duration {
    let span = d.as_nanos().saturating_mul(u128::from(percent)) / 100;
    // Saturates only for durations of centuries, where precision is moot.
    let nanos = span.saturating_mul(u128::from(random)) / u128::from(u64::MAX);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// A random `u64` for jitter; jitter is not security relevant, so a failed
/// random source means no jitter.
pub(crate) fn jitter_seed() -> u64 {
    let mut bytes = [0u8; 8];
    match aws_lc_rs::rand::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => 0,
    }
}

/// `delta-seconds` (RFC 9111, 1.2.2), optionally quoted; saturates at
/// `u64::MAX` (clamped later). `None` when not all digits.
fn delta_seconds(arg: &str) -> Option<u64> {
    let digits = arg
        .strip_prefix('"')
        .and_then(|a| a.strip_suffix('"'))
        .unwrap_or(arg);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10)
            .saturating_add(u64::from(b.saturating_sub(b'0')))
    }))
}

/// Splits a `Cache-Control` value into `(name, argument)` pairs. Commas
/// inside quoted strings do not split; empty list elements are skipped.
fn directives(text: &str) -> Vec<(&str, Option<&str>)> {
    let mut out = Vec::new();
    for element in split_list(text) {
        let element = element.trim();
        if element.is_empty() {
            continue;
        }
        match element.split_once('=') {
            Some((name, arg)) => out.push((name.trim(), Some(arg.trim()))),
            None => out.push((element, None)),
        }
    }
    out
}

/// Splits on commas outside quoted strings.
fn split_list(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == ',' && !quoted {
            parts.push(text.get(start..i).unwrap_or_default());
            start = i + 1;
        }
    }
    parts.push(text.get(start..).unwrap_or_default());
    parts
}

#[cfg(test)]
mod tests;
