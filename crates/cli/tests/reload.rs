//! End to end: hot reload of configuration and policy. A reload is atomic
//! under traffic (every request is judged by exactly one complete
//! revision), a failed reload keeps the running configuration and policy,
//! a gateway with an invalid policy never starts, and SIGUSR1 reopens the
//! audit log after rotation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions (clippy.toml allows these in tests)"
)]
mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    closed_port, config_yaml, send_on, without_file_watch, write_atomic, Client, GatewayProc,
    RecordingUpstream, TestEnv, TestPki, UpstreamBehaviour, BASIC_POLICY, WAIT,
};
use http_body_util::Full;

const SUCCESS: &str = r#"portcullis_policy_reloads_total{result="success"}"#;
const FAILURE: &str = r#"portcullis_policy_reloads_total{result="failure"}"#;
const CONFIG_FAILURE: &str = r#"portcullis_config_reloads_total{result="failure"}"#;
const ODD: &str = "/api/odd/x";
const ALWAYS: &str = "/api/always/x";

/// Revision `r{i}`: readers may always GET `/api/always/**`, and
/// `/api/odd/**` only when `i` is odd.
fn revision(i: usize) -> String {
    let mut s = format!(
        r#"revision: "r{i}"
roles:
  reader: {{}}
bindings:
  - {{ role: reader, spiffe_id: "spiffe://example.org/ns/test/sa/reader" }}
rules:
  - {{ id: always, effect: allow, roles: [reader], route: api, methods: [GET], path: "/api/always/**" }}
"#
    );
    if i % 2 == 1 {
        s.push_str(
            "  - { id: odd, effect: allow, roles: [reader], route: api, methods: [GET], path: \"/api/odd/**\" }\n",
        );
    }
    s
}

/// Policies that must not load: bad YAML, an unknown role, a cycle.
const INVALID: [&str; 3] = [
    "revision: \"broken\nroles: {\n  reader: [\n",
    r#"revision: "unknown-role"
roles:
  reader: {}
bindings:
  - { role: editr, spiffe_id: "spiffe://example.org/ns/test/sa/reader" }
"#,
    r#"revision: "cycle"
roles:
  a: { inherits: [b] }
  b: { inherits: [a] }
"#,
];

fn get(path: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// One client task: alternates `/api/odd/x` and `/api/always/x` until
/// `stop`, on a new connection per request or on one kept-alive
/// connection that spans the reloads.
async fn client_loop(
    client: Client,
    addr: std::net::SocketAddr,
    keep_alive: bool,
    stop: Arc<AtomicBool>,
) -> Vec<(&'static str, Result<u16, String>)> {
    let mut out = Vec::new();
    let mut session = None;
    while !stop.load(Ordering::Relaxed) {
        for path in [ODD, ALWAYS] {
            let res = if keep_alive {
                if session.is_none() {
                    session = Some(client.h1_session(addr).await);
                }
                match session.as_mut() {
                    Some(Ok(s)) => send_on(s, get(path)).await,
                    Some(Err(e)) => Err(e.clone()),
                    None => unreachable!(),
                }
            } else {
                client.send(addr, get(path)).await
            };
            if res.is_err() && keep_alive {
                session = None;
            }
            out.push((path, res.map(|r| r.status)));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_is_atomic_under_traffic() {
    let env = TestEnv::start_with(
        UpstreamBehaviour::default(),
        |c, _, _| without_file_watch(&c),
        &revision(0),
    )
    .await;
    let dir = env.dir.path().to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for k in 0..4 {
        tasks.push(tokio::spawn(client_loop(
            env.reader.clone(),
            env.gw.addr,
            k % 2 == 1,
            stop.clone(),
        )));
    }

    let mut invalid_sent = 0;
    for i in 1..=100usize {
        let rev = format!("r{i}");
        write_atomic(&dir, "policy.yaml", &revision(i));
        env.gw.signal("HUP");
        assert_eq!(env.gw.wait_revision(&rev).await, rev, "reload {i}");
        if i % 10 == 5 {
            // An invalid policy keeps revision i in force.
            let failures = env.gw.metric(FAILURE).await;
            write_atomic(&dir, "policy.yaml", INVALID[invalid_sent % INVALID.len()]);
            invalid_sent += 1;
            env.gw.signal("HUP");
            assert_eq!(
                env.gw.wait_metric_at_least(FAILURE, failures + 1.0).await,
                failures + 1.0,
                "invalid policy {invalid_sent} was not refused"
            );
            assert_eq!(env.gw.policy_revision().await, rev);
            let r = env.reader.get(env.gw.addr, ALWAYS).await.unwrap();
            assert_eq!(
                r.status, 200,
                "not serving after invalid policy {invalid_sent}"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut results = Vec::new();
    for t in tasks {
        results.extend(tokio::time::timeout(WAIT, t).await.unwrap().unwrap());
    }
    assert_eq!(invalid_sent, 10);

    // Every client request got a policy answer: never 5xx, never a
    // connection error; the always-allowed path was always allowed.
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for (path, res) in &results {
        *by_status.entry(format!("{path} {res:?}")).or_default() += 1;
    }
    for (path, res) in &results {
        match (*path, res) {
            (ALWAYS, Ok(200)) | (ODD, Ok(200 | 403)) => {}
            _ => panic!("unexpected outcome {path} {res:?}; all outcomes: {by_status:?}"),
        }
    }
    // The requests from this test body (one per invalid policy) count too.
    let requests = results.len() + invalid_sent;

    // One audit record per request, each judged by one whole revision.
    let audit = env.gw.wait_audit(requests).await;
    assert_eq!(audit.len(), requests, "audit records vs requests");
    let (mut odd_allowed, mut odd_denied) = (0usize, 0usize);
    for rec in &audit {
        let rev = rec["policy_revision"].as_str().unwrap();
        let i: usize = rev
            .strip_prefix('r')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("bad policy_revision in {rec}"));
        assert!(i <= 100, "{rec}");
        assert_eq!(rec["policy_sha256"].as_str().unwrap().len(), 64, "{rec}");
        match rec["path"].as_str().unwrap() {
            ODD => {
                let allowed = i % 2 == 1;
                let (decision, status) = if allowed {
                    ("allow", 200)
                } else {
                    ("deny", 403)
                };
                assert_eq!(rec["decision"], decision, "{rec}");
                assert_eq!(rec["status"], status, "{rec}");
                if allowed {
                    assert_eq!(rec["rule"], "odd", "{rec}");
                    odd_allowed += 1;
                } else {
                    odd_denied += 1;
                }
            }
            ALWAYS => {
                assert_eq!(rec["decision"], "allow", "{rec}");
                assert_eq!(rec["rule"], "always", "{rec}");
            }
            other => panic!("unexpected path {other}: {rec}"),
        }
    }
    // The clients saw the same split as the audit.
    let client_allowed = results
        .iter()
        .filter(|(p, r)| *p == ODD && *r == Ok(200))
        .count();
    assert_eq!(client_allowed, odd_allowed);
    assert!(
        odd_allowed > 0 && odd_denied > 0,
        "traffic did not span revisions: {by_status:?}"
    );
    assert_eq!(env.gw.metric(SUCCESS).await, 100.0);
    assert_eq!(env.gw.metric(FAILURE).await, 10.0);
    // Exactly the allowed requests reached the upstream.
    assert_eq!(env.up.count(), requests - odd_denied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_file_change_is_picked_up_without_a_signal() {
    let env = TestEnv::start().await;
    assert_eq!(env.gw.policy_revision().await, "basic-1");
    let r = env.reader.get(env.gw.addr, "/api/x").await.unwrap();
    assert_eq!(r.status, 200);
    // The new revision takes reading away from readers.
    let next = BASIC_POLICY
        .replace("revision: \"basic-1\"", "revision: \"watched-2\"")
        .replace(
            "roles: [reader], route: api, methods: [GET, HEAD]",
            "roles: [writer], route: api, methods: [GET, HEAD]",
        );
    assert_ne!(next, BASIC_POLICY);
    write_atomic(env.dir.path(), "policy.yaml", &next);
    assert_eq!(env.gw.wait_revision("watched-2").await, "watched-2");
    let r = env.reader.get(env.gw.addr, "/api/x").await.unwrap();
    assert_eq!(r.status, 403);
    let audit = env.gw.wait_audit(2).await;
    assert_eq!(audit[1]["policy_revision"], "watched-2");
    assert_eq!(audit[1]["decision"], "deny");
    assert!(env.gw.metric(SUCCESS).await >= 1.0);
    assert_eq!(env.gw.metric(FAILURE).await, 0.0);
}

/// BASIC_POLICY at revision `next-2` with the reader's rule removed.
fn next_policy() -> String {
    let p = BASIC_POLICY.replace("revision: \"basic-1\"", "revision: \"next-2\"");
    let p: String = p
        .lines()
        .filter(|l| !l.contains("id: api-read"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!p.contains("api-read"));
    p
}

/// The basic gateway reloading on SIGHUP only, and its configuration text.
async fn start_without_watch() -> (TestEnv, String) {
    let env = TestEnv::start_with(
        UpstreamBehaviour::default(),
        |c, _, _| without_file_watch(&c),
        BASIC_POLICY,
    )
    .await;
    let good = std::fs::read_to_string(env.dir.path().join("portcullis.yaml")).unwrap();
    (env, good)
}

/// Writes `config` and a new policy, sends SIGHUP and checks that the
/// reload was refused (the `failures`-th refusal) for `reason`, with the
/// running policy left in force.
async fn assert_reload_refused(env: &TestEnv, config: &str, failures: f64, reason: &str) {
    let dir = env.dir.path();
    write_atomic(dir, "portcullis.yaml", config);
    write_atomic(dir, "policy.yaml", &next_policy());
    env.gw.signal("HUP");
    assert_eq!(
        env.gw.wait_metric_at_least(CONFIG_FAILURE, failures).await,
        failures
    );
    assert_eq!(env.gw.policy_revision().await, "basic-1");
    let stderr = env.gw.stderr();
    assert!(stderr.contains(reason), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_on_reload_keeps_the_running_config_and_policy() {
    let (env, good) = start_without_watch().await;
    let dir = env.dir.path();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let ca = env.pki.ca_bundle.display().to_string();
    let bad = good.replace(
        &format!("client_ca: {ca}"),
        &format!("client_ca: {}", empty.display()),
    );
    assert_ne!(bad, good);

    // A bad config together with a new policy: neither is taken.
    write_atomic(dir, "portcullis.yaml", &bad);
    write_atomic(dir, "policy.yaml", &next_policy());
    env.gw.signal("HUP");
    assert_eq!(env.gw.wait_metric_at_least(CONFIG_FAILURE, 1.0).await, 1.0);
    // The configuration was the problem, not the policy.
    assert_eq!(env.gw.metric(FAILURE).await, 0.0);
    assert_eq!(env.gw.metric(SUCCESS).await, 0.0);
    assert_eq!(env.gw.policy_revision().await, "basic-1");
    let stderr = env.gw.stderr();
    assert!(
        stderr.contains("listeners[0].tls.client_ca") && stderr.contains("reload refused"),
        "{stderr}"
    );
    // Still ready, and /readyz says the files on disk are not in force.
    let (status, body) = env.gw.admin_get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["last_reload"]["result"], "refused", "{body}");
    assert_eq!(ready["last_reload"]["trigger"], "sighup", "{body}");
    assert!(
        ready["last_reload"]["error"]
            .as_str()
            .unwrap()
            .contains("listeners[0].tls.client_ca"),
        "{body}"
    );
    // The old trust anchors and policy still serve.
    let r = env.reader.get(env.gw.addr, "/api/x").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(env.up.count(), 1);

    // Fixing the config loads both.
    write_atomic(dir, "portcullis.yaml", &good);
    env.gw.signal("HUP");
    assert_eq!(env.gw.wait_revision("next-2").await, "next-2");
    assert_eq!(env.gw.metric(SUCCESS).await, 1.0);
    let (_, body) = env.gw.admin_get("/readyz").await;
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["last_reload"]["result"], "applied", "{body}");
    assert!(ready["last_reload"].get("error").is_none(), "{body}");
    let r = env.reader.get(env.gw.addr, "/api/x").await.unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(env.up.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_changing_a_listener_bind_address_is_refused() {
    let (env, good) = start_without_watch().await;
    let moved = good.replacen(
        "    bind: 127.0.0.1:0\n",
        &format!("    bind: {}\n", closed_port()),
        1,
    );
    assert_ne!(moved, good);
    assert_reload_refused(
        &env,
        &moved,
        1.0,
        "listeners: names and bind addresses cannot change on reload",
    )
    .await;
    // Still serving on the original address with the original policy.
    let r = env.reader.get(env.gw.addr, "/api/x").await.unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_changing_the_assertion_ttl_is_refused_but_its_scope_applies() {
    let (env, good) = start_without_watch().await;
    let dir = env.dir.path();
    write_atomic(
        dir,
        "portcullis.yaml",
        &format!("{good}identity_assertion:\n  ttl: 30s\n"),
    );
    env.gw.signal("HUP");
    assert_eq!(env.gw.wait_metric_at_least(CONFIG_FAILURE, 1.0).await, 1.0);
    let stderr = env.gw.stderr();
    assert!(
        stderr.contains("identity_assertion.signing_key, issuer and ttl cannot change on reload"),
        "{stderr}"
    );
    let r = env.reader.get(env.gw.addr, "/api/x").await.unwrap();
    assert_eq!(r.status, 200);
    let rec = env.up.records().pop().unwrap();
    let claims = common::jwt_payload(rec.headers["x-portcullis-identity"].to_str().unwrap());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        60
    );

    // The scope alone may change: the next reload applies.
    write_atomic(
        dir,
        "portcullis.yaml",
        &format!("{good}identity_assertion:\n  scope: connection\n"),
    );
    write_atomic(
        dir,
        "policy.yaml",
        &BASIC_POLICY.replace("revision: \"basic-1\"", "revision: \"basic-2\""),
    );
    env.gw.signal("HUP");
    assert_eq!(env.gw.wait_revision("basic-2").await, "basic-2");
    let r = env.reader.get(env.gw.addr, "/api/x").await.unwrap();
    assert_eq!(r.status, 200);
    let rec = env.up.records().pop().unwrap();
    let claims = common::jwt_payload(rec.headers["x-portcullis-identity"].to_str().unwrap());
    assert!(
        claims.get("rid").is_none(),
        "connection scope after reload: {claims}"
    );
}

/// Complete JSON lines of an audit file (a read may race the writer).
fn records_in(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits until `path` holds at least `n` records; returns what it holds.
async fn wait_records(path: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    let start = Instant::now();
    loop {
        let r = records_in(path);
        if r.len() >= n || start.elapsed() > WAIT {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A request as the reader that must be allowed; its request id.
async fn allowed_request(env: &TestEnv) -> String {
    let r = env.reader.get(env.gw.addr, "/api/x").await.unwrap();
    assert_eq!(r.status, 200);
    r.headers["x-portcullis-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

fn request_ids(records: &[serde_json::Value]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_reopens_the_audit_log_after_rotation() {
    let (env, _) = start_without_watch().await;
    let dir = env.dir.path();
    let live = dir.join("audit.log");
    let rotated = dir.join("audit.log.1");

    let first = allowed_request(&env).await;
    assert_eq!(request_ids(&wait_records(&live, 1).await), [first.as_str()]);

    // What logrotate does: rename, then signal. Until the signal the
    // gateway writes on into the renamed file.
    std::fs::rename(&live, &rotated).unwrap();
    let second = allowed_request(&env).await;
    assert_eq!(
        request_ids(&wait_records(&rotated, 2).await),
        [first.as_str(), second.as_str()]
    );
    assert!(!live.exists());

    env.gw.signal("USR1");
    let start = Instant::now();
    while !live.exists() && start.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(live.exists(), "SIGUSR1 did not reopen the audit log");
    let third = allowed_request(&env).await;
    assert_eq!(request_ids(&wait_records(&live, 1).await), [third.as_str()]);
    assert_eq!(records_in(&rotated).len(), 2);
    // Still the same process, serving, with its policy.
    assert_eq!(env.gw.policy_revision().await, "basic-1");
    assert!(
        env.gw.stderr().contains("audit log reopened"),
        "{}",
        env.gw.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_changing_the_audit_destination_is_refused() {
    let (env, good) = start_without_watch().await;
    let dir = env.dir.path();
    let moved = good.replace("audit:\n  dest: audit.log\n", "audit:\n  dest: other.log\n");
    assert_ne!(moved, good);
    const AUDIT_FIXED: &str = "audit: dest, queue_capacity and deny_wait cannot change on reload";
    assert_reload_refused(&env, &moved, 1.0, AUDIT_FIXED).await;
    // Records still go where the running configuration says.
    let id = allowed_request(&env).await;
    let records = env.gw.wait_audit(1).await;
    assert!(request_ids(&records).contains(&id.as_str()));
    assert!(!dir.join("other.log").exists());

    // The queue is part of it too.
    let smaller = good.replace(
        "audit:\n  dest: audit.log\n",
        "audit:\n  dest: audit.log\n  queue_capacity: 16\n",
    );
    assert_reload_refused(&env, &smaller, 2.0, AUDIT_FIXED).await;
}

/// A one-key trust root valid now (its content does not matter here:
/// no bundle is ever published).
fn trust_root_json() -> String {
    let key =
        portcullis_bundle::SigningKey::generate(portcullis_bundle::SigAlg::EcdsaP256).unwrap();
    serde_json::json!({"format": "portcullis-trust-root-v1", "version": 1, "threshold": 1,
        "keys": [{"id": "a", "alg": "ecdsa-p256", "public_key": key.public_key_pem(),
            "not_before": "2020-01-01T00:00:00Z", "not_after": "2100-01-01T00:00:00Z"}]})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_switching_to_signed_bundles_is_refused() {
    let (env, good) = start_without_watch().await;
    let dir = env.dir.path();
    std::fs::write(dir.join("trust-root.json"), trust_root_json()).unwrap();
    let bundled = good.replace(
        "policy:\n  file: policy.yaml\n",
        "policy:\n  bundle:\n    trust_root: trust-root.json\n    state_dir: state\n    file: bundle.tar\n",
    );
    assert_ne!(bundled, good);
    // The configuration is valid on its own: only the switch is refused.
    std::fs::write(dir.join("bundled.yaml"), &bundled).unwrap();
    let check = Command::new(common::bin())
        .args(["config", "check"])
        .arg(dir.join("bundled.yaml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_reload_refused(&env, &bundled, 1.0, "policy.bundle cannot change on reload").await;
    // The policy file still decides.
    let r = env.reader.get(env.gw.addr, "/api/x").await.unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_watching_turned_on_by_a_reload_takes_effect() {
    let (env, good) = start_without_watch().await;
    let dir = env.dir.path();
    let watching = good.replacen(
        "  watch: false\n",
        "  watch: true\n  poll_interval: 200ms\n",
        1,
    );
    assert_ne!(watching, good);
    write_atomic(dir, "portcullis.yaml", &watching);
    env.gw.signal("HUP");
    assert_eq!(env.gw.wait_metric_at_least(SUCCESS, 1.0).await, 1.0);
    // From now on a policy change needs no signal.
    write_atomic(dir, "policy.yaml", &next_policy());
    assert_eq!(env.gw.wait_revision("next-2").await, "next-2");
    let r = env.reader.get(env.gw.addr, "/api/x").await.unwrap();
    assert_eq!(r.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_with_an_invalid_policy_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(&dir.path().join("pki"));
    let up = RecordingUpstream::start().await;
    // A fixed, free port: if the gateway bound it, the port would be taken.
    let port = closed_port();
    let config = config_yaml(&pki, &[("api", "/api", up.addr)], "").replacen(
        "    bind: 127.0.0.1:0\n",
        &format!("    bind: {port}\n"),
        1,
    );
    std::fs::write(dir.path().join("portcullis.yaml"), &config).unwrap();
    std::fs::write(dir.path().join("policy.yaml"), INVALID[1]).unwrap();
    let ready = dir.path().join("ready.json");
    let mut child = Command::new(common::bin())
        .args(["run", "--workers", "2", "--config"])
        .arg(dir.path().join("portcullis.yaml"))
        .arg("--ready-file")
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > WAIT {
            let _ = child.kill();
            panic!("gateway with an invalid policy kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{status}: {stderr}");
    assert_eq!(status.code(), Some(1), "{stderr}");
    let policy_path = dir.path().join("policy.yaml").display().to_string();
    assert!(
        stderr.contains(&format!(
            "{policy_path}: bindings[0].role: unknown role `editr`"
        )),
        "{stderr}"
    );
    assert!(!ready.exists(), "ready file written");
    assert!(!stderr.contains("portcullis started"), "{stderr}");
    // The listener address was never bound: it is still free.
    std::net::TcpListener::bind(port).expect("listener port was left bound");

    // The same files with a valid policy start: the refusal was the policy.
    std::fs::write(dir.path().join("policy.yaml"), BASIC_POLICY).unwrap();
    let gw = GatewayProc::start_existing(dir.path()).unwrap();
    assert_eq!(gw.addr, port);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_crl_file_is_picked_up_without_a_signal() {
    // Start with CRLs that revoke nothing; the file watch is on (200 ms).
    let (env, inter_crl) = TestEnv::start_with_crls().await;
    assert_eq!(
        env.reader.get(env.gw.addr, "/api/x").await.unwrap().status,
        200
    );

    // The intermediate's CRL now revokes the reader's certificate.
    env.revoke(&inter_crl, &env.reader_cert);
    let success = r#"portcullis_config_reloads_total{result="success"}"#;
    assert_eq!(env.gw.wait_metric_at_least(success, 1.0).await, 1.0);
    let refused = env.reader.get(env.gw.addr, "/api/x").await;
    assert!(
        refused.is_err(),
        "a revoked certificate must be refused after the CRL changed: {refused:?}"
    );
    // Others still pass.
    assert_eq!(
        env.writer.get(env.gw.addr, "/api/x").await.unwrap().status,
        200
    );
}
