//! The tokens of `portcullis login`, kept for `portcullis token`.
//!
//! One file, `tokens.json`, in the user's configuration directory
//! (`$PORTCULLIS_CONFIG_DIR`, else `$XDG_CONFIG_HOME/portcullis`, else
//! `$HOME/.config/portcullis`), holding one login per issuer and client
//! id. The directory is created with mode 0700 and the file is replaced
//! atomically by a new file created with mode 0600. Tokens are held in
//! [`Secret`]s: zeroized on drop, redacted in `Debug`.
//!
//! This module does not encrypt the file (the operating system's file
//! permissions protect it, as for `~/.ssh` keys) and talks to no server.

use std::ffi::OsString;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

#[cfg(test)]
mod tests;

/// The token file in the configuration directory.
pub(crate) const STORE_FILE: &str = "tokens.json";
/// The lock file that serializes writers (a login and a refresh).
pub(crate) const LOCK_FILE: &str = "tokens.lock";
/// Largest token file read: a few dozen logins with JWTs fit many times.
pub(crate) const MAX_STORE_BYTES: u64 = 1024 * 1024;
/// Most logins kept; the least recently used are dropped beyond it.
pub(crate) const MAX_LOGINS: usize = 64;
/// How long a writer waits for another process holding the lock (a
/// refresh takes one token request, bounded well below this).
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(45);
/// Current format of `tokens.json`: 2 stores the CA certificates given at
/// login (`ca_pem`) where 1 stored the CA file's path (`ca`).
const STORE_VERSION: u32 = 2;
/// Oldest format still read.
const MIN_STORE_VERSION: u32 = 1;

/// Errors of the token store. Messages never contain token values.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("cannot find a configuration directory: set `PORTCULLIS_CONFIG_DIR`, `XDG_CONFIG_HOME` or `HOME`")]
    NoConfigDir,
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{path}` is accessible by other users (mode {mode:o}); run `chmod {fix} {path}`")]
    Permissions {
        path: PathBuf,
        mode: u32,
        fix: &'static str,
    },
    #[error("`{path}` is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("`{path}` is larger than {MAX_STORE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("`{path}` is not a valid token file (line {line}, column {column}); remove it and run `portcullis login`")]
    Corrupt {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    #[error("`{path}` has format version {found}, this portcullis reads versions {MIN_STORE_VERSION} to {STORE_VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("cannot store the logins: `{path}` would be larger than {MAX_STORE_BYTES} bytes")]
    WouldBeTooLarge { path: PathBuf },
    #[error("the token store is in use by another running portcullis process{} (it holds the lock on `{path}`); try again when it has finished", describe_holder(*.holder))]
    Locked { path: PathBuf, holder: Option<u32> },
}

fn describe_holder(holder: Option<u32>) -> String {
    holder
        .map(|pid| format!(" (pid {pid})"))
        .unwrap_or_default()
}

/// A secret string (token, code, verifier): zeroized on drop, redacted in
/// `Debug`, serialized as the plain string.
#[derive(Clone)]
pub(crate) struct Secret(Zeroizing<String>);

impl Secret {
    pub(crate) fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The secret value; never log or format it into an error.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

/// One login: the tokens of one client at one issuer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoredLogin {
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) token_endpoint: String,
    pub(crate) access_token: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id_token: Option<Secret>,
    /// Expiry of the access token, Unix seconds (unknown if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<String>,
    /// The resource indicator (RFC 8707) asked for at login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) resource: Option<String>,
    /// The CA certificates given at login (PEM, certificates only),
    /// trusted again to refresh whatever the file holds by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca_pem: Option<String>,
    /// The CA file's path, as version 1 stored it: read again to refresh,
    /// then replaced by the certificates read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca: Option<PathBuf>,
    /// When this login was stored or refreshed, Unix seconds.
    pub(crate) updated_at: u64,
}

impl StoredLogin {
    fn same_key(&self, other: &Self) -> bool {
        self.issuer == other.issuer && self.client_id == other.client_id
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    version: u32,
    logins: Vec<StoredLogin>,
}

/// Seconds since the Unix epoch (0 for a clock before 1970).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The configuration directory from the environment, in order:
/// `PORTCULLIS_CONFIG_DIR`, `XDG_CONFIG_HOME/portcullis` (absolute paths
/// only, as the XDG specification says), `HOME/.config/portcullis`.
pub(crate) fn config_dir(env: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf, StoreError> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set("PORTCULLIS_CONFIG_DIR") {
        return Ok(dir);
    }
    if let Some(xdg) = set("XDG_CONFIG_HOME").filter(|p| p.is_absolute()) {
        return Ok(xdg.join("portcullis"));
    }
    if let Some(home) = set("HOME") {
        return Ok(home.join(".config").join("portcullis"));
    }
    Err(StoreError::NoConfigDir)
}

/// `tokens.json` in one directory.
#[derive(Debug, Clone)]
pub(crate) struct TokenStore {
    dir: PathBuf,
    /// How long [`TokenStore::lock`] waits for another holder.
    lock_wait: Duration,
}

impl TokenStore {
    /// The store in the user's configuration directory.
    pub(crate) fn from_env() -> Result<Self, StoreError> {
        config_dir(|name| std::env::var_os(name)).map(Self::at)
    }

    pub(crate) fn at(dir: PathBuf) -> Self {
        Self {
            dir,
            lock_wait: LOCK_WAIT,
        }
    }

    #[cfg(test)]
    pub(crate) fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join(STORE_FILE)
    }

    /// Every stored login; none if the file does not exist. A directory
    /// other users may write to is refused, as by writers: whoever can
    /// write there can replace or remove the file.
    pub(crate) fn load(&self) -> Result<Vec<StoredLogin>, StoreError> {
        match std::fs::metadata(&self.dir) {
            Ok(meta) => check_private(&self.dir, &meta, 0o022, "700")?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StoreError::Io {
                    action: "inspect",
                    path: self.dir.clone(),
                    source,
                })
            }
        }
        let path = self.path();
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StoreError::Io {
                    action: "open",
                    path,
                    source,
                })
            }
        };
        let meta = file.metadata().map_err(|source| StoreError::Io {
            action: "inspect",
            path: path.clone(),
            source,
        })?;
        if !meta.is_file() {
            return Err(StoreError::NotAFile { path });
        }
        check_private(&path, &meta, 0o077, "600")?;
        if meta.len() > MAX_STORE_BYTES {
            return Err(StoreError::TooLarge { path });
        }
        let mut bytes = Zeroizing::new(Vec::new());
        (&mut file)
            .take(MAX_STORE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| StoreError::Io {
                action: "read",
                path: path.clone(),
                source,
            })?;
        if bytes.len() as u64 > MAX_STORE_BYTES {
            return Err(StoreError::TooLarge { path });
        }
        // Only the position of a parse error is reported: serde messages
        // can quote values, and values here are tokens.
        let parsed: StoreFile =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                path: path.clone(),
                line: e.line(),
                column: e.column(),
            })?;
        if !(MIN_STORE_VERSION..=STORE_VERSION).contains(&parsed.version) {
            return Err(StoreError::Version {
                path,
                found: parsed.version,
            });
        }
        Ok(parsed.logins)
    }

    /// Replaces the file with `logins`: a new file created with mode 0600
    /// next to it, synced, then renamed over it. A file [`Self::load`]
    /// would refuse as too large is not written.
    pub(crate) fn save(&self, logins: &[StoredLogin]) -> Result<(), StoreError> {
        let bytes = self.encode(logins)?;
        if bytes.len() as u64 > MAX_STORE_BYTES {
            return Err(StoreError::WouldBeTooLarge { path: self.path() });
        }
        self.write(&bytes)
    }

    fn encode(&self, logins: &[StoredLogin]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let doc = StoreFile {
            version: STORE_VERSION,
            logins: logins.to_vec(),
        };
        serde_json::to_vec_pretty(&doc)
            .map(Zeroizing::new)
            .map_err(|e| StoreError::Io {
                action: "encode",
                path: self.path(),
                source: std::io::Error::other(e),
            })
    }

    fn write(&self, bytes: &[u8]) -> Result<(), StoreError> {
        self.ensure_dir()?;
        let path = self.path();
        let tmp = self.dir.join(format!(
            ".{STORE_FILE}.{}.{}.tmp",
            std::process::id(),
            unix_nanos()
        ));
        let written = write_new_private(&tmp, bytes).and_then(|()| {
            std::fs::rename(&tmp, &path).map_err(|source| StoreError::Io {
                action: "replace",
                path: path.clone(),
                source,
            })
        });
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written?;
        // Make the rename durable; a failure here loses nothing written.
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Stores `login`, replacing the login of the same issuer and client.
    pub(crate) fn upsert(&self, login: StoredLogin) -> Result<(), StoreError> {
        let lock = self.lock()?;
        self.put(&lock, login)
    }

    /// Stores `login` under the lock already held, replacing the login of
    /// the same issuer and client. Beyond [`MAX_LOGINS`] logins, or
    /// [`MAX_STORE_BYTES`] bytes, the least recently used others are dropped.
    pub(crate) fn put(&self, _lock: &StoreLock, login: StoredLogin) -> Result<(), StoreError> {
        let mut logins = self.load()?;
        logins.retain(|l| !l.same_key(&login));
        // This login first, then the others most recent first: what is
        // dropped is dropped from the end.
        logins.sort_by_key(|l| std::cmp::Reverse(l.updated_at));
        logins.insert(0, login);
        logins.truncate(MAX_LOGINS);
        loop {
            let bytes = self.encode(&logins)?;
            if bytes.len() as u64 <= MAX_STORE_BYTES {
                return self.write(&bytes);
            }
            if logins.len() <= 1 {
                return Err(StoreError::WouldBeTooLarge { path: self.path() });
            }
            logins.pop();
        }
    }

    /// Removes the logins `select` picks; returns how many were removed.
    pub(crate) fn remove(
        &self,
        select: impl Fn(&StoredLogin) -> bool,
    ) -> Result<usize, StoreError> {
        let _lock = self.lock()?;
        let mut logins = self.load()?;
        let before = logins.len();
        logins.retain(|l| !select(l));
        let removed = before - logins.len();
        if removed > 0 {
            self.save(&logins)?;
        }
        Ok(removed)
    }

    /// Checks, before a login starts, that its tokens can be stored: the
    /// lock can be taken (waiting as a writer does; it is released at
    /// once) and the file read. A login spends its authorization code or
    /// device code; tokens it cannot store are lost.
    pub(crate) fn check_writable(&self) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        self.load().map(drop)
    }

    /// Takes the store's lock: an exclusive `flock(2)` on the lock file,
    /// which the kernel releases when its holder ends, however it ends. A
    /// lock is never left behind by a crash, and none is ever taken over
    /// from a holder judged gone (two processes that both judged one
    /// lock stale once both held "the lock"). The file stays in place;
    /// its holder writes its process id there for the error message of
    /// whoever waits. Waits up to the store's lock wait ([`LOCK_WAIT`]).
    pub(crate) fn lock(&self) -> Result<StoreLock, StoreError> {
        self.lock_within(self.lock_wait)
    }

    pub(crate) fn lock_within(&self, wait: Duration) -> Result<StoreLock, StoreError> {
        use std::io::{Seek, SeekFrom};
        self.ensure_dir()?;
        let path = self.dir.join(LOCK_FILE);
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io {
                action,
                path,
                source,
            }
        };
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(io("open", &path))?;
        let start = std::time::Instant::now();
        loop {
            match try_lock(&file) {
                Ok(true) => break,
                Ok(false) if start.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(false) => {
                    let mut text = String::new();
                    let _ = (&file).take(32).read_to_string(&mut text);
                    let holder = text.trim().parse().ok().filter(|&p: &u32| p > 0);
                    return Err(StoreError::Locked { path, holder });
                }
                Err(source) => return Err(io("lock", &path)(source)),
            }
        }
        // Only a hint for whoever waits; the lock is the flock.
        let _ = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(format!("{}\n", std::process::id()).as_bytes()));
        Ok(StoreLock { _file: file })
    }

    /// Creates the directory with mode 0700; refuses an existing one that
    /// other users may write to.
    fn ensure_dir(&self) -> Result<(), StoreError> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&self.dir).map_err(|source| StoreError::Io {
            action: "create",
            path: self.dir.clone(),
            source,
        })?;
        let meta = std::fs::metadata(&self.dir).map_err(|source| StoreError::Io {
            action: "inspect",
            path: self.dir.clone(),
            source,
        })?;
        check_private(&self.dir, &meta, 0o022, "700")
    }
}

/// The store's lock: released when dropped (the file is closed), or by
/// the kernel when the process ends.
#[derive(Debug)]
pub(crate) struct StoreLock {
    _file: std::fs::File,
}

/// An exclusive `flock(2)` on `file` without waiting: `Ok(false)` when
/// another open file holds it.
#[cfg(unix)]
fn try_lock(file: &std::fs::File) -> std::io::Result<bool> {
    use rustix::fs::{flock, FlockOperation};
    loop {
        match flock(file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(true),
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(false),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(not(unix))]
fn try_lock(_file: &std::fs::File) -> std::io::Result<bool> {
    Err(std::io::Error::other(
        "locking the token store needs flock(2), which this platform lacks",
    ))
}

/// Picks a login: the one matching `issuer` and `client_id` where given,
/// the most recently stored among several.
pub(crate) fn select<'a>(
    logins: &'a [StoredLogin],
    issuer: Option<&str>,
    client_id: Option<&str>,
) -> Option<&'a StoredLogin> {
    logins
        .iter()
        .filter(|l| issuer.is_none_or(|i| l.issuer == i))
        .filter(|l| client_id.is_none_or(|c| l.client_id == c))
        .max_by_key(|l| l.updated_at)
}

#[cfg(unix)]
fn check_private(
    path: &Path,
    meta: &std::fs::Metadata,
    forbidden: u32,
    fix: &'static str,
) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & forbidden != 0 {
        return Err(StoreError::Permissions {
            path: path.to_owned(),
            mode,
            fix,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(
    _path: &Path,
    _meta: &std::fs::Metadata,
    _forbidden: u32,
    _fix: &'static str,
) -> Result<(), StoreError> {
    Ok(())
}

/// Creates `path` exclusively, with mode 0600 from the start.
fn new_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn write_new_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let io = |action| {
        move |source| StoreError::Io {
            action,
            path: path.to_owned(),
            source,
        }
    };
    let mut file = new_private_file(path).map_err(io("create"))?;
    file.write_all(bytes).map_err(io("write"))?;
    file.sync_all().map_err(io("sync"))
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
