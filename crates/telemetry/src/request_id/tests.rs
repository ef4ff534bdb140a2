use std::collections::HashSet;

use super::*;

fn is_lower_hex_id(id: &str) -> bool {
    id.len() == REQUEST_ID_BYTES * 2
        && id
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

#[test]
fn request_id_is_32_lowercase_hex_digits() {
    let id = new_request_id();
    assert!(is_lower_hex_id(&id), "{id}");
}

#[test]
fn request_ids_are_distinct() {
    let ids: HashSet<String> = (0..10_000).map(|_| new_request_id()).collect();
    assert_eq!(ids.len(), 10_000);
}

#[test]
fn request_ids_are_distinct_across_batches_and_threads() {
    // Several refills per thread, on threads with their own batches.
    let per_thread = BATCH_IDS * 5 + 3;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                (0..per_thread)
                    .map(|_| new_request_id())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all = HashSet::new();
    for t in threads {
        for id in t.join().expect("id thread") {
            assert!(is_lower_hex_id(&id), "{id}");
            assert!(all.insert(id), "an id repeated");
        }
    }
    assert_eq!(all.len(), per_thread * 4);
}

#[test]
fn a_batch_hands_out_each_byte_once_then_refills() {
    let mut batch = Batch::EMPTY;
    let first: Vec<_> = (0..BATCH_IDS)
        .map(|_| batch.take().expect("random"))
        .collect();
    assert_eq!(batch.next, batch.bytes.len());
    // the ids are the buffer's bytes in order, nothing skipped or reused
    assert_eq!(first.concat(), batch.bytes.to_vec());
    let next = batch.take().expect("refill");
    assert_eq!(batch.next, REQUEST_ID_BYTES);
    assert!(!first.contains(&next));
}

#[test]
fn request_ids_are_not_constant_per_position() {
    // A broken generator that left bytes zeroed would show up as a digit
    // that never changes.
    let ids: Vec<String> = (0..64).map(|_| new_request_id()).collect();
    for pos in 0..REQUEST_ID_BYTES * 2 {
        let digits: HashSet<u8> = ids.iter().map(|id| id.as_bytes()[pos]).collect();
        assert!(digits.len() > 1, "digit {pos} never changes");
    }
}

#[test]
fn fallback_ids_are_well_formed_and_distinct() {
    let ids: Vec<String> = (0..1000).map(|_| fallback_request_id()).collect();
    assert!(ids.iter().all(|id| is_lower_hex_id(id)), "{ids:?}");
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());
}

#[test]
fn hex_encoding_is_lowercase_and_complete() {
    let mut bytes = [0u8; REQUEST_ID_BYTES];
    bytes[..4].copy_from_slice(&[0x00, 0x0f, 0xa5, 0xff]);
    bytes[15] = 0x9c;
    assert_eq!(&hex_digits(&bytes), b"000fa5ff00000000000000000000009c");
}

#[test]
fn a_shared_request_id_is_like_any_other() {
    let a = new_request_id_shared();
    let b = new_request_id_shared();
    assert_ne!(a, b);
    for id in [&a, &b] {
        assert_eq!(id.len(), REQUEST_ID_BYTES * 2);
        assert!(id
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}
