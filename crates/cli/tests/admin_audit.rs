//! End to end: the admin listener (health, readiness, metrics, JWKS), the
//! audit record of every request, and graceful shutdown on SIGTERM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions (clippy.toml allows these in tests)"
)]
mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use bytes::Bytes;
use common::{sha256_hex, BasicGateway, Client, UpstreamBehaviour, BASIC_POLICY, WAIT};
use http_body_util::Full;
use tokio::sync::Semaphore;

const READER_ID: &str = "spiffe://example.org/ns/test/sa/reader";

fn request(method: &str, path: &str) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn request_id(resp: &common::Resp) -> String {
    resp.headers
        .get("x-portcullis-request-id")
        .expect("x-portcullis-request-id on every response")
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_readyz_report_the_loaded_policy() {
    let env = BasicGateway::start("").await;
    let (status, body) = env.gw.admin_get("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(body, "ok\n");

    let (status, body) = env.gw.admin_get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], true);
    assert_eq!(v["policy"]["revision"], "basic-1");
    let file = std::fs::read(env.dir.path().join("policy.yaml")).unwrap();
    assert_eq!(file, BASIC_POLICY.as_bytes());
    assert_eq!(v["policy"]["sha256"], sha256_hex(&file).as_str());
    assert_eq!(v["policy"]["rules"], 3);
    assert_eq!(v["trust"][0]["listener"], "public");
    assert_eq!(v["trust"][0]["client_ca_certificates"], 1);

    let (status, _) = env.gw.admin_get("/nope").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route_decision_and_status() {
    let env = BasicGateway::start("").await;
    let reader = env.reader();
    let client = Client::new(&env.pki, Some(&reader));
    let allowed = client
        .send(env.gw.addr, request("GET", "/api/x"))
        .await
        .unwrap();
    assert_eq!(allowed.status, 200);
    let denied = client
        .send(env.gw.addr, request("POST", "/api/x"))
        .await
        .unwrap();
    assert_eq!(denied.status, 403);

    let m = env.gw.metrics().await;
    let lines: Vec<&str> = m.lines().collect();
    assert!(
        lines
            .contains(&r#"portcullis_requests_total{route="api",decision="allow",status="200"} 1"#),
        "{m}"
    );
    assert!(
        lines.contains(&r#"portcullis_requests_total{route="api",decision="deny",status="403"} 1"#),
        "{m}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("portcullis_requests_total{"))
            .count(),
        2,
        "{m}"
    );
    // Latency histogram: both requests observed on route `api`.
    assert!(
        lines.contains(&"# TYPE portcullis_request_duration_seconds histogram"),
        "{m}"
    );
    assert!(
        lines.contains(&r#"portcullis_request_duration_seconds_count{route="api"} 2"#),
        "{m}"
    );
    assert!(
        lines.contains(&r#"portcullis_request_duration_seconds_bucket{le="+Inf",route="api"} 2"#),
        "{m}"
    );
    // The policy in force.
    let sha = sha256_hex(BASIC_POLICY.as_bytes());
    let info = format!(r#"portcullis_policy_info{{revision="basic-1",sha256="{sha}"}} 1"#);
    assert!(lines.contains(&info.as_str()), "{m}");
    // Families that must be scrapeable before their first event, so that
    // the first reload or the first dropped audit record is visible as an
    // increase.
    for series in [
        r#"portcullis_policy_reloads_total{result="success"} 0"#,
        r#"portcullis_policy_reloads_total{result="failure"} 0"#,
        r#"portcullis_audit_records_dropped_total{decision="allow"} 0"#,
        r#"portcullis_audit_records_dropped_total{decision="deny"} 0"#,
        r#"portcullis_audit_records_dropped_total{decision="error"} 0"#,
    ] {
        assert!(lines.contains(&series), "missing `{series}`:\n{m}");
    }
    assert!(
        lines.contains(&"# TYPE portcullis_policy_reloads counter"),
        "{m}"
    );
    assert!(
        lines.contains(&"# TYPE portcullis_audit_records_dropped counter"),
        "{m}"
    );
    assert!(
        lines.contains(&r#"portcullis_connections_total{listener="public"} 2"#),
        "{m}"
    );
    assert_eq!(m.lines().last(), Some("# EOF"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_holds_one_p256_key_that_verifies_the_assertion() {
    let env = BasicGateway::start("").await;
    let (status, body) = env.gw.admin_get("/.well-known/portcullis/jwks.json").await;
    assert_eq!(status, 200, "{body}");
    let jwks: serde_json::Value = serde_json::from_str(&body).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{body}");
    let k = &keys[0];
    assert_eq!(k["kty"], "EC");
    assert_eq!(k["crv"], "P-256");
    assert_eq!(k["alg"], "ES256");
    assert_eq!(k["use"], "sig");
    assert!(k.get("d").is_none(), "the private key must never be served");
    let x = B64.decode(k["x"].as_str().unwrap()).unwrap();
    let y = B64.decode(k["y"].as_str().unwrap()).unwrap();
    assert_eq!((x.len(), y.len()), (32, 32));
    let kid = k["kid"].as_str().unwrap();

    // The key verifies the assertion the upstream receives.
    let reader = env.reader();
    let resp = Client::new(&env.pki, Some(&reader))
        .get(env.gw.addr, "/api/x")
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    let recs = env.upstream.records();
    let token = recs[0].headers["x-portcullis-identity"].to_str().unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let header: serde_json::Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], kid);
    let mut point = vec![0x04];
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    let key = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        point,
    );
    let signed = format!("{}.{}", parts[0], parts[1]);
    let sig = B64.decode(parts[2]).unwrap();
    key.verify(signed.as_bytes(), &sig)
        .expect("the assertion verifies against the served JWKS");
    let mut tampered = sig.clone();
    tampered[0] ^= 1;
    assert!(key.verify(signed.as_bytes(), &tampered).is_err());
}

/// Every field of one allowed request's record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_records_every_field_and_one_record_per_request() {
    let mut env = BasicGateway::start("").await;
    let reader = env.reader();
    let client = Client::new(&env.pki, Some(&reader));
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let before = jiff::Timestamp::now();

    let mut req = request("GET", "/api/a/./b/../c");
    req.headers_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    let (local, allowed) = client.send_from(env.gw.addr, req).await.unwrap();
    assert_eq!(allowed.status, 200);
    assert_eq!(env.upstream.records()[0].target, "/api/a/c");

    let (_, denied) = client
        .send_from(env.gw.addr, request("POST", "/api/x"))
        .await
        .unwrap();
    assert_eq!(denied.status, 403);
    let (_, admin) = client
        .send_from(env.gw.addr, request("GET", "/api/admin/x"))
        .await
        .unwrap();
    assert_eq!(admin.status, 403);
    assert_eq!(env.upstream.count(), 1);

    // Stop the gateway: the audit log is flushed and complete.
    env.gw.signal("TERM");
    let code = tokio::task::block_in_place(|| env.gw.wait_exit(WAIT));
    assert_eq!(code, Some(0), "{}", env.gw.stderr());
    let after = jiff::Timestamp::now();
    let audit = env.gw.audit();
    assert_eq!(audit.len(), 3, "one record per request: {audit:#?}");

    let sha = sha256_hex(BASIC_POLICY.as_bytes());
    let rec = &audit[0];
    let fields: Vec<&str> = rec
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for f in [
        "time",
        "request_id",
        "trace_id",
        "principal",
        "spiffe_id",
        "cert_thumbprint",
        "route",
        "method",
        "path",
        "source",
        "decision",
        "status",
        "rule",
        "reason",
        "policy_revision",
        "policy_sha256",
        "latency_us",
    ] {
        assert!(fields.contains(&f), "field `{f}` missing: {rec}");
    }
    let time: jiff::Timestamp = rec["time"].as_str().unwrap().parse().unwrap();
    assert!(
        before <= time && time <= after,
        "{time} not in [{before}, {after}]"
    );
    assert!(rec["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(rec["request_id"], request_id(&allowed).as_str());
    assert_eq!(rec["trace_id"], trace_id);
    assert_eq!(rec["principal"], READER_ID);
    assert_eq!(rec["spiffe_id"], READER_ID);
    assert_eq!(
        rec["cert_thumbprint"],
        sha256_hex(&reader.key.cert_der).as_str()
    );
    assert_eq!(rec["route"], "api");
    assert_eq!(rec["method"], "GET");
    assert_eq!(rec["path"], "/api/a/c");
    let source: SocketAddr = rec["source"].as_str().unwrap().parse().unwrap();
    assert_eq!(source, local);
    assert_eq!(rec["decision"], "allow");
    assert_eq!(rec["status"], 200);
    assert_eq!(rec["rule"], "api-read");
    assert!(rec["reason"].is_null());
    assert_eq!(rec["policy_revision"], "basic-1");
    assert_eq!(rec["policy_sha256"], sha.as_str());
    assert!(rec["latency_us"].is_u64(), "{rec}");

    let rec = &audit[1];
    assert_eq!(rec["request_id"], request_id(&denied).as_str());
    assert_eq!(rec["method"], "POST");
    assert_eq!(rec["path"], "/api/x");
    assert_eq!(rec["route"], "api");
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["status"], 403);
    assert!(rec["trace_id"].is_null());
    assert!(rec["rule"].is_null(), "{rec}");
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("role_not_permitted"),
        "{rec}"
    );
    assert_eq!(rec["principal"], READER_ID);

    let rec = &audit[2];
    assert_eq!(rec["request_id"], request_id(&admin).as_str());
    assert_eq!(rec["path"], "/api/admin/x");
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["status"], 403);
    assert_eq!(rec["rule"], "no-admin");
    assert!(
        rec["reason"].as_str().unwrap().contains("explicit_deny"),
        "{rec}"
    );

    // Request ids are distinct.
    assert_ne!(audit[0]["request_id"], audit[1]["request_id"]);
    assert_ne!(audit[1]["request_id"], audit[2]["request_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_request_then_exits_zero() {
    let mut env = BasicGateway::start_with(
        UpstreamBehaviour {
            delay: Some(Duration::from_millis(1500)),
            ..UpstreamBehaviour::default()
        },
        |_| String::new(),
    )
    .await;
    let reader = env.reader();
    let client = Client::new(&env.pki, Some(&reader));
    let addr = env.gw.addr;
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move { client.get(addr, "/api/slow").await })
    };
    // Wait until the upstream holds the request.
    let start = std::time::Instant::now();
    while env.upstream.count() == 0 {
        assert!(start.elapsed() < WAIT, "the upstream never got the request");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    env.gw.signal("TERM");

    // New connections are refused once the listener is closed.
    let start = std::time::Instant::now();
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) => {
                // Refused by the kernel, or reset when the listening socket
                // closed during the connect.
                assert!(
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                    ),
                    "{e}"
                );
                break;
            }
            Ok(_) => {
                assert!(start.elapsed() < WAIT, "listener still accepting");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    let resp = tokio::time::timeout(WAIT, in_flight)
        .await
        .expect("in-flight request finished")
        .unwrap()
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(&resp.body[..], b"upstream ok");
    let id = request_id(&resp);
    // A whole new request gets no answer either.
    let late = client.get(addr, "/api/late").await;
    assert!(late.is_err(), "{late:?}");

    let code = tokio::task::block_in_place(|| env.gw.wait_exit(WAIT));
    let stderr = env.gw.stderr();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        !stderr.contains("drain timeout reached"),
        "drained by timeout, not by completion:\n{stderr}"
    );
    let audit = env.gw.audit();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["request_id"], id.as_str());
    assert_eq!(audit[0]["path"], "/api/slow");
    assert_eq!(audit[0]["decision"], "allow");
    assert_eq!(audit[0]["status"], 200);
    assert_eq!(env.upstream.count(), 1);
}

/// An upstream that holds every request until [`GatedUpstream::release`].
struct GatedUpstream {
    addr: SocketAddr,
    received: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
    task: tokio::task::JoinHandle<()>,
}

impl GatedUpstream {
    async fn start() -> Self {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let received = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let (r, g) = (received.clone(), gate.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = tcp.accept().await {
                let (r, g) = (r.clone(), g.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |_req| {
                        let (r, g) = (r.clone(), g.clone());
                        async move {
                            r.fetch_add(1, Ordering::SeqCst);
                            let _permit = g.acquire().await;
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                Bytes::from_static(b"released"),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            received,
            gate,
            task,
        }
    }

    fn release(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

impl Drop for GatedUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reports_not_ready_while_draining_and_stops_after() {
    let dir = tempfile::tempdir().unwrap();
    let pki = common::TestPki::new(&dir.path().join("pki"));
    let upstream = GatedUpstream::start().await;
    let config = common::config_yaml(&pki, &[("api", "/api", upstream.addr)], "");
    let mut gw = common::GatewayProc::start(dir.path(), &config, BASIC_POLICY);
    assert_eq!(gw.admin_get("/readyz").await.0, 200);

    let reader = pki.workload("reader", "/ns/test/sa/reader");
    let client = Client::new(&pki, Some(&reader));
    let addr = gw.addr;
    let in_flight = tokio::spawn(async move { client.get(addr, "/api/held").await });
    let start = std::time::Instant::now();
    while upstream.received.load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < WAIT, "the upstream never got the request");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.signal("TERM");

    // While the request is held, the admin listener still answers:
    // not ready, and metrics show the open connection.
    let start = std::time::Instant::now();
    let body = loop {
        let (status, body) = gw.admin_get("/readyz").await;
        if status == 503 {
            break body;
        }
        assert_eq!(status, 200, "{body}");
        assert!(start.elapsed() < WAIT, "never reported not ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], false);
    assert_eq!(v["policy"]["revision"], "basic-1");
    assert_eq!(
        gw.metric(r#"portcullis_connections_active{listener="public"}"#)
            .await,
        1.0
    );
    // The public listener is closed (or closing) meanwhile.
    let start = std::time::Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(start.elapsed() < WAIT, "listener still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!in_flight.is_finished());

    upstream.release();
    let resp = tokio::time::timeout(WAIT, in_flight)
        .await
        .expect("in-flight request finished")
        .unwrap()
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(&resp.body[..], b"released");

    let code = tokio::task::block_in_place(|| gw.wait_exit(WAIT));
    assert_eq!(code, Some(0), "{}", gw.stderr());
    assert!(tokio::net::TcpStream::connect(gw.admin).await.is_err());
    let audit = gw.audit();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["path"], "/api/held");
    assert_eq!(audit[0]["status"], 200);
}
