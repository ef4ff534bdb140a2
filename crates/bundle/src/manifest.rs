//! `manifest.json`: what a bundle holds; its exact bytes are what is signed.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::PathFault;
use crate::error::{echo, BundleError};
use crate::path;

/// The `format` of every manifest this crate reads and writes.
pub const MANIFEST_FORMAT: &str = "portcullis-bundle-v1";

/// Largest `manifest.json`: about 150 bytes per listed file, so 1 MiB holds
/// several thousand entries, more than [`crate::DEFAULT_MAX_ENTRIES`].
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;

/// The manifest's file name at the root of a bundle.
pub const MANIFEST_PATH: &str = "manifest.json";

/// The parsed manifest. Fields are serialized in this order, compactly:
/// `{"format":..,"revision":..,"created":..,"entrypoint":..,"files":[..]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// Positive, increasing with every published bundle.
    pub revision: u64,
    /// RFC 3339 UTC time (`...Z`) the bundle was built.
    pub created: String,
    /// The policy file the gateway loads; one of `files`.
    pub entrypoint: String,
    /// Every content file, sorted by path (byte order), no duplicates.
    pub files: Vec<FileEntry>,
}

/// One content file of a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative path inside the bundle.
    pub path: String,
    /// Exact length in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the content (64 characters).
    pub sha256: String,
}

impl Manifest {
    /// Parses and validates manifest bytes strictly: no unknown fields, no
    /// duplicate members, bounded size.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, BundleError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(BundleError::EntryTooLarge {
                path: MANIFEST_PATH.to_owned(),
                len: bytes.len() as u64,
                max: MAX_MANIFEST_BYTES as u64,
            });
        }
        let manifest: Manifest =
            crate::json::parse(bytes, MANIFEST_PATH, BundleError::MalformedManifest)?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks every rule of the format (see `docs/bundles.md`).
    pub fn validate(&self) -> Result<(), BundleError> {
        let bad = |msg: String| Err(BundleError::MalformedManifest(msg));
        if self.format != MANIFEST_FORMAT {
            return bad(format!(
                "format `{}` is not `{MANIFEST_FORMAT}`",
                echo(self.format.as_bytes())
            ));
        }
        if self.revision == 0 {
            return bad("revision must be a positive integer".to_owned());
        }
        if !self.created.ends_with('Z') || self.created.parse::<jiff::Timestamp>().is_err() {
            return bad(format!(
                "created `{}` is not an rfc 3339 utc time",
                echo(self.created.as_bytes())
            ));
        }
        let mut previous: Option<&str> = None;
        let mut paths = BTreeSet::new();
        for file in &self.files {
            let checked = path::check(file.path.as_bytes())?;
            if is_reserved(checked) {
                return bad(format!("file `{checked}` uses a reserved path"));
            }
            if let Some(previous) = previous {
                if previous >= checked {
                    return bad(format!(
                        "files are not sorted by path, or list `{checked}` twice"
                    ));
                }
            }
            previous = Some(checked);
            if !is_sha256_hex(&file.sha256) {
                return bad(format!(
                    "sha256 of `{checked}` is not 64 lowercase hex characters"
                ));
            }
            paths.insert(checked);
        }
        for file in &self.files {
            if let Some(parent) = path::ancestors(&file.path).find(|a| paths.contains(a)) {
                return Err(BundleError::UnsafePath {
                    path: echo(parent.as_bytes()),
                    fault: PathFault::FileAsDirectory,
                });
            }
        }
        if !paths.contains(self.entrypoint.as_str()) {
            return bad(format!(
                "entrypoint `{}` is not one of the files",
                echo(self.entrypoint.as_bytes())
            ));
        }
        Ok(())
    }

    /// The canonical bytes: compact JSON in field order.
    pub fn to_bytes(&self) -> Result<Vec<u8>, BundleError> {
        serde_json::to_vec(self).map_err(|e| BundleError::MalformedManifest(e.to_string()))
    }

    /// The listed entry for `path`.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .and_then(|at| self.files.get(at))
    }
}

/// Paths the bundle layout gives a meaning: the manifest, signatures and the
/// trust root update. Content files may not use them.
pub(crate) fn is_reserved(path: &str) -> bool {
    path == MANIFEST_PATH
        || path == "signatures"
        || path.starts_with("signatures/")
        || path == "root"
        || path.starts_with("root/")
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Lowercase hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    hex(digest.as_ref())
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            if let Some(&d) = DIGITS.get(usize::from(nibble)) {
                out.push(char::from(d));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
