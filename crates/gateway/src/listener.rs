//! TLS listeners: accept, bound the connection count, complete the mTLS
//! handshake within a timeout, turn the verified peer into a principal,
//! and serve HTTP/1.1 or HTTP/2 as negotiated by ALPN.
//!
//! HTTP/1 connections are read through a [`FramingTap`]: hyper's parser
//! hides a `Content-Length` next to `Transfer-Encoding` and folds equal
//! duplicate `Content-Length` fields, so the tap judges the framing of
//! every request head on the raw bytes, before hyper parses them, and the
//! service refuses a request whose verdict is not clean.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use http::HeaderMap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use portcullis_http_guard::{FramingError, Http1FramingScanner, VerdictQueue};
use portcullis_identity::Principal;
use portcullis_telemetry::{AuditDecision, AuditRecord};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

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
    graceful: Arc<GracefulShutdown>,
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
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let _conn_metric = shared.metrics.connection_opened(&name);
            connection(shared.clone(), name.clone(), stream, peer, watcher).await;
        });
    }
}

async fn connection(
    shared: Arc<Shared>,
    name: String,
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let snap = shared.state.load_full();
    let (Some(acceptor), Some(listener)) = (snap.tls.get(&name).cloned(), snap.listener(&name))
    else {
        return;
    };
    let handshake_timeout = listener.tls_handshake_timeout;
    let header_read_timeout = listener.header_read_timeout;
    let limits = listener.limits;
    let trust_domains = listener.tls.client_auth.spiffe_trust_domains.clone();
    drop(snap);

    let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            let reason = portcullis_authn::classify_handshake_error(&e);
            handshake_refused(&shared, &name, peer, reason, &e.to_string()).await;
            return;
        }
        Err(_) => {
            handshake_refused(
                &shared,
                &name,
                peer,
                "timeout",
                "tls handshake did not complete in time",
            )
            .await;
            return;
        }
    };
    let (_, session) = tls.get_ref();
    let sni = session.server_name().map(str::to_owned);
    let h2 = session.alpn_protocol() == Some(b"h2");
    let principal = match session.peer_certificates() {
        None | Some([]) => Principal::anonymous(),
        Some(chain) => match portcullis_authn::identity_from_chain(chain, &trust_domains) {
            Ok(id) => Principal::from_cert(id),
            Err(e) => {
                // The verifier enforces the same rules during the
                // handshake; reaching this is a defect, so refuse.
                handshake_refused(&shared, &name, peer, e.reason_code(), &e.to_string()).await;
                return;
            }
        },
    };
    let framing = (!h2).then(|| Arc::new(FramingVerdicts::default()));
    let ctx = Arc::new(ConnCtx {
        shared: shared.clone(),
        listener: name.clone(),
        peer,
        sni,
        strings: crate::service::ConnStrings::new(&principal, peer),
        principal: Arc::new(principal),
        framing: framing.clone(),
        assertion: crate::assertion::ConnAssertion::default(),
    });
    let svc = service_fn(move |req| handle(ctx.clone(), req));
    let result = match framing {
        None => {
            let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            b.timer(TokioTimer::new())
                .keep_alive_interval(Some(H2_KEEPALIVE_INTERVAL))
                .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT)
                .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
                .max_header_list_size(
                    u32::try_from(limits.max_header_bytes.saturating_mul(2)).unwrap_or(u32::MAX),
                );
            // Boxed: the connection task then holds a pointer, not the
            // larger of the HTTP/1 and HTTP/2 connection states.
            Box::pin(watcher.watch(b.serve_connection(TokioIo::new(tls), svc))).await
        }
        Some(verdicts) => {
            let max_buf = limits.max_header_bytes.saturating_mul(2).max(8192);
            // hyper may read past `max_buf` in one read, so the scanner
            // allows twice as much: every head hyper accepts fits.
            let scanner = Http1FramingScanner::with_max_head_bytes(max_buf.saturating_mul(2));
            let io = TokioIo::new(FramingTap {
                inner: tls,
                scanner,
                verdicts,
            });
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .max_headers(limits.max_header_count.saturating_add(16))
                .max_buf_size(max_buf);
            Box::pin(watcher.watch(b.serve_connection(io, svc))).await
        }
    };
    if let Err(e) = result {
        connection_error(&shared, &name, peer, &e).await;
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
}

impl<S: AsyncRead + Unpin> AsyncRead for FramingTap<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            if let Some(read) = buf.filled().get(before..) {
                let mut queue = None;
                this.scanner.feed(read, |verdict| {
                    queue
                        .get_or_insert_with(|| this.verdicts.lock())
                        .push(verdict);
                });
            }
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
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
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
