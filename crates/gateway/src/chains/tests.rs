use super::*;

fn der(bytes: &[u8]) -> CertificateDer<'static> {
    CertificateDer::from(bytes.to_vec())
}

#[test]
fn equal_chains_share_one_copy() {
    let cache = ChainCache::default();
    let chain = [der(b"leaf"), der(b"intermediate")];
    let a = cache.intern([1; 32], &chain);
    let b = cache.intern([1; 32], &chain);
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(&*a, &chain[..]);
}

#[test]
fn the_same_leaf_with_another_intermediate_is_not_shared() {
    let cache = ChainCache::default();
    let a = cache.intern([1; 32], &[der(b"leaf"), der(b"intermediate")]);
    let b = cache.intern([1; 32], &[der(b"leaf"), der(b"other intermediate")]);
    assert!(!Arc::ptr_eq(&a, &b));
    assert_eq!(&*b, &[der(b"leaf"), der(b"other intermediate")][..]);
    // Both stay as they were for the connections that keep them.
    assert_eq!(&*a, &[der(b"leaf"), der(b"intermediate")][..]);
}

#[test]
fn a_chain_no_connection_keeps_is_freed_and_made_again() {
    let cache = ChainCache::default();
    let chain = [der(b"leaf")];
    let a = cache.intern([2; 32], &chain);
    let weak = Arc::downgrade(&a);
    drop(a);
    assert!(weak.upgrade().is_none(), "the cache keeps no chain alive");
    let b = cache.intern([2; 32], &chain);
    assert_eq!(&*b, &chain[..]);
}

#[test]
fn entries_of_freed_chains_are_pruned() {
    let cache = ChainCache::default();
    let kept = cache.intern([0; 32], &[der(b"kept")]);
    for i in 1..=(MIN_PRUNE_AT as u32 + 10) {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(&i.to_be_bytes());
        drop(cache.intern(key, &[der(&i.to_be_bytes())]));
    }
    assert!(
        cache.entries() < MIN_PRUNE_AT,
        "{} entries after freeing all but one",
        cache.entries()
    );
    assert!(Arc::ptr_eq(&kept, &cache.intern([0; 32], &[der(b"kept")])));
}
