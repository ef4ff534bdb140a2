//! Helpers shared by the unit tests.

use std::collections::BTreeMap;

use crate::{Bundle, RootKeySpec, SigAlg, SigningKey, TrustRoot};

mod shared;
pub(crate) use shared::{key, now, root, spec, ts};

pub(crate) fn files() -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        (
            "policy.yaml".to_owned(),
            b"revision: 1\nrules: []\n".to_vec(),
        ),
        ("tests/a.yaml".to_owned(), b"cases: []\n".to_vec()),
    ])
}

pub(crate) fn bundle(revision: u64) -> Bundle {
    Bundle::from_files(files(), revision, "policy.yaml", ts("2025-05-01T00:00:00Z")).unwrap()
}
