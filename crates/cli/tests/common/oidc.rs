//! A real OpenID provider for end-to-end tests: `tests/oidc-provider`
//! (Node.js, oidc-provider v9) started over HTTPS on 127.0.0.1 with a
//! certificate from the [`TestPki`] intermediate, plus its headless
//! browser. See `tests/oidc-provider/README.md` for clients and accounts.
//!
//! ```ignore
//! let provider = OidcProvider::start(&pki, &["--access-token-ttl", "2"]);
//! let token = provider.client_credentials_token("api:read");
//! let final_line = provider.browser(&url, "alice", "pw")?;
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use super::{TestPki, WAIT};

/// The resource server (RFC 8707) the provider issues JWT access tokens for.
pub const API_AUDIENCE: &str = "https://api.portcullis.test";
/// The public native client (authorization code + PKCE, refresh, device).
pub const CLI_CLIENT: &str = "portcullis-cli";
/// The confidential client with the client-credentials grant.
pub const SERVICE_CLIENT: &str = "portcullis-service";
pub const SERVICE_SECRET: &str = "service-secret";
/// The confidential web client (code + refresh; redirect URIs from `--web-redirect`).
pub const WEB_CLIENT: &str = "portcullis-web";
pub const WEB_SECRET: &str = "web-secret";

/// Bound on `npm ci` (and on waiting for another process running it).
const NPM_WAIT: Duration = Duration::from_secs(600);
/// A lock directory older than this was left by a process that died.
const NPM_STALE_LOCK: Duration = Duration::from_secs(900);
/// Bound on the provider's start (node start-up and RSA key generation,
/// slower when many tests start providers at once).
const START_WAIT: Duration = Duration::from_secs(60);
/// Bound on one browser run (browser.mjs bounds itself at 30 s).
const BROWSER_WAIT: Duration = Duration::from_secs(45);
/// Written into `node_modules` once `npm ci` succeeded (holds the
/// SHA-256 of the package-lock.json installed).
const READY_MARKER: &str = ".portcullis-npm-ci-done";

/// The fixture's folder, `tests/oidc-provider` at the repository root.
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/oidc-provider")
        .canonicalize()
        .expect("tests/oidc-provider exists")
}

/// Runs `npm ci` in the fixture once if `node_modules` is missing, under a
/// lock directory shared by every test process.
pub fn ensure_node_modules() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(install_node_modules)
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"));
}

fn install_node_modules() -> Result<(), String> {
    let dir = fixture_dir();
    let marker = dir.join("node_modules").join(READY_MARKER);
    // The marker holds the hash of the lock file it was installed from, so
    // a changed package-lock.json installs again.
    let lock_file = std::fs::read(dir.join("package-lock.json"))
        .map_err(|e| format!("package-lock.json: {e}"))?;
    let wanted = super::sha256_hex(&lock_file);
    let installed = || std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted);
    if installed() {
        return Ok(());
    }
    let lock = dir.join(".npm-ci.lock");
    let start = Instant::now();
    loop {
        match std::fs::create_dir(&lock) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let stale = std::fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > NPM_STALE_LOCK);
                if stale {
                    let _ = std::fs::remove_dir(&lock);
                    continue;
                }
                if installed() {
                    return Ok(());
                }
                if start.elapsed() > NPM_WAIT {
                    return Err(format!("timed out waiting for {}", lock.display()));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(format!("cannot create {}: {e}", lock.display())),
        }
    }
    struct Unlock(PathBuf);
    impl Drop for Unlock {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _unlock = Unlock(lock);
    if installed() {
        return Ok(());
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run npm (is Node.js installed?): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "npm ci failed in {}: {}{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::write(&marker, &wanted).map_err(|e| format!("{}: {e}", marker.display()))
}

/// A running `provider.mjs`; killed on drop (it also exits when its
/// stdin, held here, closes).
pub struct OidcProvider {
    /// `https://127.0.0.1:<port>`
    pub issuer: String,
    /// The root of the TestPki: trusts the provider's certificate.
    pub ca_bundle: PathBuf,
    pub port: u16,
    pub stderr_path: PathBuf,
    child: Child,
    _stdin: ChildStdin,
    tls: Arc<rustls::ClientConfig>,
}

impl OidcProvider {
    /// Starts the provider with the TestPki server certificate (127.0.0.1,
    /// issued by the intermediate) and `extra_args` (e.g.
    /// `["--access-token-ttl", "2"]`, `["--web-redirect", URL]`).
    pub fn start(pki: &TestPki, extra_args: &[&str]) -> Self {
        ensure_node_modules();
        // One retry: on a loaded machine a start can exceed START_WAIT.
        let first = spawn_provider(pki, extra_args);
        let (child, stdin, issuer, stderr_path) = match first {
            Ok(started) => started,
            Err(e) => spawn_provider(pki, extra_args)
                .unwrap_or_else(|e2| panic!("oidc provider did not start: {e}\nretry: {e2}")),
        };
        let port = issuer.rsplit(':').next().unwrap().parse().unwrap();
        Self {
            issuer,
            ca_bundle: pki.ca_bundle.clone(),
            port,
            stderr_path,
            child,
            _stdin: stdin,
            tls: Arc::new(tls_config(&pki.ca_bundle)),
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// `{issuer}{path}`
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The discovery document.
    pub fn discovery(&self) -> serde_json::Value {
        let (status, body) = self.request("GET", "/.well-known/openid-configuration", &[], "");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    /// The provider's public signing keys.
    pub fn jwks(&self) -> serde_json::Value {
        let (status, body) = self.request("GET", "/jwks", &[], "");
        assert_eq!(status, 200);
        serde_json::from_slice(&body).unwrap()
    }

    /// POSTs a form to the token endpoint, with HTTP Basic client
    /// authentication if `basic` is given: (status, JSON body).
    pub fn token_request(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> (u16, serde_json::Value) {
        let body = form_encode(form);
        let auth;
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        if let Some((id, secret)) = basic {
            auth = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    form_component(id),
                    form_component(secret)
                ))
            );
            headers.push(("authorization", &auth));
        }
        let (status, body) = self.request("POST", "/token", &headers, &body);
        let json = serde_json::from_slice(&body)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into()));
        (status, json)
    }

    /// A JWT access token for [`API_AUDIENCE`] from the client-credentials
    /// grant of `portcullis-service` (`sub` = the client id).
    pub fn client_credentials_token(&self, scope: &str) -> String {
        let (status, json) = self.token_request(
            &[
                ("grant_type", "client_credentials"),
                ("scope", scope),
                ("resource", API_AUDIENCE),
            ],
            Some((SERVICE_CLIENT, SERVICE_SECRET)),
        );
        assert_eq!(status, 200, "client_credentials: {json}");
        json["access_token"].as_str().unwrap().to_owned()
    }

    /// Runs `browser.mjs URL --login LOGIN --password PASSWORD`; `Ok` holds
    /// the `FINAL <status> <url>` line, `Err` what it printed otherwise.
    pub fn browser(&self, url: &str, login: &str, password: &str) -> Result<String, String> {
        self.browser_with(url, &["--login", login, "--password", password])
    }

    /// Runs `browser.mjs URL ARGS...` (e.g. `--abort`, `--stop-prefix P`).
    pub fn browser_with(&self, url: &str, args: &[&str]) -> Result<String, String> {
        run_browser(&self.ca_bundle, url, args)
    }

    /// One HTTPS request to the provider: (status, body). `target` is a
    /// path or an absolute URL on the provider.
    pub fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Vec<u8>) {
        let path = target.strip_prefix(&self.issuer).unwrap_or(target);
        https_request(&self.tls, self.port, method, path, headers, body)
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `provider.mjs` and waits for its `READY` line.
fn spawn_provider(
    pki: &TestPki,
    extra_args: &[&str],
) -> Result<(Child, ChildStdin, String, PathBuf), String> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let stderr_path = pki.dir.join(format!("oidc-provider-{n}.stderr"));
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let mut child = Command::new("node")
        .arg(fixture_dir().join("provider.mjs"))
        .arg("--cert")
        .arg(&pki.server_cert)
        .arg("--key")
        .arg(&pki.server_key)
        .args(extra_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start node (is Node.js installed?): {e}"))?;
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // Keep draining: the provider never blocks on a full pipe.
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let started = Instant::now();
    let outcome = match rx.recv_timeout(START_WAIT) {
        Ok(line) => match line.trim().strip_prefix("READY ") {
            Some(issuer) => return Ok((child, stdin, issuer.to_owned(), stderr_path)),
            None => format!("printed {line:?}"),
        },
        Err(_) => format!(
            "no READY line after {:?} (running: {})",
            started.elapsed(),
            matches!(child.try_wait(), Ok(None))
        ),
    };
    let _ = child.kill();
    let _ = child.wait();
    Err(format!(
        "{outcome}; stderr: {}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    ))
}

/// Runs browser.mjs trusting `ca_bundle`; bounded by [`BROWSER_WAIT`].
pub fn run_browser(ca_bundle: &Path, url: &str, args: &[&str]) -> Result<String, String> {
    let mut child = Command::new("node")
        .arg(fixture_dir().join("browser.mjs"))
        .arg(url)
        .args(args)
        .env("NODE_EXTRA_CA_CERTS", ca_bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start node: {e}"))?;
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if start.elapsed() > BROWSER_WAIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => out
            .lines()
            .find(|l| l.starts_with("FINAL "))
            .map(str::to_owned)
            .ok_or_else(|| format!("no FINAL line: {out}{err}")),
        Some(s) => Err(format!("browser exited with {s}: {out}{err}")),
        None => Err(format!("browser timed out: {out}{err}")),
    }
}

/// The status and URL of a browser `FINAL <status> <url>` line.
pub fn parse_final(line: &str) -> (u16, String) {
    let mut parts = line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("FINAL"), "{line}");
    let status = parts.next().unwrap().parse().unwrap();
    (status, parts.next().unwrap().to_owned())
}

/// The decoded value of query parameter `name` in `url`.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| form_decode(v))
    })
}

/// Decodes one form-urlencoded component (test inputs are well formed).
pub fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// Percent-encodes all but RFC 3986 unreserved characters.
pub fn form_component(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_component(k), form_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn tls_config(ca_bundle: &Path) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_bundle).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A blocking HTTP/1.1 request over TLS to 127.0.0.1:`port` with
/// `Connection: close`; usable from sync and async tests alike.
fn https_request(
    tls: &Arc<rustls::ClientConfig>,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<u8>) {
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.set_write_timeout(Some(WAIT)).unwrap();
    let conn =
        rustls::ClientConnection::new(tls.clone(), ServerName::try_from("127.0.0.1").unwrap())
            .unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\naccept: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    // The server closes after answering; a TLS close_notify-less close
    // still leaves the whole answer in `raw`.
    let _ = stream.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .replace(' ', "")
            .starts_with("transfer-encoding:chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}
