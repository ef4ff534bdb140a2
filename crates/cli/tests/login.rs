//! `portcullis login`, `token` and `logout` end to end: the real binary
//! against a real OpenID provider (tests/oidc-provider) over HTTPS, with
//! the headless browser logging in, and forged callbacks sent by hand.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions (clippy.toml allows these in tests)"
)]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::oidc::{parse_final, query_param, unix_now, OidcProvider, API_AUDIENCE, CLI_CLIENT};
use common::{bin, jwt_payload, TestPki, WAIT};

/// Bound on a whole `portcullis` run (a device login polls every 5 s).
const RUN_WAIT: Duration = Duration::from_secs(90);

struct Env {
    provider: OidcProvider,
    pki: TestPki,
    config_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Env {
    fn start(provider_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::new(&dir.path().join("pki"));
        let provider = OidcProvider::start(&pki, provider_args);
        Self {
            provider,
            config_dir: dir.path().join("config").join("portcullis"),
            pki,
            _dir: dir,
        }
    }

    fn tokens_path(&self) -> PathBuf {
        self.config_dir.join("tokens.json")
    }

    fn tokens(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.tokens_path()).unwrap()).unwrap()
    }

    /// The one stored login.
    fn stored(&self) -> serde_json::Value {
        let t = self.tokens();
        let logins = t["logins"].as_array().unwrap();
        assert_eq!(logins.len(), 1, "{t}");
        logins[0].clone()
    }

    /// `portcullis ARGS` with this environment's configuration directory.
    fn spawn(&self, args: &[&str]) -> Cli {
        Cli::spawn(&self.config_dir, args)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.spawn(args).finish()
    }

    /// A scratch directory of this environment.
    fn scratch(&self) -> &Path {
        self._dir.path()
    }

    /// Rewrites the token file (in place: its mode stays 0600).
    fn edit_tokens(&self, edit: impl FnOnce(&mut serde_json::Value)) {
        let mut t = self.tokens();
        edit(&mut t);
        std::fs::write(self.tokens_path(), t.to_string()).unwrap();
    }

    /// Marks the one stored access token expired: `token` refreshes it.
    fn expire(&self) {
        self.edit_tokens(|t| t["logins"][0]["expires_at"] = 1.into());
    }

    /// `login --issuer I --client-id portcullis-cli --ca CA --no-browser ARGS`.
    fn login(&self, extra: &[&str]) -> Cli {
        self.login_with_ca(&self.pki.ca_bundle, extra)
    }

    /// [`Env::login`] with another `--ca` file.
    fn login_with_ca(&self, ca: &Path, extra: &[&str]) -> Cli {
        let ca = ca.to_str().unwrap().to_owned();
        let mut args = vec![
            "login",
            "--issuer",
            &self.provider.issuer,
            "--client-id",
            CLI_CLIENT,
            "--ca",
            &ca,
            "--no-browser",
        ];
        args.extend_from_slice(extra);
        self.spawn(&args)
    }

    /// A complete code-flow login as `name` through the browser.
    fn login_as(&self, name: &str, password: &str) -> Output {
        self.complete(self.login(&[]), name, password)
    }

    /// Completes the code-flow login `cli` started, as `name`.
    fn complete(&self, mut cli: Cli, name: &str, password: &str) -> Output {
        let url = cli.auth_url();
        let last = self.provider.browser(&url, name, password);
        let out = cli.finish();
        let last = last.unwrap_or_else(|e| panic!("browser: {e}\ncli: {out:?}"));
        assert_eq!(parse_final(&last).0, 200, "{last}");
        assert!(out.ok(), "login failed: {out:?}");
        out
    }
}

#[derive(Debug)]
struct Output {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Output {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    fn failed(&self) -> bool {
        self.status.is_some_and(|s| !s.success())
    }
}

/// A running `portcullis` whose stderr is read line by line.
struct Cli {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    stdout: std::thread::JoinHandle<String>,
}

impl Cli {
    fn spawn(config_dir: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(bin())
            .args(args)
            .env("PORTCULLIS_CONFIG_DIR", config_dir)
            .env("PORTCULLIS_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr_pipe = child.stderr.take().unwrap();
        let mut stdout_pipe = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let all = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                all.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout_pipe.read_to_string(&mut s);
            s
        });
        Self {
            child,
            lines,
            stderr,
            stdout,
        }
    }

    /// The first stderr line starting with `prefix`, within [`WAIT`].
    fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    let _ = self.child.kill();
                    panic!(
                        "no stderr line `{prefix}...`; stderr: {}",
                        self.stderr.lock().unwrap()
                    );
                }
            }
        }
    }

    /// The authorization URL `login` printed.
    fn auth_url(&mut self) -> String {
        let line = self.wait_line("Open this URL to log in: ");
        line.strip_prefix("Open this URL to log in: ")
            .unwrap()
            .to_owned()
    }

    /// Waits (bounded by [`RUN_WAIT`]) for the exit; kills on timeout.
    fn finish(mut self) -> Output {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break Some(s);
            }
            if start.elapsed() > RUN_WAIT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = self.stdout.join().unwrap_or_default();
        // Let the reader thread drain the pipe after the exit.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(
                self.lines.recv_timeout(Duration::from_millis(50)),
                Err(RecvTimeoutError::Disconnected)
            ) {
                break;
            }
        }
        let stderr = self.stderr.lock().unwrap().clone();
        Output {
            status,
            stdout,
            stderr,
        }
    }
}

/// Sends `GET target` to the loopback port as a browser would; returns
/// (status, body).
fn send_callback(port: u16, target: &str) -> (u16, String) {
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        tcp,
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    let _ = tcp.read_to_string(&mut raw);
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no response: {raw:?}"));
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

fn redirect_port(auth_url: &str) -> u16 {
    let redirect = query_param(auth_url, "redirect_uri").unwrap();
    let rest = redirect.strip_prefix("http://127.0.0.1:").unwrap();
    rest.strip_suffix("/callback").unwrap().parse().unwrap()
}

fn enc(s: &str) -> String {
    common::oidc::form_component(s)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

// ------------------------------------------------------------ code flow

#[test]
fn pkce_login_stores_a_private_token_file_with_the_api_jwt() {
    let env = Env::start(&[]);
    let out = env.login_as("alice", "pw");
    assert_eq!(out.stdout, "", "login prints nothing on stdout");
    assert!(out.stderr.contains("as `alice`"), "{}", out.stderr);

    assert_eq!(mode(&env.tokens_path()), 0o600);
    assert_eq!(mode(&env.config_dir), 0o700);
    let stored = env.stored();
    assert_eq!(stored["issuer"], env.provider.issuer.as_str());
    assert_eq!(stored["client_id"], CLI_CLIENT);
    assert_eq!(
        stored["token_endpoint"],
        format!("{}/token", env.provider.issuer)
    );
    let at = stored["access_token"].as_str().unwrap();
    let claims = jwt_payload(at);
    assert_eq!(claims["aud"], API_AUDIENCE);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["iss"], env.provider.issuer.as_str());
    assert!(stored["expires_at"].as_u64().unwrap() > unix_now());
    let rt = stored["refresh_token"].as_str().unwrap();
    let id = stored["id_token"].as_str().unwrap();
    assert_eq!(jwt_payload(id)["sub"], "alice");
    // No token reaches the terminal.
    for secret in [at, rt, id] {
        assert!(!out.stderr.contains(secret), "{}", out.stderr);
    }
}

#[test]
fn authorization_url_has_s256_challenge_state_and_loopback_redirect() {
    let env = Env::start(&[]);
    let mut cli = env.login(&["--scope", "openid api:read", "--resource", API_AUDIENCE]);
    let url = cli.auth_url();
    let _ = cli.child.kill();
    let _ = cli.finish();

    assert!(
        url.starts_with(&format!("{}/auth?", env.provider.issuer)),
        "{url}"
    );
    assert_eq!(
        query_param(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let challenge = query_param(&url, "code_challenge").unwrap();
    assert!(challenge.len() >= 43, "{challenge}");
    let state = query_param(&url, "state").unwrap();
    assert!(
        state.len() >= 22,
        "state carries at least 128 bits: {state}"
    );
    assert!(query_param(&url, "nonce").unwrap().len() >= 22);
    assert_eq!(query_param(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(query_param(&url, "client_id").as_deref(), Some(CLI_CLIENT));
    assert_eq!(
        query_param(&url, "scope").as_deref(),
        Some("openid api:read")
    );
    assert_eq!(query_param(&url, "resource").as_deref(), Some(API_AUDIENCE));
    let redirect = query_param(&url, "redirect_uri").unwrap();
    assert!(
        redirect.starts_with("http://127.0.0.1:") && redirect.ends_with("/callback"),
        "{redirect}"
    );
    assert!(!url.contains("plain"), "{url}");
}

#[test]
fn callback_with_wrong_state_is_ignored_and_the_real_one_completes() {
    let env = Env::start(&[]);
    let mut cli = env.login(&[]);
    let url = cli.auth_url();
    let port = redirect_port(&url);
    // Any local page that finds the port can send this: it must neither
    // end the login nor be taken.
    let (status, body) = send_callback(
        port,
        &format!(
            "/callback?code=forged&state=not-the-state&iss={}",
            enc(&env.provider.issuer)
        ),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("still waiting"), "{body}");
    assert!(!env.tokens_path().exists());
    let last = env.provider.browser(&url, "bob", "pw");
    let out = cli.finish();
    last.unwrap_or_else(|e| panic!("browser: {e}\ncli: {out:?}"));
    assert!(out.ok(), "{out:?}");
    let claims = jwt_payload(env.stored()["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "bob");
}

#[test]
fn callback_with_wrong_iss_fails_and_stores_nothing() {
    let env = Env::start(&[]);
    let mut cli = env.login(&[]);
    let url = cli.auth_url();
    let state = query_param(&url, "state").unwrap();
    let (status, body) = send_callback(
        redirect_port(&url),
        &format!(
            "/callback?code=forged&state={}&iss={}",
            enc(&state),
            enc("https://evil.example.test")
        ),
    );
    assert_eq!(status, 400, "{body}");
    let out = cli.finish();
    assert!(out.failed(), "{out:?}");
    assert!(out.stderr.contains("mix-up"), "{out:?}");
    assert!(!env.tokens_path().exists());
}

#[test]
fn callback_without_iss_fails_when_the_provider_promises_it() {
    let env = Env::start(&[]);
    assert_eq!(
        env.provider.discovery()["authorization_response_iss_parameter_supported"],
        true
    );
    let mut cli = env.login(&[]);
    let url = cli.auth_url();
    let state = query_param(&url, "state").unwrap();
    let (status, _) = send_callback(
        redirect_port(&url),
        &format!("/callback?code=forged&state={}", enc(&state)),
    );
    assert_eq!(status, 400);
    let out = cli.finish();
    assert!(out.failed(), "{out:?}");
    assert!(out.stderr.contains("no `iss`"), "{out:?}");
    assert!(!env.tokens_path().exists());
}

#[test]
fn access_denied_callback_fails_with_a_clear_message() {
    let env = Env::start(&[]);
    let mut cli = env.login(&[]);
    let url = cli.auth_url();
    let state = query_param(&url, "state").unwrap();
    let (status, body) = send_callback(
        redirect_port(&url),
        &format!(
            "/callback?error=access_denied&error_description=End-User+aborted+interaction&state={}&iss={}",
            enc(&state),
            enc(&env.provider.issuer)
        ),
    );
    assert_eq!(status, 400);
    assert!(body.contains("access_denied"), "{body}");
    let out = cli.finish();
    assert!(out.failed(), "{out:?}");
    assert!(
        out.stderr.contains(
            "the authorization server refused the login: `access_denied` (End-User aborted interaction)"
        ),
        "{out:?}"
    );
    assert!(!env.tokens_path().exists());
}

#[test]
fn login_cancelled_at_the_provider_fails_with_access_denied() {
    let env = Env::start(&[]);
    let mut cli = env.login(&[]);
    let url = cli.auth_url();
    let last = env.provider.browser_with(&url, &["--abort"]).unwrap();
    let (status, callback) = parse_final(&last);
    assert_eq!(status, 400, "{last}");
    assert_eq!(
        query_param(&callback, "error").as_deref(),
        Some("access_denied")
    );
    let out = cli.finish();
    assert!(out.failed(), "{out:?}");
    assert!(out.stderr.contains("`access_denied`"), "{out:?}");
    assert!(!env.tokens_path().exists());
}

#[test]
fn loopback_listener_is_bound_to_127_0_0_1_only() {
    let env = Env::start(&[]);
    let mut cli = env.login(&[]);
    let port = redirect_port(&cli.auth_url());
    // Another loopback address reaches the same host but not the listener.
    let other = std::net::TcpStream::connect_timeout(
        &(std::net::Ipv4Addr::new(127, 0, 0, 2), port).into(),
        Duration::from_secs(2),
    );
    assert!(other.is_err(), "listener answers on 127.0.0.2");
    let on_localhost = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(on_localhost.is_ok(), "listener is not on 127.0.0.1");
    let _ = cli.child.kill();
    let _ = cli.finish();
}

#[test]
fn login_times_out_without_a_callback() {
    let env = Env::start(&[]);
    let mut cli = env.login(&["--timeout", "1s"]);
    let _ = cli.auth_url();
    let out = cli.finish();
    assert!(out.failed(), "{out:?}");
    assert!(
        out.stderr.contains("no login completed within 1s"),
        "{out:?}"
    );
    assert!(!env.tokens_path().exists());
}

// ---------------------------------------------------- discovery and TLS

#[test]
fn http_issuer_is_refused() {
    let env = Env::start(&[]);
    let http_issuer = env.provider.issuer.replacen("https://", "http://", 1);
    let out = env.run(&[
        "login",
        "--issuer",
        &http_issuer,
        "--client-id",
        CLI_CLIENT,
        "--no-browser",
    ]);
    assert!(out.failed(), "{out:?}");
    assert!(out.stderr.contains("must use https"), "{out:?}");
    assert!(!out.stderr.contains("Open this URL"), "{out:?}");
}

#[test]
fn empty_client_id_or_issuer_is_refused_before_anything_is_contacted() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        [
            "login",
            "--issuer",
            "https://127.0.0.1:1",
            "--client-id",
            "",
        ],
        [
            "login",
            "--issuer",
            "https://127.0.0.1:1",
            "--client-id",
            "  ",
        ],
        ["login", "--issuer", "", "--client-id", CLI_CLIENT],
    ] {
        let out = Cli::spawn(dir.path(), &args).finish();
        assert!(out.failed(), "{out:?}");
        assert!(out.stderr.contains("must not be empty"), "{out:?}");
        assert!(
            !out.stderr.contains("connect"),
            "nothing contacted: {out:?}"
        );
    }
}

#[test]
fn discovery_issuer_mismatch_is_refused() {
    let env = Env::start(&[]);
    let ca = env.pki.ca_bundle.to_str().unwrap();
    let port = env.provider.port;
    // Same server, other names for it: the document says 127.0.0.1.
    for (issuer, expect) in [
        (
            format!("https://localhost:{port}"),
            "the issuer must match exactly",
        ),
        (
            format!("https://127.0.0.1:{port}/"),
            "the issuer must match exactly",
        ),
        (format!("https://127.0.0.1:{port}/other"), "HTTP 404"),
    ] {
        let out = env.run(&[
            "login",
            "--issuer",
            &issuer,
            "--client-id",
            CLI_CLIENT,
            "--ca",
            ca,
            "--no-browser",
        ]);
        assert!(out.failed(), "{issuer}: {out:?}");
        assert!(out.stderr.contains(expect), "{issuer}: {out:?}");
        assert!(!out.stderr.contains("Open this URL"), "{out:?}");
    }
    assert!(!env.tokens_path().exists());
}

#[test]
fn untrusted_provider_certificate_is_refused() {
    let env = Env::start(&[]);
    // Without --ca the system trust store applies, which lacks the test CA.
    let out = env.run(&[
        "login",
        "--issuer",
        &env.provider.issuer,
        "--client-id",
        CLI_CLIENT,
        "--no-browser",
    ]);
    assert!(out.failed(), "{out:?}");
    assert!(
        out.stderr.contains("TLS") || out.stderr.contains("trust store"),
        "{out:?}"
    );
    assert!(!out.stderr.contains("Open this URL"), "{out:?}");
}

// ---------------------------------------------------------------- token

#[test]
fn token_prints_the_stored_access_token() {
    let env = Env::start(&[]);
    env.login_as("carol", "pw");
    let stored = env.stored()["access_token"].as_str().unwrap().to_owned();
    let out = env.run(&["token"]);
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.stdout, format!("{stored}\n"));
    // Selecting the login explicitly gives the same token.
    let out = env.run(&[
        "token",
        "--issuer",
        &env.provider.issuer,
        "--client-id",
        CLI_CLIENT,
    ]);
    assert_eq!(out.stdout, format!("{stored}\n"), "{out:?}");
    // Another client has no login.
    let out = env.run(&["token", "--client-id", "someone-else"]);
    assert!(out.failed(), "{out:?}");
    assert_eq!(out.stdout, "");
}

#[test]
fn token_refreshes_an_expired_access_token_and_updates_the_file() {
    let env = Env::start(&["--access-token-ttl", "2"]);
    env.login_as("alice", "pw");
    let before = env.stored();
    let old_at = before["access_token"].as_str().unwrap().to_owned();
    let old_rt = before["refresh_token"].as_str().unwrap().to_owned();
    let exp = jwt_payload(&old_at)["exp"].as_u64().unwrap();
    // Wait until the stored access token has expired (bounded).
    let deadline = Instant::now() + WAIT;
    while unix_now() <= exp && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(unix_now() > exp, "token did not expire");

    let out = env.run(&["token"]);
    assert!(out.ok(), "{out:?}");
    let new_at = out.stdout.trim_end().to_owned();
    assert_eq!(
        out.stdout,
        format!("{new_at}\n"),
        "only the token on stdout"
    );
    assert_ne!(new_at, old_at);
    let claims = jwt_payload(&new_at);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], API_AUDIENCE);
    assert!(claims["exp"].as_u64().unwrap() > exp);

    let after = env.stored();
    assert_eq!(after["access_token"], new_at.as_str());
    assert_ne!(
        after["refresh_token"], old_rt,
        "the provider rotates refresh tokens of public clients"
    );
    assert_eq!(mode(&env.tokens_path()), 0o600);
    assert!(!out.stderr.contains(&new_at));
}

#[test]
fn token_without_login_asks_to_log_in() {
    let env = Env::start(&[]);
    let out = env.run(&["token"]);
    assert!(out.failed(), "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("run `portcullis login`"), "{out:?}");
}

#[test]
fn token_with_a_refused_refresh_asks_to_log_in() {
    let env = Env::start(&["--access-token-ttl", "2"]);
    env.login_as("alice", "pw");
    let text = std::fs::read_to_string(env.tokens_path()).unwrap();
    let rt = env.stored()["refresh_token"].as_str().unwrap().to_owned();
    // Rewriting in place keeps the file's mode 0600.
    std::fs::write(
        env.tokens_path(),
        text.replace(&rt, "not-a-valid-refresh-token"),
    )
    .unwrap();
    let out = env.run(&["token"]);
    assert!(out.failed(), "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("`invalid_grant`"), "{out:?}");
    assert!(out.stderr.contains("run `portcullis login`"), "{out:?}");
}

#[test]
fn token_refuses_a_file_other_users_can_read() {
    let env = Env::start(&[]);
    env.login_as("alice", "pw");
    std::fs::set_permissions(env.tokens_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.run(&["token"]);
    assert!(out.failed(), "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("chmod 600"), "{out:?}");
}

#[test]
fn token_refuses_a_directory_other_users_can_write() {
    let env = Env::start(&[]);
    env.login_as("alice", "pw");
    let dir = env.tokens_path().parent().unwrap().to_owned();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = env.run(&["token"]);
    assert!(out.failed(), "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("chmod 700"), "{out:?}");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = env.run(&["token"]);
    assert!(out.ok(), "{out:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn refresh_trusts_the_ca_stored_at_login_not_the_file_now_at_its_path() {
    let env = Env::start(&[]);
    let ca = env.scratch().join("provider-ca.pem");
    std::fs::copy(&env.pki.ca_bundle, &ca).unwrap();
    env.complete(env.login_with_ca(&ca, &[]), "alice", "pw");
    assert_eq!(env.tokens()["version"], 2);
    let stored = env.stored();
    assert!(stored.get("ca").is_none(), "{stored}");
    let pem = stored["ca_pem"].as_str().unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 1);

    // The file is gone: the refresh trusts the certificates stored.
    std::fs::remove_file(&ca).unwrap();
    env.expire();
    let out = env.run(&["token"]);
    assert!(out.ok(), "{out:?}");
    assert_ne!(
        out.stdout.trim_end(),
        stored["access_token"].as_str().unwrap()
    );

    // Someone puts their own CA at the path and sends the refresh to their
    // server: the stored certificates do not trust it.
    let other_pki = TestPki::new(&env.scratch().join("other-pki"));
    let other = OidcProvider::start(&other_pki, &[]);
    std::fs::copy(&other_pki.ca_bundle, &ca).unwrap();
    env.edit_tokens(|t| {
        t["logins"][0]["token_endpoint"] = format!("{}/token", other.issuer).into();
        t["logins"][0]["expires_at"] = 1.into();
    });
    let before = env.stored();
    let out = env.run(&["token"]);
    assert!(out.failed(), "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("TLS with"), "{out:?}");
    assert_eq!(env.stored(), before, "nothing stored");
    // Only `--ca` given to `token` trusts another CA: then the other
    // server is reached (and refuses a refresh token it never issued).
    let out = env.run(&["token", "--ca", ca.to_str().unwrap()]);
    assert!(out.failed(), "{out:?}");
    assert!(out.stderr.contains("`invalid_grant`"), "{out:?}");
    assert_eq!(
        env.stored()["ca_pem"],
        before["ca_pem"],
        "`--ca` is not stored"
    );
}

#[test]
fn a_login_stored_with_a_ca_path_is_refreshed_and_then_keeps_its_certificates() {
    let env = Env::start(&[]);
    let ca = env.scratch().join("provider-ca.pem");
    std::fs::copy(&env.pki.ca_bundle, &ca).unwrap();
    env.login_as("alice", "pw");
    let pem = env.stored()["ca_pem"].clone();
    // As a portcullis before version 2 of the file stored it.
    env.edit_tokens(|t| {
        t["version"] = 1.into();
        let login = t["logins"][0].as_object_mut().unwrap();
        login.remove("ca_pem");
        login.insert("ca".to_owned(), ca.to_str().unwrap().into());
        login.insert("expires_at".to_owned(), 1.into());
    });
    let out = env.run(&["token"]);
    assert!(out.ok(), "{out:?}");
    assert_eq!(env.tokens()["version"], 2);
    let stored = env.stored();
    assert!(stored.get("ca").is_none(), "{stored}");
    assert_eq!(stored["ca_pem"], pem);
    // From now on the file is not needed.
    std::fs::remove_file(&ca).unwrap();
    env.expire();
    let out = env.run(&["token"]);
    assert!(out.ok(), "{out:?}");
}

#[test]
fn a_lock_left_by_a_process_that_exited_does_not_stop_a_login() {
    let env = Env::start(&[]);
    std::fs::create_dir_all(&env.config_dir).unwrap();
    std::fs::set_permissions(&env.config_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // As a `portcullis token` killed while refreshing leaves it: the lock
    // file, its pid inside, and no process holding the lock any more.
    let lock = env.config_dir.join("tokens.lock");
    let mut holder = Command::new("flock")
        .arg("--no-fork")
        .arg(&lock)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    std::fs::write(&lock, format!("{}\n", holder.id())).unwrap();
    holder.kill().unwrap();
    holder.wait().unwrap();
    env.login_as("alice", "pw");
    assert_eq!(env.stored()["client_id"], CLI_CLIENT);
}

// -------------------------------------------------------------- device

fn device_prompt(cli: &mut Cli) -> (String, String) {
    let line = cli.wait_line("Open ");
    let rest = line.strip_prefix("Open ").unwrap();
    let (url, code) = rest.split_once(" and enter code ").unwrap();
    (url.to_owned(), code.to_owned())
}

#[test]
fn device_login_completes_when_the_code_is_confirmed() {
    let env = Env::start(&[]);
    let mut cli = env.login(&["--device"]);
    let (url, code) = device_prompt(&mut cli);
    assert!(
        url.starts_with(&format!("{}/device", env.provider.issuer)),
        "{url}"
    );
    assert!(!code.is_empty());
    let last = env.provider.browser(&url, "bob", "pw");
    let out = cli.finish();
    last.unwrap_or_else(|e| panic!("browser: {e}\ncli: {out:?}"));
    assert!(out.ok(), "{out:?}\nprovider: {}", env.provider.stderr());
    let stored = env.stored();
    let claims = jwt_payload(stored["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["aud"], API_AUDIENCE);
    assert_eq!(claims["groups"], serde_json::json!(["staff"]));
    assert!(stored["refresh_token"].is_string());
    assert_eq!(mode(&env.tokens_path()), 0o600);
}

#[test]
fn device_login_denied_on_the_verification_page_fails() {
    let env = Env::start(&[]);
    let mut cli = env.login(&["--device"]);
    let (url, _) = device_prompt(&mut cli);
    env.provider.browser_with(&url, &["--abort"]).unwrap();
    let out = cli.finish();
    assert!(out.failed(), "{out:?}");
    assert!(out.stderr.contains("`access_denied`"), "{out:?}");
    assert!(!env.tokens_path().exists());
}

// -------------------------------------------------------------- logout

#[test]
fn logout_forgets_the_login() {
    let env = Env::start(&[]);
    env.login_as("alice", "pw");
    let out = env.run(&["logout"]);
    assert!(out.ok(), "{out:?}");
    assert!(out.stderr.contains("Forgot 1"), "{out:?}");
    assert_eq!(env.tokens()["logins"], serde_json::json!([]));
    let out = env.run(&["token"]);
    assert!(out.failed());
    assert!(out.stderr.contains("run `portcullis login`"), "{out:?}");
}

// ------------------------------------------------------------- fixture

#[test]
fn fixture_otp_password_adds_otp_and_alice_is_an_admin() {
    let env = Env::start(&[]);
    env.login_as("alice", "otp");
    let stored = env.stored();
    let at = jwt_payload(stored["access_token"].as_str().unwrap());
    assert_eq!(at["amr"], serde_json::json!(["pwd", "otp"]));
    assert_eq!(at["acr"], "urn:portcullis:acr:mfa");
    assert_eq!(at["groups"], serde_json::json!(["admins", "staff"]));
    assert_eq!(
        at["realm_access"]["roles"],
        serde_json::json!(["admins", "staff"])
    );
    assert_eq!(at["email"], "alice@portcullis.test");
    assert!(at["auth_time"].as_u64().unwrap() <= unix_now());
    let id = jwt_payload(stored["id_token"].as_str().unwrap());
    assert_eq!(id["amr"], serde_json::json!(["pwd", "otp"]));
    assert_eq!(id["aud"], CLI_CLIENT);
}

#[test]
fn fixture_client_credentials_token_is_an_es256_jwt_for_the_api() {
    let env = Env::start(&[]);
    let token = env.provider.client_credentials_token("api:read");
    let claims = jwt_payload(&token);
    assert_eq!(claims["aud"], API_AUDIENCE);
    assert_eq!(claims["sub"], "portcullis-service");
    assert_eq!(claims["scope"], "api:read");
    use base64::Engine as _;
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "at+jwt");
    let kid = header["kid"].as_str().unwrap();
    let jwks = env.provider.jwks();
    let keys = jwks["keys"].as_array().unwrap();
    assert!(keys.iter().any(|k| k["kid"] == kid && k["alg"] == "ES256"));
    assert!(keys.iter().any(|k| k["alg"] == "RS256"));
    // A wrong client secret gets no token.
    let (status, json) = env.provider.token_request(
        &[
            ("grant_type", "client_credentials"),
            ("resource", API_AUDIENCE),
        ],
        Some(("portcullis-service", "wrong")),
    );
    assert_eq!(status, 401, "{json}");
}

#[test]
fn fixture_discovery_promises_iss_s256_and_the_device_grant() {
    let env = Env::start(&[]);
    let d = env.provider.discovery();
    assert_eq!(d["issuer"], env.provider.issuer.as_str());
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    assert!(d["device_authorization_endpoint"].is_string());
    assert!(d["end_session_endpoint"].is_string());
    assert_eq!(d["response_types_supported"], serde_json::json!(["code"]));
}
