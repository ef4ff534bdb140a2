//! Rollback protection across restarts, with real bundles.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions"
)]

mod common;

use common::*;
use portcullis_bundle::{RollbackState, TrustRoot};

/// What a gateway does with a downloaded archive: verify, check, store.
fn activate(
    bytes: &[u8],
    root: &TrustRoot,
    state_path: &std::path::Path,
) -> Result<bool, portcullis_bundle::BundleError> {
    let bundle = load(bytes)?;
    let verified = root.verify(&bundle, now())?;
    let previous = RollbackState::load(state_path)?;
    if let Some(state) = &previous {
        if !state.check(verified.revision, &verified.digest)? {
            return Ok(false);
        }
    }
    RollbackState::accepted(previous.as_ref(), &verified, root).store(state_path)?;
    Ok(true)
}

fn setup() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    portcullis_bundle::SigningKey,
    TrustRoot,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle-state.json");
    let k = key();
    let r = root(1, 1, &[("ops-1", &k)]);
    (dir, path, k, r)
}

#[test]
fn lower_revision_is_refused() {
    let (_dir, path, k, r) = setup();
    let v5 = signed(5, &[("ops-1", &k)]).to_tar().unwrap();
    let v4 = signed(4, &[("ops-1", &k)]).to_tar().unwrap();
    assert!(activate(&v5, &r, &path).unwrap());
    let err = activate(&v4, &r, &path).unwrap_err();
    assert_eq!(err.reason(), "rollback");
    assert!(err.to_string().contains("revision 4"), "{err}");
}

#[test]
fn equal_revision_with_other_digest_is_refused() {
    let (_dir, path, k, r) = setup();
    let original = signed(5, &[("ops-1", &k)]);
    assert!(activate(&original.to_tar().unwrap(), &r, &path).unwrap());
    let dir = tempfile::tempdir().unwrap();
    write_source(dir.path());
    std::fs::write(dir.path().join("policy.yaml"), "rules: [other]\n").unwrap();
    let mut other = portcullis_bundle::Bundle::build(dir.path(), 5, "policy.yaml", now()).unwrap();
    other.sign("ops-1", &k).unwrap();
    assert_ne!(other.digest(), original.digest());
    let err = activate(&other.to_tar().unwrap(), &r, &path).unwrap_err();
    assert_eq!(err.reason(), "rollback");
}

#[test]
fn equal_revision_same_digest_is_a_no_op() {
    let (_dir, path, k, r) = setup();
    let bytes = signed(5, &[("ops-1", &k)]).to_tar().unwrap();
    assert!(activate(&bytes, &r, &path).unwrap());
    let before = std::fs::read(&path).unwrap();
    assert!(!activate(&bytes, &r, &path).unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn newer_revision_is_accepted_and_recorded() {
    let (_dir, path, k, r) = setup();
    let b5 = signed(5, &[("ops-1", &k)]);
    let b9 = signed(9, &[("ops-1", &k)]);
    assert!(activate(&b5.to_tar().unwrap(), &r, &path).unwrap());
    assert!(activate(&b9.to_tar().unwrap(), &r, &path).unwrap());
    let state = RollbackState::load(&path).unwrap().unwrap();
    assert_eq!(state.highest_revision, 9);
    assert_eq!(state.digest, b9.digest());
}

#[test]
fn state_survives_store_and_load() {
    let (_dir, path, k, r) = setup();
    let b = signed(5, &[("ops-1", &k)]);
    assert!(activate(&b.to_tar().unwrap(), &r, &path).unwrap());
    // A restart: only the file remains.
    let state = RollbackState::load(&path).unwrap().unwrap();
    assert_eq!(
        state,
        RollbackState {
            highest_revision: 5,
            digest: b.digest(),
            root_version: 1,
            root_json: None,
        }
    );
    assert_eq!(
        state.check(4, &b.digest()).unwrap_err().reason(),
        "rollback"
    );
}

#[test]
fn accepted_root_update_is_persisted_and_reloaded() {
    let (_dir, path, k, r) = setup();
    let k2 = key();
    let next = root(2, 1, &[("ops-2", &k2)]);
    let mut b = signed(6, &[("ops-2", &k2)]);
    b.set_root_update(
        next.bytes().to_vec(),
        vec![("ops-1".to_owned(), k.sign(next.bytes()).unwrap())],
    );
    assert!(activate(&b.to_tar().unwrap(), &r, &path).unwrap());
    let state = RollbackState::load(&path).unwrap().unwrap();
    assert_eq!(state.root_version, 2);
    let reloaded = state.trust_root().unwrap().unwrap();
    assert_eq!(reloaded.bytes(), next.bytes());
    // After the restart the new root is in force: ops-1 alone no longer counts.
    let by_old = signed(7, &[("ops-1", &k)]);
    assert_eq!(
        reloaded.verify(&by_old, now()).unwrap_err().reason(),
        "unknown_key"
    );
}

#[test]
fn corrupt_state_file_is_an_error() {
    let (_dir, path, k, r) = setup();
    let bytes = signed(5, &[("ops-1", &k)]).to_tar().unwrap();
    assert!(activate(&bytes, &r, &path).unwrap());
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    let err = activate(&bytes, &r, &path).unwrap_err();
    assert_eq!(err.reason(), "corrupt_state");
    // Still refused, never silently reset to accept an old revision.
    let old = signed(1, &[("ops-1", &k)]).to_tar().unwrap();
    assert_eq!(
        activate(&old, &r, &path).unwrap_err().reason(),
        "corrupt_state"
    );
}

#[test]
fn missing_state_file_means_first_start() {
    let (_dir, path, _k, _r) = setup();
    assert_eq!(RollbackState::load(&path).unwrap(), None);
}
