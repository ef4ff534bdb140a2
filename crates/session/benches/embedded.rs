//! The embedded store on the request path: the per-request session check
//! (`get` in a store of 10 000 sessions) and the compare-and-set of a
//! session update (one durable write transaction). `blocking_pool_hop`
//! is what running a read on tokio's blocking pool would add to each
//! check, the reason `get` runs inline.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "benchmark setup fails loudly"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use portcullis_session::{
    CasOutcome, EmbeddedOptions, EmbeddedStore, Session, SessionId, SessionKey, SessionStore,
};
use serde_json::{Map, Value};

/// Sessions in the store while measuring.
const SESSIONS: usize = 10_000;

fn session(i: usize) -> Session {
    let id = SessionId::generate().unwrap();
    let subject = format!("user-{i}");
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::String(subject.clone()));
    claims.insert(
        "email".into(),
        Value::String(format!("{subject}@example.com")),
    );
    claims.insert(
        "groups".into(),
        Value::Array(vec!["staff".into(), "engineering".into()]),
    );
    let now = 1_900_000_000;
    Session {
        key: id.key(),
        issuer: "https://idp.example.com".into(),
        subject,
        claims,
        amr: vec!["pwd".into(), "otp".into()],
        acr: Some("urn:mfa".into()),
        auth_time: now,
        mfa_time: Some(now),
        bound_thumbprint: Some([u8::try_from(i % 251).unwrap(); 32]),
        refresh_token: None,
        provider_token_expires_at: Some(now + 300),
        created_at: now,
        last_seen: now,
        expires_at: now + 8 * 3600,
        idle_secs: 1800,
        revoked: false,
        version: 1,
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(
        &dir.path().join("sessions.redb"),
        EmbeddedOptions::default(),
    )
    .unwrap();
    let keys: Vec<SessionKey> = rt.block_on(async {
        let mut keys = Vec::with_capacity(SESSIONS);
        for i in 0..SESSIONS {
            let s = session(i);
            store.create(&s).await.unwrap();
            keys.push(s.key);
        }
        keys
    });

    let mut group = c.benchmark_group("embedded");

    // The per-request check: a hit, cycling through all sessions.
    group.bench_function("get_10k", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    let key = &keys[usize::try_from(i).unwrap() % keys.len()];
                    black_box(store.get(key).await.unwrap().unwrap());
                }
                start.elapsed()
            })
        })
    });

    // An unknown cookie: a miss.
    let unknown = SessionId::generate().unwrap().key();
    group.bench_function("get_miss_10k", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(store.get(&unknown).await.unwrap());
                }
                start.elapsed()
            })
        })
    });

    // What a read on the blocking pool would add per check.
    group.bench_function("blocking_pool_hop", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(tokio::task::spawn_blocking(|| 1u8).await.unwrap());
                }
                start.elapsed()
            })
        })
    });

    // A session update: one durable (fsync) write transaction.
    let mut current = rt.block_on(store.get(&keys[0])).unwrap().unwrap();
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("compare_and_set_10k", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut next = current.clone();
                    next.last_seen += 1;
                    next.version += 1;
                    let out = store.compare_and_set(&next, current.version).await.unwrap();
                    assert_eq!(out, CasOutcome::Updated);
                    current = next;
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
