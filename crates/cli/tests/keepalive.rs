//! HTTP/1 keep-alive connections between requests: the gateway releases
//! its HTTP buffers after a short idle time and serves the client's next
//! request on the same TLS session; `timeouts.idle` closes connections
//! that stay silent, `timeouts.header_read` bounds a started head, and a
//! drain closes waiting connections at once.
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const IDLE_GAUGE: &str = "portcullis_connections_idle ";

/// The basic setup with the listener's `timeouts:` section set.
async fn start_with_timeouts(timeouts: &'static str) -> TestEnv {
    TestEnv::start_with(
        UpstreamBehaviour::default(),
        move |c, _, _| with_listener_key(&c, "timeouts", timeouts),
        BASIC_POLICY,
    )
    .await
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A connection that has sent one `GET /api/x` (its answer left unread).
async fn after_one_request(env: &TestEnv) -> Tls {
    let mut tls = env.reader.tls(env.gw.addr).await.unwrap();
    tls.write_all(b"GET /api/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    tls
}

fn get(path: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Polls the idle gauge until it is `want` (bounded by [`WAIT`]).
async fn wait_idle_gauge(gw: &GatewayProc, want: f64) -> f64 {
    let start = Instant::now();
    loop {
        let v = gw.metric(IDLE_GAUGE).await;
        if v == want || start.elapsed() > WAIT {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A reader connection after its handshake, left silent past the idle
/// release (parked without hyper's buffers).
async fn parked(env: &TestEnv) -> Tls {
    let tls = env.reader.tls(env.gw.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    tls
}

/// Checks a connection closed `took` after its first bytes was closed by
/// `header_read: 1s` (not `idle: 30s`), forwarded nothing, and was counted.
async fn closed_by_header_read(env: &TestEnv, took: Duration) {
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(8),
        "closed by header_read (1 s), not idle (30 s): {took:?}"
    );
    assert_eq!(env.up.count(), 0, "nothing forwarded");
    let series = r#"portcullis_bad_requests_total{reason="header_read_timeout"}"#;
    assert_eq!(env.gw.wait_metric_at_least(series, 1.0).await, 1.0);
}

/// Reads until the server closes the stream or `within` passes; true if
/// it closed (EOF or reset).
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(s: &mut S, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_releases_its_buffers_and_keeps_serving() {
    let env = TestEnv::start().await;
    let mut session = env.writer.h1_session(env.gw.addr).await.unwrap();
    for round in 0..3 {
        let r = send_on(&mut session, get(&format!("/api/get/{round}")))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "round {round}");
        // Idle past the release time: the connection parks without
        // hyper's buffers.
        assert_eq!(
            wait_idle_gauge(&env.gw, 1.0).await,
            1.0,
            "round {round}: the idle connection is parked"
        );
        // The next request, with a body, goes through on the same session.
        let post = http::Request::post(format!("/api/post/{round}"))
            .header("host", "localhost")
            .body(Full::new(Bytes::from(format!("body {round}"))))
            .unwrap();
        let r = send_on(&mut session, post).await.unwrap();
        assert_eq!(r.status, 200, "round {round}");
        assert_eq!(&r.body[..], b"upstream ok");
    }
    let records = env.up.records();
    assert_eq!(records.len(), 6);
    for (round, pair) in records.chunks(2).enumerate() {
        assert_eq!(pair[0].target, format!("/api/get/{round}"));
        assert_eq!(pair[1].target, format!("/api/post/{round}"));
        assert_eq!(&pair[1].body[..], format!("body {round}").as_bytes());
    }
    // One connection served all six requests.
    assert_eq!(
        env.gw
            .metric(r#"portcullis_connections_total{listener="public"}"#)
            .await,
        1.0
    );
    drop(session);
    assert_eq!(
        wait_idle_gauge(&env.gw, 0.0).await,
        0.0,
        "a closed connection is no longer counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_after_a_release_are_all_answered() {
    let env = TestEnv::start().await;
    let mut tls = env.reader.tls(env.gw.addr).await.unwrap();
    let one = b"GET /api/one HTTP/1.1\r\nHost: localhost\r\n\r\n";
    tls.write_all(one).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("upstream ok") {
        let n = tokio::time::timeout(WAIT, tls.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed early");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(wait_idle_gauge(&env.gw, 1.0).await, 1.0);
    // Two requests in one write, the second split across a second write.
    tls.write_all(b"GET /api/two HTTP/1.1\r\nHost: localhost\r\n\r\nGET /api/thr")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    tls.write_all(b"ee HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, tls.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert_eq!(rest.matches("HTTP/1.1 200 OK").count(), 2, "{rest}");
    let targets: Vec<String> = env.up.records().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/api/one", "/api/two", "/api/three"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_after_the_idle_timeout() {
    let env = start_with_timeouts("{ idle: 1s }").await;
    let mut used = after_one_request(&env).await;
    // After the handshake only.
    let mut silent = env.reader.tls(env.gw.addr).await.unwrap();
    let start = Instant::now();
    assert!(closed_within(&mut used, Duration::from_secs(5)).await);
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "closed before the idle timeout: {took:?}"
    );
    assert_eq!(env.up.count(), 1);
    assert_eq!(wait_idle_gauge(&env.gw, 0.0).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_head_is_bounded_by_header_read_not_idle() {
    let env = start_with_timeouts("{ idle: 30s, header_read: 1s }").await;
    // Idle first (parked), then half a head and silence.
    let mut tls = parked(&env).await;
    tls.write_all(b"GET /api/slow HTTP/1.1\r\nHost: loc")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let start = Instant::now();
    assert!(
        closed_within(&mut tls, Duration::from_secs(10)).await,
        "a slow head is cut off"
    );
    closed_by_header_read(&env, start.elapsed()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_waiting_connections_without_waiting_for_the_drain_timeout() {
    let mut env = TestEnv::start_with(
        UpstreamBehaviour::default(),
        |c, _, _| c.replace("  drain_timeout: 10s\n", "  drain_timeout: 30s\n"),
        BASIC_POLICY,
    )
    .await;
    let mut used = after_one_request(&env).await;
    let mut silent = env.reader.tls(env.gw.addr).await.unwrap();
    assert_eq!(wait_idle_gauge(&env.gw, 2.0).await, 2.0);
    let start = Instant::now();
    env.gw.signal("TERM");
    assert_eq!(
        tokio::task::block_in_place(|| env.gw.wait_exit(Duration::from_secs(10))),
        Some(0)
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "idle connections held the drain: {:?}",
        start.elapsed()
    );
    assert!(closed_within(&mut used, Duration::from_secs(2)).await);
    assert!(closed_within(&mut silent, Duration::from_secs(2)).await);
    let stderr = env.gw.stderr();
    assert!(!stderr.contains("drain timeout reached"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_record_dribbled_in_pieces_is_bounded_by_header_read() {
    let env = start_with_timeouts("{ idle: 30s, header_read: 1s }").await;
    // Parked, then the start of an application-data record that never
    // completes: a byte every 300 ms. Each byte wakes the connection, but
    // no request byte ever comes of them.
    let mut tls = parked(&env).await;
    let tcp = tls.get_mut().0;
    let start = Instant::now();
    let mut closed = false;
    for byte in [0x17u8, 0x03, 0x03, 0x00, 0xff]
        .into_iter()
        .chain([0u8; 40])
    {
        if tcp.write_all(&[byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 64];
        // Nothing to read is the usual outcome; an end or an error means
        // the gateway closed the connection.
        let read = tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut buf)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            closed = true;
            break;
        }
        if start.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    let took = start.elapsed();
    assert!(closed, "still open after {took:?} of dribbled bytes");
    closed_by_header_read(&env, took).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_tls_record_then_silence_is_bounded_by_header_read() {
    let env = start_with_timeouts("{ idle: 30s, header_read: 1s }").await;
    let mut tls = parked(&env).await;
    let tcp = tls.get_mut().0;
    tcp.write_all(&[0x17, 0x03, 0x03, 0x00, 0xff, 1, 2, 3])
        .await
        .unwrap();
    let start = Instant::now();
    assert!(
        closed_within(tcp, Duration::from_secs(10)).await,
        "half a record is cut off"
    );
    closed_by_header_read(&env, start.elapsed()).await;
}

/// An HTTP/2 connection to the gateway as the reader: its request
/// sender and the task running it.
async fn h2_session(
    env: &TestEnv,
) -> (
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    Client::h2(&env.pki, Some(&env.reader_cert))
        .h2_session(env.gw.addr)
        .await
        .unwrap()
}

async fn h2_get(send: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>) -> u16 {
    let req = http::Request::get("https://localhost/api/x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    send.ready().await.unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap();
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    let env = start_with_timeouts("{ idle: 1s, header_read: 1s }").await;
    let (mut send, task) = h2_session(&env).await;
    assert_eq!(h2_get(&mut send).await, 200);
    let start = Instant::now();
    // GOAWAY and a clean close, or a reset: either way it ended.
    let _ended = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the gateway closes an idle HTTP/2 connection")
        .unwrap();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "closed after timeouts.idle (1 s): {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_http2_connection_is_not_closed_as_idle() {
    let env = TestEnv::start_with(
        UpstreamBehaviour {
            delay: Some(Duration::from_millis(1600)),
            ..Default::default()
        },
        |c, _, _| with_listener_key(&c, "timeouts", "{ idle: 1s, header_read: 1s }"),
        BASIC_POLICY,
    )
    .await;
    let (mut send, task) = h2_session(&env).await;
    // One request whose answer takes longer than the idle timeout...
    assert_eq!(h2_get(&mut send).await, 200);
    // ...and then requests more often than the idle timeout.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!task.is_finished(), "closed while in use");
        assert_eq!(h2_get(&mut send).await, 200);
    }
    assert!(!task.is_finished(), "closed while in use");
}
