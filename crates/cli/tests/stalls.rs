//! Bodies that stop flowing: `routes[].upstream.body_timeout` cuts off a
//! stalled upstream response and a stalled client request body.
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn with_body_timeout(config: String) -> String {
    config.replacen(
        "      request_timeout: 5s\n",
        "      request_timeout: 5s\n      body_timeout: 300ms\n",
        1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upstream_body_is_cut_off() {
    // An upstream that promises 100 bytes, sends 3 and goes silent.
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = tcp.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = tcp.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc")
                    .await;
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(&dir.path().join("pki"));
    let gw = GatewayProc::start(
        dir.path(),
        &with_body_timeout(config_yaml(&pki, &[("api", "/api", up)], "")),
        BASIC_POLICY,
    );
    let reader = pki.workload("reader", "/ns/test/sa/reader");
    let r = Client::new(&pki, Some(&reader))
        .get(gw.addr, "/api/x")
        .await;
    let err = r.expect_err("a truncated body must not look complete");
    assert!(
        err.starts_with("body"),
        "the headers arrived, the body failed: {err}"
    );
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
    let mut tls = env.writer.tls(env.gw.addr).await.unwrap();
    tls.write_all(
        b"POST /api/upload HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\n\r\nabc",
    )
    .await
    .unwrap();
    tls.flush().await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(WAIT, async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if out.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the gateway must answer a stalled body");
    let text = String::from_utf8_lossy(&out);
    assert_eq!(raw_status(&text), Some(408), "{text}");
    // The upstream saw the head and a body that was cut off, never 100 bytes.
    assert!(
        env.up.records().iter().all(|r| r.body.len() < 100),
        "the upstream never got a complete request"
    );
    let records = env.gw.wait_audit_where(|r| r["status"] == 408).await;
    let rec = records
        .iter()
        .find(|r| r["status"] == 408)
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
