//! Loading certificates, private keys and CRLs from PEM files.
//!
//! Errors name the file and say what is wrong; they never quote file
//! content, so a key file's bytes cannot end up in a log. The bytes read
//! from a key file are zeroized when dropped.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use zeroize::Zeroizing;

/// Largest PEM file read: big public CRLs run to tens of MiB; anything
/// larger is the wrong file.
pub const MAX_PEM_FILE_BYTES: u64 = 64 * 1024 * 1024;

const ENCRYPTED_KEY_MARKER: &[u8] = b"-----BEGIN ENCRYPTED PRIVATE KEY-----";

/// A file path as shown in messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown(PathBuf);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display())
    }
}

/// Why a PEM file cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("file `{path}`: cannot read: {reason}")]
    Read { path: Shown, reason: String },
    #[error("file `{path}` is larger than {limit} bytes", limit = MAX_PEM_FILE_BYTES)]
    TooLarge { path: Shown },
    #[error("file `{path}` holds no {what}")]
    NothingFound { path: Shown, what: &'static str },
    #[error("file `{path}`: malformed pem: {reason}")]
    Malformed { path: Shown, reason: &'static str },
    #[error("file `{path}` holds more than one private key")]
    SeveralKeys { path: Shown },
    #[error("file `{path}` holds an encrypted private key, which is not supported: store it unencrypted with mode 0600")]
    EncryptedKey { path: Shown },
}

impl PemError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Read { path, .. }
            | Self::TooLarge { path }
            | Self::NothingFound { path, .. }
            | Self::Malformed { path, .. }
            | Self::SeveralKeys { path }
            | Self::EncryptedKey { path } => &path.0,
        }
    }
}

/// All certificates of a PEM file, in file order (for a chain: leaf
/// first). Fails when there is none.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let bytes = read(path)?;
    collect(path, &bytes, "certificate")
}

/// All CRLs of a PEM file. Fails when there is none.
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, PemError> {
    let bytes = read(path)?;
    collect(path, &bytes, "certificate revocation list")
}

/// The one private key (PKCS#8, SEC1 or PKCS#1) of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let bytes = read(path)?;
    let mut keys = PrivateKeyDer::pem_slice_iter(&bytes);
    let key = match keys.next() {
        Some(key) => key.map_err(|e| malformed(path, &e))?,
        None if contains(&bytes, ENCRYPTED_KEY_MARKER) => {
            return Err(PemError::EncryptedKey { path: shown(path) })
        }
        None => {
            return Err(PemError::NothingFound {
                path: shown(path),
                what: "private key",
            })
        }
    };
    if keys.next().is_some() {
        return Err(PemError::SeveralKeys { path: shown(path) });
    }
    Ok(key)
}

fn collect<T: PemObject>(
    path: &Path,
    bytes: &[u8],
    what: &'static str,
) -> Result<Vec<T>, PemError> {
    let items = T::pem_slice_iter(bytes)
        .collect::<Result<Vec<T>, _>>()
        .map_err(|e| malformed(path, &e))?;
    if items.is_empty() {
        return Err(PemError::NothingFound {
            path: shown(path),
            what,
        });
    }
    Ok(items)
}

/// Reads a whole file of at most [`MAX_PEM_FILE_BYTES`] into a buffer
/// that is zeroized on drop.
fn read(path: &Path) -> Result<Zeroizing<Vec<u8>>, PemError> {
    let read_err = |e: std::io::Error| PemError::Read {
        path: shown(path),
        reason: io_reason(&e),
    };
    let file = File::open(path).map_err(read_err)?;
    let len = file.metadata().map_err(read_err)?.len();
    if len > MAX_PEM_FILE_BYTES {
        return Err(PemError::TooLarge { path: shown(path) });
    }
    // Room for the whole file up front, so the buffer is not reallocated
    // (which would leave an unzeroized copy behind) unless the file grows.
    let capacity = usize::try_from(len).unwrap_or(0).saturating_add(1);
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    file.take(MAX_PEM_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_PEM_FILE_BYTES {
        return Err(PemError::TooLarge { path: shown(path) });
    }
    Ok(bytes)
}

fn shown(path: &Path) -> Shown {
    Shown(path.to_owned())
}

/// The I/O error's text without the trailing ` (os error N)`.
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text.get(..i).unwrap_or(&text).to_owned(),
        _ => text,
    }
}

/// A PEM syntax error, described without quoting the file (the
/// underlying error may hold a line of it).
fn malformed(path: &Path, e: &pem::Error) -> PemError {
    let reason = match e {
        pem::Error::MissingSectionEnd { .. } => "a section has no end marker",
        pem::Error::IllegalSectionStart { .. } => "a section start line is malformed",
        pem::Error::Base64Decode(_) => "a section is not valid base64",
        pem::Error::SectionTooLarge => "a section is too large",
        _ => "cannot be parsed",
    };
    PemError::Malformed {
        path: shown(path),
        reason,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests;
