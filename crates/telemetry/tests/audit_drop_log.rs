//! A deny record that cannot be queued is logged at error level with its
//! request id. Log capture uses a thread-local subscriber, which `tracing`
//! only honours reliably when no other thread registers callsites at the
//! same time, so this runs as the only test of its process.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_telemetry::{audit_time_now, AuditLog, AuditRecord, Decision, Metrics};
use tokio::io::AsyncReadExt;

#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("log capture lock poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn record(id: &str, decision: Decision) -> AuditRecord {
    AuditRecord {
        time: audit_time_now(),
        request_id: id.into(),
        trace_id: None,
        principal: "anonymous".into(),
        spiffe_id: None,
        cert_thumbprint: None,
        token_issuer: None,
        token_subject: None,
        bundle_revision: None,
        bundle_digest: None,
        route: None,
        method: "GET".into(),
        path: "/".to_owned(),
        source: "192.0.2.7:51234".into(),
        decision,
        status: 403,
        rule: None,
        reason: Some("no_rule: no rule matched".to_owned()),
        policy_revision: "r1".into(),
        policy_sha256: "cd".repeat(32).into(),
        latency_us: 10,
    }
}

#[tokio::test]
async fn dropped_deny_records_are_logged_at_error_level_with_request_id() {
    let logs = CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Queue of one; the writer is stuck flushing its first record into a
    // one-byte pipe, so the queue stays full once refilled.
    let metrics = Arc::new(Metrics::new());
    let (sink, mut reader) = tokio::io::duplex(1);
    let (log, task) =
        AuditLog::start_with_writer(sink, 1, Duration::from_millis(20), Arc::clone(&metrics))
            .unwrap();
    log.record(record("in-flight", Decision::Allow));
    let mut first = [0u8; 1];
    reader.read_exact(&mut first).await.unwrap();
    log.record(record("queued", Decision::Allow));

    log.record_deny(record("denied-1", Decision::Deny)).await;
    log.record_deny(record("failed-1", Decision::Error)).await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 2, "{text}");
    assert!(errors[0].contains("request_id=denied-1"), "{text}");
    assert!(errors[0].contains("audit queue stayed full"), "{text}");
    assert!(errors[1].contains("request_id=failed-1"), "{text}");
    assert!(errors[1].contains(r#"decision="error""#), "{text}");

    let drain = tokio::spawn(async move {
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.unwrap();
    });
    task.shutdown().await;
    drain.await.unwrap();
}
