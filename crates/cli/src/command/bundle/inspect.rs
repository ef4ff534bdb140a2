//! `portcullis bundle inspect`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine as _;
use portcullis_bundle::TrustRoot;

use super::files;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The bundle (tar or directory).
    bundle: PathBuf,
    /// Print the exact manifest bytes and nothing else (the bytes to sign).
    #[arg(long, conflicts_with = "signature")]
    manifest: bool,
    /// Print the signature filed under key id ID (base64, one line) and
    /// nothing else.
    #[arg(long, value_name = "ID")]
    signature: Option<String>,
}

pub(super) fn run(a: Args) -> anyhow::Result<ExitCode> {
    let bundle = files::load_bundle(&a.bundle).map_err(|e| e.into_anyhow(&a.bundle))?;
    let mut out = std::io::stdout().lock();
    if a.manifest {
        out.write_all(bundle.manifest_bytes())
            .and_then(|()| out.flush())
            .context("cannot write to stdout")?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(id) = &a.signature {
        let Some((_, sig)) = bundle.signatures().find(|(k, _)| k == id) else {
            anyhow::bail!(
                "bundle `{}` has no signature by key id `{id}`",
                a.bundle.display()
            );
        };
        writeln!(
            out,
            "{}",
            base64::engine::general_purpose::STANDARD.encode(sig)
        )
        .context("cannot write to stdout")?;
        return Ok(ExitCode::SUCCESS);
    }

    let m = bundle.manifest();
    let mut text = String::new();
    text.push_str(&format!("bundle: {}\n", a.bundle.display()));
    text.push_str(&format!("format: {}\n", m.format));
    text.push_str(&format!("revision: {}\n", m.revision));
    text.push_str(&format!("digest: {}\n", bundle.digest()));
    text.push_str(&format!("created: {}\n", m.created));
    text.push_str(&format!("entrypoint: {}\n", m.entrypoint));
    text.push_str(&format!("files ({}):\n", m.files.len()));
    for f in &m.files {
        text.push_str(&format!(
            "  {}  {} bytes  sha256:{}\n",
            f.path, f.size, f.sha256
        ));
    }
    let ids: Vec<&str> = bundle.signatures().map(|(id, _)| id).collect();
    if ids.is_empty() {
        text.push_str("signatures: none\n");
    } else {
        text.push_str(&format!(
            "signatures (not verified; run `bundle verify`): {}\n",
            ids.join(", ")
        ));
    }
    match bundle.root_update() {
        None => text.push_str("root update: none\n"),
        Some((json, sigs)) => {
            let signers: Vec<&str> = sigs.iter().map(|(id, _)| id.as_str()).collect();
            match TrustRoot::from_json(json) {
                Ok(root) => text.push_str(&format!(
                    "root update: version {}, threshold {}, keys [{}], signed by [{}] (not verified)\n",
                    root.version(),
                    root.threshold(),
                    root.key_ids().join(", "),
                    signers.join(", ")
                )),
                Err(e) => text.push_str(&format!(
                    "root update: invalid ({e}), signed by [{}]\n",
                    signers.join(", ")
                )),
            }
        }
    }
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}
