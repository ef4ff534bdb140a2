//! The Redis session store: several gateway instances share one
//! authoritative store.
//!
//! # Data model
//!
//! All keys start with the configured prefix `P` (default
//! `portcullis:`), so an ACL key pattern `~P*` covers them:
//!
//! | key | type | content |
//! | --- | --- | --- |
//! | `{P}s:{key hex}` | hash | `json`: the session (serde_json); `v`: the version; `r`: `1` when revoked. `EXPIREAT` = `expires_at` |
//! | `{P}u:{hex(sha256(sub))}` | set | keys of the user's sessions |
//! | `{P}t:{thumbprint hex}` | set | keys of the sessions bound to that certificate |
//! | `{P}ix` | hash | key → `{subject hash}:{thumbprint hex}`, to clean the sets after a record expired by TTL |
//! | `{P}c` | sorted set | keys by `created_at` (listing, newest first) |
//! | `{P}x` | sorted set | keys by `expires_at` (collection) |
//! | `{P}r` | sorted set | keys by [`Session::refresh_due`] (the provider-token refresh schedule): revoked sessions and those without a refresh token are not in it |
//! | `{P}health` | string | written by `health()` with a short TTL |
//!
//! `{key hex}` is the [`SessionKey`](crate::SessionKey) (SHA-256 of the
//! cookie's id): the store never sees the id itself.
//!
//! `v` and `r` are the truth for version and revocation: compare-and-set
//! compares `v` without decoding the JSON, and a revocation writes only
//! `r` and `v` (the JSON is left as written; reads merge the fields in).
//! A revoked session stays revoked: a compare-and-set cannot clear `r`.
//!
//! The server deletes a record at its `expires_at` (TTL); its index
//! entries stay until `collect_expired` removes them (by `expires_at`,
//! whether or not the TTL already fired). Listings and bulk revocations
//! skip entries whose record is gone.
//!
//! # Round trips
//!
//! `get` is one `HMGET`. `create`, `compare_and_set`, `revoke`,
//! `revoke_matching`, `list` and `due_for_refresh` are one `EVALSHA` each (a Lua script that
//! runs atomically; after a server restart the first call also loads the
//! script). `collect_expired` runs its script in batches of
//! [`REDIS_COLLECT_BATCH`]. `health` is `PING` plus a `SET` with `PX`, so a
//! read-only replica or a server out of memory reports unhealthy.
//!
//! Scripts that only revoke or delete run even when the server is over
//! `maxmemory` (a revocation must not wait for memory); `create` and
//! `compare_and_set` get `OutOfMemory`, reads keep working.
//!
//! # Failures
//!
//! Every operation is bounded by `op_timeout` ([`StoreError::Timeout`]).
//! Connection refused or lost is `Unavailable`, `READONLY` is `ReadOnly`,
//! `OOM` is `OutOfMemory`, `NOPERM`/`WRONGPASS`/`NOAUTH` are
//! `PermissionDenied`, an undecodable record is `Corrupt`. The connection
//! is rebuilt by itself: service resumes when the server returns, without
//! a new store. Nothing is cached: every read goes to the server.
//!
//! # Access
//!
//! The gateway's Redis user needs the key pattern of the prefix and the
//! commands in [`REDIS_ACL_COMMANDS`], e.g.
//! `ACL SETUSER gateway on >… resetkeys ~portcullis:* resetchannels -@all
//! +ping +hmget …`.
//!
//! This module does not run Redis, Sentinel or Cluster topology
//! discovery: it talks to one endpoint (a primary, or a proxy in front of
//! one).

mod link;
mod record;
mod scripts;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisResult, Value};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rustls_pki_types::CertificateDer;
use zeroize::Zeroizing;

use self::link::{breaks_connection, map_error, Link};
use self::record::{decode_fields, encode, hex, index_fields, revoked_flag, subject_hash};
use self::scripts::Scripts;
use crate::{
    CasOutcome, Session, SessionFilter, SessionKey, SessionStore, SessionSummary, StoreError,
    StoreFuture,
};

pub use self::link::{REDIS_RECONNECT_BACKOFF, REDIS_TIMEOUTS_BEFORE_RECONNECT};
pub use self::record::MAX_REDIS_RECORD_BYTES;

/// Default bound on one operation: a session check is on every request,
/// so a store that does not answer within half a second is treated as
/// down (503) rather than holding requests.
pub const DEFAULT_REDIS_OP_TIMEOUT: Duration = Duration::from_millis(500);

/// Default bound on establishing a connection (TCP, TLS, `AUTH`).
pub const DEFAULT_REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Default key prefix: one namespace per deployment, matched by the ACL.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "portcullis:";

/// Longest key prefix: it is repeated in every key.
pub const MAX_REDIS_KEY_PREFIX_LEN: usize = 64;

/// Most sessions one `list` returns: a listing is one script run, and
/// Redis serves nothing else while it runs.
pub const MAX_REDIS_LIST_LIMIT: usize = 10_000;

/// Sessions removed per `collect_expired` script run: keeps each run
/// short so other clients are not held up.
pub const REDIS_COLLECT_BATCH: usize = 500;

/// Lifetime of the key `health()` writes: long enough to be seen, short
/// enough never to accumulate.
pub const REDIS_HEALTH_KEY_TTL: Duration = Duration::from_secs(10);

/// The commands the store's Redis user needs (the scripts' commands
/// included), in ACL syntax.
pub const REDIS_ACL_COMMANDS: &str = "+ping +hmget +set +evalsha +script|load \
     +exists +hget +hset +hincrby +hdel +expireat +del +sadd +srem +smembers +sinter \
     +zadd +zrem +zrangebyscore +zrevrange";

/// How to reach Redis.
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://host:port[/db]` or `rediss://host:port[/db]` (TLS; a
    /// database other than 0 also needs `+select` in the ACL).
    /// Credentials go in `username` / `password`, never in the URL.
    pub url: String,
    /// The ACL user (`None`: `default`).
    pub username: Option<String>,
    /// Never logged, never in errors or `Debug`.
    pub password: Option<Zeroizing<String>>,
    /// Trust anchors for `rediss://` (`None`: the system's roots).
    pub tls_roots: Option<Vec<CertificateDer<'static>>>,
    /// Bound on every operation.
    pub op_timeout: Duration,
    /// Bound on establishing a connection.
    pub connect_timeout: Duration,
    /// Prefix of every key the store writes.
    pub key_prefix: String,
}

impl RedisOptions {
    /// Options for `url` with the defaults: no credentials, system roots,
    /// [`DEFAULT_REDIS_OP_TIMEOUT`], [`DEFAULT_REDIS_CONNECT_TIMEOUT`],
    /// [`DEFAULT_REDIS_KEY_PREFIX`].
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            username: None,
            password: None,
            tls_roots: None,
            op_timeout: DEFAULT_REDIS_OP_TIMEOUT,
            connect_timeout: DEFAULT_REDIS_CONNECT_TIMEOUT,
            key_prefix: DEFAULT_REDIS_KEY_PREFIX.to_owned(),
        }
    }
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls_roots", &self.tls_roots.as_ref().map(Vec::len))
            .field("op_timeout", &self.op_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

/// `url` with any user info replaced (such a URL is refused, but may be
/// shown before it is).
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let (head, _) = url.split_at(scheme_end.saturating_add(3));
            let (_, tail) = url.split_at(at);
            format!("{head}<redacted>{tail}")
        }
        (None, Some(_)) => "<redacted>".to_owned(),
        _ => url.to_owned(),
    }
}

/// The Redis [`SessionStore`].
pub struct RedisStore {
    link: Link,
    scripts: Scripts,
    prefix: String,
    op_timeout: Duration,
    /// `host:port` and whether TLS is used, for `Debug`.
    endpoint: String,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .field("op_timeout", &self.op_timeout)
            .finish_non_exhaustive()
    }
}

/// Checks the options and builds the client (no I/O).
fn client(options: &RedisOptions) -> Result<(Client, String), StoreError> {
    let url = options.url.as_str();
    let tls = if url.starts_with("rediss://") {
        true
    } else if url.starts_with("redis://") {
        false
    } else {
        return Err(StoreError::Invalid(
            "the redis url must start with `redis://` or `rediss://`",
        ));
    };
    if url.contains('@') {
        return Err(StoreError::Invalid(
            "credentials in the redis url are not accepted; set username and password",
        ));
    }
    if url.contains('#') || url.contains('?') {
        // `#insecure` would turn off certificate verification.
        return Err(StoreError::Invalid(
            "the redis url must not have a query or fragment",
        ));
    }
    if options.tls_roots.is_some() && !tls {
        return Err(StoreError::Invalid("tls roots need a `rediss://` url"));
    }
    if options.op_timeout.is_zero() || options.connect_timeout.is_zero() {
        return Err(StoreError::Invalid("redis timeouts must be positive"));
    }
    let prefix = options.key_prefix.as_str();
    if prefix.is_empty()
        || prefix.len() > MAX_REDIS_KEY_PREFIX_LEN
        || !prefix.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(StoreError::Invalid(
            "the redis key prefix must be 1 to 64 printable characters without spaces",
        ));
    }

    let info = url
        .into_connection_info()
        .map_err(|_| StoreError::Invalid("the redis url does not parse"))?;
    let endpoint = match info.addr() {
        ConnectionAddr::Tcp(host, port) => format!("redis://{host}:{port}"),
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            ..
        } => format!("rediss://{host}:{port}"),
        _ => {
            return Err(StoreError::Invalid(
                "the redis url must name a tcp endpoint",
            ))
        }
    };
    let mut settings = info.redis_settings().clone();
    if let Some(user) = &options.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &options.password {
        settings = settings.set_password(password.as_str());
    }
    let info = info.set_redis_settings(settings);

    let client = match &options.tls_roots {
        Some(roots) => {
            if roots.is_empty() {
                return Err(StoreError::Invalid("the tls root list is empty"));
            }
            Client::build_with_tls(
                info,
                ::redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem(roots)),
                },
            )
        }
        None => Client::open(info),
    }
    .map_err(|_| StoreError::Invalid("the redis connection settings are invalid"))?;
    Ok((client, endpoint))
}

/// PEM text of certificates (what the Redis client's TLS setup reads).
fn pem(certs: &[CertificateDer<'static>]) -> Vec<u8> {
    let mut out = String::new();
    for cert in certs {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = B64.encode(cert.as_ref());
        let mut rest = b64.as_str();
        while !rest.is_empty() {
            let (line, tail) = rest.split_at(rest.len().min(64));
            out.push_str(line);
            out.push('\n');
            rest = tail;
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out.into_bytes()
}

/// A filter with empty strings read as absent: (subject hash or "",
/// thumbprint hex or "").
fn filter_fields(filter: &SessionFilter) -> (String, String) {
    let subject = filter
        .subject
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(subject_hash)
        .unwrap_or_default();
    let thumbprint = filter.thumbprint.map(|t| hex(&t)).unwrap_or_default();
    (subject, thumbprint)
}

/// The refresh-schedule score of a session, or "" when it is off the
/// schedule.
fn due_arg(session: &Session) -> String {
    session
        .refresh_due()
        .map(|d| d.to_string())
        .unwrap_or_default()
}

fn as_count(n: i64) -> Result<usize, StoreError> {
    usize::try_from(n).map_err(|_| StoreError::Corrupt("negative count from the server".into()))
}

impl RedisStore {
    /// Connects (and authenticates) once, so a wrong address or password
    /// shows at startup. Later failures are handled per operation.
    pub async fn connect(options: RedisOptions) -> Result<RedisStore, StoreError> {
        let (client, endpoint) = client(&options)?;
        let store = RedisStore {
            link: Link::new(client, options.connect_timeout),
            scripts: Scripts::new(),
            prefix: options.key_prefix,
            op_timeout: options.op_timeout,
            endpoint,
        };
        store.link.get().await?;
        Ok(store)
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    fn record_key(&self, key: &SessionKey) -> String {
        format!("{}s:{}", self.prefix, key.to_hex())
    }

    /// Runs `op` on the current connection within the operation timeout.
    /// `idempotent` operations (reads, the health probe) are retried once
    /// on a fresh connection when the current one turns out broken (a
    /// server restart); writes never (the write may have been applied).
    async fn run<R, F, Fut>(&self, idempotent: bool, op: F) -> Result<R, StoreError>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<R>>,
    {
        let generation = AtomicU64::new(0);
        let attempt = async {
            let mut retried = false;
            loop {
                let (g, conn) = self.link.get().await?;
                generation.store(g, Ordering::Relaxed);
                match op(conn).await {
                    Ok(r) => {
                        self.link.succeeded(g);
                        return Ok(r);
                    }
                    Err(e) => {
                        self.link.failed(g, &e);
                        if idempotent && !retried && breaks_connection(&e) {
                            retried = true;
                            continue;
                        }
                        let err = map_error(&e);
                        tracing::debug!(reason = err.reason(), "session store operation failed");
                        return Err(err);
                    }
                }
            }
        };
        match tokio::time::timeout(self.op_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => {
                let g = generation.load(Ordering::Relaxed);
                if g != 0 {
                    self.link.timed_out(g);
                }
                tracing::debug!("session store operation timed out");
                Err(StoreError::Timeout(self.op_timeout))
            }
        }
    }

    async fn create_impl(&self, session: &Session) -> Result<(), StoreError> {
        if session.version != 1 {
            return Err(StoreError::Invalid("a new session must have version 1"));
        }
        let json = encode(session)?;
        let (subject, thumbprint) = index_fields(session);
        let record = self.record_key(&session.key);
        let key_hex = session.key.to_hex();
        let created: i64 = self
            .run(false, |mut conn| {
                let mut call = self.scripts.create.key(&record);
                call.arg(&self.prefix)
                    .arg(&key_hex)
                    .arg(&json)
                    .arg(revoked_flag(session.revoked))
                    .arg(session.created_at)
                    .arg(session.expires_at)
                    .arg(&subject)
                    .arg(&thumbprint)
                    .arg(due_arg(session));
                async move { call.invoke_async(&mut conn).await }
            })
            .await?;
        if created == 1 {
            Ok(())
        } else {
            Err(StoreError::Invalid("a session with this key exists"))
        }
    }

    async fn get_impl(&self, key: &SessionKey) -> Result<Option<Session>, StoreError> {
        let record = self.record_key(key);
        let fields: Vec<Option<Vec<u8>>> = self
            .run(true, |mut conn| {
                let mut cmd = ::redis::cmd("HMGET");
                cmd.arg(&record).arg("json").arg("v").arg("r");
                async move { cmd.query_async(&mut conn).await }
            })
            .await?;
        decode_fields(&fields, Some(key))
    }

    async fn cas_impl(&self, session: &Session, expected: u64) -> Result<CasOutcome, StoreError> {
        if expected.checked_add(1) != Some(session.version) {
            return Err(StoreError::Invalid(
                "the new version must be the expected version plus one",
            ));
        }
        let json = encode(session)?;
        let (subject, thumbprint) = index_fields(session);
        let record = self.record_key(&session.key);
        let key_hex = session.key.to_hex();
        let reply: Value = self
            .run(false, |mut conn| {
                let mut call = self.scripts.cas.key(&record);
                call.arg(&self.prefix)
                    .arg(&key_hex)
                    .arg(expected)
                    .arg(session.version)
                    .arg(&json)
                    .arg(revoked_flag(session.revoked))
                    .arg(session.created_at)
                    .arg(session.expires_at)
                    .arg(&subject)
                    .arg(&thumbprint)
                    .arg(due_arg(session));
                async move { call.invoke_async(&mut conn).await }
            })
            .await?;
        match reply {
            Value::Int(0) => Ok(CasOutcome::Missing),
            Value::Int(1) => Ok(CasOutcome::Updated),
            Value::Array(items) => {
                let fields = items
                    .into_iter()
                    .map(|v| match v {
                        Value::BulkString(b) => Ok(Some(b)),
                        Value::Nil => Ok(None),
                        _ => Err(StoreError::Corrupt(
                            "unexpected reply from the server".into(),
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                match decode_fields(&fields, Some(&session.key))? {
                    Some(current) => Ok(CasOutcome::Conflict(Box::new(current))),
                    None => Ok(CasOutcome::Missing),
                }
            }
            _ => Err(StoreError::Corrupt(
                "unexpected reply from the server".into(),
            )),
        }
    }

    async fn revoke_impl(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let record = self.record_key(key);
        let key_hex = key.to_hex();
        let n: i64 = self
            .run(false, |mut conn| {
                let mut call = self.scripts.revoke.key(&record);
                call.arg(&self.prefix).arg(&key_hex);
                async move { call.invoke_async(&mut conn).await }
            })
            .await?;
        Ok(n == 1)
    }

    async fn revoke_matching_impl(&self, filter: &SessionFilter) -> Result<usize, StoreError> {
        let (subject, thumbprint) = filter_fields(filter);
        if subject.is_empty() && thumbprint.is_empty() {
            return Err(StoreError::Invalid(
                "refusing to revoke with an empty filter",
            ));
        }
        let n: i64 = self
            .run(false, |mut conn| {
                let mut call = self.scripts.revoke_matching.prepare_invoke();
                call.arg(&self.prefix).arg(&subject).arg(&thumbprint);
                async move { call.invoke_async(&mut conn).await }
            })
            .await?;
        as_count(n)
    }

    async fn list_impl(
        &self,
        filter: &SessionFilter,
        limit: usize,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let limit = limit.min(MAX_REDIS_LIST_LIMIT);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (subject, thumbprint) = filter_fields(filter);
        let flat: Vec<Option<Vec<u8>>> = self
            .run(true, |mut conn| {
                let mut call = self.scripts.list.prepare_invoke();
                call.arg(&self.prefix)
                    .arg(&subject)
                    .arg(&thumbprint)
                    .arg(limit);
                async move { call.invoke_async(&mut conn).await }
            })
            .await?;
        let want_subject = filter.subject.as_deref().filter(|s| !s.is_empty());
        let mut sessions = Vec::with_capacity(flat.len() / 3);
        for triple in flat.chunks(3) {
            let Some(session) = decode_fields(triple, None)? else {
                continue;
            };
            // The indexes are keyed by hashes: check the values themselves.
            if want_subject.is_some_and(|s| s != session.subject)
                || filter
                    .thumbprint
                    .is_some_and(|t| session.bound_thumbprint != Some(t))
            {
                continue;
            }
            sessions.push(session);
        }
        sessions.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.key.cmp(&a.key)));
        sessions.truncate(limit);
        Ok(sessions.iter().map(Session::summary).collect())
    }

    async fn due_impl(&self, before: i64, limit: usize) -> Result<Vec<SessionKey>, StoreError> {
        let limit = limit.min(MAX_REDIS_LIST_LIMIT);
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Not idempotent: the script drops entries of records that are gone.
        let keys: Vec<String> = self
            .run(false, |mut conn| {
                let mut call = self.scripts.due.prepare_invoke();
                call.arg(&self.prefix).arg(before).arg(limit);
                async move { call.invoke_async(&mut conn).await }
            })
            .await?;
        keys.iter()
            .map(|k| {
                SessionKey::from_hex(k)
                    .ok_or_else(|| StoreError::Corrupt("bad key in the refresh schedule".into()))
            })
            .collect()
    }

    async fn collect_impl(&self, now: i64) -> Result<usize, StoreError> {
        let mut total = 0usize;
        loop {
            let n: i64 = self
                .run(false, |mut conn| {
                    let mut call = self.scripts.collect.prepare_invoke();
                    call.arg(&self.prefix).arg(now).arg(REDIS_COLLECT_BATCH);
                    async move { call.invoke_async(&mut conn).await }
                })
                .await?;
            let n = as_count(n)?;
            total = total.saturating_add(n);
            if n < REDIS_COLLECT_BATCH {
                return Ok(total);
            }
        }
    }

    async fn health_impl(&self) -> Result<(), StoreError> {
        let key = format!("{}health", self.prefix);
        let ttl_ms = u64::try_from(REDIS_HEALTH_KEY_TTL.as_millis()).unwrap_or(u64::MAX);
        self.run(true, |mut conn| {
            let ping = ::redis::cmd("PING");
            let mut set = ::redis::cmd("SET");
            set.arg(&key).arg("1").arg("PX").arg(ttl_ms);
            async move {
                ping.query_async::<()>(&mut conn).await?;
                set.query_async::<()>(&mut conn).await
            }
        })
        .await
    }
}

impl SessionStore for RedisStore {
    fn create<'a>(&'a self, session: &'a Session) -> StoreFuture<'a, ()> {
        Box::pin(self.create_impl(session))
    }

    fn get<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, Option<Session>> {
        Box::pin(self.get_impl(key))
    }

    fn compare_and_set<'a>(
        &'a self,
        session: &'a Session,
        expected: u64,
    ) -> StoreFuture<'a, CasOutcome> {
        Box::pin(self.cas_impl(session, expected))
    }

    fn revoke<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, bool> {
        Box::pin(self.revoke_impl(key))
    }

    fn revoke_matching<'a>(&'a self, filter: &'a SessionFilter) -> StoreFuture<'a, usize> {
        Box::pin(self.revoke_matching_impl(filter))
    }

    fn list<'a>(
        &'a self,
        filter: &'a SessionFilter,
        limit: usize,
    ) -> StoreFuture<'a, Vec<SessionSummary>> {
        Box::pin(self.list_impl(filter, limit))
    }

    fn due_for_refresh(&self, before: i64, limit: usize) -> StoreFuture<'_, Vec<SessionKey>> {
        Box::pin(self.due_impl(before, limit))
    }

    fn collect_expired(&self, now: i64) -> StoreFuture<'_, usize> {
        Box::pin(self.collect_impl(now))
    }

    fn health(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.health_impl())
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests;
