//! Reading and writing bundles, trust roots and signature files.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine as _;
use portcullis_bundle::{Bundle, BundleError, Limits, TrustRoot};

/// Largest trust-root file read: a root with dozens of keys is a few KiB.
pub(super) const MAX_ROOT_FILE_BYTES: u64 = 1024 * 1024;
/// Largest signature file read: a base64 ECDSA or Ed25519 signature is under
/// 100 characters, line-wrapped or not.
pub(super) const MAX_SIGNATURE_FILE_BYTES: u64 = 4 * 1024;
/// Permission bits of a written bundle or signature file (before the umask).
pub(super) const PUBLIC_FILE_MODE: u32 = 0o644;

/// Why a bundle could not be loaded.
pub(super) enum LoadError {
    /// The file could not be read: an operator error, exit code 1.
    Io(anyhow::Error),
    /// The bundle itself is refused: exit code 2 in `verify`.
    Refused(BundleError),
}

impl LoadError {
    pub(super) fn into_anyhow(self, path: &Path) -> anyhow::Error {
        match self {
            LoadError::Io(e) => e,
            LoadError::Refused(e) => anyhow::anyhow!("bundle `{}`: {e}", path.display()),
        }
    }
}

/// Reads at most `max` bytes of `path`, refusing a larger file.
pub(super) fn read_bounded(path: &Path, max: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    let cannot = || format!("cannot read {what} `{}`", path.display());
    let file = std::fs::File::open(path).with_context(cannot)?;
    let meta = file.metadata().with_context(cannot)?;
    if !meta.is_file() {
        anyhow::bail!("{what} `{}` is not a regular file", path.display());
    }
    if meta.len() > max {
        anyhow::bail!("{what} `{}` is larger than {max} bytes", path.display());
    }
    let mut buf = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut buf)
        .with_context(cannot)?;
    if u64::try_from(buf.len()).unwrap_or(u64::MAX) > max {
        anyhow::bail!("{what} `{}` is larger than {max} bytes", path.display());
    }
    Ok(buf)
}

/// Loads a bundle from a tar file or a directory with the same layout.
pub(super) fn load_bundle(path: &Path) -> Result<Bundle, LoadError> {
    let limits = Limits::default();
    let meta = std::fs::metadata(path).map_err(|e| {
        LoadError::Io(anyhow::anyhow!(
            "cannot read bundle `{}`: {e}",
            path.display()
        ))
    })?;
    let loaded = if meta.is_dir() {
        Bundle::from_dir(path, &limits)
    } else {
        // One byte past the limit is enough for the bundle crate to refuse
        // the size (reason `too_large`) without reading a huge file.
        let max = u64::try_from(limits.max_bundle_bytes)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(max).read_to_end(&mut bytes))
            .map_err(|e| {
                LoadError::Io(anyhow::anyhow!(
                    "cannot read bundle `{}`: {e}",
                    path.display()
                ))
            })?;
        Bundle::from_tar(&bytes, &limits)
    };
    loaded.map_err(|e| {
        if e.reason() == "io" {
            LoadError::Io(anyhow::anyhow!(
                "cannot read bundle `{}`: {e}",
                path.display()
            ))
        } else {
            LoadError::Refused(e)
        }
    })
}

/// Reads and parses a trust-root file.
pub(super) fn load_trust_root(path: &Path) -> anyhow::Result<TrustRoot> {
    let bytes = read_bounded(path, MAX_ROOT_FILE_BYTES, "trust root")?;
    TrustRoot::from_json(&bytes)
        .map_err(|e| anyhow::anyhow!("trust root `{}`: {e}", path.display()))
}

/// Decodes a signature file: standard base64, line breaks and surrounding
/// whitespace ignored (`base64` and `openssl base64` wrap long lines).
pub(super) fn decode_signature(text: &[u8]) -> Result<Vec<u8>, String> {
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return Err("empty signature".to_owned());
    }
    base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .map_err(|e| format!("not standard base64: {e}"))
}

/// Reads and decodes a signature file.
pub(super) fn read_signature(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = read_bounded(path, MAX_SIGNATURE_FILE_BYTES, "signature")?;
    decode_signature(&text).map_err(|e| anyhow::anyhow!("signature `{}`: {e}", path.display()))
}

/// Splits `ID=FILE` of `--root-signature`.
pub(super) fn parse_id_file(arg: &str) -> Result<(String, PathBuf), String> {
    match arg.split_once('=') {
        Some((id, file)) if !id.is_empty() && !file.is_empty() => {
            Ok((id.to_owned(), PathBuf::from(file)))
        }
        _ => Err(format!("`{arg}` is not ID=FILE")),
    }
}

/// Serialises `bundle` and replaces `path` with it atomically.
pub(super) fn write_bundle(bundle: &Bundle, path: &Path) -> anyhow::Result<()> {
    let tar = bundle
        .to_tar()
        .map_err(|e| anyhow::anyhow!("cannot serialise bundle `{}`: {e}", path.display()))?;
    crate::command::keys::write_file(path, &tar, PUBLIC_FILE_MODE, true)
}

/// `[a, b]` for output.
pub(super) fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}
