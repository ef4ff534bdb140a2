//! What crosses the hop besides the header section: the method judged is
//! the method forwarded, a client's broken body is the client's fault, and
//! an upstream can neither switch protocols nor speak in the gateway's
//! name.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions (clippy.toml allows these in tests)"
)]
mod common;

use std::net::SocketAddr;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_with_a_lowercase_letter_or_trace_is_refused_and_never_forwarded() {
    let env = TestEnv::start().await;
    // The policy denies the writer nothing on /api but lets the reader
    // only GET and HEAD: `delete` judged as an unknown method, run as
    // DELETE by an upstream that folds case, would be a way around that.
    for (method, status, reason) in [
        ("delete", 400, "method_not_uppercase"),
        ("Delete", 400, "method_not_uppercase"),
        ("get", 400, "method_not_uppercase"),
        ("TRACE", 405, "method_trace"),
    ] {
        let raw = format!("{method} /api/records/1 HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let resp = env.raw(raw.as_bytes()).await;
        assert_eq!(raw_status(&resp), Some(status), "{method}: {resp}");
        let rec = env.gw.wait_audit_record(|r| r["method"] == method).await;
        assert_eq!(rec["decision"], "deny", "{rec}");
        assert!(rec["reason"].as_str().unwrap().starts_with(reason), "{rec}");
    }
    assert_eq!(env.up.count(), 0, "nothing forwarded");
    let metrics = env.gw.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "portcullis_bad_requests_total{reason=\"method_not_uppercase\"}"
        ),
        3.0,
        "{metrics}"
    );
    env.assert_still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_request_body_is_400_and_not_counted_against_the_upstream() {
    let env = TestEnv::start().await;
    // A chunk whose data is longer than its size line says.
    let raw = "POST /api/upload HTTP/1.1\r\nHost: localhost\r\n\
               Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n";
    let resp = env.writer.raw(env.gw.addr, raw.as_bytes()).await.unwrap();
    assert_eq!(raw_status(&resp), Some(400), "{resp}");
    let rec = env
        .gw
        .wait_audit_record(|r| r["path"] == "/api/upload")
        .await;
    assert_eq!(rec["decision"], "deny", "{rec}");
    assert_eq!(rec["status"], 400, "{rec}");
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .starts_with("client_body_error"),
        "{rec}"
    );
    let metrics = env.gw.metrics().await;
    assert_eq!(
        metric_value(&metrics, "portcullis_upstream_errors_total"),
        0.0,
        "{metrics}"
    );
    env.assert_still_serving().await;
}

/// An upstream that answers every request with `response`.
async fn canned_upstream(response: &'static [u8]) -> SocketAddr {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = tcp.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(response).await;
                let _ = s.flush().await;
            });
        }
    });
    addr
}

async fn gateway_before(
    response: &'static [u8],
) -> (tempfile::TempDir, GatewayProc, Client, Client) {
    let up = canned_upstream(response).await;
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(&dir.path().join("pki"));
    let gw = GatewayProc::start(
        dir.path(),
        &config_yaml(&pki, &[("api", "/api", up)], ""),
        BASIC_POLICY,
    );
    let reader = pki.workload("reader", "/ns/test/sa/reader");
    let h1 = Client::new(&pki, Some(&reader));
    let h2 = Client::h2(&pki, Some(&reader));
    (dir, gw, h1, h2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_switching_protocols_unasked_is_502() {
    let (_dir, gw, h1, h2) = gateway_before(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    )
    .await;
    for client in [&h1, &h2] {
        let r = client.get(gw.addr, "/api/ws").await.unwrap();
        assert_eq!(r.status, 502, "{r:?}");
    }
    let rec = gw.wait_audit_record(|r| r["status"] == 502).await;
    assert_eq!(rec["decision"], "error", "{rec}");
    assert!(rec["reason"].as_str().unwrap().contains("101"), "{rec}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_cannot_send_the_gateways_headers_or_forbidden_trailers() {
    let (_dir, gw, _h1, h2) = gateway_before(
        b"HTTP/1.1 200 OK\r\n\
          Transfer-Encoding: chunked\r\n\
          Trailer: grpc-status, x-portcullis-identity, set-cookie\r\n\
          x-portcullis-identity: forged-by-upstream\r\n\
          x-portcullis-request-id: forged-by-upstream\r\n\
          x-app: kept\r\n\r\n\
          2\r\nok\r\n0\r\n\
          grpc-status: 0\r\n\
          x-portcullis-identity: forged-by-upstream\r\n\
          set-cookie: a=b\r\n\r\n",
    )
    .await;
    let r = h2.get(gw.addr, "/api/x").await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "ok");
    assert_eq!(r.headers["x-app"], "kept");
    assert!(r.headers.get("x-portcullis-identity").is_none(), "{r:?}");
    let rid = r.headers.get_all("x-portcullis-request-id");
    assert_eq!(rid.iter().count(), 1);
    assert_ne!(rid.iter().next().unwrap(), "forged-by-upstream");
    let trailers = r.trailers.expect("the upstream's trailers, cleaned");
    let names: Vec<&str> = trailers.keys().map(http::HeaderName::as_str).collect();
    assert_eq!(names, ["grpc-status"], "{trailers:?}");
}
