//! Helpers shared by the integration tests.
#![allow(
    dead_code,
    unused_imports,
    reason = "each test file uses some of the helpers"
)]

use std::collections::BTreeMap;
use std::path::Path;

use portcullis_bundle::{Bundle, Limits, RootKeySpec, SigAlg, SigningKey, TrustRoot};

#[path = "../../src/test_util/shared.rs"]
mod shared;
pub(crate) use shared::{key, now, root, spec, ts};

/// Writes a small policy source directory.
pub(crate) fn write_source(dir: &Path) {
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(dir.join("policy.yaml"), "revision: 1\nrules: []\n").unwrap();
    std::fs::write(dir.join("tests/allow.yaml"), "cases: []\n").unwrap();
}

/// An unsigned bundle built from a fresh source directory.
pub(crate) fn bundle(revision: u64) -> Bundle {
    let dir = tempfile::tempdir().unwrap();
    write_source(dir.path());
    Bundle::build(
        dir.path(),
        revision,
        "policy.yaml",
        ts("2025-05-01T00:00:00Z"),
    )
    .unwrap()
}

/// A bundle signed by every `(id, key)`.
pub(crate) fn signed(revision: u64, keys: &[(&str, &SigningKey)]) -> Bundle {
    let mut b = bundle(revision);
    for (id, k) in keys {
        b.sign(id, k).unwrap();
    }
    b
}

pub(crate) fn load(bytes: &[u8]) -> Result<Bundle, portcullis_bundle::BundleError> {
    Bundle::from_tar(bytes, &Limits::default())
}

/// The entries of an archive, with the tar crate's reader.
pub(crate) fn unpack(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        out.insert(path, data);
    }
    out
}

/// A ustar archive of regular files, in the given order.
pub(crate) fn pack<'a>(entries: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_path(path).unwrap();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

pub(crate) fn pack_map(entries: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    pack(entries.iter().map(|(p, d)| (p.as_str(), d.as_slice())))
}

/// A hand-made header with raw name bytes (the tar crate's `set_path`
/// refuses `..` and absolute paths, so the bytes are written directly).
pub(crate) fn raw_header(name: &[u8], kind: tar::EntryType, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_entry_type(kind);
    header
}

/// `prefix` (a valid archive without its end marker) plus one raw entry and
/// the end marker.
pub(crate) fn append_raw(archive: &[u8], mut header: tar::Header, data: &[u8]) -> Vec<u8> {
    let body = &archive[..archive.len() - 1024];
    let mut out = body.to_vec();
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0; 1024]);
    out
}
