//! A policy bundle in memory: manifest, content files, signatures and an
//! optional trust root update, checked against each other on load.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::archive::{self, Files};
use crate::b64;
use crate::error::{echo, BundleError};
use crate::key::check_key_id;
use crate::key::SigningKey;
use crate::limits::Limits;
use crate::limits::MAX_ROOT_BYTES;
use crate::manifest::{self, FileEntry, Manifest, MANIFEST_FORMAT, MANIFEST_PATH};

/// The trust root update's JSON inside a bundle.
pub const ROOT_UPDATE_PATH: &str = "root/root.json";

const SIGNATURES_DIR: &str = "signatures/";
const ROOT_SIGNATURES_DIR: &str = "root/signatures/";
const SIG_SUFFIX: &str = ".sig";

/// A loaded bundle. Every constructor checks that the files match the
/// manifest exactly; signatures are only checked by
/// [`crate::TrustRoot::verify`].
#[derive(Clone)]
pub struct Bundle {
    manifest: Manifest,
    manifest_bytes: Vec<u8>,
    files: BTreeMap<String, Vec<u8>>,
    signatures: BTreeMap<String, Vec<u8>>,
    root_update: Option<RootUpdate>,
}

#[derive(Clone)]
struct RootUpdate {
    json: Vec<u8>,
    signatures: Vec<(String, Vec<u8>)>,
}

impl Bundle {
    /// Builds an unsigned bundle from every regular file under `dir`, except
    /// the top-level `manifest.json`, `signatures/` and `root/`. Symbolic
    /// links and special files are refused; the default [`Limits`] apply.
    pub fn build(
        dir: &Path,
        revision: u64,
        entrypoint: &str,
        created: jiff::Timestamp,
    ) -> Result<Bundle, BundleError> {
        let files = archive::read_dir(dir, &Limits::default(), true)?;
        Bundle::from_files(files, revision, entrypoint, created)
    }

    /// Builds an unsigned bundle from in-memory files (path, content).
    pub fn from_files(
        files: BTreeMap<String, Vec<u8>>,
        revision: u64,
        entrypoint: &str,
        created: jiff::Timestamp,
    ) -> Result<Bundle, BundleError> {
        let manifest = Manifest {
            format: MANIFEST_FORMAT.to_owned(),
            revision,
            created: created.to_string(),
            entrypoint: entrypoint.to_owned(),
            files: files
                .iter()
                .map(|(path, data)| FileEntry {
                    path: path.clone(),
                    size: data.len() as u64,
                    sha256: manifest::sha256_hex(data),
                })
                .collect(),
        };
        manifest.validate()?;
        let manifest_bytes = manifest.to_bytes()?;
        Ok(Bundle {
            manifest,
            manifest_bytes,
            files,
            signatures: BTreeMap::new(),
            root_update: None,
        })
    }

    /// Reads a bundle from an uncompressed ustar archive.
    pub fn from_tar(bytes: &[u8], limits: &Limits) -> Result<Bundle, BundleError> {
        Bundle::assemble(archive::read_tar(bytes, limits)?)
    }

    /// Reads a bundle from a directory with the archive's layout, with the
    /// same checks (symbolic links and special files are refused).
    pub fn from_dir(dir: &Path, limits: &Limits) -> Result<Bundle, BundleError> {
        Bundle::assemble(archive::read_dir(dir, limits, false)?)
    }

    fn assemble(mut entries: Files) -> Result<Bundle, BundleError> {
        let manifest_bytes = entries
            .remove(MANIFEST_PATH)
            .ok_or_else(|| BundleError::MissingFile(MANIFEST_PATH.to_owned()))?;
        let root_json = entries.remove(ROOT_UPDATE_PATH);
        let mut signatures = BTreeMap::new();
        let mut root_signatures = Vec::new();
        let mut content = BTreeMap::new();
        for (path, data) in entries {
            if let Some(id) = signature_id(&path, ROOT_SIGNATURES_DIR) {
                root_signatures.push((id.to_owned(), decode_signature(&path, &data)?));
            } else if let Some(id) = signature_id(&path, SIGNATURES_DIR) {
                signatures.insert(id.to_owned(), decode_signature(&path, &data)?);
            } else if manifest::is_reserved(&path) {
                return Err(BundleError::ExtraFile(echo(path.as_bytes())));
            } else {
                content.insert(path, data);
            }
        }
        let manifest = Manifest::parse(&manifest_bytes)?;
        for entry in &manifest.files {
            let data = content
                .get(&entry.path)
                .ok_or_else(|| BundleError::MissingFile(echo(entry.path.as_bytes())))?;
            if data.len() as u64 != entry.size {
                return Err(BundleError::TamperedFile {
                    path: echo(entry.path.as_bytes()),
                    detail: "size differs",
                });
            }
            if manifest::sha256_hex(data) != entry.sha256 {
                return Err(BundleError::TamperedFile {
                    path: echo(entry.path.as_bytes()),
                    detail: "sha-256 differs",
                });
            }
        }
        if let Some(extra) = content.keys().find(|p| manifest.file(p).is_none()) {
            return Err(BundleError::ExtraFile(echo(extra.as_bytes())));
        }
        let root_update = match root_json {
            Some(json) => {
                if json.len() > MAX_ROOT_BYTES {
                    return Err(BundleError::EntryTooLarge {
                        path: ROOT_UPDATE_PATH.to_owned(),
                        len: json.len() as u64,
                        max: MAX_ROOT_BYTES as u64,
                    });
                }
                Some(RootUpdate {
                    json,
                    signatures: root_signatures,
                })
            }
            None if root_signatures.is_empty() => None,
            None => return Err(BundleError::MissingFile(ROOT_UPDATE_PATH.to_owned())),
        };
        Ok(Bundle {
            manifest,
            manifest_bytes,
            files: content,
            signatures,
            root_update,
        })
    }

    /// Writes the bundle as a deterministic ustar archive: entries sorted by
    /// path, regular files with mode 0644, uid and gid 0, mtime 0, no names.
    pub fn to_tar(&self) -> Result<Vec<u8>, BundleError> {
        let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut put = |path: String, data: Vec<u8>| {
            if entries.insert(path.clone(), data).is_some() {
                return Err(BundleError::DuplicateEntry(echo(path.as_bytes())));
            }
            Ok(())
        };
        put(MANIFEST_PATH.to_owned(), self.manifest_bytes.clone())?;
        for (path, data) in &self.files {
            put(path.clone(), data.clone())?;
        }
        for (id, sig) in &self.signatures {
            put(
                format!("{SIGNATURES_DIR}{id}{SIG_SUFFIX}"),
                b64::encode_signature(sig).into_bytes(),
            )?;
        }
        if let Some(update) = &self.root_update {
            put(ROOT_UPDATE_PATH.to_owned(), update.json.clone())?;
            for (id, sig) in &update.signatures {
                check_key_id(id)?;
                b64::check_len(sig).map_err(|detail| BundleError::MalformedSignature {
                    path: format!("{ROOT_SIGNATURES_DIR}{id}{SIG_SUFFIX}"),
                    detail,
                })?;
                put(
                    format!("{ROOT_SIGNATURES_DIR}{id}{SIG_SUFFIX}"),
                    b64::encode_signature(sig).into_bytes(),
                )?;
            }
        }
        archive::write_tar(entries.iter().map(|(p, d)| (p.as_str(), d.as_slice())))
    }

    /// The parsed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The exact manifest bytes, which signatures cover.
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }

    /// Lowercase hex SHA-256 of [`Bundle::manifest_bytes`]; as the manifest
    /// pins every file, this identifies the whole content.
    pub fn digest(&self) -> String {
        manifest::sha256_hex(&self.manifest_bytes)
    }

    /// The manifest's revision.
    pub fn revision(&self) -> u64 {
        self.manifest.revision
    }

    /// The entrypoint policy file's bytes.
    pub fn entrypoint(&self) -> &[u8] {
        self.file(&self.manifest.entrypoint).unwrap_or_default()
    }

    /// A content file's bytes.
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    /// Every content file, sorted by path.
    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files.iter().map(|(p, d)| (p.as_str(), d.as_slice()))
    }

    /// Signatures over the manifest: key id and raw signature bytes, sorted
    /// by key id.
    pub fn signatures(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.signatures
            .iter()
            .map(|(k, s)| (k.as_str(), s.as_slice()))
    }

    /// Adds a raw signature (already base64-decoded) by `key_id`, replacing
    /// one with the same id. It is not verified here.
    pub fn add_signature(&mut self, key_id: &str, signature: Vec<u8>) -> Result<(), BundleError> {
        check_key_id(key_id)?;
        b64::check_len(&signature).map_err(|detail| BundleError::MalformedSignature {
            path: format!("{SIGNATURES_DIR}{key_id}{SIG_SUFFIX}"),
            detail,
        })?;
        self.signatures.insert(key_id.to_owned(), signature);
        Ok(())
    }

    /// Adds a signature given as base64 (standard alphabet with padding,
    /// line breaks ignored), e.g. the output of
    /// `openssl dgst -sha256 -sign key.pem manifest.json | base64`.
    pub fn add_signature_base64(&mut self, key_id: &str, b64: &str) -> Result<(), BundleError> {
        check_key_id(key_id)?;
        let raw = b64::decode_signature(b64.as_bytes()).map_err(|detail| {
            BundleError::MalformedSignature {
                path: format!("{SIGNATURES_DIR}{key_id}{SIG_SUFFIX}"),
                detail,
            }
        })?;
        self.add_signature(key_id, raw)
    }

    /// Signs the manifest bytes with `key` and adds the signature as
    /// `key_id`.
    pub fn sign(&mut self, key_id: &str, key: &SigningKey) -> Result<(), BundleError> {
        check_key_id(key_id)?;
        let signature = key.sign(&self.manifest_bytes)?;
        self.add_signature(key_id, signature)
    }

    /// Attaches a trust root update: the exact `root/root.json` bytes and
    /// signatures over them by keys of the current root. Checked when the
    /// bundle is written and when it is verified.
    pub fn set_root_update(&mut self, root_json: Vec<u8>, signatures: Vec<(String, Vec<u8>)>) {
        self.root_update = Some(RootUpdate {
            json: root_json,
            signatures,
        });
    }

    /// The trust root update, if the bundle carries one.
    #[expect(
        clippy::type_complexity,
        reason = "the pair is the documented shape of a root update"
    )]
    pub fn root_update(&self) -> Option<(&[u8], &[(String, Vec<u8>)])> {
        self.root_update
            .as_ref()
            .map(|u| (u.json.as_slice(), u.signatures.as_slice()))
    }
}

impl fmt::Debug for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle")
            .field("revision", &self.manifest.revision)
            .field("digest", &self.digest())
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .field("signatures", &self.signatures.keys().collect::<Vec<_>>())
            .field("root_update", &self.root_update.is_some())
            .finish()
    }
}

/// The key id of `dir<id>.sig`, or `None` if `path` is not directly in
/// `dir` with that suffix and a valid id.
fn signature_id<'a>(path: &'a str, dir: &str) -> Option<&'a str> {
    let id = path.strip_prefix(dir)?.strip_suffix(SIG_SUFFIX)?;
    check_key_id(id).ok().map(|()| id)
}

fn decode_signature(path: &str, data: &[u8]) -> Result<Vec<u8>, BundleError> {
    b64::decode_signature(data).map_err(|detail| BundleError::MalformedSignature {
        path: echo(path.as_bytes()),
        detail,
    })
}

#[cfg(test)]
mod tests;
