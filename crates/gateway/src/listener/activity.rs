//! What a connection's service shares with the code that runs the
//! connection: how many requests are under way and, on a watched
//! connection, whether any started or ended lately. HTTP/1 uses the count
//! to release idle connections' buffers; HTTP/2 connections are watched,
//! to close those that carry no streams for `timeouts.idle`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Response;

use crate::ticks::{ticks, TICKS_PER_TIMEOUT};

/// The requests of one connection.
#[derive(Debug, Default)]
pub(super) struct Activity {
    /// Requests whose response is not yet complete.
    pub(super) in_flight: AtomicUsize,
    /// Requests started and ended and response body polls, counted
    /// together on a watched connection: unchanged between two looks
    /// means nothing happened in between.
    events: AtomicU64,
    /// Looked at by an [`IdleWatch`]: count `events`, and count the
    /// bodies that handed over a frame and were not asked for the next
    /// (`waiting_on_client`). HTTP/2 only: there the peer's flow control,
    /// not the socket, holds back a response. Unwatched (HTTP/1), a
    /// request costs only the `in_flight` count.
    watched: bool,
    /// Response bodies whose last frame has not been sent on: the stream
    /// waits for the client to grant flow-control window.
    waiting_on_client: AtomicUsize,
}

impl Activity {
    /// An HTTP/2 connection's activity, for an [`IdleWatch`].
    pub(super) fn watched() -> Self {
        Self {
            watched: true,
            ..Self::default()
        }
    }

    fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Notes a request's start or end, or a body poll, when watched.
    fn event(&self) {
        if self.watched {
            self.events.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Counts a request as in flight from the service call until its response
/// body has been sent (or dropped).
pub(super) struct InFlight(Arc<Activity>);

impl InFlight {
    pub(super) fn track<F>(activity: &Arc<Activity>, fut: F) -> Tracked<F> {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.event();
        Tracked {
            fut,
            guard: Some(InFlight(activity.clone())),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.event();
    }
}

/// The service future of a request; its response body carries the
/// request's [`InFlight`] guard.
pub(super) struct Tracked<F> {
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
            guard,
            waiting: false,
        })))
    }
}

/// A response body that holds its request's [`InFlight`] guard.
pub(super) struct TrackedBody {
    inner: crate::upstream::Body,
    guard: Option<InFlight>,
    /// Counted in `waiting_on_client`: the last poll handed over a frame.
    waiting: bool,
}

/// The connection's activity, if it is watched.
fn watched(guard: &Option<InFlight>) -> Option<&Activity> {
    guard.as_ref().map(|g| &*g.0).filter(|a| a.watched)
}

impl hyper::body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = crate::upstream::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let Some(activity) = watched(&this.guard) else {
            return Pin::new(&mut this.inner).poll_frame(cx);
        };
        activity.event();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let waiting = matches!(polled, Poll::Ready(Some(Ok(_))));
        if waiting != this.waiting {
            if waiting {
                activity.waiting_on_client.fetch_add(1, Ordering::Relaxed);
            } else {
                activity.waiting_on_client.fetch_sub(1, Ordering::Relaxed);
            }
            this.waiting = waiting;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if self.waiting {
            if let Some(activity) = watched(&self.guard) {
                activity.waiting_on_client.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// What [`IdleWatch::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Quiet {
    /// No request under way, none started and none ended, for the idle
    /// time.
    Idle,
    /// A response waits for the client to grant flow-control window, and
    /// nothing else happened, for the idle time.
    Stalled,
}

/// Looks at a connection's watched [`Activity`] [`TICKS_PER_TIMEOUT`] times per
/// `idle` ([`crate::ticks`]), and tells when it has been [`Quiet`] for
/// that many looks in a row: no clock reading or timer per request.
pub(super) struct IdleWatch {
    activity: Arc<Activity>,
    ticks: tokio::time::Interval,
    last_events: u64,
    quiet: u32,
}

impl IdleWatch {
    pub(super) fn new(activity: Arc<Activity>, idle: Duration) -> Self {
        debug_assert!(activity.watched, "an IdleWatch needs a watched Activity");
        Self {
            last_events: activity.events(),
            activity,
            ticks: ticks(idle),
            quiet: 0,
        }
    }

    /// Resolves once the connection has been idle, or stalled on its
    /// client, for `idle`.
    pub(super) async fn next(&mut self) -> Quiet {
        loop {
            self.ticks.tick().await;
            let events = self.activity.events();
            let busy = self.activity.in_flight.load(Ordering::Relaxed) > 0;
            let stalled = busy && self.activity.waiting_on_client.load(Ordering::Relaxed) > 0;
            if events != self.last_events || (busy && !stalled) {
                self.quiet = 0;
                self.last_events = events;
                continue;
            }
            self.quiet += 1;
            if self.quiet >= TICKS_PER_TIMEOUT {
                return if stalled { Quiet::Stalled } else { Quiet::Idle };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_millis(400);

    async fn idle_within(w: &mut IdleWatch, within: Duration) -> bool {
        match tokio::time::timeout(within, w.next()).await {
            Ok(Quiet::Idle) => true,
            Ok(Quiet::Stalled) => panic!("stalled"),
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn a_connection_without_requests_is_idle_after_the_idle_time() {
        let activity = Arc::new(Activity::watched());
        let mut w = IdleWatch::new(activity, IDLE);
        let start = tokio::time::Instant::now();
        assert!(idle_within(&mut w, IDLE * 5).await);
        let took = start.elapsed();
        // Real time on a shared machine: a late tick only adds.
        assert!(took >= IDLE && took < IDLE * 4, "{took:?}");
    }

    #[tokio::test]
    async fn a_request_under_way_keeps_it_busy_and_its_end_restarts_the_count() {
        let activity = Arc::new(Activity::watched());
        let mut w = IdleWatch::new(activity.clone(), IDLE);
        let request = InFlight::track(&activity, std::future::ready(()));
        assert!(!idle_within(&mut w, IDLE * 3).await, "busy");
        drop(request);
        let ended = tokio::time::Instant::now();
        assert!(idle_within(&mut w, IDLE * 5).await);
        assert!(ended.elapsed() >= IDLE, "{:?}", ended.elapsed());
    }

    #[tokio::test]
    async fn requests_that_start_and_end_between_looks_count_as_activity() {
        let activity = Arc::new(Activity::watched());
        let mut w = IdleWatch::new(activity.clone(), IDLE);
        for _ in 0..8 {
            // A short request in every period.
            drop(InFlight::track(&activity, std::future::ready(())));
            assert!(!idle_within(&mut w, IDLE / TICKS_PER_TIMEOUT).await);
        }
        assert!(idle_within(&mut w, IDLE * 5).await);
    }

    /// A tracked request whose response body has a first frame ready.
    async fn answered(activity: &Arc<Activity>) -> TrackedBody {
        let resp = http::Response::new(crate::response::full("a body"));
        let fut = InFlight::track(activity, Box::pin(async move { Ok(resp) }));
        fut.await.unwrap().into_body()
    }

    #[tokio::test]
    async fn a_body_the_client_stops_taking_is_reported_as_stalled() {
        use http_body_util::BodyExt;
        let activity = Arc::new(Activity::watched());
        let mut w = IdleWatch::new(activity.clone(), IDLE);
        let mut body = answered(&activity).await;
        // One frame handed over; the next is never asked for.
        assert!(body.frame().await.is_some());
        let start = tokio::time::Instant::now();
        let quiet = tokio::time::timeout(IDLE * 5, w.next()).await.unwrap();
        assert_eq!(quiet, Quiet::Stalled);
        assert!(start.elapsed() >= IDLE - IDLE / TICKS_PER_TIMEOUT);
        // Asked again (the client granted window), it is not waiting any
        // more; once it ends the connection is merely idle.
        assert!(body.frame().await.is_none());
        drop(body);
        assert_eq!(activity.waiting_on_client.load(Ordering::Relaxed), 0);
        assert!(idle_within(&mut w, IDLE * 5).await);
    }

    #[tokio::test]
    async fn an_http1_connection_does_not_follow_bodies() {
        use http_body_util::BodyExt;
        let activity = Arc::new(Activity::default());
        let mut body = answered(&activity).await;
        assert!(body.frame().await.is_some());
        assert_eq!(activity.waiting_on_client.load(Ordering::Relaxed), 0);
        assert_eq!(activity.events(), 0, "nothing counted that nobody reads");
    }
}
