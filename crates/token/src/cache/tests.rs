use std::sync::Arc;

use serde_json::Map;

use super::*;
use crate::test_util::{keyset, rules, token, TestKey, ISS, NOW};
use crate::verify;

fn version(byte: u8) -> KeySetVersion {
    let key = TestKey::new(crate::Alg::EdDsa, Some(&format!("k{byte}")));
    keyset(&[&key]).version()
}

fn entry(issuer: &str, version: KeySetVersion, expires_at: i64) -> Arc<VerifiedToken> {
    Arc::new(VerifiedToken {
        alg: crate::Alg::Es256,
        kid: None,
        typ: None,
        issuer: issuer.to_owned(),
        subject: Some("user-1".into()),
        audiences: vec!["api".into()],
        expires_at,
        not_before: None,
        issued_at: None,
        claims: Map::new(),
        cnf_x5t_s256: None,
        key_set_version: version,
    })
}

#[test]
fn hit_returns_the_cached_verification() {
    let key = TestKey::new(crate::Alg::Es256, Some("ec"));
    let keys = keyset(&[&key]);
    let t = token(&key);
    let verified = Arc::new(verify(&t, &rules(), &keys, NOW).unwrap());
    let cache = VerifiedCache::new(100);
    assert!(cache.get(&t, ISS, keys.version(), NOW).is_none());
    cache.insert(&t, Arc::clone(&verified), 0);
    let hit = cache.get(&t, ISS, keys.version(), NOW).unwrap();
    assert!(Arc::ptr_eq(&hit, &verified));
    assert_eq!(cache.len(), 1);
    assert!(!cache.is_empty());
}

#[test]
fn hit_skips_verification() {
    // `get` never looks at the token's structure or signature: a string
    // that could never verify is served from the cache once inserted.
    let v = version(1);
    let cache = VerifiedCache::new(10);
    let not_a_jwt = "definitely-not-a-jwt";
    cache.insert(not_a_jwt, entry(ISS, v, NOW + 60), 0);
    let hit = cache.get(not_a_jwt, ISS, v, NOW).unwrap();
    assert_eq!(hit.subject.as_deref(), Some("user-1"));
}

#[test]
fn other_tokens_miss() {
    let v = version(1);
    let cache = VerifiedCache::new(10);
    cache.insert("token-a", entry(ISS, v, NOW + 60), 0);
    assert!(cache.get("token-b", ISS, v, NOW).is_none());
    assert!(cache.get("token-a ", ISS, v, NOW).is_none());
}

#[test]
fn miss_on_key_set_version_change() {
    let (old, new) = (version(1), version(2));
    assert_ne!(old, new);
    let cache = VerifiedCache::new(10);
    cache.insert("t", entry(ISS, old, NOW + 60), 0);
    assert!(cache.get("t", ISS, new, NOW).is_none());
    assert!(cache.get("t", ISS, old, NOW).is_some());
}

#[test]
fn miss_for_another_issuer() {
    let v = version(1);
    let cache = VerifiedCache::new(10);
    cache.insert("t", entry(ISS, v, NOW + 60), 0);
    assert!(cache
        .get("t", "https://other.example.com", v, NOW)
        .is_none());
}

#[test]
fn never_returns_an_expired_entry() {
    let v = version(1);
    let cache = VerifiedCache::new(10);
    cache.insert("t", entry(ISS, v, NOW + 60), 0);
    assert!(cache.get("t", ISS, v, NOW + 59).is_some());
    assert!(cache.get("t", ISS, v, NOW + 60).is_none());
    // The expired entry was dropped.
    assert_eq!(cache.len(), 0);
    assert!(cache.get("t", ISS, v, NOW).is_none());
}

#[test]
fn leeway_is_applied_on_hits() {
    let v = version(1);
    let cache = VerifiedCache::new(10);
    cache.insert("t", entry(ISS, v, NOW), 30);
    assert!(cache.get("t", ISS, v, NOW + 29).is_some());
    assert!(cache.get("t", ISS, v, NOW + 30).is_none());
}

#[test]
fn honours_not_before_and_issued_at() {
    let v = version(1);
    let cache = VerifiedCache::new(10);
    let mut t = (*entry(ISS, v, NOW + 600)).clone();
    t.not_before = Some(NOW + 100);
    cache.insert("nbf", Arc::new(t), 10);
    assert!(cache.get("nbf", ISS, v, NOW).is_none());
    assert!(cache.get("nbf", ISS, v, NOW + 90).is_some());
    let mut t = (*entry(ISS, v, NOW + 600)).clone();
    t.issued_at = Some(NOW + 100);
    cache.insert("iat", Arc::new(t), 0);
    assert!(cache.get("iat", ISS, v, NOW).is_none());
    assert!(cache.get("iat", ISS, v, NOW + 100).is_some());
    // Not-yet-valid entries stay cached.
    assert_eq!(cache.len(), 2);
}

#[test]
fn cache_is_bounded() {
    let v = version(1);
    for max in [1, 10, 100, 1000] {
        let cache = VerifiedCache::new(max);
        for i in 0..(3 * max) {
            cache.insert(&format!("token-{i}"), entry(ISS, v, NOW + 60), 0);
            assert!(cache.len() <= max, "max {max}: {}", cache.len());
        }
        assert!(cache.len() >= max / 2, "max {max}: {}", cache.len());
    }
}

#[test]
fn zero_entries_disables_caching() {
    let v = version(1);
    let cache = VerifiedCache::new(0);
    cache.insert("t", entry(ISS, v, NOW + 60), 0);
    assert_eq!(cache.len(), 0);
    assert!(cache.get("t", ISS, v, NOW).is_none());
}

#[test]
fn eviction_drops_expired_entries_first() {
    let v = version(1);
    let cache = VerifiedCache::new(3);
    cache.insert("old-1", entry(ISS, v, NOW - 100), 0);
    cache.insert("live", entry(ISS, v, NOW + 1000), 0);
    cache.insert("old-2", entry(ISS, v, NOW - 50), 0);
    // Teach the cache the current time.
    assert!(cache.get("missing", ISS, v, NOW).is_none());
    cache.insert("new", entry(ISS, v, NOW + 500), 0);
    assert_eq!(cache.len(), 2);
    assert!(cache.get("live", ISS, v, NOW).is_some());
    assert!(cache.get("new", ISS, v, NOW).is_some());
}

#[test]
fn eviction_drops_the_soonest_expiring_when_none_expired() {
    let v = version(1);
    let cache = VerifiedCache::new(3);
    cache.insert("a", entry(ISS, v, NOW + 300), 0);
    cache.insert("b", entry(ISS, v, NOW + 100), 0);
    cache.insert("c", entry(ISS, v, NOW + 200), 0);
    cache.insert("d", entry(ISS, v, NOW + 400), 0);
    assert_eq!(cache.len(), 3);
    assert!(cache.get("b", ISS, v, NOW).is_none());
    for t in ["a", "c", "d"] {
        assert!(cache.get(t, ISS, v, NOW).is_some(), "{t}");
    }
}

#[test]
fn reinserting_a_present_token_does_not_evict() {
    let v = version(1);
    let cache = VerifiedCache::new(2);
    cache.insert("a", entry(ISS, v, NOW + 300), 0);
    cache.insert("b", entry(ISS, v, NOW + 100), 0);
    cache.insert("b", entry(ISS, v, NOW + 100), 0);
    assert!(cache.get("a", ISS, v, NOW).is_some());
    assert!(cache.get("b", ISS, v, NOW).is_some());
}

#[test]
fn clear_empties_the_cache() {
    let v = version(1);
    let cache = VerifiedCache::new(100);
    for i in 0..50 {
        cache.insert(&format!("t{i}"), entry(ISS, v, NOW + 60), 0);
    }
    assert_eq!(cache.len(), 50);
    cache.clear();
    assert!(cache.is_empty());
}

#[test]
fn cache_is_send_and_sync_and_works_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<VerifiedCache>();
    let v = version(1);
    let cache = Arc::new(VerifiedCache::new(1000));
    let handles: Vec<_> = (0..4)
        .map(|n| {
            let cache = Arc::clone(&cache);
            std::thread::spawn(move || {
                for i in 0..100 {
                    let t = format!("t{n}-{i}");
                    cache.insert(&t, entry(ISS, v, NOW + 60), 0);
                    assert!(cache.get(&t, ISS, v, NOW).is_some());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(cache.len() <= 1000);
    assert!(cache.len() >= 300);
}

#[test]
fn debug_does_not_list_tokens() {
    let v = version(1);
    let cache = VerifiedCache::new(10);
    cache.insert("secret-token", entry(ISS, v, NOW + 60), 0);
    let dbg = format!("{cache:?}");
    assert!(!dbg.contains("secret-token"));
    assert!(dbg.contains("len: 1"));
}
