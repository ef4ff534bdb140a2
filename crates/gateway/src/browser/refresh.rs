//! Continuous verification: the provider's tokens of every live session
//! are refreshed before they expire; a refresh the provider refuses
//! because the user's grant is gone ends the session in the shared store.
//!
//! Each round asks the store for the sessions **due first**
//! ([`SessionStore::due_for_refresh`]), whatever their age, so every
//! session on the schedule is reached however many there are: a refreshed
//! (or claimed) session moves back in the schedule and the next ones come
//! first. Revoked sessions are not on the schedule; a session that ended
//! (idle or absolute timeout) is taken off it the first time it is met.
//!
//! What the token endpoint answers decides:
//! - success: the new refresh token and expiry are stored, and the claims
//!   of the new ID token if there is one (it must verify and name the
//!   session's user, else the session ends);
//! - `invalid_grant`: the user's grant is gone (logged out, disabled,
//!   revoked at the provider): the session ends;
//! - any other refusal (`invalid_client`, `unauthorized_client`,
//!   `invalid_request`, …) is about the gateway's own client or request,
//!   not the user: the session is kept, the error logged and counted, the
//!   round stops (the same credentials would fail for every session) and
//!   the refresh is retried after the lease, as after a provider error.
//!   The session's idle and absolute timeouts still end it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::StreamExt;
use http::StatusCode;
use portcullis_config::Oidc;
use portcullis_session::{CasOutcome, Sealer, Session, SessionKey, SessionStore};
use portcullis_telemetry::Metrics;
use serde_json::Value;

use super::{escape, now, provider, CAS_RETRIES, REFRESH_LEASE_SECS, REFRESH_MARGIN_SECS};

/// Most provider refreshes of one round (the earliest due first; the
/// others are due in the next round). Bounds a round's calls to the
/// provider and its store writes.
pub(crate) const MAX_REFRESH_PER_ROUND: usize = 10_000;

/// Provider refreshes under way at once within a round. One at a time, a
/// provider answering in 50 ms would take over eight minutes for 10 000
/// due sessions, and their tokens would expire waiting; this many at once
/// keeps a round short without a burst the provider would throttle.
pub(crate) const CONCURRENT_REFRESHES: usize = 16;

/// Sessions looked at per round, as a multiple of the refresh budget:
/// ended sessions taken off the schedule and refreshes another instance
/// claimed first cost no provider call, but still a store round trip.
const EXAMINED_PER_REFRESH: usize = 4;

/// The answer of a token endpoint: status and JSON body.
pub(crate) type TokenAnswer = Result<(StatusCode, Value), String>;

/// What a verified ID token of a refresh says about the user.
#[derive(Debug, Clone)]
pub(crate) struct RefreshedIdToken {
    pub(crate) issuer: String,
    pub(crate) subject: Option<String>,
    pub(crate) claims: serde_json::Map<String, Value>,
}

/// The verdict on a refreshed ID token: what it says, or why it was
/// refused.
pub(crate) type IdTokenVerdict = Result<RefreshedIdToken, super::IdTokenRefusal>;

/// The provider's token endpoint as the refresher uses it.
pub(crate) trait RefreshEndpoint: Send + Sync {
    /// A `refresh_token` grant with the gateway's client authentication.
    fn refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> Pin<Box<dyn Future<Output = TokenAnswer> + Send + 'a>>;

    /// Verifies an ID token a refresh returned, as a login's is verified
    /// except for the `nonce` ([`super::verify_provider_id_token`]).
    fn verify_id_token<'a>(
        &'a self,
        id_token: &'a str,
    ) -> Pin<Box<dyn Future<Output = IdTokenVerdict> + Send + 'a>>;
}

/// The configured provider.
pub(crate) struct ProviderEndpoint {
    pub(crate) oidc: Oidc,
    pub(crate) provider: Arc<provider::Provider>,
    pub(crate) keys: Arc<portcullis_jwks::KeySource>,
    pub(crate) rules: portcullis_token::IssuerRules,
}

impl RefreshEndpoint for ProviderEndpoint {
    fn refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> Pin<Box<dyn Future<Output = TokenAnswer> + Send + 'a>> {
        Box::pin(async move {
            let meta = self.provider.meta(&self.oidc.issuer).await?;
            self.provider
                .client
                .token(
                    &meta,
                    &self.oidc,
                    &[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", refresh_token),
                    ],
                )
                .await
        })
    }

    fn verify_id_token<'a>(
        &'a self,
        id_token: &'a str,
    ) -> Pin<Box<dyn Future<Output = IdTokenVerdict> + Send + 'a>> {
        Box::pin(async move {
            let v = super::verify_provider_id_token(
                &self.keys,
                &self.rules,
                &self.oidc.client_id,
                id_token,
            )
            .await?;
            Ok(RefreshedIdToken {
                issuer: v.issuer,
                subject: v.subject,
                claims: v.claims,
            })
        })
    }
}

/// What the background refresh needs.
pub(crate) struct Refresher {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) sealer: Arc<Sealer>,
    pub(crate) endpoint: Arc<dyn RefreshEndpoint>,
    pub(crate) metrics: Arc<Metrics>,
    /// Most provider refreshes per round ([`MAX_REFRESH_PER_ROUND`]).
    pub(crate) per_round: usize,
}

/// What became of one session of the schedule.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The provider was asked (whatever it answered).
    Called,
    /// Taken off the schedule or put back in its place (ended, or the
    /// schedule was stale); no provider call.
    Rescheduled,
    /// Someone else changed the session first (another instance claimed
    /// the refresh, a request touched it): nothing done.
    Skipped,
}

/// Why a refresh failed without ending the session.
#[derive(Debug)]
enum RefreshError {
    /// The provider refused the gateway's client or request: every
    /// session would fail the same way, so the round stops.
    Client(String),
    /// Anything else (provider error, network, store): next round.
    Other(String),
}

/// Runs [`Refresher::round`] every `interval` until `stopped` changes.
pub(crate) async fn refresh_loop(
    r: Refresher,
    interval: std::time::Duration,
    mut stopped: tokio::sync::watch::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        if let Err(e) = r.round().await {
            tracing::warn!(error = %e, "provider token refresh round stopped; retrying next round");
        }
        r.collect().await;
    }
}

fn short(key: &SessionKey) -> String {
    key.to_hex().get(..12).unwrap_or("").to_owned()
}

impl Refresher {
    /// Removes the sessions past their absolute end from the store, so
    /// they and their index entries do not pile up for as long as the
    /// store lives. (A removed session's cookie then reads as unknown:
    /// the same refusal as an ended one.) Failures are logged; the next
    /// round tries again.
    pub(crate) async fn collect(&self) {
        match self.store.collect_expired(now()).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "sessions past their absolute end removed"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot remove ended sessions; next round retries")
            }
        }
    }

    /// One round: refreshes the sessions due within the margin, earliest
    /// first, at most `per_round` provider calls, up to
    /// [`CONCURRENT_REFRESHES`] at once. A refusal of the gateway's own
    /// client stops the round once the refreshes under way have ended.
    pub(crate) async fn round(&self) -> Result<(), String> {
        let t = now();
        let before = t + REFRESH_MARGIN_SECS;
        let examine_max = self.per_round.saturating_mul(EXAMINED_PER_REFRESH);
        let (mut calls, mut examined) = (0usize, 0usize);
        while calls < self.per_round && examined < examine_max {
            let want = (self.per_round - calls).min(examine_max - examined);
            let due = self
                .store
                .due_for_refresh(before, want)
                .await
                .map_err(|e| e.to_string())?;
            let got = due.len();
            let mut moved = false;
            // Set by a refusal of the gateway's client: refreshes not yet
            // started are not started; those under way finish (cut off
            // between the provider's answer and the store, a rotated
            // refresh token would be lost with the session).
            let stop = std::sync::OnceLock::<String>::new();
            let stopped = &stop;
            let mut results = futures_util::stream::iter(due)
                .map(|key| async move {
                    if stopped.get().is_some() {
                        return (key, None);
                    }
                    let outcome = self.refresh_one(&key, t).await;
                    (key, Some(outcome))
                })
                .buffer_unordered(CONCURRENT_REFRESHES);
            while let Some((key, outcome)) = results.next().await {
                let Some(outcome) = outcome else { continue };
                examined += 1;
                match outcome {
                    Ok(Outcome::Called) => {
                        calls += 1;
                        moved = true;
                    }
                    Ok(Outcome::Rescheduled) => moved = true,
                    Ok(Outcome::Skipped) => {}
                    Err(RefreshError::Client(e)) => {
                        let _ = stopped.set(e);
                    }
                    Err(RefreshError::Other(e)) => {
                        calls += 1;
                        moved = true;
                        tracing::warn!(session = %short(&key), error = %e, "provider token refresh failed");
                    }
                }
            }
            drop(results);
            if let Some(e) = stop.into_inner() {
                return Err(e);
            }
            // Fewer than asked: nothing else is due. Nothing left the
            // window: the same sessions would come back.
            if got < want || !moved {
                break;
            }
        }
        Ok(())
    }

    /// Writes `next` (a change of `current`); `false` when someone else
    /// wrote first or the session is gone.
    async fn write(&self, current: &Session, mut next: Session) -> Result<bool, RefreshError> {
        next.version = current.version + 1;
        let outcome = self
            .store
            .compare_and_set(&next, current.version)
            .await
            .map_err(|e| RefreshError::Other(e.to_string()))?;
        Ok(outcome == CasOutcome::Updated)
    }

    /// Ends the session in the shared store, for every instance.
    async fn end(&self, key: &SessionKey) -> Result<(), RefreshError> {
        self.store
            .revoke(key)
            .await
            .map(drop)
            .map_err(|e| RefreshError::Other(e.to_string()))
    }

    /// The session as stored now.
    async fn read(&self, key: &SessionKey) -> Result<Option<Session>, RefreshError> {
        self.store
            .get(key)
            .await
            .map_err(|e| RefreshError::Other(e.to_string()))
    }

    /// Writes `next` (a change of `current`) that takes the session off
    /// the schedule or puts it back in its place.
    async fn reschedule(&self, current: &Session, next: Session) -> Result<Outcome, RefreshError> {
        Ok(if self.write(current, next).await? {
            Outcome::Rescheduled
        } else {
            Outcome::Skipped
        })
    }

    /// The claims of the ID token a refresh of `s` returned, once it
    /// verified and names the session's user: the same `iss` and `sub`
    /// (OpenID Connect Core 12.2).
    async fn refreshed_claims(
        &self,
        s: &Session,
        id_token: &Value,
    ) -> Result<serde_json::Map<String, Value>, super::IdTokenRefusal> {
        let refuse = |code, detail: String| super::IdTokenRefusal {
            code,
            detail,
            transient: false,
        };
        let id_token = id_token
            .as_str()
            .ok_or_else(|| refuse("id_token_invalid", "`id_token` is not a string".to_owned()))?;
        let v = self.endpoint.verify_id_token(id_token).await?;
        if v.issuer != s.issuer {
            return Err(refuse(
                "id_token_other_issuer",
                format!("issued by `{}`", escape(&v.issuer)),
            ));
        }
        if v.subject.as_deref() != Some(s.subject.as_str()) {
            return Err(refuse(
                "id_token_other_user",
                "the refreshed ID token names another user than the session's".to_owned(),
            ));
        }
        Ok(v.claims)
    }

    async fn refresh_one(&self, key: &SessionKey, t: i64) -> Result<Outcome, RefreshError> {
        let other = |e: String| RefreshError::Other(e);
        let Some(s) = self.read(key).await? else {
            return Ok(Outcome::Skipped);
        };
        let (Some(blob), Some(exp)) = (&s.refresh_token, s.refresh_due()) else {
            return Ok(Outcome::Skipped);
        };
        if !s.is_live(t) {
            // Ended (idle or absolute timeout): off the schedule, and its
            // refresh token is of no use any more.
            let mut next = s.clone();
            next.refresh_token = None;
            next.provider_token_expires_at = None;
            return self.reschedule(&s, next).await;
        }
        if exp > t + REFRESH_MARGIN_SECS {
            // Not due: the schedule was written by an older version.
            // Writing the session again puts it in its place.
            return self.reschedule(&s, s.clone()).await;
        }
        // Claim the refresh: only the instance whose write wins spends the
        // refresh token. The claim also moves the session back in the
        // schedule: a failed refresh is retried after the lease.
        let mut claim = s.clone();
        claim.provider_token_expires_at = Some(t + REFRESH_LEASE_SECS + REFRESH_MARGIN_SECS);
        if !self.write(&s, claim).await? {
            return Ok(Outcome::Skipped);
        }
        let refresh = self
            .sealer
            .open(key, blob)
            .map_err(|e| other(e.to_string()))?;
        let refresh = std::str::from_utf8(&refresh)
            .map_err(|_| other("sealed refresh token is not text".to_owned()))?;
        let (status, body) = match self.endpoint.refresh(refresh).await {
            Ok(answer) => answer,
            Err(e) => {
                self.metrics.provider_refresh_failed("unreachable");
                return Err(other(e));
            }
        };
        if status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED {
            let code = body.get("error").and_then(Value::as_str).unwrap_or("");
            if code == "invalid_grant" {
                self.end(key).await?;
                tracing::info!(
                    session = %short(key),
                    subject = %escape(&s.subject),
                    "session ended: the provider refused to refresh its tokens (invalid_grant)"
                );
                return Ok(Outcome::Called);
            }
            // Not the user's grant: the gateway's client credentials or
            // its request. Ending sessions for that would log every user
            // out over a configuration slip.
            let reason = client_error_reason(code);
            self.metrics.provider_refresh_failed(reason);
            tracing::error!(
                status = status.as_u16(),
                error = %escape(code),
                "the provider refused the gateway's refresh request ({reason}): check oidc.client_id, \
                 the client secret and oidc.auth_method; sessions are kept and refreshes retried"
            );
            return Err(RefreshError::Client(format!(
                "token endpoint refused the gateway's client or request: {reason}"
            )));
        }
        if !status.is_success() {
            self.metrics.provider_refresh_failed("provider_error");
            return Err(other(format!(
                "token endpoint answered {status}; retrying after the lease"
            )));
        }
        // A refresh may bring a new ID token (OpenID Connect Core 12.2):
        // the user's claims as the provider sees them now (groups removed,
        // roles changed), which the session takes over. It must be valid
        // and about the same user: one that is not ends the session; one
        // that cannot be verified now keeps the claims as they are.
        let claims = match body.get("id_token") {
            None => None,
            Some(id_token) => match self.refreshed_claims(&s, id_token).await {
                Ok(claims) => Some(claims),
                // Keys unavailable or not yet holding the token's key,
                // clocks apart: not the user's doing. Ending every due
                // session during a key-endpoint outage would log everyone
                // out; the claims are kept and checked again at the next
                // refresh, and the new refresh token is stored.
                Err(refusal) if refusal.transient => {
                    self.metrics.provider_refresh_failed("id_token_unverified");
                    tracing::warn!(
                        session = %short(key),
                        reason = refusal.code,
                        detail = %refusal.detail,
                        "the ID token of a refresh could not be verified now; the session keeps its claims until the next refresh"
                    );
                    None
                }
                Err(super::IdTokenRefusal { code, detail, .. }) => {
                    self.end(key).await?;
                    self.metrics.provider_refresh_failed("id_token_invalid");
                    tracing::warn!(
                        session = %short(key),
                        subject = %escape(&s.subject),
                        reason = code,
                        detail = %detail,
                        "session ended: the ID token of its refresh was refused"
                    );
                    return Ok(Outcome::Called);
                }
            },
        };
        // Sealed once, whatever number of writes it takes to store.
        let new_refresh = body
            .get("refresh_token")
            .and_then(Value::as_str)
            .map(|r| self.sealer.seal(key, r.as_bytes()))
            .transpose()
            .map_err(|e| other(e.to_string()))?;
        let expires_in = body.get("expires_in").and_then(Value::as_i64);
        for _ in 0..CAS_RETRIES {
            let Some(cur) = self.read(key).await? else {
                return Ok(Outcome::Called);
            };
            let mut next = cur.clone();
            if let Some(sealed) = &new_refresh {
                next.refresh_token = Some(sealed.clone());
            }
            next.provider_token_expires_at = Some(super::provider_expiry(t, expires_in));
            // Unless a login (a step-up) changed the session since it was
            // read: its claims are newer than the refreshed grant's.
            if let Some(c) = &claims {
                if cur.auth_time == s.auth_time && cur.mfa_time == s.mfa_time {
                    next.claims = c.clone();
                }
            }
            if self.write(&cur, next).await? {
                tracing::debug!(session = %short(key), "provider tokens refreshed");
                return Ok(Outcome::Called);
            }
        }
        Err(other(
            "the session kept changing while its refresh was stored".to_owned(),
        ))
    }
}

/// The metric label of a refused refresh that is not `invalid_grant` (a
/// fixed set: the provider's text is not a label).
fn client_error_reason(code: &str) -> &'static str {
    match code {
        "invalid_client" => "invalid_client",
        "unauthorized_client" => "unauthorized_client",
        "invalid_request" => "invalid_request",
        "unsupported_grant_type" => "unsupported_grant_type",
        "invalid_scope" => "invalid_scope",
        _ => "other_client_error",
    }
}

#[cfg(test)]
mod tests;
