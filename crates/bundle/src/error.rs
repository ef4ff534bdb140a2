//! Why a bundle, a trust root, a key or the rollback state was refused.

use std::fmt;

/// Longest text copied from untrusted input (paths, key ids) into an error
/// message: enough to identify the entry, too short to flood a log line.
pub const MAX_ECHO_CHARS: usize = 128;

/// Why a bundle was refused, or an operation on bundles, keys, trust roots or
/// rollback state failed.
///
/// [`BundleError::reason`] is a stable snake_case code for logs, metrics and
/// audit records. Messages never contain key material or signature bytes;
/// paths and key ids read from a bundle are escaped and truncated to
/// [`MAX_ECHO_CHARS`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The whole bundle (archive, or the sum of a directory's files) is over
    /// [`crate::Limits::max_bundle_bytes`].
    #[error("bundle of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: u64, max: u64 },
    /// One entry is over its limit ([`crate::Limits::max_file_bytes`], or
    /// the fixed limits of the manifest, trust root and signature files).
    #[error("entry `{path}` of {len} bytes exceeds the limit of {max} bytes")]
    EntryTooLarge { path: String, len: u64, max: u64 },
    /// More than [`crate::Limits::max_entries`] entries.
    #[error("bundle has more than {max} entries")]
    TooManyEntries { max: usize },
    /// The archive ends early: a partial block, an entry cut short, or a
    /// missing end-of-archive marker.
    #[error("truncated archive: {0}")]
    Truncated(&'static str),
    /// A path that is absolute, has `.` or `..` components, a backslash, NUL,
    /// control characters, or is otherwise not a plain relative path.
    #[error("unsafe path `{path}`: {fault}")]
    UnsafePath { path: String, fault: PathFault },
    /// Two entries with the same path.
    #[error("duplicate entry `{0}`")]
    DuplicateEntry(String),
    /// A symbolic link, hard link, device, FIFO or archive extension header.
    #[error("entry `{path}` is a {kind}: only regular files and directories are allowed")]
    UnsupportedEntry { path: String, kind: &'static str },
    /// Not a well-formed ustar archive (checksum, magic, numeric fields, data
    /// after the end marker).
    #[error("malformed archive: {0}")]
    MalformedArchive(String),
    /// `manifest.json` is not a valid manifest.
    #[error("malformed manifest: {0}")]
    MalformedManifest(String),
    /// A JSON document (manifest, trust root, rollback state) names a member
    /// twice in one object.
    #[error("duplicate json member in `{0}`")]
    DuplicateMember(&'static str),
    /// A file the manifest lists (or `manifest.json` itself) is absent.
    #[error("missing file `{0}`")]
    MissingFile(String),
    /// A file the manifest does not list.
    #[error("file `{0}` is not listed in the manifest")]
    ExtraFile(String),
    /// A listed file whose size or SHA-256 differs from the manifest.
    #[error("file `{path}` does not match the manifest: {detail}")]
    TamperedFile { path: String, detail: &'static str },
    /// A signature file that is not base64 of a plausible signature.
    #[error("malformed signature `{path}`: {detail}")]
    MalformedSignature { path: String, detail: &'static str },
    /// A key id outside `[a-z0-9._-]{1,64}`.
    #[error("invalid key id `{0}`: expected 1 to 64 of `a-z 0-9 . _ -`")]
    InvalidKeyId(String),
    /// Fewer valid signatures than the trust root's threshold.
    #[error("{0}")]
    Signatures(SignatureReport),
    /// The trust root (or a trust root update's JSON) is invalid.
    #[error("bad trust root: {0}")]
    BadTrustRoot(String),
    /// The bundle carries a trust root update that the current root does not
    /// accept; the bundle is refused with it.
    #[error("trust root update refused: {0}")]
    RootUpdateRefused(Box<BundleError>),
    /// A revision below the highest accepted, or the same revision with
    /// other content.
    #[error("rollback refused: revision {revision} (digest `{digest}`) is not newer than revision {highest} (digest `{highest_digest}`)")]
    Rollback {
        revision: u64,
        digest: String,
        highest: u64,
        highest_digest: String,
    },
    /// The rollback state file exists but cannot be read as state; it is
    /// never silently reset.
    #[error("corrupt rollback state `{path}`: {detail}")]
    CorruptState { path: String, detail: String },
    /// An algorithm name other than `ecdsa-p256` and `ed25519`.
    #[error("unknown signature algorithm `{0}`: expected `ecdsa-p256` or `ed25519`")]
    UnknownAlgorithm(String),
    /// A private or public key that cannot be used.
    #[error("key rejected: {0}")]
    KeyRejected(&'static str),
    /// The cryptographic library failed to sign or to generate a key.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    /// Reading or writing a file failed.
    #[error("i/o error on `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl BundleError {
    /// A stable snake_case code, e.g. `"tampered_file"`, `"rollback"`.
    pub fn reason(&self) -> &'static str {
        match self {
            BundleError::TooLarge { .. } => "too_large",
            BundleError::EntryTooLarge { .. } => "entry_too_large",
            BundleError::TooManyEntries { .. } => "too_many_entries",
            BundleError::Truncated(_) => "truncated",
            BundleError::UnsafePath { .. } => "unsafe_path",
            BundleError::DuplicateEntry(_) => "duplicate_entry",
            BundleError::UnsupportedEntry { .. } => "unsupported_entry",
            BundleError::MalformedArchive(_) => "malformed_archive",
            BundleError::MalformedManifest(_) => "malformed_manifest",
            BundleError::DuplicateMember(_) => "duplicate_member",
            BundleError::MissingFile(_) => "missing_file",
            BundleError::ExtraFile(_) => "extra_file",
            BundleError::TamperedFile { .. } => "tampered_file",
            BundleError::MalformedSignature { .. } => "malformed_signature",
            BundleError::InvalidKeyId(_) => "invalid_key_id",
            BundleError::Signatures(report) => report.reason(),
            BundleError::BadTrustRoot(_) => "bad_trust_root",
            BundleError::RootUpdateRefused(_) => "root_update_refused",
            BundleError::Rollback { .. } => "rollback",
            BundleError::CorruptState { .. } => "corrupt_state",
            BundleError::UnknownAlgorithm(_) => "unknown_algorithm",
            BundleError::KeyRejected(_) => "key_rejected",
            BundleError::Crypto(_) => "crypto",
            BundleError::Io { .. } => "io",
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> BundleError {
        BundleError::Io {
            path: echo(path.to_string_lossy().as_bytes()),
            source,
        }
    }
}

/// Why one signature did not count towards the threshold.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// No key with this id in the trust root.
    UnknownKey,
    /// The key's validity ended (`now >= not_after`).
    Expired { not_after: jiff::Timestamp },
    /// The key's validity has not begun (`now < not_before`).
    NotYetValid { not_before: jiff::Timestamp },
    /// The key is valid but the signature does not verify over these bytes.
    BadSignature,
}

/// The outcome of counting signatures against a trust root that fell short of
/// its threshold: which keys counted and why the others did not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureReport {
    threshold: usize,
    valid: Vec<String>,
    rejected: Vec<(String, Rejection)>,
}

impl SignatureReport {
    pub(crate) fn new(
        threshold: usize,
        valid: Vec<String>,
        rejected: Vec<(String, Rejection)>,
    ) -> SignatureReport {
        SignatureReport {
            threshold,
            valid,
            rejected,
        }
    }

    /// The number of valid signatures required.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Key ids whose signatures counted.
    pub fn valid(&self) -> &[String] {
        &self.valid
    }

    /// Key ids whose signatures did not count, and why.
    pub fn rejected(&self) -> &[(String, Rejection)] {
        &self.rejected
    }

    /// The most telling cause, in this order: a signature that does not
    /// verify (tampering), an expired key, a not-yet-valid key, an unknown
    /// key; `too_few_signatures` if every present signature was valid or
    /// there were none.
    pub fn reason(&self) -> &'static str {
        let has = |f: fn(&Rejection) -> bool| self.rejected.iter().any(|(_, r)| f(r));
        if has(|r| matches!(r, Rejection::BadSignature)) {
            "bad_signature"
        } else if has(|r| matches!(r, Rejection::Expired { .. })) {
            "expired_key"
        } else if has(|r| matches!(r, Rejection::NotYetValid { .. })) {
            "key_not_yet_valid"
        } else if has(|r| matches!(r, Rejection::UnknownKey)) {
            "unknown_key"
        } else {
            "too_few_signatures"
        }
    }
}

impl fmt::Display for SignatureReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "too few signatures: {} valid of {} required",
            self.valid.len(),
            self.threshold
        )?;
        if !self.valid.is_empty() {
            f.write_str("; valid: ")?;
            list(f, self.valid.iter().map(|id| (id.as_str(), None)))?;
        }
        let groups: [(&str, Pick); 4] = [
            ("bad signature", |r| matches!(r, Rejection::BadSignature)),
            ("expired", |r| matches!(r, Rejection::Expired { .. })),
            ("not yet valid", |r| {
                matches!(r, Rejection::NotYetValid { .. })
            }),
            ("unknown key", |r| matches!(r, Rejection::UnknownKey)),
        ];
        for (label, pick) in groups {
            let mut ids = self
                .rejected
                .iter()
                .filter(|(_, r)| pick(r))
                .map(|(id, r)| (id.as_str(), when(r)))
                .peekable();
            if ids.peek().is_some() {
                write!(f, "; {label}: ")?;
                list(f, ids)?;
            }
        }
        Ok(())
    }
}

/// Selects one kind of rejection.
type Pick = fn(&Rejection) -> bool;

fn when(r: &Rejection) -> Option<String> {
    match r {
        Rejection::Expired { not_after } => Some(format!("not after {not_after}")),
        Rejection::NotYetValid { not_before } => Some(format!("not before {not_before}")),
        Rejection::UnknownKey | Rejection::BadSignature => None,
    }
}

fn list<'a>(
    f: &mut fmt::Formatter<'_>,
    items: impl Iterator<Item = (&'a str, Option<String>)>,
) -> fmt::Result {
    for (n, (id, note)) in items.enumerate() {
        if n > 0 {
            f.write_str(", ")?;
        }
        write!(f, "`{id}`")?;
        if let Some(note) = note {
            write!(f, " ({note})")?;
        }
    }
    Ok(())
}

/// Copies untrusted bytes into a message: lossy UTF-8, control characters
/// and backticks escaped, at most [`MAX_ECHO_CHARS`] characters.
pub(crate) fn echo(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n >= MAX_ECHO_CHARS {
            out.push('…');
            break;
        }
        if c == '`' {
            out.push_str("\\`");
        } else if c.is_control() || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests;

/// What is wrong with a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathFault {
    /// The empty path.
    Empty,
    /// Starts with `/`.
    Absolute,
    /// A `..` component.
    ParentComponent,
    /// A `.` component.
    CurrentComponent,
    /// An empty component (`a//b`, or a trailing `/` on a file).
    EmptyComponent,
    /// Contains `\`, a separator on Windows.
    Backslash,
    /// Contains a NUL byte.
    Nul,
    /// Contains another control character.
    ControlCharacter,
    /// Not UTF-8.
    NotUtf8,
    /// Longer than [`MAX_PATH_BYTES`].
    TooLong,
    /// A component is a file elsewhere in the bundle.
    FileAsDirectory,
}

impl PathFault {
    /// A stable snake_case code, e.g. `"parent_component"`.
    pub fn code(self) -> &'static str {
        match self {
            PathFault::Empty => "empty",
            PathFault::Absolute => "absolute",
            PathFault::ParentComponent => "parent_component",
            PathFault::CurrentComponent => "current_component",
            PathFault::EmptyComponent => "empty_component",
            PathFault::Backslash => "backslash",
            PathFault::Nul => "nul",
            PathFault::ControlCharacter => "control_character",
            PathFault::NotUtf8 => "not_utf8",
            PathFault::TooLong => "too_long",
            PathFault::FileAsDirectory => "file_as_directory",
        }
    }
}

impl fmt::Display for PathFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathFault::Empty => "empty path",
            PathFault::Absolute => "absolute path",
            PathFault::ParentComponent => "`..` component",
            PathFault::CurrentComponent => "`.` component",
            PathFault::EmptyComponent => "empty component",
            PathFault::Backslash => "backslash",
            PathFault::Nul => "nul byte",
            PathFault::ControlCharacter => "control character",
            PathFault::NotUtf8 => "not utf-8",
            PathFault::TooLong => "longer than 100 bytes",
            PathFault::FileAsDirectory => "a parent component is a file",
        })
    }
}
