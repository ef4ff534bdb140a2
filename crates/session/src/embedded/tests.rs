use std::ops::Bound;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Condvar;

use redb::BackendError;
use serde_json::{Map, Value};

use super::*;
use crate::SessionId;

// ------------------------------------------------------------ a faulty disk

const OK: u8 = 0;
const FULL: u8 = 1;
const READ_ONLY_FS: u8 = 2;
const DENIED: u8 = 3;
const STALL: u8 = 4;

/// What the disk does: one of the modes above. Writes stall while the
/// mode is `STALL`, until it changes.
#[derive(Debug, Default)]
struct Disk {
    mode: AtomicU8,
    gate: Mutex<()>,
    changed: Condvar,
}

impl Disk {
    fn set(&self, mode: u8) {
        let _g = self.gate.lock().unwrap();
        self.mode.store(mode, Ordering::SeqCst);
        self.changed.notify_all();
    }

    fn check_write(&self) -> Result<(), BackendError> {
        let mut g = self.gate.lock().unwrap();
        while self.mode.load(Ordering::SeqCst) == STALL {
            g = self.changed.wait(g).unwrap();
        }
        let errno = match self.mode.load(Ordering::SeqCst) {
            FULL => 28,         // ENOSPC
            READ_ONLY_FS => 30, // EROFS
            DENIED => 13,       // EACCES
            _ => return Ok(()),
        };
        Err(BackendError::Io(io::Error::from_raw_os_error(errno)))
    }
}

/// A file backend whose writes fail (or stall) on demand.
#[derive(Debug)]
struct Faulty {
    inner: FileBackend,
    disk: Arc<Disk>,
}

impl StorageBackend for Faulty {
    fn len(&self) -> Result<u64, BackendError> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendError> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), BackendError> {
        self.disk.check_write()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> Result<(), BackendError> {
        self.disk.check_write()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
        self.disk.check_write()?;
        self.inner.write(offset, data)
    }
    fn close(&self) -> Result<(), BackendError> {
        self.inner.close()
    }
    fn try_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(s, e)
    }
    fn try_lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(s, e)
    }
    fn lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(s, e)
    }
    fn lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(s, e)
    }
    fn unlock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(s, e)
    }
    fn query_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(s, e)
    }
}

struct Rig {
    store: EmbeddedStore,
    disk: Arc<Disk>,
    _dir: tempfile::TempDir,
}

fn rig(op_timeout: Duration, reopen_interval: Duration) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.redb");
    let disk = Arc::new(Disk::default());
    let opener = {
        let disk = disk.clone();
        move || {
            let inner = FileBackend::new(open_file(&path)?);
            open_database(
                &path,
                Faulty {
                    inner,
                    disk: disk.clone(),
                },
            )
        }
    };
    let store = EmbeddedStore::with_opener(
        "test".into(),
        Box::new(opener),
        EmbeddedOptions { op_timeout },
        reopen_interval,
    )
    .unwrap();
    Rig {
        store,
        disk,
        _dir: dir,
    }
}

fn session(subject: &str, now: i64) -> Session {
    let id = SessionId::generate().unwrap();
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::String(subject.into()));
    Session {
        key: id.key(),
        issuer: "https://idp.example.com".into(),
        subject: subject.into(),
        claims,
        amr: vec!["pwd".into()],
        acr: None,
        auth_time: now,
        mfa_time: None,
        bound_thumbprint: Some([9; 32]),
        refresh_token: None,
        provider_token_expires_at: None,
        created_at: now,
        last_seen: now,
        expires_at: now + 3600,
        idle_secs: 600,
        revoked: false,
        version: 1,
    }
}

const NOW: i64 = 1_700_000_000;

/// Entries per table, read straight from the file.
fn table_sizes(store: &EmbeddedStore) -> [u64; 5] {
    let db = store.inner.current().unwrap();
    let txn = db.begin_read().unwrap();
    [
        txn.open_table(SESSIONS).unwrap().len().unwrap(),
        txn.open_table(BY_SUBJECT).unwrap().len().unwrap(),
        txn.open_table(BY_THUMBPRINT).unwrap().len().unwrap(),
        txn.open_table(BY_EXPIRY).unwrap().len().unwrap(),
        txn.open_table(BY_CREATED).unwrap().len().unwrap(),
    ]
}

fn put_raw(store: &EmbeddedStore, key: &[u8; 32], bytes: &[u8]) {
    let db = store.inner.current().unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(SESSIONS)
        .unwrap()
        .insert(key, bytes)
        .unwrap();
    txn.commit().unwrap();
}

// ------------------------------------------------------------ failures

async fn fails_then_recovers(mode: u8, expect: fn(&StoreError) -> bool) {
    let r = rig(EMBEDDED_OP_TIMEOUT, Duration::ZERO);
    let kept = session("alice", NOW);
    r.store.create(&kept).await.unwrap();

    r.disk.set(mode);
    let err = r.store.create(&session("bob", NOW)).await.unwrap_err();
    assert!(expect(&err), "{err:?}");
    // The handle is poisoned; nothing is answered from it, and nothing is
    // invented: every operation fails while the disk fails.
    assert!(r.store.health().await.is_err());
    assert!(r.store.get(&kept.key).await.is_err());
    assert!(r.store.revoke(&kept.key).await.is_err());

    // The disk comes back: the store reopens by itself.
    r.disk.set(OK);
    r.store.health().await.unwrap();
    let got = r.store.get(&kept.key).await.unwrap().unwrap();
    assert_eq!(got, kept);
    assert!(r.store.revoke(&kept.key).await.unwrap());
    r.store.create(&session("bob", NOW)).await.unwrap();
    assert_eq!(table_sizes(&r.store)[0], 2);
}

#[tokio::test]
async fn disk_full_is_out_of_memory_and_recovers() {
    fails_then_recovers(FULL, |e| {
        matches!(e, StoreError::OutOfMemory(_)) && e.reason() == "out_of_memory"
    })
    .await;
}

#[tokio::test]
async fn read_only_file_system_is_read_only_and_recovers() {
    fails_then_recovers(READ_ONLY_FS, |e| matches!(e, StoreError::ReadOnly(_))).await;
}

#[tokio::test]
async fn write_permission_denied_and_recovers() {
    fails_then_recovers(DENIED, |e| matches!(e, StoreError::PermissionDenied(_))).await;
}

#[tokio::test]
async fn health_fails_when_writes_fail() {
    let r = rig(EMBEDDED_OP_TIMEOUT, Duration::ZERO);
    r.store.health().await.unwrap();
    r.disk.set(FULL);
    let err = r.store.health().await.unwrap_err();
    assert!(matches!(err, StoreError::OutOfMemory(_)), "{err:?}");
}

#[tokio::test]
async fn reopen_is_throttled() {
    let r = rig(EMBEDDED_OP_TIMEOUT, Duration::from_secs(3600));
    r.disk.set(FULL);
    assert!(r.store.create(&session("bob", NOW)).await.is_err());
    r.disk.set(OK);
    // First reopen attempt is allowed and succeeds.
    r.store.health().await.unwrap();
    // Fail again: the next reopen is within the interval, so refused.
    r.disk.set(FULL);
    assert!(r.store.health().await.is_err());
    r.disk.set(OK);
    let err = r.store.health().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("reopening"), "{err}");
    // Reads do not reopen inline either.
    assert!(r.store.get(&SessionKey([1; 32])).await.is_err());
}

#[tokio::test]
async fn stalled_disk_times_out() {
    let limit = Duration::from_millis(50);
    let r = rig(limit, Duration::ZERO);
    let s = session("alice", NOW);
    r.disk.set(STALL);
    let err = r.store.create(&s).await.unwrap_err();
    assert_eq!(err, StoreError::Timeout(limit));
    assert_eq!(err.reason(), "timeout");
    // Release the disk; the store answers again.
    r.disk.set(OK);
    r.store.health().await.unwrap();
}

// ------------------------------------------------------------ records

#[tokio::test]
async fn undecodable_record_is_corrupt_and_quotes_nothing() {
    let r = rig(EMBEDDED_OP_TIMEOUT, Duration::ZERO);
    let key = SessionKey([7; 32]);
    put_raw(&r.store, &key.0, br#"{"key": "secret-claim-value-xyz", "#);
    let err = r.store.get(&key).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(!err.to_string().contains("secret-claim-value-xyz"), "{err}");
    // A corrupt record does not close the store.
    let s = session("alice", NOW);
    r.store.create(&s).await.unwrap();
    assert_eq!(r.store.get(&s.key).await.unwrap().unwrap(), s);
    // CAS and revoke on it are errors, not "missing".
    let mut next = s.clone();
    next.key = key;
    next.version = 2;
    assert!(r.store.compare_and_set(&next, 1).await.is_err());
    assert!(r.store.revoke(&key).await.is_err());
}

#[tokio::test]
async fn record_under_another_key_is_corrupt() {
    let r = rig(EMBEDDED_OP_TIMEOUT, Duration::ZERO);
    let s = session("alice", NOW);
    let bytes = serde_json::to_vec(&s).unwrap();
    let other = SessionKey([8; 32]);
    put_raw(&r.store, &other.0, &bytes);
    let err = r.store.get(&other).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

#[tokio::test]
async fn oversized_record_is_refused() {
    let r = rig(EMBEDDED_OP_TIMEOUT, Duration::ZERO);
    let mut s = session("alice", NOW);
    s.claims.insert(
        "groups".into(),
        Value::String("g".repeat(EMBEDDED_MAX_RECORD_BYTES)),
    );
    let err = r.store.create(&s).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert!(r.store.get(&s.key).await.unwrap().is_none());

    // Growing a stored session past the limit through CAS is refused too.
    let small = session("alice", NOW);
    r.store.create(&small).await.unwrap();
    let mut big = s.clone();
    big.key = small.key;
    big.version = 2;
    assert!(matches!(
        r.store.compare_and_set(&big, 1).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(r.store.get(&small.key).await.unwrap().unwrap(), small);
}

// ------------------------------------------------------------ indexes

#[tokio::test]
async fn cas_moves_index_entries() {
    let r = rig(EMBEDDED_OP_TIMEOUT, Duration::ZERO);
    let s = session("alice", NOW);
    r.store.create(&s).await.unwrap();
    assert_eq!(table_sizes(&r.store), [1, 1, 1, 1, 1]);

    let mut moved = s.clone();
    moved.subject = "bob".into();
    moved.bound_thumbprint = None;
    moved.expires_at = NOW + 10;
    moved.version = 2;
    assert_eq!(
        r.store.compare_and_set(&moved, 1).await.unwrap(),
        CasOutcome::Updated
    );
    assert_eq!(table_sizes(&r.store), [1, 1, 0, 1, 1]);

    let by = |sub: &str| SessionFilter {
        subject: Some(sub.into()),
        thumbprint: None,
    };
    assert!(r.store.list(&by("alice"), 10).await.unwrap().is_empty());
    assert_eq!(r.store.list(&by("bob"), 10).await.unwrap().len(), 1);
    let tp = SessionFilter {
        subject: None,
        thumbprint: Some([9; 32]),
    };
    assert_eq!(r.store.revoke_matching(&tp).await.unwrap(), 0);
    // The new expiry is the one collected.
    assert_eq!(r.store.collect_expired(NOW + 10).await.unwrap(), 1);
    assert_eq!(table_sizes(&r.store), [0, 0, 0, 0, 0]);
}

#[tokio::test]
async fn collect_expired_empties_every_table() {
    let r = rig(EMBEDDED_OP_TIMEOUT, Duration::ZERO);
    let n = EMBEDDED_COLLECT_BATCH + 5;
    let sessions: Vec<Session> = (0..n)
        .map(|i| {
            let mut s = session(&format!("user{}", i % 7), NOW);
            s.expires_at = NOW + i64::try_from(i % 50).unwrap();
            s
        })
        .collect();
    // One transaction, so the test does not pay one fsync per session.
    let db = r.store.inner.current().unwrap();
    write(&db, |t| {
        for s in &sessions {
            t.put(s, &encode(s)?)?;
            t.index(s)?;
        }
        Ok(((), true))
    })
    .unwrap();
    drop(db);
    let total = u64::try_from(n).unwrap();
    assert_eq!(table_sizes(&r.store), [total, total, total, total, total]);

    // Nothing before the first expiry.
    assert_eq!(r.store.collect_expired(NOW - 1).await.unwrap(), 0);
    // More than one batch goes in one call.
    assert_eq!(r.store.collect_expired(NOW + 100).await.unwrap(), n);
    assert_eq!(table_sizes(&r.store), [0, 0, 0, 0, 0]);
}

#[tokio::test]
async fn dangling_index_entries_are_skipped() {
    let r = rig(EMBEDDED_OP_TIMEOUT, Duration::ZERO);
    let s = session("alice", NOW);
    r.store.create(&s).await.unwrap();
    // Remove the record only, leaving its index entries behind.
    let db = r.store.inner.current().unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(SESSIONS).unwrap().remove(&s.key.0).unwrap();
    txn.commit().unwrap();
    drop(db);

    let by = SessionFilter {
        subject: Some("alice".into()),
        thumbprint: None,
    };
    assert!(r.store.list(&by, 10).await.unwrap().is_empty());
    assert!(r
        .store
        .list(&SessionFilter::default(), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(r.store.revoke_matching(&by).await.unwrap(), 0);
    // The expiry entry is still collected (and counted).
    assert_eq!(r.store.collect_expired(s.expires_at).await.unwrap(), 1);
}

#[test]
fn list_limit_is_capped() {
    let r = rig(EMBEDDED_OP_TIMEOUT, Duration::ZERO);
    let db = r.store.inner.current().unwrap();
    let out = list(&db, None, None, usize::MAX).unwrap();
    assert!(out.is_empty());
}

#[test]
fn io_errors_map_to_reasons() {
    let e = |errno| io_error(&io::Error::from_raw_os_error(errno)).reason();
    assert_eq!(e(28), "out_of_memory"); // ENOSPC
    assert_eq!(e(122), "out_of_memory"); // EDQUOT
    assert_eq!(e(13), "permission_denied"); // EACCES
    assert_eq!(e(1), "permission_denied"); // EPERM
    assert_eq!(e(30), "read_only"); // EROFS
    assert_eq!(e(5), "unavailable"); // EIO
}

#[test]
fn debug_shows_no_internals() {
    let r = rig(EMBEDDED_OP_TIMEOUT, Duration::ZERO);
    let shown = format!("{:?}", r.store);
    assert!(shown.contains("EmbeddedStore"));
    assert!(shown.contains("test"));
}

#[tokio::test]
async fn a_file_without_the_refresh_schedule_is_scheduled_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.redb");
    let sealer =
        crate::Sealer::new(vec![("k1".into(), zeroize::Zeroizing::new(vec![7u8; 32]))]).unwrap();
    let mut s = session("alice", NOW);
    s.refresh_token = Some(sealer.seal(&s.key, b"refresh").unwrap());
    s.provider_token_expires_at = Some(NOW + 60);
    {
        let store = EmbeddedStore::open(&path, EmbeddedOptions::default()).unwrap();
        store.create(&s).await.unwrap();
        assert_eq!(
            store.due_for_refresh(NOW + 60, 10).await.unwrap(),
            vec![s.key]
        );
        // What a version without the schedule left behind.
        let db = store.inner.current().unwrap();
        let txn = db.begin_write().unwrap();
        txn.delete_table(BY_REFRESH).unwrap();
        txn.open_table(HEALTH)
            .unwrap()
            .remove(REFRESH_INDEX_MARKER)
            .unwrap();
        txn.commit().unwrap();
    }
    let store = EmbeddedStore::open(&path, EmbeddedOptions::default()).unwrap();
    assert_eq!(
        store.due_for_refresh(NOW + 60, 10).await.unwrap(),
        vec![s.key]
    );
}
