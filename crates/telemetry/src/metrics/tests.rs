use super::*;

/// The value of the series written exactly as `series` (name plus labels).
fn value(encoded: &str, series: &str) -> Option<f64> {
    encoded.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.parse().ok()
    })
}

#[test]
fn fresh_registry_encodes_fixed_series_at_zero() {
    let out = Metrics::new().encode();
    assert!(out.ends_with("# EOF\n"));
    assert_eq!(value(&out, "portcullis_audit_queue_depth"), Some(0.0));
    assert_eq!(
        value(&out, "portcullis_audit_write_errors_total"),
        Some(0.0)
    );
    for result in ["success", "failure"] {
        for family in ["policy_reloads", "config_reloads"] {
            let series = format!(r#"portcullis_{family}_total{{result="{result}"}}"#);
            assert_eq!(value(&out, &series), Some(0.0), "{series}\n{out}");
        }
    }
    for decision in ["allow", "deny", "error"] {
        for family in ["audit_records", "audit_records_dropped"] {
            let series = format!(r#"portcullis_{family}_total{{decision="{decision}"}}"#);
            assert_eq!(value(&out, &series), Some(0.0), "{series}\n{out}");
        }
    }
    // Families labelled by route, listener or reason code start empty.
    assert!(!out.contains("portcullis_requests_total"));
    assert!(!out.contains("portcullis_tls_handshake_failures_total"));
    assert!(!out.contains("portcullis_bad_requests_total"));
}

#[test]
fn observe_request_counts_by_route_decision_status() {
    let m = Metrics::new();
    m.observe_request("api", Decision::Deny, 403, Duration::from_millis(2));
    m.observe_request("api", Decision::Deny, 403, Duration::from_millis(2));
    m.observe_request("api", Decision::Allow, 200, Duration::from_micros(30));
    m.observe_request("web", Decision::Error, 502, Duration::from_secs(20));
    let out = m.encode();
    let requests = |labels: &str| value(&out, &format!("portcullis_requests_total{{{labels}}}"));
    assert_eq!(
        requests(r#"route="api",decision="deny",status="403""#),
        Some(2.0)
    );
    assert_eq!(
        requests(r#"route="api",decision="allow",status="200""#),
        Some(1.0)
    );
    assert_eq!(
        requests(r#"route="web",decision="error",status="502""#),
        Some(1.0)
    );
    assert_eq!(
        requests(r#"route="web",decision="allow",status="200""#),
        None
    );
}

/// A route's cached handles count into the same series as
/// `observe_request`, for pairs cached and beyond the cache's limit.
#[test]
fn route_metrics_count_the_same_series_as_observe_request() {
    let direct = Metrics::new();
    let cached = Metrics::new();
    let api = cached.route_metrics("api");
    let statuses: Vec<u16> = (0..ROUTE_METRICS_CACHED as u16 + 5)
        .map(|i| 200 + i)
        .collect();
    for round in 0..3u64 {
        for &status in &statuses {
            for decision in [Decision::Allow, Decision::Deny] {
                let latency = Duration::from_micros(40 * (round + 1));
                direct.observe_request("api", decision, status, latency);
                api.observe(&cached, decision, status, latency);
            }
        }
    }
    let (d, c) = (direct.encode(), cached.encode());
    // the same lines; the families' order is a hash map's
    let series = |out: &str| -> Vec<String> {
        let mut lines: Vec<String> = out
            .lines()
            .filter(|l| l.starts_with("portcullis_request"))
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    assert!(!series(&d).is_empty());
    assert_eq!(series(&d), series(&c));
    assert_eq!(
        value(
            &c,
            r#"portcullis_requests_total{route="api",decision="deny",status="236"}"#
        ),
        Some(3.0)
    );
}

#[test]
fn observe_request_feeds_duration_histogram() {
    let m = Metrics::new();
    m.observe_request("api", Decision::Deny, 403, Duration::from_millis(2));
    m.observe_request("api", Decision::Allow, 200, Duration::from_micros(30));
    m.observe_request("api", Decision::Error, 504, Duration::from_secs(20));
    let out = m.encode();
    let bucket = |le: &str| {
        value(
            &out,
            &format!(r#"portcullis_request_duration_seconds_bucket{{le="{le}",route="api"}}"#),
        )
    };
    assert!(out.contains("# UNIT portcullis_request_duration_seconds seconds"));
    assert_eq!(
        value(
            &out,
            r#"portcullis_request_duration_seconds_count{route="api"}"#
        ),
        Some(3.0)
    );
    // 30 µs lands in the first bucket, 2 ms in 2.5 ms, 20 s only in +Inf.
    assert_eq!(bucket("0.00005"), Some(1.0));
    assert_eq!(bucket("0.001"), Some(1.0));
    assert_eq!(bucket("0.0025"), Some(2.0));
    assert_eq!(bucket("10.0"), Some(2.0));
    assert_eq!(bucket("+Inf"), Some(3.0));
}

#[test]
fn duration_buckets_span_50us_to_10s_in_order() {
    assert_eq!(REQUEST_DURATION_BUCKETS.first(), Some(&0.000_05));
    assert_eq!(REQUEST_DURATION_BUCKETS.last(), Some(&10.0));
    assert!(REQUEST_DURATION_BUCKETS.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn reload_results_are_counted_apart() {
    let m = Metrics::new();
    m.policy_reload(true);
    m.policy_reload(true);
    m.policy_reload(false);
    m.config_reload(false);
    let out = m.encode();
    assert_eq!(
        value(&out, r#"portcullis_policy_reloads_total{result="success"}"#),
        Some(2.0)
    );
    assert_eq!(
        value(&out, r#"portcullis_policy_reloads_total{result="failure"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&out, r#"portcullis_config_reloads_total{result="failure"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&out, r#"portcullis_config_reloads_total{result="success"}"#),
        Some(0.0)
    );
}

#[test]
fn set_policy_swaps_info_label_set() {
    let m = Metrics::new();
    m.set_policy("r1", "aaaa");
    let first = m.encode();
    assert_eq!(
        value(
            &first,
            r#"portcullis_policy_info{revision="r1",sha256="aaaa"}"#
        ),
        Some(1.0)
    );
    let loaded = value(&first, "portcullis_policy_loaded_timestamp_seconds").unwrap();
    assert!(loaded > 1.6e9, "a Unix time in seconds, got {loaded}");

    m.set_policy("r2", "bbbb");
    let second = m.encode();
    assert_eq!(
        value(
            &second,
            r#"portcullis_policy_info{revision="r2",sha256="bbbb"}"#
        ),
        Some(1.0)
    );
    assert!(!second.contains(r#"revision="r1""#), "{second}");
    assert_eq!(second.matches("portcullis_policy_info{").count(), 1);
}

#[test]
fn set_policy_with_same_labels_keeps_one_series() {
    let m = Metrics::new();
    m.set_policy("r1", "aaaa");
    m.set_policy("r1", "aaaa");
    let out = m.encode();
    assert_eq!(
        value(
            &out,
            r#"portcullis_policy_info{revision="r1",sha256="aaaa"}"#
        ),
        Some(1.0)
    );
    assert_eq!(out.matches("portcullis_policy_info{").count(), 1);
}

#[test]
fn guard_counters_carry_their_reason_codes() {
    let m = Metrics::new();
    m.tls_handshake_failure("public", "unknown_ca");
    m.tls_handshake_failure("public", "unknown_ca");
    m.bad_request("encoded_slash");
    m.bad_request("smuggling");
    m.bad_request("header_too_large");
    m.upstream_error("api", UpstreamErrorKind::Timeout);
    m.upstream_error("api", UpstreamErrorKind::Connect);
    m.upstream_error("api", UpstreamErrorKind::Protocol);
    let out = m.encode();
    assert_eq!(
        value(
            &out,
            r#"portcullis_tls_handshake_failures_total{listener="public",reason="unknown_ca"}"#
        ),
        Some(2.0)
    );
    for reason in ["encoded_slash", "smuggling", "header_too_large"] {
        let series = format!(r#"portcullis_bad_requests_total{{reason="{reason}"}}"#);
        assert_eq!(value(&out, &series), Some(1.0), "{series}");
    }
    for kind in ["connect", "timeout", "protocol"] {
        let series = format!(r#"portcullis_upstream_errors_total{{route="api",kind="{kind}"}}"#);
        assert_eq!(value(&out, &series), Some(1.0), "{series}");
    }
}

#[test]
fn audit_metrics_are_labelled_by_decision() {
    let m = Metrics::new();
    m.audit_records_written(Decision::Allow, 1);
    m.audit_records_written(Decision::Deny, 2);
    m.audit_records_written(Decision::Error, 0);
    m.audit_record_dropped(Decision::Allow);
    m.audit_record_dropped(Decision::Error);
    m.set_audit_queue_depth(7);
    m.audit_write_error();
    let out = m.encode();
    let written = |d: &str| {
        value(
            &out,
            &format!(r#"portcullis_audit_records_total{{decision="{d}"}}"#),
        )
    };
    let dropped = |d: &str| {
        value(
            &out,
            &format!(r#"portcullis_audit_records_dropped_total{{decision="{d}"}}"#),
        )
    };
    assert_eq!(written("allow"), Some(1.0));
    assert_eq!(written("deny"), Some(2.0));
    assert_eq!(written("error"), Some(0.0), "a zero count adds nothing");
    assert_eq!(dropped("allow"), Some(1.0));
    assert_eq!(dropped("error"), Some(1.0));
    assert_eq!(dropped("deny"), Some(0.0));
    assert_eq!(value(&out, "portcullis_audit_queue_depth"), Some(7.0));
    assert_eq!(
        value(&out, "portcullis_audit_write_errors_total"),
        Some(1.0)
    );
}

#[test]
fn connection_guard_tracks_active_connections() {
    let m = Metrics::new();
    let a = m.connection_opened("public");
    let b = m.connection_opened("public");
    let c = m.connection_opened("admin");
    let out = m.encode();
    assert_eq!(
        value(&out, r#"portcullis_connections_active{listener="public"}"#),
        Some(2.0)
    );
    assert_eq!(
        value(&out, r#"portcullis_connections_active{listener="admin"}"#),
        Some(1.0)
    );
    drop(a);
    drop(c);
    let out = m.encode();
    assert_eq!(
        value(&out, r#"portcullis_connections_active{listener="public"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&out, r#"portcullis_connections_active{listener="admin"}"#),
        Some(0.0)
    );
    assert_eq!(
        value(&out, r#"portcullis_connections_total{listener="public"}"#),
        Some(2.0)
    );
    drop(b);
}

#[test]
fn idle_guard_tracks_idle_connections() {
    let m = Metrics::new();
    assert_eq!(value(&m.encode(), "portcullis_connections_idle"), Some(0.0));
    let a = m.connection_idle();
    let b = m.connection_idle();
    assert_eq!(value(&m.encode(), "portcullis_connections_idle"), Some(2.0));
    drop(a);
    assert_eq!(value(&m.encode(), "portcullis_connections_idle"), Some(1.0));
    drop(b);
    assert_eq!(value(&m.encode(), "portcullis_connections_idle"), Some(0.0));
}

#[test]
fn label_values_are_escaped() {
    // Route names come from config, but a quote or newline must still not
    // break the exposition format.
    let m = Metrics::new();
    m.bad_request("a\"b\nc");
    let out = m.encode();
    assert!(
        out.contains(r#"portcullis_bad_requests_total{reason="a\"b\nc"} 1"#),
        "{out}"
    );
}

#[test]
fn metrics_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Metrics>();
    let m = std::sync::Arc::new(Metrics::new());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let m = std::sync::Arc::clone(&m);
            std::thread::spawn(move || {
                for _ in 0..100 {
                    m.bad_request("smuggling");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        value(
            &m.encode(),
            r#"portcullis_bad_requests_total{reason="smuggling"}"#
        ),
        Some(400.0)
    );
}

#[test]
fn decision_serialises_lowercase() {
    for (d, s) in [
        (Decision::Allow, "allow"),
        (Decision::Deny, "deny"),
        (Decision::Error, "error"),
    ] {
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{s}\""));
        assert_eq!(d.as_str(), s);
    }
}
