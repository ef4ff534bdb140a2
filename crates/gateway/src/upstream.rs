//! Upstream HTTP clients: one pooled client per distinct upstream.
//!
//! [`UpstreamClient::forward`] takes a [`Permit`]: only the authorization
//! step creates one, so a request cannot reach an upstream without a
//! decision that allowed it.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use portcullis_config::Upstream;

use crate::authz::Permit;

pub(crate) use crate::body::BoxError;
pub(crate) type Body = BoxBody<Bytes, BoxError>;

/// Idle pooled connections kept per upstream host.
pub const MAX_IDLE_PER_UPSTREAM: usize = 256;

#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("cannot build the upstream tls configuration: {0}")]
    Tls(String),
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot connect to the upstream: {0}")]
    Connect(String),
    #[error("request body exceeds the limit")]
    BodyTooLarge,
    #[error("the client stopped sending its request body")]
    ClientBodyStalled,
    #[error("upstream request failed: {0}")]
    Protocol(String),
}

impl UpstreamError {
    /// The metric label; a body over the client's limit is the client's
    /// fault, not the upstream's.
    pub(crate) fn metric_kind(&self) -> Option<portcullis_telemetry::UpstreamErrorKind> {
        use portcullis_telemetry::UpstreamErrorKind as K;
        match self {
            Self::Tls(_) | Self::Connect(_) => Some(K::Connect),
            Self::Timeout(_) => Some(K::Timeout),
            Self::Protocol(_) => Some(K::Protocol),
            Self::BodyTooLarge | Self::ClientBodyStalled => None,
        }
    }
}

enum Inner {
    Http(Client<HttpConnector, Body>),
    Https(Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>),
}

pub(crate) struct UpstreamClient {
    inner: Inner,
    request_timeout: Duration,
    /// Identifies the settings the client was built from, so a reload
    /// that leaves an upstream unchanged keeps its pooled connections.
    key: String,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

pub(crate) fn client_key(u: &Upstream) -> String {
    let mut ca_digest = String::new();
    if let Some(ca) = &u.ca {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for c in ca {
            ctx.update(c.as_ref());
        }
        for b in ctx.finish().as_ref() {
            ca_digest.push_str(&format!("{b:02x}"));
        }
    }
    format!(
        "{}://{} ca={} c={:?} r={:?} i={:?}",
        u.scheme, u.authority, ca_digest, u.connect_timeout, u.request_timeout, u.idle_timeout
    )
}

impl UpstreamClient {
    pub(crate) fn new(u: &Upstream) -> Result<Self, UpstreamError> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(u.connect_timeout));
        http.set_nodelay(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(u.idle_timeout)
            .pool_max_idle_per_host(MAX_IDLE_PER_UPSTREAM)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        let inner = match &u.ca {
            Some(roots) => {
                http.enforce_http(false);
                let tls = portcullis_authn::upstream_client_config(roots.clone())
                    .map_err(|e| UpstreamError::Tls(e.to_string()))?;
                let mut tls = (*tls).clone();
                // hyper-rustls sets ALPN from the enabled protocols below and
                // refuses (panics on) a configuration that already has some.
                tls.alpn_protocols.clear();
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_only()
                    .enable_http1()
                    .enable_http2()
                    .wrap_connector(http);
                Inner::Https(builder.build(https))
            }
            None => Inner::Http(builder.build(http)),
        };
        Ok(Self {
            inner,
            request_timeout: u.request_timeout,
            key: client_key(u),
        })
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Sends an authorized request and waits for the response headers at
    /// most `request_timeout`; the body then streams.
    pub(crate) async fn forward(
        &self,
        _permit: &Permit,
        req: http::Request<Body>,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        let fut = async {
            match &self.inner {
                Inner::Http(c) => c.request(req).await,
                Inner::Https(c) => c.request(req).await,
            }
        };
        match tokio::time::timeout(self.request_timeout, fut).await {
            Err(_) => Err(UpstreamError::Timeout(self.request_timeout)),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(classify(&e)),
        }
    }
}

fn classify(e: &hyper_util::client::legacy::Error) -> UpstreamError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return UpstreamError::BodyTooLarge;
        }
        if s.is::<crate::body::BodyStalled>() {
            return UpstreamError::ClientBodyStalled;
        }
        source = s.source();
    }
    if e.is_connect() {
        UpstreamError::Connect(error_chain(e))
    } else {
        UpstreamError::Protocol(error_chain(e))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
