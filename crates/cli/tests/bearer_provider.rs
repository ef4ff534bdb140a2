//! The gateway with a real OpenID provider (`oidc-provider`, started from
//! `tests/oidc-provider/`): keys found by discovery over HTTPS, access
//! tokens from the client-credentials grant and from `portcullis login`
//! (authorization code + PKCE, driven headlessly), claims and MFA state
//! from the provider judged by the policy.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test: a failed step must abort the test"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::oidc::{OidcProvider, API_AUDIENCE, CLI_CLIENT};
use common::*;
use http_body_util::Full;

fn policy(issuer: &str) -> String {
    format!(
        r#"revision: "provider-1"
roles:
  service: {{}}
  staff: {{}}
  admin: {{}}
bindings:
  - {{ role: service, issuer: "{issuer}", subject: portcullis-service }}
  - {{ role: staff, issuer: "{issuer}", claim: groups, value: staff }}
  - {{ role: admin, issuer: "{issuer}", claim: realm_access.roles, value: admins }}
rules:
  - {{ id: service-read, effect: allow, roles: [service], route: api, methods: [GET], path: "/api/service/**" }}
  - {{ id: staff-read, effect: allow, roles: [staff], route: api, methods: [GET], path: "/api/staff/**" }}
  - {{ id: admin-mfa, effect: allow, roles: [admin], route: api, path: "/api/admin/**",
      when: {{ mfa: {{ methods: [otp], max_age: 5m }}, claims: {{ email_verified: true }} }} }}
"#
    )
}

struct Env {
    gw: GatewayProc,
    up: RecordingUpstream,
    provider: OidcProvider,
    pki: TestPki,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::new(&dir.path().join("pki"));
        let provider = OidcProvider::start(&pki, &[]);
        let up = RecordingUpstream::start().await;
        let mut config = config_yaml(
            &pki,
            &[("api", "/api", up.addr)],
            "      client_auth: optional\n",
        );
        config.push_str(&format!(
            "bearer:\n  issuers:\n    - issuer: {}\n      audiences: [{API_AUDIENCE}]\n      ca: {}\n      typ: [at+jwt]\n      algorithms: [ES256]\n",
            provider.issuer,
            pki.ca_bundle.display()
        ));
        let gw = GatewayProc::start(dir.path(), &config, &policy(&provider.issuer));
        Self {
            gw,
            up,
            provider,
            pki,
            dir,
        }
    }

    async fn get(&self, path: &str, token: &str) -> Resp {
        let req = http::Request::get(path)
            .header("host", "localhost")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        Client::new(&self.pki, None)
            .send(self.gw.addr, req)
            .await
            .unwrap()
    }

    /// Logs in with `portcullis login` as `name`/`password` through the
    /// provider's own pages, then returns `portcullis token`.
    fn login(&self, name: &str, password: &str) -> String {
        let config_dir = self.dir.path().join(format!("cfg-{name}"));
        let mut child = Command::new(bin())
            .args([
                "login",
                "--issuer",
                &self.provider.issuer,
                "--client-id",
                CLI_CLIENT,
                "--ca",
                self.pki.ca_bundle.to_str().unwrap(),
                "--no-browser",
            ])
            .env("PORTCULLIS_CONFIG_DIR", &config_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("Open this URL to log in: ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let url = rx.recv_timeout(WAIT).expect("login printed no URL");
        self.provider.browser(&url, name, password).unwrap();
        let deadline = std::time::Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(std::time::Instant::now() < deadline, "login did not finish");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "login failed");
        let out = Command::new(bin())
            .args(["token", "--ca", self.pki.ca_bundle.to_str().unwrap()])
            .env("PORTCULLIS_CONFIG_DIR", &config_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}

#[tokio::test]
async fn provider_tokens_verify_through_discovery() {
    let env = Env::start().await;
    let token = env.provider.client_credentials_token("api:read");
    let r = env.get("/api/service/x", &token).await;
    assert_eq!(r.status, 200, "{}", env.gw.stderr());
    let rec = env.up.records().pop().unwrap();
    assert!(rec.headers.get("authorization").is_none());
    let assertion = jwt_payload(rec.headers["x-portcullis-identity"].to_str().unwrap());
    assert_eq!(assertion["sub"], "portcullis-service");
    assert_eq!(assertion["token_iss"], env.provider.issuer.as_str());
    // The same token where the service has no role.
    assert_eq!(env.get("/api/staff/x", &token).await.status, 403);
    // /readyz shows the issuer with usable keys fetched by discovery.
    let (_, body) = env.gw.admin_get("/readyz").await;
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    let issuer = &ready["issuers"][0];
    assert_eq!(issuer["issuer"], env.provider.issuer.as_str());
    assert_eq!(issuer["usable"], true);
    assert!(issuer["keys"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn provider_token_with_an_altered_signature_is_refused() {
    let env = Env::start().await;
    let token = env.provider.client_credentials_token("api:read");
    // Flip one character of the signature.
    let mut bytes = token.into_bytes();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(bytes).unwrap();
    let r = env.get("/api/service/x", &forged).await;
    assert_eq!(r.status, 401);
    assert_eq!(env.up.count(), 0);
    let audit = env.gw.wait_audit_where(|r| r["status"] == 401).await;
    let reason = audit.iter().find(|r| r["status"] == 401).unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reason.contains("bad_signature"), "{reason}");
}

#[tokio::test]
async fn logged_in_users_are_judged_by_their_claims_and_mfa() {
    let env = Env::start().await;
    // alice is in `admins`; with the `otp` password her token says amr otp.
    let alice_mfa = env.login("alice", "otp");
    assert_eq!(
        env.get("/api/admin/keys", &alice_mfa).await.status,
        200,
        "{}",
        env.gw.stderr()
    );
    let alice_pwd = env.login("alice", "pw");
    let r = env.get("/api/admin/keys", &alice_pwd).await;
    assert_eq!(r.status, 403, "no second factor");
    let audit = env
        .gw
        .wait_audit_where(|r| r["status"] == 403 && r["token_subject"] == "alice")
        .await;
    let rec = audit.iter().find(|r| r["status"] == 403).unwrap();
    assert!(
        rec["reason"].as_str().unwrap().contains("when.mfa"),
        "{rec}"
    );
    // bob is staff only.
    let bob = env.login("bob", "otp");
    assert_eq!(env.get("/api/staff/x", &bob).await.status, 200);
    assert_eq!(env.get("/api/admin/keys", &bob).await.status, 403);
}
