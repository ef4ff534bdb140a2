//! HTTP/2 connections: hyper's server, over a tap that reports the
//! streams the HTTP/2 layer refuses on its own.
//!
//! A malformed request (an uppercase or connection-specific field, a bad
//! pseudo-header, a body that disagrees with its `content-length`) or a
//! stream that breaks flow control is reset by the HTTP/2 server, and a
//! header list over twice the
//! listener's `max_header_bytes` is answered 431 by it, before any
//! request reaches the gateway's pipeline. [`RefusalTap`] reads the
//! frames the server writes ([`H2RefusalScanner`]) and gives each such
//! stream what a refused request gets: a `bad_requests_total` count, a
//! log line and an audit record. A connection with more than
//! [`MAX_REFUSED_STREAMS`] of them is closed at once.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use portcullis_http_guard::{H2RefusalScanner, StreamRefusal};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::{activity, ConnError, ConnSettings, Serving, Slow, H2_KEEPALIVE_INTERVAL};

/// Streams the protocol layer may refuse on one connection before the
/// gateway closes it: a client that keeps sending what is refused (a
/// bare 431 costs it a few bytes of HPACK each) is served no further,
/// and its refusals stop costing an audit record each.
pub(super) const MAX_REFUSED_STREAMS: u32 = 100;
use super::{H2_KEEPALIVE_TIMEOUT, MAX_CONCURRENT_STREAMS};
use crate::drain::DrainWatch;
use crate::service::{handle, ConnCtx};

/// Serves an HTTP/2 connection until it ends; a drain, and `timeouts.idle`
/// without a stream, send GOAWAY and let open streams finish.
pub(super) fn serve(
    tls: tokio_rustls::server::TlsStream<TcpStream>,
    ctx: Arc<ConnCtx>,
    settings: &ConnSettings,
    mut drain: DrainWatch,
) -> Serving {
    let limits = &settings.limits;
    let activity = Arc::new(activity::Activity::watched());
    let mut idle = activity::IdleWatch::new(activity.clone(), settings.idle_timeout);
    let conn_ctx = ctx.clone();
    let too_many = Arc::new(tokio::sync::Notify::new());
    let io = RefusalTap::new(tls, ctx.clone(), too_many.clone());
    let svc = service_fn(move |req| activity::InFlight::track(&activity, handle(ctx.clone(), req)));
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .keep_alive_interval(Some(H2_KEEPALIVE_INTERVAL))
        .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(
            u32::try_from(limits.max_header_bytes.saturating_mul(2)).unwrap_or(u32::MAX),
        );
    // Pinned in its own box: pinning it inside the block would keep a
    // second, moved-from slot of its size (2.7 KiB) in the block's future.
    let mut conn = Box::pin(b.serve_connection(TokioIo::new(io), svc));
    Box::pin(async move {
        let mut closing = false;
        loop {
            tokio::select! {
                r = conn.as_mut() => break r.map_err(ConnError::from),
                // Too many refused streams (audited by the tap): the
                // connection ends now, its streams with it.
                () = too_many.notified() => break Ok(()),
                () = drain.draining(), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                // Its certificate is no longer accepted: GOAWAY, so the
                // client's next handshake gets the precise alert.
                () = conn_ctx.trust.refused(), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                // Pings from the client do not count: only streams do.
                quiet = idle.next(), if !closing => match quiet {
                    activity::Quiet::Idle => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    // Its streams would wait for good: no GOAWAY.
                    activity::Quiet::Stalled => break Err(ConnError::Slow(Slow::Send)),
                },
            }
        }
    })
}

/// The connection's stream, with the server's writes read by an
/// [`H2RefusalScanner`]; reads pass through untouched.
struct RefusalTap<S> {
    inner: S,
    scanner: H2RefusalScanner,
    ctx: Arc<ConnCtx>,
    /// Streams refused so far; past [`MAX_REFUSED_STREAMS`] the
    /// connection reads as ended and takes no more writes, and `too_many`
    /// tells the connection's task to end it.
    refused: u32,
    too_many: Arc<tokio::sync::Notify>,
}

impl<S> RefusalTap<S> {
    fn new(inner: S, ctx: Arc<ConnCtx>, too_many: Arc<tokio::sync::Notify>) -> Self {
        Self {
            inner,
            scanner: H2RefusalScanner::new(),
            ctx,
            refused: 0,
            too_many,
        }
    }

    fn closed(&self) -> bool {
        self.refused > MAX_REFUSED_STREAMS
    }

    /// Reads the `n` bytes of `bufs` the stream took.
    fn scan(&mut self, bufs: &[io::IoSlice<'_>], mut n: usize) {
        let ctx = &self.ctx;
        let refused = &mut self.refused;
        let too_many = &self.too_many;
        let mut found = |r: StreamRefusal| {
            *refused = refused.saturating_add(1);
            if *refused <= MAX_REFUSED_STREAMS {
                refused_stream(ctx, r);
            } else if *refused == MAX_REFUSED_STREAMS + 1 {
                too_many_refused(ctx);
                // A permit if the task is not waiting yet: never lost.
                too_many.notify_one();
            }
        };
        for buf in bufs {
            if n == 0 {
                break;
            }
            let take = n.min(buf.len());
            if let Some(written) = buf.get(..take) {
                self.scanner.feed(written, &mut found);
            }
            n -= take;
        }
    }
}

/// A stream the HTTP/2 layer reset for the client's fault: counted and
/// logged here, audited off the connection's task (the connection goes
/// on, and the HTTP/2 server bounds how many streams it resets this way
/// before it ends the connection).
fn refused_stream(ctx: &Arc<ConnCtx>, refusal: StreamRefusal) {
    let reason = refusal.reason_code();
    ctx.shared.metrics.bad_request(reason);
    tracing::info!(peer = %ctx.peer, reason, detail = %refusal, "http/2 stream refused");
    let shared = ctx.shared.clone();
    let peer = ctx.peer;
    tokio::spawn(async move {
        let detail = format!("{reason}: {refusal}");
        super::audit_connection_event(&shared, peer, refusal.status(), detail).await;
    });
}

/// The connection has had more than [`MAX_REFUSED_STREAMS`] refused
/// streams: one last record, and the connection is closed.
fn too_many_refused(ctx: &Arc<ConnCtx>) {
    let reason = "h2_too_many_refusals";
    ctx.shared.metrics.bad_request(reason);
    tracing::info!(peer = %ctx.peer, reason, "http/2 connection closed after {MAX_REFUSED_STREAMS} refused streams");
    let shared = ctx.shared.clone();
    let peer = ctx.peer;
    tokio::spawn(async move {
        let detail = format!(
            "{reason}: more than {MAX_REFUSED_STREAMS} streams refused by the http/2 layer on one connection; connection closed"
        );
        super::audit_connection_event(&shared, peer, 0, detail).await;
    });
}

impl<S: AsyncRead + Unpin> AsyncRead for RefusalTap<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closed() {
            // Read as the end of the connection: hyper stops serving it.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

fn closed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "too many streams refused on this connection",
    )
}

impl<S: AsyncWrite + Unpin> AsyncWrite for RefusalTap<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.closed() {
            return Poll::Ready(Err(closed_error()));
        }
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.scan(&[io::IoSlice::new(buf)], n);
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.closed() {
            return Poll::Ready(Err(closed_error()));
        }
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            this.scan(bufs, n);
        }
        r
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
