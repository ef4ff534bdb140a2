//! Whether an established connection may still be served: its client
//! certificate must be within its validity, and be verified again, once,
//! whenever a reload changes its listener's client-certificate trust.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use http::StatusCode;

use crate::chains::Chain;
use crate::response::Refusal;
use crate::state::Snapshot;

/// The trust a connection was accepted with: its listener's position in
/// `config.listeners` and that listener's [`crate::state::ListenerTls::trust_id`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct TrustAt {
    pub(crate) listener: usize,
    pub(crate) id: u64,
}

/// [`ConnTrust`]'s mark for a connection whose certificate a reload's
/// trust material refused: every later request on it is refused too,
/// without verifying the chain again. Trust ids start at 1.
pub(crate) const DISTRUSTED: u64 = 0;

/// A connection is served only while its client certificate would still
/// be accepted: within its validity, and verified again, once, whenever a
/// reload changed the listener's CA bundle, CRLs or `client_auth` mode.
pub(crate) struct ConnTrust {
    /// The listener trust id the chain was last verified under, or
    /// [`DISTRUSTED`].
    verified_under: AtomicU64,
    /// The client's chain, leaf first, shared with the client's other
    /// connections; `None` for an anonymous client.
    chain: Option<Chain>,
    /// The chain's earliest `notAfter`, Unix seconds.
    not_after: Option<i64>,
    /// Signalled when a request finds the connection no longer trusted:
    /// an HTTP/2 connection then sends GOAWAY and ends once its streams
    /// have (HTTP/1 ends with the refusal's `Connection: close`).
    refused: tokio::sync::Notify,
}

impl ConnTrust {
    /// For a connection accepted with the trust `at` names.
    pub(crate) fn new(at: TrustAt, chain: Option<Chain>) -> Self {
        let not_after = chain.as_deref().and_then(portcullis_authn::chain_not_after);
        Self {
            verified_under: AtomicU64::new(at.id),
            chain,
            not_after,
            refused: tokio::sync::Notify::new(),
        }
    }

    /// Completes once a request has found the connection no longer
    /// trusted (at once if one already has).
    pub(crate) async fn refused(&self) {
        self.refused.notified().await;
    }

    /// Whether the connection, of the listener at position `listener`,
    /// may be served by `snap` at `now`.
    pub(crate) fn check(
        &self,
        listener: usize,
        snap: &Snapshot,
        now: jiff::Timestamp,
    ) -> Result<(), Refusal> {
        let verdict = self.judge(listener, snap, now);
        if verdict.is_err() {
            // A permit is kept if the connection is not waiting yet.
            self.refused.notify_one();
        }
        verdict
    }

    fn judge(&self, listener: usize, snap: &Snapshot, now: jiff::Timestamp) -> Result<(), Refusal> {
        if self.not_after.is_some_and(|end| now.as_second() > end) {
            return Err(Refusal::deny(
                StatusCode::FORBIDDEN,
                "connection_certificate_expired",
                "the client certificate this connection was accepted with has expired",
            ));
        }
        let seen = self.verified_under.load(Relaxed);
        let refused = |detail: String| {
            Refusal::deny(
                StatusCode::FORBIDDEN,
                "connection_certificate_refused",
                detail,
            )
        };
        // Listeners cannot change on reload, so this is always found;
        // if not, nothing vouches for the connection.
        let Some(current) = snap.tls.get(listener) else {
            return Err(refused(format!(
                "internal: listener #{listener} has no trust in the running snapshot"
            )));
        };
        if seen == current.trust_id {
            return Ok(());
        }
        if seen == DISTRUSTED {
            return Err(refused(
                "the connection's client certificate was refused after a reload".to_owned(),
            ));
        }
        let at = rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(now.as_second()).unwrap_or(0),
        ));
        match current
            .verifier
            .reverify(self.chain.as_deref().unwrap_or(&[]), at)
        {
            Ok(()) => {
                self.verified_under.store(current.trust_id, Relaxed);
                Ok(())
            }
            Err((code, detail)) => {
                self.verified_under.store(DISTRUSTED, Relaxed);
                Err(refused(format!(
                    "a reload changed the listener's client certificate trust and the connection's certificate no longer passes ({code}): {detail}"
                )))
            }
        }
    }
}
