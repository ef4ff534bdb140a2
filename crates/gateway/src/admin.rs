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
                async move {
                    let resp = if req.uri().path().starts_with("/admin/sessions") {
                        sessions_api(&shared, req).await
                    } else if req.uri().path() == "/admin/policy/bundle" {
                        bundle_api(&shared, req).await
                    } else {
                        route(&shared, &req).await
                    };
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10));
            let _ = b.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

async fn route(shared: &Shared, req: &Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => readyz(shared).await,
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

/// Bound on the store check of `/readyz`.
const STORE_HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn readyz(shared: &Shared) -> Response<Body> {
    let snap = shared.state.load_full();
    let serving = shared.serving.load(Ordering::Acquire);
    // The session store is part of readiness: without it no browser
    // request can be served (they would all be 503).
    let store = match &snap.browser {
        None => serde_json::Value::Null,
        Some(b) => {
            let health = tokio::time::timeout(STORE_HEALTH_TIMEOUT, b.store().health()).await;
            let (healthy, error) = match health {
                Ok(Ok(())) => (true, None),
                Ok(Err(e)) => (false, Some(format!("{}: {e}", e.reason()))),
                Err(_) => (false, Some("timeout: no answer within 2s".to_owned())),
            };
            serde_json::json!({"kind": b.store().kind(), "healthy": healthy, "error": error})
        }
    };
    let store_ok = store.get("healthy").and_then(serde_json::Value::as_bool) != Some(false);
    let bundle = match &shared.bundle {
        None => serde_json::Value::Null,
        Some(b) => {
            let st = b.status();
            let check = b.check();
            if let Some(age) = b.age_secs() {
                shared.metrics.set_bundle_age(age);
            }
            serde_json::json!({
                "revision": st.revision,
                "digest": st.digest,
                "age_seconds": b.age_secs(),
                "max_age_seconds": b.source().max_age.as_secs(),
                "ready": check.is_ok(),
                "reason": check.err(),
                "last_refusal": st.last_refusal,
            })
        }
    };
    let bundle_ok = bundle.get("ready").and_then(serde_json::Value::as_bool) != Some(false);
    let serving = serving && store_ok && bundle_ok;
    let body = serde_json::json!({
        "ready": serving,
        "policy": {
            "revision": snap.policy.policy.revision(),
            "sha256": snap.policy.sha256,
            "rules": snap.policy.policy.rule_count(),
            "loaded_at": snap.loaded_at.to_string(),
        },
        // A refused reload keeps the running state (still ready), but the
        // files on disk are then not what is enforced.
        "last_reload": shared.last_reload.lock().ok().and_then(|l| l.clone()),
        "trust": snap.config.listeners.iter().map(|l| serde_json::json!({
            "listener": l.name,
            "client_ca_certificates": l.tls.client_auth.roots.len(),
            "crls": l.tls.client_auth.crls.len(),
        })).collect::<Vec<_>>(),
        // Token issuers are reported, not required: an IdP outage refuses
        // that issuer's tokens but must not take mTLS traffic down.
        "issuers": snap.bearer.as_ref().map(|b| b.status()).unwrap_or_default(),
        "session_store": store,
        "bundle": bundle,
    });
    let status = if serving {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, body.to_string())
}

/// Largest admin API request body.
const MAX_ADMIN_BODY: usize = 16 * 1024;
/// Most sessions one listing returns.
const MAX_SESSION_LIST: usize = 10_000;

/// `/admin/sessions` (GET: list, `?user=SUB&limit=N`) and
/// `/admin/sessions/revoke` (POST `{"session": KEY}`, `{"user": SUB}` or
/// `{"thumbprint": HEX}`). Requires `Authorization: Bearer <admin token>`
/// (`admin.token_file`); without a configured token the API is off.
async fn sessions_api(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    use http_body_util::BodyExt;
    if let Err(r) = admin_auth(shared, &req) {
        return *r;
    }
    let snap = shared.state.load_full();
    let Some(browser) = &snap.browser else {
        return text(StatusCode::NOT_FOUND, "no sessions are configured\n");
    };
    let store = browser.store();
    let unavailable = |e: portcullis_session::StoreError| {
        shared.metrics.session_store_error(e.reason());
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"error": e.reason(), "detail": e.to_string()}).to_string(),
        )
    };
    match (req.method().clone(), req.uri().path()) {
        (Method::GET, "/admin/sessions") => {
            let q = req.uri().query().unwrap_or("");
            let filter = portcullis_session::SessionFilter {
                subject: crate::browser::query_param(q, "user"),
                thumbprint: None,
            };
            let limit = crate::browser::query_param(q, "limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(1000)
                .min(MAX_SESSION_LIST);
            match store.list(&filter, limit).await {
                Ok(list) => json(
                    StatusCode::OK,
                    serde_json::json!({"sessions": list}).to_string(),
                ),
                Err(e) => unavailable(e),
            }
        }
        (Method::POST, "/admin/sessions/revoke") => {
            let body = match http_body_util::Limited::new(req.into_body(), MAX_ADMIN_BODY)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(_) => return text(StatusCode::BAD_REQUEST, "body too large or unreadable\n"),
            };
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Revoke {
                session: Option<String>,
                user: Option<String>,
                thumbprint: Option<String>,
            }
            let Ok(r) = serde_json::from_slice::<Revoke>(&body) else {
                return text(
                    StatusCode::BAD_REQUEST,
                    "expected {\"session\": KEY} or {\"user\": SUB} or {\"thumbprint\": HEX}\n",
                );
            };
            let result = match (r.session, r.user, r.thumbprint) {
                (Some(k), None, None) => match portcullis_session::SessionKey::from_hex(&k) {
                    Some(key) => store.revoke(&key).await.map(usize::from),
                    None => {
                        return text(StatusCode::BAD_REQUEST, "session: expected 64 hex digits\n")
                    }
                },
                (None, user, tp) if user.is_some() || tp.is_some() => {
                    let thumbprint = match tp {
                        None => None,
                        Some(t) => match portcullis_identity::Thumbprint::from_hex(&t) {
                            Some(t) => Some(t.0),
                            None => {
                                return text(
                                    StatusCode::BAD_REQUEST,
                                    "thumbprint: expected 64 hex digits\n",
                                )
                            }
                        },
                    };
                    let filter = portcullis_session::SessionFilter {
                        subject: user,
                        thumbprint,
                    };
                    store.revoke_matching(&filter).await
                }
                _ => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        "give `session`, or `user` and/or `thumbprint`\n",
                    )
                }
            };
            match result {
                Ok(n) => {
                    tracing::info!(revoked = n, "sessions revoked through the admin api");
                    json(
                        StatusCode::OK,
                        serde_json::json!({"revoked": n}).to_string(),
                    )
                }
                Err(e) => unavailable(e),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Checks the admin bearer token; `Err` is the response to send.
fn admin_auth(shared: &Shared, req: &Request<Incoming>) -> Result<(), Box<Response<Body>>> {
    let snap = shared.state.load_full();
    let Some(expected) = snap.config.admin.as_ref().and_then(|a| a.token.as_ref()) else {
        return Err(Box::new(text(
            StatusCode::NOT_FOUND,
            "admin api is off: set admin.token_file\n",
        )));
    };
    let presented = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !crate::https::ct_eq(presented.as_bytes(), expected.0.as_bytes()) {
        tracing::warn!(path = %req.uri().path(), "admin api: bad or missing admin token");
        let mut r = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"portcullis-admin\""),
        );
        return Err(Box::new(r));
    }
    Ok(())
}

/// `PUT /admin/policy/bundle`: a new signed bundle (the tar as the body),
/// accepted only with `If-Match: "<active revision>"` (`If-Match: "none"`
/// before the first bundle). Concurrent publishers are serialised; the
/// loser's precondition no longer holds and it gets 412. `GET` shows the
/// active revision as the `ETag`.
async fn bundle_api(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    use http_body_util::BodyExt;
    if let Err(r) = admin_auth(shared, &req) {
        return *r;
    }
    let Some(mgr) = shared.bundle.clone() else {
        return text(
            StatusCode::NOT_FOUND,
            "the policy does not come from bundles\n",
        );
    };
    let etag = |rev: Option<u64>| match rev {
        Some(r) => format!("\"{r}\""),
        None => "\"none\"".to_owned(),
    };
    match *req.method() {
        Method::GET => {
            let st = mgr.status();
            let mut r = json(
                StatusCode::OK,
                serde_json::json!({"revision": st.revision, "digest": st.digest}).to_string(),
            );
            if let Ok(v) = http::HeaderValue::from_str(&etag(st.revision)) {
                r.headers_mut().insert(http::header::ETAG, v);
            }
            r
        }
        Method::PUT => {
            let Some(if_match) = req
                .headers()
                .get(http::header::IF_MATCH)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
            else {
                return text(
                    StatusCode::PRECONDITION_REQUIRED,
                    "If-Match with the active revision is required\n",
                );
            };
            let expected = match if_match.trim().trim_matches('"') {
                "none" => None,
                n => match n.parse::<u64>() {
                    Ok(r) => Some(r),
                    Err(_) => {
                        return text(
                            StatusCode::BAD_REQUEST,
                            "If-Match: expected \"<revision>\" or \"none\"\n",
                        )
                    }
                },
            };
            let max = mgr.source().max_bytes;
            let body = match http_body_util::Limited::new(req.into_body(), max)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes().to_vec(),
                Err(_) => {
                    shared.metrics.bundle_refused("too_large");
                    return text(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "bundle over the size limit\n",
                    );
                }
            };
            match mgr.install(shared, body, Some(expected)).await {
                Ok(done) => {
                    let st = mgr.status();
                    let mut r = json(
                        StatusCode::OK,
                        serde_json::json!({
                            "revision": st.revision,
                            "digest": st.digest,
                            "changed": done.is_some(),
                        })
                        .to_string(),
                    );
                    if let Ok(v) = http::HeaderValue::from_str(&etag(st.revision)) {
                        r.headers_mut().insert(http::header::ETAG, v);
                    }
                    r
                }
                Err(e) => {
                    shared.metrics.bundle_refused(e.reason());
                    tracing::warn!(reason = e.reason(), error = %e, "bundle upload refused");
                    let status = match &e {
                        crate::bundle::InstallError::Precondition { .. } => {
                            StatusCode::PRECONDITION_FAILED
                        }
                        crate::bundle::InstallError::Internal(_) => {
                            StatusCode::INTERNAL_SERVER_ERROR
                        }
                        crate::bundle::InstallError::Refused(..) => {
                            StatusCode::UNPROCESSABLE_ENTITY
                        }
                    };
                    json(
                        status,
                        serde_json::json!({"error": e.reason(), "detail": e.to_string()})
                            .to_string(),
                    )
                }
            }
        }
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
    }
}

fn text(status: StatusCode, s: &'static str) -> Response<Body> {
    let mut r = Response::new(full(s));
    *r.status_mut() = status;
    r
}
