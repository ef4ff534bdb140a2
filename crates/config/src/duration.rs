use std::time::Duration;

/// Parses a duration written as a whole number and a unit: `250ms`,
/// `10s`, `5m`, `1h`. No unit, fractions and negative values are refused
/// so that `timeout: 30` cannot silently mean 30 ms or 30 hours.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{s}` needs a unit: ms, s, m or h"))?;
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!("`{s}` must start with a whole number"));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a valid duration"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("`{s}` has an unknown unit: use ms, s, m or h")),
    };
    Ok(d)
}
