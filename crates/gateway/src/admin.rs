//! The admin listener (loopback by default): `/healthz`, `/readyz`,
//! `/metrics` and the JWKS of the identity assertion. Plain HTTP/1.1; it
//! serves no proxied traffic.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::assertion::JWKS_PATH;
use crate::response::{full, json};
use crate::upstream::Body;
use crate::Shared;

pub(crate) async fn serve(
    shared: Arc<Shared>,
    tcp: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.changed() => return,
            a = tcp.accept() => match a { Ok(a) => a, Err(_) => continue },
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&shared, &req)) }
            });
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10));
            let _ = b.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

fn route(shared: &Shared, req: &Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => readyz(shared),
        "/metrics" => {
            let mut r = Response::new(full(shared.metrics.encode()));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        JWKS_PATH => json(StatusCode::OK, shared.signer.jwks_json().to_owned()),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn readyz(shared: &Shared) -> Response<Body> {
    let snap = shared.state.load();
    let serving = shared.serving.load(Ordering::Acquire);
    let body = serde_json::json!({
        "ready": serving,
        "policy": {
            "revision": snap.policy.policy.revision(),
            "sha256": snap.policy.sha256,
            "rules": snap.policy.policy.rule_count(),
            "loaded_at": snap.loaded_at.to_string(),
        },
        "trust": snap.config.listeners.iter().map(|l| serde_json::json!({
            "listener": l.name,
            "client_ca_certificates": l.tls.client_auth.roots.len(),
            "crls": l.tls.client_auth.crls.len(),
        })).collect::<Vec<_>>(),
        // Token issuers are reported, not required: an IdP outage refuses
        // that issuer's tokens but must not take mTLS traffic down.
        "issuers": snap.bearer.as_ref().map(|b| b.status()).unwrap_or_default(),
    });
    let status = if serving {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, body.to_string())
}

fn text(status: StatusCode, s: &'static str) -> Response<Body> {
    let mut r = Response::new(full(s));
    *r.status_mut() = status;
    r
}
