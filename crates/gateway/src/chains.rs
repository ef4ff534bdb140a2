//! The client certificate chains established connections keep (to verify
//! them again after a reload changes the listener's trust), shared between
//! connections that present the same chain: a workload's many connections
//! keep one copy, not one each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use rustls_pki_types::CertificateDer;

/// A chain as connections share it, leaf first.
pub(crate) type Chain = Arc<[CertificateDer<'static>]>;

/// Entries are pruned of chains no connection keeps any more once the map
/// reaches this size, then whenever it has doubled since.
const MIN_PRUNE_AT: usize = 1024;

/// Chains by the SHA-256 of their leaf. Holds no chain alive: an entry is
/// a weak reference, and the last connection keeping a chain frees it.
pub(crate) struct ChainCache(Mutex<Inner>);

struct Inner {
    chains: HashMap<[u8; 32], Weak<[CertificateDer<'static>]>>,
    prune_at: usize,
}

impl Default for ChainCache {
    fn default() -> Self {
        Self(Mutex::new(Inner {
            chains: HashMap::new(),
            prune_at: MIN_PRUNE_AT,
        }))
    }
}

impl ChainCache {
    /// The shared copy of `chain`, whose leaf has SHA-256 `leaf_sha256`:
    /// the one another connection keeps when the chains are equal byte for
    /// byte, else a new one (which later connections then share).
    pub(crate) fn intern(&self, leaf_sha256: [u8; 32], chain: &[CertificateDer<'_>]) -> Chain {
        // A poisoned lock only means another connection panicked while
        // holding it; the map is still a valid cache.
        let mut inner = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(kept) = inner.chains.get(&leaf_sha256).and_then(Weak::upgrade) {
            if *kept == *chain {
                return kept;
            }
        }
        let fresh: Chain = chain.iter().map(|c| c.clone().into_owned()).collect();
        inner.chains.insert(leaf_sha256, Arc::downgrade(&fresh));
        if inner.chains.len() >= inner.prune_at {
            inner.chains.retain(|_, w| w.strong_count() > 0);
            inner.prune_at = (inner.chains.len() * 2).max(MIN_PRUNE_AT);
        }
        fresh
    }

    #[cfg(test)]
    fn entries(&self) -> usize {
        self.0.lock().map(|i| i.chains.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
