//! The Redis store under faults of a real `redis-server`: frozen, killed,
//! paused, busy, stripped of its ACL rights, out of memory, read-only.
//! Every fault must be a `StoreError` of the right kind (the gateway
//! answers 503), `health()` must show it, and service must resume by
//! itself, with the same store, once the fault ends.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions (clippy.toml allows these in tests)"
)]

#[path = "common/redis_server.rs"]
mod redis_server;

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portcullis_session::{
    CasOutcome, RedisOptions, RedisStore, Session, SessionFilter, SessionId, SessionStore,
    StoreError, REDIS_ACL_COMMANDS,
};
use redis_server::{RedisServer, GATEWAY_PASSWORD, GATEWAY_USER};
use zeroize::Zeroizing;

/// Short, so the tests are quick; every fault lasts several of these.
const OP_TIMEOUT: Duration = Duration::from_millis(300);
/// Bound on one operation seen from the test: a hang fails the test
/// instead of blocking it (not a performance assertion).
const HANG_BOUND: Duration = Duration::from_secs(10);
/// Bound on waiting for recovery after a fault ends.
const RECOVERY_BOUND: Duration = Duration::from_secs(10);

fn unix_now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn session(subject: &str) -> Session {
    let now = unix_now();
    Session {
        key: SessionId::generate().unwrap().key(),
        issuer: "https://idp.example.com".into(),
        subject: subject.into(),
        claims: serde_json::Map::new(),
        amr: vec!["pwd".into()],
        acr: None,
        auth_time: now,
        mfa_time: None,
        bound_thumbprint: None,
        refresh_token: None,
        provider_token_expires_at: None,
        created_at: now,
        last_seen: now,
        expires_at: now + 3600,
        idle_secs: 1800,
        revoked: false,
        version: 1,
    }
}

fn next(s: &Session) -> Session {
    let mut n = s.clone();
    n.version = s.version + 1;
    n.mfa_time = Some(unix_now());
    n
}

fn server() -> RedisServer {
    RedisServer::start_with_acl(REDIS_ACL_COMMANDS)
}

async fn store(server: &RedisServer) -> RedisStore {
    let mut o = RedisOptions::new(server.url());
    o.username = Some(GATEWAY_USER.into());
    o.password = Some(Zeroizing::new(GATEWAY_PASSWORD.into()));
    o.op_timeout = OP_TIMEOUT;
    RedisStore::connect(o).await.unwrap()
}

/// Runs one store operation, failing the test if it hangs.
async fn bounded<T>(op: impl Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = tokio::time::timeout(HANG_BOUND, op)
        .await
        .expect("store operation did not finish");
    (out, start.elapsed())
}

/// Asserts the result is a timeout after (at least) the op timeout.
fn assert_timeout<T: std::fmt::Debug>((result, took): (Result<T, StoreError>, Duration)) {
    match result {
        Err(StoreError::Timeout(d)) => {
            assert_eq!(d, OP_TIMEOUT);
            assert!(took >= OP_TIMEOUT, "timed out early: {took:?}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

/// Retries `get` until it succeeds; the store must recover by itself.
async fn recovered(store: &RedisStore, key: &portcullis_session::SessionKey) -> Option<Session> {
    let deadline = Instant::now() + RECOVERY_BOUND;
    loop {
        match store.get(key).await {
            Ok(found) => return found,
            Err(e) => {
                assert!(Instant::now() < deadline, "no recovery; last error: {e:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test]
async fn sigstop_times_out_and_sigcont_recovers() {
    let server = server();
    let store = store(&server).await;
    let s = session("alice");
    store.create(&s).await.unwrap();

    server.stop();
    assert_timeout(bounded(store.get(&s.key)).await);
    assert_timeout(bounded(store.compare_and_set(&next(&s), 1)).await);
    assert_timeout(bounded(store.revoke(&s.key)).await);
    assert_timeout(bounded(store.health()).await);
    // Past the point where the connection is presumed dead and rebuilt:
    // a reconnection to a frozen server times out too.
    for _ in 0..portcullis_session::REDIS_TIMEOUTS_BEFORE_RECONNECT {
        assert_timeout(bounded(store.get(&s.key)).await);
    }

    server.cont();
    let after = recovered(&store, &s.key).await.expect("session kept");
    store.health().await.unwrap();
    // A timed-out write may or may not have been applied (the caller
    // treated it as failed), but never half: the version and the
    // revocation agree with one of the possible histories.
    let states = [(1, false), (2, false), (2, true), (3, true)];
    assert!(
        states.contains(&(after.version, after.revoked)),
        "inconsistent state after the freeze: {after:?}"
    );
    // The store writes again.
    let again = next(&after);
    assert_eq!(
        store.compare_and_set(&again, after.version).await.unwrap(),
        CasOutcome::Updated
    );
}

#[tokio::test]
async fn kill_is_unavailable_and_restart_recovers() {
    let mut server = server();
    let store = store(&server).await;
    let s = session("alice");
    store.create(&s).await.unwrap();

    server.kill();
    // Refused at once, not after the timeout.
    for _ in 0..3 {
        let (r, _) = bounded(store.get(&s.key)).await;
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        let (r, _) = bounded(store.create(&session("bob"))).await;
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    }
    let (r, _) = bounded(store.health()).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");

    server.restart();
    // The data went with the process: the session is unknown, and callers
    // send the user to a new login.
    assert_eq!(recovered(&store, &s.key).await, None);
    store.health().await.unwrap();
    let t = session("carol");
    store.create(&t).await.unwrap();
    assert_eq!(store.get(&t.key).await.unwrap(), Some(t));
}

#[tokio::test]
async fn restart_between_requests_is_not_seen_by_reads() {
    let mut server = server();
    let store = store(&server).await;
    store.health().await.unwrap();
    server.kill_and_restart();
    // The old connection is dead; a read retries once on a new one.
    let s = session("alice");
    let (r, _) = bounded(store.get(&s.key)).await;
    assert_eq!(r, Ok(None));
    store.create(&s).await.unwrap();
}

#[tokio::test]
async fn client_pause_times_out() {
    let server = server();
    let store = store(&server).await;
    let s = session("alice");
    store.create(&s).await.unwrap();

    // Long enough for the three operations below, each bounded by
    // OP_TIMEOUT; Redis 7.0 cannot end an ALL pause early.
    server.client_pause(2_500);
    assert_timeout(bounded(store.get(&s.key)).await);
    assert_timeout(bounded(store.create(&session("bob"))).await);
    assert_timeout(bounded(store.health()).await);
    assert_eq!(recovered(&store, &s.key).await, Some(s));
    store.health().await.unwrap();
}

#[tokio::test]
async fn client_pause_of_writes_times_out_writes_only() {
    let server = server();
    let store = store(&server).await;
    let s = session("alice");
    store.create(&s).await.unwrap();

    server.client_pause_writes(20_000);
    // Session checks go on ...
    assert_eq!(store.get(&s.key).await.unwrap(), Some(s.clone()));
    // ... writes, health and every script (Redis holds all of `EVALSHA`
    // in a write pause, the read-only listing too) wait.
    assert_timeout(bounded(store.list(&SessionFilter::default(), 10)).await);
    assert_timeout(bounded(store.create(&session("bob"))).await);
    assert_timeout(bounded(store.compare_and_set(&next(&s), 1)).await);
    assert_timeout(bounded(store.health()).await);
    server.client_unpause();
    let deadline = Instant::now() + RECOVERY_BOUND;
    while let Err(e) = store.health().await {
        assert!(Instant::now() < deadline, "no recovery; last error: {e:?}");
    }
    // The timed-out create may have been applied once the pause ended;
    // a fresh write goes through.
    store.create(&session("carol")).await.unwrap();
}

#[tokio::test]
async fn debug_sleep_times_out() {
    let server = server();
    let store = store(&server).await;
    let s = session("alice");
    store.create(&s).await.unwrap();

    let sleeping = server.debug_sleep(2.0);
    assert_timeout(bounded(store.get(&s.key)).await);
    assert_timeout(bounded(store.health()).await);
    tokio::task::spawn_blocking(move || sleeping.join().unwrap())
        .await
        .unwrap();
    assert_eq!(recovered(&store, &s.key).await, Some(s));
    store.health().await.unwrap();
}

#[tokio::test]
async fn acl_revocation_is_permission_denied_then_recovers() {
    let mut server = server();
    let store = store(&server).await;
    let s = session("alice");
    store.create(&s).await.unwrap();

    server.acl_revoke_gateway();
    let (r, _) = bounded(store.get(&s.key)).await;
    assert!(matches!(r, Err(StoreError::PermissionDenied(_))), "{r:?}");
    let (r, _) = bounded(store.compare_and_set(&next(&s), 1)).await;
    assert!(matches!(r, Err(StoreError::PermissionDenied(_))), "{r:?}");
    let (r, _) = bounded(store.health()).await;
    assert!(matches!(r, Err(StoreError::PermissionDenied(_))), "{r:?}");

    server.acl_restore();
    assert_eq!(recovered(&store, &s.key).await, Some(s.clone()));
    store.health().await.unwrap();

    // A new login of a disabled user is refused too (`WRONGPASS`), and
    // the store logs in again once the user is back.
    server.acl_revoke_gateway();
    let _: i64 = server.admin_cmd(&["CLIENT", "KILL", "USER", GATEWAY_USER]);
    for _ in 0..3 {
        let (r, _) = bounded(store.get(&s.key)).await;
        assert!(matches!(r, Err(StoreError::PermissionDenied(_))), "{r:?}");
    }
    server.acl_restore();
    assert_eq!(recovered(&store, &s.key).await, Some(s));
    let _ = &mut server;
}

#[tokio::test]
async fn maxmemory_refuses_new_sessions_but_reads_and_revocations_work() {
    let server = server();
    let store = store(&server).await;
    let kept = session("alice");
    let other = session("bob");
    store.create(&kept).await.unwrap();
    store.create(&other).await.unwrap();

    server.set_maxmemory_noeviction(server.used_memory() + 2 * 1024 * 1024);
    assert!(server.fill_memory() > 0);

    let (r, _) = bounded(store.create(&session("carol"))).await;
    assert!(matches!(r, Err(StoreError::OutOfMemory(_))), "{r:?}");
    let (r, _) = bounded(store.compare_and_set(&next(&kept), 1)).await;
    assert!(matches!(r, Err(StoreError::OutOfMemory(_))), "{r:?}");
    let (r, _) = bounded(store.health()).await;
    assert!(matches!(r, Err(StoreError::OutOfMemory(_))), "{r:?}");

    // Existing sessions are still checked ...
    assert_eq!(store.get(&kept.key).await.unwrap(), Some(kept.clone()));
    assert_eq!(
        store
            .list(&SessionFilter::default(), 10)
            .await
            .unwrap()
            .len(),
        2
    );
    // ... and revocation never waits for memory.
    assert!(store.revoke(&kept.key).await.unwrap());
    assert!(store.get(&kept.key).await.unwrap().unwrap().revoked);
    let by_sub = SessionFilter {
        subject: Some("bob".into()),
        thumbprint: None,
    };
    assert_eq!(store.revoke_matching(&by_sub).await.unwrap(), 1);
    assert_eq!(store.collect_expired(unix_now()).await.unwrap(), 0);

    // Memory freed: writes resume.
    let _: () = server.admin_cmd(&["FLUSHDB"]);
    store.health().await.unwrap();
    store.create(&session("dave")).await.unwrap();
}

#[tokio::test]
async fn read_only_replica_refuses_writes() {
    let primary = server();
    let on_primary = store(&primary).await;
    let s = session("alice");
    on_primary.create(&s).await.unwrap();

    let replica = RedisServer::start_replica_of(&primary);
    let on_replica = store(&replica).await;
    // Reads are served (once replicated).
    assert_eq!(recovered_some(&on_replica, &s).await, s);
    assert_eq!(
        on_replica
            .list(&SessionFilter::default(), 10)
            .await
            .unwrap()
            .len(),
        1
    );

    let (r, _) = bounded(on_replica.create(&session("bob"))).await;
    assert!(matches!(r, Err(StoreError::ReadOnly(_))), "{r:?}");
    let (r, _) = bounded(on_replica.compare_and_set(&next(&s), 1)).await;
    assert!(matches!(r, Err(StoreError::ReadOnly(_))), "{r:?}");
    let (r, _) = bounded(on_replica.revoke(&s.key)).await;
    assert!(matches!(r, Err(StoreError::ReadOnly(_))), "{r:?}");
    let by_sub = SessionFilter {
        subject: Some("alice".into()),
        thumbprint: None,
    };
    let (r, _) = bounded(on_replica.revoke_matching(&by_sub)).await;
    assert!(matches!(r, Err(StoreError::ReadOnly(_))), "{r:?}");
    let (r, _) = bounded(on_replica.collect_expired(unix_now() + 7200)).await;
    assert!(matches!(r, Err(StoreError::ReadOnly(_))), "{r:?}");
    let (r, _) = bounded(on_replica.health()).await;
    assert!(matches!(r, Err(StoreError::ReadOnly(_))), "{r:?}");

    // Nothing was written anywhere.
    let got = on_primary.get(&s.key).await.unwrap().unwrap();
    assert_eq!(got, s);
    on_primary.health().await.unwrap();
    assert!(matches!(
        on_primary.compare_and_set(&next(&s), 1).await.unwrap(),
        CasOutcome::Updated
    ));
}

/// Waits until the replica has the session.
async fn recovered_some(store: &RedisStore, s: &Session) -> Session {
    let deadline = Instant::now() + RECOVERY_BOUND;
    loop {
        if let Ok(Some(found)) = store.get(&s.key).await {
            return found;
        }
        assert!(Instant::now() < deadline, "replica never had the session");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
