//! Key rotation with overlapping validity, and trust root updates.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions"
)]

mod common;

use common::*;
use portcullis_bundle::{Bundle, SigningKey, TrustRoot};

/// `old` valid 2024-01 .. 2025-07, `new` valid 2025-01 .. 2027-01,
/// threshold 1: overlap is the first half of 2025.
fn rotation_root(old: &SigningKey, new: &SigningKey) -> TrustRoot {
    TrustRoot::create(
        1,
        1,
        &[
            spec("old", old, "2024-01-01T00:00:00Z", "2025-07-01T00:00:00Z"),
            spec("new", new, "2025-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        ],
    )
    .unwrap()
}

#[test]
fn rotation_sequence_with_overlap() {
    let (old, new) = (key(), key());
    let r = rotation_root(&old, &new);
    let before = ts("2024-10-01T00:00:00Z");
    let overlap = ts("2025-03-01T00:00:00Z");
    let after = ts("2025-10-01T00:00:00Z");

    // 1. Only the old key exists: bundles signed by it verify.
    let b1 = signed(1, &[("old", &old)]);
    assert_eq!(r.verify(&b1, before).unwrap().signers, ["old"]);

    // 2. Overlap: bundles are signed by both; both count.
    let b2 = signed(2, &[("old", &old), ("new", &new)]);
    assert_eq!(r.verify(&b2, overlap).unwrap().signers, ["new", "old"]);
    // Gateways that still check at an earlier time accept it via the old key.
    assert_eq!(r.verify(&b2, before).unwrap().signers, ["old"]);

    // 3. The new key alone is enough once it is valid...
    let b3 = signed(3, &[("new", &new)]);
    assert_eq!(r.verify(&b3, overlap).unwrap().signers, ["new"]);
    // ...but not before its window opens.
    assert_eq!(
        r.verify(&b3, before).unwrap_err().reason(),
        "key_not_yet_valid"
    );

    // 4. The old key has expired: what it alone signed is refused, bundles
    // signed by both still verify through the new key.
    assert_eq!(r.verify(&b1, after).unwrap_err().reason(), "expired_key");
    assert_eq!(r.verify(&b2, after).unwrap().signers, ["new"]);
    assert_eq!(r.verify(&b3, after).unwrap().signers, ["new"]);
}

/// Current root v1 with keys a, b, c (threshold 2); new root v2 with keys
/// c, d, e (threshold 2).
struct Setup {
    a: SigningKey,
    b: SigningKey,
    c: SigningKey,
    d: SigningKey,
    e: SigningKey,
    current: TrustRoot,
    next: TrustRoot,
}

fn setup() -> Setup {
    let (a, b, c, d, e) = (key(), key(), key(), key(), key());
    let current = root(1, 2, &[("a", &a), ("b", &b), ("c", &c)]);
    let next = root(2, 2, &[("c", &c), ("d", &d), ("e", &e)]);
    Setup {
        a,
        b,
        c,
        d,
        e,
        current,
        next,
    }
}

fn with_update(mut bundle: Bundle, update: &TrustRoot, signers: &[(&str, &SigningKey)]) -> Bundle {
    let sigs = signers
        .iter()
        .map(|(id, k)| (id.to_string(), k.sign(update.bytes()).unwrap()))
        .collect();
    bundle.set_root_update(update.bytes().to_vec(), sigs);
    // Through the archive, as a gateway receives it.
    load(&bundle.to_tar().unwrap()).unwrap()
}

#[test]
fn root_update_signed_by_current_threshold_is_accepted() {
    let s = setup();
    // The bundle is signed only by new-root keys: it verifies only because
    // the update is accepted first.
    let b = with_update(
        signed(5, &[("d", &s.d), ("e", &s.e)]),
        &s.next,
        &[("a", &s.a), ("b", &s.b)],
    );
    let v = s.current.verify(&b, now()).unwrap();
    assert_eq!(v.signers, ["d", "e"]);
    let new_root = v.new_root.unwrap();
    assert_eq!(new_root.version(), 2);
    assert_eq!(new_root.bytes(), s.next.bytes());
    // Without the update the same bundle is refused by the current root.
    let plain = signed(5, &[("d", &s.d), ("e", &s.e)]);
    assert_eq!(
        s.current.verify(&plain, now()).unwrap_err().reason(),
        "unknown_key"
    );
}

#[test]
fn after_an_update_the_bundle_needs_the_new_root() {
    let s = setup();
    // Signed by old-root keys that the new root dropped.
    let b = with_update(
        signed(5, &[("a", &s.a), ("b", &s.b)]),
        &s.next,
        &[("a", &s.a), ("b", &s.b)],
    );
    assert_eq!(
        s.current.verify(&b, now()).unwrap_err().reason(),
        "unknown_key"
    );
}

#[test]
fn root_update_with_too_few_current_signatures_is_refused() {
    let s = setup();
    let b = with_update(
        signed(5, &[("d", &s.d), ("e", &s.e)]),
        &s.next,
        &[("a", &s.a)],
    );
    let err = s.current.verify(&b, now()).unwrap_err();
    assert_eq!(err.reason(), "root_update_refused");
    assert!(err.to_string().contains("1 valid of 2 required"), "{err}");
}

#[test]
fn root_update_signed_by_the_new_roots_own_keys_is_refused() {
    let s = setup();
    // d and e are only in the new root; c is in both but is one key.
    let b = with_update(
        signed(5, &[("d", &s.d), ("e", &s.e)]),
        &s.next,
        &[("c", &s.c), ("d", &s.d), ("e", &s.e)],
    );
    let err = s.current.verify(&b, now()).unwrap_err();
    assert_eq!(err.reason(), "root_update_refused");
    assert!(err.to_string().contains("unknown key: `d`, `e`"), "{err}");
}

#[test]
fn root_update_signed_over_other_bytes_is_refused() {
    let s = setup();
    let mut b = signed(5, &[("d", &s.d), ("e", &s.e)]);
    let pretty = String::from_utf8(s.next.bytes().to_vec()).unwrap();
    let sigs = vec![
        ("a".to_owned(), s.a.sign(pretty.as_bytes()).unwrap()),
        ("b".to_owned(), s.b.sign(pretty.as_bytes()).unwrap()),
    ];
    // Same JSON value, other bytes: the signatures cover the exact bytes.
    let respaced = pretty.replace("\n", "\r\n");
    b.set_root_update(respaced.into_bytes(), sigs);
    let err = s.current.verify(&b, now()).unwrap_err();
    assert_eq!(err.reason(), "root_update_refused");
}

#[test]
fn root_update_signed_by_expired_current_keys_is_refused() {
    let (a, d) = (key(), key());
    let current = TrustRoot::create(
        1,
        1,
        &[spec(
            "a",
            &a,
            "2024-01-01T00:00:00Z",
            "2025-01-01T00:00:00Z",
        )],
    )
    .unwrap();
    let next = root(2, 1, &[("d", &d)]);
    let b = with_update(signed(5, &[("d", &d)]), &next, &[("a", &a)]);
    let err = current.verify(&b, now()).unwrap_err();
    assert_eq!(err.reason(), "root_update_refused");
    assert!(current.verify(&b, ts("2024-06-01T00:00:00Z")).is_ok());
}

#[test]
fn a_refused_root_update_refuses_a_bundle_that_would_otherwise_verify() {
    let s = setup();
    let b = with_update(
        signed(5, &[("a", &s.a), ("b", &s.b)]),
        &s.next,
        &[("d", &s.d)],
    );
    assert_eq!(
        s.current.verify(&b, now()).unwrap_err().reason(),
        "root_update_refused"
    );
}

#[test]
fn chained_updates_apply_one_root_at_a_time() {
    let s = setup();
    let third = root(3, 1, &[("e", &s.e)]);
    // v1 -> v3 signed by v2's keys only: v1 does not accept it.
    let b = with_update(
        signed(6, &[("e", &s.e)]),
        &third,
        &[("c", &s.c), ("d", &s.d)],
    );
    let err = s.current.verify(&b, now()).unwrap_err();
    assert_eq!(err.reason(), "root_update_refused");
    // A gateway already on v2 accepts it.
    let v = s.next.verify(&b, now()).unwrap();
    assert_eq!(v.new_root.unwrap().version(), 3);
}
