//! TLS listeners: accept, bound the connection count, complete the mTLS
//! handshake within a timeout, turn the verified peer into a principal,
//! and serve HTTP/1.1 or HTTP/2 as negotiated by ALPN.
//!
//! HTTP/1 connections are read through a [`FramingTap`]: hyper's parser
//! hides a `Content-Length` next to `Transfer-Encoding` and folds equal
//! duplicate `Content-Length` fields, so the tap judges the framing of
//! every request head on the raw bytes, before hyper parses them, and the
//! service refuses a request whose verdict is not clean.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderMap, Response};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use portcullis_http_guard::{FramingError, Http1FramingScanner, VerdictQueue};
use portcullis_identity::Principal;
use portcullis_telemetry::{AuditDecision, AuditRecord};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::drain::DrainWatch;
use crate::service::{handle, ConnCtx};
use crate::Shared;

/// Maximum concurrent HTTP/2 streams per connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 256;
/// HTTP/2 connections are pinged after this much silence, so a peer that
/// vanished without closing does not hold a connection slot forever.
pub const H2_KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);
/// A ping not answered within this closes the HTTP/2 connection.
pub const H2_KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

pub(crate) async fn serve(
    shared: Arc<Shared>,
    name: String,
    tcp: TcpListener,
    drain: DrainWatch,
    mut shutdown: watch::Receiver<bool>,
) {
    let max_conns = shared
        .state
        .load()
        .listener(&name)
        .map_or(1, |l| l.limits.max_connections);
    let slots = Arc::new(Semaphore::new(max_conns));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            a = tcp.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and similar: back off briefly.
                tracing::warn!(listener = %name, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            shared
                .metrics
                .tls_handshake_failure(&name, "connection_limit");
            tracing::warn!(listener = %name, %peer, "connection limit reached; connection closed");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let name = name.clone();
        let drain = drain.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _conn_metric = shared.metrics.connection_opened(&name);
            connection(shared.clone(), name.clone(), stream, peer, drain).await;
        });
    }
}

async fn connection(
    shared: Arc<Shared>,
    name: String,
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    drain: DrainWatch,
) {
    let snap = shared.state.load_full();
    let (Some(acceptor), Some(listener)) = (snap.tls.get(&name).cloned(), snap.listener(&name))
    else {
        return;
    };
    let handshake_timeout = listener.tls_handshake_timeout;
    let header_read_timeout = listener.header_read_timeout;
    let idle_timeout = listener.idle_timeout;
    let limits = listener.limits;
    let trust_domains = listener.tls.client_auth.spiffe_trust_domains.clone();
    drop(snap);

    let settings = ConnSettings {
        handshake_timeout,
        header_read_timeout,
        idle_timeout,
        limits,
    };
    // Boxed, like the serving future it returns: the connection task then
    // keeps only a pointer for the life of the connection, not room for
    // the handshake's state and the TLS stream next to the serving state.
    let accepted = Box::pin(accept(
        &shared,
        &name,
        peer,
        acceptor,
        stream,
        &trust_domains,
        settings,
        drain,
    ));
    let Some(serving) = accepted.await else {
        return;
    };
    if let Err(e) = serving.await {
        Box::pin(connection_error(&shared, &name, peer, &e)).await;
    }
}

/// Completes the TLS handshake within its timeout and starts serving; a
/// refused handshake is counted and audited here.
#[allow(clippy::too_many_arguments)]
async fn accept(
    shared: &Arc<Shared>,
    name: &str,
    peer: std::net::SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    trust_domains: &[portcullis_identity::TrustDomain],
    settings: ConnSettings,
    drain: DrainWatch,
) -> Option<Serving> {
    let (reason, detail) =
        match tokio::time::timeout(settings.handshake_timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                match start_serving(shared, name, peer, tls, trust_domains, settings, drain) {
                    Ok(serving) => return Some(serving),
                    Err(refused) => refused,
                }
            }
            Ok(Err(e)) => (
                portcullis_authn::classify_handshake_error(&e),
                e.to_string(),
            ),
            Err(_) => (
                "timeout",
                "tls handshake did not complete in time".to_owned(),
            ),
        };
    handshake_refused(shared, name, peer, reason, &detail).await;
    None
}

/// A connection's HTTP service, running until the connection ends.
type Serving = Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>>;

/// The listener settings a connection is served with.
struct ConnSettings {
    handshake_timeout: Duration,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    limits: portcullis_config::Limits,
}

/// Turns the verified peer into the connection's principal and starts
/// HTTP/1 or HTTP/2 as negotiated; the refusal reason and detail if the
/// peer's identity cannot be read.
fn start_serving(
    shared: &Arc<Shared>,
    name: &str,
    peer: std::net::SocketAddr,
    tls: tokio_rustls::server::TlsStream<TcpStream>,
    trust_domains: &[portcullis_identity::TrustDomain],
    settings: ConnSettings,
    mut drain: DrainWatch,
) -> Result<Serving, (&'static str, String)> {
    let ConnSettings {
        handshake_timeout: _,
        header_read_timeout,
        idle_timeout,
        limits,
    } = settings;
    let (_, session) = tls.get_ref();
    let sni = session.server_name().map(str::to_owned);
    let h2 = session.alpn_protocol() == Some(b"h2");
    let principal = match session.peer_certificates() {
        None | Some([]) => Principal::anonymous(),
        Some(chain) => match portcullis_authn::identity_from_chain(chain, trust_domains) {
            Ok(id) => Principal::from_cert(id),
            // The verifier enforces the same rules during the handshake;
            // reaching this is a defect, so refuse.
            Err(e) => return Err((e.reason_code(), e.to_string())),
        },
    };
    let framing = (!h2).then(|| Arc::new(FramingVerdicts::default()));
    let ctx = Arc::new(ConnCtx {
        shared: shared.clone(),
        listener: name.to_owned(),
        peer,
        sni,
        strings: crate::service::ConnStrings::new(&principal, peer),
        principal: Arc::new(principal),
        framing: framing.clone(),
        assertion: crate::assertion::ConnAssertion::default(),
    });
    Ok(match framing {
        None => {
            let svc = service_fn(move |req| handle(ctx.clone(), req));
            let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            b.timer(TokioTimer::new())
                .keep_alive_interval(Some(H2_KEEPALIVE_INTERVAL))
                .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT)
                .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
                .max_header_list_size(
                    u32::try_from(limits.max_header_bytes.saturating_mul(2)).unwrap_or(u32::MAX),
                );
            let conn = b.serve_connection(TokioIo::new(tls), svc);
            Box::pin(async move {
                let mut conn = std::pin::pin!(conn);
                let mut draining = false;
                loop {
                    tokio::select! {
                        r = conn.as_mut() => break r,
                        () = drain.draining(), if !draining => {
                            draining = true;
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                }
            })
        }
        Some(verdicts) => {
            let max_buf = limits.max_header_bytes.saturating_mul(2).max(8192);
            // hyper may read past `max_buf` in one read, so the scanner
            // allows twice as much: every head hyper accepts fits.
            let scanner = Http1FramingScanner::with_max_head_bytes(max_buf.saturating_mul(2));
            let activity = Arc::new(Http1Activity::default());
            let tracked = activity.clone();
            let svc = service_fn(move |req| InFlight::track(&tracked, handle(ctx.clone(), req)));
            let io = FramingTap {
                inner: tls,
                scanner,
                verdicts,
                activity,
                unflushed: false,
                last_active: tokio::time::Instant::now(),
                release_timer: None,
                released: false,
            };
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .max_headers(limits.max_header_count.saturating_add(16))
                .max_buf_size(max_buf);
            Box::pin(serve_http1(
                shared.metrics.clone(),
                io,
                svc,
                b,
                idle_timeout,
                drain,
            ))
        }
    })
}

/// How long a keep-alive HTTP/1 connection holds hyper's buffers (an
/// 8 KiB read and an 8 KiB write buffer) after its last activity: past
/// this, they are released until the client sends again.
pub(crate) const HTTP1_IDLE_RELEASE: Duration = Duration::from_millis(100);

/// Bound on sending TLS `close_notify` when a connection ends.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

type Http1Io = FramingTap<tokio_rustls::server::TlsStream<TcpStream>>;

/// Serves an HTTP/1 connection. hyper runs only while the connection has
/// work: once it has been idle for [`HTTP1_IDLE_RELEASE`] between
/// requests, its [`FramingTap`] reports the end of the stream to hyper,
/// which finishes without closing the TLS stream; the stream then waits
/// here, without hyper's buffers, for the client's next bytes (a new hyper
/// connection serves them) or for `idle_timeout` (closed).
async fn serve_http1<S, B>(
    metrics: Arc<portcullis_telemetry::Metrics>,
    mut io: Http1Io,
    mut svc: S,
    builder: hyper::server::conn::http1::Builder,
    idle_timeout: Duration,
    mut drain: DrainWatch,
) -> Result<(), hyper::Error>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B> + Unpin,
    S::Future: Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        // rustls holds no decrypted bytes: wait for the socket.
        if io.inner.get_ref().1.wants_read() {
            let tcp = &io.inner.get_ref().0;
            let _idle = metrics.connection_idle();
            tokio::select! {
                biased;
                () = drain.draining() => break,
                r = tcp.readable() => if r.is_err() { break },
                () = tokio::time::sleep(idle_timeout) => break,
            }
        }
        if drain.is_draining() {
            break;
        }
        io.released = false;
        // Boxed: an idle connection keeps no room for hyper's state.
        let mut conn = Box::new(builder.serve_connection(TokioIo::new(io), svc));
        let mut draining = false;
        let done = loop {
            tokio::select! {
                r = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => break r,
                () = drain.draining(), if !draining => {
                    draining = true;
                    Pin::new(&mut *conn).graceful_shutdown();
                }
            }
        };
        let parts = conn.into_parts();
        io = parts.io.into_inner();
        svc = parts.service;
        done?;
        // Continue only after an idle release with nothing left unread; a
        // client that closed, `Connection: close`, or a drain end here.
        if !io.released || !parts.read_buf.is_empty() || draining {
            break;
        }
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, io.shutdown()).await;
    Ok(())
}

/// What an HTTP/1 connection's service and its [`FramingTap`] share:
/// the number of requests whose response is not yet complete.
#[derive(Debug, Default)]
struct Http1Activity {
    in_flight: AtomicUsize,
}

/// Counts a request as in flight from the service call until its response
/// body has been sent (or dropped).
struct InFlight(Arc<Http1Activity>);

impl InFlight {
    fn track<F>(activity: &Arc<Http1Activity>, fut: F) -> Tracked<F> {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        Tracked {
            fut,
            guard: Some(InFlight(activity.clone())),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The service future of an HTTP/1 request; its response body carries the
/// request's [`InFlight`] guard.
struct Tracked<F> {
    fut: F,
    guard: Option<InFlight>,
}

impl<F> Future for Tracked<F>
where
    F: Future<Output = Result<Response<crate::upstream::Body>, Infallible>> + Unpin,
{
    type Output = Result<Response<TrackedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Poll::Ready(Ok(resp)) = Pin::new(&mut this.fut).poll(cx) else {
            return Poll::Pending;
        };
        let guard = this.guard.take();
        Poll::Ready(Ok(resp.map(|inner| TrackedBody {
            inner,
            _guard: guard,
        })))
    }
}

/// A response body that holds its request's [`InFlight`] guard.
struct TrackedBody {
    inner: crate::upstream::Body,
    _guard: Option<InFlight>,
}

impl hyper::body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = crate::upstream::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The framing verdicts of one HTTP/1 connection's request heads, in
/// order: pushed by its [`FramingTap`], taken by the service as hyper
/// hands over each request.
#[derive(Debug, Default)]
pub(crate) struct FramingVerdicts(Mutex<VerdictQueue>);

impl FramingVerdicts {
    fn lock(&self) -> MutexGuard<'_, VerdictQueue> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The verdict of the request hyper just handed over, checked against
    /// its parsed `headers`. Fails closed (see [`VerdictQueue::next_for`]).
    pub(crate) fn next_for(&self, headers: &HeaderMap) -> Result<(), FramingError> {
        self.lock().next_for(headers)
    }
}

/// An HTTP/1 connection's stream that feeds every byte hyper reads into
/// the connection's [`Http1FramingScanner`] on the way, and queues the
/// verdicts. hyper reads only through it, so the scanner sees exactly the
/// bytes hyper parses, and has judged a request head before hyper hands
/// the request to the service.
///
/// Cost per read: head bytes are looked at twice (end of head, then the
/// field lines), chunk-size lines once, body data not at all; at most one
/// uncontended lock, and only if the read completes a head; no allocation
/// beyond the queue's first, unless a head spans reads.
struct FramingTap<S> {
    inner: S,
    scanner: Http1FramingScanner,
    verdicts: Arc<FramingVerdicts>,
    activity: Arc<Http1Activity>,
    /// Written since the last completed flush.
    unflushed: bool,
    /// Last bytes read or response flushed.
    last_active: tokio::time::Instant,
    /// Wakes the connection [`HTTP1_IDLE_RELEASE`] after `last_active`;
    /// created on first use and kept.
    release_timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The end of the stream was reported to hyper for an idle release.
    released: bool,
}

impl<S> FramingTap<S> {
    /// Between requests: no response under way or unflushed, and the bytes
    /// read end at the end of a message, so hyper holds no partial input.
    fn is_idle(&self) -> bool {
        !self.unflushed
            && self.activity.in_flight.load(Ordering::Relaxed) == 0
            && self.scanner.is_between_messages()
    }

    /// Whether the idle period has lasted [`HTTP1_IDLE_RELEASE`]; if not,
    /// makes sure the task is woken when it will have.
    fn poll_idle_release(&mut self, cx: &mut Context<'_>) -> bool {
        let due = self.last_active + HTTP1_IDLE_RELEASE;
        if tokio::time::Instant::now() >= due {
            return true;
        }
        let timer = self
            .release_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if timer.deadline() != due && (timer.is_elapsed() || timer.deadline() > due) {
            timer.as_mut().reset(due);
        }
        // An earlier deadline still pending fires first and re-arms then.
        let _ = timer.as_mut().poll(cx);
        false
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FramingTap<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.released {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        match polled {
            Poll::Ready(Ok(())) => {
                if let Some(read) = buf.filled().get(before..) {
                    if !read.is_empty() {
                        this.last_active = tokio::time::Instant::now();
                    }
                    let mut queue = None;
                    this.scanner.feed(read, |verdict| {
                        queue
                            .get_or_insert_with(|| this.verdicts.lock())
                            .push(verdict);
                    });
                }
            }
            Poll::Pending if this.is_idle() && this.poll_idle_release(cx) => {
                // The end of the stream, as far as hyper knows: it ends
                // this connection cleanly, and `serve_http1` keeps the
                // TLS stream for the next request.
                this.released = true;
                return Poll::Ready(Ok(()));
            }
            _ => {}
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FramingTap<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.unflushed = true;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.unflushed = true;
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        if this.unflushed && matches!(flushed, Poll::Ready(Ok(()))) {
            this.unflushed = false;
            this.last_active = tokio::time::Instant::now();
            // hyper reads again only when the client sends; the timer
            // wakes the connection to release its buffers if it does not.
            if this.is_idle() {
                this.poll_idle_release(cx);
            }
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

async fn handshake_refused(
    shared: &Shared,
    listener: &str,
    peer: std::net::SocketAddr,
    reason: &'static str,
    detail: &str,
) {
    shared.metrics.tls_handshake_failure(listener, reason);
    tracing::info!(listener, %peer, reason, detail, "tls handshake refused");
    if reason == "eof" {
        return; // a port probe or a client that gave up: no request was made
    }
    audit_connection_event(shared, peer, reason, format!("tls: {reason}: {detail}")).await;
}

/// Errors hyper reports for a connection: malformed or oversized requests
/// that it answered itself (400/431), and timeouts.
async fn connection_error(
    shared: &Shared,
    listener: &str,
    peer: std::net::SocketAddr,
    e: &hyper::Error,
) {
    let reason = if e.is_parse_too_large() {
        "header_too_large"
    } else if e.is_parse() || e.is_parse_status() {
        "malformed_request"
    } else if e.is_timeout() {
        "header_read_timeout"
    } else {
        tracing::debug!(listener, %peer, error = %e, "connection ended with an error");
        return;
    };
    shared.metrics.bad_request(reason);
    tracing::info!(listener, %peer, reason, error = %e, "malformed request refused");
    audit_connection_event(shared, peer, reason, format!("{reason}: {e}")).await;
}

async fn audit_connection_event(
    shared: &Shared,
    peer: std::net::SocketAddr,
    _reason: &'static str,
    detail: String,
) {
    let snap = shared.state.load();
    let rec = AuditRecord {
        time: portcullis_telemetry::audit_time_now(),
        request_id: portcullis_telemetry::new_request_id(),
        trace_id: None,
        principal: "anonymous".to_owned(),
        spiffe_id: None,
        cert_thumbprint: None,
        token_issuer: None,
        token_subject: None,
        bundle_revision: None,
        bundle_digest: None,
        route: None,
        method: "-".to_owned(),
        path: "-".to_owned(),
        source: peer.to_string(),
        decision: AuditDecision::Deny,
        status: 0,
        rule: None,
        reason: Some(detail),
        policy_revision: snap.policy.policy.revision().to_owned(),
        policy_sha256: snap.policy.sha256.clone(),
        latency_us: 0,
    };
    shared.audit.record_deny(rec).await;
}

#[cfg(test)]
mod tests;
