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

use bytes::Bytes;
use common::*;
use http_body_util::Full;
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
        assert!(reason_of(&rec).starts_with(reason), "{rec}");
    }
    assert_eq!(env.up.count(), 0, "nothing forwarded");
    env.gw.assert_bad_requests("method_not_uppercase", 3).await;
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
    assert!(reason_of(&rec).starts_with("client_body_error"), "{rec}");
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
    assert!(reason_of(&rec).contains("101"), "{rec}");
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

/// Every value of `name` the upstream received, in order.
fn received<'a>(rec: &'a common::Recorded, name: &str) -> Vec<&'a str> {
    rec.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> http::Request<Full<Bytes>> {
    let mut b = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_requests_name_the_gateway_last_in_via() {
    let env = TestEnv::start().await;
    let h2 = Client::h2(&env.pki, Some(&env.reader_cert));
    let r = env
        .reader
        .send(
            env.gw.addr,
            request("GET", "/api/via", &[("via", "1.0 corp-proxy, 1.1 lb")]),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let r = h2
        .send(env.gw.addr, request("GET", "/api/via2", &[]))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let records = env.up.records();
    assert_eq!(records.len(), 2);
    // The client's entries as sent, then the gateway's: the version the
    // request was received with and the default pseudonym.
    assert_eq!(
        received(&records[0], "via"),
        ["1.0 corp-proxy, 1.1 lb", "1.1 portcullis"]
    );
    assert_eq!(received(&records[1], "via"), ["2 portcullis"]);
    // Not added to responses.
    assert!(r.headers.get("via").is_none(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn via_takes_the_configured_pseudonym_or_is_not_sent() {
    for (setting, expected) in [
        ("via:\n  pseudonym: edge-7\n", vec!["1.1 edge-7"]),
        ("via:\n  send: false\n", vec![]),
    ] {
        let env = TestEnv::start_with(
            UpstreamBehaviour::default(),
            |c, _, _| format!("{c}{setting}"),
            BASIC_POLICY,
        )
        .await;
        let r = env.reader.get(env.gw.addr, "/api/x").await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let rec = env.up.records().pop().unwrap();
        assert_eq!(received(&rec, "via"), expected, "{setting}");
    }
}

/// [`BASIC_POLICY`] with OPTIONS allowed to readers, on a route that
/// lists its methods and forwards only `accept` of the client's headers.
async fn options_env() -> TestEnv {
    let policy = BASIC_POLICY.replace(
        "rules:\n",
        "rules:\n  - { id: api-options, effect: allow, roles: [reader], route: api, methods: [OPTIONS], path: \"/api/**\" }\n",
    );
    TestEnv::start_with(
        UpstreamBehaviour::default(),
        |c, _, _| {
            c.replacen(
                "    path_prefix: /api\n",
                "    path_prefix: /api\n    methods: [GET, HEAD, POST, PUT, DELETE, OPTIONS]\n    client_headers: [accept]\n",
                1,
            )
        },
        &policy,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_options_with_max_forwards_0_is_answered_by_the_gateway_once_allowed() {
    let env = options_env().await;
    let r = env
        .reader
        .send(
            env.gw.addr,
            request("OPTIONS", "/api/probe", &[("max-forwards", "0")]),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.is_empty(), "{r:?}");
    assert_eq!(r.headers["allow"], "GET, HEAD, POST, PUT, DELETE, OPTIONS");
    assert!(r.headers.get("x-portcullis-request-id").is_some(), "{r:?}");
    let rec = env
        .gw
        .wait_audit_record(|r| r["path"] == "/api/probe")
        .await;
    assert_eq!(rec["decision"], "allow", "{rec}");
    assert_eq!(rec["rule"], "api-options", "{rec}");
    assert_eq!(rec["status"], 200, "{rec}");

    // Only once allowed: the policy's deny still wins, and a workload
    // without an OPTIONS permission gets 403, not the gateway's answer.
    let r = env
        .reader
        .send(
            env.gw.addr,
            request("OPTIONS", "/api/admin/x", &[("max-forwards", "0")]),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{r:?}");
    let r = env
        .writer
        .send(
            env.gw.addr,
            request("OPTIONS", "/api/probe2", &[("max-forwards", "0")]),
        )
        .await
        .unwrap();
    // The writer inherits the reader's permissions, OPTIONS included.
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(env.up.count(), 0, "nothing forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_forwards_is_decremented_on_options_and_left_alone_elsewhere() {
    let env = options_env().await;
    for (method, sent, forwarded) in [
        ("OPTIONS", "3", "2"),
        ("OPTIONS", "1", "0"),
        ("OPTIONS", "18446744073709551616", "18446744073709551614"),
        // Meaningless on other methods: passed on as any header, here
        // removed by the route's `client_headers`.
        ("GET", "0", ""),
    ] {
        let path = format!("/api/{method}-{sent}");
        let r = env
            .reader
            .send(
                env.gw.addr,
                request(method, &path, &[("max-forwards", sent)]),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{method} {sent}: {r:?}");
        let rec = env.up.records().pop().unwrap();
        assert_eq!(rec.target, path);
        let want: Vec<&str> = if forwarded.is_empty() {
            vec![]
        } else {
            vec![forwarded]
        };
        // The gateway's own value survives the route's allow-list.
        assert_eq!(received(&rec, "max-forwards"), want, "{method} {sent}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_max_forwards_on_options_is_400_and_never_forwarded() {
    let env = options_env().await;
    for (i, value) in ["-1", "1, 2", "0x0", "one"].into_iter().enumerate() {
        let raw = format!(
            "OPTIONS /api/mf{i} HTTP/1.1\r\nHost: localhost\r\nMax-Forwards: {value}\r\n\r\n"
        );
        let resp = env.raw(raw.as_bytes()).await;
        assert_eq!(raw_status(&resp), Some(400), "{value}: {resp}");
        let rec = env
            .gw
            .wait_audit_record(|r| r["path"] == format!("/api/mf{i}"))
            .await;
        assert_eq!(rec["decision"], "deny", "{rec}");
        assert!(reason_of(&rec).starts_with("max_forwards_invalid"), "{rec}");
    }
    // Twice is refused too: two intermediaries could each read another.
    let raw = "OPTIONS /api/mf-twice HTTP/1.1\r\nHost: localhost\r\nMax-Forwards: 0\r\nMax-Forwards: 5\r\n\r\n";
    let resp = env.raw(raw.as_bytes()).await;
    assert_eq!(raw_status(&resp), Some(400), "{resp}");
    assert_eq!(env.up.count(), 0, "nothing forwarded");
    env.gw.assert_bad_requests("max_forwards_invalid", 5).await;
    env.assert_still_serving().await;
}
