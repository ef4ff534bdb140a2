//! Helpers shared by the unit tests (`src/test_util.rs`) and the
//! integration tests (`tests/common`): times, keys and trust roots. The
//! including module imports `RootKeySpec`, `SigAlg`, `SigningKey` and
//! `TrustRoot`.

use jiff::Timestamp;

use super::{RootKeySpec, SigAlg, SigningKey, TrustRoot};

pub(crate) fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A time inside every default key window.
pub(crate) fn now() -> Timestamp {
    ts("2025-06-01T00:00:00Z")
}

pub(crate) fn key() -> SigningKey {
    SigningKey::generate(SigAlg::EcdsaP256).unwrap()
}

pub(crate) fn spec(id: &str, key: &SigningKey, from: &str, until: &str) -> RootKeySpec {
    RootKeySpec {
        id: id.to_owned(),
        alg: key.alg(),
        public_key: key.public_key_pem(),
        not_before: ts(from),
        not_after: ts(until),
    }
}

/// A root whose keys are valid from 2024 to 2030.
pub(crate) fn root(version: u64, threshold: usize, keys: &[(&str, &SigningKey)]) -> TrustRoot {
    let specs: Vec<_> = keys
        .iter()
        .map(|(id, k)| spec(id, k, "2024-01-01T00:00:00Z", "2030-01-01T00:00:00Z"))
        .collect();
    TrustRoot::create(version, threshold, &specs).unwrap()
}
