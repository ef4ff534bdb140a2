use std::hash::{BuildHasher, BuildHasherDefault};

use super::*;

fn hash(s: &str) -> u64 {
    BuildHasherDefault::<FxHasher>::default().hash_one(s)
}

#[test]
fn equal_strings_hash_equal_and_different_ones_differ() {
    assert_eq!(
        hash("spiffe://example.org/a"),
        hash("spiffe://example.org/a")
    );
    let inputs = [
        "",
        "a",
        "b",
        "ab",
        "ba",
        "abcdefgh",
        "abcdefghi",
        "abcdefgh\0",
        "/api",
        "api/",
    ];
    let hashes: std::collections::HashSet<u64> = inputs.iter().map(|s| hash(s)).collect();
    assert_eq!(hashes.len(), inputs.len());
}

#[test]
fn map_finds_borrowed_keys() {
    let mut m: FastMap<Box<str>, u32> = FastMap::default();
    m.insert("GET".into(), 1);
    m.insert("POST".into(), 2);
    assert_eq!(m.get("GET"), Some(&1));
    assert_eq!(m.get("get"), None);
}

#[test]
fn keys_differing_late_spread_over_the_low_bits() {
    // Table slots come from the low bits; keys such as `svc1`, `svc2` that
    // differ only in a high byte of the last word must still spread.
    let low: std::collections::HashSet<u64> = (0..1000)
        .map(|i| hash(&format!("svc{i}")) & 0xfff)
        .collect();
    assert!(
        low.len() > 700,
        "only {} distinct low-bit values",
        low.len()
    );
}
