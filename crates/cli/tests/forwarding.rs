//! End to end over real sockets: what the upstream receives. The judged
//! path and nothing else, no client-supplied identity or hop-by-hop
//! headers, a verifiable identity assertion, bodies streamed intact and
//! within limits, and the gateway's answers when the upstream fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions (clippy.toml allows these in tests)"
)]
mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use bytes::Bytes;
use common::tls_upstream::{
    behind_tls_upstream, behind_tls_upstream_with, https_route, tls_upstream, TlsUpstream,
};
use common::{
    closed_port, raw_status, raw_statuses, send_on, with_listener_limits, Client, Recorded,
    TestEnv, TestPki, UpstreamBehaviour, BASIC_POLICY,
};
use http_body_util::Full;
use hyper_util::rt::TokioIo;

const JWKS: &str = "/.well-known/portcullis/jwks.json";
const READER_ID: &str = "spiffe://example.org/ns/test/sa/reader";

fn header<'a>(rec: &'a Recorded, name: &str) -> Vec<&'a str> {
    rec.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

/// The value of `name` in a raw HTTP/1.1 response head.
fn raw_header(raw: &str, name: &str) -> Option<String> {
    raw.split("\r\n\r\n").next()?.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

fn req(method: &str, path: &str, body: Vec<u8>) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_route_is_404_from_the_gateway_and_never_forwarded() {
    let env = TestEnv::start().await;
    let r = env.reader.get(env.gw.addr, "/nothing/here").await.unwrap();
    assert_eq!(r.status, 404);
    // A generic body: nothing about the configured routes leaks.
    assert_eq!(r.body, "not found\n");
    assert_eq!(env.up.count(), 0);
    let rec = env
        .gw
        .wait_audit_record(|a| a["path"] == "/nothing/here")
        .await;
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["status"], 404);
    assert_eq!(rec["route"], serde_json::Value::Null);
    assert_eq!(rec["spiffe_id"], READER_ID);
    let reason = rec["reason"].as_str().unwrap();
    assert!(reason.starts_with("no_route:"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_receives_exactly_the_judged_path_and_the_query_unchanged() {
    let env = TestEnv::start().await;
    let cases = [
        ("/api/a/./b/../c", "/api/a/c"),
        ("/api/a/b/../../c", "/api/c"),
        ("/api//x", "/api/x"),
        ("/api/%7Euser", "/api/~user"),
        ("/api/%61bc/", "/api/abc/"),
        ("/api/./q/..//r?k=v", "/api/r?k=v"),
        (
            "/api/search?q=a%2Fb&path=../../etc&x=%7E&&empty=",
            "/api/search?q=a%2Fb&path=../../etc&x=%7E&&empty=",
        ),
    ];
    for (i, (sent, expected)) in cases.iter().enumerate() {
        let r = env.reader.get(env.gw.addr, sent).await.unwrap();
        assert_eq!(r.status, 200, "{sent}: {r:?}");
        let records = env.up.records();
        assert_eq!(records.len(), i + 1, "{sent}");
        assert_eq!(records[i].target, *expected, "{sent}");
        assert_eq!(records[i].method, "GET");
    }
    // The audit records the same (normalised) path the upstream got.
    let audit = env.gw.wait_audit(cases.len()).await;
    assert_eq!(audit.len(), cases.len(), "{audit:?}");
    for (rec, (sent, expected)) in audit.iter().zip(cases) {
        let path = expected.split('?').next().unwrap();
        assert_eq!(rec["path"], path, "{sent}");
        assert_eq!(rec["decision"], "allow", "{sent}");
        assert_eq!(rec["rule"], "api-read", "{sent}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_identity_and_provenance_headers_never_reach_the_upstream() {
    let env = TestEnv::start().await;
    let forged = [
        "x-portcullis-identity: forged",
        "x-portcullis-anything: forged",
        "x-portcullis-request-id: forged",
        "x-forwarded-user: forged",
        "x-forwarded-email: forged@example.org",
        "x-forwarded-groups: forged",
        "x-auth-request-user: forged",
        "x-client-cert: forged",
        "x-ssl-client-s-dn: CN=forged",
        "x-forwarded-client-cert: By=forged",
        "x-real-ip: 1.2.3.4",
        "forwarded: for=1.2.3.4;proto=http;host=evil",
        "x-forwarded-for: 1.2.3.4",
        "x-forwarded-proto: http",
        "x-forwarded-host: evil",
        "x_forwarded_user: forged",
        "X_Portcullis_Identity: forged",
        "X-FORWARDED-USER: forged",
        // trusted by well-known upstreams: Grafana, ASP.NET Core,
        // Kubernetes, nginx/Apache client-certificate conventions, Kong
        "X-WEBAUTH-USER: forged",
        "X-ARR-ClientCert: forged",
        "x-remote-group: forged",
        "x-ssl-cert: forged",
        "ssl-client-verify: forged",
        "x-userinfo: forged",
        "x-original-forwarded-for: 1.2.3.4",
        "client-ip: 1.2.3.4",
    ];
    let mut raw = String::from("GET /api/whoami HTTP/1.1\r\nHost: localhost\r\n");
    for h in forged {
        raw.push_str(h);
        raw.push_str("\r\n");
    }
    raw.push_str("x-kept: kept\r\nConnection: close\r\n\r\n");
    let resp = env.raw(raw.as_bytes()).await;
    assert_eq!(raw_status(&resp), Some(200), "{resp}");

    let records = env.up.records();
    assert_eq!(records.len(), 1);
    let rec = &records[0];
    // None of the client's values, under any spelling.
    for (name, value) in &rec.headers {
        let v = value.to_str().unwrap();
        assert!(
            !v.contains("forged") && !v.contains("1.2.3.4") && !v.contains("evil"),
            "client value reached the upstream: {name}: {v}"
        );
        assert!(
            !name.as_str().contains('_'),
            "underscore header forwarded: {name}"
        );
    }
    for gone in [
        "x-portcullis-anything",
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-auth-request-user",
        "x-client-cert",
        "x-ssl-client-s-dn",
        "x-forwarded-client-cert",
        "x-real-ip",
        "forwarded",
        "x-webauth-user",
        "x-arr-clientcert",
        "x-remote-group",
        "x-ssl-cert",
        "ssl-client-verify",
        "x-userinfo",
        "x-original-forwarded-for",
        "client-ip",
    ] {
        assert!(header(rec, gone).is_empty(), "{gone} forwarded");
    }
    // The gateway's own values, exactly once each.
    assert_eq!(header(rec, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(header(rec, "x-forwarded-proto"), ["https"]);
    assert_eq!(header(rec, "x-forwarded-host"), ["localhost"]);
    assert_eq!(header(rec, "x-kept"), ["kept"]);
    let ids = header(rec, "x-portcullis-identity");
    assert_eq!(ids.len(), 1);
    assert_eq!(common::jwt_payload(ids[0])["spiffe_id"], READER_ID);
    let rid = header(rec, "x-portcullis-request-id");
    assert_eq!(rid.len(), 1);
    assert_eq!(
        raw_header(&resp, "x-portcullis-request-id").as_deref(),
        Some(rid[0]),
        "{resp}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_with_client_headers_forwards_only_those_it_lists() {
    let env = TestEnv::start_with(
        UpstreamBehaviour::default(),
        |c, _, _| {
            c.replacen(
                "    path_prefix: /api\n",
                "    path_prefix: /api\n    client_headers: [Accept, content-type, x-app-version]\n",
                1,
            )
        },
        BASIC_POLICY,
    )
    .await;
    let req = http::Request::builder()
        .method("POST")
        .uri("/api/listed")
        .header("host", "localhost")
        .header("accept", "application/json")
        .header("content-type", "text/plain")
        .header("x-app-version", "7")
        // Not listed: none of these reaches the upstream.
        .header("x-webauth-user", "admin")
        .header("x-tenant", "other-tenant")
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .header("cookie", "session=abc")
        .header("user-agent", "test")
        .header("x-forwarded-user", "admin")
        .body(Full::new(Bytes::from_static(b"hello")))
        .unwrap();
    let r = env.writer.send(env.gw.addr, req).await.unwrap();
    assert_eq!(r.status, 200);
    let rec = env.up.records().pop().unwrap();
    assert_eq!(rec.body, "hello");
    let mut names: Vec<&str> = rec.headers.keys().map(|n| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "accept",
            "content-length",
            "content-type",
            "host",
            "via",
            "x-app-version",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto",
            "x-portcullis-identity",
            "x-portcullis-request-id",
        ],
        "{:?}",
        rec.headers
    );
    assert_eq!(header(&rec, "x-app-version"), ["7"]);
    assert_eq!(header(&rec, "accept"), ["application/json"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_header_cannot_remove_gateway_headers_and_hop_by_hop_is_dropped() {
    let env = TestEnv::start().await;
    let raw = "GET /api/conn HTTP/1.1\r\n\
               Host: localhost\r\n\
               Connection: close, x-portcullis-identity, x-portcullis-request-id, x-forwarded-for, x-forwarded-proto, x-custom-hop\r\n\
               Keep-Alive: timeout=5\r\n\
               TE: trailers\r\n\
               Upgrade: websocket\r\n\
               Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\
               Proxy-Connection: keep-alive\r\n\
               X-Custom-Hop: hop\r\n\
               X-Kept: kept\r\n\
               \r\n";
    let resp = env.raw(raw.as_bytes()).await;
    assert_eq!(raw_status(&resp), Some(200), "{resp}");
    let records = env.up.records();
    assert_eq!(records.len(), 1);
    let rec = &records[0];
    assert_eq!(header(rec, "x-portcullis-identity").len(), 1);
    assert_eq!(
        common::jwt_payload(header(rec, "x-portcullis-identity")[0])["spiffe_id"],
        READER_ID
    );
    assert_eq!(header(rec, "x-portcullis-request-id").len(), 1);
    assert_eq!(header(rec, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(header(rec, "x-forwarded-proto"), ["https"]);
    assert_eq!(header(rec, "x-kept"), ["kept"]);
    for gone in [
        "connection",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "x-custom-hop",
    ] {
        assert!(
            header(rec, gone).is_empty(),
            "{gone} forwarded: {:?}",
            rec.headers
        );
    }
}

/// The public key of the single JWK in `jwks`, as an uncompressed point.
fn jwk_point(jwks: &serde_json::Value) -> (String, Vec<u8>) {
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    let k = &keys[0];
    assert_eq!(k["kty"], "EC");
    assert_eq!(k["crv"], "P-256");
    assert_eq!(k["alg"], "ES256");
    assert_eq!(k["use"], "sig");
    let x = B64.decode(k["x"].as_str().unwrap()).unwrap();
    let y = B64.decode(k["y"].as_str().unwrap()).unwrap();
    assert_eq!((x.len(), y.len()), (32, 32));
    let mut point = vec![0x04];
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    (k["kid"].as_str().unwrap().to_owned(), point)
}

fn verify_es256(point: &[u8], token: &str) -> bool {
    let Some((signing_input, sig)) = token.rsplit_once('.') else {
        return false;
    };
    let Ok(sig) = B64.decode(sig) else {
        return false;
    };
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        point,
    )
    .verify(signing_input.as_bytes(), &sig)
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_assertion_verifies_against_the_published_jwks() {
    let env = TestEnv::start().await;
    // The JWKS through the gateway listener and from the admin listener.
    let r = env.reader.get(env.gw.addr, JWKS).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "application/json");
    let via_gateway: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let (status, body) = env.gw.admin_get(JWKS).await;
    assert_eq!(status, 200);
    let via_admin: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(via_gateway, via_admin);
    // Served by the gateway itself: never forwarded.
    assert_eq!(env.up.count(), 0);
    let (kid, point) = jwk_point(&via_gateway);

    let r = env.reader.get(env.gw.addr, "/api/whoami").await.unwrap();
    assert_eq!(r.status, 200);
    let records = env.up.records();
    assert_eq!(records.len(), 1);
    let rec = &records[0];
    let token = header(rec, "x-portcullis-identity")[0].to_owned();
    let rid = header(rec, "x-portcullis-request-id")[0].to_owned();
    assert_eq!(r.headers["x-portcullis-request-id"], rid.as_str());

    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let jose: serde_json::Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(jose["alg"], "ES256");
    assert_eq!(jose["kid"], kid.as_str());
    assert!(verify_es256(&point, &token), "signature does not verify");

    let claims = common::jwt_payload(&token);
    assert_eq!(claims["iss"], "portcullis");
    assert_eq!(claims["aud"], "api");
    assert_eq!(claims["sub"], READER_ID);
    assert_eq!(claims["spiffe_id"], READER_ID);
    let roles: Vec<&str> = claims["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(roles.contains(&"reader"), "{claims}");
    assert_eq!(claims["jti"], rid.as_str());
    assert_eq!(claims["rid"], rid.as_str());
    let iat = claims["iat"].as_i64().unwrap();
    let exp = claims["exp"].as_i64().unwrap();
    assert_eq!(exp - iat, 60, "{claims}");
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    assert!(exp > now, "assertion already expired: {claims}");
    // The thumbprint names the certificate the audit record names.
    let arec = env
        .gw
        .wait_audit_record(|a| a["request_id"] == rid.as_str())
        .await;
    assert_eq!(claims["cert_thumbprint"], arec["cert_thumbprint"]);

    // Tampering breaks the signature: one flipped payload byte, a forged
    // subject, a flipped signature byte.
    let mut payload = B64.decode(parts[1]).unwrap();
    payload[0] ^= 0x01;
    let flipped = format!("{}.{}.{}", parts[0], B64.encode(&payload), parts[2]);
    assert!(!verify_es256(&point, &flipped));
    let forged_claims = String::from_utf8(B64.decode(parts[1]).unwrap())
        .unwrap()
        .replace("/sa/reader", "/sa/admin");
    let forged = format!("{}.{}.{}", parts[0], B64.encode(forged_claims), parts[2]);
    assert!(!verify_es256(&point, &forged));
    let mut sig = B64.decode(parts[2]).unwrap();
    sig[10] ^= 0x80;
    let bad_sig = format!("{}.{}.{}", parts[0], parts[1], B64.encode(&sig));
    assert!(!verify_es256(&point, &bad_sig));
}

/// GETs `paths` in order on one keep-alive connection as the reader; the
/// identity assertion and request id the upstream received for each.
async fn assertions_on_one_connection(env: &TestEnv, paths: &[&str]) -> Vec<(String, String)> {
    let mut send = env.reader.h1_session(env.gw.addr).await.unwrap();
    let mut out = Vec::new();
    for path in paths {
        let before = env.up.count();
        let req = http::Request::get(*path)
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let r = send_on(&mut send, req).await.unwrap();
        assert_eq!(r.status, 200, "{path}: {}", env.gw.stderr());
        let records = env.up.records();
        assert_eq!(records.len(), before + 1);
        let rec = records.last().unwrap();
        out.push((
            header(rec, "x-portcullis-identity")[0].to_owned(),
            header(rec, "x-portcullis-request-id")[0].to_owned(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_every_request_gets_its_own_assertion_naming_it() {
    let env = TestEnv::start().await;
    let got = assertions_on_one_connection(&env, &["/api/a", "/api/b"]).await;
    assert_ne!(got[0].0, got[1].0, "a new assertion per request");
    for (token, rid) in &got {
        let claims = common::jwt_payload(token);
        assert_eq!(claims["rid"], rid.as_str(), "{claims}");
        assert_eq!(claims["jti"], rid.as_str(), "{claims}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_connection_scope_a_connection_reuses_one_verifiable_assertion() {
    let env = TestEnv::start_with(
        UpstreamBehaviour::default(),
        |c, _, _| format!("{c}identity_assertion:\n  scope: connection\n"),
        BASIC_POLICY,
    )
    .await;
    let r = env.reader.get(env.gw.addr, JWKS).await.unwrap();
    let (_, point) = jwk_point(&serde_json::from_slice(&r.body).unwrap());
    let got = assertions_on_one_connection(&env, &["/api/a", "/api/b", "/api/c"]).await;
    assert_eq!(got[0].0, got[1].0, "reused on the connection");
    assert_eq!(got[1].0, got[2].0, "reused on the connection");
    assert_ne!(got[0].1, got[1].1, "request ids stay per request");
    assert!(verify_es256(&point, &got[0].0));
    let claims = common::jwt_payload(&got[0].0);
    assert!(claims.get("rid").is_none(), "no request id in it: {claims}");
    let jti = claims["jti"].as_str().unwrap();
    assert!(
        got.iter().all(|(_, rid)| rid != jti),
        "its own jti: {claims}"
    );
    assert_eq!(claims["aud"], "api");
    assert_eq!(claims["sub"], READER_ID);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        60
    );

    // Another connection signs its own.
    let other = assertions_on_one_connection(&env, &["/api/a"]).await;
    assert_ne!(other[0].0, got[0].0);
    assert_ne!(common::jwt_payload(&other[0].0)["jti"], claims["jti"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_8_mib_upload_reaches_the_upstream_intact() {
    let env = TestEnv::start().await;
    let body: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let r = env
        .writer
        .send(env.gw.addr, req("POST", "/api/upload", body.clone()))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let records = env.up.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].method, "POST");
    assert_eq!(records[0].body.len(), body.len());
    assert!(records[0].body == body, "upload corrupted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_8_mib_download_reaches_the_client_intact() {
    let len = 8 * 1024 * 1024;
    let env = TestEnv::start_with(
        UpstreamBehaviour {
            body_len: Some(len),
            ..Default::default()
        },
        |c, _, _| c,
        BASIC_POLICY,
    )
    .await;
    let r = env.reader.get(env.gw.addr, "/api/big").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), len);
    assert!(r.body.iter().all(|b| *b == b'x'), "download corrupted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_listener_limit_is_refused_and_never_fully_forwarded() {
    let env = TestEnv::start_with(
        UpstreamBehaviour::default(),
        |c, _, _| with_listener_limits(&c, "{ max_body_bytes: 1024 }"),
        BASIC_POLICY,
    )
    .await;
    let addr = env.gw.addr;
    // At the limit: forwarded.
    let at_limit = vec![b'a'; 1024];
    let r = env
        .writer
        .send(addr, req("POST", "/api/up", at_limit.clone()))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(env.up.records()[0].body, at_limit);

    // Over the limit with Content-Length: 413 before anything is sent.
    let r = env
        .writer
        .send(addr, req("POST", "/api/up", vec![b'b'; 2048]))
        .await
        .unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(env.up.count(), 1);
    let rec = env.gw.wait_audit_record(|a| a["status"] == 413).await;
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .starts_with("body_too_large:"),
        "{rec}"
    );

    // Over the limit, chunked: the size is only known while streaming.
    // Either the gateway answers 413 or the exchange fails; the upstream
    // never gets the whole body.
    let chunk = "c".repeat(2048);
    let raw = format!(
        "POST /api/chunked HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n800\r\n{chunk}\r\n0\r\n\r\n"
    );
    let resp = env.writer.raw(addr, raw.as_bytes()).await;
    if let Ok(resp) = &resp {
        let statuses = raw_statuses(resp);
        assert!(
            statuses.is_empty() || statuses == [413],
            "chunked over the limit: {resp}"
        );
    }
    for rec in env.up.records() {
        assert!(
            rec.body.len() <= 1024,
            "upstream got {} body bytes of {}",
            rec.body.len(),
            rec.target
        );
    }
    // A chunked body within the limit goes through intact.
    let small = "d".repeat(1000);
    let raw = format!(
        "POST /api/chunked-ok HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3e8\r\n{small}\r\n0\r\n\r\n"
    );
    let resp = env.writer.raw(addr, raw.as_bytes()).await.unwrap();
    assert_eq!(raw_statuses(&resp), [200], "{resp}");
    let last = env.up.records().pop().unwrap();
    assert_eq!(last.target, "/api/chunked-ok");
    assert_eq!(last.body, small.as_bytes());
}

fn get_with_headers(path: &str, headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n")
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_uri_limits_are_enforced_before_forwarding() {
    let env = TestEnv::start().await;
    let many = |n: usize| (0..n).map(|i| format!("x-h{i}: v\r\n")).collect::<String>();
    // (what, request, status)
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        // Over the listener's default 100 fields, which is also the
        // parser's cap: hyper answers itself (see the next test for the
        // gateway's own check under a lower limit).
        ("101 fields", get_with_headers("/api/x", &many(99)), 431),
        ("200 headers", get_with_headers("/api/x", &many(200)), 431),
        // Over the 8 KiB per-value limit: the gateway's check.
        (
            "10 KiB value",
            get_with_headers("/api/x", &format!("x-big: {}\r\n", "v".repeat(10 * 1024))),
            431,
        ),
        // Over the parser's 64 KiB buffer: hyper answers itself.
        (
            "64 KiB value",
            get_with_headers("/api/x", &format!("x-big: {}\r\n", "v".repeat(64 * 1024))),
            431,
        ),
        // Over the listener's 8 KiB target limit: the gateway answers 414.
        (
            "9000-byte target",
            get_with_headers(&format!("/api/{}", "a".repeat(9000)), ""),
            414,
        ),
        // A target that does not fit the parser's 64 KiB buffer never
        // parses: hyper answers 431 (the whole head is too large).
        (
            "70 KiB target",
            get_with_headers(&format!("/api/{}", "a".repeat(70 * 1024)), ""),
            431,
        ),
    ];
    for (what, bytes, status) in cases {
        let resp = env.raw(&bytes).await;
        assert_eq!(raw_statuses(&resp), [status], "{what}: {resp}");
        assert_eq!(env.up.count(), 0, "{what} was forwarded");
        env.assert_still_serving().await;
        env.up.records.lock().unwrap().clear();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_count_at_the_limit_passes_and_over_it_is_431_with_its_reason() {
    // Default limit: 100 fields pass (Host and Connection among them);
    // 101 are over the parser's cap, answered by hyper and audited as a
    // head too large.
    let env = TestEnv::start().await;
    let many = |n: usize| (0..n).map(|i| format!("x-h{i}: v\r\n")).collect::<String>();
    // (The gateway forwards it; the test upstream's own parser, capped at
    // 100 fields, then refuses it with the gateway's six added.)
    env.raw(&get_with_headers("/api/at-limit", &many(98))).await;
    let rec = env
        .gw
        .wait_audit_record(|a| a["path"] == "/api/at-limit")
        .await;
    assert_eq!(rec["decision"], "allow", "{rec}");
    assert_eq!(env.up.count(), 0);
    let resp = env.raw(&get_with_headers("/api/over", &many(99))).await;
    assert_eq!(raw_statuses(&resp), [431], "{resp}");
    assert_eq!(env.up.count(), 0, "over the limit was forwarded");
    let reason = |a: &serde_json::Value| a["reason"].as_str().unwrap_or("").to_owned();
    env.gw
        .wait_audit_record(|a| reason(a).starts_with("header_too_large:"))
        .await;

    // A lower limit keeps a margin of 16 fields for the gateway's own
    // check, which names the cause; past the margin hyper answers.
    let env = TestEnv::start_with(
        UpstreamBehaviour::default(),
        |c, _, _| with_listener_limits(&c, "{ max_header_count: 50 }"),
        BASIC_POLICY,
    )
    .await;
    let resp = env.raw(&get_with_headers("/api/at-limit", &many(48))).await;
    assert_eq!(raw_statuses(&resp), [200], "{resp}");
    let resp = env
        .raw(&get_with_headers("/api/own-check", &many(49)))
        .await;
    assert_eq!(raw_statuses(&resp), [431], "{resp}");
    let rec = env
        .gw
        .wait_audit_record(|a| a["path"] == "/api/own-check")
        .await;
    assert_eq!(
        reason(&rec),
        "header_too_large: request has more than 50 header fields",
        "{rec}"
    );
    let resp = env.raw(&get_with_headers("/api/parser", &many(70))).await;
    assert_eq!(raw_statuses(&resp), [431], "{resp}");
    assert_eq!(env.up.count(), 1, "over the limit was forwarded");
    env.assert_still_serving().await;
}

/// A body that says nothing of its length: HTTP/2 DATA frames without
/// `content-length`.
struct Unsized(Option<Bytes>);

impl hyper::body::Body for Unsized {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(
            self.get_mut()
                .0
                .take()
                .map(|b| Ok(hyper::body::Frame::data(b))),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_or_head_body_of_unknown_length_reaches_the_upstream_as_sent() {
    let env = TestEnv::start().await;
    let addr = env.gw.addr;
    // HTTP/1.1, chunked. The upstream client's default for a GET or HEAD
    // of unknown length is to send no body at all.
    for method in ["GET", "HEAD"] {
        let raw = format!(
            "{method} /api/unsized HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        let resp = env.reader.raw(addr, raw.as_bytes()).await.unwrap();
        assert_eq!(raw_statuses(&resp), [200], "{method}: {resp}");
        let rec = env.up.records().pop().unwrap();
        assert_eq!(rec.method, method);
        assert_eq!(rec.body, "hello", "{method}");
        assert_eq!(header(&rec, "transfer-encoding"), ["chunked"], "{method}");
    }
    // HTTP/2 DATA without content-length.
    let h2 = Client::h2(&env.pki, Some(&env.reader_cert));
    let tls = h2.tls(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("https://localhost/api/unsized-h2")
        .body(Unsized(Some(Bytes::from_static(b"world"))))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let rec = env.up.records().pop().unwrap();
    assert_eq!(rec.target, "/api/unsized-h2");
    assert_eq!(rec.body, "world");
    assert_eq!(header(&rec, "transfer-encoding"), ["chunked"]);
    // A body that turns out to hold nothing goes out as none: an HTTP/2
    // stream ended by an empty DATA frame rather than on its HEADERS...
    let req = http::Request::get("https://localhost/api/empty-h2")
        .body(Unsized(None))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    // ...and a chunked body of only its last chunk.
    let raw = "GET /api/empty-chunked HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n";
    let resp = env.reader.raw(addr, raw.as_bytes()).await.unwrap();
    assert_eq!(raw_statuses(&resp), [200], "{resp}");
    let records = env.up.records();
    for rec in &records[records.len() - 2..] {
        assert!(rec.target.starts_with("/api/empty-"), "{}", rec.target);
        assert!(rec.body.is_empty(), "{}", rec.target);
        assert!(
            header(rec, "transfer-encoding").is_empty(),
            "{}",
            rec.target
        );
        assert!(header(rec, "content-length").is_empty(), "{}", rec.target);
    }
    // A GET without a body still goes out without one.
    let r = env.reader.get(addr, "/api/no-body").await.unwrap();
    assert_eq!(r.status, 200);
    let rec = env.up.records().pop().unwrap();
    assert!(rec.body.is_empty());
    assert!(header(&rec, "transfer-encoding").is_empty());
    assert!(header(&rec, "content-length").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_client_reaches_the_http11_upstream() {
    let env = TestEnv::start().await;
    let h2 = Client::h2(&env.pki, Some(&env.reader_cert));
    let r = h2.get(env.gw.addr, "/api/h2/./x?q=1").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.version, http::Version::HTTP_2);
    let records = env.up.records();
    assert_eq!(records.len(), 1);
    let rec = &records[0];
    assert_eq!(rec.version, http::Version::HTTP_11);
    assert_eq!(rec.target, "/api/h2/x?q=1");
    assert_eq!(header(rec, "host"), ["localhost"]);
    assert_eq!(header(rec, "x-forwarded-proto"), ["https"]);
    assert_eq!(header(rec, "x-portcullis-identity").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_502_with_an_error_audit_record() {
    let closed = closed_port();
    let env = TestEnv::start_with(
        UpstreamBehaviour::default(),
        |c, _, up| {
            c.replace(
                &format!("url: http://{up}"),
                &format!("url: http://{closed}"),
            )
        },
        BASIC_POLICY,
    )
    .await;
    let r = env.reader.get(env.gw.addr, "/api/x").await.unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(r.body, "bad gateway\n");
    let rec = env.gw.wait_audit_record(|a| a["path"] == "/api/x").await;
    assert_eq!(rec["decision"], "error");
    assert_eq!(rec["status"], 502);
    assert_eq!(rec["route"], "api");
    let reason = rec["reason"].as_str().unwrap();
    assert!(reason.starts_with("upstream_connect:"), "{reason}");
    assert_eq!(
        env.gw
            .metric(r#"portcullis_upstream_errors_total{route="api",kind="connect"}"#)
            .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_is_504_after_the_route_timeout() {
    let env = TestEnv::start_with(
        UpstreamBehaviour {
            delay: Some(Duration::from_secs(3)),
            ..Default::default()
        },
        |c, _, _| c.replace("request_timeout: 5s", "request_timeout: 1s"),
        BASIC_POLICY,
    )
    .await;
    let r = env.reader.get(env.gw.addr, "/api/slow").await.unwrap();
    assert_eq!(r.status, 504);
    let rec = env.gw.wait_audit_record(|a| a["path"] == "/api/slow").await;
    assert_eq!(rec["decision"], "error");
    let reason = rec["reason"].as_str().unwrap();
    assert!(reason.starts_with("upstream_timeout:"), "{reason}");
}

// ------------------------------------------------------ https upstream

/// The one request `tls` recorded, whose body must be `hello`, and the
/// names in its trailer section.
fn the_request_and_its_trailers(tls: &TlsUpstream) -> (Recorded, Vec<String>) {
    let records = tls.records.lock().unwrap().clone();
    assert_eq!(records.len(), 1);
    let rec = records.into_iter().next().unwrap();
    assert_eq!(rec.body, "hello");
    let trailers = rec.trailers.as_ref().expect("the trailer section");
    let names = trailers.keys().map(|n| n.as_str().to_owned()).collect();
    (rec, names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_with_its_ca_configured_is_reached() {
    let (_dir, tls, env) = behind_tls_upstream(false).await;
    let r = env
        .reader
        .get(env.gw.addr, "/api/./secure?x=1")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "tls upstream ok");
    assert_eq!(env.up.count(), 0, "plain upstream must not be used");
    let records = tls.records.lock().unwrap().clone();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].target, "/api/secure?x=1");
    assert_eq!(
        records[0]
            .headers
            .get_all("x-portcullis-identity")
            .iter()
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_with_a_certificate_from_an_unknown_ca_is_502() {
    let dir = tempfile::tempdir().unwrap();
    let rogue = TestPki::new(&dir.path().join("rogue-pki"));
    let tls = tls_upstream(&rogue.server_cert, &rogue.server_key, false).await;
    // The gateway trusts the test PKI's root, not the rogue one.
    let tls_addr = tls.addr;
    let env = TestEnv::start_with(
        UpstreamBehaviour::default(),
        |c, pki, plain| https_route(c, plain, tls_addr, &pki.ca_bundle),
        BASIC_POLICY,
    )
    .await;
    let r = env.reader.get(env.gw.addr, "/api/secure").await.unwrap();
    assert_eq!(r.status, 502);
    assert!(tls.records.lock().unwrap().is_empty());
    assert_eq!(env.up.count(), 0);
    let rec = env
        .gw
        .wait_audit_record(|a| a["path"] == "/api/secure")
        .await;
    assert_eq!(rec["decision"], "error");
    let reason = rec["reason"].as_str().unwrap();
    assert!(reason.starts_with("upstream_connect:"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_negotiating_h2_is_reached() {
    let (_dir, tls, env) = behind_tls_upstream(true).await;
    let r = env
        .reader
        .get(env.gw.addr, "/api/h2//up?x=1")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "tls upstream ok");
    let records = tls.records.lock().unwrap().clone();
    assert_eq!(records.len(), 1);
    let rec = &records[0];
    assert_eq!(rec.version, http::Version::HTTP_2);
    assert_eq!(rec.target, "/api/h2/up?x=1");
    assert_eq!(header(rec, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(header(rec, "x-portcullis-identity").len(), 1);
}

/// A chunked request whose trailer section forges what the header section
/// may not carry.
const FORGED_TRAILERS: &str = "POST /api/h2/trailers HTTP/1.1\r\n\
    Host: localhost\r\n\
    Transfer-Encoding: chunked\r\n\
    Connection: close\r\n\r\n\
    5\r\nhello\r\n0\r\n\
    x-forwarded-user: forged\r\n\
    x-portcullis-identity: forged\r\n\
    x-portcullis-request-id: forged\r\n\
    x-forwarded-client-cert: By=forged\r\n\
    authorization: Bearer forged\r\n\
    transfer-encoding: chunked\r\n\
    x-checksum: kept\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_trailers_reach_an_h2_upstream_without_forged_fields() {
    let (_dir, tls, env) = behind_tls_upstream(true).await;
    let resp = env
        .writer
        .raw(env.gw.addr, FORGED_TRAILERS.as_bytes())
        .await
        .unwrap();
    // A connection-specific field in the trailers once left the request
    // hanging until the route's timeout (504).
    assert_eq!(raw_status(&resp), Some(200), "{resp}");
    let (rec, trailers) = the_request_and_its_trailers(&tls);
    assert_eq!(trailers, ["x-checksum"]);
    // The header section holds the gateway's own values, once.
    assert_eq!(header(&rec, "x-portcullis-identity").len(), 1);
    assert!(!header(&rec, "x-portcullis-identity")[0].contains("forged"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_with_client_headers_forwards_only_listed_trailers() {
    // An HTTP/2 upstream receives trailers as sent: a field the route
    // does not take in the header section must not arrive as a trailer.
    let (_dir, tls, env) = behind_tls_upstream_with(true, |c| {
        c.replacen(
            "    path_prefix: /api\n",
            "    path_prefix: /api\n    client_headers: [x-checksum, content-type]\n",
            1,
        )
    })
    .await;
    let raw = "POST /api/h2/trailers HTTP/1.1\r\n\
        Host: localhost\r\n\
        Transfer-Encoding: chunked\r\n\
        Connection: close\r\n\r\n\
        5\r\nhello\r\n0\r\n\
        x-tenant: other-tenant\r\n\
        x-webauth-user: admin\r\n\
        x-checksum: kept\r\n\r\n";
    let resp = env.writer.raw(env.gw.addr, raw.as_bytes()).await.unwrap();
    assert_eq!(raw_status(&resp), Some(200), "{resp}");
    let (_, trailers) = the_request_and_its_trailers(&tls);
    assert_eq!(trailers, ["x-checksum"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_upstream_gets_the_clients_host_as_authority_and_te_trailers() {
    let (_dir, tls, env) = behind_tls_upstream(true).await;
    let req = http::Request::post("/api/grpc.Service/Call")
        .header("host", "localhost")
        .header("te", "trailers")
        .header("content-type", "application/grpc")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
        .unwrap();
    let r = env.writer.send(env.gw.addr, req).await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let req = http::Request::get("/api/no-te")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(env.reader.send(env.gw.addr, req).await.unwrap().status, 200);
    let records = tls.records.lock().unwrap().clone();
    assert_eq!(records.len(), 2);
    for rec in &records {
        // `:authority` says the client's host, and no `host` field
        // disagrees with it (RFC 9113 §8.3.1).
        assert_eq!(
            rec.authority.as_deref(),
            Some("localhost"),
            "{:?}",
            rec.target
        );
        assert!(header(rec, "host").is_empty(), "{:?}", rec.headers);
    }
    assert_eq!(header(&records[0], "te"), ["trailers"]);
    assert!(header(&records[1], "te").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_clients_cookie_fields_reach_the_upstream_as_one() {
    let env = TestEnv::start().await;
    let h2 = Client::h2(&env.pki, Some(&env.reader_cert));
    let req = http::Request::get("/api/cookies")
        .header("host", "localhost")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("cookie", "c=3")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = h2.send(env.gw.addr, req).await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.version, http::Version::HTTP_2);
    let records = env.up.records();
    assert_eq!(header(&records[0], "cookie"), ["a=1; b=2; c=3"]);
}
