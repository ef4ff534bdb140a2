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
/// ([`portcullis_http_guard::sanitize_trailers`]). On a route with
/// `client_headers` (`allowed`, sorted), trailers keep only the fields it
/// lists: a trailer reaches an HTTP/2 upstream as sent, so a field the
/// route does not take in the header section must not come in after the
/// body either.
pub(crate) fn from_client<B>(
    body: B,
    allowed: Option<std::sync::Arc<[http::HeaderName]>>,
) -> impl Body<Data = B::Data, Error = ClientBodyError> + Unpin
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    use http_body_util::BodyExt;
    body.map_err(|e| ClientBodyError(e.into()))
        .map_frame(move |f| clean_trailers(f, true, allowed.as_deref()))
}

/// Removes from `fields` every name `allowed` (sorted) does not list,
/// except those `also` keeps.
pub(crate) fn keep_listed(
    fields: &mut http::HeaderMap,
    allowed: &[http::HeaderName],
    also: impl Fn(&http::HeaderName) -> bool,
) {
    let unlisted: Vec<http::HeaderName> = fields
        .keys()
        .filter(|n| {
            !also(n)
                && allowed
                    .binary_search_by(|a| a.as_str().cmp(n.as_str()))
                    .is_err()
        })
        .cloned()
        .collect();
    for name in &unlisted {
        fields.remove(name);
    }
}

/// A trailer section cleaned as [`portcullis_http_guard::sanitize_trailers`]
/// says (of a request: `request`; of a response: not), and reduced to the
/// fields `allowed` (sorted) lists when there is such a list; other frames
/// as they are.
pub(crate) fn clean_trailers<D>(
    frame: Frame<D>,
    request: bool,
    allowed: Option<&[http::HeaderName]>,
) -> Frame<D> {
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
            if let Some(allowed) = allowed {
                keep_listed(&mut trailers, allowed, |_| false);
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

/// A proxied response body whose end is audited when it is not the end
/// its head promised. The allow record was written when the head went
/// out; a body the upstream then breaks or cuts off, one that stalls, or
/// one the client leaves before its end adds a second record with the
/// same request id, decision `error` and reason `response_incomplete: …`
/// (an analyst should not read `allow 200` as "the client got it").
pub(crate) struct AuditedEnd<B: Body<Data = bytes::Bytes, Error = BoxError> + Unpin> {
    inner: B,
    shared: std::sync::Arc<crate::Shared>,
    /// The head's record, written again if the body ends early; `None`
    /// once the body ended, either way.
    record: Option<portcullis_telemetry::AuditRecord>,
}

impl<B: Body<Data = bytes::Bytes, Error = BoxError> + Unpin> AuditedEnd<B> {
    pub(crate) fn new(
        inner: B,
        shared: std::sync::Arc<crate::Shared>,
        record: portcullis_telemetry::AuditRecord,
    ) -> Self {
        Self {
            inner,
            shared,
            record: Some(record),
        }
    }

    fn incomplete(&mut self, why: &str, kind: Option<portcullis_telemetry::UpstreamErrorKind>) {
        let Some(mut rec) = self.record.take() else {
            return;
        };
        if let (Some(kind), Some(route)) = (kind, rec.route.as_deref()) {
            self.shared.metrics.upstream_error(route, kind);
        }
        tracing::info!(
            request_id = %rec.request_id,
            reason = why,
            "response ended before its body did"
        );
        rec.decision = portcullis_telemetry::AuditDecision::Error;
        rec.reason = Some(format!("response_incomplete: {why}"));
        // Not a deny: written like an allow record (the request was
        // allowed and answered), counted if the queue is full.
        self.shared.audit.record(rec);
    }
}

impl<B: Body<Data = bytes::Bytes, Error = BoxError> + Unpin> Body for AuditedEnd<B> {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            // A trailer section is a body's last frame: the server may
            // drop the body after it without asking for its end.
            Some(Ok(f)) if f.is_trailers() => this.record = None,
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                let kind = if find_cause::<BodyStalled>(e.as_ref()).is_some() {
                    portcullis_telemetry::UpstreamErrorKind::Timeout
                } else {
                    portcullis_telemetry::UpstreamErrorKind::Protocol
                };
                this.incomplete(&format!("upstream body: {e}"), Some(kind));
            }
            None => this.record = None,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body<Data = bytes::Bytes, Error = BoxError> + Unpin> Drop for AuditedEnd<B> {
    fn drop(&mut self) {
        // Dropped by the server before the end: the client went away or
        // the connection ended. A body that reached its end (the server
        // stops polling once it says so), or that has all the bytes its
        // length promised (an HTTP/1 client's response is complete then,
        // even if an HTTP/2 upstream's end of stream is still to come),
        // is no loss.
        let complete = self.inner.is_end_stream() || self.inner.size_hint().exact() == Some(0);
        if self.record.is_some() && !complete {
            self.incomplete("the connection ended before the body did", None);
        }
    }
}
