//! The loopback redirect receiver (RFC 8252 7.3): an HTTP/1.1 server on
//! 127.0.0.1 only, on an ephemeral port, that decides the login on the
//! first request to `/callback` carrying the login's `state`, and then
//! stops. Requests with another `state` (any local page that finds the
//! port can send one) are answered 400 and ignored, up to
//! [`MAX_FOREIGN_CALLBACKS`].

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::oauth::{callback_state_matches, check_callback, CallbackExpect};
use super::LoginError;
use crate::command::token_store::Secret;

/// Most connections served at once (a browser opens a few; anything
/// beyond is not a browser).
pub(crate) const MAX_CONNECTIONS: usize = 16;
/// Bound on one connection, so an idle one cannot hold a slot forever.
pub(crate) const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request head read (the callback URL carries a code and state).
pub(crate) const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Callbacks without this login's `state` that are answered 400 and
/// ignored; the next one ends the login with "`state` does not match". A
/// page that knows the port cannot end the login with one request, and a
/// login that keeps receiving forged callbacks still ends.
pub(crate) const MAX_FOREIGN_CALLBACKS: usize = 8;
/// The path of the redirect URI.
pub(crate) const CALLBACK_PATH: &str = "/callback";

/// A bound loopback listener and its redirect URI.
pub(crate) struct Loopback {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Loopback {
    /// Binds 127.0.0.1 on an ephemeral port (never all interfaces).
    pub(crate) async fn bind() -> Result<Self, LoginError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(LoginError::Listen)?;
        let addr = listener.local_addr().map_err(LoginError::Listen)?;
        Ok(Self { listener, addr })
    }

    pub(crate) fn redirect_uri(&self) -> String {
        format!("http://{}{CALLBACK_PATH}", self.addr)
    }

    /// Serves until the first request to `/callback` decides the login
    /// (its answer is written before this returns) or `timeout` passes.
    pub(crate) async fn wait(
        self,
        expect: CallbackExpect,
        timeout: Duration,
    ) -> Result<Secret, LoginError> {
        let shared = Arc::new(Shared {
            expect,
            host: self.addr.to_string(),
            decided: AtomicBool::new(false),
            foreign: AtomicUsize::new(0),
        });
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Secret, LoginError>>(1);
        let mut tasks = tokio::task::JoinSet::new();
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                outcome = rx.recv() => {
                    tasks.abort_all();
                    return outcome.unwrap_or(Err(LoginError::LoginTimeout(timeout)));
                }
                () = &mut deadline => {
                    tasks.abort_all();
                    return Err(LoginError::LoginTimeout(timeout));
                }
                accepted = self.listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        continue; // dropped: too many connections
                    };
                    let shared = shared.clone();
                    let tx = tx.clone();
                    tasks.spawn(async move {
                        let _permit = permit;
                        if let Some(outcome) = serve(stream, shared).await {
                            let _ = tx.send(outcome).await;
                        }
                    });
                }
            }
        }
    }
}

pub(super) struct Shared {
    pub(super) expect: CallbackExpect,
    /// The only Host accepted (`127.0.0.1:port`): a page on another origin
    /// rebound to 127.0.0.1 by DNS sends its own name.
    pub(super) host: String,
    /// Set by the request to `/callback` that decides.
    pub(super) decided: AtomicBool,
    /// Callbacks ignored because their `state` was not this login's.
    pub(super) foreign: AtomicUsize,
}

pub(super) type Outcome = Result<Secret, LoginError>;

/// Serves one connection (one request: no keep-alive, so the answer is
/// flushed when this returns); returns the outcome if it decided.
async fn serve(stream: tokio::net::TcpStream, shared: Arc<Shared>) -> Option<Outcome> {
    let slot: Arc<Mutex<Option<Outcome>>> = Arc::default();
    let svc_slot = slot.clone();
    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let (status, message, outcome) = handle(&req, &shared);
        let response = page(status, &message);
        if let Some(outcome) = outcome {
            if let Ok(mut s) = svc_slot.lock() {
                *s = Some(outcome);
            }
        }
        async move { Ok::<_, std::convert::Infallible>(response) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .max_buf_size(MAX_REQUEST_BYTES)
        .serve_connection(TokioIo::new(stream), svc);
    let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
    slot.lock().ok().and_then(|mut s| s.take())
}

/// Decides one request: status, message for the page, and the login's
/// outcome if this request decided it.
pub(super) fn handle<B>(req: &http::Request<B>, shared: &Shared) -> (u16, String, Option<Outcome>) {
    if req.uri().path() != CALLBACK_PATH {
        return (404, "Not found.".to_owned(), None);
    }
    if req.method() != http::Method::GET {
        return (405, "Method not allowed.".to_owned(), None);
    }
    let host_ok = req
        .headers()
        .get(http::header::HOST)
        .is_some_and(|h| h.as_bytes() == shared.host.as_bytes());
    if !host_ok {
        return (400, "Unexpected Host.".to_owned(), None);
    }
    if shared.decided.load(Ordering::SeqCst) {
        return (400, "This login has already been decided.".to_owned(), None);
    }
    let query = req.uri().query().unwrap_or("");
    if !callback_state_matches(query, &shared.expect)
        && shared.foreign.fetch_add(1, Ordering::SeqCst) < MAX_FOREIGN_CALLBACKS
    {
        return (
            400,
            "This request is not from this login; the login is still waiting.".to_owned(),
            None,
        );
    }
    if shared.decided.swap(true, Ordering::SeqCst) {
        return (400, "This login has already been decided.".to_owned(), None);
    }
    let outcome = check_callback(query, &shared.expect);
    match &outcome {
        Ok(_) => (
            200,
            "Login complete. You can close this window and return to the terminal.".to_owned(),
            Some(outcome),
        ),
        Err(e) => (400, format!("Login failed: {e}."), Some(outcome)),
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(status: u16, message: &str) -> http::Response<Full<Bytes>> {
    let body = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Portcullis login</title></head><body><p>{}</p></body></html>",
        html_escape(message)
    );
    let mut resp = http::Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    h.insert(
        http::header::REFERRER_POLICY,
        http::HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        http::HeaderValue::from_static("default-src 'none'"),
    );
    resp
}
