//! Runs every mode against an in-process mTLS server on 127.0.0.1.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::Full;
use hyper::service::service_fn;
use rustls::server::WebPkiClientVerifier;
use rustls::HandshakeKind;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::*;
use crate::headers::{parse_header, Rotating};
use crate::tls::{client_config, KeyExchange, TlsFiles};

/// What the test server saw.
#[derive(Default)]
struct Seen {
    accepted: AtomicUsize,
    open: AtomicUsize,
    resumed: AtomicUsize,
    /// Every `authorization` value received on `/auth`.
    authorization: std::sync::Mutex<Vec<String>>,
}

fn pki(dir: &Path) {
    portcullis_pki::init_dir(dir).unwrap();
    let mut server = portcullis_pki::IssueRequest::server("localhost");
    server.ips.push(std::net::IpAddr::from([127, 0, 0, 1]));
    portcullis_pki::issue_to_dir(dir, "server", &server).unwrap();
    portcullis_pki::issue_to_dir(
        dir,
        "client",
        &portcullis_pki::IssueRequest::client("client"),
    )
    .unwrap();
}

/// An mTLS server that requires a client certificate from `dir`'s CA,
/// offers session tickets, answers 200 (`/ok`; `/auth` with exactly one
/// `authorization` header starting `Bearer good`) or 418 (anything else,
/// 401 on `/auth`), and closes after each response when `keep_alive` is
/// false.
async fn server(dir: &Path, keep_alive: bool) -> (std::net::SocketAddr, Arc<Seen>) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join("ca-bundle.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let chain = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = tcp.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let seen = seen2.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                seen.accepted.fetch_add(1, Ordering::SeqCst);
                if tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed) {
                    seen.resumed.fetch_add(1, Ordering::SeqCst);
                }
                seen.open.fetch_add(1, Ordering::SeqCst);
                let seen_req = seen.clone();
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let seen = seen_req.clone();
                    async move {
                        let status = match req.uri().path() {
                            "/ok" => StatusCode::OK,
                            "/auth" => {
                                let values: Vec<String> = req
                                    .headers()
                                    .get_all(header::AUTHORIZATION)
                                    .iter()
                                    .map(|v| v.to_str().unwrap_or("?").to_owned())
                                    .collect();
                                let good = values.len() == 1
                                    && values.iter().all(|v| v.starts_with("Bearer good"));
                                seen.authorization.lock().unwrap().extend(values);
                                if good {
                                    StatusCode::OK
                                } else {
                                    StatusCode::UNAUTHORIZED
                                }
                            }
                            _ => StatusCode::IM_A_TEAPOT,
                        };
                        let mut resp = http::Response::new(Full::new(Bytes::from_static(b"hi")));
                        *resp.status_mut() = status;
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(keep_alive)
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
                seen.open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (addr, seen)
}

fn spec(dir: &Path, client: &str, addr: std::net::SocketAddr, path: &str, n: usize) -> Spec {
    let url = format!("https://127.0.0.1:{}{path}", addr.port());
    Spec {
        target: crate::target::parse_target(&url, "localhost").unwrap(),
        tls: client_config(
            TlsFiles {
                ca: &dir.join("ca-bundle.pem"),
                cert: &dir.join(format!("{client}.pem")),
                key: &dir.join(format!("{client}.key")),
            },
            KeyExchange::X25519,
        )
        .unwrap(),
        connections: n,
        duration: Duration::from_millis(300),
        headers: Arc::new(ExtraHeaders::default()),
    }
}

#[tokio::test]
async fn keepalive_reuses_its_connections() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let (addr, seen) = server(dir.path(), true).await;
    let r = keepalive(&spec(dir.path(), "client", addr, "/ok", 4))
        .await
        .unwrap();
    assert_eq!(r.errors, 0, "{:?}", r.first_error);
    assert_eq!(r.non_2xx, 0);
    assert!(r.requests > 4, "only {} requests", r.requests);
    assert_eq!(r.latency.len(), r.requests);
    // One connection per loop, however many requests.
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 4);
    let tls = r.tls.unwrap();
    assert!(tls.contains("TLSv1_3") && tls.contains("X25519"), "{tls}");
}

#[tokio::test]
async fn non_success_statuses_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let (addr, _) = server(dir.path(), true).await;
    let r = keepalive(&spec(dir.path(), "client", addr, "/teapot", 2))
        .await
        .unwrap();
    assert!(r.requests > 0);
    assert_eq!(r.non_2xx, r.requests);
    assert_eq!(r.errors, 0);
}

#[tokio::test]
async fn a_client_the_server_does_not_trust_gets_errors_not_requests() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    // A client certificate from another CA, with a bundle that still
    // trusts the server.
    let other = tempfile::tempdir().unwrap();
    pki(other.path());
    std::fs::copy(
        other.path().join("client.pem"),
        dir.path().join("stranger.pem"),
    )
    .unwrap();
    std::fs::copy(
        other.path().join("client.key"),
        dir.path().join("stranger.key"),
    )
    .unwrap();
    let (addr, _) = server(dir.path(), true).await;
    let r = keepalive(&spec(dir.path(), "stranger", addr, "/ok", 2))
        .await
        .unwrap();
    assert_eq!(r.requests, 0);
    assert!(r.errors > 0);
    assert!(r.first_error.is_some());
}

#[tokio::test]
async fn handshake_mode_makes_a_full_handshake_per_request() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let (addr, seen) = server(dir.path(), true).await;
    let r = handshakes(&spec(dir.path(), "client", addr, "/ok", 2))
        .await
        .unwrap();
    assert_eq!(r.errors, 0, "{:?}", r.first_error);
    assert!(r.requests >= 2);
    // Every iteration was a new connection, none resumed, although the
    // server offers tickets.
    assert_eq!(seen.accepted.load(Ordering::SeqCst) as u64, r.requests);
    assert_eq!(seen.resumed.load(Ordering::SeqCst), 0);
    assert!(r.to_json().contains("handshakes_per_s"));
}

#[tokio::test]
async fn idle_mode_holds_every_connection_open() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let (addr, seen) = server(dir.path(), true).await;
    let mut open_at_callback = None;
    let out = idle(&spec(dir.path(), "client", addr, "/ok", 20), |r| {
        open_at_callback = Some((r.requests, seen.open.load(Ordering::SeqCst)));
    })
    .await
    .unwrap();
    assert_eq!(open_at_callback, Some((20, 20)));
    assert_eq!(out.opened.errors, 0);
    assert_eq!(out.still_open, 20);
}

#[tokio::test]
async fn idle_mode_notices_connections_the_server_closed() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let (addr, _) = server(dir.path(), false).await;
    let out = idle(&spec(dir.path(), "client", addr, "/ok", 5), |_| {})
        .await
        .unwrap();
    assert_eq!(out.opened.requests, 5);
    assert_eq!(out.still_open, 0);
}

#[tokio::test]
async fn refuses_unbounded_runs() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let addr: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut s = spec(dir.path(), "client", addr, "/ok", 0);
    assert!(matches!(
        keepalive(&s).await,
        Err(LoadgenError::OutOfBounds {
            what: "connections",
            ..
        })
    ));
    s.connections = MAX_CONCURRENCY + 1;
    assert!(matches!(
        handshakes(&s).await,
        Err(LoadgenError::OutOfBounds {
            what: "connections",
            ..
        })
    ));
    s.connections = 1;
    s.duration = MAX_DURATION + Duration::from_secs(1);
    assert!(matches!(
        keepalive(&s).await,
        Err(LoadgenError::OutOfBounds {
            what: "duration (ms)",
            ..
        })
    ));
    s.duration = MAX_HOLD + Duration::from_secs(1);
    s.connections = MAX_IDLE_CONNECTIONS + 1;
    assert!(matches!(
        idle(&s, |_| {}).await,
        Err(LoadgenError::OutOfBounds { .. })
    ));
}

#[tokio::test]
async fn every_request_carries_the_extra_header() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let (addr, seen) = server(dir.path(), true).await;
    let mut s = spec(dir.path(), "client", addr, "/auth", 2);
    s.headers = Arc::new(
        ExtraHeaders::new(
            vec![parse_header("Authorization: Bearer good").unwrap()],
            None,
        )
        .unwrap(),
    );
    let r = keepalive(&s).await.unwrap();
    assert_eq!(r.errors, 0, "{:?}", r.first_error);
    assert!(r.requests > 0);
    assert_eq!(r.non_2xx, 0);
    let got = seen.authorization.lock().unwrap();
    assert_eq!(got.len() as u64, r.requests);
    assert!(got.iter().all(|v| v == "Bearer good"));
}

#[tokio::test]
async fn without_the_header_the_server_refuses() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let (addr, _) = server(dir.path(), true).await;
    let r = handshakes(&spec(dir.path(), "client", addr, "/auth", 1))
        .await
        .unwrap();
    assert!(r.requests > 0);
    assert_eq!(r.non_2xx, r.requests);
}

#[tokio::test]
async fn rotating_header_changes_on_every_request() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let (addr, seen) = server(dir.path(), true).await;
    let values = ["Bearer good-1", "Bearer good-2", "Bearer good-3"]
        .map(http::HeaderValue::from_static)
        .to_vec();
    let mut s = spec(dir.path(), "client", addr, "/auth", 1);
    s.headers = Arc::new(
        ExtraHeaders::new(
            Vec::new(),
            Some(Rotating::new(header::AUTHORIZATION, values).unwrap()),
        )
        .unwrap(),
    );
    let r = keepalive(&s).await.unwrap();
    assert_eq!(r.errors, 0, "{:?}", r.first_error);
    assert_eq!(r.non_2xx, 0);
    assert!(r.requests >= 3, "only {} requests", r.requests);
    let got = seen.authorization.lock().unwrap();
    // One loop: the values arrive in order, cycling.
    for (i, v) in got.iter().enumerate() {
        assert_eq!(v, &format!("Bearer good-{}", i % 3 + 1));
    }
}
