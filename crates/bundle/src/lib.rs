//! Signed policy bundles for Portcullis.
//!
//! A bundle is an uncompressed ustar archive (or a directory with the same
//! layout) holding `manifest.json`, the files it lists with their sizes and
//! SHA-256 digests, `signatures/<key-id>.sig` over the exact manifest bytes,
//! and optionally a trust root update under `root/`. The format is specified
//! byte for byte in `docs/bundles.md`.
//!
//! This crate:
//! - reads bundles defensively ([`Bundle::from_tar`], [`Bundle::from_dir`]):
//!   size and count [`Limits`], unsafe paths, links and devices, duplicate
//!   entries, truncation, files that do not match the manifest;
//! - builds, signs and writes deterministic bundles ([`Bundle::build`],
//!   [`Bundle::sign`], [`Bundle::to_tar`]) with ECDSA P-256 or Ed25519
//!   ([`SigningKey`]);
//! - verifies a bundle against a [`TrustRoot`] (threshold, key validity
//!   windows, root updates signed by the current root) at a given time;
//! - keeps [`RollbackState`] so an older or substituted revision is refused.
//!
//! It does not parse or compile the policy, fetch bundles, read the clock
//! (callers pass the verification time) or decide when to activate: the
//! gateway does that with [`Verified`] and [`RollbackState::check`]. All
//! cryptography is `aws-lc-rs`.

mod alg;
mod archive;
mod b64;
mod bundle;
mod error;
mod json;
mod key;
mod limits;
mod manifest;
mod path;
mod pem;
mod rollback;
mod root;

pub use alg::SigAlg;
pub use b64::{MAX_SIGNATURE_BYTES, MAX_SIGNATURE_FILE_BYTES};
pub use bundle::{Bundle, ROOT_UPDATE_PATH};
pub use error::{BundleError, PathFault, Rejection, SignatureReport, MAX_ECHO_CHARS};
pub use json::MAX_JSON_DEPTH;
pub use key::{SigningKey, MAX_KEY_ID_LEN};
pub use limits::{
    Limits, DEFAULT_MAX_BUNDLE_BYTES, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_FILE_BYTES, MAX_ROOT_BYTES,
};
pub use manifest::{FileEntry, Manifest, MANIFEST_FORMAT, MANIFEST_PATH, MAX_MANIFEST_BYTES};
pub use path::MAX_PATH_BYTES;
pub use pem::{encode as pem_encode, MAX_PEM_BYTES};
pub use rollback::{RollbackState, MAX_STATE_BYTES};
pub use root::{RootKeyInfo, RootKeySpec, TrustRoot, Verified, MAX_ROOT_KEYS, TRUST_ROOT_FORMAT};

#[cfg(test)]
mod test_util;
