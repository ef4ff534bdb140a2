//! Browser sessions shared by two real gateways through a real Redis:
//! MFA completed through one instance is honoured by the other on the very
//! next request, a revocation through one is refused by the other on the
//! very next request, and every store fault fails closed (503), shows in
//! `/readyz` and a metric, and heals by itself.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test: a failed step must abort the test"
)]

mod common;
#[path = "../../session/tests/common/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use common::browser::*;
use common::oidc::query_param;
use common::{metric_value, WAIT};
use redis_server::{RedisServer, GATEWAY_PASSWORD, GATEWAY_USER};

fn store_yaml(r: &RedisServer) -> String {
    let pw = r.dir().join("gw-password");
    std::fs::write(&pw, GATEWAY_PASSWORD).unwrap();
    format!(
        "    redis:\n      url: {}\n      username: {GATEWAY_USER}\n      password_file: {}\n      timeout: 300ms\n",
        r.url(),
        pw.display()
    )
}

/// Polls `f` until it is true (bounded).
async fn eventually(mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f().await {
        assert!(Instant::now() < deadline, "condition never held");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn mfa_through_one_instance_is_honoured_by_the_other_on_the_next_request() {
    let redis = RedisServer::start();
    let b = Browser::start_many(2, &store_yaml(&redis)).await;
    // alice logs in at A with a password only: B sends her to step up too.
    let session = b.login_at(0, "/app/home", "alice", "pw").await;
    assert_eq!(
        b.get_at(1, "/app/home", &[&session], true).await.status,
        200
    );
    let r = b.get_at(1, "/app/admin/keys", &[&session], false).await;
    assert_eq!(r.status, 403, "no MFA yet, at B");
    // Step-up through A.
    let r = b.get_at(0, "/app/admin/keys", &[&session], true).await;
    assert_eq!(r.status, 302);
    let txn = set_cookie(&r, "__Host-portcullis-login").unwrap();
    let callback = b.through_provider_at(0, &location(&r), "alice", "otp");
    let r = b.get_at(0, &path_of(&callback), &[&txn], true).await;
    assert_eq!(r.status, 302, "{}", b.gw.stderr());
    // The very next request, at B: allowed.
    let r = b.get_at(1, "/app/admin/keys", &[&session], false).await;
    assert_eq!(r.status, 200, "{}", b.instance(1).0.stderr());
}

#[tokio::test]
async fn revocation_through_one_instance_is_refused_by_the_other_on_the_next_request() {
    let redis = RedisServer::start();
    let b = Browser::start_many(2, &store_yaml(&redis)).await;
    let session = b.login_at(0, "/app/home", "bob", "pw").await;
    let other = b.login_at(1, "/app/home", "carol", "pw").await;
    assert_eq!(
        b.get_at(1, "/app/home", &[&session], false).await.status,
        200
    );
    // Logout at A revokes in the shared store...
    let r = b.get_at(0, "/.portcullis/logout", &[&session], true).await;
    assert_eq!(r.status, 302);
    // ...and B refuses the very next request.
    assert_eq!(
        b.get_at(1, "/app/home", &[&session], false).await.status,
        401
    );
    // Revocation by user through A's admin API, seen by B at once.
    let (status, body) = admin_request(
        &b.gw,
        "POST",
        "/admin/sessions/revoke",
        Some(ADMIN_TOKEN),
        r#"{"user": "carol"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(b.get_at(1, "/app/home", &[&other], false).await.status, 401);
    let a = b
        .instance(1)
        .0
        .wait_audit_where(|a| {
            a["reason"]
                .as_str()
                .is_some_and(|r| r.contains("session_revoked"))
        })
        .await;
    assert!(a.iter().any(|a| a["reason"]
        .as_str()
        .is_some_and(|r| r.contains("session_revoked"))));
}

/// The store-related part of `/readyz`.
async fn readyz(b: &Browser) -> (u16, serde_json::Value) {
    let (status, body) = b.gw.admin_get("/readyz").await;
    (status, serde_json::from_str(&body).unwrap())
}

#[tokio::test]
async fn a_stopped_or_paused_store_fails_closed_and_recovers_by_itself() {
    let redis = RedisServer::start();
    let b = Browser::start_many(1, &store_yaml(&redis)).await;
    let session = b.login("/app/home", "bob", "pw").await;
    assert_eq!(b.get("/app/home", &[&session], false).await.status, 200);

    // SIGSTOP: no answer within the store timeout -> 503, never a cached yes.
    redis.stop();
    let r = b.get("/app/home", &[&session], false).await;
    assert_eq!(r.status, 503);
    let (status, ready) = readyz(&b).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["session_store"]["healthy"], false, "{ready}");
    redis.cont();
    eventually(async || b.get("/app/home", &[&session], false).await.status == 200).await;
    let (status, _) = readyz(&b).await;
    assert_eq!(status, 200);

    // CLIENT PAUSE and DEBUG SLEEP: the same.
    redis.client_pause(2000);
    assert_eq!(b.get("/app/home", &[&session], false).await.status, 503);
    eventually(async || b.get("/app/home", &[&session], false).await.status == 200).await;
    let sleeper = redis.debug_sleep(1.5);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(b.get("/app/home", &[&session], false).await.status, 503);
    sleeper.join().unwrap();
    eventually(async || b.get("/app/home", &[&session], false).await.status == 200).await;

    let m = b.gw.metrics().await;
    assert!(
        metric_value(
            &m,
            "portcullis_session_store_errors_total{reason=\"timeout\"}"
        ) >= 3.0,
        "{m}"
    );
}

#[tokio::test]
async fn a_killed_store_fails_closed_and_serves_again_after_restart() {
    let mut redis = RedisServer::start();
    let b = Browser::start_many(1, &store_yaml(&redis)).await;
    let session = b.login("/app/home", "bob", "pw").await;
    redis.kill();
    assert_eq!(b.get("/app/home", &[&session], false).await.status, 503);
    assert_eq!(
        b.get("/app/home", &[&session], true).await.status,
        503,
        "no login either"
    );
    redis.restart();
    // The restarted server lost its data (no persistence): the old cookie
    // names no session any more, and a new login works.
    eventually(async || b.get("/app/home", &[&session], false).await.status == 401).await;
    let fresh = b.login("/app/home", "bob", "pw").await;
    assert_eq!(b.get("/app/home", &[&fresh], false).await.status, 200);
}

#[tokio::test]
async fn revoked_acl_and_out_of_memory_fail_closed() {
    let redis = RedisServer::start();
    let b = Browser::start_many(1, &store_yaml(&redis)).await;
    let session = b.login("/app/home", "bob", "pw").await;

    // The gateway's Redis user loses its rights.
    redis.acl_revoke_gateway();
    assert_eq!(b.get("/app/home", &[&session], false).await.status, 503);
    let m = b.gw.metrics().await;
    assert!(
        metric_value(
            &m,
            "portcullis_session_store_errors_total{reason=\"permission_denied\"}"
        ) >= 1.0,
        "{m}"
    );
    redis.acl_restore();
    eventually(async || b.get("/app/home", &[&session], false).await.status == 200).await;

    // Out of memory with noeviction: existing sessions still work (reads),
    // a new login cannot be stored and fails closed.
    redis.set_maxmemory_noeviction(redis.used_memory() + 4 * 1024 * 1024);
    redis.fill_memory();
    assert_eq!(b.get("/app/home", &[&session], false).await.status, 200);
    let r = b.get("/app/home", &[], true).await;
    let callback = b.through_provider(&location(&r), "dave", "pw");
    let txn = set_cookie(&r, "__Host-portcullis-login").unwrap();
    let r = b.get(&path_of(&callback), &[&txn], true).await;
    assert_eq!(r.status, 503, "the session could not be written");
    assert!(set_cookie(&r, "__Host-portcullis-session").is_none());
    let (status, ready) = readyz(&b).await;
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["session_store"]["error"]
            .as_str()
            .unwrap()
            .starts_with("out_of_memory"),
        "{ready}"
    );
}

#[tokio::test]
async fn a_gateway_pointed_at_a_read_only_replica_fails_closed() {
    let primary = RedisServer::start();
    let replica = RedisServer::start_replica_of(&primary);
    let b = Browser::start_many(1, &store_yaml(&replica)).await;
    let r = b.get("/app/home", &[], true).await;
    assert_eq!(r.status, 302);
    let txn = set_cookie(&r, "__Host-portcullis-login").unwrap();
    let callback = b.through_provider(&location(&r), "bob", "pw");
    assert!(query_param(&callback, "code").is_some());
    let r = b.get(&path_of(&callback), &[&txn], true).await;
    assert_eq!(r.status, 503);
    let (status, ready) = readyz(&b).await;
    assert_eq!(status, 503);
    assert!(
        ready["session_store"]["error"]
            .as_str()
            .unwrap()
            .starts_with("read_only"),
        "{ready}"
    );
}

#[tokio::test]
async fn a_logout_while_the_store_is_down_clears_the_cookie_and_says_it_failed() {
    let redis = RedisServer::start();
    let b = Browser::start_many(1, &store_yaml(&redis)).await;
    let session = b.login("/app/home", "bob", "pw").await;
    redis.stop();
    let r = b.get("/.portcullis/logout", &[&session], true).await;
    redis.cont();
    // Fails closed (503), but the browser's side of the session ends.
    assert_eq!(r.status, 503);
    let cleared = r.headers.get_all("set-cookie").iter().any(|v| {
        v.to_str()
            .unwrap()
            .starts_with("__Host-portcullis-session=;")
    });
    assert!(cleared, "{:?}", r.headers);
    assert!(
        b.gw.stderr()
            .contains("logout: the session could not be revoked in the store"),
        "{}",
        b.gw.stderr()
    );
    // Once the store is back, a logout revokes it.
    eventually(async || b.get("/app/home", &[&session], false).await.status == 200).await;
    let r = b.get("/.portcullis/logout", &[&session], true).await;
    assert_eq!(r.status, 302);
    assert_eq!(b.get("/app/home", &[&session], false).await.status, 401);
}
