//! Signed policy bundles at the real gateway: nothing is served until a
//! bundle verifies; tampered, unsigned, under-signed and rolled-back
//! bundles are refused while the running policy stays; rollback state
//! survives restarts; an HTTPS source is polled with ETag and the gateway
//! fails closed when nothing was confirmed within `max_age`; the admin API
//! takes a new bundle only with the expected revision; a reload cannot
//! replace bundles with a policy file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test: a failed step must abort the test"
)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use portcullis_bundle::{Bundle, SigAlg, SigningKey};

/// A bundle tar file next to the configuration, polled every 200 ms.
const FILE_SOURCE: &str = "    file: bundle.tar\n    poll_interval: 200ms\n    max_age: 1h\n";

const ADMIN_TOKEN: &str = "bundle-admin-token-0123456789abcdef0123";

struct Keys {
    a: SigningKey,
    b: SigningKey,
    c: SigningKey,
}

fn keys() -> Keys {
    Keys {
        a: SigningKey::generate(SigAlg::EcdsaP256).unwrap(),
        b: SigningKey::generate(SigAlg::Ed25519).unwrap(),
        c: SigningKey::generate(SigAlg::EcdsaP256).unwrap(),
    }
}

/// A 2-of-3 trust root valid now.
fn trust_root(k: &Keys) -> String {
    let key = |id: &str, alg: &str, k: &SigningKey| {
        serde_json::json!({"id": id, "alg": alg, "public_key": k.public_key_pem(),
            "not_before": "2020-01-01T00:00:00Z", "not_after": "2100-01-01T00:00:00Z"})
    };
    serde_json::json!({"format": "portcullis-trust-root-v1", "version": 1, "threshold": 2,
        "keys": [key("a", "ecdsa-p256", &k.a), key("b", "ed25519", &k.b), key("c", "ecdsa-p256", &k.c)]})
    .to_string()
}

/// A bundle of `policy` at `revision`, signed by `signers`.
fn bundle(dir: &Path, revision: u64, policy: &str, signers: &[(&str, &SigningKey)]) -> Vec<u8> {
    let src = dir.join(format!("src-{revision}-{}", signers.len()));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("policy.yaml"), policy).unwrap();
    let mut b = Bundle::build(&src, revision, "policy.yaml", jiff::Timestamp::now()).unwrap();
    for (id, k) in signers {
        b.sign(id, k).unwrap();
    }
    b.to_tar().unwrap()
}

/// As [`bundle`], with the policy in `policy.json`.
fn json_bundle(
    dir: &Path,
    revision: u64,
    policy: &str,
    signers: &[(&str, &SigningKey)],
) -> Vec<u8> {
    let src = dir.join(format!("json-src-{revision}"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("policy.json"), policy).unwrap();
    let mut b = Bundle::build(&src, revision, "policy.json", jiff::Timestamp::now()).unwrap();
    for (id, k) in signers {
        b.sign(id, k).unwrap();
    }
    b.to_tar().unwrap()
}

/// [`BASIC_POLICY`] written as JSON, with revision `rev`.
fn json_policy_rev(rev: &str) -> String {
    let mut v: serde_json::Value = serde_norway::from_str(&policy_rev(rev)).unwrap();
    assert!(v["rules"].is_array());
    v["revision"] = serde_json::Value::from(rev);
    serde_json::to_string_pretty(&v).unwrap()
}

fn policy_rev(rev: &str) -> String {
    BASIC_POLICY.replace("revision: \"basic-1\"", &format!("revision: \"{rev}\""))
}

struct Env {
    gw: GatewayProc,
    _up: RecordingUpstream,
    reader: Client,
    keys: Keys,
    dir: tempfile::TempDir,
}

impl Env {
    /// A gateway whose policy comes from bundles at `source_yaml` (lines
    /// under `policy.bundle:`).
    async fn start(source_yaml: &str, keys: Keys) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::new(&dir.path().join("pki"));
        let up = RecordingUpstream::start().await;
        std::fs::write(dir.path().join("trust-root.json"), trust_root(&keys)).unwrap();
        std::fs::write(dir.path().join("admin-token"), ADMIN_TOKEN).unwrap();
        let config = config_yaml(&pki, &[("api", "/api", up.addr)], "")
            .replace(
                "policy:\n  file: policy.yaml\n",
                &format!("policy:\n  bundle:\n    trust_root: trust-root.json\n    state_dir: state\n{source_yaml}"),
            )
            .replace("admin:\n  bind: 127.0.0.1:0\n", "admin:\n  bind: 127.0.0.1:0\n  token_file: admin-token\n");
        std::fs::write(dir.path().join("portcullis.yaml"), &config).unwrap();
        let gw = GatewayProc::start_existing(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let reader_cert = pki.workload("reader", "/ns/test/sa/reader");
        let reader = Client::new(&pki, Some(&reader_cert));
        Self {
            gw,
            _up: up,
            reader,
            keys,
            dir,
        }
    }

    async fn status(&self) -> u16 {
        self.reader
            .get(self.gw.addr, "/api/x")
            .await
            .unwrap()
            .status
    }

    async fn wait_status(&self, want: u16) {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.status().await;
            if s == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "status stayed {s}, wanted {want}: {}",
                self.gw.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn readyz(&self) -> serde_json::Value {
        serde_json::from_str(&self.gw.admin_get("/readyz").await.1).unwrap()
    }

    async fn refusals(&self, reason: &str) -> f64 {
        metric_value(
            &self.gw.metrics().await,
            &format!("portcullis_policy_bundle_refusals_total{{reason=\"{reason}\"}}"),
        )
    }
}

#[tokio::test]
async fn nothing_is_served_until_a_bundle_verifies_and_bad_bundles_change_nothing() {
    let env = Env::start(FILE_SOURCE, keys()).await;
    let d = env.dir.path();
    // No bundle yet: 503, not ready.
    assert_eq!(env.status().await, 503);
    assert_eq!(env.readyz().await["ready"], false);
    // An unsigned bundle, then one with too few signatures: still nothing.
    std::fs::write(d.join("bundle.tar"), bundle(d, 1, &policy_rev("r1"), &[])).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(env.status().await, 503);
    std::fs::write(
        d.join("bundle.tar"),
        bundle(d, 1, &policy_rev("r1"), &[("a", &env.keys.a)]),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(env.status().await, 503);
    assert!(env.refusals("too_few_signatures").await >= 1.0);
    // Two valid signatures (ECDSA + Ed25519): served.
    std::fs::write(
        d.join("bundle.tar"),
        bundle(
            d,
            2,
            &policy_rev("r2"),
            &[("a", &env.keys.a), ("b", &env.keys.b)],
        ),
    )
    .unwrap();
    env.wait_status(200).await;
    let ready = env.readyz().await;
    assert_eq!(ready["bundle"]["revision"], 2, "{ready}");
    let audit = env.gw.wait_audit_where(|a| a["bundle_revision"] == 2).await;
    let rec = audit.iter().find(|a| a["bundle_revision"] == 2).unwrap();
    assert_eq!(rec["bundle_digest"], ready["bundle"]["digest"]);
    assert_eq!(rec["policy_revision"], "r2");

    // A lower revision (correctly signed): refused, r2 stays.
    std::fs::write(
        d.join("bundle.tar"),
        bundle(
            d,
            1,
            &policy_rev("r1"),
            &[("a", &env.keys.a), ("c", &env.keys.c)],
        ),
    )
    .unwrap();
    let deadline = Instant::now() + WAIT;
    while env.refusals("rollback").await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "rollback never refused: {}",
            env.gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(env.status().await, 200);
    assert_eq!(env.readyz().await["bundle"]["revision"], 2);
    // A tampered file: a new revision whose policy bytes changed after signing.
    let good = bundle(
        d,
        3,
        &policy_rev("r3"),
        &[("a", &env.keys.a), ("b", &env.keys.b)],
    );
    let mut tampered = good.clone();
    let pos = tampered.windows(2).position(|w| w == b"r3").unwrap();
    tampered[pos + 1] = b'9';
    std::fs::write(d.join("bundle.tar"), &tampered).unwrap();
    let deadline = Instant::now() + WAIT;
    while env.refusals("tampered_file").await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "tamper never refused: {}",
            env.gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A truncated download.
    std::fs::write(d.join("bundle.tar"), &good[..good.len() / 2]).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(env.readyz().await["bundle"]["revision"], 2, "still r2");
    assert_eq!(env.status().await, 200);
}

#[tokio::test]
async fn a_reload_cannot_swap_bundles_for_a_policy_file() {
    let env = Env::start(FILE_SOURCE, keys()).await;
    let d = env.dir.path();
    assert_eq!(env.status().await, 503);
    // An unsigned policy file next to the configuration, named by an
    // edited configuration: refused on the (watched) reload, nothing
    // served from it.
    std::fs::write(d.join("policy.yaml"), policy_rev("unsigned")).unwrap();
    let config = std::fs::read_to_string(d.join("portcullis.yaml")).unwrap();
    let start = config.find("policy:\n  bundle:\n").unwrap();
    let end = start + config[start..].find("\nadmin:").unwrap() + 1;
    let plain = format!(
        "{}policy:\n  file: policy.yaml\n  poll_interval: 200ms\n{}",
        &config[..start],
        &config[end..]
    );
    write_atomic(d, "portcullis.yaml", &plain);
    let failures = r#"portcullis_config_reloads_total{result="failure"}"#;
    assert!(env.gw.wait_metric_at_least(failures, 1.0).await >= 1.0);
    let stderr = env.gw.stderr();
    assert!(
        stderr.contains("policy.bundle cannot change on reload"),
        "{stderr}"
    );
    assert_eq!(env.status().await, 503);
    assert_eq!(env.readyz().await["ready"], false);
}

#[tokio::test]
async fn a_bundle_with_a_json_policy_is_served_and_a_bad_one_refused() {
    let env = Env::start(FILE_SOURCE, keys()).await;
    let d = env.dir.path();
    let both = [("a", &env.keys.a), ("b", &env.keys.b)];
    std::fs::write(
        d.join("bundle.tar"),
        json_bundle(d, 1, &json_policy_rev("json-1"), &both),
    )
    .unwrap();
    env.wait_status(200).await;
    let ready = env.readyz().await;
    assert_eq!(ready["bundle"]["revision"], 1, "{ready}");
    assert_eq!(ready["policy"]["revision"], "json-1", "{ready}");
    // The deny rule of the JSON policy holds.
    let r = env.reader.get(env.gw.addr, "/api/admin/x").await.unwrap();
    assert_eq!(r.status, 403);

    // Valid JSON of the wrong shape: refused whole, json-1 stays.
    let bad = json_policy_rev("json-2").replace(r#""roles": ["#, r#""rolez": ["#);
    assert_ne!(bad, json_policy_rev("json-2"));
    std::fs::write(d.join("bundle.tar"), json_bundle(d, 2, &bad, &both)).unwrap();
    let deadline = Instant::now() + WAIT;
    while env.refusals("policy_invalid").await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "bad JSON policy never refused: {}",
            env.gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        env.gw.stderr().contains("unknown field `rolez`"),
        "the log names the error: {}",
        env.gw.stderr()
    );
    assert_eq!(env.status().await, 200);
    assert_eq!(env.readyz().await["policy"]["revision"], "json-1");
}

#[tokio::test]
async fn rollback_protection_survives_a_restart() {
    let env = Env::start(FILE_SOURCE, keys()).await;
    let d = env.dir.path().to_owned();
    std::fs::write(
        d.join("bundle.tar"),
        bundle(
            &d,
            5,
            &policy_rev("r5"),
            &[("a", &env.keys.a), ("b", &env.keys.b)],
        ),
    )
    .unwrap();
    env.wait_status(200).await;
    let Env {
        mut gw,
        keys,
        dir,
        _up,
        reader,
    } = env;
    gw.signal("TERM");
    gw.wait_exit(WAIT);
    // The source now serves an older, correctly signed bundle.
    std::fs::write(
        d.join("bundle.tar"),
        bundle(&d, 4, &policy_rev("r4"), &[("a", &keys.a), ("b", &keys.b)]),
    )
    .unwrap();
    let gw = GatewayProc::start_existing(dir.path()).unwrap();
    // The installed r5 serves (from the state directory), r4 is refused.
    let deadline = Instant::now() + WAIT;
    loop {
        let m = gw.metrics().await;
        if metric_value(
            &m,
            "portcullis_policy_bundle_refusals_total{reason=\"rollback\"}",
        ) >= 1.0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no rollback refusal after restart: {}",
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready: serde_json::Value = serde_json::from_str(&gw.admin_get("/readyz").await.1).unwrap();
    assert_eq!(ready["bundle"]["revision"], 5, "{ready}");
    // The verified r5 keeps serving (within max_age of its verification).
    assert_eq!(reader.get(gw.addr, "/api/x").await.unwrap().status, 200);
    let a = gw.wait_audit_where(|a| a["bundle_revision"] == 5).await;
    assert!(a
        .iter()
        .any(|a| a["bundle_revision"] == 5 && a["policy_revision"] == "r5"));
}

/// An HTTPS bundle server that honours If-None-Match and can be switched off.
struct BundleServer {
    addr: SocketAddr,
    body: Arc<Mutex<Option<Vec<u8>>>>,
    not_modified: Arc<AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl BundleServer {
    async fn start(pki: &TestPki) -> Self {
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;
        let server = pki
            .inter
            .issue(&portcullis_pki::IssueRequest::server("localhost"))
            .unwrap();
        let chain = {
            use rustls_pki_types::pem::PemObject;
            let mut c: Vec<_> =
                rustls_pki_types::CertificateDer::pem_slice_iter(server.cert_pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap();
            c.extend(
                rustls_pki_types::CertificateDer::pem_slice_iter(pki.inter.cert_pem().as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap(),
            );
            c
        };
        let key = {
            use rustls_pki_types::pem::PemObject;
            rustls_pki_types::PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).unwrap()
        };
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let body: Arc<Mutex<Option<Vec<u8>>>> = Arc::new(Mutex::new(None));
        let not_modified = Arc::new(AtomicUsize::new(0));
        let (b, nm) = (body.clone(), not_modified.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = tcp.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let (b, nm) = (b.clone(), nm.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(s).await else {
                        return;
                    };
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (b, nm) = (b.clone(), nm.clone());
                        async move {
                            let current = b.lock().unwrap().clone();
                            let resp = match current {
                                None => http::Response::builder()
                                    .status(503)
                                    .body(Full::new(Bytes::new())),
                                Some(bytes) => {
                                    let tag = format!("\"{}\"", sha256_hex(&bytes));
                                    let matches = req
                                        .headers()
                                        .get("if-none-match")
                                        .is_some_and(|v| v.to_str().unwrap_or("") == tag);
                                    if matches {
                                        nm.fetch_add(1, Ordering::SeqCst);
                                        http::Response::builder()
                                            .status(304)
                                            .header("etag", tag)
                                            .body(Full::new(Bytes::new()))
                                    } else {
                                        http::Response::builder()
                                            .header("etag", tag)
                                            .body(Full::new(Bytes::from(bytes)))
                                    }
                                }
                            };
                            Ok::<_, std::convert::Infallible>(resp.unwrap())
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            body,
            not_modified,
            _task: task,
        }
    }
}

#[tokio::test]
async fn https_source_with_etag_and_fail_closed_after_max_age() {
    let k = keys();
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(&dir.path().join("pki-server"));
    let server = BundleServer::start(&pki).await;
    *server.body.lock().unwrap() = Some(bundle(
        dir.path(),
        7,
        &policy_rev("r7"),
        &[("a", &k.a), ("c", &k.c)],
    ));
    std::fs::copy(&pki.ca_bundle, dir.path().join("bundle-ca.pem")).unwrap();
    let env = Env::start(
        &format!(
            "    url: https://localhost:{}/bundle.tar\n    ca: {}\n    poll_interval: 300ms\n    max_age: 2s\n",
            server.addr.port(),
            dir.path().join("bundle-ca.pem").display()
        ),
        k,
    )
    .await;
    env.wait_status(200).await;
    // Unchanged: answered 304 and counted as confirmation.
    let deadline = Instant::now() + WAIT;
    while server.not_modified.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "no conditional requests");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(env.status().await, 200);
    // The server goes away: after max_age the gateway fails closed and says why.
    *server.body.lock().unwrap() = None;
    env.wait_status(503).await;
    let ready = env.readyz().await;
    assert_eq!(ready["ready"], false);
    assert!(
        ready["bundle"]["reason"]
            .as_str()
            .unwrap()
            .contains("no policy bundle confirmed"),
        "{ready}"
    );
    let m = env.gw.metrics().await;
    assert!(
        metric_value(&m, "portcullis_policy_bundle_age_seconds") >= 2.0,
        "{m}"
    );
    // It comes back: confirmed again, served again.
    *server.body.lock().unwrap() = Some(bundle(
        env.dir.path(),
        7,
        &policy_rev("r7"),
        &[("a", &env.keys.a), ("c", &env.keys.c)],
    ));
    env.wait_status(200).await;
}

async fn put_bundle(gw: &GatewayProc, if_match: Option<&str>, body: Vec<u8>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(gw.admin).await.unwrap();
    let im = if_match
        .map(|m| format!("if-match: {m}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "PUT /admin/policy/bundle HTTP/1.1\r\nhost: admin\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n{im}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    (raw_status(&out).unwrap(), out)
}

#[tokio::test]
async fn admin_upload_needs_the_expected_revision_and_one_of_two_racing_publishers_loses() {
    let env = Env::start(
        "    dir: no-such-dir\n    poll_interval: 1h\n    max_age: 2h\n",
        keys(),
    )
    .await;
    let d = env.dir.path();
    let b1 = bundle(
        d,
        1,
        &policy_rev("r1"),
        &[("a", &env.keys.a), ("b", &env.keys.b)],
    );
    let (status, _) = put_bundle(&env.gw, None, b1.clone()).await;
    assert_eq!(status, 428, "If-Match is required");
    let (status, out) = put_bundle(&env.gw, Some("\"none\""), b1).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(env.status().await, 200);
    // Two publishers both based on revision 1.
    let p2 = bundle(
        d,
        2,
        &policy_rev("r2-alice"),
        &[("a", &env.keys.a), ("b", &env.keys.b)],
    );
    let q2 = bundle(
        d,
        3,
        &policy_rev("r3-bob"),
        &[("b", &env.keys.b), ("c", &env.keys.c)],
    );
    let (ra, rb) = tokio::join!(
        put_bundle(&env.gw, Some("\"1\""), p2),
        put_bundle(&env.gw, Some("\"1\""), q2)
    );
    let mut statuses = [ra.0, rb.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412], "{} / {}", ra.1, rb.1);
    // A badly signed upload is refused with the reason; nothing changes.
    let rev = env.readyz().await["bundle"]["revision"].as_u64().unwrap();
    let bad = bundle(d, 9, &policy_rev("r9"), &[("a", &env.keys.a)]);
    let (status, out) = put_bundle(&env.gw, Some(&format!("\"{rev}\"")), bad).await;
    assert_eq!(status, 422, "{out}");
    assert!(out.contains("too_few_signatures"), "{out}");
    assert_eq!(env.readyz().await["bundle"]["revision"], rev);
}

#[tokio::test]
async fn config_check_accepts_a_bundle_configuration_before_any_bundle() {
    let k = keys();
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(&dir.path().join("pki"));
    std::fs::write(dir.path().join("trust-root.json"), trust_root(&k)).unwrap();
    let config = config_yaml(&pki, &[("api", "/api", "127.0.0.1:9".parse().unwrap())], "").replace(
        "policy:\n  file: policy.yaml\n",
        "policy:\n  bundle:\n    file: bundle.tar\n    trust_root: trust-root.json\n",
    );
    std::fs::write(dir.path().join("portcullis.yaml"), config).unwrap();
    let out = std::process::Command::new(bin())
        .args([
            "config",
            "check",
            dir.path().join("portcullis.yaml").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("policy from signed bundles"));
}
