use super::*;

fn key(b: u8) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(vec![b; 32])
}

fn skey(b: u8) -> SessionKey {
    SessionKey([b; 32])
}

#[test]
fn seal_open_round_trip_and_rotation() {
    let old = Sealer::new(vec![("k1".into(), key(1))]).unwrap();
    let blob = old.seal(&skey(9), b"refresh-token").unwrap();
    assert_eq!(blob.key_id, "k1");
    assert!(!blob.ciphertext.windows(13).any(|w| w == b"refresh-token"));
    // Rotation: k2 seals, k1 still opens old blobs.
    let new = Sealer::new(vec![("k2".into(), key(2)), ("k1".into(), key(1))]).unwrap();
    assert_eq!(
        new.open(&skey(9), &blob).unwrap().as_slice(),
        b"refresh-token"
    );
    assert_eq!(new.seal(&skey(9), b"x").unwrap().key_id, "k2");
    // After k1 is retired its blobs no longer open.
    let retired = Sealer::new(vec![("k2".into(), key(2))]).unwrap();
    assert_eq!(
        retired.open(&skey(9), &blob),
        Err(SealError::UnknownKey("k1".into()))
    );
}

#[test]
fn tampered_or_moved_blobs_do_not_open() {
    let s = Sealer::new(vec![("k".into(), key(1))]).unwrap();
    let blob = s.seal(&skey(1), b"secret").unwrap();
    assert_eq!(
        s.open(&skey(2), &blob),
        Err(SealError::Open),
        "another session"
    );
    let mut t = blob.clone();
    t.ciphertext[0] ^= 1;
    assert_eq!(s.open(&skey(1), &t), Err(SealError::Open));
    let other = Sealer::new(vec![("k".into(), key(7))]).unwrap();
    assert_eq!(
        other.open(&skey(1), &blob),
        Err(SealError::Open),
        "same id, other key"
    );
}

#[test]
fn bad_keys_are_refused_and_debug_shows_no_key() {
    assert_eq!(Sealer::new(vec![]).err(), Some(SealError::NoKey));
    assert_eq!(
        Sealer::new(vec![("k".into(), Zeroizing::new(vec![0; 16]))]).err(),
        Some(SealError::BadKeyLength("k".into()))
    );
    assert_eq!(
        Sealer::new(vec![("k".into(), key(1)), ("k".into(), key(2))]).err(),
        Some(SealError::DuplicateKeyId("k".into()))
    );
    let s = Sealer::new(vec![("k".into(), key(0xab))]).unwrap();
    assert!(!format!("{s:?}").contains("171"));
}
