use std::time::Duration;

use http::HeaderValue;

use super::*;

fn settings() -> FetchSettings {
    FetchSettings {
        min_refresh: Duration::from_secs(60),
        max_refresh: Duration::from_secs(24 * 3600),
        default_refresh: Duration::from_secs(300),
        // Far above `max_refresh`: the tests that need it lower say so.
        max_staleness: Duration::from_secs(7 * 24 * 3600),
        ..FetchSettings::default()
    }
}

fn lifetime(values: &[&str]) -> Duration {
    let values: Vec<HeaderValue> = values
        .iter()
        .map(|v| HeaderValue::from_str(v).unwrap())
        .collect();
    freshness_lifetime(values.iter(), &settings())
}

#[test]
fn no_header_means_default_refresh() {
    assert_eq!(lifetime(&[]), Duration::from_secs(300));
}

#[test]
fn header_without_max_age_means_default_refresh() {
    assert_eq!(
        lifetime(&["public, must-revalidate"]),
        Duration::from_secs(300)
    );
}

#[test]
fn max_age_in_range_is_honoured() {
    assert_eq!(
        lifetime(&["public, max-age=3600"]),
        Duration::from_secs(3600)
    );
    assert_eq!(lifetime(&["MAX-AGE=120"]), Duration::from_secs(120));
    assert_eq!(lifetime(&[" max-age = 900 "]), Duration::from_secs(900));
}

#[test]
fn quoted_max_age_is_accepted() {
    assert_eq!(lifetime(&["max-age=\"600\""]), Duration::from_secs(600));
}

#[test]
fn max_age_zero_is_clamped_to_min_refresh() {
    assert_eq!(lifetime(&["max-age=0"]), Duration::from_secs(60));
}

#[test]
fn huge_max_age_is_clamped_to_max_refresh() {
    assert_eq!(
        lifetime(&["max-age=31536000"]),
        Duration::from_secs(24 * 3600)
    );
    assert_eq!(
        lifetime(&["max-age=99999999999999999999999999999"]),
        Duration::from_secs(24 * 3600)
    );
}

#[test]
fn no_cache_and_no_store_mean_min_refresh() {
    assert_eq!(lifetime(&["no-cache"]), Duration::from_secs(60));
    assert_eq!(
        lifetime(&["no-store, max-age=3600"]),
        Duration::from_secs(60)
    );
    assert_eq!(
        lifetime(&["max-age=3600", "No-Cache"]),
        Duration::from_secs(60)
    );
    assert_eq!(
        lifetime(&["no-cache=\"set-cookie\", max-age=3600"]),
        Duration::from_secs(60)
    );
}

#[test]
fn malformed_max_age_is_stale() {
    for bad in [
        "max-age=",
        "max-age",
        "max-age=-5",
        "max-age=1h",
        "max-age=1.5",
        "max-age=\"12",
    ] {
        assert_eq!(lifetime(&[bad]), Duration::from_secs(60), "{bad}");
    }
}

#[test]
fn repeated_max_age_is_stale() {
    assert_eq!(
        lifetime(&["max-age=600, max-age=900"]),
        Duration::from_secs(60)
    );
    assert_eq!(
        lifetime(&["max-age=600", "max-age=600"]),
        Duration::from_secs(60)
    );
}

#[test]
fn s_maxage_is_ignored() {
    assert_eq!(lifetime(&["s-maxage=5"]), Duration::from_secs(300));
    assert_eq!(
        lifetime(&["s-maxage=5, max-age=700"]),
        Duration::from_secs(700)
    );
}

#[test]
fn commas_in_quoted_arguments_do_not_split() {
    // `max-age=1` is inside the quoted string: not a directive.
    assert_eq!(
        lifetime(&["private=\"a, max-age=1\", max-age=500"]),
        Duration::from_secs(500)
    );
}

#[test]
fn non_ascii_header_is_ignored() {
    let v = HeaderValue::from_bytes(b"max-age=5\xff").unwrap();
    assert_eq!(
        freshness_lifetime([&v], &settings()),
        Duration::from_secs(300)
    );
}

#[test]
fn default_refresh_outside_bounds_is_clamped() {
    let s = FetchSettings {
        default_refresh: Duration::from_secs(1),
        ..settings()
    };
    assert_eq!(freshness_lifetime([], &s), Duration::from_secs(60));
}

#[test]
fn crossed_bounds_prefer_min_refresh() {
    let s = FetchSettings {
        min_refresh: Duration::from_secs(100),
        max_refresh: Duration::from_secs(10),
        ..settings()
    };
    assert_eq!(
        clamp_refresh(Duration::from_secs(50), &s),
        Duration::from_secs(100)
    );
}

#[test]
fn keys_are_refreshed_before_they_go_stale_whatever_the_issuer_says() {
    let s = FetchSettings {
        min_refresh: Duration::from_secs(1),
        default_refresh: Duration::from_secs(300),
        max_refresh: Duration::from_secs(3600),
        max_staleness: Duration::from_secs(20),
        ..settings()
    };
    let long = HeaderValue::from_static("public, max-age=3600");
    assert_eq!(freshness_lifetime([&long], &s), Duration::from_secs(10));
    assert_eq!(freshness_lifetime([], &s), Duration::from_secs(10));
    // The floor still wins over a staleness limit below twice it.
    let s = FetchSettings {
        min_refresh: Duration::from_secs(15),
        ..s
    };
    assert_eq!(freshness_lifetime([&long], &s), Duration::from_secs(15));
}

#[test]
fn refresh_happens_before_expiry_within_jitter() {
    let s = settings();
    let life = Duration::from_secs(1000);
    assert_eq!(refresh_delay(life, &s, 0), life);
    assert_eq!(refresh_delay(life, &s, u64::MAX), Duration::from_secs(900));
    let mid = refresh_delay(life, &s, u64::MAX / 2);
    assert!(mid > Duration::from_secs(900) && mid < life, "{mid:?}");
}

#[test]
fn early_refresh_never_below_min_refresh() {
    let s = settings();
    assert_eq!(
        refresh_delay(Duration::from_secs(60), &s, u64::MAX),
        Duration::from_secs(60)
    );
}

#[test]
fn zero_intervals_do_not_spin() {
    let s = FetchSettings {
        min_refresh: Duration::ZERO,
        max_refresh: Duration::ZERO,
        default_refresh: Duration::ZERO,
        ..settings()
    };
    assert_eq!(refresh_delay(Duration::ZERO, &s, 0), MIN_SCHEDULE_DELAY);
    assert_eq!(retry_delay(1, &s, 0), MIN_SCHEDULE_DELAY);
}

#[test]
fn retry_backoff_doubles_from_min_refresh_up_to_the_normal_interval() {
    let s = settings();
    let delays: Vec<u64> = (1..=6).map(|n| retry_delay(n, &s, 0).as_secs()).collect();
    assert_eq!(delays, [60, 120, 240, 300, 300, 300]);
    // Far more failures than bits: no overflow, still capped.
    assert_eq!(retry_delay(u32::MAX, &s, 0), Duration::from_secs(300));
}

#[test]
fn retry_backoff_adds_bounded_jitter() {
    let s = settings();
    assert_eq!(retry_delay(1, &s, u64::MAX), Duration::from_secs(75));
    let d = retry_delay(2, &s, u64::MAX / 3);
    assert!(
        d > Duration::from_secs(120) && d < Duration::from_secs(150),
        "{d:?}"
    );
}

#[test]
fn retry_backoff_never_below_min_refresh() {
    let s = FetchSettings {
        default_refresh: Duration::from_secs(1),
        ..settings()
    };
    assert_eq!(retry_delay(1, &s, 0), Duration::from_secs(60));
    assert_eq!(retry_delay(10, &s, 0), Duration::from_secs(60));
}

#[test]
fn extreme_durations_do_not_overflow() {
    let s = FetchSettings {
        min_refresh: Duration::MAX,
        max_refresh: Duration::MAX,
        default_refresh: Duration::MAX,
        ..settings()
    };
    assert!(refresh_delay(Duration::MAX, &s, u64::MAX) > Duration::from_secs(1 << 40));
    assert!(retry_delay(u32::MAX, &s, u64::MAX) > Duration::from_secs(1 << 40));
    let v = HeaderValue::from_static("max-age=18446744073709551615");
    assert_eq!(freshness_lifetime([&v], &s), Duration::MAX);
}
