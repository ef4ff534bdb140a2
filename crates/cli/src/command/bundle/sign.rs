//! `portcullis bundle sign` and `portcullis bundle root-sign`.

use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine as _;

use super::files;
use crate::command::keys;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The bundle (tar, or a bundle directory with --out).
    bundle: PathBuf,
    /// Trust-root key id the signature is filed under (`signatures/ID.sig`).
    #[arg(long, value_name = "ID")]
    key_id: String,
    /// Private key (PKCS#8 PEM, or SEC1 `EC PRIVATE KEY` PEM) to sign with.
    #[arg(
        long,
        value_name = "KEY.pem",
        required_unless_present = "signature",
        conflicts_with = "signature"
    )]
    key: Option<PathBuf>,
    /// A signature made elsewhere over the manifest bytes (`bundle inspect
    /// --manifest`): base64 of the DER ECDSA signature or of the 64-byte
    /// Ed25519 signature.
    #[arg(long, value_name = "SIG.b64")]
    signature: Option<PathBuf>,
    /// Write the signed bundle here instead of rewriting BUNDLE.
    #[arg(long, value_name = "BUNDLE.tar")]
    out: Option<PathBuf>,
}

pub(super) fn run(a: Args) -> anyhow::Result<ExitCode> {
    let out = match (&a.out, a.bundle.is_dir()) {
        (Some(out), _) => out.clone(),
        (None, false) => a.bundle.clone(),
        (None, true) => anyhow::bail!(
            "`{}` is a bundle directory; pass --out BUNDLE.tar",
            a.bundle.display()
        ),
    };
    let mut bundle = files::load_bundle(&a.bundle).map_err(|e| e.into_anyhow(&a.bundle))?;
    let replaced = bundle.signatures().any(|(id, _)| id == a.key_id);
    let how = match (&a.key, &a.signature) {
        (Some(key_path), _) => {
            let key = keys::load_signing_key(key_path)?;
            bundle
                .sign(&a.key_id, &key)
                .map_err(|e| anyhow::anyhow!("cannot sign `{}`: {e}", a.bundle.display()))?;
            format!("{} key `{}`", key.alg(), key_path.display())
        }
        (None, Some(sig_path)) => {
            let sig = files::read_signature(sig_path)?;
            bundle
                .add_signature(&a.key_id, sig)
                .map_err(|e| anyhow::anyhow!("signature `{}`: {e}", sig_path.display()))?;
            format!("signature `{}`", sig_path.display())
        }
        (None, None) => anyhow::bail!("pass --key or --signature"),
    };
    files::write_bundle(&bundle, &out)?;
    println!(
        "{} {}: revision {}, digest {}, key id `{}` ({how})",
        if replaced {
            "replaced signature in"
        } else {
            "signed"
        },
        out.display(),
        bundle.revision(),
        bundle.digest(),
        a.key_id
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub(crate) struct RootArgs {
    /// The new trust root (its exact bytes are signed).
    root: PathBuf,
    /// Private key of the CURRENT trust root.
    #[arg(long, value_name = "KEY.pem")]
    key: PathBuf,
    /// Its key id in the current trust root (recorded in the output message only).
    #[arg(long, value_name = "ID")]
    key_id: String,
    /// Where to write the signature (base64, one line).
    #[arg(long, value_name = "SIG")]
    out: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
}

pub(super) fn run_root(a: RootArgs) -> anyhow::Result<ExitCode> {
    let bytes = files::read_bounded(&a.root, files::MAX_ROOT_FILE_BYTES, "trust root")?;
    let root = portcullis_bundle::TrustRoot::from_json(&bytes)
        .map_err(|e| anyhow::anyhow!("trust root `{}`: {e}", a.root.display()))?;
    let key = keys::load_signing_key(&a.key)?;
    let sig = key
        .sign(&bytes)
        .map_err(|e| anyhow::anyhow!("cannot sign with `{}`: {e}", a.key.display()))?;
    let mut text = base64::engine::general_purpose::STANDARD.encode(sig);
    text.push('\n');
    keys::write_file(&a.out, text.as_bytes(), files::PUBLIC_FILE_MODE, a.force)?;
    println!(
        "wrote {}: signature over `{}` (trust root version {}) by key id `{}`; pass it as `bundle build --root-signature {}={}`",
        a.out.display(),
        a.root.display(),
        root.version(),
        a.key_id,
        a.key_id,
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
