//! Browser-login test environment: the real OpenID provider, one or more
//! real gateways with `oidc` and `sessions` configured (store given by the
//! test), a recording upstream, and helpers that log in through the
//! provider's pages and talk to the session admin API.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test harness: a failed setup step must abort the test"
)]

use bytes::Bytes;
use http_body_util::Full;

use super::oidc::{parse_final, OidcProvider, WEB_CLIENT, WEB_SECRET};
use super::*;

pub struct Browser {
    /// The first instance (most tests use one).
    pub gw: GatewayProc,
    pub port: u16,
    /// Further instances sharing the store (`start_many`).
    pub others: Vec<(GatewayProc, u16)>,
    pub up: RecordingUpstream,
    pub provider: OidcProvider,
    pub pki: TestPki,
    pub dir: tempfile::TempDir,
}

/// A port that is free now and that the kernel will not hand out on its
/// own meanwhile: it is picked at random below the ephemeral range, so no
/// port-0 bind or outgoing connection of a parallel test can take it
/// between this call and the gateway's bind (the OpenID provider starts in
/// between).
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.max(10_001));
    let random = std::collections::hash_map::RandomState::new();
    for attempt in 0u32..200 {
        let mut h = random.build_hasher();
        h.write_u32(attempt);
        h.write_u32(std::process::id());
        let span = u64::from(high - low);
        let port = low + u16::try_from(h.finish() % span).unwrap();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port found below the ephemeral range {ephemeral_low}..");
}

pub fn policy(issuer: &str) -> String {
    format!(
        r#"revision: "sessions-1"
roles:
  user: {{}}
  admin: {{}}
bindings:
  - {{ role: user, issuer: "{issuer}" }}
  - {{ role: admin, issuer: "{issuer}", claim: groups, value: admins }}
rules:
  - {{ id: app, effect: allow, roles: [user], route: app, path: "/app/home" }}
  - {{ id: app-admin, effect: allow, roles: [admin], route: app, path: "/app/admin/**",
      when: {{ mfa: {{ methods: [otp], max_age: 5m }} }} }}
  - {{ id: no-users-on-admin, effect: deny, route: app, path: "/app/admin/**", when: {{ claims: {{ groups: staff-only }} }} }}
"#
    )
}

impl Browser {
    /// One gateway with the embedded store.
    pub async fn start() -> Self {
        Self::start_many(1, "    embedded: { path: sessions.redb }\n").await
    }

    /// `n` gateways sharing the store given as YAML under `sessions.store:`
    /// (each instance gets its own directory, so relative paths differ).
    pub async fn start_many(n: usize, store_yaml: &str) -> Self {
        Self::start_custom(n, store_yaml, &[], "").await
    }

    /// As [`Self::start_many`], with extra provider arguments and extra
    /// lines under `sessions:` (two-space indented).
    pub async fn start_custom(
        n: usize,
        store_yaml: &str,
        provider_args: &[&str],
        sessions_extra: &str,
    ) -> Self {
        assert!(n >= 1);
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::new(&dir.path().join("pki"));
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let callbacks: Vec<String> = ports
            .iter()
            .map(|p| format!("https://localhost:{p}/.portcullis/callback"))
            .collect();
        let mut args: Vec<&str> = provider_args.to_vec();
        for c in &callbacks {
            args.push("--web-redirect");
            args.push(c);
        }
        let provider = OidcProvider::start(&pki, &args);
        let up = RecordingUpstream::start().await;
        let mut gws = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let gdir = dir.path().join(format!("gw{i}"));
            std::fs::create_dir_all(&gdir).unwrap();
            std::fs::write(gdir.join("client-secret"), WEB_SECRET).unwrap();
            std::fs::write(gdir.join("admin-token"), ADMIN_TOKEN).unwrap();
            std::fs::write(
                gdir.join("session-k1.key"),
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
            )
            .unwrap();
            let mut config = config_yaml(
                &pki,
                &[("app", "/app", up.addr)],
                "      client_auth: optional\n",
            )
            .replace(
                "bind: 127.0.0.1:0\n    tls:",
                &format!("bind: 127.0.0.1:{port}\n    tls:"),
            );
            config = config.replace(
                "    upstream:\n",
                "    browser_login: true\n    upstream:\n",
            );
            config = config.replace(
                "admin:\n  bind: 127.0.0.1:0\n",
                "admin:\n  bind: 127.0.0.1:0\n  token_file: admin-token\n",
            );
            config.push_str(&format!(
                "oidc:\n  issuer: {iss}\n  client_id: {WEB_CLIENT}\n  client_secret_file: client-secret\n  redirect_uri: {cb}\n  post_logout_redirect_uri: https://localhost:{port}/\n  ca: {ca}\n  scopes: [openid, email]\nsessions:\n  store:\n{store_yaml}{sessions_extra}{idle}  absolute_timeout: 1h\n  refresh_token_keys:\n    - {{ id: k1, file: session-k1.key }}\n",
                iss = provider.issuer,
                idle = if sessions_extra.contains("idle_timeout") { "" } else { "  idle_timeout: 10m\n" },
                cb = callbacks[i],
                ca = pki.ca_bundle.display()
            ));
            gws.push((
                GatewayProc::start(&gdir, &config, &policy(&provider.issuer)),
                *port,
            ));
        }
        let (gw, port) = gws.remove(0);
        Self {
            gw,
            port,
            others: gws,
            up,
            provider,
            pki,
            dir,
        }
    }

    /// Instance `i` (0 = the first).
    pub fn instance(&self, i: usize) -> (&GatewayProc, u16) {
        if i == 0 {
            (&self.gw, self.port)
        } else {
            let (g, p) = &self.others[i - 1];
            (g, *p)
        }
    }

    /// GET on instance `i`.
    pub async fn get_at(&self, i: usize, path: &str, cookies: &[&str], html: bool) -> Resp {
        self.get_via(&self.client(), i, path, cookies, html).await
    }

    /// GET on instance `i` over `client` (e.g. one with a certificate).
    pub async fn get_via(
        &self,
        client: &Client,
        i: usize,
        path: &str,
        cookies: &[&str],
        html: bool,
    ) -> Resp {
        let (gw, port) = self.instance(i);
        let mut req = http::Request::get(path).header("host", format!("localhost:{port}"));
        req = req.header(
            "accept",
            if html {
                "text/html,application/xhtml+xml"
            } else {
                "application/json"
            },
        );
        if !cookies.is_empty() {
            req = req.header("cookie", cookies.join("; "));
        }
        client
            .send(gw.addr, req.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap()
    }

    /// Logs in at instance 0 over `client`; returns the session cookie.
    pub async fn login_via(
        &self,
        client: &Client,
        path: &str,
        name: &str,
        password: &str,
    ) -> String {
        let r = self.get_via(client, 0, path, &[], true).await;
        assert_eq!(r.status, 302, "{}", self.gw.stderr());
        let txn = set_cookie(&r, "__Host-portcullis-login").unwrap();
        let callback = self.through_provider(&location(&r), name, password);
        let r = self
            .get_via(client, 0, &path_of(&callback), &[&txn], true)
            .await;
        assert_eq!(r.status, 302, "callback: {}", self.gw.stderr());
        set_cookie(&r, "__Host-portcullis-session").expect("session cookie")
    }

    pub fn client(&self) -> Client {
        Client::new(&self.pki, None)
    }

    pub async fn get(&self, path: &str, cookies: &[&str], html: bool) -> Resp {
        self.get_at(0, path, cookies, html).await
    }

    /// Logs in through the provider's pages; returns the session cookie
    /// (`name=value`).
    pub async fn login(&self, path: &str, name: &str, password: &str) -> String {
        self.login_at(0, path, name, password).await
    }

    /// Logs in starting at instance `i`.
    pub async fn login_at(&self, i: usize, path: &str, name: &str, password: &str) -> String {
        let r = self.get_at(i, path, &[], true).await;
        assert_eq!(r.status, 302, "{}", self.instance(i).0.stderr());
        let auth_url = location(&r);
        let txn = set_cookie(&r, "__Host-portcullis-login").unwrap();
        let callback = self.through_provider_at(i, &auth_url, name, password);
        let r = self.get_at(i, &path_of(&callback), &[&txn], true).await;
        assert_eq!(r.status, 302, "callback: {}", self.gw.stderr());
        assert_eq!(location(&r), path);
        set_cookie(&r, "__Host-portcullis-session").expect("session cookie")
    }

    /// Runs the provider's login for `auth_url`; returns the callback URL
    /// the provider redirected to.
    pub fn through_provider(&self, auth_url: &str, name: &str, password: &str) -> String {
        self.through_provider_at(0, auth_url, name, password)
    }

    pub fn through_provider_at(
        &self,
        i: usize,
        auth_url: &str,
        name: &str,
        password: &str,
    ) -> String {
        self.through_provider_with(i, auth_url, name, password, &[])
    }

    /// With extra `browser.mjs` arguments (e.g. `--cookie-jar FILE`).
    pub fn through_provider_with(
        &self,
        i: usize,
        auth_url: &str,
        name: &str,
        password: &str,
        extra: &[&str],
    ) -> String {
        let prefix = format!("https://localhost:{}/", self.instance(i).1);
        let mut args = vec![
            "--login",
            name,
            "--password",
            password,
            "--stop-prefix",
            &prefix,
        ];
        args.extend_from_slice(extra);
        let last = self.provider.browser_with(auth_url, &args).unwrap();
        parse_final(&last).1
    }
}

pub const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef0123456789";

impl Browser {
    /// The sessions the admin API lists.
    pub async fn sessions(&self) -> Vec<serde_json::Value> {
        let (status, body) =
            admin_request(&self.gw, "GET", "/admin/sessions", Some(ADMIN_TOKEN), "").await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["sessions"].as_array().unwrap().clone()
    }
}

/// One admin API request over plain HTTP/1.1.
pub async fn admin_request(
    gw: &GatewayProc,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(gw.admin).await.unwrap();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: admin\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    let status = raw_status(&out).unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

pub fn location(r: &Resp) -> String {
    r.headers["location"].to_str().unwrap().to_owned()
}

/// `name=value` of the Set-Cookie for `name`, checking its attributes.
pub fn set_cookie(r: &Resp, name: &str) -> Option<String> {
    for v in r.headers.get_all("set-cookie") {
        let s = v.to_str().unwrap();
        if let Some(rest) = s.strip_prefix(&format!("{name}=")) {
            let value = rest.split(';').next().unwrap();
            if value.is_empty() {
                continue;
            }
            for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
                assert!(s.contains(attr), "{s} lacks {attr}");
            }
            assert!(!s.contains("Domain="), "{s}");
            return Some(format!("{name}={value}"));
        }
    }
    None
}

pub fn path_of(url: &str) -> String {
    let u: http::Uri = url.parse().unwrap();
    u.path_and_query().unwrap().as_str().to_owned()
}
