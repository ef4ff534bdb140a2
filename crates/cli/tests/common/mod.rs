//! End-to-end test harness: a dev PKI made with `portcullis-pki`, a
//! recording upstream, the real `portcullis` binary started on 127.0.0.1
//! with port 0, and rustls-based clients.
#![allow(dead_code, unreachable_pub)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test harness: a failed setup step must abort the test"
)]
pub mod browser;
pub mod oidc;
pub mod tls_upstream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis_identity::SpiffeId;
use portcullis_pki::{Ca, CertifiedKey, IssueRequest};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const TRUST_DOMAIN: &str = "example.org";
/// Bound on every wait in the harness.
pub const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- PKI

/// A root CA, an intermediate CA and a server certificate for
/// `localhost`/127.0.0.1, written to `dir`.
pub struct TestPki {
    pub dir: PathBuf,
    pub root: Ca,
    pub inter: Ca,
    /// The root certificate: the client trust anchor and the gateway's `client_ca`.
    pub ca_bundle: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// A client certificate with its chain (leaf + intermediate) on disk.
pub struct ClientCert {
    pub name: String,
    pub key: CertifiedKey,
    pub chain_pem: String,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl TestPki {
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let root = Ca::new_root("Test Root CA").unwrap();
        let inter = root.new_intermediate("Test Intermediate CA").unwrap();
        let ca_bundle = dir.join("ca-bundle.pem");
        std::fs::write(&ca_bundle, root.cert_pem()).unwrap();
        let mut req = IssueRequest::server("localhost");
        req.ips.push([127, 0, 0, 1].into());
        let server = inter.issue(&req).unwrap();
        let server_cert = dir.join("server.pem");
        let server_key = dir.join("server.key");
        std::fs::write(
            &server_cert,
            format!("{}{}", server.cert_pem, inter.cert_pem()),
        )
        .unwrap();
        std::fs::write(&server_key, server.key_pem.as_str()).unwrap();
        Self {
            dir: dir.to_owned(),
            root,
            inter,
            ca_bundle,
            server_cert,
            server_key,
        }
    }

    /// A workload certificate with a SPIFFE ID under `spiffe://example.org`.
    pub fn workload(&self, name: &str, spiffe_path: &str) -> ClientCert {
        let mut req = IssueRequest::client(name);
        req.spiffe_id =
            Some(SpiffeId::parse(&format!("spiffe://{TRUST_DOMAIN}{spiffe_path}")).unwrap());
        self.issue(name, &req)
    }

    /// Issues from the intermediate with any request (negative tests too).
    pub fn issue(&self, name: &str, req: &IssueRequest) -> ClientCert {
        let key = self.inter.issue(req).unwrap();
        write_client(&self.dir, name, key, self.inter.cert_pem())
    }

    /// A CRL from the intermediate revoking `certs`, written to `dir/NAME`.
    pub fn crl(&self, file: &str, revoked: &[&ClientCert]) -> PathBuf {
        let serials: Vec<Vec<u8>> = revoked.iter().map(|c| c.key.serial.clone()).collect();
        let pem = self.inter.crl(&serials, Duration::from_secs(3600)).unwrap();
        let p = self.dir.join(file);
        std::fs::write(&p, pem).unwrap();
        p
    }
}

pub fn write_client(dir: &Path, name: &str, key: CertifiedKey, issuer_pem: &str) -> ClientCert {
    let chain_pem = format!("{}{}", key.cert_pem, issuer_pem);
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&cert_path, &chain_pem).unwrap();
    std::fs::write(&key_path, key.key_pem.as_str()).unwrap();
    ClientCert {
        name: name.to_owned(),
        key,
        chain_pem,
        cert_path,
        key_path,
    }
}

// ------------------------------------------------------------ upstream

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    /// The trailer section, if the body ended with one.
    pub trailers: Option<http::HeaderMap>,
    /// The request target's authority (HTTP/2's `:authority`).
    pub authority: Option<String>,
}

impl Recorded {
    /// Reads a request whole, as an upstream received it (a body that
    /// fails midway is recorded as empty).
    pub async fn read(req: http::Request<hyper::body::Incoming>) -> Self {
        let (parts, body) = req.into_parts();
        let (body, trailers) = body
            .collect()
            .await
            .map(|c| {
                let trailers = c.trailers().cloned();
                (c.to_bytes(), trailers)
            })
            .unwrap_or_default();
        Self {
            trailers,
            authority: parts.uri.authority().map(|a| a.as_str().to_owned()),
            method: parts.method.to_string(),
            target: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            version: parts.version,
            headers: parts.headers,
            body,
        }
    }
}

/// The recording upstream answers with a `set-cookie` for each value of
/// this request header: a test's stand-in for an application setting
/// cookies.
pub const ECHO_SET_COOKIE: &str = "x-echo-set-cookie";

/// How the recording upstream answers.
#[derive(Clone, Default)]
pub struct UpstreamBehaviour {
    /// Wait this long before answering.
    pub delay: Option<Duration>,
    /// Answer with this many bytes of body (default: a short text).
    pub body_len: Option<usize>,
}

/// An HTTP/1.1 upstream on 127.0.0.1 that records every request it gets
/// and answers 200 `upstream ok`.
pub struct RecordingUpstream {
    pub addr: SocketAddr,
    pub records: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingUpstream {
    pub async fn start() -> Self {
        Self::start_with(UpstreamBehaviour::default()).await
    }

    pub async fn start_with(behaviour: UpstreamBehaviour) -> Self {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let records: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let recs = records.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = tcp.accept().await else {
                    continue;
                };
                let recs = recs.clone();
                let behaviour = behaviour.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let recs = recs.clone();
                        let behaviour = behaviour.clone();
                        async move {
                            let echo: Vec<http::HeaderValue> = req
                                .headers()
                                .get_all(ECHO_SET_COOKIE)
                                .iter()
                                .cloned()
                                .collect();
                            let recorded = Recorded::read(req).await;
                            recs.lock().unwrap().push(recorded);
                            if let Some(d) = behaviour.delay {
                                tokio::time::sleep(d).await;
                            }
                            let out = match behaviour.body_len {
                                Some(n) => Bytes::from(vec![b'x'; n]),
                                None => Bytes::from_static(b"upstream ok"),
                            };
                            let mut resp = http::Response::new(Full::new(out));
                            for v in echo {
                                resp.headers_mut().append(http::header::SET_COOKIE, v);
                            }
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            records,
            task,
        }
    }

    pub fn records(&self) -> Vec<Recorded> {
        self.records.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.records.lock().unwrap().len()
    }
}

impl Drop for RecordingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ------------------------------------------------------------- config

/// A minimal configuration: one listener `public` on 127.0.0.1:0 with
/// mTLS against the test PKI, one route per `(name, prefix, upstream)`,
/// the policy file `policy.yaml` next to it, admin on 127.0.0.1:0 and the
/// audit log in `audit.log`. `extra_tls` is appended inside `tls:`
/// (e.g. `      crls: [crl.pem]\n`).
pub fn config_yaml(pki: &TestPki, routes: &[(&str, &str, SocketAddr)], extra_tls: &str) -> String {
    let mut s = format!(
        "listeners:\n  - name: public\n    bind: 127.0.0.1:0\n    tls:\n      cert: {}\n      key: {}\n      client_ca: {}\n      spiffe_trust_domains: [{TRUST_DOMAIN}]\n{extra_tls}routes:\n",
        pki.server_cert.display(),
        pki.server_key.display(),
        pki.ca_bundle.display()
    );
    for (name, prefix, up) in routes {
        s.push_str(&format!("  - name: {name}\n    path_prefix: {prefix}\n    upstream:\n      url: http://{up}\n      request_timeout: 5s\n"));
    }
    s.push_str("policy:\n  file: policy.yaml\n  poll_interval: 200ms\nadmin:\n  bind: 127.0.0.1:0\naudit:\n  dest: audit.log\nshutdown:\n  drain_timeout: 10s\n");
    s
}

/// A policy with roles `reader` and `writer` (inherits reader), bound to
/// `/ns/test/sa/reader` and `/ns/test/sa/writer`: readers may GET/HEAD
/// `/api/**`, writers may also POST/PUT/DELETE; `/api/admin/**` is denied
/// to everyone.
pub const BASIC_POLICY: &str = r#"revision: "basic-1"
roles:
  reader: {}
  writer: { inherits: [reader] }
bindings:
  - { role: reader, spiffe_id: "spiffe://example.org/ns/test/sa/reader" }
  - { role: writer, spiffe_id: "spiffe://example.org/ns/test/sa/writer" }
rules:
  - { id: api-read, effect: allow, roles: [reader], route: api, methods: [GET, HEAD], path: "/api/**" }
  - { id: api-write, effect: allow, roles: [writer], route: api, methods: [POST, PUT, DELETE], path: "/api/**" }
  - { id: no-admin, effect: deny, route: api, path: "/api/admin/**" }
"#;

// ------------------------------------------------------------ gateway

/// The real `portcullis` binary, started with `run --ready-file`.
pub struct GatewayProc {
    pub dir: PathBuf,
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub stderr_path: PathBuf,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

impl GatewayProc {
    /// Writes `portcullis.yaml` and `policy.yaml` into `dir` and starts
    /// the gateway; waits until it accepts.
    pub fn start(dir: &Path, config: &str, policy: &str) -> Self {
        std::fs::write(dir.join("policy.yaml"), policy).unwrap();
        std::fs::write(dir.join("portcullis.yaml"), config).unwrap();
        Self::start_existing(dir).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts on the files already in `dir`; `Err` holds stderr if the
    /// process exited or did not get ready.
    pub fn start_existing(dir: &Path) -> Result<Self, String> {
        let ready = dir.join("ready.json");
        let _ = std::fs::remove_file(&ready);
        let stderr_path = dir.join("gateway.stderr");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut child = Command::new(bin())
            .args(["run", "--workers", "1", "--config"])
            .arg(dir.join("portcullis.yaml"))
            .arg("--ready-file")
            .arg(&ready)
            .env("PORTCULLIS_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                let addr = v["listeners"]["public"].as_str().unwrap().parse().unwrap();
                let admin = v["admin"].as_str().unwrap().parse().unwrap();
                return Ok(Self {
                    dir: dir.to_owned(),
                    child,
                    addr,
                    admin,
                    stderr_path,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "gateway exited with {status}: {}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                ));
            }
            if start.elapsed() > WAIT {
                let _ = child.kill();
                return Err(format!(
                    "gateway not ready: {}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Every audit record written so far (the writer flushes whenever its
    /// queue is empty, so poll with [`Self::wait_audit`] after requests).
    /// Only complete lines count: a read that races the writer's `write`
    /// can see the first part of a line (the kernel copies a write into
    /// the file page by page, and reads do not wait for it), as any
    /// program tailing the log can.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.join("audit.log")).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
        complete
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// Waits until at least `n` audit records exist.
    pub async fn wait_audit(&self, n: usize) -> Vec<serde_json::Value> {
        let start = Instant::now();
        loop {
            let a = self.audit();
            if a.len() >= n || start.elapsed() > WAIT {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// GET on the admin listener: (status, body).
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let tcp = tokio::net::TcpStream::connect(self.admin).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header("host", "admin")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    pub async fn metrics(&self) -> String {
        self.admin_get("/metrics").await.1
    }

    /// Value of the first metric line starting with `prefix` (name and labels), or 0.
    pub async fn metric(&self, prefix: &str) -> f64 {
        metric_value(&self.metrics().await, prefix)
    }

    /// Asserts how many requests were refused as malformed for `reason`
    /// (`portcullis_bad_requests_total`), showing the metrics if not.
    pub async fn assert_bad_requests(&self, reason: &str, count: u32) {
        let metrics = self.metrics().await;
        let line = format!("portcullis_bad_requests_total{{reason=\"{reason}\"}}");
        assert_eq!(metric_value(&metrics, &line), f64::from(count), "{metrics}");
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for GatewayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An audit record's `reason`, or `""` when it has none.
pub fn reason_of(rec: &serde_json::Value) -> &str {
    rec["reason"].as_str().unwrap_or("")
}

pub fn metric_value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

// -------------------------------------------------------------- client

/// A response as the client saw it.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub version: http::Version,
    /// The trailer section, if the body ended with one.
    pub trailers: Option<http::HeaderMap>,
}

impl Resp {
    /// Reads a response whole.
    pub async fn read(resp: http::Response<hyper::body::Incoming>) -> Result<Self, String> {
        let status = resp.status().as_u16();
        let version = resp.version();
        let headers = resp.headers().clone();
        let collected = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?;
        let trailers = collected.trailers().cloned();
        Ok(Resp {
            status,
            headers,
            body: collected.to_bytes(),
            version,
            trailers,
        })
    }
}

#[derive(Clone)]
pub struct Client {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: String,
}

pub fn client_config(
    pki: &TestPki,
    cert: Option<&ClientCert>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&pki.ca_bundle).unwrap())
        .unwrap();
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut c = match cert {
        Some(c) => {
            let chain = CertificateDer::pem_slice_iter(c.chain_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(c.key.key_pem.as_bytes()).unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        }
        None => b.with_no_client_auth(),
    };
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    c
}

impl Client {
    /// TLS 1.2 and 1.3, ALPN http/1.1, SNI `localhost`.
    pub fn new(pki: &TestPki, cert: Option<&ClientCert>) -> Self {
        Self::with(client_config(
            pki,
            cert,
            rustls::ALL_VERSIONS,
            &[b"http/1.1"],
        ))
    }

    /// ALPN h2 only.
    pub fn h2(pki: &TestPki, cert: Option<&ClientCert>) -> Self {
        Self::with(client_config(pki, cert, rustls::ALL_VERSIONS, &[b"h2"]))
    }

    pub fn with(config: rustls::ClientConfig) -> Self {
        Self {
            config: Arc::new(config),
            server_name: "localhost".to_owned(),
        }
    }

    pub async fn tls(
        &self,
        addr: SocketAddr,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = ServerName::try_from(self.server_name.clone()).unwrap();
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
    }

    /// GET `path` with `Host: localhost`.
    pub async fn get(&self, addr: SocketAddr, path: &str) -> Result<Resp, String> {
        let req = http::Request::get(path)
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.send(addr, req).await
    }

    /// Sends one request on a new connection (HTTP/2 if ALPN chose h2).
    pub async fn send(
        &self,
        addr: SocketAddr,
        req: http::Request<Full<Bytes>>,
    ) -> Result<Resp, String> {
        tokio::time::timeout(WAIT, self.send_inner(addr, req))
            .await
            .map_err(|_| "timed out".to_owned())?
    }

    async fn send_inner(
        &self,
        addr: SocketAddr,
        mut req: http::Request<Full<Bytes>>,
    ) -> Result<Resp, String> {
        let tls = self.tls(addr).await.map_err(|e| format!("tls: {e}"))?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let resp = if h2 {
            let (mut send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await
                    .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(conn);
            if req.uri().authority().is_none() {
                let host = req
                    .headers()
                    .get("host")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("localhost")
                    .to_owned();
                *req.uri_mut() = format!("https://{host}{}", req.uri()).parse().unwrap();
                req.headers_mut().remove("host");
            }
            send.send_request(req)
                .await
                .map_err(|e| format!("request: {e}"))?
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(conn);
            send.send_request(req)
                .await
                .map_err(|e| format!("request: {e}"))?
        };
        Resp::read(resp).await
    }

    /// Writes raw bytes over TLS and returns everything the gateway sends
    /// back until it closes the connection or 3 s pass.
    pub async fn raw(&self, addr: SocketAddr, bytes: &[u8]) -> Result<String, String> {
        let mut tls = self.tls(addr).await.map_err(|e| format!("tls: {e}"))?;
        tls.write_all(bytes)
            .await
            .map_err(|e| format!("write: {e}"))?;
        tls.flush().await.map_err(|e| format!("flush: {e}"))?;
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, tls.read(&mut buf)).await {
                Ok(Ok(0)) | Err(_) => break,
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => {
                    if out.is_empty() {
                        return Err(format!("read: {e}"));
                    }
                    break;
                }
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// Status code of the first response in a raw HTTP/1.1 answer.
pub fn raw_status(raw: &str) -> Option<u16> {
    raw.split_whitespace().nth(1)?.parse().ok()
}

// ------------------------------------------- mTLS, admin and audit helpers

/// A gateway on the basic setup: its own tempdir and PKI, one route `api`
/// (`/api`) to a recording upstream, [`BASIC_POLICY`].
pub struct BasicGateway {
    // Field order is drop order: stop the gateway before removing its files.
    pub gw: GatewayProc,
    pub upstream: RecordingUpstream,
    pub pki: TestPki,
    pub dir: tempfile::TempDir,
}

impl BasicGateway {
    /// `extra_tls` goes inside the listener's `tls:` block.
    pub async fn start(extra_tls: &str) -> Self {
        Self::start_with(UpstreamBehaviour::default(), |_| extra_tls.to_owned()).await
    }

    /// `extra_tls` is computed from the PKI (e.g. to write a CRL first).
    pub async fn start_with(
        behaviour: UpstreamBehaviour,
        extra_tls: impl FnOnce(&TestPki) -> String,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::new(&dir.path().join("pki"));
        let upstream = RecordingUpstream::start_with(behaviour).await;
        let extra = extra_tls(&pki);
        let config = config_yaml(&pki, &[("api", "/api", upstream.addr)], &extra);
        let gw = GatewayProc::start(dir.path(), &config, BASIC_POLICY);
        Self {
            gw,
            upstream,
            pki,
            dir,
        }
    }

    pub fn reader(&self) -> ClientCert {
        self.pki.workload("reader", "/ns/test/sa/reader")
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The claims of a compact JWS, decoded without verifying anything.
pub fn jwt_payload(token: &str) -> serde_json::Value {
    use base64::Engine;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {token}");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The series of `portcullis_tls_handshake_failures_total` for listener
/// `public` and `reason`.
pub fn tls_failure_series(reason: &str) -> String {
    format!(r#"portcullis_tls_handshake_failures_total{{listener="public",reason="{reason}"}}"#)
}

impl GatewayProc {
    /// Polls `/metrics` until the series `prefix` is at least `min`
    /// (bounded by [`WAIT`]); returns its last value.
    pub async fn wait_metric_at_least(&self, prefix: &str, min: f64) -> f64 {
        let start = Instant::now();
        loop {
            let v = self.metric(prefix).await;
            if v >= min || start.elapsed() > WAIT {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The first audit record that satisfies `pred`, waiting for it as
    /// [`Self::wait_audit_where`] does; panics, showing the records read,
    /// if none came.
    pub async fn wait_audit_record(
        &self,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let audit = self.wait_audit_where(&pred).await;
        match audit.iter().position(&pred) {
            Some(i) => audit.into_iter().nth(i).unwrap(),
            None => panic!("no such audit record in {audit:?}"),
        }
    }

    /// Polls the audit log until a record satisfies `pred` (bounded by
    /// [`WAIT`]); returns every record read last.
    pub async fn wait_audit_where(
        &self,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        let start = Instant::now();
        loop {
            let a = self.audit();
            if a.iter().any(&pred) || start.elapsed() > WAIT {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// What a plain TCP peer got back after writing `bytes`.
#[derive(Debug)]
pub struct RawTcpOutcome {
    pub received: Vec<u8>,
    /// The gateway closed (or reset) the connection; false if it was still
    /// open when the wait ended.
    pub closed: bool,
}

/// Writes `bytes` on a plain TCP connection (no TLS) and reads until the
/// gateway closes the connection or [`WAIT`] passes.
pub async fn raw_tcp(addr: SocketAddr, bytes: &[u8]) -> RawTcpOutcome {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The gateway may close before reading everything; that is fine.
    let _ = tcp.write_all(bytes).await;
    let _ = tcp.flush().await;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return RawTcpOutcome {
                    received,
                    closed: true,
                }
            }
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => {
                return RawTcpOutcome {
                    received,
                    closed: false,
                }
            }
        }
    }
}

impl Client {
    /// Sends one HTTP/1.1 request on a new connection and also returns the
    /// client's local address (what the gateway sees as the source).
    pub async fn send_from(
        &self,
        addr: SocketAddr,
        req: http::Request<Full<Bytes>>,
    ) -> Result<(SocketAddr, Resp), String> {
        let fut = async {
            let tls = self.tls(addr).await.map_err(|e| format!("tls: {e}"))?;
            let local = tls.get_ref().0.local_addr().map_err(|e| e.to_string())?;
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(conn);
            let resp = send
                .send_request(req)
                .await
                .map_err(|e| format!("request: {e}"))?;
            Ok((local, Resp::read(resp).await?))
        };
        tokio::time::timeout(WAIT, fut)
            .await
            .map_err(|_| "timed out".to_owned())?
    }
}

// ------------------------------------------- config edits, reload, raw

/// Adds `limits:` (a YAML flow mapping such as `{ max_body_bytes: 1024 }`)
/// to the listener of a [`config_yaml`] configuration.
pub fn with_listener_limits(config: &str, limits: &str) -> String {
    with_listener_key(config, "limits", limits)
}

/// Adds `key: value` to the (last) listener of a [`config_yaml`] text.
pub fn with_listener_key(config: &str, key: &str, value: &str) -> String {
    assert!(config.contains("\nroutes:\n"), "not a config_yaml text");
    config.replacen(
        "\nroutes:\n",
        &format!("\n    {key}: {value}\nroutes:\n"),
        1,
    )
}

/// Turns off file watching in a [`config_yaml`] configuration: reloads
/// then happen on SIGHUP only, so every reload is one the test asked for.
pub fn without_file_watch(config: &str) -> String {
    assert!(
        config.contains("  poll_interval: 200ms\n"),
        "not a config_yaml text"
    );
    config.replacen("  poll_interval: 200ms\n", "  watch: false\n", 1)
}

/// Replaces `dir/name` atomically: writes a temporary file next to it and
/// renames it over the target, so a reader never sees a partial file.
pub fn write_atomic(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// The status codes of the successive responses in a raw HTTP/1.1
/// answer, read by their framing (`Content-Length`, chunked, or until the
/// end), so a test can tell one response from two. Stops at anything that
/// is not a response head.
pub fn raw_statuses(raw: &str) -> Vec<u16> {
    let mut out = Vec::new();
    let mut rest = raw;
    while rest.starts_with("HTTP/1.") {
        let Some((head, body)) = rest.split_once("\r\n\r\n") else {
            break;
        };
        let Some(status) = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()) else {
            break;
        };
        out.push(status);
        let field = |name: &str| {
            head.lines().skip(1).find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        rest = if let Some(len) = field("content-length").and_then(|v| v.parse::<usize>().ok()) {
            body.get(len..).unwrap_or("")
        } else if field("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            let mut b = body;
            loop {
                let Some((size, after)) = b.split_once("\r\n") else {
                    break "";
                };
                let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                    .unwrap_or(0);
                if size == 0 {
                    break after.split_once("\r\n\r\n").map_or("", |(_, r)| r);
                }
                b = after.get(size + 2..).unwrap_or("");
            }
        } else {
            ""
        };
    }
    out
}

/// A closed port on 127.0.0.1: bound, then released.
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

impl GatewayProc {
    /// The policy revision `/readyz` reports.
    pub async fn policy_revision(&self) -> String {
        let (status, body) = self.admin_get("/readyz").await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["policy"]["revision"].as_str().unwrap().to_owned()
    }

    /// Polls `/readyz` until it reports revision `rev`; returns the last
    /// revision seen (equal to `rev` unless [`WAIT`] passed).
    pub async fn wait_revision(&self, rev: &str) -> String {
        let start = Instant::now();
        loop {
            let now = self.policy_revision().await;
            if now == rev || start.elapsed() > WAIT {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Client {
    /// An HTTP/1.1 connection kept open for several requests.
    pub async fn h1_session(
        &self,
        addr: SocketAddr,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String> {
        let tls = self.tls(addr).await.map_err(|e| format!("tls: {e}"))?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        Ok(send)
    }

    /// An HTTP/2 connection kept open: its request sender and the task
    /// running it, which ends (with hyper's result) when the connection
    /// does.
    pub async fn h2_session(
        &self,
        addr: SocketAddr,
    ) -> Result<
        (
            hyper::client::conn::http2::SendRequest<Full<Bytes>>,
            tokio::task::JoinHandle<hyper::Result<()>>,
        ),
        String,
    > {
        let tls = self.tls(addr).await.map_err(|e| format!("tls: {e}"))?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err("the server did not choose h2".to_owned());
        }
        let (send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(|e| format!("h2 handshake: {e}"))?;
        Ok((send, tokio::spawn(conn)))
    }
}

/// Sends `req` on an open HTTP/1.1 connection; bounded by [`WAIT`].
pub async fn send_on(
    send: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    req: http::Request<Full<Bytes>>,
) -> Result<Resp, String> {
    let fut = async {
        send.ready().await.map_err(|e| format!("ready: {e}"))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        Resp::read(resp).await
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .map_err(|_| "timed out".to_owned())?
}

/// A gateway with its own tempdir and PKI, one route `api` (`/api`) to a
/// recording upstream, reader and writer clients, and a configuration
/// the test may edit before start.
pub struct TestEnv {
    // Field order is drop order: stop the gateway before removing its files.
    pub gw: GatewayProc,
    pub up: RecordingUpstream,
    pub reader_cert: ClientCert,
    pub writer_cert: ClientCert,
    pub reader: Client,
    pub writer: Client,
    pub pki: TestPki,
    pub dir: tempfile::TempDir,
}

impl TestEnv {
    /// The basic setup with [`BASIC_POLICY`].
    pub async fn start() -> Self {
        Self::start_with(UpstreamBehaviour::default(), |c, _, _| c, BASIC_POLICY).await
    }

    /// `edit` gets the [`config_yaml`] text, the PKI and the recording
    /// upstream's address, and returns the configuration to start with.
    pub async fn start_with(
        behaviour: UpstreamBehaviour,
        edit: impl FnOnce(String, &TestPki, SocketAddr) -> String,
        policy: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::new(&dir.path().join("pki"));
        let up = RecordingUpstream::start_with(behaviour).await;
        let config = edit(
            config_yaml(&pki, &[("api", "/api", up.addr)], ""),
            &pki,
            up.addr,
        );
        let gw = GatewayProc::start(dir.path(), &config, policy);
        let reader_cert = pki.workload("reader", "/ns/test/sa/reader");
        let writer_cert = pki.workload("writer", "/ns/test/sa/writer");
        Self {
            gw,
            up,
            reader: Client::new(&pki, Some(&reader_cert)),
            writer: Client::new(&pki, Some(&writer_cert)),
            reader_cert,
            writer_cert,
            pki,
            dir,
        }
    }

    /// The basic setup with CRLs for the root and the intermediate that
    /// revoke nothing yet (the files are watched); also the path of the
    /// intermediate's CRL, `inter.crl`.
    pub async fn start_with_crls() -> (Self, PathBuf) {
        let mut inter_crl = PathBuf::new();
        let env = Self::start_with(
            UpstreamBehaviour::default(),
            |c, pki, _| {
                let root_crl = pki.dir.join("root.crl");
                std::fs::write(
                    &root_crl,
                    pki.root.crl(&[], Duration::from_secs(3600)).unwrap(),
                )
                .unwrap();
                inter_crl = pki.crl("inter.crl", &[]);
                c.replacen(
                    "      spiffe_trust_domains:",
                    &format!(
                        "      crls: [{}, {}]\n      spiffe_trust_domains:",
                        root_crl.display(),
                        inter_crl.display()
                    ),
                    1,
                )
            },
            BASIC_POLICY,
        )
        .await;
        (env, inter_crl)
    }

    /// Replaces the intermediate's CRL at `crl` (from
    /// [`Self::start_with_crls`]) with one revoking `revoked`.
    pub fn revoke(&self, crl: &Path, revoked: &ClientCert) {
        let pem = self
            .pki
            .inter
            .crl(
                std::slice::from_ref(&revoked.key.serial),
                Duration::from_secs(3600),
            )
            .unwrap();
        write_atomic(crl.parent().unwrap(), "inter.crl", &pem);
    }

    /// Writes raw bytes as the reader over TLS; the gateway's answer.
    pub async fn raw(&self, bytes: &[u8]) -> String {
        self.reader
            .raw(self.gw.addr, bytes)
            .await
            .unwrap_or_else(|e| panic!("raw request failed: {e}"))
    }

    /// The gateway still serves: a fresh reader GET reaches the upstream.
    pub async fn assert_still_serving(&self) {
        let before = self.up.count();
        let r = self
            .reader
            .get(self.gw.addr, "/api/still-serving")
            .await
            .unwrap();
        assert_eq!(r.status, 200, "gateway stopped serving: {r:?}");
        assert_eq!(self.up.count(), before + 1);
    }
}
