//! Session checks (`get`) against a local `redis-server`, on a
//! single-threaded tokio runtime (one core for the gateway side):
//! one check in flight at a time, and many in flight pipelined on the
//! one connection. Reports checks per second and the commands Redis
//! processed per check (one: a single `HMGET`).
//!
//! `cargo bench -p portcullis-session --bench redis`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "benchmark setup: a failed step ends the run"
)]

#[path = "../tests/common/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use portcullis_session::{
    RedisOptions, RedisStore, Session, SessionId, SessionKey, SessionStore, REDIS_ACL_COMMANDS,
};
use redis_server::{RedisServer, GATEWAY_PASSWORD, GATEWAY_USER};
use tokio::runtime::Runtime;
use zeroize::Zeroizing;

/// Checks in flight at once in the concurrent case.
const IN_FLIGHT: usize = 16;

fn session() -> Session {
    let now = 1_900_000_000;
    let mut claims = serde_json::Map::new();
    claims.insert("email".into(), "alice@example.com".into());
    claims.insert("groups".into(), serde_json::json!(["staff", "admins"]));
    Session {
        key: SessionId::generate().unwrap().key(),
        issuer: "https://idp.example.com".into(),
        subject: "alice".into(),
        claims,
        amr: vec!["pwd".into(), "otp".into()],
        acr: None,
        auth_time: now,
        mfa_time: Some(now),
        bound_thumbprint: Some([7; 32]),
        refresh_token: None,
        provider_token_expires_at: Some(now + 300),
        created_at: now,
        last_seen: now,
        expires_at: now + 3600,
        idle_secs: 1800,
        revoked: false,
        version: 1,
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Commands processed by the server so far, excluding the admin's own.
fn commands(server: &RedisServer) -> u64 {
    let stats: String = server.admin_cmd(&["INFO", "commandstats"]);
    stats
        .lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter(|l| !l.starts_with("info:") && !l.starts_with("config"))
        .filter_map(|l| {
            l.split(',')
                .find_map(|f| f.split_once("calls=").map(|(_, n)| n))
        })
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

async fn check(store: &RedisStore, key: &SessionKey) {
    let s = store.get(key).await.unwrap().unwrap();
    assert!(!s.revoked);
}

fn bench_get(c: &mut Criterion) {
    let server = RedisServer::start_with_acl(REDIS_ACL_COMMANDS);
    let rt = runtime();
    let store = rt.block_on(async {
        let mut o = RedisOptions::new(server.url());
        o.username = Some(GATEWAY_USER.into());
        o.password = Some(Zeroizing::new(GATEWAY_PASSWORD.into()));
        Arc::new(RedisStore::connect(o).await.unwrap())
    });
    let s = session();
    rt.block_on(store.create(&s)).unwrap();
    let key = s.key;

    let mut group = c.benchmark_group("redis_get");
    group.throughput(Throughput::Elements(1));

    group.bench_function("sequential", |b| {
        b.iter(|| rt.block_on(check(&store, &key)));
    });

    group.bench_function(format!("concurrent_{IN_FLIGHT}"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let per_task = iters.div_ceil(IN_FLIGHT as u64);
                let start = Instant::now();
                let mut tasks = Vec::with_capacity(IN_FLIGHT);
                for _ in 0..IN_FLIGHT {
                    let store = store.clone();
                    tasks.push(tokio::spawn(async move {
                        for _ in 0..per_task {
                            check(&store, &key).await;
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
                // Time per check, over the checks actually made.
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per_task * IN_FLIGHT as u64) as f64)
            })
        });
    });
    group.finish();

    // Round trips per check, counted by the server.
    const COUNTED: u64 = 1_000;
    let before = commands(&server);
    let start = Instant::now();
    rt.block_on(async {
        for _ in 0..COUNTED {
            check(&store, &key).await;
        }
    });
    let took = start.elapsed();
    let after = commands(&server);
    println!(
        "redis_get: {COUNTED} checks, {} commands processed by redis ({:.2} per check), \
         {:.0} checks/s sequential",
        after - before,
        (after - before) as f64 / COUNTED as f64,
        COUNTED as f64 / took.as_secs_f64().max(f64::MIN_POSITIVE)
    );
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_get
}
criterion_main!(benches);
