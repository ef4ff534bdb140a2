//! The dev PKI as files in a directory, for `portcullis pki init` and
//! `portcullis pki issue`.
//!
//! Layout of a PKI directory:
//!
//! | file | content | mode |
//! |---|---|---|
//! | `root-ca.pem` | root CA certificate | 0644 |
//! | `root-ca.key` | root CA private key | 0600 |
//! | `intermediate-ca.pem` | intermediate CA certificate | 0644 |
//! | `intermediate-ca.key` | intermediate CA private key | 0600 |
//! | `ca-bundle.pem` | the root: the trust anchor for clients and `client_ca` | 0644 |
//! | `<name>.pem` | leaf certificate followed by the intermediate | 0644 |
//! | `<name>.key` | leaf private key | 0600 |
//!
//! No file is ever overwritten.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::{Ca, IssueRequest, PkiError};

/// Root CA certificate file name.
pub const ROOT_CERT_FILE: &str = "root-ca.pem";
/// Root CA private key file name.
pub const ROOT_KEY_FILE: &str = "root-ca.key";
/// Intermediate CA certificate file name.
pub const INTERMEDIATE_CERT_FILE: &str = "intermediate-ca.pem";
/// Intermediate CA private key file name.
pub const INTERMEDIATE_KEY_FILE: &str = "intermediate-ca.key";
/// Trust bundle file name (the root CA certificate).
pub const CA_BUNDLE_FILE: &str = "ca-bundle.pem";
/// Longest certificate name for [`issue_to_dir`]: a file name, not a
/// description; file systems allow 255 bytes for the whole name.
pub const MAX_NAME_LEN: usize = 64;

/// Common names of the CAs that [`init_dir`] makes.
const ROOT_CN: &str = "Portcullis Dev Root CA";
const INTERMEDIATE_CN: &str = "Portcullis Dev Intermediate CA";

/// Private keys are readable by the owner only, from their creation on.
const KEY_MODE: u32 = 0o600;
/// Certificates are public.
const CERT_MODE: u32 = 0o644;

/// The files [`init_dir`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitReport {
    pub root_cert: PathBuf,
    pub root_key: PathBuf,
    pub intermediate_cert: PathBuf,
    pub intermediate_key: PathBuf,
    pub ca_bundle: PathBuf,
}

impl InitReport {
    /// All files, in the order they were written.
    pub fn files(&self) -> [&Path; 5] {
        [
            &self.root_cert,
            &self.root_key,
            &self.intermediate_cert,
            &self.intermediate_key,
            &self.ca_bundle,
        ]
    }
}

/// The files [`issue_to_dir`] wrote and the new certificate's serial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueReport {
    /// `<name>.pem`: the leaf followed by the intermediate.
    pub cert: PathBuf,
    /// `<name>.key`: the leaf's private key.
    pub key: PathBuf,
    /// Serial number of the leaf, big-endian.
    pub serial: Vec<u8>,
}

/// Makes a root CA and an intermediate CA and writes them to `dir`
/// (created if missing). Refuses, before writing anything, if any of the
/// files already exists.
pub fn init_dir(dir: &Path) -> Result<InitReport, PkiError> {
    let report = InitReport {
        root_cert: dir.join(ROOT_CERT_FILE),
        root_key: dir.join(ROOT_KEY_FILE),
        intermediate_cert: dir.join(INTERMEDIATE_CERT_FILE),
        intermediate_key: dir.join(INTERMEDIATE_KEY_FILE),
        ca_bundle: dir.join(CA_BUNDLE_FILE),
    };
    fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.to_owned(),
        op: "create directory",
        source,
    })?;
    for path in report.files() {
        refuse_existing(path)?;
    }
    let root = Ca::new_root(ROOT_CN)?;
    let intermediate = root.new_intermediate(INTERMEDIATE_CN)?;
    let mut written = Written::default();
    written.cert(&report.root_cert, root.cert_pem())?;
    written.key(&report.root_key, &root.key_pem())?;
    written.cert(&report.intermediate_cert, intermediate.cert_pem())?;
    written.key(&report.intermediate_key, &intermediate.key_pem())?;
    written.cert(&report.ca_bundle, root.cert_pem())?;
    written.keep();
    Ok(report)
}

/// Loads the intermediate CA of a PKI directory made by [`init_dir`].
pub fn intermediate_from_dir(dir: &Path) -> Result<Ca, PkiError> {
    let cert = read(&dir.join(INTERMEDIATE_CERT_FILE))?;
    let key = zeroize::Zeroizing::new(read(&dir.join(INTERMEDIATE_KEY_FILE))?);
    Ca::from_pem(&cert, &key)
}

/// Issues a certificate from the intermediate CA in `dir` and writes
/// `<name>.pem` (leaf then intermediate: a full chain) and `<name>.key`.
/// `name` is a plain file name of letters, digits, `.`, `-` and `_` that
/// does not start with `.`; existing files are never overwritten.
pub fn issue_to_dir(dir: &Path, name: &str, req: &IssueRequest) -> Result<IssueReport, PkiError> {
    validate_name(name)?;
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}.key"));
    for path in [&cert_path, &key_path] {
        refuse_existing(path)?;
    }
    let ca = intermediate_from_dir(dir)?;
    let issued = ca.issue(req)?;
    let mut chain = issued.cert_pem.clone();
    if !chain.ends_with('\n') {
        chain.push('\n');
    }
    chain.push_str(ca.cert_pem());
    let mut written = Written::default();
    written.cert(&cert_path, &chain)?;
    written.key(&key_path, &issued.key_pem)?;
    written.keep();
    Ok(IssueReport {
        cert: cert_path,
        key: key_path,
        serial: issued.serial,
    })
}

fn validate_name(name: &str) -> Result<(), PkiError> {
    let reason = if name.is_empty() {
        Some("the name is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("the name is longer than 64 bytes")
    } else if name.starts_with('.') {
        Some("the name must not start with `.`")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        Some("the name may only hold letters, digits, `.`, `-` and `_`")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(PkiError::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

fn refuse_existing(path: &Path) -> Result<(), PkiError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Err(PkiError::WouldOverwrite {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(PkiError::Io {
            path: path.to_owned(),
            op: "inspect",
            source,
        }),
    }
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        op: "read",
        source,
    })
}

/// Files written so far by one operation; removed again unless
/// [`Written::keep`] is called, so a failed operation leaves no half PKI.
#[derive(Default)]
struct Written(Vec<PathBuf>);

impl Written {
    fn key(&mut self, path: &Path, content: &str) -> Result<(), PkiError> {
        self.write(path, content, KEY_MODE)
    }

    fn cert(&mut self, path: &Path, content: &str) -> Result<(), PkiError> {
        self.write(path, content, CERT_MODE)?;
        // The process umask may have narrowed the creation mode; a
        // certificate is public, so set it exactly.
        fs::set_permissions(path, fs::Permissions::from_mode(CERT_MODE)).map_err(|source| {
            PkiError::Io {
                path: path.to_owned(),
                op: "set permissions of",
                source,
            }
        })
    }

    fn write(&mut self, path: &Path, content: &str, mode: u32) -> Result<(), PkiError> {
        let io = |op: &'static str| {
            let path = path.to_owned();
            move |source| PkiError::Io { path, op, source }
        };
        // `create_new` fails if the file appeared since the check (or is a
        // symlink), and `mode` applies from creation: a key is never
        // readable by others, not even for an instant.
        let mut file: File = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => PkiError::WouldOverwrite {
                    path: path.to_owned(),
                },
                _ => io("create")(e),
            })?;
        self.0.push(path.to_owned());
        file.write_all(content.as_bytes()).map_err(io("write"))?;
        file.sync_all().map_err(io("sync"))?;
        Ok(())
    }

    fn keep(mut self) {
        self.0.clear();
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        for path in &self.0 {
            // Best effort: the error that got us here is what matters.
            let _ = fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests;
