//! A body wrapper that ends a stream which stays silent too long.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};

/// The error type of every body the gateway passes on.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The first `T` in `e`'s chain of sources, `e` included. An
/// [`std::io::Error`] hides the error it was made from (its `source` is
/// that error's source), so each one's inner error is looked at too.
pub(crate) fn find_cause<'e, T: std::error::Error + 'static>(
    e: &'e (dyn std::error::Error + 'static),
) -> Option<&'e T> {
    let mut source = Some(e);
    while let Some(s) = source {
        if let Some(found) = s.downcast_ref::<T>() {
            return Some(found);
        }
        let inner = s
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|i| i.downcast_ref::<T>());
        if inner.is_some() {
            return inner;
        }
        source = s.source();
    }
    None
}

/// An error reading the client's request body while it is forwarded: a
/// malformed chunk, a body shorter than its `content-length`, a client
/// that hung up or reset its HTTP/2 stream. The client's fault, told apart
/// from the upstream's by [`find_cause`].
#[derive(Debug, thiserror::Error)]
#[error("the request body could not be read")]
pub(crate) struct ClientBodyError(#[source] BoxError);

/// The client's request body as the upstream gets it: its errors become
/// [`ClientBodyError`]s and its trailers lose what the gateway removes
/// from headers, and the fields trailers may not carry
/// ([`portcullis_http_guard::sanitize_trailers`]).
pub(crate) fn from_client<B>(body: B) -> impl Body<Data = B::Data, Error = ClientBodyError> + Unpin
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    use http_body_util::BodyExt;
    body.map_err(|e| ClientBodyError(e.into()))
        .map_frame(|f| clean_trailers(f, true))
}

/// An upstream's response body as the client gets it: its trailers lose
/// hop-by-hop fields, the gateway namespace and the fields trailers may
/// not carry.
pub(crate) fn from_upstream<B>(body: B) -> impl Body<Data = B::Data, Error = B::Error> + Unpin
where
    B: Body + Unpin,
{
    use http_body_util::BodyExt;
    body.map_frame(|f| clean_trailers(f, false))
}

fn clean_trailers<D>(frame: Frame<D>, request: bool) -> Frame<D> {
    match frame.into_trailers() {
        Ok(mut trailers) => {
            let report = portcullis_http_guard::sanitize_trailers(&mut trailers, request);
            if !report.is_empty() {
                tracing::debug!(
                    removed = ?report.removed(),
                    request,
                    "trailer fields removed"
                );
            }
            Frame::trailers(trailers)
        }
        Err(frame) => frame,
    }
}

/// The error a stalled body ends with.
#[derive(Debug, thiserror::Error)]
#[error("body sent nothing for {0:?}")]
pub(crate) struct BodyStalled(Duration);

/// Yields `inner`'s frames, or an error once `timeout` passes without one.
pub(crate) struct StallTimeout<B> {
    inner: B,
    timeout: Duration,
    /// Armed on the first `Pending`, re-armed after every frame.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> StallTimeout<B> {
    pub(crate) fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            sleep: None,
        }
    }
}

impl<B> Body for StallTimeout<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.sleep = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled(timeout))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
