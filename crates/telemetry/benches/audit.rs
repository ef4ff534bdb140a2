//! Cost of the audit log on the request path.
//!
//! - `record_allow_enqueue`: `AuditLog::record` of an allow record into a
//!   queue with space (the writer is not running during the timed part);
//! - `record_allow_queue_full`: the same call when the queue is full (the
//!   record is dropped and counted);
//! - `serialize_record`: `AuditRecord::write_json` of one record, as the
//!   writer task does it; `serialize_record_derived`: the derived
//!   `Serialize` through `serde_json::to_writer` (the same bytes).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use portcullis_telemetry::{
    audit_time_now, new_request_id, AuditLog, AuditRecord, Decision, Metrics, DEFAULT_DENY_WAIT,
};

/// Records enqueued per fresh log: bounds the memory of pre-built records.
const CHUNK: u64 = 10_000;

fn sample_record() -> AuditRecord {
    AuditRecord {
        time: audit_time_now(),
        request_id: new_request_id().into(),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
        principal: "spiffe://example.org/ns/prod/sa/web".into(),
        spiffe_id: Some("spiffe://example.org/ns/prod/sa/web".into()),
        cert_thumbprint: Some("ab".repeat(32).into()),
        token_issuer: None,
        token_subject: None,
        bundle_revision: None,
        bundle_digest: None,
        route: Some("orders-api".into()),
        method: "POST".into(),
        path: "/v1/orders/8f3a/items".to_owned(),
        source: "192.0.2.7:51234".into(),
        decision: Decision::Allow,
        status: 200,
        rule: Some("web-may-write-orders".into()),
        reason: None,
        policy_revision: "2025-01-31.3".into(),
        policy_sha256: "cd".repeat(32).into(),
        latency_us: 412,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("cannot build runtime: {err}");
            std::process::exit(1)
        }
    }
}

fn start(
    rt: &tokio::runtime::Runtime,
    capacity: usize,
) -> (AuditLog, portcullis_telemetry::AuditWriterTask) {
    let _enter = rt.enter();
    match AuditLog::start_with_writer(
        tokio::io::sink(),
        capacity,
        DEFAULT_DENY_WAIT,
        Arc::new(Metrics::new()),
    ) {
        Ok(started) => started,
        Err(err) => {
            eprintln!("cannot start audit log: {err}");
            std::process::exit(1)
        }
    }
}

fn record_allow_enqueue(c: &mut Criterion) {
    let rt = runtime();
    let template = sample_record();
    c.bench_function("record_allow_enqueue", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                left -= n;
                // Untimed: a fresh queue with room for the whole chunk, and
                // the records (clones) built in advance. The writer task only
                // runs inside `block_on`, so it does not drain during timing.
                let (log, task) = start(&rt, CHUNK as usize);
                let records: Vec<AuditRecord> = (0..n).map(|_| template.clone()).collect();
                let started = Instant::now();
                for rec in records {
                    log.record(black_box(rec));
                }
                elapsed += started.elapsed();
                rt.block_on(task.shutdown());
            }
            elapsed
        });
    });
}

fn record_allow_queue_full(c: &mut Criterion) {
    let rt = runtime();
    let template = sample_record();
    let (log, task) = start(&rt, 1);
    log.record(template.clone());
    c.bench_function("record_allow_queue_full", |b| {
        b.iter_batched(
            || template.clone(),
            |rec| log.record(black_box(rec)),
            criterion::BatchSize::SmallInput,
        );
    });
    rt.block_on(task.shutdown());
}

fn serialize_record(c: &mut Criterion) {
    let rec = sample_record();
    let mut line = Vec::with_capacity(1024);
    c.bench_function("serialize_record", |b| {
        b.iter(|| {
            line.clear();
            if let Err(err) = black_box(&rec).write_json(&mut line) {
                eprintln!("serialisation failed: {err}");
            }
            line.push(b'\n');
            black_box(line.len())
        });
    });
    eprintln!("one audit line is {} bytes", line.len());
    c.bench_function("serialize_record_derived", |b| {
        b.iter(|| {
            line.clear();
            if let Err(err) = serde_json::to_writer(&mut line, black_box(&rec)) {
                eprintln!("serialisation failed: {err}");
            }
            line.push(b'\n');
            black_box(line.len())
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = record_allow_enqueue, record_allow_queue_full, serialize_record
}
criterion_main!(benches);
