//! TLS listeners: accept, bound the connection count, complete the mTLS
//! handshake within a timeout, turn the verified peer into a principal,
//! and serve HTTP/1.1 ([`http1`]) or HTTP/2 as negotiated by ALPN.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use portcullis_identity::Principal;
use portcullis_telemetry::{AuditDecision, AuditRecord};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::conn_trust::{ConnTrust, TrustAt};
use crate::drain::DrainWatch;
use crate::service::{ConnCtx, FramingVerdicts};
use crate::Shared;

mod activity;
mod http1;
mod http2;

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
            connection(shared, name, stream, peer, drain).await;
        });
    }
}

#[expect(
    clippy::manual_async_fn,
    reason = "an async fn's future keeps its arguments twice"
)]
fn connection(
    shared: Arc<Shared>,
    name: String,
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    drain: DrainWatch,
) -> impl Future<Output = ()> {
    // Not an `async fn`, whose future would keep the arguments twice for
    // the life of the connection (see `http1::run`).
    async move {
        let snap = shared.state.load_full();
        let Some(index) = snap.listener_index(&name) else {
            return;
        };
        let (Some(tls), Some(listener)) = (snap.tls.get(index), snap.config.listeners.get(index))
        else {
            return;
        };
        let acceptor = tls.acceptor.clone();
        let trust = TrustAt {
            listener: index,
            id: tls.trust_id,
        };
        let settings = ConnSettings::of(listener);
        let trust_domains = listener.tls.client_auth.spiffe_trust_domains.clone();
        drop(snap);

        // Boxed, like the serving future it returns: the connection task then
        // keeps only a pointer for the life of the connection, not room for
        // the handshake's state and the TLS stream next to the serving state.
        let accepted = Box::pin(accept(
            &shared,
            &name,
            peer,
            (acceptor, trust),
            stream,
            &trust_domains,
            settings,
            drain,
        ));
        let Some(serving) = accepted.await else {
            return;
        };
        drop(trust_domains);
        if let Err(e) = serving.await {
            Box::pin(connection_error(&shared, &name, peer, &e)).await;
        }
    }
}

/// Completes the TLS handshake within its timeout and starts serving; a
/// refused handshake is counted and audited here.
#[allow(clippy::too_many_arguments)]
async fn accept(
    shared: &Arc<Shared>,
    name: &str,
    peer: std::net::SocketAddr,
    (acceptor, trust): (tokio_rustls::TlsAcceptor, TrustAt),
    stream: TcpStream,
    trust_domains: &[portcullis_identity::TrustDomain],
    settings: ConnSettings,
    drain: DrainWatch,
) -> Option<Serving> {
    let (reason, detail) =
        match tokio::time::timeout(settings.handshake_timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                match start_serving(shared, peer, tls, trust, trust_domains, settings, drain) {
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
type Serving = Pin<Box<dyn Future<Output = Result<(), ConnError>> + Send>>;

/// Why a connection's service ended early.
#[derive(Debug)]
enum ConnError {
    /// hyper's error: a malformed request it answered itself, or the
    /// connection failing.
    Http(hyper::Error),
    /// The client was too slow.
    Slow(Slow),
}

/// How a client was too slow for the connection to go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum Slow {
    /// A request head begun and not complete within
    /// `timeouts.header_read`.
    #[error("request head not complete within timeouts.header_read")]
    Head,
    /// Bytes that made no request byte within `timeouts.header_read` of
    /// the first of them.
    #[error("no request bytes within timeouts.header_read of the first bytes received (an incomplete TLS record)")]
    Undecoded,
    /// The client took none of its response for `timeouts.idle`.
    #[error("the client read nothing of the response within timeouts.idle")]
    Send,
}

impl Slow {
    /// The `bad_requests_total` reason.
    fn reason(self) -> &'static str {
        match self {
            Self::Head | Self::Undecoded => "header_read_timeout",
            Self::Send => "send_timeout",
        }
    }

    /// As the I/O error a stream fails with, for hyper to end the
    /// connection with.
    fn io_error(self) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, self)
    }
}

impl From<hyper::Error> for ConnError {
    /// A [`Slow`] the connection's stream failed with is that; anything
    /// else is hyper's.
    fn from(e: hyper::Error) -> Self {
        match crate::body::find_cause::<Slow>(&e) {
            Some(slow) => Self::Slow(*slow),
            None => Self::Http(e),
        }
    }
}

/// The listener settings a connection is served with, copied out of the
/// snapshot so a long connection does not keep an old one alive.
struct ConnSettings {
    handshake_timeout: Duration,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    limits: portcullis_config::Limits,
}

impl ConnSettings {
    fn of(listener: &portcullis_config::Listener) -> Self {
        Self {
            handshake_timeout: listener.tls_handshake_timeout,
            header_read_timeout: listener.header_read_timeout,
            idle_timeout: listener.idle_timeout,
            limits: listener.limits,
        }
    }
}

/// Turns the verified peer into the connection's principal and starts
/// HTTP/1 or HTTP/2 as negotiated; the refusal reason and detail if the
/// peer's identity cannot be read.
fn start_serving(
    shared: &Arc<Shared>,
    peer: std::net::SocketAddr,
    tls: tokio_rustls::server::TlsStream<TcpStream>,
    trust_at: TrustAt,
    trust_domains: &[portcullis_identity::TrustDomain],
    settings: ConnSettings,
    drain: DrainWatch,
) -> Result<Serving, (&'static str, String)> {
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
    let chain = match (session.peer_certificates(), &principal.cert) {
        (Some(chain), Some(cert)) if !chain.is_empty() => {
            Some(shared.chains.intern(cert.thumbprint.0, chain))
        }
        _ => None,
    };
    let trust = ConnTrust::new(trust_at, chain);
    let framing = (!h2).then(|| Arc::new(FramingVerdicts::default()));
    let ctx = Arc::new(ConnCtx {
        shared: shared.clone(),
        listener_index: trust_at.listener,
        peer,
        sni,
        strings: crate::service::ConnStrings::new(&principal, peer),
        principal: Arc::new(principal),
        framing: framing.clone(),
        assertion: crate::assertion::ConnAssertion::default(),
        trust,
    });
    Ok(match framing {
        None => http2::serve(tls, ctx, &settings, drain),
        Some(verdicts) => {
            http1::serve(tls, ctx, verdicts, &settings, shared.metrics.clone(), drain)
        }
    })
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
    audit_connection_event(shared, peer, 0, format!("tls: {reason}: {detail}")).await;
}

/// The refusal a connection error stands for, as its `bad_requests_total`
/// reason and detail: a malformed or oversized request that hyper
/// answered itself (400/431), or a client too slow to go on with. Other
/// errors are the connection failing, not a request refused.
/// The third element is the status hyper answered with (0: none, the
/// connection was closed).
fn refusal(e: &ConnError) -> Option<(&'static str, String, u16)> {
    match e {
        ConnError::Slow(slow) => Some((slow.reason(), slow.to_string(), 0)),
        ConnError::Http(e) if e.is_parse_too_large() => {
            Some(("header_too_large", e.to_string(), 431))
        }
        ConnError::Http(e) if e.is_parse() || e.is_parse_status() => {
            Some(("malformed_request", e.to_string(), 400))
        }
        // The HTTP/2 server ended the connection for the client's fault
        // (a frame on the wrong stream, a bad header block, too many
        // resets): a GOAWAY with an error code, sent by the server.
        ConnError::Http(e) => {
            let h2 = crate::body::find_cause::<h2::Error>(e)?;
            let reason = h2.reason().filter(|r| *r != h2::Reason::NO_ERROR)?;
            (h2.is_go_away() && h2.is_library()).then(|| {
                (
                    "h2_connection_error",
                    format!("http/2 connection ended by the server with {reason:?} ({h2})"),
                    0,
                )
            })
        }
    }
}

/// Reports how a connection ended early: refusals are logged, counted and
/// audited; a peer gone silent, and other connection failures, are logged.
async fn connection_error(
    shared: &Shared,
    listener: &str,
    peer: std::net::SocketAddr,
    e: &ConnError,
) {
    let Some((reason, detail, status)) = refusal(e) else {
        match e {
            ConnError::Http(e) if e.is_timeout() => tracing::info!(
                listener,
                %peer,
                reason = "h2_ping_timeout",
                "http/2 peer did not answer a keep-alive ping; connection closed"
            ),
            e => tracing::debug!(listener, %peer, error = ?e, "connection ended with an error"),
        }
        return;
    };
    shared.metrics.bad_request(reason);
    tracing::info!(listener, %peer, reason, error = %detail, "malformed request refused");
    audit_connection_event(shared, peer, status, format!("{reason}: {detail}")).await;
}

/// Audits a refusal made before any request reached the pipeline: a TLS
/// handshake, or a request hyper could not parse and answered itself with
/// `status` (0 when nothing was answered).
pub(super) async fn audit_connection_event(
    shared: &Shared,
    peer: std::net::SocketAddr,
    status: u16,
    detail: String,
) {
    let snap = shared.state.load();
    let rec = AuditRecord {
        time: portcullis_telemetry::audit_time_now(),
        request_id: portcullis_telemetry::new_request_id_shared(),
        trace_id: None,
        principal: "anonymous".into(),
        spiffe_id: None,
        cert_thumbprint: None,
        token_issuer: None,
        token_subject: None,
        bundle_revision: None,
        bundle_digest: None,
        route: None,
        method: "-".into(),
        path: "-".to_owned(),
        source: peer.to_string().into(),
        decision: AuditDecision::Deny,
        status,
        rule: None,
        reason: Some(detail),
        policy_revision: snap.audit.policy_revision.clone(),
        policy_sha256: snap.audit.policy_sha256.clone(),
        latency_us: 0,
    };
    shared.audit.record_deny(rec).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tokio::io::AsyncWriteExt as _;

    /// The HTTP/2 client connection preface and an empty SETTINGS frame.
    const H2_PREFACE: &[u8] =
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

    /// A peer that opens an HTTP/2 connection and then answers nothing
    /// (not the server's SETTINGS, not its ping) ends the connection with
    /// hyper's keep-alive timeout: a vanished peer, not a refused request
    /// (this error was once counted as `header_read_timeout`).
    #[tokio::test(start_paused = true)]
    async fn an_unanswered_h2_ping_is_no_refusal() {
        let (server_io, mut client_io) = tokio::io::duplex(64 * 1024);
        client_io.write_all(H2_PREFACE).await.unwrap();
        let svc = service_fn(|_req| async {
            Ok::<_, std::convert::Infallible>(hyper::Response::new(String::new()))
        });
        let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        b.timer(TokioTimer::new())
            .keep_alive_interval(Some(H2_KEEPALIVE_INTERVAL))
            .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT);
        let started = tokio::time::Instant::now();
        let err = b
            .serve_connection(TokioIo::new(server_io), svc)
            .await
            .expect_err("an unanswered ping ends the connection");
        let waited = started.elapsed();
        assert!(err.is_timeout(), "{err:?}");
        assert!(
            waited >= H2_KEEPALIVE_INTERVAL + H2_KEEPALIVE_TIMEOUT,
            "closed after {waited:?}"
        );
        assert_eq!(refusal(&ConnError::Http(err)), None);
        drop(client_io);
    }

    /// A slow client is a refusal, with the reason it is counted under.
    #[test]
    fn slow_clients_are_refusals_with_their_reasons() {
        for (slow, reason) in [
            (Slow::Head, "header_read_timeout"),
            (Slow::Undecoded, "header_read_timeout"),
            (Slow::Send, "send_timeout"),
        ] {
            let (r, detail, status) = refusal(&ConnError::Slow(slow)).unwrap();
            assert_eq!(r, reason);
            assert_eq!(detail, slow.to_string());
            assert_eq!(status, 0, "nothing is answered to a slow client");
        }
    }
}
