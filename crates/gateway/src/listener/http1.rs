//! HTTP/1 connections: read through a [`FramingTap`], and served by hyper
//! only while they have work.
//!
//! hyper's parser hides a `Content-Length` next to `Transfer-Encoding` and
//! folds equal duplicate `Content-Length` fields, so the tap judges the
//! framing of every request head on the raw bytes, before hyper parses
//! them, and the service refuses a request whose verdict is not clean.
//!
//! Between requests the tap also lets hyper go: see [`serve`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use portcullis_http_guard::Http1FramingScanner;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::activity::{Activity, InFlight};
use super::{ConnError, ConnSettings, Serving, Slow};
use crate::drain::DrainWatch;
use crate::service::{handle, ConnCtx, FramingVerdicts};

/// Starts serving an HTTP/1 connection whose requests take their framing
/// verdicts from `verdicts` (the queue `ctx` holds too).
pub(super) fn serve(
    tls: tokio_rustls::server::TlsStream<TcpStream>,
    ctx: Arc<ConnCtx>,
    verdicts: Arc<FramingVerdicts>,
    settings: &ConnSettings,
    metrics: Arc<portcullis_telemetry::Metrics>,
    drain: DrainWatch,
) -> Serving {
    let limits = settings.limits;
    let max_buf = limits.max_header_bytes.saturating_mul(2).max(8192);
    // hyper may read past `max_buf` in one read, so the scanner allows
    // twice as much: every head hyper accepts fits.
    let scanner = Http1FramingScanner::with_max_head_bytes(max_buf.saturating_mul(2));
    let activity = Arc::new(Activity::default());
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
        decoded: false,
        header_read_timeout: settings.header_read_timeout,
        head: Deadline::default(),
        send_timeout: settings.idle_timeout,
        write: Deadline::default(),
    };
    // No timer for hyper: the tap bounds the reading of a head (see
    // `FramingTap::head`), which costs nothing for a head that
    // arrives in one read, where hyper's timeout costs a timer per request.
    let mut b = hyper::server::conn::http1::Builder::new();
    b.max_headers(parser_max_headers(limits.max_header_count))
        .max_buf_size(max_buf);
    Box::pin(run(metrics, io, svc, b, settings.idle_timeout, drain))
}

/// Fields hyper keeps room for on the stack while parsing a head; a
/// larger cap makes it allocate two arrays of that many entries (about
/// 3.7 KiB each at 116) for every request.
const PARSER_INLINE_HEADERS: usize = 100;

/// hyper's cap on the fields of a request head. A head over it is
/// answered 431 by hyper itself (audited as `header_too_large`, "message
/// head is too large"); one within it but over the listener's
/// `max_header_count` by the gateway's own check, whose audit record
/// names the limit. The cap leaves a margin of 16 fields for that check,
/// but not past hyper's stack room unless the limit itself is higher:
/// with the default limit of 100 the cap is the limit.
fn parser_max_headers(max_header_count: usize) -> usize {
    let with_margin = max_header_count.saturating_add(16);
    if max_header_count > PARSER_INLINE_HEADERS {
        with_margin
    } else {
        with_margin.min(PARSER_INLINE_HEADERS)
    }
}

/// How long a keep-alive HTTP/1 connection holds hyper's buffers (an
/// 8 KiB read and an 8 KiB write buffer) after its last activity: past
/// this, they are released until the client sends again.
pub(crate) const HTTP1_IDLE_RELEASE: Duration = Duration::from_millis(100);

/// Bound on sending TLS `close_notify` when a connection ends.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

type Http1Io = FramingTap<tokio_rustls::server::TlsStream<TcpStream>>;

/// Runs an HTTP/1 connection. hyper runs only while the connection has
/// work: once it has been idle for [`HTTP1_IDLE_RELEASE`] between
/// requests, its [`FramingTap`] reports the end of the stream to hyper,
/// which finishes without closing the TLS stream; the stream then waits
/// here, without hyper's buffers, for the client's next bytes (a new hyper
/// connection serves them) or for `idle_timeout` (closed).
///
/// Bytes that arrive without giving hyper a byte of a request (a TLS record
/// sent a piece at a time, or half of one and then nothing) are bounded by
/// `timeouts.header_read` from the first of them, like a started head:
/// each piece would otherwise wake the connection and restart the idle
/// wait.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn's future keeps its arguments twice"
)]
fn run<S, B>(
    metrics: Arc<portcullis_telemetry::Metrics>,
    mut io: Http1Io,
    mut svc: S,
    builder: hyper::server::conn::http1::Builder,
    idle_timeout: Duration,
    mut drain: DrainWatch,
) -> impl Future<Output = Result<(), ConnError>>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B> + Unpin,
    S::Future: Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // A plain function returning an `async move` block, not an `async fn`:
    // the future of an `async fn` keeps its arguments twice (as passed and
    // as bound), which for `io` alone is 1.4 KiB more for every connection.
    async move {
        // Since when bytes have been arriving that gave hyper nothing.
        let mut undecoded_since: Option<tokio::time::Instant> = None;
        let mut timed_out = false;
        loop {
            // rustls holds no decrypted bytes: wait for the socket.
            if io.inner.get_ref().1.wants_read() {
                let wait = match undecoded_since {
                    Some(since) => (since + io.header_read_timeout)
                        .saturating_duration_since(tokio::time::Instant::now()),
                    None => idle_timeout,
                };
                let tcp = &io.inner.get_ref().0;
                let _idle = metrics.connection_idle();
                tokio::select! {
                    biased;
                    () = drain.draining() => break,
                    r = tcp.readable() => if r.is_err() { break },
                    () = tokio::time::sleep(wait) => {
                        timed_out = undecoded_since.is_some();
                        break;
                    }
                }
                undecoded_since.get_or_insert_with(tokio::time::Instant::now);
            }
            if drain.is_draining() {
                break;
            }
            io.released = false;
            io.decoded = false;
            // Boxed: an idle connection keeps no room for hyper's state.
            let mut conn = Box::new(builder.serve_connection(TokioIo::new(io), svc));
            // A drain is noticed at the connection's next wake-up: every
            // request and response wakes it, and an idle one is woken by the
            // release timer within `HTTP1_IDLE_RELEASE` and then ends in the
            // wait above. Reading the flag costs less than keeping a
            // drain future registered on every wake-up.
            let mut draining = false;
            let done = std::future::poll_fn(|cx| {
                if !draining && drain.is_draining() {
                    draining = true;
                    Pin::new(&mut *conn).graceful_shutdown();
                }
                conn.poll_without_shutdown(cx)
            })
            .await;
            let parts = conn.into_parts();
            io = parts.io.into_inner();
            svc = parts.service;
            done?;
            if io.decoded {
                undecoded_since = None;
            } else if undecoded_since.is_some_and(|since| since.elapsed() >= io.header_read_timeout)
            {
                timed_out = true;
                break;
            }
            // Continue only after an idle release with nothing left unread; a
            // client that closed, `Connection: close`, or a drain end here.
            if !io.released || !parts.read_buf.is_empty() || draining {
                break;
            }
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, io.shutdown()).await;
        if timed_out {
            return Err(ConnError::Slow(Slow::Undecoded));
        }
        Ok(())
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
    activity: Arc<Activity>,
    /// Written since the last completed flush.
    unflushed: bool,
    /// When the last response was flushed (or the tap was made): idle
    /// time counts from there, as bytes read without a response leave
    /// the connection busy (a partial message, or a request in flight).
    last_active: tokio::time::Instant,
    /// Wakes the connection [`HTTP1_IDLE_RELEASE`] after `last_active`;
    /// created on first use and kept.
    release_timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The end of the stream was reported to hyper for an idle release.
    released: bool,
    /// hyper has read bytes since [`run`] last cleared this.
    decoded: bool,
    /// How long a request head may take from its first bytes.
    header_read_timeout: Duration,
    /// When the head being read must be complete: set when a read leaves
    /// a head begun but incomplete, cleared when one ends with no head
    /// under way. A head that arrives in one read never sets it.
    head: Deadline,
    /// How long the client may take none of the bytes written to it
    /// (`timeouts.idle`).
    send_timeout: Duration,
    /// When a write waiting for the client to read gives up; set while
    /// writes make no progress.
    write: Deadline,
}

/// A deadline whose timer is made on first use and kept: setting and
/// clearing it touches no timer; only polling it does.
#[derive(Default)]
struct Deadline {
    at: Option<tokio::time::Instant>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Deadline {
    fn set(&mut self, at: tokio::time::Instant) {
        self.at = Some(at);
    }

    fn clear(&mut self) {
        self.at = None;
    }

    fn is_set(&self) -> bool {
        self.at.is_some()
    }

    /// Whether the deadline set has passed; if not, makes sure the task
    /// is woken when it does.
    fn passed(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(at) = self.at else {
            return false;
        };
        timer_at(&mut self.timer, at, |t| t == at)
            .as_mut()
            .poll(cx)
            .is_ready()
    }
}

/// The timer in `slot`, made on first use, and reset to `deadline` unless
/// `keep` accepts the deadline it has.
fn timer_at(
    slot: &mut Option<Pin<Box<tokio::time::Sleep>>>,
    deadline: tokio::time::Instant,
    keep: impl FnOnce(tokio::time::Instant) -> bool,
) -> &mut Pin<Box<tokio::time::Sleep>> {
    match slot {
        Some(timer) => {
            if !keep(timer.deadline()) {
                timer.as_mut().reset(deadline);
            }
            timer
        }
        None => slot.insert(Box::pin(tokio::time::sleep_until(deadline))),
    }
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
    fn poll_idle_release(&mut self, cx: &mut Context<'_>, now: tokio::time::Instant) -> bool {
        let due = self.last_active + HTTP1_IDLE_RELEASE;
        if now >= due {
            return true;
        }
        // A timer still pending fires at or before `due`, and a wake-up
        // before it re-arms the timer here.
        let timer = timer_at(&mut self.release_timer, due, |at| at > now);
        let _ = timer.as_mut().poll(cx);
        false
    }

    /// Notes the head under way after a read: a head begun in this read
    /// (none was under way, or one was completed) gets its deadline now.
    fn track_head(&mut self, completed_a_head: bool) {
        if !self.scanner.is_in_head() {
            self.head.clear();
        } else if completed_a_head || !self.head.is_set() {
            self.head
                .set(tokio::time::Instant::now() + self.header_read_timeout);
        }
    }

    /// Handles the outcome of a write or flush: a write that cannot go on
    /// because the client reads nothing fails once it has waited
    /// `send_timeout`; any progress ends the wait.
    fn bound_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.write.clear();
            return polled;
        }
        if !self.write.is_set() {
            self.write
                .set(tokio::time::Instant::now() + self.send_timeout);
        }
        if self.write.passed(cx) {
            return Poll::Ready(Err(Slow::Send.io_error()));
        }
        Poll::Pending
    }

    /// [`Self::poll_idle_release`], reading the clock only once the
    /// release timer has fired: its deadline is never later than the
    /// release is due, so until it fires the release is not due.
    fn idle_release_due(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(timer) = &mut self.release_timer {
            if !timer.is_elapsed() {
                let _ = timer.as_mut().poll(cx);
                return false;
            }
        }
        self.poll_idle_release(cx, tokio::time::Instant::now())
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
                    this.decoded |= !read.is_empty();
                    let mut queue = None;
                    this.scanner.feed(read, |verdict| {
                        queue
                            .get_or_insert_with(|| this.verdicts.lock())
                            .push(verdict);
                    });
                    let completed_a_head = queue.is_some();
                    drop(queue);
                    this.track_head(completed_a_head);
                }
            }
            Poll::Pending => {
                if this.head.is_set() {
                    if this.head.passed(cx) {
                        return Poll::Ready(Err(Slow::Head.io_error()));
                    }
                } else if this.is_idle() && this.idle_release_due(cx) {
                    // The end of the stream, as far as hyper knows: it ends
                    // this connection cleanly, and [`run`] keeps the
                    // TLS stream for the next request.
                    this.released = true;
                    return Poll::Ready(Ok(()));
                }
            }
            Poll::Ready(Err(_)) => {}
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
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.bound_write(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.unflushed = true;
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.bound_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        let flushed = this.bound_write(cx, flushed);
        if this.unflushed && matches!(flushed, Poll::Ready(Ok(()))) {
            this.unflushed = false;
            let now = tokio::time::Instant::now();
            this.last_active = now;
            // hyper reads again only when the client sends; the timer
            // wakes the connection to release its buffers if it does not.
            if this.is_idle() {
                this.poll_idle_release(cx, now);
            }
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
