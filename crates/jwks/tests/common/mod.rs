//! Test identity provider: an HTTPS server on 127.0.0.1 (hyper +
//! tokio-rustls, certificate from a `portcullis-pki` dev CA) whose routes
//! (status, body, `Cache-Control`, delay, body shape) the test changes at
//! runtime, and which counts requests per path. Plus JWKS made from real
//! P-256 keys.
#![allow(dead_code, unreachable_pub)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test harness: a failed setup step must abort the test"
)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis_jwks::{FetchSettings, JwksSource, KeySource};
use portcullis_pki::{Ca, IssueRequest};
use portcullis_token::KeySet;
use rustls_pki_types::CertificateDer;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Bound on every wait for something to happen.
pub const WAIT: Duration = Duration::from_secs(20);
/// Path of the JWKS on the test server.
pub const JWKS_PATH: &str = "/jwks";
/// Path of the discovery document.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

// ------------------------------------------------------------------ keys

/// A public P-256 key as a JWK.
#[derive(Clone, Debug)]
pub struct TestKey {
    pub kid: String,
    pub jwk: serde_json::Value,
}

/// A fresh P-256 key with `kid`.
pub fn ec_key(kid: &str) -> TestKey {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    assert_eq!(point.len(), 65);
    assert_eq!(point[0], 0x04);
    let jwk = serde_json::json!({
        "kty": "EC",
        "crv": "P-256",
        "use": "sig",
        "alg": "ES256",
        "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    });
    TestKey {
        kid: kid.to_owned(),
        jwk,
    }
}

/// A JWKS document with these keys.
pub fn jwks(keys: &[&TestKey]) -> Bytes {
    let keys: Vec<_> = keys.iter().map(|k| k.jwk.clone()).collect();
    Bytes::from(serde_json::json!({ "keys": keys }).to_string())
}

/// The kids of a key set, sorted.
pub fn kids(keys: &KeySet) -> Vec<String> {
    let mut kids: Vec<String> = keys.kids().map(|k| k.unwrap_or("").to_owned()).collect();
    kids.sort();
    kids
}

// -------------------------------------------------------------- settings

/// Short intervals for tests; `roots` trusts the test CA.
pub fn fast_settings(roots: Vec<CertificateDer<'static>>) -> FetchSettings {
    FetchSettings {
        roots: Some(roots),
        min_refresh: Duration::from_millis(100),
        max_refresh: Duration::from_secs(3600),
        default_refresh: Duration::from_secs(3600),
        unknown_kid_interval: Duration::from_secs(3600),
        max_staleness: Duration::from_secs(3600),
        fetch_timeout: Duration::from_secs(3),
        max_body_bytes: portcullis_jwks::DEFAULT_MAX_BODY_BYTES,
    }
}

/// A source for the JWKS at [`JWKS_PATH`] of `idp`.
pub async fn start_uri(idp: &Idp, settings: FetchSettings) -> Arc<KeySource> {
    KeySource::start(idp.base(), JwksSource::Uri(idp.uri(JWKS_PATH)), settings)
        .await
        .unwrap()
}

/// Polls `check` until it holds; fails the test after [`WAIT`].
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls all futures, the first time all in one pass (so every future has
/// started before any other code of this task runs), and returns their
/// outputs in order.
pub async fn join_all<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut outs: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (fut, out) in futs.iter_mut().zip(outs.iter_mut()) {
            if out.is_none() {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outs.into_iter().map(Option::unwrap).collect()
}

// ---------------------------------------------------------------- server

/// How a response body is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyMode {
    /// Whole, with `Content-Length`.
    Fixed,
    /// Without `Content-Length` (chunked or HTTP/2 data frames), in 1 KiB
    /// pieces.
    Streamed,
    /// 16 KiB of spaces at a time, never ending.
    Endless,
    /// Headers only; the body never comes.
    Stall,
}

/// What a path answers.
#[derive(Clone, Debug)]
pub struct Route {
    pub status: u16,
    pub body: Bytes,
    pub cache_control: Option<String>,
    pub location: Option<String>,
    pub delay: Duration,
    pub mode: BodyMode,
    /// Wait for [`Idp::open_gate`] before answering.
    pub gated: bool,
}

impl Route {
    /// 200 with `body`.
    pub fn ok(body: Bytes) -> Self {
        Self {
            status: 200,
            body,
            cache_control: None,
            location: None,
            delay: Duration::ZERO,
            mode: BodyMode::Fixed,
            gated: false,
        }
    }

    pub fn cache_control(mut self, value: &str) -> Self {
        self.cache_control = Some(value.to_owned());
        self
    }
}

struct Shared {
    routes: Mutex<HashMap<String, Route>>,
    counts: Mutex<HashMap<String, usize>>,
    /// Connections are closed without an answer while set.
    down: Mutex<bool>,
    gate: watch::Sender<bool>,
}

/// The test identity provider.
pub struct Idp {
    pub addr: SocketAddr,
    pub ca: Ca,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Idp {
    /// Starts a server for 127.0.0.1 with a new CA; no routes yet.
    pub async fn start() -> Idp {
        let ca = Ca::new_root("portcullis jwks test ca").unwrap();
        let leaf = ca.issue(&IssueRequest::server("127.0.0.1")).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.certificate_der()], leaf.private_key_der())
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            routes: Mutex::new(HashMap::new()),
            counts: Mutex::new(HashMap::new()),
            down: Mutex::new(false),
            gate: watch::channel(true).0,
        });
        let task = tokio::spawn(accept_loop(listener, acceptor, Arc::clone(&shared)));
        Idp {
            addr,
            ca,
            shared,
            task,
        }
    }

    /// A server serving `jwks` at [`JWKS_PATH`].
    pub async fn with_jwks(body: Bytes) -> Idp {
        let idp = Self::start().await;
        idp.set(JWKS_PATH, Route::ok(body));
        idp
    }

    /// `https://127.0.0.1:PORT` (the issuer).
    pub fn base(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    pub fn uri(&self, path: &str) -> http::Uri {
        self.url(path).parse().unwrap()
    }

    /// Trust anchors for this server.
    pub fn roots(&self) -> Vec<CertificateDer<'static>> {
        vec![self.ca.cert_der()]
    }

    pub fn set(&self, path: &str, route: Route) {
        self.shared
            .routes
            .lock()
            .unwrap()
            .insert(path.to_owned(), route);
    }

    /// Changes the route at `path`.
    pub fn update(&self, path: &str, f: impl FnOnce(&mut Route)) {
        let mut routes = self.shared.routes.lock().unwrap();
        f(routes.get_mut(path).expect("route exists"));
    }

    /// Serves a discovery document for issuer `issuer` pointing to `jwks_uri`.
    pub fn set_discovery(&self, issuer: &str, jwks_uri: &str) {
        let doc = serde_json::json!({
            "issuer": issuer,
            "jwks_uri": jwks_uri,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "id_token_signing_alg_values_supported": ["ES256"],
        });
        self.set(DISCOVERY_PATH, Route::ok(Bytes::from(doc.to_string())));
    }

    /// Requests received for `path`.
    pub fn count(&self, path: &str) -> usize {
        self.shared
            .counts
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// While down, every connection is closed without an answer.
    pub fn set_down(&self, down: bool) {
        *self.shared.down.lock().unwrap() = down;
    }

    /// Gated routes wait until the gate opens.
    pub fn close_gate(&self) {
        self.shared.gate.send_replace(false);
    }

    pub fn open_gate(&self) {
        self.shared.gate.send_replace(true);
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
) {
    // Dropped (and with it every connection) when the server task ends.
    let mut conns = JoinSet::new();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        if *shared.down.lock().unwrap() {
            drop(tcp);
            continue;
        }
        let acceptor = acceptor.clone();
        let shared = Arc::clone(&shared);
        conns.spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = service_fn(move |req| handle(Arc::clone(&shared), req));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
        while conns.try_join_next().is_some() {}
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<TestBody>, std::io::Error> {
    let path = req.uri().path().to_owned();
    *shared
        .counts
        .lock()
        .unwrap()
        .entry(path.clone())
        .or_insert(0) += 1;
    if *shared.down.lock().unwrap() {
        return Err(std::io::Error::other("identity provider is down"));
    }
    let route = shared.routes.lock().unwrap().get(&path).cloned();
    let Some(route) = route else {
        return Ok(http::Response::builder()
            .status(404)
            .body(TestBody::fixed(Bytes::new()))
            .unwrap());
    };
    if route.gated {
        let mut gate = shared.gate.subscribe();
        let _ = gate.wait_for(|open| *open).await;
    }
    tokio::time::sleep(route.delay).await;
    let mut resp = http::Response::builder()
        .status(route.status)
        .header("content-type", "application/json");
    if let Some(cc) = &route.cache_control {
        resp = resp.header("cache-control", cc);
    }
    if let Some(location) = &route.location {
        resp = resp.header("location", location);
    }
    let body = match route.mode {
        BodyMode::Fixed => TestBody::fixed(route.body),
        BodyMode::Streamed => TestBody::Streamed(route.body),
        BodyMode::Endless => TestBody::Endless,
        BodyMode::Stall => TestBody::Stall,
    };
    Ok(resp.body(body).unwrap())
}

/// Response bodies of the test server.
pub enum TestBody {
    Fixed(Option<Bytes>),
    Streamed(Bytes),
    Endless,
    Stall,
}

impl TestBody {
    fn fixed(b: Bytes) -> Self {
        Self::Fixed(Some(b))
    }
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        match this {
            TestBody::Fixed(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            TestBody::Streamed(rest) => {
                if rest.is_empty() {
                    Poll::Ready(None)
                } else {
                    let n = rest.len().min(1024);
                    Poll::Ready(Some(Ok(Frame::data(rest.split_to(n)))))
                }
            }
            TestBody::Endless => {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b' '; 16 * 1024])))))
            }
            // Never woken: the body never continues.
            TestBody::Stall => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, TestBody::Fixed(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            TestBody::Fixed(Some(b)) => SizeHint::with_exact(b.len() as u64),
            TestBody::Fixed(None) => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
