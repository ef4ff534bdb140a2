//! End to end: an established mTLS connection is served only while its
//! client certificate would still be accepted. A certificate that expires
//! while the connection is open, or that a new CRL revokes (a watched
//! file, reloaded), gets 403 on the same connection, which then ends
//! (HTTP/1: `Connection: close`, HTTP/2: GOAWAY); certificates that still pass keep
//! their connections across the reload, and an anonymous connection ends
//! when its listener starts requiring certificates.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test: a failed step must abort the test"
)]

mod common;

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use portcullis_identity::SpiffeId;
use portcullis_pki::IssueRequest;

const RELOADED: &str = r#"portcullis_config_reloads_total{result="success"}"#;

fn get(path: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Revokes `revoked` in the intermediate's CRL and waits for the watched
/// reload.
async fn revoke(env: &TestEnv, crl: &std::path::Path, revoked: &ClientCert) {
    env.revoke(crl, revoked);
    assert_eq!(env.gw.wait_metric_at_least(RELOADED, 1.0).await, 1.0);
}

/// The last audit record, once at least `n` exist.
async fn audit_record(env: &TestEnv, n: usize) -> serde_json::Value {
    let records = env.gw.wait_audit(n).await;
    assert!(records.len() >= n, "{records:?}");
    records[records.len() - 1].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_revoked_by_a_new_crl_loses_its_open_connection() {
    let (env, crl) = TestEnv::start_with_crls().await;
    let mut reader = env.reader.h1_session(env.gw.addr).await.unwrap();
    let mut writer = env.writer.h1_session(env.gw.addr).await.unwrap();
    assert_eq!(
        send_on(&mut reader, get("/api/x")).await.unwrap().status,
        200
    );
    assert_eq!(
        send_on(&mut writer, get("/api/x")).await.unwrap().status,
        200
    );
    assert_eq!(env.up.count(), 2);

    revoke(&env, &crl, &env.reader_cert).await;

    // Same connection, next request: refused, nothing forwarded, and the
    // connection ends.
    let r = send_on(&mut reader, get("/api/x")).await.unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.headers["connection"], "close");
    assert_eq!(env.up.count(), 2);
    let rec = audit_record(&env, 3).await;
    assert_eq!(rec["decision"], "deny");
    let reason = rec["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("connection_certificate_refused:") && reason.contains("(revoked)"),
        "{reason}"
    );
    assert!(send_on(&mut reader, get("/api/x")).await.is_err());
    // A new connection with it fails the handshake.
    assert!(env.reader.get(env.gw.addr, "/api/x").await.is_err());

    // The writer's certificate passes the new CRLs: its open connection
    // goes on.
    assert_eq!(
        send_on(&mut writer, get("/api/x")).await.unwrap().status,
        200
    );
    assert_eq!(
        send_on(&mut writer, get("/api/x")).await.unwrap().status,
        200
    );
    assert_eq!(env.up.count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_revoked_by_a_new_crl_is_refused_on_an_open_http2_connection() {
    let (env, crl) = TestEnv::start_with_crls().await;
    let h2 = Client::h2(&env.pki, Some(&env.reader_cert));
    let (mut reader, conn) = h2.h2_session(env.gw.addr).await.unwrap();
    let send = |s: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>| {
        let req = http::Request::get(format!("https://localhost:{}/api/x", env.gw.addr.port()))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let fut = s.send_request(req);
        async move { Resp::read(fut.await.unwrap()).await.unwrap() }
    };
    assert_eq!(send(&mut reader).await.status, 200);

    revoke(&env, &crl, &env.reader_cert).await;

    let r = send(&mut reader).await;
    assert_eq!(r.status, 403);
    assert_eq!(env.up.count(), 1);
    // The gateway sent GOAWAY: the connection ends.
    let ended = tokio::time::timeout(WAIT, conn).await;
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "the refused HTTP/2 connection did not end: {ended:?}"
    );
    let rec = audit_record(&env, 2).await;
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .starts_with("connection_certificate_refused:"),
        "{rec}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_that_expires_loses_its_open_connection() {
    let env = TestEnv::start().await;
    let mut req = IssueRequest::client("short");
    req.spiffe_id = Some(SpiffeId::parse("spiffe://example.org/ns/test/sa/reader").unwrap());
    // The validity ends on a whole second (X.509 time), 2–3 s from now.
    req.not_after = SystemTime::now() + Duration::from_secs(3);
    let short = env.pki.issue("short", &req);
    let client = Client::new(&env.pki, Some(&short));
    let mut session = client.h1_session(env.gw.addr).await.unwrap();
    assert_eq!(
        send_on(&mut session, get("/api/x")).await.unwrap().status,
        200
    );

    tokio::time::sleep(Duration::from_millis(4200)).await;
    let r = send_on(&mut session, get("/api/x")).await.unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(env.up.count(), 1);
    let rec = audit_record(&env, 2).await;
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .starts_with("connection_certificate_expired:"),
        "{rec}"
    );
    // A new handshake with it is refused as expired.
    assert!(client.get(env.gw.addr, "/api/x").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_connection_ends_when_its_listener_starts_requiring_certificates() {
    let env = TestEnv::start_with(
        UpstreamBehaviour::default(),
        |c, _, _| c.replacen("    tls:\n", "    tls:\n      client_auth: optional\n", 1),
        BASIC_POLICY,
    )
    .await;
    let anon = Client::new(&env.pki, None);
    let mut session = anon.h1_session(env.gw.addr).await.unwrap();
    // Anonymous: the policy has no role for it.
    assert_eq!(
        send_on(&mut session, get("/api/x")).await.unwrap().status,
        403
    );
    let rec = audit_record(&env, 1).await;
    assert!(
        rec["reason"].as_str().unwrap().starts_with("no_roles"),
        "{rec}"
    );

    let dir = env.dir.path();
    let config = std::fs::read_to_string(dir.join("portcullis.yaml")).unwrap();
    let required = config.replacen(
        "      client_auth: optional\n",
        "      client_auth: required\n",
        1,
    );
    assert_ne!(required, config);
    write_atomic(dir, "portcullis.yaml", &required);
    assert_eq!(env.gw.wait_metric_at_least(RELOADED, 1.0).await, 1.0);
    let r = send_on(&mut session, get("/api/x")).await.unwrap();
    assert_eq!(r.status, 403);
    let rec = audit_record(&env, 2).await;
    let reason = rec["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("connection_certificate_refused:")
            && reason.contains("(no_client_cert)"),
        "{reason}"
    );
    assert_eq!(env.up.count(), 0);
}
