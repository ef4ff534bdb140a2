//! `portcullis bundle build`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use portcullis_bundle::{Bundle, TrustRoot};
use portcullis_policy::Policy;

use super::files;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Directory holding the policy and the files that go with it (its
    /// `signatures/` and `root/` folders are not packed).
    dir: PathBuf,
    /// Bundle revision: a positive integer, higher than every bundle
    /// published before it (gateways refuse lower revisions).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    revision: u64,
    /// The policy file, relative to DIR (YAML, or JSON: faster to activate
    /// for large generated policies). Default: `policy.yaml`, or
    /// `policy.json` when DIR has no `policy.yaml`.
    #[arg(long)]
    entrypoint: Option<String>,
    /// The bundle (tar) to write; replaced if it exists.
    #[arg(long, value_name = "BUNDLE.tar")]
    out: PathBuf,
    /// Creation time recorded in the manifest (RFC 3339, default now); fix
    /// it for reproducible builds.
    #[arg(long, value_name = "RFC3339")]
    created: Option<jiff::Timestamp>,
    /// A new trust root for the bundle to carry (exact bytes are signed).
    #[arg(long, value_name = "ROOT.json", requires = "root_signature")]
    root_update: Option<PathBuf>,
    /// A signature over the new root by a key of the current root, made by
    /// `bundle root-sign`; repeat once per key.
    #[arg(long, value_name = "ID=SIG", requires = "root_update")]
    root_signature: Vec<String>,
}

/// `policy.yaml`, or `policy.json` when only that one exists.
fn default_entrypoint(dir: &Path) -> String {
    if !dir.join("policy.yaml").exists() && dir.join("policy.json").is_file() {
        "policy.json".to_owned()
    } else {
        "policy.yaml".to_owned()
    }
}

pub(super) fn run(a: Args) -> anyhow::Result<ExitCode> {
    if !a.dir.is_dir() {
        anyhow::bail!("`{}` is not a directory", a.dir.display());
    }
    refuse_output_inside(&a.dir, &a.out)?;
    let created = a.created.unwrap_or_else(jiff::Timestamp::now);
    let mut carried = None;
    let entrypoint = a
        .entrypoint
        .clone()
        .unwrap_or_else(|| default_entrypoint(&a.dir));
    let mut bundle = Bundle::build(&a.dir, a.revision, &entrypoint, created)
        .map_err(|e| anyhow::anyhow!("cannot build a bundle from `{}`: {e}", a.dir.display()))?;
    let policy_path = a.dir.join(&entrypoint);
    let text = std::str::from_utf8(bundle.entrypoint())
        .map_err(|_| anyhow::anyhow!("policy `{}` is not UTF-8", policy_path.display()))?;
    let policy = Policy::from_yaml(text)
        .map_err(|e| anyhow::anyhow!("policy `{}`: {e}", policy_path.display()))?;

    if let Some(root_path) = &a.root_update {
        let root_json = files::read_bounded(root_path, files::MAX_ROOT_FILE_BYTES, "trust root")?;
        let root = TrustRoot::from_json(&root_json)
            .map_err(|e| anyhow::anyhow!("trust root `{}`: {e}", root_path.display()))?;
        let mut seen = BTreeSet::new();
        let mut sigs = Vec::with_capacity(a.root_signature.len());
        for arg in &a.root_signature {
            let (id, file) =
                files::parse_id_file(arg).map_err(|e| anyhow::anyhow!("--root-signature: {e}"))?;
            if !seen.insert(id.clone()) {
                anyhow::bail!("--root-signature: key id `{id}` given twice");
            }
            sigs.push((id, files::read_signature(&file)?));
        }
        bundle.set_root_update(root_json, sigs);
        carried = Some(root.version());
    }

    files::write_bundle(&bundle, &a.out)?;
    println!(
        "wrote {}: revision {}, digest {}, files {}, policy revision `{}` with {} rules (unsigned)",
        a.out.display(),
        bundle.revision(),
        bundle.digest(),
        bundle.manifest().files.len(),
        policy.revision(),
        policy.rule_count()
    );
    if let (Some(version), Some(root_path)) = (carried, &a.root_update) {
        println!(
            "carries trust-root update `{}` (version {}) with {} signature(s)",
            root_path.display(),
            version,
            a.root_signature.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses an output file inside the source directory: the next build would
/// pack the previous bundle into the new one.
fn refuse_output_inside(dir: &Path, out: &Path) -> anyhow::Result<()> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot read `{}`", dir.display()))?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let parent = parent
        .canonicalize()
        .with_context(|| format!("cannot write `{}`", out.display()))?;
    if parent.starts_with(&dir) {
        anyhow::bail!(
            "output `{}` is inside the bundle directory `{}`; write it elsewhere",
            out.display(),
            dir.display()
        );
    }
    Ok(())
}
