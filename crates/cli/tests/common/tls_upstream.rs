//! A recording upstream behind TLS: HTTP/1.1 without ALPN, or HTTP/2
//! only. It answers every request with `tls upstream ok`, or with what a
//! test gives it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{Recorded, TestEnv, TestPki, UpstreamBehaviour, BASIC_POLICY};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of the upstream's answer to every request.
pub type Answer = fn() -> BoxBody<Bytes, BoxError>;

fn ok() -> BoxBody<Bytes, BoxError> {
    Full::new(Bytes::from_static(b"tls upstream ok"))
        .map_err(|never| match never {})
        .boxed()
}

pub struct TlsUpstream {
    pub addr: SocketAddr,
    pub records: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A recording upstream with the certificate and key at these paths.
pub async fn tls_upstream(cert: &Path, key: &Path, h2: bool) -> TlsUpstream {
    tls_upstream_answering(cert, key, h2, ok).await
}

/// [`tls_upstream`] answering every request with `answer`'s body.
pub async fn tls_upstream_answering(
    cert: &Path,
    key: &Path,
    h2: bool,
    answer: Answer,
) -> TlsUpstream {
    let chain = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    if h2 {
        config.alpn_protocols = vec![b"h2".to_vec()];
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let records: Arc<Mutex<Vec<Recorded>>> = Arc::default();
    let recs = records.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = tcp.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let recs = recs.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let recs = recs.clone();
                    async move {
                        let recorded = Recorded::read(req).await;
                        recs.lock().unwrap().push(recorded);
                        Ok::<_, std::convert::Infallible>(http::Response::new(answer()))
                    }
                });
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                }
            });
        }
    });
    TlsUpstream {
        addr,
        records,
        task,
    }
}

/// Points route `api` at `https://localhost:PORT` verified against `ca`.
pub fn https_route(config: String, plain: SocketAddr, tls: SocketAddr, ca: &Path) -> String {
    let from = format!("url: http://{plain}\n");
    assert!(config.contains(&from));
    config.replace(
        &from,
        &format!(
            "url: https://localhost:{}\n      ca: {}\n",
            tls.port(),
            ca.display()
        ),
    )
}

/// A gateway whose route `api` goes to a recording TLS upstream (HTTP/2
/// only when `h2`) verified against that upstream's own CA. The returned
/// directory holds both PKIs: keep it alive.
pub async fn behind_tls_upstream(h2: bool) -> (tempfile::TempDir, TlsUpstream, TestEnv) {
    behind_tls_upstream_answering(h2, |c| c, ok).await
}

/// [`behind_tls_upstream`], the configuration passed through `edit`.
pub async fn behind_tls_upstream_with(
    h2: bool,
    edit: fn(String) -> String,
) -> (tempfile::TempDir, TlsUpstream, TestEnv) {
    behind_tls_upstream_answering(h2, edit, ok).await
}

/// [`behind_tls_upstream_with`], the upstream answering with `answer`.
pub async fn behind_tls_upstream_answering(
    h2: bool,
    edit: fn(String) -> String,
    answer: Answer,
) -> (tempfile::TempDir, TlsUpstream, TestEnv) {
    let dir = tempfile::tempdir().unwrap();
    let upstream_pki = TestPki::new(&dir.path().join("upstream-pki"));
    let tls = tls_upstream_answering(
        &upstream_pki.server_cert,
        &upstream_pki.server_key,
        h2,
        answer,
    )
    .await;
    let (ca, tls_addr) = (upstream_pki.ca_bundle.clone(), tls.addr);
    let env = TestEnv::start_with(
        UpstreamBehaviour::default(),
        |c, _, plain| edit(https_route(c, plain, tls_addr, &ca)),
        BASIC_POLICY,
    )
    .await;
    (dir, tls, env)
}
