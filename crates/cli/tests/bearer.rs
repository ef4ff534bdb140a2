//! Bearer tokens at the gateway, end to end: tokens minted by the test
//! with keys it controls, the issuer's JWKS in a file the gateway watches,
//! the real binary, real TLS clients and a recording upstream.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test: a failed step must abort the test"
)]

mod common;

use std::path::Path;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use bytes::Bytes;
use common::*;
use http_body_util::Full;
use serde_json::{json, Value};

const ISS: &str = "https://idp.test";
const AUD: &str = "https://api.test";

/// An ES256 signing key with its `kid`.
struct Key {
    kid: String,
    pair: EcdsaKeyPair,
}

impl Key {
    fn new(kid: &str) -> Self {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        Self {
            kid: kid.to_owned(),
            pair,
        }
    }

    fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        assert_eq!(point.len(), 65);
        json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
               "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])})
    }

    fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_raw(
            &json!({"alg": "ES256", "typ": "at+jwt", "kid": self.kid}),
            claims,
        )
    }
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn claims(sub: &str, extra: Value) -> Value {
    let mut c = json!({"iss": ISS, "aud": AUD, "sub": sub, "iat": now(), "exp": now() + 300,
                       "scope": "api:read"});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn write_jwks(dir: &Path, keys: &[&Key]) {
    let doc = json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
    write_atomic(dir, "jwks.json", &doc.to_string());
}

const POLICY: &str = r#"revision: "bearer-1"
roles:
  user: {}
  admin: {}
  web: {}
bindings:
  - { role: user, issuer: "https://idp.test", scope: "api:read" }
  - { role: admin, issuer: "https://idp.test", claim: realm_access.roles, value: admin }
  - { role: web, spiffe_id: "spiffe://example.org/ns/test/sa/web" }
rules:
  - { id: read, effect: allow, roles: [user], route: api, methods: [GET], path: "/api/x" }
  - { id: admin, effect: allow, roles: [admin], route: api, path: "/api/admin/**",
      when: { mfa: { methods: [otp], max_age: 15m } } }
  - { id: bound, effect: allow, roles: [user], route: api, path: "/api/bound/**",
      when: { authn: [bound_token] } }
  - { id: web-for-user, effect: allow, roles: [user], route: api, path: "/api/both/**",
      when: { authn: [mtls, token], has_roles: [web] } }
  - { id: web-alone, effect: allow, roles: [web], route: api, path: "/api/web/**" }
"#;

struct Env {
    gw: GatewayProc,
    up: RecordingUpstream,
    pki: TestPki,
    key: Key,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Self {
        Self::start_with("client_auth: optional").await
    }

    async fn start_with(client_auth: &str) -> Self {
        Self::start_full(client_auth, "").await
    }

    /// `extra_issuers` is appended to `bearer.issuers`.
    async fn start_full(client_auth: &str, extra_issuers: &str) -> Self {
        Self::start_custom(client_auth, extra_issuers, "").await
    }

    /// As [`Self::start_full`], with `route_extra` (four-space indented
    /// lines) added to route `api`.
    async fn start_custom(client_auth: &str, extra_issuers: &str, route_extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::new(&dir.path().join("pki"));
        let up = RecordingUpstream::start().await;
        let key = Key::new("k1");
        write_jwks(dir.path(), &[&key]);
        let mut config = config_yaml(
            &pki,
            &[("api", "/api", up.addr)],
            &format!("      {client_auth}\n"),
        )
        .replace("    upstream:\n", &format!("{route_extra}    upstream:\n"));
        config.push_str(&format!(
            "bearer:\n  issuers:\n    - issuer: {ISS}\n      audiences: [{AUD}]\n      jwks_file: jwks.json\n      typ: [at+jwt]\n      leeway: 5s\n      max_token_bytes: 4096\n      jwks: {{ min_refresh: 1s, default_refresh: 1s, unknown_kid_interval: 1s }}\n{extra_issuers}"
        ));
        let gw = GatewayProc::start(dir.path(), &config, POLICY);
        Self {
            gw,
            up,
            pki,
            key,
            _dir: dir,
        }
    }

    /// GET `path` with `Authorization: Bearer token` as `client`.
    async fn get(&self, client: &Client, path: &str, token: Option<&str>) -> Resp {
        let mut req = http::Request::get(path).header("host", "localhost");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        client
            .send(self.gw.addr, req.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap()
    }

    fn anon(&self) -> Client {
        Client::new(&self.pki, None)
    }

    fn last_audit(&self) -> Value {
        wait_for(|| self.gw.audit().last().cloned())
    }
}

fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_invalid_token(r: &Resp) {
    assert_eq!(r.status, 401, "{:?}", r);
    let challenge = r.headers["www-authenticate"].to_str().unwrap();
    assert_eq!(
        challenge,
        "Bearer realm=\"portcullis\", error=\"invalid_token\""
    );
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        !body.contains("expired") && !body.contains("signature") && !body.contains("kid"),
        "no detail for the client: {body}"
    );
}

/// The audit reason of the last record, waiting until `n` records exist.
fn audit_reason(env: &Env, n: usize) -> String {
    let recs = wait_for(|| {
        let a = env.gw.audit();
        (a.len() >= n).then_some(a)
    });
    recs[n - 1]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn with_connection_scope_an_assertion_is_reused_only_for_the_same_token() {
    let env = Env::start_full(
        "client_auth: optional",
        "identity_assertion:\n  scope: connection\n",
    )
    .await;
    let client = env.anon();
    let mut send = client.h1_session(env.gw.addr).await.unwrap();
    let alice_1 = env.key.sign(&claims("alice", json!({"jti": "a1"})));
    let alice_2 = env.key.sign(&claims("alice", json!({"jti": "a2"})));
    let bob = env.key.sign(&claims("bob", json!({"jti": "b1"})));
    let mut seen = Vec::new();
    for (token, sub) in [
        (&alice_1, "alice"),
        (&alice_1, "alice"),
        (&alice_2, "alice"),
        (&bob, "bob"),
        (&alice_1, "alice"),
    ] {
        let r = send_on(&mut send, bearer_get(token)).await.unwrap();
        assert_eq!(r.status, 200, "{}", env.gw.stderr());
        let rec = env.up.records().pop().unwrap();
        let a = rec.headers["x-portcullis-identity"]
            .to_str()
            .unwrap()
            .to_owned();
        let payload = jwt_payload(&a);
        assert_eq!(payload["sub"], sub);
        assert_eq!(payload["token_iss"], ISS);
        assert!(
            payload.get("rid").is_none(),
            "a reusable assertion names no request: {payload}"
        );
        seen.push(a);
    }
    assert_eq!(seen[0], seen[1], "the same token again: the same assertion");
    assert_ne!(
        seen[1], seen[2],
        "another token of the same user: a new one"
    );
    assert_ne!(seen[2], seen[3]);
    assert_ne!(seen[0], seen[4], "only the last assertion is kept");
    // Every request was still authenticated: one verification per token,
    // cache hits for the repeats.
    let m = env.gw.metrics().await;
    assert_eq!(
        metric_value(&m, "portcullis_bearer_tokens_total{result=\"verified\""),
        3.0
    );
    assert_eq!(
        metric_value(&m, "portcullis_bearer_tokens_total{result=\"cached\""),
        2.0
    );
    // An expired token on the same connection is refused, whatever
    // assertion the connection holds.
    let expired = env.key.sign(&claims(
        "alice",
        json!({"exp": now() - 60, "iat": now() - 600}),
    ));
    let r = send_on(&mut send, bearer_get(&expired)).await.unwrap();
    assert_invalid_token(&r);
    assert_eq!(env.up.count(), 5, "nothing forwarded for the expired token");
}

/// `GET /api/x` with `Authorization: Bearer token`.
fn bearer_get(token: &str) -> http::Request<Full<Bytes>> {
    http::Request::get("/api/x")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn valid_token_is_forwarded_as_identity_without_the_token() {
    let env = Env::start().await;
    let token = env.key.sign(&claims("alice", json!({})));
    let r = env.get(&env.anon(), "/api/x", Some(&token)).await;
    assert_eq!(r.status, 200, "{}", env.gw.stderr());
    let rec = env.up.records().pop().unwrap();
    assert!(
        rec.headers.get("authorization").is_none(),
        "the verified token is not forwarded"
    );
    let assertion = jwt_payload(rec.headers["x-portcullis-identity"].to_str().unwrap());
    assert_eq!(assertion["sub"], "alice");
    assert_eq!(assertion["token_iss"], ISS);
    assert_eq!(assertion["roles"], json!(["user"]));
    let audit = env.last_audit();
    assert_eq!(audit["token_issuer"], ISS);
    assert_eq!(audit["token_subject"], "alice");
    assert_eq!(audit["principal"], "alice");
    assert_eq!(audit["decision"], "allow");
    // The same token again: served from the verified-token cache.
    let r = env.get(&env.anon(), "/api/x", Some(&token)).await;
    assert_eq!(r.status, 200);
    let m = env.gw.metrics().await;
    assert_eq!(
        metric_value(&m, "portcullis_bearer_tokens_total{result=\"cached\""),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric_value(&m, "portcullis_bearer_tokens_total{result=\"verified\""),
        1.0
    );
}

#[tokio::test]
async fn a_reload_that_narrows_an_issuer_rechecks_cached_tokens() {
    const LEGACY: &str = "https://legacy.test";
    const RELOADED: &str = r#"portcullis_config_reloads_total{result="success"}"#;
    let env = Env::start().await;
    let dir = env._dir.path();
    let narrow = std::fs::read_to_string(dir.join("portcullis.yaml")).unwrap();
    let wide = narrow.replace(
        &format!("audiences: [{AUD}]"),
        &format!("audiences: [{AUD}, {LEGACY}]"),
    );
    assert_ne!(wide, narrow);
    write_atomic(dir, "portcullis.yaml", &wide);
    assert_eq!(env.gw.wait_metric_at_least(RELOADED, 1.0).await, 1.0);

    // A token for the second audience: verified, then answered from the
    // verified-token cache.
    let token = env.key.sign(&claims("alice", json!({"aud": LEGACY})));
    for _ in 0..2 {
        let r = env.get(&env.anon(), "/api/x", Some(&token)).await;
        assert_eq!(r.status, 200, "{}", env.gw.stderr());
    }
    let m = env.gw.metrics().await;
    assert_eq!(
        metric_value(&m, "portcullis_bearer_tokens_total{result=\"cached\""),
        1.0
    );

    // A reload that leaves the issuers as they were keeps the cache.
    write_atomic(dir, "policy.yaml", &POLICY.replace("bearer-1", "bearer-2"));
    assert_eq!(env.gw.wait_revision("bearer-2").await, "bearer-2");
    let r = env.get(&env.anon(), "/api/x", Some(&token)).await;
    assert_eq!(r.status, 200);
    let m = env.gw.metrics().await;
    assert_eq!(
        metric_value(&m, "portcullis_bearer_tokens_total{result=\"cached\""),
        2.0
    );

    // The operator drops that audience; the issuer's keys stay the same.
    // The cached verification was made under the old rules and must not
    // outlive them.
    write_atomic(dir, "portcullis.yaml", &narrow);
    assert_eq!(env.gw.wait_metric_at_least(RELOADED, 3.0).await, 3.0);
    let r = env.get(&env.anon(), "/api/x", Some(&token)).await;
    assert_invalid_token(&r);
    assert!(
        audit_reason(&env, 4).contains("audience"),
        "{}",
        audit_reason(&env, 4)
    );
    // A token for the remaining audience still verifies.
    let ok = env.key.sign(&claims("alice", json!({})));
    let r = env.get(&env.anon(), "/api/x", Some(&ok)).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn expired_token_is_401_with_the_reason_only_in_audit_and_metrics() {
    let env = Env::start().await;
    let token = env.key.sign(&claims(
        "alice",
        json!({"exp": now() - 60, "iat": now() - 600}),
    ));
    let r = env.get(&env.anon(), "/api/x", Some(&token)).await;
    assert_invalid_token(&r);
    assert_eq!(env.up.count(), 0);
    let reason = audit_reason(&env, 1);
    assert!(reason.starts_with("invalid_token: expired"), "{reason}");
    let m = env.gw.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            "portcullis_bearer_tokens_total{result=\"refused\",reason=\"expired\"}"
        ),
        1.0,
        "{m}"
    );
}

#[tokio::test]
async fn forged_tokens_are_refused() {
    let env = Env::start().await;
    let anon = env.anon();
    let good = env.key.sign(&claims("alice", json!({})));
    let mut n = 0;
    let mut check = |reason_prefix: &'static str| {
        n += 1;
        let n = n;
        move |env: &Env| {
            let reason = audit_reason(env, n);
            assert!(
                reason.starts_with(&format!("invalid_token: {reason_prefix}")),
                "{reason}"
            );
        }
    };

    // Signature of another key with the same kid.
    let other = Key::new("k1");
    let r = env
        .get(
            &anon,
            "/api/x",
            Some(&other.sign(&claims("alice", json!({})))),
        )
        .await;
    assert_invalid_token(&r);
    check("bad_signature")(&env);

    // Payload changed after signing.
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(claims("mallory", json!({})).to_string()),
        parts[2]
    );
    assert_invalid_token(&env.get(&anon, "/api/x", Some(&tampered)).await);
    check("bad_signature")(&env);

    // alg none.
    let none = format!(
        "{}.{}.",
        B64.encode(r#"{"alg":"none","typ":"at+jwt"}"#),
        B64.encode(claims("alice", json!({})).to_string())
    );
    assert_invalid_token(&env.get(&anon, "/api/x", Some(&none)).await);
    check("")(&env);

    // Wrong audience, wrong issuer.
    assert_invalid_token(
        &env.get(
            &anon,
            "/api/x",
            Some(
                &env.key
                    .sign(&claims("alice", json!({"aud": "https://other.test"}))),
            ),
        )
        .await,
    );
    check("wrong_audience")(&env);
    assert_invalid_token(
        &env.get(
            &anon,
            "/api/x",
            Some(
                &env.key
                    .sign(&claims("alice", json!({"iss": "https://evil.test"}))),
            ),
        )
        .await,
    );
    check("unknown_issuer")(&env);

    // Embedded key: a jwk header naming the attacker's own key.
    let evil = Key::new("k1");
    let jwk_token = evil.sign_raw(
        &json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1", "jwk": evil.jwk()}),
        &claims("alice", json!({})),
    );
    assert_invalid_token(&env.get(&anon, "/api/x", Some(&jwk_token)).await);
    check("embedded_key")(&env);

    // Wrong typ (an ID token is not an access token).
    let id_token = env.key.sign_raw(
        &json!({"alg": "ES256", "typ": "JWT", "kid": "k1"}),
        &claims("alice", json!({})),
    );
    assert_invalid_token(&env.get(&anon, "/api/x", Some(&id_token)).await);
    check("bad_typ")(&env);

    // Garbage and malformed credentials.
    assert_invalid_token(&env.get(&anon, "/api/x", Some("not-a-jwt")).await);
    check("")(&env);
    assert_eq!(env.up.count(), 0, "nothing forwarded");
}

#[tokio::test]
async fn unknown_kid_refetches_once_and_rotation_is_picked_up() {
    let env = Env::start().await;
    let anon = env.anon();
    // A key the issuer has not published yet.
    let k2 = Key::new("k2");
    let early = k2.sign(&claims("alice", json!({})));
    assert_invalid_token(&env.get(&anon, "/api/x", Some(&early)).await);
    assert!(audit_reason(&env, 1).starts_with("invalid_token: unknown_kid"));

    // Rotation: the issuer publishes k2 next to k1, then drops k1.
    write_jwks(&env.gw.dir, &[&env.key, &k2]);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let r = env.get(&anon, "/api/x", Some(&early)).await;
        if r.status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "new key never accepted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    write_jwks(&env.gw.dir, &[&k2]);
    let old = env.key.sign(&claims("alice", json!({})));
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let r = env.get(&anon, "/api/x", Some(&old)).await;
        if r.status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "removed key still verifies"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn certificate_bound_tokens() {
    let env = Env::start().await;
    let web = env.pki.workload("web", "/ns/test/sa/web");
    let other = env.pki.workload("other", "/ns/test/sa/other");
    let web_client = Client::new(&env.pki, Some(&web));
    let other_client = Client::new(&env.pki, Some(&other));
    let thumb = B64.encode(sha256(&cert_der(&web)));
    let bound = env
        .key
        .sign(&claims("alice", json!({"cnf": {"x5t#S256": thumb}})));

    // Over the certificate it is bound to: accepted, and the policy sees it as bound.
    assert_eq!(
        env.get(&web_client, "/api/bound/x", Some(&bound))
            .await
            .status,
        200
    );
    // Over another certificate, or without one: refused outright.
    assert_invalid_token(&env.get(&other_client, "/api/bound/x", Some(&bound)).await);
    assert!(audit_reason(&env, 2).contains("cnf_mismatch"));
    assert_invalid_token(&env.get(&env.anon(), "/api/bound/x", Some(&bound)).await);
    assert!(audit_reason(&env, 3).contains("cnf_without_certificate"));
    // An unbound token where the route's rule needs a bound one: 403.
    let unbound = env.key.sign(&claims("alice", json!({})));
    let r = env.get(&web_client, "/api/bound/x", Some(&unbound)).await;
    assert_eq!(r.status, 403);
    assert!(audit_reason(&env, 4).contains("when.authn"));
}

#[tokio::test]
async fn workload_and_user_together() {
    let env = Env::start().await;
    let web = Client::new(&env.pki, Some(&env.pki.workload("web", "/ns/test/sa/web")));
    let db = Client::new(&env.pki, Some(&env.pki.workload("db", "/ns/test/sa/db")));
    let token = env.key.sign(&claims("alice", json!({})));
    assert_eq!(env.get(&web, "/api/both/x", Some(&token)).await.status, 200);
    assert_eq!(
        env.get(&db, "/api/both/x", Some(&token)).await.status,
        403,
        "wrong workload"
    );
    assert_eq!(
        env.get(&env.anon(), "/api/both/x", Some(&token))
            .await
            .status,
        403,
        "no workload"
    );
    assert_eq!(
        env.get(&web, "/api/both/x", None).await.status,
        403,
        "no user"
    );
}

#[tokio::test]
async fn claims_and_mfa_freshness_in_policy() {
    let env = Env::start().await;
    let anon = env.anon();
    let admin = |amr: &[&str], age: i64| {
        env.key.sign(&claims(
            "root",
            json!({"realm_access": {"roles": ["admin"]}, "amr": amr, "auth_time": now() - age}),
        ))
    };
    assert_eq!(
        env.get(&anon, "/api/admin/x", Some(&admin(&["pwd", "otp"], 60)))
            .await
            .status,
        200
    );
    let r = env
        .get(&anon, "/api/admin/x", Some(&admin(&["pwd"], 60)))
        .await;
    assert_eq!(r.status, 403);
    assert!(audit_reason(&env, 2).contains("when.mfa"));
    let r = env
        .get(&anon, "/api/admin/x", Some(&admin(&["pwd", "otp"], 3600)))
        .await;
    assert_eq!(r.status, 403);
    assert!(audit_reason(&env, 3).contains("3600s old") || audit_reason(&env, 3).contains("s old"));
    // Not an admin at all.
    let user = env
        .key
        .sign(&claims("bob", json!({"amr": ["otp"], "auth_time": now()})));
    assert_eq!(
        env.get(&anon, "/api/admin/x", Some(&user)).await.status,
        403
    );
}

#[tokio::test]
async fn no_credential_gets_a_bearer_challenge_and_certificates_still_get_403() {
    let env = Env::start().await;
    let r = env.get(&env.anon(), "/api/x", None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.headers["www-authenticate"], "Bearer realm=\"portcullis\"");
    let stranger = Client::new(&env.pki, Some(&env.pki.workload("x", "/ns/test/sa/x")));
    assert_eq!(env.get(&stranger, "/api/x", None).await.status, 403);
}

#[tokio::test]
async fn duplicate_authorization_headers_are_refused() {
    let env = Env::start().await;
    let token = env.key.sign(&claims("alice", json!({})));
    let req = http::Request::get("/api/x")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", "Bearer other")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = env.anon().send(env.gw.addr, req).await.unwrap();
    assert_eq!(r.status, 401);
    assert!(r.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_request"));
    assert_eq!(env.up.count(), 0);
}

#[tokio::test]
async fn a_bearer_token_spelled_otherwise_is_refused_and_pass_routes_get_only_verified_ones() {
    let env = Env::start_custom("client_auth: optional", "", "    pass_bearer_token: true\n").await;
    let web = Client::new(&env.pki, Some(&env.pki.workload("web", "/ns/test/sa/web")));
    let forged = env
        .key
        .sign(&claims("root", json!({"iss": "https://forged.test"})));
    let send = |value: Vec<u8>| {
        let req = http::Request::get("/api/web/x")
            .header("host", "localhost")
            .header(
                "authorization",
                http::HeaderValue::from_bytes(&value).unwrap(),
            )
            .body(Full::new(Bytes::new()))
            .unwrap();
        let web = web.clone();
        let addr = env.gw.addr;
        async move { web.send(addr, req).await.unwrap() }
    };
    // A bearer token after a tab, a non-breaking space or with a byte that
    // is not ASCII: upstreams that split on any whitespace would read a
    // token in it. Refused, although the certificate alone is allowed.
    for value in [
        format!("Bearer\t{forged}").into_bytes(),
        [b"Bearer\xc2\xa0".as_slice(), forged.as_bytes()].concat(),
        [b"Bearer ".as_slice(), forged.as_bytes(), b"\xff"].concat(),
    ] {
        let r = send(value).await;
        assert_invalid_token(&r);
    }
    assert_eq!(env.up.count(), 0);
    let m = env.gw.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            "portcullis_bearer_tokens_total{result=\"refused\",reason=\"malformed\"}"
        ),
        3.0,
        "{m}"
    );
    // Another scheme is not the gateway's; a route that passes tokens on
    // still gets only one the gateway verified.
    let r = send(b"Basic dXNlcjpwdw==".to_vec()).await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = env.up.records().pop().unwrap();
    assert!(
        rec.headers.get("authorization").is_none(),
        "{:?}",
        rec.headers
    );
    let token = env.key.sign(&claims("alice", json!({})));
    let r = send(format!("Bearer {token}").into_bytes()).await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = env.up.records().pop().unwrap();
    assert_eq!(
        rec.headers["authorization"],
        format!("Bearer {token}").as_str()
    );
}

#[tokio::test]
async fn garbage_tokens_do_not_make_the_gateway_fetch_or_fail() {
    let env = Env::start().await;
    let anon = env.anon();
    // 200 tokens with random kids: at most one refetch per second, and the
    // gateway keeps serving valid tokens meanwhile.
    let start = std::time::Instant::now();
    for i in 0..200 {
        let k = Key::new(&format!("garbage-{i}"));
        let t = k.sign(&claims("alice", json!({})));
        assert_eq!(env.get(&anon, "/api/x", Some(&t)).await.status, 401);
    }
    let elapsed = start.elapsed().as_secs();
    let (_, body) = env.gw.admin_get("/readyz").await;
    let ready: Value = serde_json::from_str(&body).unwrap();
    let refetches = ready["issuers"][0]["refetches_unknown_kid"]
        .as_u64()
        .unwrap();
    assert!(refetches >= 1, "an unknown kid does ask again: {ready}");
    assert!(
        refetches <= elapsed + 1,
        "{refetches} refetches in {elapsed}s: {ready}"
    );
    assert!(
        ready["issuers"][0]["refetches_rate_limited"]
            .as_u64()
            .unwrap()
            >= 200 - refetches
    );
    let good = env.key.sign(&claims("alice", json!({})));
    assert_eq!(env.get(&anon, "/api/x", Some(&good)).await.status, 200);
    // Oversized token: refused before parsing.
    let huge = format!("{}.{}.{}", "a".repeat(5000), "b", "c");
    assert_invalid_token(&env.get(&anon, "/api/x", Some(&huge)).await);
}

#[tokio::test]
async fn several_issuers_each_verify_with_their_own_keys_only() {
    let dir = tempfile::tempdir().unwrap();
    let partner = Key::new("k1"); // same kid as the first issuer's key
    let doc = json!({"keys": [partner.jwk()]});
    std::fs::write(dir.path().join("partner.json"), doc.to_string()).unwrap();
    let env = Env::start_full(
        "client_auth: optional",
        &format!(
            "    - issuer: https://partner.test\n      audiences: [{AUD}]\n      jwks_file: {}\n",
            dir.path().join("partner.json").display()
        ),
    )
    .await;
    let anon = env.anon();
    let partner_claims = |sub: &str| {
        let mut c = claims(sub, json!({}));
        c["iss"] = json!("https://partner.test");
        c
    };
    // The partner's token, with the partner's key: verified (no role, so 403).
    let r = env
        .get(&anon, "/api/x", Some(&partner.sign(&partner_claims("p"))))
        .await;
    assert_eq!(r.status, 403, "verified, then denied by policy");
    let first = wait_for(|| env.gw.audit().first().cloned());
    assert_eq!(first["token_issuer"], "https://partner.test");
    // A token claiming the partner but signed with the first issuer's key
    // (same kid): the partner's key set is the only one consulted.
    assert_invalid_token(
        &env.get(&anon, "/api/x", Some(&env.key.sign(&partner_claims("p"))))
            .await,
    );
    assert!(audit_reason(&env, 2).contains("bad_signature"));
    // And the other way round.
    assert_invalid_token(
        &env.get(
            &anon,
            "/api/x",
            Some(&partner.sign(&claims("alice", json!({})))),
        )
        .await,
    );
    assert!(audit_reason(&env, 3).contains("bad_signature"));
    // An issuer nobody configured.
    let mut c = claims("alice", json!({}));
    c["iss"] = json!("https://evil.test");
    assert_invalid_token(&env.get(&anon, "/api/x", Some(&env.key.sign(&c))).await);
    assert!(audit_reason(&env, 4).contains("unknown_issuer"));
    // The first issuer still works.
    let r = env
        .get(
            &anon,
            "/api/x",
            Some(&env.key.sign(&claims("alice", json!({})))),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_foreign_token_with_an_unknown_kid_causes_no_fetch() {
    // With one issuer the gateway skips parsing `iss` up front; a token of
    // another issuer must still never make it refetch keys.
    let env = Env::start().await;
    let stranger = Key::new("stranger-kid");
    let mut c = claims("alice", json!({}));
    c["iss"] = json!("https://evil.test");
    for _ in 0..3 {
        assert_invalid_token(
            &env.get(&env.anon(), "/api/x", Some(&stranger.sign(&c)))
                .await,
        );
    }
    assert!(audit_reason(&env, 3).contains("unknown_issuer"));
    let (_, body) = env.gw.admin_get("/readyz").await;
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        ready["issuers"][0]["fetches_ok"], 1,
        "only the initial load: {ready}"
    );
}

fn cert_der(c: &ClientCert) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(c.key.cert_pem.as_bytes())
        .unwrap()
        .to_vec()
}

fn sha256(b: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b)
        .as_ref()
        .to_vec()
}
