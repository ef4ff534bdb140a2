//! A bounded cache of verified tokens, so a repeated bearer token skips
//! the signature check.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use aws_lc_rs::digest;

use crate::keyset::KeySetVersion;
use crate::verify::VerifiedToken;

/// Most mutex shards: enough to keep lock contention low on a many-core
/// gateway; a small cache uses fewer so that it fills evenly.
pub const MAX_CACHE_SHARDS: usize = 16;

/// Entries per shard below which a cache does not split further.
const MIN_ENTRIES_PER_SHARD: usize = 64;

type Key = [u8; 32];

struct Entry {
    token: Arc<VerifiedToken>,
    leeway: i64,
}

impl Entry {
    fn expired(&self, now: i64) -> bool {
        now.saturating_sub(self.leeway) >= self.token.expires_at
    }

    fn not_yet_valid(&self, now: i64) -> bool {
        let horizon = now.saturating_add(self.leeway);
        self.token.not_before.is_some_and(|t| t > horizon)
            || self.token.issued_at.is_some_and(|t| t > horizon)
    }
}

/// Verified-token cache: `Send + Sync`, bounded, keyed by SHA-256 over the
/// issuer, the key-set version and the whole token (the token itself is
/// not stored).
///
/// A hit still honours `exp`, `nbf` and `iat` against `now`; an entry of
/// an older key-set version is never returned (the key was rotated or
/// removed). When a shard is full, expired entries go first, then the one
/// that expires soonest.
pub struct VerifiedCache {
    shards: Box<[Mutex<HashMap<Key, Entry>>]>,
    per_shard: usize,
    /// Latest `now` seen by `get`, to find expired entries on insert.
    last_now: AtomicI64,
}

impl VerifiedCache {
    /// A cache of at most `max_entries` tokens; 0 disables caching.
    pub fn new(max_entries: usize) -> Self {
        let shards = (max_entries / MIN_ENTRIES_PER_SHARD).clamp(1, MAX_CACHE_SHARDS);
        let per_shard = max_entries / shards;
        let shards = if per_shard == 0 { 0 } else { shards };
        Self {
            shards: (0..shards).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard,
            last_now: AtomicI64::new(i64::MIN),
        }
    }

    /// The cached verification of `token` for `issuer` under key-set
    /// `version`, if present and current at `now`. An expired entry is
    /// dropped.
    pub fn get(
        &self,
        token: &str,
        issuer: &str,
        version: KeySetVersion,
        now: i64,
    ) -> Option<Arc<VerifiedToken>> {
        // A plain load first keeps the shared cache line read-mostly.
        if now > self.last_now.load(Ordering::Relaxed) {
            self.last_now.fetch_max(now, Ordering::Relaxed);
        }
        let key = cache_key(token, issuer, version)?;
        let mut shard = self.shard(&key)?;
        let entry = shard.get(&key)?;
        // The key already binds issuer and version; checked again in case
        // of a logic error elsewhere.
        if entry.token.issuer != issuer || entry.token.key_set_version != version {
            return None;
        }
        if entry.expired(now) {
            shard.remove(&key);
            return None;
        }
        if entry.not_yet_valid(now) {
            return None;
        }
        Some(Arc::clone(&entry.token))
    }

    /// Remembers a verification made with `leeway_secs` (the issuer's
    /// leeway, applied again on every hit).
    pub fn insert(&self, token: &str, verified: Arc<VerifiedToken>, leeway_secs: u64) {
        let Some(key) = cache_key(token, &verified.issuer, verified.key_set_version) else {
            return;
        };
        let per_shard = self.per_shard;
        let now = self.last_now.load(Ordering::Relaxed);
        let Some(mut shard) = self.shard(&key) else {
            return;
        };
        if shard.len() >= per_shard && !shard.contains_key(&key) {
            make_room(&mut shard, per_shard, now);
        }
        let leeway = i64::try_from(leeway_secs).unwrap_or(i64::MAX);
        shard.insert(
            key,
            Entry {
                token: verified,
                leeway,
            },
        );
    }

    /// Number of cached entries (expired ones included until evicted).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every entry.
    pub fn clear(&self) {
        for s in self.shards.iter() {
            lock(s).clear();
        }
    }

    fn shard(&self, key: &Key) -> Option<MutexGuard<'_, HashMap<Key, Entry>>> {
        let n = self.shards.len();
        if n == 0 {
            return None;
        }
        let index = usize::from(key.first().copied().unwrap_or(0)) % n;
        self.shards.get(index).map(lock)
    }
}

impl std::fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("shards", &self.shards.len())
            .field("per_shard", &self.per_shard)
            .field("len", &self.len())
            .finish()
    }
}

/// A poisoned lock only means another thread panicked mid-operation; the
/// map is still a valid map, so keep using it.
fn lock(m: &Mutex<HashMap<Key, Entry>>) -> MutexGuard<'_, HashMap<Key, Entry>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Drops expired entries; if the shard is still full, drops the entry that
/// expires soonest.
fn make_room(shard: &mut HashMap<Key, Entry>, per_shard: usize, now: i64) {
    shard.retain(|_, e| !e.expired(now));
    while shard.len() >= per_shard {
        let Some(victim) = shard
            .iter()
            .min_by_key(|(_, e)| e.token.expires_at.saturating_add(e.leeway))
            .map(|(k, _)| *k)
        else {
            return;
        };
        shard.remove(&victim);
    }
}

/// `None` only if the digest had an unexpected length: then nothing is
/// cached rather than risking colliding keys.
fn cache_key(token: &str, issuer: &str, version: KeySetVersion) -> Option<Key> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&(issuer.len() as u64).to_be_bytes());
    ctx.update(issuer.as_bytes());
    ctx.update(version.as_bytes());
    ctx.update(token.as_bytes());
    <[u8; 32]>::try_from(ctx.finish().as_ref()).ok()
}

#[cfg(test)]
mod tests;
