use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncReadExt, DuplexStream};

use super::*;

fn record(id: &str, decision: Decision) -> AuditRecord {
    AuditRecord {
        time: audit_time_now(),
        request_id: id.into(),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
        principal: "spiffe://example.org/web".into(),
        spiffe_id: Some("spiffe://example.org/web".into()),
        cert_thumbprint: Some("ab".repeat(32).into()),
        token_issuer: None,
        token_subject: None,
        bundle_revision: None,
        bundle_digest: None,
        route: Some("api".into()),
        method: "GET".into(),
        path: "/v1/items".to_owned(),
        source: "192.0.2.7:51234".into(),
        decision,
        status: match decision {
            Decision::Allow => 200,
            Decision::Deny => 403,
            Decision::Error => 502,
        },
        rule: Some("read-items".into()),
        reason: None,
        policy_revision: "r7".into(),
        policy_sha256: "cd".repeat(32).into(),
        latency_us: 412,
    }
}

fn allow(id: &str) -> AuditRecord {
    record(id, Decision::Allow)
}

fn deny(id: &str) -> AuditRecord {
    record(id, Decision::Deny)
}

/// Parses every line as JSON and returns the records' request ids.
fn request_ids(output: &str) -> Vec<String> {
    output
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["request_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn counter(metrics: &Metrics, family: &str, decision: &str) -> u64 {
    let series = format!(r#"portcullis_{family}_total{{decision="{decision}"}} "#);
    metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(&series).map(|v| v.parse().unwrap()))
        .unwrap_or(0)
}

fn dropped(metrics: &Metrics, decision: &str) -> u64 {
    counter(metrics, "audit_records_dropped", decision)
}

fn written(metrics: &Metrics, decision: &str) -> u64 {
    counter(metrics, "audit_records", decision)
}

fn write_errors(metrics: &Metrics) -> u64 {
    metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_audit_write_errors_total "))
        .unwrap()
        .parse()
        .unwrap()
}

async fn read_all(mut reader: DuplexStream) -> String {
    let mut out = String::new();
    reader.read_to_string(&mut out).await.unwrap();
    out
}

/// Starts a log writing into a one-byte pipe, hands it one record and waits
/// until the writer is stuck flushing that record: the queue is then empty
/// and the writer cannot take another record until the pipe is read.
async fn start_blocked(
    queue_capacity: usize,
    deny_wait: Duration,
) -> (AuditLog, AuditWriterTask, DuplexStream, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let (sink, mut reader) = tokio::io::duplex(1);
    let (log, task) =
        AuditLog::start_with_writer(sink, queue_capacity, deny_wait, Arc::clone(&metrics)).unwrap();
    log.record(allow("in-flight"));
    let mut first = [0u8; 1];
    reader.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"{");
    (log, task, reader, metrics)
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    while !done() {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn records_are_written_as_json_lines_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let metrics = Arc::new(Metrics::new());
    let (log, task) = AuditLog::start(
        AuditConfig::new(AuditDest::File(path.clone())),
        Arc::clone(&metrics),
    )
    .unwrap();
    let ids: Vec<String> = (0..50).map(|i| format!("req-{i:02}")).collect();
    for (i, id) in ids.iter().enumerate() {
        if i % 5 == 0 {
            log.record_deny(deny(id)).await;
        } else {
            log.record(allow(id));
        }
        if i % 7 == 0 {
            tokio::task::yield_now().await;
        }
    }
    task.shutdown().await;

    let output = std::fs::read_to_string(&path).unwrap();
    assert!(output.ends_with('\n'));
    assert_eq!(request_ids(&output), ids);
    let first: serde_json::Value = serde_json::from_str(output.lines().next().unwrap()).unwrap();
    assert_eq!(first["decision"], "deny");
    assert_eq!(first["status"], 403);
    assert_eq!(first["route"], "api");
    assert_eq!(first["reason"], serde_json::Value::Null);
    assert_eq!(first["latency_us"], 412);
    let second: serde_json::Value = serde_json::from_str(output.lines().nth(1).unwrap()).unwrap();
    assert_eq!(second["decision"], "allow");
    assert_eq!(written(&metrics, "deny"), 10);
    assert_eq!(written(&metrics, "allow"), 40);
    assert_eq!(dropped(&metrics, "allow"), 0);
}

#[tokio::test]
async fn record_has_every_field_and_rfc3339_utc_time() {
    let metrics = Arc::new(Metrics::new());
    let (sink, reader) = tokio::io::duplex(64 * 1024);
    let output = tokio::spawn(read_all(reader));
    let (log, task) =
        AuditLog::start_with_writer(sink, 4, DEFAULT_DENY_WAIT, Arc::clone(&metrics)).unwrap();
    let mut rec = record("r1", Decision::Error);
    rec.reason = Some("upstream_timeout: no answer".to_owned());
    rec.trace_id = None;
    log.record_deny(rec).await;
    task.shutdown().await;

    let output = output.await.unwrap();
    let v: serde_json::Value = serde_json::from_str(output.trim_end()).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = [
        "time",
        "request_id",
        "trace_id",
        "principal",
        "spiffe_id",
        "cert_thumbprint",
        "token_issuer",
        "token_subject",
        "bundle_revision",
        "bundle_digest",
        "route",
        "method",
        "path",
        "source",
        "decision",
        "status",
        "rule",
        "reason",
        "policy_revision",
        "policy_sha256",
        "latency_us",
    ];
    let mut keys_sorted = keys.clone();
    keys_sorted.sort_unstable();
    expected.sort_unstable();
    assert_eq!(keys_sorted, expected);
    assert_eq!(v["decision"], "error");
    assert_eq!(v["trace_id"], serde_json::Value::Null);
    assert_eq!(v["reason"], "upstream_timeout: no answer");
    let time = v["time"].as_str().unwrap();
    let parsed: jiff::Timestamp = time.parse().unwrap();
    assert!(time.ends_with('Z'), "{time}");
    assert_eq!(time.len(), "2025-01-31T12:00:00.123456Z".len(), "{time}");
    assert!(parsed > jiff::Timestamp::UNIX_EPOCH);
    assert_eq!(written(&metrics, "error"), 1);
}

#[tokio::test]
async fn shutdown_drains_every_queued_record() {
    let metrics = Arc::new(Metrics::new());
    let (sink, reader) = tokio::io::duplex(64 * 1024);
    let output = tokio::spawn(read_all(reader));
    let (log, task) =
        AuditLog::start_with_writer(sink, 100, DEFAULT_DENY_WAIT, Arc::clone(&metrics)).unwrap();
    // The writer has not run yet (single-threaded runtime, no await):
    // all 100 records are still queued when shutdown starts.
    let ids: Vec<String> = (0..100).map(|i| format!("q{i}")).collect();
    for id in &ids {
        log.record(allow(id));
    }
    task.shutdown().await;

    assert_eq!(request_ids(&output.await.unwrap()), ids);
    assert_eq!(written(&metrics, "allow"), 100);
    assert_eq!(dropped(&metrics, "allow"), 0);
}

#[tokio::test]
async fn records_after_shutdown_are_counted_as_dropped() {
    let metrics = Arc::new(Metrics::new());
    let (log, task) = AuditLog::start_with_writer(
        tokio::io::sink(),
        4,
        DEFAULT_DENY_WAIT,
        Arc::clone(&metrics),
    )
    .unwrap();
    task.shutdown().await;
    log.record(allow("late-allow"));
    log.record_deny(deny("late-deny")).await;
    assert_eq!(dropped(&metrics, "allow"), 1);
    assert_eq!(dropped(&metrics, "deny"), 1);
}

#[tokio::test]
async fn allow_records_beyond_capacity_are_counted_as_dropped() {
    let (log, task, reader, metrics) = start_blocked(1, DEFAULT_DENY_WAIT).await;
    log.record(allow("queued"));
    for i in 0..5 {
        log.record(allow(&format!("overflow-{i}")));
    }
    assert_eq!(dropped(&metrics, "allow"), 5);

    let output = tokio::spawn(read_all(reader));
    task.shutdown().await;
    let output = output.await.unwrap();
    // The single '{' read by `start_blocked` is missing from the first line.
    let output = format!("{{{output}");
    assert_eq!(request_ids(&output), ["in-flight", "queued"]);
    assert_eq!(written(&metrics, "allow"), 2);
    assert_eq!(
        dropped(&metrics, "allow"),
        5,
        "every record not written is counted"
    );
}

#[tokio::test]
async fn deny_record_waits_for_space_and_is_written() {
    let (log, task, reader, metrics) = start_blocked(1, MAX_DENY_WAIT).await;
    log.record(allow("queued"));
    let waiting = tokio::spawn({
        let log = log.clone();
        async move { log.record_deny(deny("denied")).await }
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        !waiting.is_finished(),
        "the queue is full, the deny must wait"
    );
    assert_eq!(dropped(&metrics, "deny"), 0);

    // Unblock the writer: space frees and the waiting deny gets in.
    let output = tokio::spawn(read_all(reader));
    waiting.await.unwrap();
    task.shutdown().await;
    let output = format!("{{{}", output.await.unwrap());
    assert_eq!(request_ids(&output), ["in-flight", "queued", "denied"]);
    assert_eq!(written(&metrics, "deny"), 1);
    assert_eq!(dropped(&metrics, "deny"), 0);
}

#[tokio::test]
async fn deny_record_without_space_after_deny_wait_is_counted() {
    // The error log line of this path is checked in `tests/audit_drop_log.rs`.
    let (log, task, reader, metrics) = start_blocked(1, Duration::from_millis(20)).await;
    log.record(allow("queued"));
    log.record_deny(deny("denied")).await;
    log.record_deny(record("failed", Decision::Error)).await;
    assert_eq!(dropped(&metrics, "deny"), 1);
    assert_eq!(dropped(&metrics, "error"), 1);

    let output = tokio::spawn(read_all(reader));
    task.shutdown().await;
    let output = format!("{{{}", output.await.unwrap());
    assert_eq!(request_ids(&output), ["in-flight", "queued"]);
    assert_eq!(written(&metrics, "deny"), 0);
}

#[tokio::test]
async fn newlines_in_fields_stay_on_one_line() {
    let (sink, reader) = tokio::io::duplex(64 * 1024);
    let output = tokio::spawn(read_all(reader));
    let (log, task) =
        AuditLog::start_with_writer(sink, 4, DEFAULT_DENY_WAIT, Arc::new(Metrics::new())).unwrap();
    let mut rec = deny("evil");
    rec.path = "/a\nb\r\nc".to_owned();
    rec.principal = "x\n{\"decision\":\"allow\"}".into();
    rec.reason = Some("bad\u{1b}[31m\u{2028}".to_owned());
    log.record_deny(rec.clone()).await;
    log.record(allow("next"));
    task.shutdown().await;

    let output = output.await.unwrap();
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), 2, "{output}");
    assert!(!lines[0].contains('\r') && !lines[0].contains('\u{1b}'));
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["path"], rec.path.as_str());
    assert_eq!(v["principal"], &*rec.principal);
    assert_eq!(v["reason"], rec.reason.as_deref().unwrap());
    assert_eq!(v["decision"], "deny");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deny_records_are_all_written_once() {
    let metrics = Arc::new(Metrics::new());
    let (sink, reader) = tokio::io::duplex(4096);
    let output = tokio::spawn(read_all(reader));
    let (log, task) =
        AuditLog::start_with_writer(sink, 8, MAX_DENY_WAIT, Arc::clone(&metrics)).unwrap();
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let log = log.clone();
            tokio::spawn(async move {
                for i in 0..200 {
                    log.record_deny(deny(&format!("p{p}-{i}"))).await;
                }
            })
        })
        .collect();
    for producer in producers {
        producer.await.unwrap();
    }
    task.shutdown().await;

    let ids = request_ids(&output.await.unwrap());
    assert_eq!(ids.len(), 800);
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 800);
    // Each producer's records keep their order.
    for p in 0..4 {
        let prefix = format!("p{p}-");
        let mine: Vec<usize> = ids
            .iter()
            .filter_map(|id| id.strip_prefix(&prefix)?.parse().ok())
            .collect();
        assert_eq!(mine, (0..200).collect::<Vec<_>>());
    }
    assert_eq!(written(&metrics, "deny"), 800);
    assert_eq!(dropped(&metrics, "deny"), 0);
}

#[cfg(unix)]
#[tokio::test]
async fn file_is_created_without_other_access_and_appended_to() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let (log, task) = AuditLog::start(
        AuditConfig::new(AuditDest::File(path.clone())),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    log.record(allow("first"));
    task.shutdown().await;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    // 0640 minus whatever the umask removes.
    assert_eq!(mode & !0o640, 0, "mode {mode:o}");
    assert_eq!(mode & 0o600, 0o600, "mode {mode:o}");

    let (log, task) = AuditLog::start(
        AuditConfig::new(AuditDest::File(path.clone())),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    log.record(allow("second"));
    task.shutdown().await;
    let output = std::fs::read_to_string(&path).unwrap();
    assert_eq!(request_ids(&output), ["first", "second"]);
}

#[tokio::test]
async fn reopen_after_rotation_writes_to_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let rotated = dir.path().join("audit.log.1");
    let metrics = Arc::new(Metrics::new());
    let (log, task) = AuditLog::start(
        AuditConfig::new(AuditDest::File(path.clone())),
        Arc::clone(&metrics),
    )
    .unwrap();
    log.record(allow("before"));
    wait_until(|| written(&metrics, "allow") == 1).await;

    std::fs::rename(&path, &rotated).unwrap();
    log.reopen();
    log.reopen(); // merged into the pending one
    log.record(allow("after"));
    task.shutdown().await;

    assert_eq!(
        request_ids(&std::fs::read_to_string(&rotated).unwrap()),
        ["before"]
    );
    assert_eq!(
        request_ids(&std::fs::read_to_string(&path).unwrap()),
        ["after"]
    );
    assert_eq!(write_errors(&metrics), 0);
}

#[tokio::test]
async fn failed_reopen_is_counted_and_keeps_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("logs");
    std::fs::create_dir(&sub).unwrap();
    let metrics = Arc::new(Metrics::new());
    let (log, task) = AuditLog::start(
        AuditConfig::new(AuditDest::File(sub.join("audit.log"))),
        Arc::clone(&metrics),
    )
    .unwrap();
    log.record(allow("before"));
    wait_until(|| written(&metrics, "allow") == 1).await;

    // The directory disappears: the configured path cannot be opened.
    let moved = dir.path().join("moved");
    std::fs::rename(&sub, &moved).unwrap();
    log.reopen();
    log.record(allow("after"));
    task.shutdown().await;

    assert_eq!(write_errors(&metrics), 1);
    assert_eq!(
        request_ids(&std::fs::read_to_string(moved.join("audit.log")).unwrap()),
        ["before", "after"]
    );
}

/// A sink whose every write fails, like a full disk.
struct FailingSink;

impl AsyncWrite for FailingSink {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::Error::other("no space left on device")))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn write_errors_are_counted_and_not_fatal() {
    let metrics = Arc::new(Metrics::new());
    let (log, task) =
        AuditLog::start_with_writer(FailingSink, 4, DEFAULT_DENY_WAIT, Arc::clone(&metrics))
            .unwrap();
    log.record(allow("a"));
    wait_until(|| write_errors(&metrics) >= 1).await;
    // The writer is still alive and keeps taking records.
    log.record_deny(deny("d")).await;
    wait_until(|| write_errors(&metrics) >= 2).await;
    task.shutdown().await;

    assert!(write_errors(&metrics) >= 2);
    assert_eq!(written(&metrics, "allow"), 0, "nothing reached the sink");
    assert_eq!(written(&metrics, "deny"), 0);
    assert_eq!(dropped(&metrics, "deny"), 0);
}

#[tokio::test]
async fn open_failure_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("audit.log");
    let err = AuditLog::start(
        AuditConfig::new(AuditDest::File(path.clone())),
        Arc::new(Metrics::new()),
    )
    .unwrap_err();
    assert!(matches!(err, AuditError::Open { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("cannot open audit log `{}`", path.display())
    );
}

#[tokio::test]
async fn queue_and_wait_limits_are_enforced() {
    let metrics = Arc::new(Metrics::new());
    for capacity in [0, MAX_QUEUE_CAPACITY + 1] {
        let mut cfg = AuditConfig::new(AuditDest::Stdout);
        cfg.queue_capacity = capacity;
        let err = AuditLog::start(cfg, Arc::clone(&metrics)).unwrap_err();
        assert!(
            matches!(err, AuditError::QueueCapacity { capacity: c } if c == capacity),
            "{err:?}"
        );
    }
    let mut cfg = AuditConfig::new(AuditDest::Stdout);
    cfg.deny_wait = MAX_DENY_WAIT + Duration::from_millis(1);
    let err = AuditLog::start(cfg, Arc::clone(&metrics)).unwrap_err();
    assert!(matches!(err, AuditError::DenyWait { .. }), "{err:?}");

    let err =
        AuditLog::start_with_writer(tokio::io::sink(), 0, DEFAULT_DENY_WAIT, metrics).unwrap_err();
    assert!(matches!(err, AuditError::QueueCapacity { capacity: 0 }));
}

#[test]
fn start_outside_a_runtime_is_an_error() {
    let err = AuditLog::start(
        AuditConfig::new(AuditDest::Stdout),
        Arc::new(Metrics::new()),
    )
    .unwrap_err();
    assert!(matches!(err, AuditError::NoRuntime), "{err:?}");
}

/// `write_json` is byte for byte what the derived `Serialize` writes, with
/// every optional member absent and present and strings that need escaping.
#[test]
fn write_json_matches_the_derived_serialisation() {
    let mut full = deny("r\"1");
    full.token_issuer = Some("https://idp.example/\u{7f}".to_owned());
    full.token_subject = Some("alice\n".to_owned());
    full.bundle_revision = Some(42);
    full.bundle_digest = Some("ef".repeat(32).into());
    full.reason = Some("bad\u{1b}[31m\u{2028}\\".to_owned());
    full.method = "PURGE".into();
    full.latency_us = u64::MAX;
    let mut empty = allow("r2");
    empty.trace_id = None;
    empty.spiffe_id = None;
    empty.cert_thumbprint = None;
    empty.route = None;
    empty.rule = None;
    empty.principal = "".into();
    for rec in [full, empty, record("r3", Decision::Error)] {
        let mut ours = Vec::new();
        rec.write_json(&mut ours).unwrap();
        let derived = serde_json::to_vec(&rec).unwrap();
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            String::from_utf8(derived).unwrap()
        );
    }
}

/// The copy-as-is path of `write_json` agrees with `serde_json` on every
/// ASCII character and on non-ASCII text, in each string member kind.
#[test]
fn write_json_escapes_every_character_as_serde_json_does() {
    for c in (0u8..0x80).map(char::from).chain(['é', '\u{2028}', '😀']) {
        // at every position of strings longer than the 8-byte scan steps
        for pos in 0..20 {
            let text = |n: usize| {
                let mut t = "x".repeat(n);
                t.insert(pos.min(n), c);
                t
            };
            let mut rec = allow("r");
            rec.path = text(19);
            rec.principal = text(pos).into();
            rec.trace_id = Some(text(23));
            let mut ours = Vec::new();
            rec.write_json(&mut ours).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(serde_json::to_vec(&rec).unwrap()).unwrap(),
                "character {c:?} at {pos}"
            );
        }
    }
}

/// `AuditTime::write_to` writes what `Display` (jiff) writes: across
/// years, at second boundaries, with the per-second prefix reused and
/// renewed, and before 1970.
#[test]
fn audit_time_write_to_matches_display() {
    let mut seconds: Vec<i64> = vec![0, 1, 59, 60, 86_399, 86_400, 951_782_400, 4_102_444_799];
    seconds.extend([-1, -86_401, -62_135_596_800]); // before 1970, year 1
    seconds.extend([253_402_300_799]); // 9999-12-31T23:59:59
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        seconds.push((x % 253_402_300_800) as i64);
    }
    for &sec in &seconds {
        for nanos in [0, 1, 999, 1_000, 123_456_789, 999_999_999] {
            let Ok(ts) =
                jiff::Timestamp::new(sec, if sec < 0 && nanos > 0 { -nanos } else { nanos })
            else {
                continue;
            };
            let t = AuditTime(ts);
            let mut out = Vec::new();
            t.write_to(&mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                t.to_string(),
                "{sec} {nanos}"
            );
        }
    }
}
