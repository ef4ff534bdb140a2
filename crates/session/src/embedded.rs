//! The embedded session store: one `redb` file, ACID, no setup, survives
//! restarts. The default store of a single gateway instance; it cannot be
//! shared between processes (the file is locked) — use Redis for that.
//!
//! Layout: `sessions` maps the 32 key bytes to the session as JSON; the
//! indexes `by_subject` (sub, key), `by_thumbprint` (thumbprint, key),
//! `by_expiry` (expires_at, key), `by_created` (created_at, key) and
//! `by_refresh` ([`Session::refresh_due`], key) are kept in the same write
//! transaction as the record they point to.
//!
//! Reads (`get`) run inline on the calling task: a read transaction
//! served from redb's page cache costs about 3 µs in `benches/embedded.rs`
//! (10 000 sessions), where a hop to the blocking pool alone costs over
//! 20 µs. An inline read cannot be cut short by the timeout; it only
//! touches the disk when a page is not cached. Everything that writes (and
//! so may `fsync`) or scans runs on tokio's blocking pool, bounded by
//! [`EmbeddedOptions::op_timeout`]. A write that times out may still
//! commit afterwards; the caller has already failed closed.
//!
//! After an I/O error redb refuses every later operation on that handle;
//! the store then drops it and reopens the file (at most once per
//! [`EMBEDDED_REOPEN_INTERVAL`]), so service resumes by itself once the
//! disk has space again or the file is writable again.

use std::fmt;
use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redb::backends::FileBackend;
use redb::{
    Builder, Database, ReadableDatabase as _, ReadableTable, ReadableTableMetadata as _,
    StorageBackend, Table, TableDefinition, WriteTransaction,
};

use crate::{CasOutcome, Session, SessionFilter, SessionKey, SessionStore, SessionSummary};
use crate::{StoreError, StoreFuture};

/// Default bound on one store operation: a healthy local disk commits in
/// milliseconds; two seconds means the disk is stalled and the gateway
/// should answer 503 rather than hold the request.
pub const EMBEDDED_OP_TIMEOUT: Duration = Duration::from_secs(2);

/// redb's page cache: enough for a few hundred thousand session records
/// without letting the store grow the gateway's memory without bound.
pub const EMBEDDED_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Largest session record (JSON) the store accepts: claims come from the
/// OpenID provider and every request reads the record, so it is bounded.
pub const EMBEDDED_MAX_RECORD_BYTES: usize = 64 * 1024;

/// Most summaries one `list` returns, whatever the caller asks: bounds the
/// memory and the read transaction of one listing.
pub const EMBEDDED_MAX_LIST: usize = 10_000;

/// Expired sessions removed per write transaction by `collect_expired`
/// (it runs several in a row): bounds how long one sweep holds the
/// writer lock between requests' writes.
pub const EMBEDDED_COLLECT_BATCH: usize = 1_000;

/// Least time between two attempts to reopen the file after an I/O error:
/// a reopen verifies the whole file, so a broken disk is not re-read on
/// every request.
pub const EMBEDDED_REOPEN_INTERVAL: Duration = Duration::from_secs(1);

/// Unix permissions of the store file: it holds claims and sealed tokens,
/// readable by the gateway's user only.
pub const EMBEDDED_FILE_MODE: u32 = 0o600;

type KeyBytes = &'static [u8; 32];

const SESSIONS: TableDefinition<'static, KeyBytes, &'static [u8]> =
    TableDefinition::new("sessions");
const BY_SUBJECT: TableDefinition<'static, (&'static str, KeyBytes), ()> =
    TableDefinition::new("by_subject");
const BY_THUMBPRINT: TableDefinition<'static, (KeyBytes, KeyBytes), ()> =
    TableDefinition::new("by_thumbprint");
const BY_EXPIRY: TableDefinition<'static, (i64, KeyBytes), ()> = TableDefinition::new("by_expiry");
const BY_CREATED: TableDefinition<'static, (i64, KeyBytes), ()> =
    TableDefinition::new("by_created");
const BY_REFRESH: TableDefinition<'static, (i64, KeyBytes), ()> =
    TableDefinition::new("by_refresh");
const HEALTH: TableDefinition<'static, &'static str, i64> = TableDefinition::new("health");
/// Set in `health` once `by_refresh` holds every session: a file written
/// by a version without that index is indexed once, when it is opened.
const REFRESH_INDEX_MARKER: &str = "by_refresh_complete";

const KEY_MIN: [u8; 32] = [0; 32];
const KEY_MAX: [u8; 32] = [0xff; 32];

/// Options of the embedded store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedOptions {
    /// Bound on one write, scan or health check.
    pub op_timeout: Duration,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            op_timeout: EMBEDDED_OP_TIMEOUT,
        }
    }
}

/// Opens the database; called again to reopen after an I/O error.
type Opener = dyn Fn() -> Result<Database, StoreError> + Send + Sync;

/// The embedded (redb) session store. Cheap to clone: clones share the
/// open file.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The file path, for logs.
    label: String,
    opener: Box<Opener>,
    /// `None` after an I/O error, until a reopen succeeds.
    db: RwLock<Option<Arc<Database>>>,
    /// When the last reopen was tried; serializes reopens.
    last_reopen: Mutex<Option<Instant>>,
    reopen_interval: Duration,
    op_timeout: Duration,
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.label)
            .field("op_timeout", &self.inner.op_timeout)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens the store file at `path`, creating it (mode 0600) if absent.
    /// The directory must exist. An existing file readable by others is
    /// restricted to 0600; a file without the owner's write permission is
    /// refused as read-only. Blocking: call it at startup (or from
    /// `spawn_blocking`).
    pub fn open(path: &Path, options: EmbeddedOptions) -> Result<EmbeddedStore, StoreError> {
        let owned: PathBuf = path.to_path_buf();
        let label = path.display().to_string();
        let opener = move || open_database(&owned, FileBackend::new(open_file(&owned)?));
        Self::with_opener(label, Box::new(opener), options, EMBEDDED_REOPEN_INTERVAL)
    }

    fn with_opener(
        label: String,
        opener: Box<Opener>,
        options: EmbeddedOptions,
        reopen_interval: Duration,
    ) -> Result<EmbeddedStore, StoreError> {
        let db = opener()?;
        tracing::debug!(path = %label, "session store opened");
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                label,
                opener,
                db: RwLock::new(Some(Arc::new(db))),
                last_reopen: Mutex::new(None),
                reopen_interval,
                op_timeout: options.op_timeout,
            }),
        })
    }

    /// Runs `op` on the blocking pool against the open database, bounded
    /// by the operation timeout.
    async fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        let limit = inner.op_timeout;
        let task = tokio::task::spawn_blocking(move || {
            let db = inner.database()?;
            let out = op(&db);
            if let Err(e) = &out {
                inner.after_error(&db, e);
            }
            out
        });
        match tokio::time::timeout(limit, task).await {
            Err(_) => Err(StoreError::Timeout(limit)),
            Ok(Err(_)) => Err(StoreError::Unavailable("session store task failed".into())),
            Ok(Ok(out)) => out,
        }
    }

    async fn get_session(&self, key: SessionKey) -> Result<Option<Session>, StoreError> {
        // INVARIANT: the inline path never reopens (a reopen reads the
        // whole file); without an open handle the read goes to the pool.
        match self.inner.current() {
            Some(db) => {
                let out = read_session(&db, &key);
                if let Err(e) = &out {
                    self.inner.after_error(&db, e);
                }
                out
            }
            None => self.blocking(move |db| read_session(db, &key)).await,
        }
    }
}

impl Inner {
    fn current(&self) -> Option<Arc<Database>> {
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The open database, reopening it if an I/O error closed it (at most
    /// once per [`EMBEDDED_REOPEN_INTERVAL`]). Blocking.
    fn database(&self) -> Result<Arc<Database>, StoreError> {
        if let Some(db) = self.current() {
            return Ok(db);
        }
        let mut last = self
            .last_reopen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(db) = self.current() {
            return Ok(db);
        }
        if last.is_some_and(|at| at.elapsed() < self.reopen_interval) {
            return Err(StoreError::Unavailable(
                "session store is closed after an i/o error; reopening".into(),
            ));
        }
        *last = Some(Instant::now());
        let db = Arc::new((self.opener)()?);
        *self.db.write().unwrap_or_else(PoisonError::into_inner) = Some(db.clone());
        tracing::info!(path = %self.label, "session store reopened");
        Ok(db)
    }

    /// After an error from `db`: an I/O failure poisons a redb handle, so
    /// drop it; the next operation reopens the file.
    fn after_error(&self, db: &Arc<Database>, error: &StoreError) {
        let io_failure = matches!(
            error,
            StoreError::Unavailable(_)
                | StoreError::OutOfMemory(_)
                | StoreError::ReadOnly(_)
                | StoreError::PermissionDenied(_)
        );
        if !io_failure {
            return;
        }
        let mut slot = self.db.write().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, db)) {
            *slot = None;
            tracing::warn!(
                path = %self.label,
                reason = error.reason(),
                "session store closed after an error; it will be reopened"
            );
        }
    }
}

// ---------------------------------------------------------------- opening

/// Opens (or creates, mode 0600) the store file for reading and writing.
fn open_file(path: &Path) -> Result<File, StoreError> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(meta) => {
            if !meta.is_file() {
                return Err(StoreError::Unavailable(format!(
                    "`{shown}` is not a regular file"
                )));
            }
            // Checked here, not left to open(2): root may write to any file.
            if meta.permissions().mode() & 0o200 == 0 {
                return Err(StoreError::ReadOnly(format!(
                    "`{shown}` is not writable by its owner"
                )));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(open_error(path, &e)),
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(EMBEDDED_FILE_MODE)
        .open(path)
        .map_err(|e| open_error(path, &e))?;
    let meta = file.metadata().map_err(|e| open_error(path, &e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        file.set_permissions(Permissions::from_mode(EMBEDDED_FILE_MODE))
            .map_err(|e| open_error(path, &e))?;
        tracing::warn!(path = %shown, "session store file was readable by others; restricted to 0600");
    }
    Ok(file)
}

fn open_error(path: &Path, e: &io::Error) -> StoreError {
    let shown = path.display();
    if e.kind() == io::ErrorKind::NotFound {
        let parent_missing = path
            .parent()
            .is_some_and(|dir| !dir.as_os_str().is_empty() && !dir.exists());
        return StoreError::Unavailable(if parent_missing {
            format!("cannot open `{shown}`: its directory does not exist")
        } else {
            format!("cannot create `{shown}`: {e}")
        });
    }
    match io_error(e) {
        StoreError::PermissionDenied(m) => {
            StoreError::PermissionDenied(format!("cannot open `{shown}`: {m}"))
        }
        StoreError::ReadOnly(m) => StoreError::ReadOnly(format!("cannot open `{shown}`: {m}")),
        StoreError::OutOfMemory(m) => {
            StoreError::OutOfMemory(format!("cannot open `{shown}`: {m}"))
        }
        other => StoreError::Unavailable(format!("cannot open `{shown}`: {other}")),
    }
}

/// Opens the database on `backend` and creates the tables.
fn open_database(path: &Path, backend: impl StorageBackend) -> Result<Database, StoreError> {
    let db = Builder::new()
        .set_cache_size(EMBEDDED_CACHE_BYTES)
        // A file damaged outside redb is reported, not trusted.
        .set_check_integrity_on_open(true)
        .create_with_backend(backend)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen
            | redb::DatabaseError::LockProtocolMismatch => StoreError::Unavailable(format!(
                "`{}` is already open by another session store (in this or another process)",
                path.display()
            )),
            other => match redb_error(other) {
                StoreError::Unavailable(m) => {
                    StoreError::Unavailable(format!("cannot open `{}`: {m}", path.display()))
                }
                mapped => mapped,
            },
        })?;
    let txn = db.begin_write().map_err(redb_error)?;
    {
        txn.open_table(SESSIONS).map_err(redb_error)?;
        txn.open_table(BY_SUBJECT).map_err(redb_error)?;
        txn.open_table(BY_THUMBPRINT).map_err(redb_error)?;
        txn.open_table(BY_EXPIRY).map_err(redb_error)?;
        txn.open_table(BY_CREATED).map_err(redb_error)?;
        let mut by_refresh = txn.open_table(BY_REFRESH).map_err(redb_error)?;
        let mut health = txn.open_table(HEALTH).map_err(redb_error)?;
        if health
            .get(REFRESH_INDEX_MARKER)
            .map_err(redb_error)?
            .is_none()
        {
            let sessions = txn.open_table(SESSIONS).map_err(redb_error)?;
            for entry in sessions.iter().map_err(redb_error)? {
                let (k, v) = entry.map_err(redb_error)?;
                // A record that does not decode is reported when it is read.
                if let Ok(s) = decode(k.value(), v.value()) {
                    if let Some(due) = s.refresh_due() {
                        by_refresh
                            .insert((due, k.value()), ())
                            .map_err(redb_error)?;
                    }
                }
            }
            health.insert(REFRESH_INDEX_MARKER, 1).map_err(redb_error)?;
        }
    }
    txn.commit().map_err(redb_error)?;
    Ok(db)
}

// ---------------------------------------------------------------- errors

/// Maps an I/O error to the store's reasons. The messages carry the OS
/// error only, never data.
fn io_error(e: &io::Error) -> StoreError {
    use io::ErrorKind as K;
    match e.kind() {
        K::StorageFull | K::QuotaExceeded => StoreError::OutOfMemory(format!("no space left: {e}")),
        K::PermissionDenied => StoreError::PermissionDenied(format!("permission denied: {e}")),
        K::ReadOnlyFilesystem => StoreError::ReadOnly(format!("read-only file system: {e}")),
        _ => StoreError::Unavailable(format!("i/o error: {e}")),
    }
}

fn redb_error(e: impl Into<redb::Error>) -> StoreError {
    match e.into() {
        redb::Error::Io(io) => io_error(&io),
        redb::Error::Corrupted(m) => StoreError::Corrupt(format!("the store file is damaged: {m}")),
        redb::Error::ValueTooLarge(_) => StoreError::Invalid("session record too large"),
        redb::Error::DatabaseAlreadyOpen => {
            StoreError::Unavailable("the store file is already open".into())
        }
        redb::Error::PreviousIo => {
            StoreError::Unavailable("a previous i/o error closed the store file".into())
        }
        other => StoreError::Unavailable(format!("storage error: {other}")),
    }
}

// ---------------------------------------------------------------- records

fn encode(session: &Session) -> Result<Vec<u8>, StoreError> {
    let bytes = serde_json::to_vec(session)
        .map_err(|_| StoreError::Invalid("session does not serialize"))?;
    if bytes.len() > EMBEDDED_MAX_RECORD_BYTES {
        return Err(StoreError::Invalid("session record too large"));
    }
    Ok(bytes)
}

fn decode(key: &[u8; 32], bytes: &[u8]) -> Result<Session, StoreError> {
    let session: Session = serde_json::from_slice(bytes).map_err(|e| {
        // The serde message may quote record content: report position only.
        StoreError::Corrupt(format!(
            "record of session {:?} does not decode (at column {})",
            SessionKey(*key),
            e.column()
        ))
    })?;
    if session.key.0 != *key {
        return Err(StoreError::Corrupt(format!(
            "record of session {:?} holds another key",
            SessionKey(*key)
        )));
    }
    Ok(session)
}

fn read_session(db: &Database, key: &SessionKey) -> Result<Option<Session>, StoreError> {
    let txn = db.begin_read().map_err(redb_error)?;
    let table = txn.open_table(SESSIONS).map_err(redb_error)?;
    let Some(guard) = table.get(&key.0).map_err(redb_error)? else {
        return Ok(None);
    };
    decode(&key.0, guard.value()).map(Some)
}

/// An empty subject is no filter.
fn filter_parts(filter: &SessionFilter) -> (Option<&str>, Option<[u8; 32]>) {
    (
        filter.subject.as_deref().filter(|s| !s.is_empty()),
        filter.thumbprint,
    )
}

/// Keys of the sessions the (non-empty) filter matches, from the indexes.
fn matching_keys(
    by_subject: &impl ReadableTable<(&'static str, KeyBytes), ()>,
    by_thumbprint: &impl ReadableTable<(KeyBytes, KeyBytes), ()>,
    subject: Option<&str>,
    thumbprint: Option<[u8; 32]>,
) -> Result<Vec<[u8; 32]>, StoreError> {
    let mut keys = Vec::new();
    match (subject, thumbprint) {
        (Some(sub), tp) => {
            for entry in by_subject
                .range((sub, &KEY_MIN)..=(sub, &KEY_MAX))
                .map_err(redb_error)?
            {
                let (k, _) = entry.map_err(redb_error)?;
                let key = *k.value().1;
                if let Some(tp) = tp {
                    if by_thumbprint
                        .get((&tp, &key))
                        .map_err(redb_error)?
                        .is_none()
                    {
                        continue;
                    }
                }
                keys.push(key);
            }
        }
        (None, Some(tp)) => {
            for entry in by_thumbprint
                .range((&tp, &KEY_MIN)..=(&tp, &KEY_MAX))
                .map_err(redb_error)?
            {
                let (k, _) = entry.map_err(redb_error)?;
                keys.push(*k.value().1);
            }
        }
        (None, None) => {}
    }
    Ok(keys)
}

/// The tables of one write transaction.
struct Tables<'txn> {
    sessions: Table<'txn, KeyBytes, &'static [u8]>,
    by_subject: Table<'txn, (&'static str, KeyBytes), ()>,
    by_thumbprint: Table<'txn, (KeyBytes, KeyBytes), ()>,
    by_expiry: Table<'txn, (i64, KeyBytes), ()>,
    by_created: Table<'txn, (i64, KeyBytes), ()>,
    by_refresh: Table<'txn, (i64, KeyBytes), ()>,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            sessions: txn.open_table(SESSIONS).map_err(redb_error)?,
            by_subject: txn.open_table(BY_SUBJECT).map_err(redb_error)?,
            by_thumbprint: txn.open_table(BY_THUMBPRINT).map_err(redb_error)?,
            by_expiry: txn.open_table(BY_EXPIRY).map_err(redb_error)?,
            by_created: txn.open_table(BY_CREATED).map_err(redb_error)?,
            by_refresh: txn.open_table(BY_REFRESH).map_err(redb_error)?,
        })
    }

    fn load(&self, key: &[u8; 32]) -> Result<Option<Session>, StoreError> {
        match self.sessions.get(key).map_err(redb_error)? {
            Some(guard) => decode(key, guard.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Writes the record of `session` (already encoded), indexes untouched.
    fn put(&mut self, session: &Session, bytes: &[u8]) -> Result<(), StoreError> {
        self.sessions
            .insert(&session.key.0, bytes)
            .map_err(redb_error)?;
        Ok(())
    }

    fn index(&mut self, s: &Session) -> Result<(), StoreError> {
        let key = &s.key.0;
        self.by_subject
            .insert((s.subject.as_str(), key), ())
            .map_err(redb_error)?;
        if let Some(tp) = &s.bound_thumbprint {
            self.by_thumbprint
                .insert((tp, key), ())
                .map_err(redb_error)?;
        }
        self.by_expiry
            .insert((s.expires_at, key), ())
            .map_err(redb_error)?;
        self.by_created
            .insert((s.created_at, key), ())
            .map_err(redb_error)?;
        if let Some(due) = s.refresh_due() {
            self.by_refresh.insert((due, key), ()).map_err(redb_error)?;
        }
        Ok(())
    }

    fn unindex(&mut self, s: &Session) -> Result<(), StoreError> {
        let key = &s.key.0;
        self.by_subject
            .remove((s.subject.as_str(), key))
            .map_err(redb_error)?;
        if let Some(tp) = &s.bound_thumbprint {
            self.by_thumbprint.remove((tp, key)).map_err(redb_error)?;
        }
        self.by_expiry
            .remove((s.expires_at, key))
            .map_err(redb_error)?;
        self.by_created
            .remove((s.created_at, key))
            .map_err(redb_error)?;
        if let Some(due) = s.refresh_due() {
            self.by_refresh.remove((due, key)).map_err(redb_error)?;
        }
        Ok(())
    }

    /// Marks `key` revoked; `true` if it was stored and not yet revoked.
    fn revoke(&mut self, key: &[u8; 32]) -> Result<bool, StoreError> {
        let Some(mut session) = self.load(key)? else {
            return Ok(false);
        };
        if session.revoked {
            return Ok(false);
        }
        // A revoked session is off the refresh schedule.
        if let Some(due) = session.refresh_due() {
            self.by_refresh.remove((due, key)).map_err(redb_error)?;
        }
        session.revoked = true;
        session.version = session
            .version
            .checked_add(1)
            .ok_or_else(|| StoreError::Corrupt("session version overflows".into()))?;
        let bytes = encode(&session)?;
        self.put(&session, &bytes)?;
        Ok(true)
    }
}

/// Runs `body` in one write transaction; commits if it returns `true`
/// with its result, aborts otherwise (and on error).
fn write<T>(
    db: &Database,
    body: impl FnOnce(&mut Tables<'_>) -> Result<(T, bool), StoreError>,
) -> Result<T, StoreError> {
    let txn = db.begin_write().map_err(redb_error)?;
    let (out, commit) = {
        let mut tables = Tables::open(&txn)?;
        body(&mut tables)?
    };
    if commit {
        txn.commit().map_err(redb_error)?;
    } else {
        txn.abort().map_err(redb_error)?;
    }
    Ok(out)
}

fn index_fields_differ(a: &Session, b: &Session) -> bool {
    a.subject != b.subject
        || a.bound_thumbprint != b.bound_thumbprint
        || a.expires_at != b.expires_at
        || a.created_at != b.created_at
        || a.refresh_due() != b.refresh_due()
}

// ---------------------------------------------------------------- operations

fn create(db: &Database, session: &Session, bytes: &[u8]) -> Result<(), StoreError> {
    write(db, |t| {
        if t.sessions
            .get(&session.key.0)
            .map_err(redb_error)?
            .is_some()
        {
            return Err(StoreError::Invalid("session exists"));
        }
        t.put(session, bytes)?;
        t.index(session)?;
        Ok(((), true))
    })
}

fn compare_and_set(
    db: &Database,
    session: &Session,
    bytes: &[u8],
    expected: u64,
) -> Result<CasOutcome, StoreError> {
    write(db, |t| {
        let Some(current) = t.load(&session.key.0)? else {
            return Ok((CasOutcome::Missing, false));
        };
        if current.version != expected {
            return Ok((CasOutcome::Conflict(Box::new(current)), false));
        }
        if index_fields_differ(&current, session) {
            t.unindex(&current)?;
            t.index(session)?;
        }
        t.put(session, bytes)?;
        Ok((CasOutcome::Updated, true))
    })
}

fn revoke_matching(
    db: &Database,
    subject: Option<&str>,
    thumbprint: Option<[u8; 32]>,
) -> Result<usize, StoreError> {
    write(db, |t| {
        let keys = matching_keys(&t.by_subject, &t.by_thumbprint, subject, thumbprint)?;
        let mut revoked = 0usize;
        for key in &keys {
            if t.revoke(key)? {
                revoked += 1;
            }
        }
        Ok((revoked, revoked > 0))
    })
}

fn list(
    db: &Database,
    subject: Option<&str>,
    thumbprint: Option<[u8; 32]>,
    limit: usize,
) -> Result<Vec<SessionSummary>, StoreError> {
    let limit = limit.min(EMBEDDED_MAX_LIST);
    if limit == 0 {
        return Ok(Vec::new());
    }
    let txn = db.begin_read().map_err(redb_error)?;
    let sessions = txn.open_table(SESSIONS).map_err(redb_error)?;
    let load = |key: &[u8; 32]| -> Result<Option<Session>, StoreError> {
        match sessions.get(key).map_err(redb_error)? {
            Some(guard) => decode(key, guard.value()).map(Some),
            None => Ok(None),
        }
    };
    let mut out = Vec::new();
    if subject.is_none() && thumbprint.is_none() {
        let by_created = txn.open_table(BY_CREATED).map_err(redb_error)?;
        for entry in by_created.iter().map_err(redb_error)?.rev() {
            if out.len() >= limit {
                break;
            }
            let (k, _) = entry.map_err(redb_error)?;
            let key = *k.value().1;
            if let Some(s) = load(&key)? {
                out.push(s.summary());
            }
        }
        return Ok(out);
    }
    let by_subject = txn.open_table(BY_SUBJECT).map_err(redb_error)?;
    let by_thumbprint = txn.open_table(BY_THUMBPRINT).map_err(redb_error)?;
    let mut found = Vec::new();
    for key in matching_keys(&by_subject, &by_thumbprint, subject, thumbprint)? {
        if let Some(s) = load(&key)? {
            found.push(s);
        }
    }
    // Newest first; equal times in a stable (key) order, as the unfiltered
    // listing gives them.
    found.sort_unstable_by_key(|s| std::cmp::Reverse((s.created_at, s.key.0)));
    out.extend(found.iter().take(limit).map(Session::summary));
    Ok(out)
}

fn due_for_refresh(
    db: &Database,
    before: i64,
    limit: usize,
) -> Result<Vec<SessionKey>, StoreError> {
    let limit = limit.min(EMBEDDED_MAX_LIST);
    let txn = db.begin_read().map_err(redb_error)?;
    let by_refresh = txn.open_table(BY_REFRESH).map_err(redb_error)?;
    let mut out = Vec::new();
    for entry in by_refresh
        .range(..=(before, &KEY_MAX))
        .map_err(redb_error)?
        .take(limit)
    {
        let (k, _) = entry.map_err(redb_error)?;
        out.push(SessionKey(*k.value().1));
    }
    Ok(out)
}

fn collect_expired(db: &Database, now: i64) -> Result<usize, StoreError> {
    let mut total = 0usize;
    loop {
        let removed = write(db, |t| {
            let mut due = Vec::new();
            for entry in t
                .by_expiry
                .range(..=(now, &KEY_MAX))
                .map_err(redb_error)?
                .take(EMBEDDED_COLLECT_BATCH)
            {
                let (k, _) = entry.map_err(redb_error)?;
                let (at, key) = k.value();
                due.push((at, *key));
            }
            for (at, key) in &due {
                match t.load(key) {
                    Ok(Some(session)) => t.unindex(&session)?,
                    // Its other index entries cannot be known; readers skip
                    // entries whose record is gone.
                    Ok(None) | Err(StoreError::Corrupt(_)) => {
                        t.by_expiry.remove((*at, key)).map_err(redb_error)?;
                    }
                    Err(e) => return Err(e),
                }
                t.sessions.remove(key).map_err(redb_error)?;
            }
            Ok((due.len(), !due.is_empty()))
        })?;
        total += removed;
        if removed < EMBEDDED_COLLECT_BATCH {
            return Ok(total);
        }
    }
}

fn health(db: &Database, now: i64) -> Result<(), StoreError> {
    {
        let txn = db.begin_read().map_err(redb_error)?;
        let sessions = txn.open_table(SESSIONS).map_err(redb_error)?;
        sessions.len().map_err(redb_error)?;
    }
    let txn = db.begin_write().map_err(redb_error)?;
    {
        let mut table = txn.open_table(HEALTH).map_err(redb_error)?;
        table.insert("last_check", now).map_err(redb_error)?;
    }
    txn.commit().map_err(redb_error)?;
    Ok(())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

// ---------------------------------------------------------------- the trait

impl SessionStore for EmbeddedStore {
    fn create<'a>(&'a self, session: &'a Session) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if session.version != 1 {
                return Err(StoreError::Invalid("a new session must have version 1"));
            }
            let bytes = encode(session)?;
            let session = session.clone();
            self.blocking(move |db| create(db, &session, &bytes)).await
        })
    }

    fn get<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, Option<Session>> {
        Box::pin(self.get_session(*key))
    }

    fn compare_and_set<'a>(
        &'a self,
        session: &'a Session,
        expected: u64,
    ) -> StoreFuture<'a, CasOutcome> {
        Box::pin(async move {
            if expected.checked_add(1) != Some(session.version) {
                return Err(StoreError::Invalid(
                    "the new version must be the expected version plus one",
                ));
            }
            let bytes = encode(session)?;
            let session = session.clone();
            self.blocking(move |db| compare_and_set(db, &session, &bytes, expected))
                .await
        })
    }

    fn revoke<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, bool> {
        let key = key.0;
        Box::pin(self.blocking(move |db| {
            write(db, |t| {
                let done = t.revoke(&key)?;
                Ok((done, done))
            })
        }))
    }

    fn revoke_matching<'a>(&'a self, filter: &'a SessionFilter) -> StoreFuture<'a, usize> {
        Box::pin(async move {
            let (subject, thumbprint) = filter_parts(filter);
            if subject.is_none() && thumbprint.is_none() {
                return Err(StoreError::Invalid(
                    "revoking by filter needs a subject or a thumbprint",
                ));
            }
            let subject = subject.map(str::to_owned);
            self.blocking(move |db| revoke_matching(db, subject.as_deref(), thumbprint))
                .await
        })
    }

    fn list<'a>(
        &'a self,
        filter: &'a SessionFilter,
        limit: usize,
    ) -> StoreFuture<'a, Vec<SessionSummary>> {
        let (subject, thumbprint) = filter_parts(filter);
        let subject = subject.map(str::to_owned);
        Box::pin(self.blocking(move |db| list(db, subject.as_deref(), thumbprint, limit)))
    }

    fn due_for_refresh(&self, before: i64, limit: usize) -> StoreFuture<'_, Vec<SessionKey>> {
        Box::pin(self.blocking(move |db| due_for_refresh(db, before, limit)))
    }

    fn collect_expired(&self, now: i64) -> StoreFuture<'_, usize> {
        Box::pin(self.blocking(move |db| collect_expired(db, now)))
    }

    fn health(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.blocking(|db| health(db, unix_now())))
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }
}

#[cfg(test)]
mod tests;
