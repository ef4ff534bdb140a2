//! Upstream HTTP clients: one client, with its own connection pool, per
//! distinct upstream.
//!
//! [`UpstreamClient::forward`] takes a [`Permit`]: only the authorization
//! step creates one, so a request cannot reach an upstream without a
//! decision that allowed it.
//!
//! The client is hyper's connection API plus a small pool
//! ([`pool`]): idle HTTP/1.1 connections are kept newest first and a
//! connection goes back to the pool when its response body has ended (the
//! [`UpstreamBody`] sees the end), so a request costs no extra task, map
//! lookup or timer. An `https` upstream that negotiates `h2` by ALPN gets
//! one shared HTTP/2 connection instead. A request that could not be sent
//! on a pooled connection (the upstream had closed it) is sent again on
//! another one; a request that was sent is never repeated.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2, TrySendError};
use portcullis_config::Upstream;

use crate::authz::Permit;

mod connect;
mod pool;
#[cfg(test)]
mod tests;

use connect::Connector;
use pool::{Pool, Returner};

pub(crate) use crate::body::BoxError;
pub(crate) type Body = BoxBody<Bytes, BoxError>;

/// Idle pooled connections kept per upstream.
pub const MAX_IDLE_PER_UPSTREAM: usize = 256;

#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("cannot build the upstream tls configuration: {0}")]
    Tls(String),
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot connect to the upstream: {0}")]
    Connect(String),
    #[error("request body exceeds the limit")]
    BodyTooLarge,
    #[error("the client stopped sending its request body")]
    ClientBodyStalled,
    #[error("{0}")]
    ClientBody(String),
    #[error("upstream request failed: {0}")]
    Protocol(String),
}

impl UpstreamError {
    /// The metric label; a body over the client's limit is the client's
    /// fault, not the upstream's.
    pub(crate) fn metric_kind(&self) -> Option<portcullis_telemetry::UpstreamErrorKind> {
        use portcullis_telemetry::UpstreamErrorKind as K;
        match self {
            Self::Tls(_) | Self::Connect(_) => Some(K::Connect),
            Self::Timeout(_) => Some(K::Timeout),
            Self::Protocol(_) => Some(K::Protocol),
            Self::BodyTooLarge | Self::ClientBodyStalled | Self::ClientBody(_) => None,
        }
    }
}

pub(crate) struct UpstreamClient {
    connector: Connector,
    pool: Arc<Pool>,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    request_timeout: Duration,
    /// Identifies the settings the client was built from, so a reload
    /// that leaves an upstream unchanged keeps its pooled connections.
    key: String,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

pub(crate) fn client_key(u: &Upstream) -> String {
    let mut ca_digest = String::new();
    if let Some(ca) = &u.ca {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for c in ca {
            ctx.update(c.as_ref());
        }
        for b in ctx.finish().as_ref() {
            ca_digest.push_str(&format!("{b:02x}"));
        }
    }
    format!(
        "{}://{} ca={} c={:?} r={:?} i={:?}",
        u.scheme, u.authority, ca_digest, u.connect_timeout, u.request_timeout, u.idle_timeout
    )
}

/// A connection a request is sent on.
enum Sender {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

impl UpstreamClient {
    pub(crate) fn new(u: &Upstream) -> Result<Self, UpstreamError> {
        Ok(Self {
            connector: Connector::new(u)?,
            pool: Arc::new(Pool::new(u.idle_timeout, MAX_IDLE_PER_UPSTREAM)),
            scheme: u.scheme.clone(),
            authority: u.authority.clone(),
            request_timeout: u.request_timeout,
            key: client_key(u),
        })
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Sends an authorized request and waits for the response headers at
    /// most `request_timeout`; the body then streams. `req`'s URI is in
    /// origin form (path and query).
    pub(crate) async fn forward(
        &self,
        _permit: &Permit,
        req: http::Request<Body>,
    ) -> Result<http::Response<UpstreamBody>, UpstreamError> {
        // Pinned in place: the timeout then holds a reference, and the
        // request future is not copied into it.
        let send = std::pin::pin!(self.send(req));
        match tokio::time::timeout(self.request_timeout, send).await {
            Err(_) => Err(UpstreamError::Timeout(self.request_timeout)),
            Ok(r) => r,
        }
    }

    /// [`Self::forward`] for a request whose body [`has_unsized_body`]:
    /// its first frame is awaited before the head goes out.
    pub(crate) async fn forward_unsized(
        &self,
        permit: &Permit,
        mut req: http::Request<Body>,
    ) -> Result<http::Response<UpstreamBody>, UpstreamError> {
        if settle_unsized_body(req.body_mut()).await? {
            req.extensions_mut().insert(UnsizedBody);
        }
        self.forward(permit, req).await
    }

    /// Pooled connections first, newest first; a request none of them
    /// took goes out on a new connection.
    async fn send(
        &self,
        mut req: http::Request<Body>,
    ) -> Result<http::Response<UpstreamBody>, UpstreamError> {
        while let Some(sender) = self.pool.checkout() {
            match self.try_send(sender, req).await {
                Ok(resp) => return Ok(resp),
                // Not sent: the connection had closed. Try the next one.
                Err(Unsent::Again(r)) => req = *r,
                Err(Unsent::Failed(e)) => return Err(e),
            }
        }
        // Boxed: connecting (resolution, TLS, handshake) is a large
        // future that requests on pooled connections should not carry.
        let sender = match Box::pin(self.connector.connect()).await? {
            Sender::H2(tx) => {
                self.pool.set_h2(tx.clone());
                Sender::H2(tx)
            }
            h1 => h1,
        };
        match self.try_send(sender, req).await {
            Ok(resp) => Ok(resp),
            Err(Unsent::Failed(e)) => Err(e),
            Err(Unsent::Again(_)) => Err(UpstreamError::Protocol(
                "the new upstream connection closed before the request was sent".into(),
            )),
        }
    }

    async fn try_send(
        &self,
        sender: Sender,
        req: http::Request<Body>,
    ) -> Result<http::Response<UpstreamBody>, Unsent> {
        match sender {
            Sender::H1(mut tx) => {
                if tx.ready().await.is_err() {
                    return Err(Unsent::Again(Box::new(req)));
                }
                let resp = tx
                    .try_send_request(frame_unsized_body(req))
                    .await
                    .map_err(unsent)?;
                let returner = Returner::new(&self.pool, tx);
                Ok(resp.map(|body| UpstreamBody::new(body, Some(returner))))
            }
            // Boxed: most upstreams speak HTTP/1.1, whose requests should
            // not carry this branch's state.
            Sender::H2(tx) => Box::pin(self.try_send_h2(tx, req)).await,
        }
    }

    async fn try_send_h2(
        &self,
        mut tx: http2::SendRequest<Body>,
        mut req: http::Request<Body>,
    ) -> Result<http::Response<UpstreamBody>, Unsent> {
        if tx.ready().await.is_err() {
            self.pool.clear_h2();
            return Err(Unsent::Again(Box::new(req)));
        }
        // HTTP/2 carries the scheme and authority as pseudo-headers; the
        // authority is the client's host, as `host` is for HTTP/1.1, and
        // no `host` field may disagree with it (RFC 9113 §8.3.1).
        let authority = req
            .headers_mut()
            .remove(http::header::HOST)
            .and_then(|h| http::uri::Authority::try_from(h.as_bytes()).ok())
            .unwrap_or_else(|| self.authority.clone());
        let mut uri = std::mem::take(req.uri_mut()).into_parts();
        uri.scheme = Some(self.scheme.clone());
        uri.authority = Some(authority);
        *req.uri_mut() = http::Uri::from_parts(uri)
            .map_err(|e| Unsent::Failed(UpstreamError::Protocol(format!("upstream uri: {e}"))))?;
        *req.version_mut() = http::Version::HTTP_2;
        if req.extensions().get::<TeTrailers>().is_some() {
            req.headers_mut()
                .insert(http::header::TE, http::HeaderValue::from_static("trailers"));
        }
        let resp = tx.try_send_request(req).await.map_err(|e| {
            let mut u = unsent(e);
            if let Unsent::Again(r) = &mut u {
                self.pool.clear_h2();
                // back to the form the next connection expects
                let host = r
                    .uri()
                    .authority()
                    .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok());
                if let Some(h) = host {
                    r.headers_mut().insert(http::header::HOST, h);
                }
                r.headers_mut().remove(http::header::TE);
                if let Some(pq) = r.uri().path_and_query().cloned() {
                    *r.uri_mut() = http::Uri::from(pq);
                }
                *r.version_mut() = http::Version::HTTP_11;
            }
            u
        })?;
        Ok(resp.map(|body| UpstreamBody::new(body, None)))
    }
}

/// A `GET` or `HEAD` whose body may or may not hold anything: the client
/// sent it chunked, or as HTTP/2 DATA without `content-length`.
pub(crate) fn has_unsized_body(req: &http::Request<Body>) -> bool {
    use hyper::body::Body as _;
    matches!(*req.method(), http::Method::GET | http::Method::HEAD)
        && !req.body().is_end_stream()
        && req.body().size_hint().exact().is_none()
        && !req.headers().contains_key(http::header::CONTENT_LENGTH)
}

/// Marks a request whose unsized `GET` or `HEAD` body turned out to hold
/// data ([`settle_unsized_body`]): an HTTP/1.1 upstream gets it chunked.
#[derive(Debug, Clone, Copy)]
struct UnsizedBody;

/// Waits for the first frame of an unsized `GET` or `HEAD` body, so the
/// upstream gets no body where the client sent none (an HTTP/2 stream
/// ended by an empty DATA frame, a chunked body of only its last chunk)
/// and the body as sent otherwise; whether it holds data. The wait is
/// bounded by the body's stall timeout (the route's request timeout
/// starts after it).
async fn settle_unsized_body(body: &mut Body) -> Result<bool, UpstreamError> {
    use http_body_util::BodyExt as _;
    let mut rest = std::mem::take(body);
    loop {
        match rest.frame().await {
            // `body` is empty already.
            None => return Ok(false),
            Some(Err(e)) => return Err(classify(&*e)),
            Some(Ok(f)) if f.data_ref().is_some_and(Bytes::is_empty) => {}
            Some(Ok(first)) => {
                let frames = futures_util::StreamExt::chain(
                    futures_util::stream::iter([Ok(first)]),
                    http_body_util::BodyStream::new(rest),
                );
                *body = http_body_util::StreamBody::new(frames).boxed();
                return Ok(true);
            }
        }
    }
}

/// hyper's HTTP/1 client sends a `GET` or `HEAD` whose body length it
/// does not know with no body at all, and drops the body. The gateway
/// forwards what the client sent, so it asks for chunked framing itself
/// for a body [`settle_unsized_body`] found data in.
fn frame_unsized_body(mut req: http::Request<Body>) -> http::Request<Body> {
    if req.extensions().get::<UnsizedBody>().is_some() {
        req.headers_mut().insert(
            http::header::TRANSFER_ENCODING,
            http::HeaderValue::from_static("chunked"),
        );
    }
    req
}

/// Marks a request whose client sent `te: trailers`: an HTTP/2 upstream
/// is told so too (gRPC servers may refuse a request without it; an
/// HTTP/1.1 upstream is not, as `te` there would need a `Connection`
/// option).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TeTrailers;

/// Why a request was not answered on a connection.
enum Unsent {
    /// It never left: it can go out on another connection (boxed: the
    /// rare case should not size the common one).
    Again(Box<http::Request<Body>>),
    /// It failed after it was (maybe partly) sent.
    Failed(UpstreamError),
}

fn unsent(mut e: TrySendError<http::Request<Body>>) -> Unsent {
    match e.take_message() {
        Some(req) => Unsent::Again(Box::new(req)),
        None => Unsent::Failed(classify(&e.into_error())),
    }
}

/// The upstream's response body. An HTTP/1.1 connection goes back to its
/// pool once the body has ended; a body dropped before its end takes the
/// connection with it (hyper closes it: the rest of the response is
/// unread).
pub(crate) struct UpstreamBody {
    inner: Incoming,
    returner: Option<Returner>,
}

impl UpstreamBody {
    fn new(inner: Incoming, returner: Option<Returner>) -> Self {
        Self { inner, returner }
    }

    fn give_back(&mut self) {
        if let Some(r) = self.returner.take() {
            r.give_back();
        }
    }
}

/// How an upstream's response body failed, as the text of the error and
/// its causes. It has no `source`: the HTTP/2 server resets the client's
/// stream with the first HTTP/2 reason it finds among an error's causes,
/// and an upstream's `PROTOCOL_ERROR` is no fault of the client's (the
/// client gets `INTERNAL_ERROR`, and the reset is not counted as its
/// refusal).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UpstreamBodyError(String);

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = UpstreamBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamBodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.give_back();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.returner = None;
                Poll::Ready(Some(Err(UpstreamBodyError(error_chain(&e)))))
            }
            // Trailers lose hop-by-hop fields, the gateway namespace and
            // the fields trailers may not carry before the client sees
            // them.
            Poll::Ready(Some(Ok(frame))) => {
                Poll::Ready(Some(Ok(crate::body::clean_trailers(frame, false, None))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // A body known to be empty (`content-length: 0`, a 204 or 304)
        // is dropped without being polled; its connection is free.
        if http_body::Body::is_end_stream(&self.inner) {
            self.give_back();
        }
    }
}

fn classify(e: &(dyn std::error::Error + Send + Sync + 'static)) -> UpstreamError {
    use crate::body::{find_cause, BodyStalled, ClientBodyError};
    if find_cause::<http_body_util::LengthLimitError>(e).is_some() {
        UpstreamError::BodyTooLarge
    } else if find_cause::<BodyStalled>(e).is_some() {
        UpstreamError::ClientBodyStalled
    } else if let Some(client) = find_cause::<ClientBodyError>(e) {
        UpstreamError::ClientBody(error_chain(client))
    } else {
        UpstreamError::Protocol(error_chain(e))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
