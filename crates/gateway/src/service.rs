//! The request pipeline, in this order and no other:
//! HTTP/1 stream framing -> limits -> framing -> host/SNI -> path
//! normalisation -> route -> authorize (policy) -> forward (needs the
//! [`Permit`]) -> audit.
//!
//! The path the policy judged is the path the upstream receives: it is
//! normalised once, before the decision, and the upstream URI is built
//! from that normalised path.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use portcullis_http_guard as guard;
use portcullis_identity::Principal;
use portcullis_telemetry::{AuditDecision, AuditRecord};

use crate::assertion::{AssertionClaims, JWKS_PATH};
use crate::authz::{authorize, AuthzInput, Permit};
use crate::bearer::bearer_token;
use crate::body::StallTimeout;
use crate::response::{self, Refusal};
use crate::router::RouteId;
use crate::state::Snapshot;
use crate::upstream::{Body, UpstreamError};
use crate::{names, Shared};

/// What one connection knows about its peer.
pub(crate) struct ConnCtx {
    pub(crate) shared: Arc<Shared>,
    /// The listener's position in `config.listeners` (fixed across
    /// reloads).
    pub(crate) listener_index: usize,
    pub(crate) peer: SocketAddr,
    pub(crate) sni: Option<String>,
    pub(crate) principal: Arc<Principal>,
    /// HTTP/1 only: the framing verdicts of the connection's request heads.
    pub(crate) framing: Option<Arc<FramingVerdicts>>,
    /// Per-connection strings, formatted once rather than per request.
    pub(crate) strings: ConnStrings,
    /// The reusable identity assertion (`identity_assertion.scope:
    /// connection`).
    pub(crate) assertion: crate::assertion::ConnAssertion,
    /// What the connection's client certificate was verified under.
    pub(crate) trust: crate::conn_trust::ConnTrust,
}
/// Strings every request of a connection repeats in its audit record and
/// upstream headers.
pub(crate) struct ConnStrings {
    pub(crate) principal: Arc<str>,
    pub(crate) spiffe_id: Option<Arc<str>>,
    pub(crate) thumbprint: Option<Arc<str>>,
    pub(crate) source: Arc<str>,
    pub(crate) peer_ip: HeaderValue,
}

impl ConnStrings {
    pub(crate) fn new(principal: &Principal, peer: SocketAddr) -> Self {
        Self {
            principal: principal.display_name().into(),
            spiffe_id: principal.spiffe_id().map(|s| s.as_str().into()),
            thumbprint: principal
                .cert
                .as_ref()
                .map(|c| c.thumbprint.to_hex().into()),
            source: peer.to_string().into(),
            // An IP address is always a valid header value.
            peer_ip: HeaderValue::from_str(&peer.ip().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
        }
    }
}

/// Everything about one request that ends up in its audit record.
struct Facts {
    request_id: Arc<str>,
    /// The same id as a header value, made once for the upstream request
    /// and the response.
    request_id_header: Option<HeaderValue>,
    trace_id: Option<String>,
    method: Cow<'static, str>,
    /// When the request arrived: the time its token, policy conditions,
    /// assertion and audit record use (one clock reading per request).
    now: jiff::Timestamp,
    path: String,
    /// The matched route's index.
    route_id: Option<RouteId>,
    rule: Option<Arc<str>>,
    /// The principal of this request when it differs from the
    /// connection's (a verified bearer token or a session was added).
    principal: Option<Arc<Principal>>,
    /// The live session the request came with.
    session: Option<portcullis_session::SessionKey>,
    /// Why a session cookie was not accepted, for the audit record.
    session_note: Option<&'static str>,
    /// The refusal ends the HTTP/1 connection (`Connection: close`).
    close_connection: bool,
    /// The upstream's response body, when the response is the
    /// upstream's: the pipeline answers with the head, and the body joins
    /// it here, so that its end is audited too
    /// ([`crate::body::AuditedEnd`]) behind one box.
    upstream_body: Option<StallTimeout<crate::upstream::UpstreamBody>>,
}

/// RFC 6750 challenges: no detail beyond the error code reaches the client.
const CHALLENGE_INVALID_TOKEN: &str = "Bearer realm=\"portcullis\", error=\"invalid_token\"";
const CHALLENGE_INVALID_REQUEST: &str = "Bearer realm=\"portcullis\", error=\"invalid_request\"";
const CHALLENGE: &str = "Bearer realm=\"portcullis\"";

/// The framing verdicts of one HTTP/1 connection's request heads, in
/// order: pushed by its framing tap (`listener::http1`), taken by the service as hyper
/// hands over each request.
#[derive(Debug, Default)]
pub(crate) struct FramingVerdicts(Mutex<guard::VerdictQueue>);

impl FramingVerdicts {
    pub(crate) fn lock(&self) -> MutexGuard<'_, guard::VerdictQueue> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The verdict of the request hyper just handed over, checked against
    /// its parsed `headers`. Fails closed (see [`guard::VerdictQueue::next_for`]).
    pub(crate) fn next_for(&self, headers: &HeaderMap) -> Result<(), guard::FramingError> {
        self.lock().next_for(headers)
    }
}

/// The service of one connection. On HTTP/1 it takes the request's
/// framing verdict when hyper calls it, not when the future first runs.
// INVARIANT: hyper calls the service for the requests of an HTTP/1
// connection one at a time, in the order it parsed their heads, and the
// connection's `FramingTap` has read (and judged) a head before hyper
// parses it; so the verdicts are taken in request order.
pub(crate) fn handle(
    conn: Arc<ConnCtx>,
    req: Request<Incoming>,
) -> impl Future<Output = Result<Response<Body>, Infallible>> {
    let framing = conn.framing.as_ref().map(|f| f.next_for(req.headers()));
    // Boxed: hyper keeps a slot of the service future's size for the life
    // of every connection; a box makes an idle connection ~2 KiB smaller.
    Box::pin(serve(conn, req, framing))
}

#[expect(
    clippy::manual_async_fn,
    reason = "an async fn's future keeps its arguments twice"
)]
fn serve(
    conn: Arc<ConnCtx>,
    req: Request<Incoming>,
    framing: Option<Result<(), guard::FramingError>>,
) -> impl Future<Output = Result<Response<Body>, Infallible>> {
    // Not an `async fn`: its future would keep the request twice, as
    // passed and as bound (the same for `pipeline`).
    async move {
        let start = Instant::now();
        let snap = conn.shared.state.load_full();
        let request_id = portcullis_telemetry::new_request_id_shared();
        let mut facts = Facts {
            now: jiff::Timestamp::now(),
            request_id_header: HeaderValue::from_str(&request_id).ok(),
            request_id,
            trace_id: req
                .headers()
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .and_then(portcullis_telemetry::parse_traceparent),
            method: method_name(req.method()),
            // The normalised path, once there is one (see below).
            path: String::new(),
            route_id: None,
            rule: None,
            principal: None,
            session: None,
            session_note: None,
            close_connection: false,
            upstream_body: None,
        };
        // Cheap (shared bytes): for the audit record of a request refused
        // before its path was normalised.
        let received = req.uri().clone();
        let result = pipeline(&conn, &snap, req, framing, &mut facts).await;
        let latency = start.elapsed();
        match result {
            Ok(resp) => {
                let status = resp.status().as_u16();
                observe(
                    &conn,
                    &snap,
                    facts.route_id,
                    portcullis_telemetry::Decision::Allow,
                    status,
                    latency,
                );
                let upstream_body = facts.upstream_body.take();
                // Every response carries the request id, the upstream's
                // and the gateway's own (the HTTP/2 refusal scanner counts
                // on it to tell them from the protocol layer's bare 431).
                let mut resp = resp;
                if let Some(v) = &facts.request_id_header {
                    resp.headers_mut().insert(names::REQUEST_ID, v.clone());
                }
                let rec = record(
                    &conn,
                    &snap,
                    facts,
                    AuditDecision::Allow,
                    status,
                    None,
                    latency,
                );
                let Some(body) = upstream_body else {
                    conn.shared.audit.record(rec);
                    return Ok(resp);
                };
                let (parts, _) = resp.into_parts();
                // A body already at its end (a HEAD, 204 or 304 answer)
                // cannot end early.
                if hyper::body::Body::is_end_stream(&body) {
                    conn.shared.audit.record(rec);
                    return Ok(Response::from_parts(parts, Body::new(body)));
                }
                let body = crate::body::AuditedEnd::new(body, conn.shared.clone(), rec.clone());
                conn.shared.audit.record(rec);
                Ok(Response::from_parts(parts, Body::new(body)))
            }
            Err(refusal) => {
                if facts.path.is_empty() {
                    facts.path = escape_for_log(received.path());
                }
                let status = refusal.status.as_u16();
                let decision = if refusal.is_error {
                    portcullis_telemetry::Decision::Error
                } else {
                    portcullis_telemetry::Decision::Deny
                };
                observe(&conn, &snap, facts.route_id, decision, status, latency);
                let principal = facts.principal.as_ref().unwrap_or(&conn.principal);
                tracing::info!(
                    request_id = %facts.request_id,
                    principal = %principal.display_name(),
                    source = %conn.peer,
                    method = %facts.method,
                    path = %facts.path,
                    status,
                    reason = refusal.code,
                    detail = %refusal.detail,
                    "request refused"
                );
                if facts.rule.is_none() {
                    facts.rule = refusal.rule.as_deref().map(Arc::from);
                }
                let audit_decision = if refusal.is_error {
                    AuditDecision::Error
                } else {
                    AuditDecision::Deny
                };
                if let Some(reason) = refusal.store_reason {
                    conn.shared.metrics.session_store_error(reason);
                }
                let reason = match facts.session_note {
                    Some(note) => format!(
                        "{}: {} (session cookie: {note})",
                        refusal.code, refusal.detail
                    ),
                    None => format!("{}: {}", refusal.code, refusal.detail),
                };
                let request_id = facts.request_id.clone();
                let close_connection = facts.close_connection;
                let rec = record(
                    &conn,
                    &snap,
                    facts,
                    audit_decision,
                    status,
                    Some(reason),
                    latency,
                );
                conn.shared.audit.record_deny(rec).await;
                let mut resp = response::generic(refusal.status, &request_id);
                if let Some(challenge) = refusal.challenge {
                    resp.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static(challenge),
                    );
                }
                for (name, value) in refusal.headers {
                    resp.headers_mut().append(name, value);
                }
                if close_connection {
                    resp.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok(resp)
            }
        }
    }
}

fn record(
    conn: &ConnCtx,
    snap: &Snapshot,
    facts: Facts,
    decision: AuditDecision,
    status: u16,
    reason: Option<String>,
    latency: std::time::Duration,
) -> AuditRecord {
    let token = facts.principal.as_ref().and_then(|p| p.token.as_ref());
    AuditRecord {
        time: portcullis_telemetry::AuditTime(facts.now),
        token_issuer: token.map(|t| t.issuer.clone()),
        token_subject: token.and_then(|t| t.subject.clone()),
        principal: match &facts.principal {
            Some(p) => p.display_name().into(),
            None => conn.strings.principal.clone(),
        },
        request_id: facts.request_id,
        trace_id: facts.trace_id,
        spiffe_id: conn.strings.spiffe_id.clone(),
        cert_thumbprint: conn.strings.thumbprint.clone(),
        bundle_revision: snap.bundle.as_ref().map(|(r, _)| *r),
        bundle_digest: snap.bundle.as_ref().map(|(_, d)| d.clone()),
        route: facts
            .route_id
            .and_then(|id| snap.audit.route_names.get(id).cloned()),
        method: facts.method,
        path: facts.path,
        source: conn.strings.source.clone(),
        decision,
        status,
        rule: facts.rule,
        reason,
        policy_revision: snap.audit.policy_revision.clone(),
        policy_sha256: snap.audit.policy_sha256.clone(),
        latency_us: u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
    }
}

/// A request refused as malformed, counted in `bad_requests_total` under
/// the reason code its audit record gets.
fn malformed(
    shared: &Shared,
    status: StatusCode,
    code: &'static str,
    detail: impl Into<String>,
) -> Refusal {
    shared.metrics.bad_request(code);
    Refusal::deny(status, code, detail)
}

/// A request one of the request hygiene checks refused, counted and
/// audited under the check's reason code.
fn refused_by(shared: &Shared, e: &impl guard::GuardRefusal) -> Refusal {
    malformed(shared, e.status(), e.reason_code(), e.to_string())
}

/// The method's name; no allocation for the standard methods.
fn method_name(m: &http::Method) -> Cow<'static, str> {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    match STANDARD.iter().find(|name| **name == m.as_str()) {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(m.as_str().to_owned()),
    }
}

/// Paths of refused requests are logged as received, with anything that
/// is not printable ASCII escaped so a log line cannot be forged.
fn escape_for_log(s: &str) -> String {
    const MAX: usize = 512;
    let mut out = String::with_capacity(s.len().min(MAX));
    for c in s.chars().take(MAX) {
        if c.is_ascii_graphic() {
            out.push(c);
        } else {
            out.push_str(&c.escape_default().to_string());
        }
    }
    out
}

#[expect(
    clippy::manual_async_fn,
    reason = "an async fn's future keeps its arguments twice"
)]
fn pipeline<'a>(
    conn: &'a ConnCtx,
    snap: &'a Snapshot,
    req: Request<Incoming>,
    framing: Option<Result<(), guard::FramingError>>,
    facts: &'a mut Facts,
) -> impl Future<Output = Result<Response<Body>, Refusal>> + 'a {
    async move {
        let shared = &conn.shared;
        let http1 = matches!(
            req.version(),
            Version::HTTP_09 | Version::HTTP_10 | Version::HTTP_11
        );

        // Signed bundles: no verified policy, or none confirmed within
        // max_age, and nothing is served.
        if let Some(b) = &shared.bundle {
            if let Err(why) = b.check() {
                return Err(Refusal::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "policy_unavailable",
                    why,
                ));
            }
        }

        // The connection's certificate must still be one the listener
        // accepts; the refused connection ends (HTTP/1) and the client's
        // next handshake gets the precise TLS alert.
        if let Err(refusal) = conn.trust.check(conn.listener_index, snap, facts.now) {
            facts.close_connection = http1;
            return Err(refusal);
        }

        // 0. HTTP/1 framing as read off the connection, which hyper's parsed
        //    headers hide (CL with TE, duplicate CL). The body is not read, so
        //    the connection ends with the refusal.
        if let Some(Err(e)) = framing {
            facts.close_connection = true;
            return Err(refused_by(shared, &e));
        }

        let listener = snap
            .config
            .listeners
            .get(conn.listener_index)
            .ok_or_else(|| {
                Refusal::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "internal",
                    "listener missing from the configuration",
                )
            })?;
        let limits = listener.limits;

        // 1. Limits.
        let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
        if uri_len > limits.max_uri_len {
            return Err(malformed(
                shared,
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                format!(
                    "request target of {uri_len} bytes exceeds {}",
                    limits.max_uri_len
                ),
            ));
        }
        if let Err(e) = guard::check_header_limits(
            req.headers(),
            limits.max_header_count,
            limits.max_header_bytes,
        ) {
            return Err(malformed(
                shared,
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "header_too_large",
                e.to_string(),
            ));
        }

        // 2. Framing (request smuggling). The body is not read, so an
        //    HTTP/1 connection ends with the refusal, whatever its status.
        if let Err(e) = guard::check_framing(req.headers(), req.version()) {
            facts.close_connection = http1;
            return Err(refused_by(shared, &e));
        }

        // The method judged is the method forwarded: no case an upstream
        // would fold, no TRACE.
        if let Err(e) = guard::check_method(req.method()) {
            facts.close_connection = http1;
            return Err(refused_by(shared, &e));
        }
        // `Max-Forwards` of an OPTIONS: read here, acted on once the
        // request is allowed.
        let hops =
            guard::max_forwards(req.method(), req.headers()).map_err(|e| refused_by(shared, &e))?;

        // 3. Host, SNI.
        let host = guard::effective_host(req.uri(), req.headers(), req.version())
            .map_err(|e| refused_by(shared, &e))?;
        if !guard::host_matches_sni(&host, conn.sni.as_deref()) {
            return Err(malformed(
                shared,
                StatusCode::MISDIRECTED_REQUEST,
                "host_sni_mismatch",
                format!(
                    "host `{}` does not match sni `{}`",
                    escape_for_log(&host),
                    conn.sni.as_deref().unwrap_or("")
                ),
            ));
        }
        if !listener.server_names.is_empty() && !listener.server_names.iter().any(|n| n == &host) {
            return Err(malformed(
                shared,
                StatusCode::MISDIRECTED_REQUEST,
                "unknown_host",
                format!(
                    "host `{}` is not served by this listener",
                    escape_for_log(&host)
                ),
            ));
        }

        // 4. One normalisation, before the decision.
        let path = guard::normalize_path(req.uri().path()).map_err(|e| refused_by(shared, &e))?;
        let query = req.uri().query().map(str::to_owned);
        if let Some(q) = &query {
            guard::check_query(q).map_err(|e| refused_by(shared, &e))?;
        }
        let path = path.as_str().to_owned();
        facts.path = path.clone();

        // Gateway-owned endpoint: the public keys of the identity assertion.
        if path == JWKS_PATH
            && (req.method() == http::Method::GET || req.method() == http::Method::HEAD)
        {
            facts.rule = Some(Arc::from("gateway:jwks"));
            return Ok(response::json(
                StatusCode::OK,
                shared.signer.jwks_json().to_owned(),
            ));
        }

        // Gateway-owned endpoints of the browser login.
        if let Some(browser) = &snap.browser {
            if req.method() == http::Method::GET && path == crate::browser::CALLBACK_PATH {
                // Boxed, like every browser-only step: the future of every
                // request would otherwise reserve room for them.
                let (resp, note) = Box::pin(browser.callback(
                    query.as_deref().unwrap_or(""),
                    req.headers(),
                    conn.principal.cert.as_ref(),
                ))
                .await?;
                facts.rule = Some(Arc::from(format!("gateway:login ({note})")));
                return Ok(resp);
            }
            if path == crate::browser::LOGOUT_PATH
                && (req.method() == http::Method::GET || req.method() == http::Method::POST)
            {
                let authority = req
                    .uri()
                    .authority()
                    .map(http::uri::Authority::as_str)
                    .or_else(|| {
                        req.headers()
                            .get(header::HOST)
                            .and_then(|h| h.to_str().ok())
                    });
                browser.check_logout_origin(req.headers(), authority)?;
                let (resp, note) = Box::pin(browser.logout(req.headers())).await?;
                facts.rule = Some(Arc::from(format!("gateway:logout ({note})")));
                return Ok(resp);
            }
        }

        // 5. Bearer token, if the request carries one and issuers are
        //    configured. A bad token is a 401, whatever the route.
        let mut verified_token = None;
        if let Some(auth) = &snap.bearer {
            let mut values = req.headers().get_all(header::AUTHORIZATION).iter();
            let first = values.next();
            if first.is_some() && values.next().is_some() {
                shared
                    .metrics
                    .bearer_token_refused("duplicate_authorization");
                return Err(Refusal::unauthorized(
                    "duplicate_authorization",
                    CHALLENGE_INVALID_REQUEST,
                    "more than one authorization header",
                ));
            }
            match first.and_then(bearer_token) {
                None => {}
                Some(Err(why)) => {
                    shared.metrics.bearer_token_refused("malformed");
                    return Err(Refusal::unauthorized(
                        "invalid_token",
                        CHALLENGE_INVALID_TOKEN,
                        format!("malformed: {why}"),
                    ));
                }
                Some(Ok(token)) => {
                    let now = facts.now.as_second();
                    match auth
                        .authenticate(token, conn.principal.cert.as_ref(), now)
                        .await
                    {
                        Ok((identity, verified, cached)) => {
                            shared.metrics.bearer_token_accepted(cached);
                            facts.principal = Some(Arc::new(Principal {
                                cert: conn.principal.cert.clone(),
                                token: Some(identity),
                            }));
                            verified_token = Some(verified);
                        }
                        Err(r) => {
                            shared.metrics.bearer_token_refused(r.code);
                            return Err(Refusal::unauthorized(
                                "invalid_token",
                                CHALLENGE_INVALID_TOKEN,
                                format!("{}: {}", r.code, r.detail),
                            ));
                        }
                    }
                }
            }
        }
        // 5b. Browser session: read from the authoritative store on every
        //     request; a store failure is a 503.
        if verified_token.is_none() {
            if let Some(browser) = &snap.browser {
                match Box::pin(browser.lookup(req.headers(), conn.principal.cert.as_ref())).await? {
                    crate::browser::SessionLookup::None => {}
                    crate::browser::SessionLookup::Rejected(why) => facts.session_note = Some(why),
                    crate::browser::SessionLookup::Live(live) => {
                        facts.session = Some(live.session.key);
                        facts.principal = Some(Arc::new(Principal {
                            cert: conn.principal.cert.clone(),
                            token: Some(live.identity),
                        }));
                    }
                }
            }
        }
        let principal = Arc::clone(facts.principal.as_ref().unwrap_or(&conn.principal));

        // 6. Route.
        let route_id = snap
            .routes
            .find(&host, &path, req.method())
            .ok_or_else(|| {
                Refusal::deny(
                    StatusCode::NOT_FOUND,
                    "no_route",
                    format!(
                        "no route for host `{}` {} `{path}`",
                        escape_for_log(&host),
                        req.method()
                    ),
                )
            })?;
        let route = snap.config.routes.get(route_id).ok_or_else(|| {
            Refusal::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "internal",
                "route index out of range",
            )
        })?;
        facts.route_id = Some(route_id);

        // 7. Authorize. Fail closed: anything but an explicit allow is a 403;
        //    a request with no credential at all, where tokens are accepted,
        //    gets the 401 Bearer challenge instead.
        let decision = authorize(
            &snap.policy.policy,
            &AuthzInput {
                principal: &principal,
                route: route_id,
                route_name: &route.name,
                method: req.method().as_str(),
                path: &path,
                source_ip: conn.peer.ip(),
                now: facts.now,
            },
        );
        let permit = match decision {
            Ok(p) => p,
            Err(d) => {
                let detail = d.explain();
                // Browsers on a login route: no user yet -> log in; a session
                // that lacks a fresh second factor -> log in again (step-up).
                if let (Some(browser), true) = (&snap.browser, route.browser_login) {
                    let html = crate::browser::wants_html(req.headers());
                    let mfa = d
                        .failed_condition()
                        .is_some_and(|f| f.condition == "when.mfa");
                    let return_to = match &query {
                        Some(q) => format!("{path}?{q}"),
                        None => path.clone(),
                    };
                    if principal.token.is_none() {
                        if html {
                            return Err(Box::pin(browser.login_redirect(
                                &return_to,
                                None,
                                "login_required",
                                detail,
                            ))
                            .await?);
                        }
                        return Err(Refusal::unauthorized("login_required", CHALLENGE, detail));
                    }
                    if let (Some(key), true, true) = (facts.session, mfa, html) {
                        return Err(Box::pin(browser.login_redirect(
                            &return_to,
                            Some(&key),
                            "step_up_required",
                            detail,
                        ))
                        .await?);
                    }
                }
                let mut r = if snap.bearer.is_some() && principal.is_anonymous() {
                    Refusal::unauthorized(d.reason_code(), CHALLENGE, detail)
                } else {
                    Refusal::deny(StatusCode::FORBIDDEN, d.reason_code(), detail)
                };
                r.rule = d.rule().map(Box::from);
                return Err(r);
            }
        };
        facts.rule = permit.decision().rule_shared();

        // 8. Body size known up front.
        if let Some(len) = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            if len > limits.max_body_bytes {
                return Err(Refusal::deny(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("content-length {len} exceeds {}", limits.max_body_bytes),
                ));
            }
        }

        // 9. Forward, unless the request may not travel further: an
        //    OPTIONS with `Max-Forwards: 0` is answered here (RFC 9110
        //    §7.6.2), one with more hops goes on with one fewer.
        if hops == Some(0) {
            return Ok(final_options_answer(route));
        }
        let mut upstream_req = build_upstream_request(
            conn,
            snap,
            &permit,
            route,
            limits.max_body_bytes,
            &principal,
            verified_token,
            req,
            &host,
            &path,
            query.as_deref(),
            facts,
        )?;
        // Written by the gateway, so past a route's `client_headers` too.
        if let Some(n) = hops {
            upstream_req
                .headers_mut()
                .insert(header::MAX_FORWARDS, HeaderValue::from(n - 1));
        }
        let client = snap.upstreams.get(permit.route()).ok_or_else(|| {
            Refusal::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "internal",
                "upstream missing",
            )
        })?;
        // A GET or HEAD body of unknown length waits for its first frame
        // (boxed: the rare case should not size every request's future).
        let forwarded = if crate::upstream::has_unsized_body(&upstream_req) {
            Box::pin(client.forward_unsized(&permit, upstream_req)).await
        } else {
            client.forward(&permit, upstream_req).await
        };
        match forwarded {
            // The gateway forwards no upgrade (it removes `Upgrade` from
            // requests): a switch of protocols nobody asked for is a
            // broken upstream, and an HTTP/2 client cannot be sent one.
            Ok(resp) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
                shared.metrics.upstream_error(
                    &route.name,
                    portcullis_telemetry::UpstreamErrorKind::Protocol,
                );
                Err(Refusal::error(
                    StatusCode::BAD_GATEWAY,
                    "upstream_error",
                    "upstream switched protocols unasked (101)",
                ))
            }
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                guard::sanitize_response_headers(&mut parts.headers);
                if let Some(browser) = &snap.browser {
                    browser.strip_set_cookies(&mut parts.headers);
                }
                facts.upstream_body = Some(StallTimeout::new(body, route.upstream.body_timeout));
                Ok(Response::from_parts(parts, Body::default()))
            }
            Err(e) => {
                if let Some(kind) = e.metric_kind() {
                    shared.metrics.upstream_error(&route.name, kind);
                }
                let (status, code) = match e {
                    UpstreamError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
                    UpstreamError::BodyTooLarge => {
                        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
                    }
                    UpstreamError::ClientBodyStalled => {
                        (StatusCode::REQUEST_TIMEOUT, "client_body_stalled")
                    }
                    UpstreamError::ClientBody(_) => (StatusCode::BAD_REQUEST, "client_body_error"),
                    UpstreamError::Connect(_) => (StatusCode::BAD_GATEWAY, "upstream_connect"),
                    _ => (StatusCode::BAD_GATEWAY, "upstream_error"),
                };
                let mut r = Refusal::error(status, code, e.to_string());
                // The client's fault, not a gateway or upstream failure.
                if matches!(
                    e,
                    UpstreamError::BodyTooLarge
                        | UpstreamError::ClientBodyStalled
                        | UpstreamError::ClientBody(_)
                ) {
                    r.is_error = false;
                }
                Err(r)
            }
        }
    }
}

/// Counts a request in the metrics: through the route's handles when a
/// route matched (made on the route's first request), else under `-`.
fn observe(
    conn: &ConnCtx,
    snap: &Snapshot,
    route: Option<RouteId>,
    decision: portcullis_telemetry::Decision,
    status: u16,
    latency: std::time::Duration,
) {
    let metrics = &conn.shared.metrics;
    let handles = route.and_then(|id| {
        let name = snap.audit.route_names.get(id)?;
        let cell = snap.route_metrics.get(id)?;
        Some(cell.get_or_init(|| metrics.route_metrics(name)))
    });
    match handles {
        Some(h) => h.observe(metrics, decision, status, latency),
        None => metrics.observe_request("-", decision, status, latency),
    }
}

/// The gateway's answer, as the final recipient, to an allowed OPTIONS
/// that may not be forwarded: 200, no body, and the route's methods in
/// `Allow` when the route lists them (a route open to every method says
/// nothing about what its upstream implements).
fn final_options_answer(route: &portcullis_config::Route) -> Response<Body> {
    let mut r = Response::new(crate::response::full(bytes::Bytes::new()));
    let h = r.headers_mut();
    if !route.methods.is_empty() {
        let allow = route
            .methods
            .iter()
            .map(http::Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        insert(h, header::ALLOW, &allow);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// How many headers [`build_upstream_request`] adds: `host`, the three
/// `x-forwarded-*`, `via`, the request id and the identity assertion.
const GATEWAY_HEADERS: usize = 7;

#[allow(clippy::too_many_arguments)]
fn build_upstream_request(
    conn: &ConnCtx,
    snap: &Snapshot,
    permit: &Permit,
    route: &portcullis_config::Route,
    max_body_bytes: u64,
    principal: &Principal,
    verified_token: Option<Arc<portcullis_token::VerifiedToken>>,
    req: Request<Incoming>,
    host: &str,
    path: &str,
    query: Option<&str>,
    facts: &Facts,
) -> Result<Request<Body>, Refusal> {
    let (parts, body) = req.into_parts();
    let original_host = parts
        .headers
        .get(header::HOST)
        .cloned()
        .or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        })
        .or_else(|| HeaderValue::from_str(host).ok());

    // Origin form: the judged path and the query. The connection is the
    // route's upstream; HTTP/2 adds its scheme and authority.
    let mut target = String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
    target.push_str(path);
    if let Some(q) = query {
        target.push('?');
        target.push_str(q);
    }
    let uri = http::uri::PathAndQuery::from_maybe_shared(target)
        .ok()
        .map(http::Uri::from)
        .ok_or_else(|| {
            Refusal::error(
                StatusCode::BAD_GATEWAY,
                "internal",
                "cannot build the upstream uri",
            )
        })?;

    let mut headers = parts.headers;
    // `te: trailers` (gRPC clients send it to learn whether trailers get
    // through) is hop-by-hop: removed below, and said again to an
    // HTTP/2 upstream by the upstream client.
    let te_trailers = headers.get_all(header::TE).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"))
    });
    // Client hop-by-hop and identity headers go first; the gateway's own
    // headers are added after, so no client header can remove them.
    guard::sanitize_request_headers(&mut headers);
    // A route's `client_headers`: every other client header goes, except
    // `content-length` (the body's framing) and, on a route that passes
    // the bearer token on, `authorization` (kept below only if it is the
    // token the gateway verified).
    if let Some(allowed) = &route.client_headers {
        crate::body::keep_listed(&mut headers, allowed, |n| {
            *n == header::CONTENT_LENGTH || (route.pass_bearer_token && *n == header::AUTHORIZATION)
        });
    }
    // Room for the gateway's headers below, in one growth of the map
    // rather than one per insert. (Failure is impossible within the
    // header count limit; the inserts would grow the map themselves.)
    let _ = headers.try_reserve(GATEWAY_HEADERS);
    // A verified bearer token has done its job: upstreams learn who from
    // the identity assertion, unless the route asks for the token itself.
    // Such a route gets only a token the gateway verified: any other
    // `Authorization` (another scheme, or none verified) is removed.
    if verified_token.is_some() != route.pass_bearer_token {
        headers.remove(header::AUTHORIZATION);
    }
    match &snap.browser {
        Some(browser) => browser.strip_cookies(&mut headers),
        None => crate::browser::join_cookies(&mut headers),
    }
    headers.remove(header::HOST);
    if let Some(h) = original_host {
        headers.insert(header::HOST, h);
    }
    headers.insert(names::X_FORWARDED_FOR, conn.strings.peer_ip.clone());
    headers.insert(names::X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    insert(&mut headers, names::X_FORWARDED_HOST, host);
    // The client's `Via` entries stay; the gateway's comes last.
    if let Some(via) = &snap.via {
        headers.append(header::VIA, via.for_version(parts.version).clone());
    }
    if let Some(v) = &facts.request_id_header {
        headers.insert(names::REQUEST_ID, v.clone());
    }

    let now = facts.now.as_second();
    // With `scope: connection`, a request whose identity is the
    // connection's, or the connection's with the same verified bearer
    // token as before, reuses the connection's assertion for this route
    // and these roles. Browser sessions (the only other identity a
    // request can add) always get their own.
    let reusable = facts.session.is_none()
        && snap.config.assertion.scope == portcullis_config::AssertionScope::Connection;
    let cached = if reusable {
        conn.assertion.get(
            &route.name,
            permit.decision().roles(),
            verified_token.as_ref(),
            now,
        )
    } else {
        None
    };
    let value = match cached {
        Some(v) => v,
        None => {
            let roles: Vec<String> = permit.decision().roles().map(str::to_owned).collect();
            let display;
            let sub = if principal.token.is_some() {
                display = principal.display_name();
                &*display
            } else {
                &*conn.strings.principal
            };
            let token = principal.token.as_deref();
            let fresh_jti;
            let (rid, jti) = if reusable {
                fresh_jti = portcullis_telemetry::new_request_id();
                (None, fresh_jti.as_str())
            } else {
                (Some(&*facts.request_id), &*facts.request_id)
            };
            let claims = AssertionClaims {
                sub,
                token_iss: token.map(|t| t.issuer.as_str()),
                token_sub: token.and_then(|t| t.subject.as_deref()),
                spiffe_id: principal.spiffe_id().map(|s| s.as_str()),
                cert_thumbprint: conn.strings.thumbprint.as_deref(),
                roles: &roles,
                rid,
                route: &route.name,
            };
            let signed = conn.shared.signer.sign(&claims, jti, now).map_err(|e| {
                Refusal::error(StatusCode::SERVICE_UNAVAILABLE, "assertion", e.to_string())
            })?;
            // base64url and dots only: always a valid header value.
            let value = HeaderValue::from_str(&signed).map_err(|_| {
                Refusal::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "assertion",
                    "assertion is not a header value",
                )
            })?;
            if reusable {
                conn.assertion.put(
                    &route.name,
                    roles,
                    verified_token.clone(),
                    now,
                    conn.shared.signer.ttl(),
                    value.clone(),
                );
            }
            value
        }
    };
    headers.insert(names::IDENTITY, value);

    let body = StallTimeout::new(
        Limited::new(
            crate::body::from_client(body, route.client_headers.clone()),
            usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
        ),
        route.upstream.body_timeout,
    )
    .boxed();
    let mut out = Request::new(body);
    *out.method_mut() = parts.method;
    *out.uri_mut() = uri;
    *out.version_mut() = http::Version::HTTP_11;
    *out.headers_mut() = headers;
    if te_trailers {
        out.extensions_mut().insert(crate::upstream::TeTrailers);
    }
    Ok(out)
}

fn insert(headers: &mut http::HeaderMap, name: http::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod future_size {
    /// Every request's future is allocated whole: rare steps (browser
    /// logins, a GET body of unknown length) are boxed so that they do
    /// not size it (3 240 bytes with rustc 1.95).
    #[test]
    fn the_request_future_stays_within_its_budget() {
        fn future_size<A, F: std::future::Future>(_: impl Fn(A) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        type Args = (
            std::sync::Arc<super::ConnCtx>,
            http::Request<hyper::body::Incoming>,
        );
        let size = future_size(|(c, r): Args| super::serve(c, r, None));
        assert!(size <= 3584, "request future is {size} bytes");
    }
}
