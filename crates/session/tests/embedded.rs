//! The shared store suite against the embedded (redb) store, and what only
//! a file can do: survive a restart, keep its mode, refuse to be opened
//! twice or written when it may not be.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions (clippy.toml allows these in tests)"
)]

mod suite;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use portcullis_session::{
    CasOutcome, EmbeddedOptions, EmbeddedStore, SessionFilter, SessionStore, StoreError,
};

const FILE: &str = "sessions.redb";

async fn fixture() -> suite::Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let store = EmbeddedStore::open(&path, EmbeddedOptions::default()).unwrap();
    let dump = move || std::fs::read(&path).unwrap();
    suite::Fixture::new(Arc::new(store), dump, dir)
}

suite::suite_tests!(fixture);

fn open(path: &Path) -> Result<EmbeddedStore, StoreError> {
    EmbeddedStore::open(path, EmbeddedOptions::default())
}

/// Whether this process ignores file permissions (root): then the kernel
/// lets it write where the mode says it may not.
fn permissions_are_bypassed(dir: &Path) -> bool {
    let probe = dir.join("probe");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let bypassed = std::fs::write(&probe, b"x").is_ok();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let _ = std::fs::remove_file(&probe);
    bypassed
}

#[tokio::test]
async fn survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let now = suite::unix_now();
    let kept = suite::session("alice", Some([1; 32]), now);
    let revoked = suite::session("alice", None, now);
    {
        let store = open(&path).unwrap();
        store.create(&kept).await.unwrap();
        store.create(&revoked).await.unwrap();
        assert!(store.revoke(&revoked.key).await.unwrap());
        let mut v2 = kept.clone();
        v2.mfa_time = Some(now + 3);
        v2.version = 2;
        assert_eq!(
            store.compare_and_set(&v2, 1).await.unwrap(),
            CasOutcome::Updated
        );
    }
    let store = open(&path).unwrap();
    let got = store.get(&kept.key).await.unwrap().unwrap();
    assert_eq!(got.version, 2);
    assert_eq!(got.mfa_time, Some(now + 3));
    assert!(store.get(&revoked.key).await.unwrap().unwrap().revoked);
    // The indexes survived too.
    let listed = store
        .list(
            &SessionFilter {
                subject: None,
                thumbprint: Some([1; 32]),
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(listed, vec![got.summary()]);
}

#[tokio::test]
async fn new_file_has_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let _store = open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[tokio::test]
async fn existing_file_readable_by_others_is_restricted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    drop(open(&path).unwrap());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _store = open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[tokio::test]
async fn missing_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join(FILE);
    let err = open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("directory does not exist"), "{msg}");
    assert!(msg.contains("no-such-dir"), "{msg}");
    assert!(!path.exists());
}

#[tokio::test]
async fn read_only_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    drop(open(&path).unwrap());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    let err = open(&path).unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly(_)), "{err:?}");
    assert_eq!(err.reason(), "read_only");
    assert!(err.to_string().contains(FILE), "{err}");
}

#[tokio::test]
async fn unwritable_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    if permissions_are_bypassed(dir.path()) {
        // Root writes anywhere the mode forbids; sysfs refuses to create
        // files even for root.
        let err = open(Path::new("/sys/portcullis-sessions.redb")).unwrap_err();
        assert!(matches!(err, StoreError::PermissionDenied(_)), "{err:?}");
        assert!(
            err.to_string().contains("portcullis-sessions.redb"),
            "{err}"
        );
        return;
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o500)).unwrap();
    let path = dir.path().join(FILE);
    let err = open(&path).unwrap_err();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(matches!(err, StoreError::PermissionDenied(_)), "{err:?}");
    assert!(err.to_string().contains(FILE), "{err}");
}

#[tokio::test]
async fn second_open_of_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let first = open(&path).unwrap();
    let err = open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("already open"), "{err}");
    // The first handle still works, and once it is gone the file opens.
    first.health().await.unwrap();
    drop(first);
    open(&path).unwrap().health().await.unwrap();
}

#[tokio::test]
async fn a_file_that_is_not_a_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable(_) | StoreError::Corrupt(_)),
        "{err:?}"
    );
    // The file was not overwritten.
    assert_eq!(std::fs::read(&path).unwrap(), vec![0x5a; 8192]);
}

#[tokio::test]
async fn a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("not a regular file"), "{err}");
}
