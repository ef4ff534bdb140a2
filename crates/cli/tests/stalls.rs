//! Bodies that stop flowing: `routes[].upstream.body_timeout` cuts off a
//! stalled upstream response and a stalled client request body.
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The size of [`big_download`]'s response: far more than socket and
/// flow-control buffers hold.
const BIG: usize = 32 * 1024 * 1024;

/// A gateway with `timeouts.idle: 1s` in front of an upstream that answers
/// every request with [`BIG`] bytes.
async fn big_download() -> TestEnv {
    TestEnv::start_with(
        UpstreamBehaviour {
            body_len: Some(BIG),
            ..Default::default()
        },
        |c, _, _| with_listener_key(&c, "timeouts", "{ idle: 1s, header_read: 1s }"),
        BASIC_POLICY,
    )
    .await
}

fn with_body_timeout(config: String) -> String {
    config.replacen(
        "      request_timeout: 5s\n",
        "      request_timeout: 5s\n      body_timeout: 300ms\n",
        1,
    )
}

/// What a [`raw_upstream`] does after its answer.
enum After {
    /// Reads the next request on the connection.
    Next,
    /// Closes the connection.
    HangUp,
    /// Keeps the connection open and says nothing more.
    Stall,
}

/// An HTTP/1.1 upstream on 127.0.0.1 that writes, for each request head
/// it reads, the bytes `answer` gives for it, then does what it says.
async fn raw_upstream(answer: fn(&str) -> (&'static [u8], After)) -> std::net::SocketAddr {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = tcp.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = tcp.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                loop {
                    let n = match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let head = buf.get(..n).unwrap_or_default();
                    let (bytes, after) = answer(&String::from_utf8_lossy(head));
                    if s.write_all(bytes).await.is_err() {
                        return;
                    }
                    match after {
                        After::Next => {}
                        After::HangUp => return,
                        After::Stall => tokio::time::sleep(Duration::from_secs(60)).await,
                    }
                }
            });
        }
    });
    up
}

/// A gateway routing `/api` to `up` under [`BASIC_POLICY`], its
/// configuration passed through `edit`.
fn gateway_to(
    up: std::net::SocketAddr,
    edit: fn(String) -> String,
) -> (tempfile::TempDir, TestPki, GatewayProc) {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(&dir.path().join("pki"));
    let gw = GatewayProc::start(
        dir.path(),
        &edit(config_yaml(&pki, &[("api", "/api", up)], "")),
        BASIC_POLICY,
    );
    (dir, pki, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upstream_body_is_cut_off() {
    // An upstream that promises 100 bytes, sends 3 and goes silent.
    let up = raw_upstream(|_| {
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc",
            After::Stall,
        )
    })
    .await;
    let (_dir, pki, gw) = gateway_to(up, with_body_timeout);
    let reader = pki.workload("reader", "/ns/test/sa/reader");
    let r = Client::new(&pki, Some(&reader))
        .get(gw.addr, "/api/x")
        .await;
    let err = r.expect_err("a truncated body must not look complete");
    assert!(
        err.starts_with("body"),
        "the headers arrived, the body failed: {err}"
    );
    // The allow record went out with the head; the cut adds a second one.
    let cut = gw.wait_audit_record(|r| r["decision"] == "error").await;
    let reason = cut["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("response_incomplete: upstream body: body sent nothing for"),
        "{cut}"
    );
    let audit = gw.audit();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert_eq!(audit[0]["decision"], "allow");
    assert_eq!(audit[0]["request_id"], cut["request_id"]);
    assert_eq!(cut["status"], 200);
    let series = r#"portcullis_upstream_errors_total{route="api",kind="timeout"}"#;
    assert_eq!(gw.wait_metric_at_least(series, 1.0).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_cut_off_after_its_head_gets_a_second_audit_record() {
    // An upstream that answers `/api/whole` in full (with a length,
    // chunked, and chunked with a trailer section), and `/api/cut` with 3
    // of the 100 bytes it promised before it hangs up.
    let up = raw_upstream(|head| {
        if head.contains("/api/trailers") {
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n3\r\nabc\r\n0\r\nx-checksum: 1\r\n\r\n",
                After::Next,
            )
        } else if head.contains("/api/cut") {
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc",
                After::HangUp,
            )
        } else if head.contains("/api/chunked") {
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                After::Next,
            )
        } else {
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc",
                After::Next,
            )
        }
    })
    .await;
    let (_dir, pki, gw) = gateway_to(up, |c| c);
    let reader = pki.workload("reader", "/ns/test/sa/reader");
    for client in [
        Client::new(&pki, Some(&reader)),
        Client::h2(&pki, Some(&reader)),
    ] {
        for path in ["/api/whole", "/api/chunked", "/api/trailers"] {
            let r = client.get(gw.addr, path).await.unwrap();
            assert_eq!((r.status, &r.body[..]), (200, &b"abc"[..]), "{path}");
        }
        let head = client
            .send(
                gw.addr,
                http::Request::head("/api/whole")
                    .header("host", "localhost")
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(head.status, 200);
    }
    // Complete answers: one record each, nothing more.
    let audit = gw.wait_audit(8).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let audit_now = gw.audit();
    assert_eq!(audit_now.len(), 8, "{audit_now:?}");
    assert!(audit
        .iter()
        .all(|r| r["decision"] == "allow" && r["reason"].is_null()));

    let err = Client::new(&pki, Some(&reader))
        .get(gw.addr, "/api/cut")
        .await
        .expect_err("a truncated body must not look complete");
    assert!(err.starts_with("body"), "{err}");
    let cut = gw.wait_audit_record(|r| r["decision"] == "error").await;
    let allow = gw
        .audit()
        .into_iter()
        .find(|r| r["path"] == "/api/cut" && r["decision"] == "allow")
        .expect("the head's allow record");
    assert_eq!(cut["request_id"], allow["request_id"]);
    assert_eq!(cut["path"], "/api/cut");
    assert_eq!(cut["status"], 200);
    assert_eq!(cut["rule"], allow["rule"]);
    assert!(
        cut["reason"]
            .as_str()
            .unwrap()
            .starts_with("response_incomplete: upstream body:"),
        "{cut}"
    );
    let series = r#"portcullis_upstream_errors_total{route="api",kind="protocol"}"#;
    assert_eq!(gw.wait_metric_at_least(series, 1.0).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_body_is_answered_408() {
    let env = TestEnv::start_with(
        UpstreamBehaviour::default(),
        |c, _, _| with_body_timeout(c),
        BASIC_POLICY,
    )
    .await;
    // The writer promises 100 bytes, sends 3, then waits.
    let text = stalled_answer(
        &env,
        b"POST /api/upload HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\n\r\nabc",
    )
    .await;
    assert_eq!(raw_status(&text), Some(408), "{text}");
    // A GET announcing a chunked body and sending none: the gateway
    // waits for its first frame before forwarding, within the same bound.
    let text = stalled_answer(
        &env,
        b"GET /api/never-sent HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&text), Some(408), "{text}");
    assert!(
        env.up
            .records()
            .iter()
            .all(|r| r.target != "/api/never-sent"),
        "the GET's head waited for its body"
    );
    // The upstream saw the head and a body that was cut off, never 100 bytes.
    assert!(
        env.up.records().iter().all(|r| r.body.len() < 100),
        "the upstream never got a complete request"
    );
    let records = env
        .gw
        .wait_audit_where(|r| r["status"] == 408 && r["path"] == "/api/never-sent")
        .await;
    for path in ["/api/upload", "/api/never-sent"] {
        let rec = records
            .iter()
            .find(|r| r["status"] == 408 && r["path"] == path)
            .expect("an audit record for the 408");
        assert_eq!(rec["decision"], "deny");
        assert!(
            rec["reason"]
                .as_str()
                .unwrap()
                .starts_with("client_body_stalled"),
            "{rec}"
        );
    }
}

/// Sends `head` on a new connection and reads the answer's head, which
/// must come within [`WAIT`].
async fn stalled_answer(env: &TestEnv, head: &[u8]) -> String {
    let mut tls = env.writer.tls(env.gw.addr).await.unwrap();
    tls.write_all(head).await.unwrap();
    tls.flush().await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(WAIT, async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(buf.get(..n).unwrap_or_default());
                    if out.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the gateway must answer a stalled body");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_nothing_of_its_response_is_cut_off() {
    let len = BIG;
    let env = big_download().await;
    let mut tls = env.reader.tls(env.gw.addr).await.unwrap();
    tls.write_all(b"GET /api/big HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    // Read nothing while the gateway's writes fill the socket buffers and
    // then wait; past timeouts.idle it gives up on this client.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut received = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received += n,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection neither ended nor finished");
    assert!(
        received < len,
        "the whole {len}-byte body arrived ({received} bytes): the stalled client was never cut off"
    );
    let series = r#"portcullis_bad_requests_total{reason="send_timeout"}"#;
    assert_eq!(env.gw.wait_metric_at_least(series, 1.0).await, 1.0);
    // The client never got the body it was allowed: recorded as such.
    let cut = env.gw.wait_audit_record(|r| r["decision"] == "error").await;
    assert_eq!(
        cut["reason"],
        "response_incomplete: the connection ended before the body did"
    );
    assert_eq!(cut["status"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_that_grants_no_window_is_cut_off() {
    let env = big_download().await;
    let (mut send, conn) = Client::h2(&env.pki, Some(&env.reader_cert))
        .h2_session(env.gw.addr)
        .await
        .unwrap();
    let req = http::Request::get("https://localhost/api/big")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    // The body is not read: the client's flow-control window is used up
    // and never granted again, and the gateway's stream waits.
    let start = std::time::Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the gateway ends a connection stalled on its client");
    let took = start.elapsed();
    assert!(
        ended.unwrap().is_err(),
        "closed without GOAWAY, streams cut"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(8),
        "cut off after timeouts.idle (1 s): {took:?}"
    );
    let body = http_body_util::BodyExt::collect(resp.into_body()).await;
    assert!(body.is_err(), "a cut-off body must not look complete");
    let series = r#"portcullis_bad_requests_total{reason="send_timeout"}"#;
    assert_eq!(env.gw.wait_metric_at_least(series, 1.0).await, 1.0);
}
