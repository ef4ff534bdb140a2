//! The store trait both backends implement.

use std::future::Future;
use std::pin::Pin;

use crate::{Session, SessionKey, SessionSummary, StoreError};

/// A boxed store future (the trait is used as `dyn SessionStore`).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The result of a compare-and-set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasOutcome {
    /// Written; the stored version is now the new session's version.
    Updated,
    /// Another writer changed the session first: here is what is stored
    /// now. Re-read, re-apply the change, try again.
    Conflict(Box<Session>),
    /// No such session (expired and collected, or never created).
    Missing,
}

/// Which sessions a listing or a bulk revocation covers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionFilter {
    /// Only this user's sessions (`sub`), any issuer.
    pub subject: Option<String>,
    /// Only sessions bound to this certificate thumbprint.
    pub thumbprint: Option<[u8; 32]>,
}

/// The authoritative session store. Every method is one round trip to the
/// store (or one transaction of the embedded file) and bounded by the
/// store's timeout; every failure is a [`StoreError`], never a default.
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Stores a new session (version 1). Fails if the key exists.
    fn create<'a>(&'a self, session: &'a Session) -> StoreFuture<'a, ()>;

    /// Reads a session, live or not (revoked and expired sessions are
    /// returned while the store still holds them, so callers can tell
    /// "revoked" from "unknown").
    fn get<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, Option<Session>>;

    /// Writes `session` (whose `version` must be `expected + 1`) only if
    /// the stored version is `expected`.
    fn compare_and_set<'a>(
        &'a self,
        session: &'a Session,
        expected: u64,
    ) -> StoreFuture<'a, CasOutcome>;

    /// Marks sessions revoked (bumping their version); returns how many
    /// were live and are now revoked. Exactly one of key / filter.
    fn revoke<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, bool>;
    fn revoke_matching<'a>(&'a self, filter: &'a SessionFilter) -> StoreFuture<'a, usize>;

    /// Lists sessions (no secrets), newest first, at most `limit`.
    fn list<'a>(
        &'a self,
        filter: &'a SessionFilter,
        limit: usize,
    ) -> StoreFuture<'a, Vec<SessionSummary>>;

    /// Keys of the sessions whose provider tokens are due for a refresh by
    /// `before` ([`Session::refresh_due`](crate::Session::refresh_due) at
    /// or before it), earliest first, at most `limit`. Revoked sessions
    /// and sessions without a refresh token are never listed, so they
    /// take no part of a refresh round's budget.
    fn due_for_refresh(&self, before: i64, limit: usize) -> StoreFuture<'_, Vec<SessionKey>>;

    /// Removes sessions whose absolute end is before `now`; returns how many.
    fn collect_expired(&self, now: i64) -> StoreFuture<'_, usize>;

    /// Checks the store answers (and accepts writes, where it can tell):
    /// used by `/readyz`.
    fn health(&self) -> StoreFuture<'_, ()>;

    /// `embedded` or `redis`, for logs and `/readyz`.
    fn kind(&self) -> &'static str;
}
