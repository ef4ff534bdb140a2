//! End to end over real sockets: client certificate verification (chain,
//! validity, revocation, EKU, X.509-SVID rules), optional client auth,
//! TLS versions, ALPN, Host/SNI binding and non-TLS input on the TLS port.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions (clippy.toml allows these in tests)"
)]
mod common;

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::{
    client_config, jwt_payload, raw_tcp, sha256_hex, tls_failure_series, write_client,
    BasicGateway, Client, ClientCert, TestPki, UpstreamBehaviour, TRUST_DOMAIN,
};
use http_body_util::Full;
use portcullis_identity::SpiffeId;
use portcullis_pki::{Ca, IssueRequest, Usage};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
const READER_ID: &str = "spiffe://example.org/ns/test/sa/reader";

fn spiffe(path: &str) -> SpiffeId {
    SpiffeId::parse(&format!("spiffe://{TRUST_DOMAIN}{path}")).unwrap()
}

/// The client presenting `cert` gets no HTTP response, the upstream gets
/// nothing, the handshake failure is counted under `reason` and audited
/// with it.
async fn assert_refused(env: &BasicGateway, cert: Option<&ClientCert>, reason: &str) {
    let before = env.gw.metric(&tls_failure_series(reason)).await;
    let res = Client::new(&env.pki, cert).get(env.gw.addr, "/api/x").await;
    assert!(res.is_err(), "expected a refused handshake, got {res:?}");
    let after = env
        .gw
        .wait_metric_at_least(&tls_failure_series(reason), before + 1.0)
        .await;
    assert_eq!(
        after,
        before + 1.0,
        "reason `{reason}` not counted once:\n{}",
        env.gw.metrics().await
    );
    let needle = format!("tls: {reason}:");
    let audit = env
        .gw
        .wait_audit_where(|r| r["reason"].as_str().unwrap_or("").starts_with(&needle))
        .await;
    let rec = audit
        .iter()
        .find(|r| r["reason"].as_str().unwrap_or("").starts_with(&needle))
        .unwrap_or_else(|| panic!("no audit record with reason `{reason}`: {audit:?}"));
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["method"], "-");
    assert_eq!(rec["principal"], "anonymous");
    assert_eq!(
        env.upstream.count(),
        0,
        "the upstream must not see a refused client"
    );
}

async fn get_ok(client: &Client, env: &BasicGateway) -> common::Resp {
    let resp = client.get(env.gw.addr, "/api/x").await.unwrap();
    assert_eq!(
        resp.status,
        200,
        "{resp:?}\n{}",
        String::from_utf8_lossy(&resp.body)
    );
    resp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_workload_cert_is_forwarded_with_identity_assertion() {
    let env = BasicGateway::start("").await;
    let reader = env.reader();
    let resp = get_ok(&Client::new(&env.pki, Some(&reader)), &env).await;
    assert_eq!(&resp.body[..], b"upstream ok");
    let recs = env.upstream.records();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].method, "GET");
    assert_eq!(recs[0].target, "/api/x");
    let token = recs[0]
        .headers
        .get("x-portcullis-identity")
        .expect("identity assertion header")
        .to_str()
        .unwrap();
    let claims = jwt_payload(token);
    assert_eq!(claims["spiffe_id"], READER_ID);
    assert_eq!(claims["sub"], READER_ID);
    assert_eq!(
        claims["cert_thumbprint"],
        sha256_hex(&reader.key.cert_der).as_str()
    );
    assert_eq!(claims["aud"], "api");
    assert_eq!(claims["roles"], serde_json::json!(["reader"]));
    // The request id the client got is the one the upstream got.
    assert_eq!(
        recs[0].headers.get("x-portcullis-request-id"),
        resp.headers.get("x-portcullis-request-id")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_client_cert_is_refused() {
    let env = BasicGateway::start("").await;
    assert_refused(&env, None, "no_client_cert").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cert_from_unknown_ca_is_refused() {
    let env = BasicGateway::start("").await;
    let other_root = Ca::new_root("Other Root CA").unwrap();
    let other_inter = other_root.new_intermediate("Other Intermediate").unwrap();
    let mut req = IssueRequest::client("reader");
    req.spiffe_id = Some(spiffe("/ns/test/sa/reader"));
    let key = other_inter.issue(&req).unwrap();
    let stranger = write_client(&env.pki.dir, "stranger", key, other_inter.cert_pem());
    assert_refused(&env, Some(&stranger), "unknown_ca").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_not_yet_valid_certs_are_refused() {
    let env = BasicGateway::start("").await;
    let now = SystemTime::now();

    let mut req = IssueRequest::client("reader");
    req.spiffe_id = Some(spiffe("/ns/test/sa/reader"));
    req.not_before = now - 2 * DAY;
    req.not_after = now - DAY;
    let expired = env.pki.issue("expired", &req);
    assert_refused(&env, Some(&expired), "expired").await;

    req.not_before = now + DAY;
    req.not_after = now + 2 * DAY;
    let future = env.pki.issue("future", &req);
    assert_refused(&env, Some(&future), "not_yet_valid").await;
}

/// `crl.pem` holds the intermediate's CRL (revoking `revoked`) and the
/// root's (revoking nothing): with CRLs configured, every certificate of
/// the chain needs a CRL from its issuer.
fn write_crls(pki: &TestPki, revoked: &ClientCert) -> String {
    let inter = pki.crl("inter-crl.pem", &[revoked]);
    let root = pki.root.crl(&[], Duration::from_secs(3600)).unwrap();
    let both = format!("{}{root}", std::fs::read_to_string(inter).unwrap());
    let path = pki.dir.join("crl.pem");
    std::fs::write(&path, both).unwrap();
    format!("      crls: [{}]\n", path.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_cert_is_refused_and_others_accepted() {
    let mut revoked = None;
    let env = BasicGateway::start_with(UpstreamBehaviour::default(), |pki| {
        let a = pki.workload("cert-a", "/ns/test/sa/reader");
        let extra = write_crls(pki, &a);
        revoked = Some(a);
        extra
    })
    .await;
    let a = revoked.unwrap();
    let b = env.pki.workload("cert-b", "/ns/test/sa/reader");
    assert_refused(&env, Some(&a), "revoked").await;
    get_ok(&Client::new(&env.pki, Some(&b)), &env).await;
    assert_eq!(env.upstream.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crl_missing_for_a_chain_member_fails_closed() {
    // Only the intermediate's CRL: the intermediate's own status (issued by
    // the root) is unknown, so even an unrevoked leaf is refused.
    let env = BasicGateway::start_with(UpstreamBehaviour::default(), |pki| {
        let other = pki.workload("other", "/ns/test/sa/other");
        let crl = pki.crl("crl.pem", &[&other]);
        format!("      crls: [{}]\n", crl.display())
    })
    .await;
    let b = env.reader();
    assert_refused(&env, Some(&b), "revocation_unknown").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certs_breaking_svid_rules_are_refused() {
    let env = BasicGateway::start("").await;

    let mut two = IssueRequest::client("two");
    two.spiffe_id = Some(spiffe("/ns/test/sa/reader"));
    two.extra_uri_sans = vec!["spiffe://example.org/ns/test/sa/writer".to_owned()];
    let two = env.pki.issue("two-uris", &two);
    assert_refused(&env, Some(&two), "bad_svid").await;

    let mut non_spiffe = IssueRequest::client("web");
    non_spiffe.extra_uri_sans = vec!["https://example.org/ns/test/sa/reader".to_owned()];
    let non_spiffe = env.pki.issue("non-spiffe", &non_spiffe);
    assert_refused(&env, Some(&non_spiffe), "bad_svid").await;

    let mut foreign = IssueRequest::client("foreign");
    foreign.spiffe_id = Some(SpiffeId::parse("spiffe://other.org/ns/test/sa/reader").unwrap());
    let foreign = env.pki.issue("foreign", &foreign);
    assert_refused(&env, Some(&foreign), "bad_svid").await;

    let mut signer = IssueRequest::client("signer");
    signer.spiffe_id = Some(spiffe("/ns/test/sa/reader"));
    signer.cert_sign_usage = true;
    let signer = env.pki.issue("signer", &signer);
    assert_refused(&env, Some(&signer), "bad_svid").await;

    // A CA:true leaf never reaches the SVID check: path validation
    // (webpki) refuses a CA certificate as an end entity first.
    let mut ca_leaf = IssueRequest::client("ca-leaf");
    ca_leaf.spiffe_id = Some(spiffe("/ns/test/sa/reader"));
    ca_leaf.is_ca = true;
    let ca_leaf = env.pki.issue("ca-leaf", &ca_leaf);
    assert_refused(&env, Some(&ca_leaf), "bad_certificate").await;

    assert_eq!(env.upstream.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_auth_only_cert_is_refused_as_client_cert() {
    let env = BasicGateway::start("").await;
    let mut req = IssueRequest::client("server-only");
    req.spiffe_id = Some(spiffe("/ns/test/sa/reader"));
    req.usage = Usage::Server;
    let cert = env.pki.issue("server-only", &req);
    assert_refused(&env, Some(&cert), "bad_eku").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_client_auth_judges_anonymous_by_policy() {
    let env = BasicGateway::start("      client_auth: optional\n").await;
    let resp = Client::new(&env.pki, None)
        .get(env.gw.addr, "/api/x")
        .await
        .unwrap();
    assert_eq!(resp.status, 403);
    assert_eq!(env.upstream.count(), 0);
    let audit = env
        .gw
        .wait_audit_where(|r| r["status"] == 403 && r["path"] == "/api/x")
        .await;
    let rec = audit
        .iter()
        .find(|r| r["status"] == 403 && r["path"] == "/api/x")
        .unwrap_or_else(|| panic!("{audit:?}"));
    assert_eq!(rec["principal"], "anonymous");
    assert_eq!(rec["decision"], "deny");
    assert!(rec["spiffe_id"].is_null() && rec["cert_thumbprint"].is_null());
    assert!(
        rec["reason"].as_str().unwrap().starts_with("no_roles"),
        "{rec}"
    );
    // No handshake failure was counted for the anonymous client.
    assert_eq!(
        env.gw.metric(&tls_failure_series("no_client_cert")).await,
        0.0
    );

    let reader = env.reader();
    get_ok(&Client::new(&env.pki, Some(&reader)), &env).await;
    assert_eq!(env.upstream.count(), 1);

    // Optional does not mean "anything goes": a bad certificate presented
    // is still refused.
    let mut req = IssueRequest::client("reader");
    req.spiffe_id = Some(spiffe("/ns/test/sa/reader"));
    req.not_before = SystemTime::now() - 2 * DAY;
    req.not_after = SystemTime::now() - DAY;
    let expired = env.pki.issue("expired", &req);
    let res = Client::new(&env.pki, Some(&expired))
        .get(env.gw.addr, "/api/x")
        .await;
    assert!(res.is_err(), "{res:?}");
    assert_eq!(env.upstream.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_only_and_tls13_only_clients_are_served() {
    let env = BasicGateway::start("").await;
    let reader = env.reader();
    for (version, expected) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let client = Client::with(client_config(
            &env.pki,
            Some(&reader),
            &[version],
            &[b"http/1.1"],
        ));
        let tls = client.tls(env.gw.addr).await.unwrap();
        assert_eq!(tls.get_ref().1.protocol_version(), Some(expected));
        drop(tls);
        get_ok(&client, &env).await;
    }
    assert_eq!(env.upstream.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_client_is_served_and_upstream_gets_http11() {
    let env = BasicGateway::start("").await;
    let reader = env.reader();
    let resp = get_ok(&Client::h2(&env.pki, Some(&reader)), &env).await;
    assert_eq!(resp.version, http::Version::HTTP_2);
    let recs = env.upstream.records();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].version, http::Version::HTTP_11);
    assert_eq!(recs[0].target, "/api/x");
    assert_eq!(
        recs[0].headers.get("host").and_then(|h| h.to_str().ok()),
        Some("localhost")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_not_matching_sni_is_misdirected() {
    let env = BasicGateway::start("").await;
    let reader = env.reader();
    let client = Client::new(&env.pki, Some(&reader));
    let req = http::Request::get("/api/x")
        .header("host", "other.example")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.send(env.gw.addr, req).await.unwrap();
    assert_eq!(resp.status, 421);
    assert_eq!(env.upstream.count(), 0);
    assert_eq!(
        env.gw
            .metric(r#"portcullis_bad_requests_total{reason="host_sni_mismatch"}"#)
            .await,
        1.0
    );
    // Same connection settings, matching host: served.
    get_ok(&client, &env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_on_tls_port_is_refused_and_gateway_keeps_serving() {
    let env = BasicGateway::start("").await;
    let out = raw_tcp(
        env.gw.addr,
        b"GET /api/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.closed, "connection left open: {out:?}");
    assert!(
        !out.received.starts_with(b"HTTP/"),
        "plain HTTP got an HTTP answer: {}",
        String::from_utf8_lossy(&out.received)
    );
    assert_eq!(env.upstream.count(), 0);
    env.gw
        .wait_metric_at_least(&tls_failure_series("protocol_error"), 1.0)
        .await;
    assert_eq!(
        env.gw.metric(&tls_failure_series("protocol_error")).await,
        1.0
    );

    let reader = env.reader();
    get_ok(&Client::new(&env.pki, Some(&reader)), &env).await;
    assert_eq!(env.upstream.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_client_hello_is_closed_and_gateway_keeps_serving() {
    let env = BasicGateway::start("").await;
    // A TLS record header announcing a handshake, then noise; and noise
    // that is not even a TLS record.
    let mut hello_like = vec![0x16, 0x03, 0x01, 0x00, 0x40];
    hello_like.extend(std::iter::repeat_n(0xA5, 0x40));
    for bytes in [hello_like, b"\x00\x01\x02garbage\xff\xfe".repeat(20)] {
        let out = raw_tcp(env.gw.addr, &bytes).await;
        assert!(out.closed, "connection left open: {out:?}");
        assert!(!out.received.starts_with(b"HTTP/"), "{out:?}");
    }
    assert_eq!(env.upstream.count(), 0);
    // Both were counted as protocol errors (not as a client giving up).
    let series = tls_failure_series("protocol_error");
    assert_eq!(env.gw.wait_metric_at_least(&series, 2.0).await, 2.0);
    let reader = env.reader();
    get_ok(&Client::new(&env.pki, Some(&reader)), &env).await;
    assert_eq!(env.upstream.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_is_bound_to_sni_over_http2_and_without_sni() {
    let env = BasicGateway::start("").await;
    let reader = env.reader();
    let get = |host: &'static str| {
        http::Request::get("/api/x")
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    // HTTP/2: the :authority is checked against SNI like Host.
    let h2 = Client::h2(&env.pki, Some(&reader));
    let resp = h2.send(env.gw.addr, get("other.example")).await.unwrap();
    assert_eq!((resp.status, resp.version), (421, http::Version::HTTP_2));
    let resp = h2.send(env.gw.addr, get("localhost")).await.unwrap();
    assert_eq!(resp.status, 200);

    // Connecting to an IP address sends no SNI: only an IP literal host
    // is accepted then.
    let mut by_ip = Client::new(&env.pki, Some(&reader));
    by_ip.server_name = "127.0.0.1".to_owned();
    let resp = by_ip.send(env.gw.addr, get("localhost")).await.unwrap();
    assert_eq!(resp.status, 421);
    let resp = by_ip.send(env.gw.addr, get("127.0.0.1")).await.unwrap();
    assert_eq!(resp.status, 200);

    assert_eq!(env.upstream.count(), 2);
    assert_eq!(
        env.gw
            .metric(r#"portcullis_bad_requests_total{reason="host_sni_mismatch"}"#)
            .await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_closed_after_the_handshake_timeout() {
    // Listener-level keys follow the `tls:` block.
    let env = BasicGateway::start("    timeouts:\n      tls_handshake: 300ms\n").await;
    let out = raw_tcp(env.gw.addr, b"").await;
    assert!(out.closed, "a client that never says hello must be closed");
    assert!(out.received.is_empty(), "{out:?}");
    let series = tls_failure_series("timeout");
    assert_eq!(env.gw.wait_metric_at_least(&series, 1.0).await, 1.0);
    let audit = env
        .gw
        .wait_audit_where(|r| {
            r["reason"]
                .as_str()
                .unwrap_or("")
                .starts_with("tls: timeout")
        })
        .await;
    assert!(
        audit.iter().any(|r| r["reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("tls: timeout")),
        "{audit:?}"
    );
    // The gateway still serves.
    let reader = env.reader();
    get_ok(&Client::new(&env.pki, Some(&reader)), &env).await;
}
