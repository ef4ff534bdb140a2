//! `portcullis keys generate`: signing keys for policy bundles, and the key
//! file handling shared with `portcullis bundle sign|root-sign`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use portcullis_bundle::{SigAlg, SigningKey};
use zeroize::Zeroizing;

/// Largest private key file read: a PKCS#8 P-256 or Ed25519 PEM is under
/// 300 bytes; anything near this is not a key.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Permission bits of a private key file: readable and writable by its owner only.
const PRIVATE_KEY_MODE: u32 = 0o600;
/// Permission bits of a public key file (before the umask).
const PUBLIC_KEY_MODE: u32 = 0o644;

#[derive(clap::Subcommand)]
pub(crate) enum Cmd {
    /// Generate a bundle signing key: writes the private key (PKCS#8 PEM,
    /// mode 0600) and prints the public key (SPKI PEM) for the trust root.
    Generate(GenerateArgs),
}

#[derive(clap::Args)]
pub(crate) struct GenerateArgs {
    /// Signature algorithm.
    #[arg(long, value_parser = ["ecdsa-p256", "ed25519"])]
    alg: String,
    /// Private key file to create (mode 0600).
    #[arg(long, value_name = "KEY.pem")]
    out: PathBuf,
    /// Write the public key PEM here instead of printing it.
    #[arg(long, value_name = "KEY.pub.pem")]
    public_out: Option<PathBuf>,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(c: Cmd) -> anyhow::Result<ExitCode> {
    match c {
        Cmd::Generate(a) => generate(a),
    }
}

fn generate(a: GenerateArgs) -> anyhow::Result<ExitCode> {
    let alg: SigAlg = a
        .alg
        .parse()
        .map_err(|e| anyhow::anyhow!("--alg `{}`: {e}", a.alg))?;
    if a.public_out.as_deref() == Some(a.out.as_path()) {
        anyhow::bail!(
            "--out and --public-out are the same file `{}`",
            a.out.display()
        );
    }
    if !a.force {
        // Refuse before writing anything, so a failure leaves no half-made pair.
        for p in std::iter::once(&a.out).chain(a.public_out.as_ref()) {
            if p.symlink_metadata().is_ok() {
                anyhow::bail!("`{}` exists; pass --force to replace it", p.display());
            }
        }
    }
    let key = SigningKey::generate(alg).map_err(|e| anyhow::anyhow!("cannot generate key: {e}"))?;
    let pem = key.to_pkcs8_pem();
    write_file(&a.out, pem.as_bytes(), PRIVATE_KEY_MODE, a.force)?;
    let public = key.public_key_pem();
    eprintln!("wrote {} ({alg} private key, mode 0600)", a.out.display());
    match &a.public_out {
        Some(p) => {
            write_file(p, public.as_bytes(), PUBLIC_KEY_MODE, a.force)?;
            eprintln!("wrote {} (public key)", p.display());
        }
        None => print!("{public}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a private key file (PKCS#8 PEM, or SEC1 `EC PRIVATE KEY` for
/// P-256). Warns when the file is readable by group or others.
pub(crate) fn load_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    let what = || format!("cannot read key `{}`", path.display());
    let file = std::fs::File::open(path).with_context(what)?;
    let meta = file.metadata().with_context(what)?;
    if !meta.is_file() {
        anyhow::bail!("key `{}` is not a regular file", path.display());
    }
    if meta.len() > MAX_KEY_FILE_BYTES {
        anyhow::bail!(
            "key `{}` is larger than {MAX_KEY_FILE_BYTES} bytes",
            path.display()
        );
    }
    warn_if_shared(path, &meta);
    // Capacity up front so the buffer is never reallocated, leaving no
    // unzeroized copy of the key behind.
    let cap = usize::try_from(MAX_KEY_FILE_BYTES).unwrap_or(usize::MAX);
    let mut buf = Zeroizing::new(Vec::with_capacity(cap.saturating_add(1)));
    file.take(MAX_KEY_FILE_BYTES)
        .read_to_end(&mut buf)
        .with_context(what)?;
    let pem = std::str::from_utf8(&buf)
        .map_err(|_| anyhow::anyhow!("key `{}` is not a PEM text file", path.display()))?;
    SigningKey::from_pkcs8_pem(pem).map_err(|e| anyhow::anyhow!("key `{}`: {e}", path.display()))
}

#[cfg(unix)]
fn warn_if_shared(path: &Path, meta: &std::fs::Metadata) {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        eprintln!(
            "warning: key `{}` has mode {mode:04o}; a private key should be mode 0600",
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path, _meta: &std::fs::Metadata) {}

/// Writes `bytes` to `path`, the file created with `mode` from the start.
/// Without `replace` an existing file is refused; with it the new file is
/// written beside the old one and renamed over it.
pub(crate) fn write_file(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    replace: bool,
) -> anyhow::Result<()> {
    if !replace {
        let mut f = create_new(path, mode).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow::anyhow!("`{}` exists; pass --force to replace it", path.display())
            } else {
                anyhow::anyhow!("cannot create `{}`: {e}", path.display())
            }
        })?;
        return f
            .write_all(bytes)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write `{}`", path.display()));
    }
    let tmp = temp_path(path);
    let result = (|| -> std::io::Result<()> {
        let mut f = create_new(&tmp, mode)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::anyhow!("cannot write `{}`: {e}", path.display()));
    }
    Ok(())
}

fn create_new(path: &Path, mode: u32) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path)
}

/// A fresh name beside `path` (same directory, so the rename is atomic).
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    path.with_file_name(format!(".{name}.tmp-{}-{nanos}", std::process::id()))
}
