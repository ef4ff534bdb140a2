use super::*;
use crate::test_util::{bundle, key, now, root};

const D1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn state(revision: u64, digest: &str) -> RollbackState {
    RollbackState {
        highest_revision: revision,
        digest: digest.to_owned(),
        root_version: 1,
        root_json: None,
    }
}

#[test]
fn check_accepts_newer_ignores_same_and_refuses_older_or_substituted() {
    let s = state(5, D1);
    assert!(s.check(6, D2).unwrap());
    assert!(!s.check(5, D1).unwrap());
    assert_eq!(s.check(4, D1).unwrap_err().reason(), "rollback");
    assert_eq!(s.check(5, D2).unwrap_err().reason(), "rollback");
}

#[test]
fn store_then_load_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    assert_eq!(RollbackState::load(&path).unwrap(), None);
    let s = state(5, D1);
    s.store(&path).unwrap();
    assert_eq!(RollbackState::load(&path).unwrap(), Some(s.clone()));
    let newer = state(6, D2);
    newer.store(&path).unwrap();
    assert_eq!(RollbackState::load(&path).unwrap(), Some(newer));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left behind");
}

#[cfg(unix)]
#[test]
fn stored_state_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    state(1, D1).store(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn corrupt_state_is_an_error_not_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let good = serde_json::to_string(&state(5, D1)).unwrap();
    for text in [
        String::new(),
        "{".to_owned(),
        "null".to_owned(),
        good.replace(D1, "xyz"),
        good.replace("\"highest_revision\":5", "\"highest_revision\":0"),
        good.replace(
            "\"highest_revision\":5",
            "\"highest_revision\":5,\"highest_revision\":9",
        ),
        good.replacen('{', "{\"extra\":true,", 1),
        good.replace("\"root_json\":null", "\"root_json\":\"{}\""),
    ] {
        std::fs::write(&path, &text).unwrap();
        let err = RollbackState::load(&path).unwrap_err();
        assert_eq!(err.reason(), "corrupt_state", "{text}");
    }
}

#[test]
fn store_refuses_invalid_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    assert!(state(0, D1).store(&path).is_err());
    assert!(!path.exists());
}

#[test]
fn accepted_records_the_root_in_force() {
    let a = key();
    let r = root(1, 1, &[("a", &a)]);
    let mut b = bundle(3);
    b.sign("a", &a).unwrap();
    let v = r.verify(&b, now()).unwrap();
    let s = RollbackState::accepted(None, &v, &r);
    assert_eq!(s.highest_revision, 3);
    assert_eq!(s.digest, b.digest());
    assert_eq!(s.root_version, 1);
    assert_eq!(s.root_json, None);
    assert!(s.trust_root().unwrap().is_none());

    let next = root(2, 1, &[("a", &a)]);
    let mut b = bundle(4);
    b.sign("a", &a).unwrap();
    b.set_root_update(
        next.bytes().to_vec(),
        vec![("a".to_owned(), a.sign(next.bytes()).unwrap())],
    );
    let v = r.verify(&b, now()).unwrap();
    let s = RollbackState::accepted(Some(&s), &v, &r);
    assert_eq!(s.root_version, 2);
    assert_eq!(s.trust_root().unwrap().unwrap().bytes(), next.bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    s.store(&path).unwrap();
    assert_eq!(RollbackState::load(&path).unwrap(), Some(s.clone()));

    // Later bundles without an update keep the recorded root.
    let mut b = bundle(5);
    b.sign("a", &a).unwrap();
    let v = next.verify(&b, now()).unwrap();
    let later = RollbackState::accepted(Some(&s), &v, &next);
    assert_eq!(later.highest_revision, 5);
    assert_eq!(later.root_version, 2);
    assert_eq!(later.root_json, s.root_json);
}
