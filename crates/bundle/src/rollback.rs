//! Rollback protection: the highest accepted revision and its digest, and
//! the trust root in force, persisted across restarts.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{echo, BundleError};
use crate::limits::MAX_ROOT_BYTES;
use crate::root::{TrustRoot, Verified};

/// Largest state file read: the trust root (escaped in a JSON string, so up
/// to six bytes per byte in the worst case) plus a few small fields.
pub const MAX_STATE_BYTES: usize = 6 * MAX_ROOT_BYTES + 4096;

/// What a gateway has accepted so far. Written as JSON, atomically (temp
/// file in the same directory, fsync, rename) with mode 0600.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackState {
    /// Highest revision activated.
    pub highest_revision: u64,
    /// Digest ([`crate::Bundle::digest`]) of that revision.
    pub digest: String,
    /// Version of the trust root in force.
    pub root_version: u64,
    /// That trust root's exact JSON, once an update has been accepted (until
    /// then the configured root is in force).
    pub root_json: Option<String>,
}

impl RollbackState {
    /// The state after activating `verified`, which was verified with
    /// `root` (the root in force), given the `previous` state (`None` at the
    /// first start): an accepted root update replaces the recorded root,
    /// otherwise the previous record is kept.
    pub fn accepted(
        previous: Option<&RollbackState>,
        verified: &Verified,
        root: &TrustRoot,
    ) -> RollbackState {
        RollbackState {
            highest_revision: verified.revision,
            digest: verified.digest.clone(),
            root_version: verified
                .new_root
                .as_ref()
                .map_or(root.version(), TrustRoot::version),
            root_json: match &verified.new_root {
                Some(new_root) => Some(String::from_utf8_lossy(new_root.bytes()).into_owned()),
                None => previous.and_then(|p| p.root_json.clone()),
            },
        }
    }

    /// Loads the state: `None` if the file does not exist; a file that
    /// cannot be read as state is an error, never a reset.
    pub fn load(path: &Path) -> Result<Option<RollbackState>, BundleError> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(BundleError::io(path, e)),
        };
        let corrupt = |detail: String| BundleError::CorruptState {
            path: echo(path.to_string_lossy().as_bytes()),
            detail,
        };
        if bytes.len() > MAX_STATE_BYTES {
            return Err(corrupt(format!(
                "{} bytes exceed the limit of {MAX_STATE_BYTES} bytes",
                bytes.len()
            )));
        }
        let state: RollbackState =
            crate::json::parse(&bytes, "rollback state", corrupt).map_err(|e| match e {
                BundleError::DuplicateMember(_) => corrupt("duplicate json member".to_owned()),
                other => other,
            })?;
        state.validate().map_err(corrupt)?;
        Ok(Some(state))
    }

    fn validate(&self) -> Result<(), String> {
        if self.highest_revision == 0 {
            return Err("highest_revision must be positive".to_owned());
        }
        if self.digest.len() != 64
            || !self
                .digest
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err("digest is not 64 lowercase hex characters".to_owned());
        }
        if self.root_version == 0 {
            return Err("root_version must be positive".to_owned());
        }
        if let Some(json) = &self.root_json {
            let root = TrustRoot::from_json(json.as_bytes()).map_err(|e| e.to_string())?;
            if root.version() != self.root_version {
                return Err("root_version does not match root_json".to_owned());
            }
        }
        Ok(())
    }

    /// Writes the state atomically with mode 0600.
    pub fn store(&self, path: &Path) -> Result<(), BundleError> {
        self.validate()
            .map_err(|detail| BundleError::CorruptState {
                path: echo(path.to_string_lossy().as_bytes()),
                detail,
            })?;
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| BundleError::Io {
            path: echo(path.to_string_lossy().as_bytes()),
            source: std::io::Error::other(e),
        })?;
        json.push(b'\n');
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = temp_path(path)?;
        let result = write_new(&tmp, &json)
            .and_then(|()| fs::rename(&tmp, path).map_err(|e| BundleError::io(path, e)));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result?;
        sync_dir(&dir);
        Ok(())
    }

    /// `Ok(true)`: a newer revision, accept it. `Ok(false)`: the same
    /// revision with the same digest, nothing to do. `Err(Rollback)`: a
    /// lower revision, or the same revision with another digest.
    pub fn check(&self, revision: u64, digest: &str) -> Result<bool, BundleError> {
        if revision > self.highest_revision {
            return Ok(true);
        }
        if revision == self.highest_revision && digest == self.digest {
            return Ok(false);
        }
        Err(BundleError::Rollback {
            revision,
            digest: echo(digest.as_bytes()),
            highest: self.highest_revision,
            highest_digest: self.digest.clone(),
        })
    }

    /// The trust root recorded in the state, if an update was accepted.
    pub fn trust_root(&self) -> Result<Option<TrustRoot>, BundleError> {
        self.root_json
            .as_deref()
            .map(|json| TrustRoot::from_json(json.as_bytes()))
            .transpose()
    }
}

fn temp_path(path: &Path) -> Result<PathBuf, BundleError> {
    let mut nonce = [0u8; 8];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| BundleError::Crypto("random"))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".to_owned());
    Ok(path.with_file_name(format!(".{name}.{}.tmp", crate::manifest::hex(&nonce))))
}

fn write_new(tmp: &Path, bytes: &[u8]) -> Result<(), BundleError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(tmp).map_err(|e| BundleError::io(tmp, e))?;
    file.write_all(bytes).map_err(|e| BundleError::io(tmp, e))?;
    file.sync_all().map_err(|e| BundleError::io(tmp, e))
}

/// Makes the rename durable; best effort (not every platform can open a
/// directory).
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests;
