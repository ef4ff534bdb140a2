//! Connection limits and the end of a gateway's life: SIGINT, and a drain
//! that runs out of time.
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_closed_and_counted() {
    let env = TestEnv::start_with(
        UpstreamBehaviour::default(),
        |c, _, _| with_listener_limits(&c, "{ max_connections: 2 }"),
        BASIC_POLICY,
    )
    .await;
    // Two connections hold both slots.
    let mut a = env.reader.h1_session(env.gw.addr).await.unwrap();
    let mut b = env.reader.h1_session(env.gw.addr).await.unwrap();
    let get = || {
        http::Request::get("/api/x")
            .header("host", "localhost")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    };
    assert_eq!(send_on(&mut a, get()).await.unwrap().status, 200);
    assert_eq!(send_on(&mut b, get()).await.unwrap().status, 200);

    // A third is closed before its handshake and counted.
    let third = env.reader.get(env.gw.addr, "/api/x").await;
    assert!(
        third.is_err(),
        "third connection must be refused: {third:?}"
    );
    let series =
        r#"portcullis_tls_handshake_failures_total{listener="public",reason="connection_limit"}"#;
    assert!(env.gw.wait_metric_at_least(series, 1.0).await >= 1.0);
    assert_eq!(
        env.up.count(),
        2,
        "the refused connection forwarded nothing"
    );

    // Freeing a slot lets a new connection in.
    drop(a);
    let start = Instant::now();
    loop {
        match env.reader.get(env.gw.addr, "/api/x").await {
            Ok(r) => {
                assert_eq!(r.status, 200);
                break;
            }
            Err(e) => {
                assert!(start.elapsed() < WAIT, "slot never freed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert_eq!(
        send_on(&mut b, get()).await.unwrap().status,
        200,
        "held connections keep working"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_the_gateway_gracefully() {
    let mut env = TestEnv::start().await;
    assert_eq!(
        env.reader.get(env.gw.addr, "/api/x").await.unwrap().status,
        200
    );
    env.gw.signal("INT");
    assert_eq!(
        tokio::task::block_in_place(|| env.gw.wait_exit(WAIT)),
        Some(0)
    );
    let stderr = env.gw.stderr();
    assert!(
        stderr.contains("SIGINT received") && stderr.contains("portcullis stopped"),
        "{stderr}"
    );
    // The record of the request was flushed at shutdown.
    assert_eq!(env.gw.audit().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_ends_requests_that_take_too_long() {
    let mut env = TestEnv::start_with(
        UpstreamBehaviour {
            delay: Some(Duration::from_secs(15)),
            ..Default::default()
        },
        |c, _, _| c.replace("  drain_timeout: 10s\n", "  drain_timeout: 500ms\n"),
        BASIC_POLICY,
    )
    .await;
    let client = env.reader.clone();
    let addr = env.gw.addr;
    let slow = tokio::spawn(async move { client.get(addr, "/api/slow").await });
    let start = Instant::now();
    while env.up.count() == 0 {
        assert!(
            start.elapsed() < WAIT,
            "the slow request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.gw.signal("TERM");
    // The process does not wait for the 15 s upstream: it exits once the
    // 500 ms drain timeout has passed.
    assert_eq!(
        tokio::task::block_in_place(|| env.gw.wait_exit(Duration::from_secs(10))),
        Some(0)
    );
    let stderr = env.gw.stderr();
    assert!(stderr.contains("drain timeout reached"), "{stderr}");
    let r = slow.await.unwrap();
    assert!(r.is_err(), "the cut-off request gets no response: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_in_flight_http2_request() {
    let mut env = TestEnv::start_with(
        UpstreamBehaviour {
            delay: Some(Duration::from_millis(1000)),
            ..Default::default()
        },
        |c, _, _| c,
        BASIC_POLICY,
    )
    .await;
    let client = Client::h2(&env.pki, Some(&env.reader_cert));
    let addr = env.gw.addr;
    let in_flight = tokio::spawn(async move { client.get(addr, "/api/slow-h2").await });
    let start = Instant::now();
    while env.up.count() == 0 {
        assert!(
            start.elapsed() < WAIT,
            "the request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    env.gw.signal("TERM");
    let resp = tokio::time::timeout(WAIT, in_flight)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.version, http::Version::HTTP_2);
    assert_eq!(
        tokio::task::block_in_place(|| env.gw.wait_exit(WAIT)),
        Some(0)
    );
    let stderr = env.gw.stderr();
    assert!(!stderr.contains("drain timeout reached"), "{stderr}");
    assert_eq!(env.gw.audit().len(), 1, "the drained request was audited");
}
