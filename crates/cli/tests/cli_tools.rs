//! The offline tools of the `portcullis` binary: `config check`,
//! `pki init`/`pki issue` and `policy check`/`eval`/`test`, run as a user
//! runs them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions (clippy.toml allows these in tests)"
)]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use common::{config_yaml, Client, GatewayProc, TestPki, BASIC_POLICY};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn portcullis(args: &[&str]) -> Run {
    let out: Output = Command::new(common::bin())
        .args(args)
        .env("PORTCULLIS_LOG", "warn")
        .output()
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A config directory: test PKI, `portcullis.yaml` with route `api` to an
/// address that is never contacted, and `policy.yaml`.
fn config_dir(dir: &Path, extra_tls: &str, policy: &str) -> (TestPki, PathBuf) {
    let pki = TestPki::new(&dir.join("pki"));
    let up = "127.0.0.1:9".parse().unwrap();
    let config = config_yaml(&pki, &[("api", "/api", up)], extra_tls);
    std::fs::write(dir.join("policy.yaml"), policy).unwrap();
    let path = dir.join("portcullis.yaml");
    std::fs::write(&path, config).unwrap();
    (pki, path)
}

// ------------------------------------------------------------ config check

#[test]
fn config_check_accepts_a_valid_config_and_prints_its_parts() {
    let dir = tempfile::tempdir().unwrap();
    let (_pki, path) = config_dir(dir.path(), "", BASIC_POLICY);
    let r = portcullis(&["config", "check", s(&path)]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains(": ok"), "{r:?}");
    assert!(
        r.stdout.contains(
            "listener public on 127.0.0.1:0 (client_auth Required, 1 CA certificate(s), 0 CRL(s))"
        ),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("route api host=* prefix=/api -> http://127.0.0.1:9"),
        "{r:?}"
    );
    assert!(r.stdout.contains("revision basic-1 (3 rules"), "{r:?}");
    assert!(!r.stdout.contains("warning"), "{r:?}");
}

#[test]
fn config_check_warns_of_bindings_for_an_issuer_nobody_configures() {
    let dir = tempfile::tempdir().unwrap();
    let policy = BASIC_POLICY.replace(
        "bindings:\n",
        "bindings:\n  - { role: reader, issuer: \"https://idp.example\", subject: alice }\n",
    );
    assert_ne!(policy, BASIC_POLICY);
    let (_pki, path) = config_dir(dir.path(), "", &policy);
    let r = portcullis(&["config", "check", s(&path)]);
    assert_eq!(r.code, Some(0), "a warning, not an error: {r:?}");
    assert!(
        r.stdout.contains("warning: bindings name the token issuer `https://idp.example`, which neither `bearer.issuers` nor `oidc` configures"),
        "{r:?}"
    );
}

#[test]
fn policy_check_warns_of_has_roles_that_a_token_can_grant() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    let policy = r#"revision: 1
roles:
  user: {}
  frontend: {}
bindings:
  - { role: frontend, spiffe_id: "spiffe://example.org/ns/prod/sa/web" }
  - { role: user, issuer: "https://idp.example" }
  - { role: frontend, issuer: "https://idp.example", claim: groups, value: web }
rules:
  - { id: both, effect: allow, roles: [user], route: api, path: "/x",
      when: { authn: [mtls, token], has_roles: [frontend] } }
"#;
    std::fs::write(&path, policy).unwrap();
    let r = portcullis(&["policy", "check", s(&path)]);
    assert_eq!(r.code, Some(0), "a warning, not an error: {r:?}");
    assert!(
        r.stdout.contains("warning: rule `both`: `has_roles: [frontend]` holds for a token as well as a certificate"),
        "{r:?}"
    );
    // Without the token binding of `frontend`: no warning.
    std::fs::write(
        &path,
        policy.replace(
            "  - { role: frontend, issuer: \"https://idp.example\", claim: groups, value: web }\n",
            "",
        ),
    )
    .unwrap();
    let r = portcullis(&["policy", "check", s(&path)]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(!r.stdout.contains("warning"), "{r:?}");
}

#[test]
fn config_check_refuses_a_rule_another_route_takes_every_request_from() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(&dir.path().join("pki"));
    let up = "127.0.0.1:9".parse().unwrap();
    let config = config_yaml(
        &pki,
        &[("api", "/api", up), ("admin", "/api/admin", up)],
        "",
    );
    let policy = format!(
        "{BASIC_POLICY}  - {{ id: admin-read, effect: allow, roles: [reader], route: admin, path: \"/api/admin/**\" }}\n"
    );
    std::fs::write(dir.path().join("policy.yaml"), policy).unwrap();
    let path = dir.path().join("portcullis.yaml");
    std::fs::write(&path, config).unwrap();
    let r = portcullis(&["config", "check", s(&path)]);
    // BASIC_POLICY's `no-admin` deny sits on `api`, whose /api/admin
    // requests all go to `admin`: it would never fire.
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr
            .contains("rule `no-admin` can never match on route `api`")
            && r.stderr
                .contains("route `admin` (path prefix `/api/admin`)"),
        "{r:?}"
    );
}

#[test]
fn config_check_refuses_a_client_ca_file_without_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, path) = config_dir(dir.path(), "", BASIC_POLICY);
    // A private key where the CA bundle should be, then an empty file.
    for content in [
        std::fs::read_to_string(&pki.server_key).unwrap(),
        String::new(),
    ] {
        std::fs::write(&pki.ca_bundle, content).unwrap();
        let r = portcullis(&["config", "check", s(&path)]);
        assert_eq!(r.code, Some(1), "{r:?}");
        assert!(r.stderr.contains("listeners[0].tls.client_ca"), "{r:?}");
        assert!(r.stderr.contains("ca-bundle.pem"), "{r:?}");
        assert!(r.stdout.is_empty(), "{r:?}");
        // Never quotes key material.
        assert!(!r.stderr.contains("PRIVATE KEY"), "{r:?}");
    }
}

#[test]
fn config_check_refuses_unknown_keys_naming_them() {
    for (extra, key) in [
        ("      insecure_skip_verify: true\n", "insecure_skip_verify"),
        ("      verify: false\n", "verify"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (_pki, path) = config_dir(dir.path(), extra, BASIC_POLICY);
        let r = portcullis(&["config", "check", s(&path)]);
        assert_eq!(r.code, Some(1), "{r:?}");
        assert!(r.stderr.contains("listeners[0].tls"), "{r:?}");
        assert!(
            r.stderr.contains(&format!("unknown field `{key}`")),
            "{r:?}"
        );
    }
}

#[test]
fn config_check_refuses_a_missing_required_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_pki, path) = config_dir(dir.path(), "", BASIC_POLICY);
    let text = std::fs::read_to_string(&path).unwrap();
    let without: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("client_ca:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(text, without);
    std::fs::write(&path, without).unwrap();
    let r = portcullis(&["config", "check", s(&path)]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("missing field `client_ca`"), "{r:?}");
    assert!(r.stderr.contains("listeners[0].tls"), "{r:?}");
}

#[test]
fn config_check_refuses_a_policy_naming_an_unknown_route() {
    let dir = tempfile::tempdir().unwrap();
    let policy = format!(
        "{BASIC_POLICY}  - {{ id: billing-read, effect: allow, roles: [reader], route: billing, methods: [GET], path: \"/**\" }}\n"
    );
    let (_pki, path) = config_dir(dir.path(), "", &policy);
    let r = portcullis(&["config", "check", s(&path)]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("`billing`"), "{r:?}");
    assert!(r.stderr.contains("policy.yaml"), "{r:?}");
    // The gateway refuses to start on it as well.
    let started = GatewayProc::start_existing(dir.path());
    assert!(started.is_err());
}

// ----------------------------------------------------------------- pki

const INIT_FILES: [&str; 5] = [
    "root-ca.pem",
    "root-ca.key",
    "intermediate-ca.pem",
    "intermediate-ca.key",
    "ca-bundle.pem",
];

#[test]
fn pki_init_writes_five_files_with_private_keys_0600_and_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let r = portcullis(&["pki", "init", s(&dir)]);
    assert_eq!(r.code, Some(0), "{r:?}");
    for f in INIT_FILES {
        let p = dir.join(f);
        assert!(p.is_file(), "{f} missing");
        assert!(r.stdout.contains(s(&p)), "{r:?}");
        let expected = if f.ends_with(".key") { 0o600 } else { 0o644 };
        assert_eq!(mode(&p), expected, "{f}");
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 5);
    assert_eq!(
        std::fs::read(dir.join("ca-bundle.pem")).unwrap(),
        std::fs::read(dir.join("root-ca.pem")).unwrap()
    );
    let before: Vec<Vec<u8>> = INIT_FILES
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();

    let again = portcullis(&["pki", "init", s(&dir)]);
    assert_eq!(again.code, Some(1), "{again:?}");
    assert!(again.stderr.contains("refusing to overwrite"), "{again:?}");
    let after: Vec<Vec<u8>> = INIT_FILES
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    assert_eq!(before, after, "the existing CA was modified");
}

fn pem_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[test]
fn pki_issue_writes_chain_and_private_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    assert_eq!(portcullis(&["pki", "init", s(&dir)]).code, Some(0));
    let r = portcullis(&[
        "pki",
        "issue",
        "--dir",
        s(&dir),
        "--name",
        "web",
        "--spiffe-id",
        "spiffe://example.org/web",
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let chain = pem_certs(&dir.join("web.pem"));
    assert_eq!(chain.len(), 2, "leaf and intermediate");
    assert_eq!(
        chain[1],
        pem_certs(&dir.join("intermediate-ca.pem"))[0],
        "second certificate is the intermediate"
    );
    assert_eq!(mode(&dir.join("web.key")), 0o600);
    PrivateKeyDer::from_pem_file(dir.join("web.key")).unwrap();

    // Issuing the same name again is refused.
    let again = portcullis(&["pki", "issue", "--dir", s(&dir), "--name", "web"]);
    assert_eq!(again.code, Some(1), "{again:?}");
    assert!(again.stderr.contains("refusing to overwrite"), "{again:?}");
}

#[test]
fn pki_issue_refuses_a_bad_spiffe_id_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    assert_eq!(portcullis(&["pki", "init", s(&dir)]).code, Some(0));
    for (bad, why) in [
        ("http://example.org/web", "scheme must be `spiffe://`"),
        ("spiffe://Example.org/web", "trust domain may only hold"),
        ("spiffe://example.org/a/../b", "`.` or `..`"),
    ] {
        let r = portcullis(&[
            "pki",
            "issue",
            "--dir",
            s(&dir),
            "--name",
            "web",
            "--spiffe-id",
            bad,
        ]);
        assert_eq!(r.code, Some(1), "{bad}: {r:?}");
        assert!(r.stderr.contains("--spiffe-id"), "{bad}: {r:?}");
        assert!(r.stderr.contains(why), "{bad}: {r:?}");
        assert!(!dir.join("web.pem").exists() && !dir.join("web.key").exists());
    }
}

/// A client trusting `bundle` and presenting the PEM chain and key.
fn client_from_pem(bundle: &Path, chain_pem: &[u8], key_pem: &[u8]) -> Client {
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(bundle) {
        roots.add(c).unwrap();
    }
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem).unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Client::with(cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_from_pki_issue_is_accepted_by_a_gateway_trusting_the_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    assert_eq!(portcullis(&["pki", "init", s(&dir)]).code, Some(0));
    let server: &[&str] = &[
        "--name",
        "server",
        "--server",
        "--dns",
        "localhost",
        "--ip",
        "127.0.0.1",
    ];
    let web: &[&str] = &["--name", "web", "--spiffe-id", "spiffe://example.org/web"];
    for args in [server, web] {
        let mut all = vec!["pki", "issue", "--dir", s(&dir)];
        all.extend_from_slice(args);
        let r = portcullis(&all);
        assert_eq!(r.code, Some(0), "{r:?}");
    }

    // Everything the gateway uses comes from the CLI-made directory:
    // server certificate and key, and `client_ca: DIR/ca-bundle.pem`.
    let upstream = common::RecordingUpstream::start().await;
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let pki = TestPki {
        dir: dir.clone(),
        root: portcullis_pki::Ca::from_pem(&read("root-ca.pem"), &read("root-ca.key")).unwrap(),
        inter: portcullis_pki::intermediate_from_dir(&dir).unwrap(),
        ca_bundle: dir.join("ca-bundle.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
    };
    let config = config_yaml(&pki, &[("api", "/api", upstream.addr)], "");
    let policy = BASIC_POLICY.replace(
        "spiffe://example.org/ns/test/sa/reader",
        "spiffe://example.org/web",
    );
    let gw = GatewayProc::start(tmp.path(), &config, &policy);

    let bundle = dir.join("ca-bundle.pem");
    let web = client_from_pem(
        &bundle,
        read("web.pem").as_bytes(),
        read("web.key").as_bytes(),
    );
    let resp = web.get(gw.addr, "/api/x").await.unwrap();
    assert_eq!(resp.status, 200, "{resp:?}");
    let recs = upstream.records();
    assert_eq!(recs.len(), 1);
    let token = recs[0].headers["x-portcullis-identity"].to_str().unwrap();
    let claims = common::jwt_payload(token);
    assert_eq!(claims["spiffe_id"], "spiffe://example.org/web");
    assert_eq!(claims["roles"], serde_json::json!(["reader"]));

    // The same identity from another CA is not trusted by this gateway.
    let other = TestPki::new(&tmp.path().join("other"));
    let stranger = other.workload("web", "/web");
    let stranger = client_from_pem(
        &bundle,
        stranger.chain_pem.as_bytes(),
        stranger.key.key_pem.as_bytes(),
    );
    let res = stranger.get(gw.addr, "/api/x").await;
    assert!(res.is_err(), "{res:?}");
    assert_eq!(upstream.count(), 1);
}

// --------------------------------------------------------------- policy

fn example_policy() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/policy/policy.yaml"
    ))
}

#[test]
fn policy_check_prints_roles_with_effective_roles() {
    let path = example_policy();
    let r = portcullis(&["policy", "check", s(&path)]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stdout
            .contains("roles (effective permissions after inheritance):"),
        "{r:?}"
    );
    // admin inherits api-writer, which inherits api-reader.
    let admin = r
        .stdout
        .split("\n  admin\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no role `admin`: {r:?}"));
    let admin_effective = admin
        .lines()
        .find(|l| l.trim_start().starts_with("effective roles:"))
        .unwrap();
    assert_eq!(
        admin_effective.trim(),
        "effective roles: admin, api-reader, api-writer"
    );
    assert!(
        r.stdout.contains(
            "  api-writer\n    inherits: api-reader\n    effective roles: api-reader, api-writer\n"
        ),
        "{r:?}"
    );
}

#[test]
fn policy_check_names_an_inheritance_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cycle.yaml");
    std::fs::write(
        &p,
        "revision: \"c\"\nroles:\n  a: { inherits: [b] }\n  b: { inherits: [c] }\n  c: { inherits: [a] }\nrules: []\n",
    )
    .unwrap();
    let r = portcullis(&["policy", "check", s(&p)]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("inheritance cycle"), "{r:?}");
    assert!(r.stderr.contains("`a -> b -> c -> a`"), "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
}

fn eval_input(dir: &Path, name: &str, spiffe_id: &str, method: &str, path: &str) -> PathBuf {
    let p = dir.join(name);
    let v = serde_json::json!({
        "principal": { "spiffe_id": spiffe_id },
        "route": "api",
        "method": method,
        "path": path,
        "source_ip": "10.1.2.3",
        "time": "2026-12-04T10:00:00Z",
    });
    std::fs::write(&p, v.to_string()).unwrap();
    p
}

#[test]
fn policy_eval_prints_the_decision_and_exits_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, BASIC_POLICY).unwrap();
    let reader = "spiffe://example.org/ns/test/sa/reader";

    let allow = eval_input(dir.path(), "allow.json", reader, "GET", "/api/x");
    let r = portcullis(&[
        "policy",
        "eval",
        "--policy",
        s(&policy),
        "--input",
        s(&allow),
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["allowed"], true);
    assert_eq!(v["reason"], "allow");
    assert_eq!(v["rule"], "api-read");
    assert_eq!(v["roles"], serde_json::json!(["reader"]));
    assert_eq!(v["revision"], "basic-1");

    let deny = eval_input(dir.path(), "deny.json", reader, "GET", "/api/admin/x");
    let r = portcullis(&[
        "policy",
        "eval",
        "--policy",
        s(&policy),
        "--input",
        s(&deny),
    ]);
    assert_eq!(r.code, Some(2), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["allowed"], false);
    assert_eq!(v["reason"], "explicit_deny");
    assert_eq!(v["rule"], "no-admin");

    let nobody = eval_input(
        dir.path(),
        "nobody.json",
        "spiffe://example.org/x",
        "GET",
        "/api/x",
    );
    let r = portcullis(&[
        "policy",
        "eval",
        "--policy",
        s(&policy),
        "--input",
        s(&nobody),
    ]);
    assert_eq!(r.code, Some(2), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["reason"], "no_roles");

    // An input that is not a request is an error, not a deny.
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, r#"{"route": "api"}"#).unwrap();
    let r = portcullis(&[
        "policy",
        "eval",
        "--policy",
        s(&policy),
        "--input",
        s(&junk),
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("junk.json"), "{r:?}");
}

const PASSING_CASE: &str = r#"  - name: reader reads
    request:
      principal: { spiffe_id: "spiffe://example.org/ns/test/sa/reader" }
      route: api
      method: GET
      path: /api/x
      source_ip: 10.1.2.3
    expect: allow
    rule: api-read
"#;

const FAILING_CASE: &str = r#"  - name: reader writes (wrong expectation)
    request:
      principal: { spiffe_id: "spiffe://example.org/ns/test/sa/reader" }
      route: api
      method: POST
      path: /api/x
      source_ip: 10.1.2.3
    expect: allow
"#;

/// `DIR/policy.yaml` and `DIR/tests/cases.yaml` with `cases`.
fn policy_test_dir(dir: &Path, cases: &str) -> PathBuf {
    std::fs::write(dir.join("policy.yaml"), BASIC_POLICY).unwrap();
    let tests = dir.join("tests");
    std::fs::create_dir_all(&tests).unwrap();
    std::fs::write(
        tests.join("cases.yaml"),
        format!("policy: ../policy.yaml\ntime: \"2026-12-04T10:00:00Z\"\ncases:\n{cases}"),
    )
    .unwrap();
    tests
}

#[test]
fn policy_test_reports_passed_and_failed_and_exits_by_them() {
    let dir = tempfile::tempdir().unwrap();
    let tests = policy_test_dir(dir.path(), &format!("{PASSING_CASE}{FAILING_CASE}"));
    let r = portcullis(&["policy", "test", s(&tests)]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stdout.lines().any(|l| l == "1 passed, 1 failed"), "{r:?}");
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("ok ") && l.ends_with("reader reads")),
        "{r:?}"
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("FAIL ") && l.contains("reader writes (wrong expectation)")),
        "{r:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let tests = policy_test_dir(dir.path(), PASSING_CASE);
    let r = portcullis(&["policy", "test", s(&tests)]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.lines().any(|l| l == "1 passed, 0 failed"), "{r:?}");
}

#[test]
fn policy_test_runs_the_shipped_examples() {
    let tests = example_policy().parent().unwrap().join("tests");
    let r = portcullis(&["policy", "test", s(&tests)]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains(" passed, 0 failed"), "{r:?}");
}

#[test]
fn policy_eval_and_test_take_token_identities() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policy-tokens");
    let policy = root.join("policy.yaml");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("admin.json");
    let request = |auth_time: i64| {
        serde_json::json!({
            "token": {"claims": {"iss": "https://idp.example.com", "sub": "root", "employment": "staff",
                                  "realm_access": {"roles": ["admin"]}, "amr": ["pwd", "otp"],
                                  "auth_time": auth_time}},
            "route": "api", "method": "POST", "path": "/v1/keys/rotate",
            "source_ip": "10.1.2.3", "time": "2026-12-04T10:00:00Z",
        })
    };
    // 1796378400 is the request time: fresh, then 20 minutes old.
    std::fs::write(&input, request(1_796_378_400 - 60).to_string()).unwrap();
    let r = portcullis(&[
        "policy",
        "eval",
        "--policy",
        s(&policy),
        "--input",
        s(&input),
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["rule"], "admin-writes-keys");
    assert_eq!(v["roles"], serde_json::json!(["admin", "support", "user"]));

    std::fs::write(&input, request(1_796_378_400 - 1200).to_string()).unwrap();
    let r = portcullis(&[
        "policy",
        "eval",
        "--policy",
        s(&policy),
        "--input",
        s(&input),
    ]);
    assert_eq!(r.code, Some(2), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["reason"], "condition_failed");
    assert_eq!(v["failed"]["condition"], "when.mfa");
    assert!(
        v["failed"]["detail"]
            .as_str()
            .unwrap()
            .contains("1200s old"),
        "{v}"
    );

    // A token without its issuer is an input error, not a deny.
    std::fs::write(
        &input,
        r#"{"token": {"claims": {"sub": "root"}}, "route": "api", "method": "GET", "path": "/", "source_ip": "10.1.2.3"}"#,
    )
    .unwrap();
    let r = portcullis(&[
        "policy",
        "eval",
        "--policy",
        s(&policy),
        "--input",
        s(&input),
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("token.claims.iss"), "{r:?}");

    let r = portcullis(&["policy", "test", s(&root.join("tests"))]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains("11 passed, 0 failed"), "{r:?}");
}

#[test]
fn a_reader_that_stops_early_ends_a_command_quietly() {
    // `portcullis policy check … | head -1`: the summary of a large policy
    // is more than a pipe holds, so the command writes into a pipe whose
    // reader is gone, whenever the reader leaves.
    let dir = tempfile::tempdir().unwrap();
    let mut policy = String::from("revision: big\nroles:\n");
    for i in 0..900 {
        policy.push_str(&format!("  role-{i}: {{ inherits: [base] }}\n"));
    }
    policy.push_str("  base: {}\nrules:\n");
    for i in 0..900 {
        policy.push_str(&format!(
            "  - {{ id: rule-{i}, effect: allow, roles: [role-{i}], route: api, path: \"/api/r{i}/**\" }}\n"
        ));
    }
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, policy).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["policy", "check", s(&path)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}
