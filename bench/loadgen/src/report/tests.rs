use super::*;

fn report(mode: &'static str, samples: &[u64]) -> Report {
    let mut latency = new_histogram().unwrap();
    for &us in samples {
        record(&mut latency, Duration::from_micros(us));
    }
    Report {
        mode,
        connections: 2,
        requests: samples.len() as u64,
        errors: 1,
        non_2xx: 0,
        elapsed: Duration::from_secs(2),
        latency,
        tls: Some("TLSv1_3 X25519".to_owned()),
        first_error: None,
    }
}

#[test]
fn json_line_has_counters_rate_and_percentiles() {
    let samples: Vec<u64> = (1..=1000).collect();
    let line = report("keepalive", &samples).to_json();
    assert!(line.starts_with("{\"mode\":\"keepalive\",\"connections\":2,"));
    assert!(line.contains("\"requests\":1000,"), "{line}");
    assert!(line.contains("\"errors\":1,"), "{line}");
    assert!(line.contains("\"rps\":500.0,"), "{line}");
    assert!(line.contains("\"p50_us\":500,"), "{line}");
    assert!(line.contains("\"p99_us\":990,"), "{line}");
    assert!(line.contains("\"p999_us\":999,"), "{line}");
    assert!(line.contains("\"tls\":\"TLSv1_3 X25519\""), "{line}");
    assert!(!line.contains("first_error"), "{line}");
    assert!(line.ends_with('}'));
    assert!(!line.contains('\n'));
}

#[test]
fn handshake_mode_names_its_rate() {
    let line = report("handshakes", &[100, 200]).to_json();
    assert!(line.contains("\"handshakes_per_s\":1.0,"), "{line}");
    assert!(!line.contains("\"rps\""), "{line}");
}

#[test]
fn empty_run_reports_zeros_not_garbage() {
    let mut r = report("keepalive", &[]);
    r.elapsed = Duration::ZERO;
    let line = r.to_json();
    assert!(line.contains("\"rps\":0.0,"), "{line}");
    assert!(line.contains("\"p99_us\":0,"), "{line}");
}

#[test]
fn latency_is_clamped_to_the_histogram_range() {
    let mut h = new_histogram().unwrap();
    record(&mut h, Duration::from_secs(3600));
    record(&mut h, Duration::ZERO);
    assert_eq!(h.len(), 2);
    assert!(h.max() >= MAX_LATENCY_US);
    assert_eq!(h.min(), 1);
}

#[test]
fn error_text_cannot_break_the_json_line() {
    let mut r = report("idle", &[10]);
    r.first_error = Some("bad \"quote\"\nnew line\\ \u{1}".to_owned());
    let line = r.to_json();
    assert!(!line.contains('\n'));
    assert!(
        line.contains(r#""first_error":"bad \"quote\"\nnew line\\ \u0001""#),
        "{line}"
    );
}
