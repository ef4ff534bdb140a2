//! Browser sessions of Portcullis.
//!
//! A session is created by the gateway after an OpenID Connect login and
//! referenced by a cookie holding only an unguessable [`SessionId`]. The
//! store never sees that id: it keys sessions by the SHA-256 of it
//! ([`SessionKey`]), so a dump of the store cannot be replayed as cookies.
//!
//! Everything security-relevant (revoked, MFA time, version) lives in the
//! authoritative store behind the [`SessionStore`] trait, with two
//! backends: an embedded `redb` file (the default, survives restarts) and
//! Redis (several gateway instances). Updates are compare-and-set on the
//! session's version, so concurrent writers never lose a write. Every store
//! error is an error: callers fail closed, never "allowed from cache".
//!
//! Refresh tokens are sealed with AES-256-GCM ([`Sealer`]) under a key from
//! the configuration, bound to the session key as associated data.
//!
//! This crate does no HTTP and knows nothing of OpenID Connect; the gateway
//! does the login and decides what a session may do.

mod embedded;
mod error;
mod id;
mod redis;
mod seal;
mod session;
mod store;

pub use crate::redis::{
    RedisOptions, RedisStore, DEFAULT_REDIS_CONNECT_TIMEOUT, DEFAULT_REDIS_KEY_PREFIX,
    DEFAULT_REDIS_OP_TIMEOUT, MAX_REDIS_KEY_PREFIX_LEN, MAX_REDIS_LIST_LIMIT,
    MAX_REDIS_RECORD_BYTES, REDIS_ACL_COMMANDS, REDIS_COLLECT_BATCH, REDIS_HEALTH_KEY_TTL,
    REDIS_RECONNECT_BACKOFF, REDIS_TIMEOUTS_BEFORE_RECONNECT,
};
pub use embedded::{
    EmbeddedOptions, EmbeddedStore, EMBEDDED_CACHE_BYTES, EMBEDDED_COLLECT_BATCH,
    EMBEDDED_FILE_MODE, EMBEDDED_MAX_LIST, EMBEDDED_MAX_RECORD_BYTES, EMBEDDED_OP_TIMEOUT,
    EMBEDDED_REOPEN_INTERVAL,
};
pub use error::StoreError;
pub use id::{SessionId, SessionKey, SESSION_ID_BYTES};
pub use seal::{SealError, SealedBlob, Sealer, SEAL_KEY_BYTES};
pub use session::{Session, SessionSummary};
pub use store::{CasOutcome, SessionFilter, SessionStore, StoreFuture};
