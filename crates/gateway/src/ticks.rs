//! Coarse timeouts: instead of a timer (and a clock reading) per use, a
//! periodic tick looks at what happened since the last one, and something
//! unused for [`TICKS_PER_TIMEOUT`] ticks in a row has timed out. It then
//! ends between 1 and 1 + 1/`TICKS_PER_TIMEOUT` timeouts after its last
//! use. The upstream pool closes idle connections this way, and HTTP/2
//! connections are closed when idle or stalled.

use std::time::Duration;

/// Ticks per timeout.
pub(crate) const TICKS_PER_TIMEOUT: u32 = 4;

/// An interval ticking [`TICKS_PER_TIMEOUT`] times per `timeout`, first
/// one tick from now; a late tick delays the next ones.
pub(crate) fn ticks(timeout: Duration) -> tokio::time::Interval {
    let period = (timeout / TICKS_PER_TIMEOUT).max(Duration::from_millis(1));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks
}
