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
