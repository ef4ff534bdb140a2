//! `portcullis bundle verify`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use portcullis_bundle::{BundleError, RollbackState, TrustRoot};

use super::files::{self, LoadError};

/// Exit code when the bundle is refused (as opposed to 1 for an error of
/// the command itself, such as an unreadable trust root).
const EXIT_REFUSED: u8 = 2;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The bundle (tar or directory).
    bundle: PathBuf,
    /// The trust root (JSON) the bundle must be signed under.
    #[arg(long, value_name = "ROOT.json")]
    trust_root: PathBuf,
    /// Verification time for key validity windows (RFC 3339; default now).
    #[arg(long, value_name = "RFC3339")]
    at: Option<jiff::Timestamp>,
    /// Rollback state (JSON): refuse a revision lower than the highest
    /// accepted, or the same revision with another digest. A missing file
    /// means no bundle was accepted yet; a corrupt one is an error.
    #[arg(long, value_name = "STATE.json")]
    state: Option<PathBuf>,
    /// On success, record the revision, digest and trust root in STATE.
    #[arg(long, requires = "state")]
    update_state: bool,
}

pub(super) fn run(a: Args) -> anyhow::Result<ExitCode> {
    let file_root = files::load_trust_root(&a.trust_root)?;
    let file_version = file_root.version();
    let state = match &a.state {
        Some(p) => RollbackState::load(p)
            .map_err(|e| anyhow::anyhow!("rollback state `{}`: {e}", p.display()))?,
        None => None,
    };
    let root = choose_root(file_root, &a.trust_root, state.as_ref(), a.state.as_deref())?;

    let bundle = match files::load_bundle(&a.bundle) {
        Ok(b) => b,
        Err(LoadError::Io(e)) => return Err(e),
        Err(LoadError::Refused(e)) => return Ok(refused(&e)),
    };
    let now = a.at.unwrap_or_else(jiff::Timestamp::now);
    let verified = match root.verify(&bundle, now) {
        Ok(v) => v,
        Err(e) => return Ok(refused(&e)),
    };
    let newer = match &state {
        Some(s) => match s.check(verified.revision, &verified.digest) {
            Ok(newer) => newer,
            Err(e) => return Ok(refused(&e)),
        },
        None => true,
    };

    println!(
        "ok: revision {}, digest {}, signed by {}{}",
        verified.revision,
        verified.digest,
        files::list(&verified.signers),
        if newer {
            ""
        } else {
            " (already accepted: same revision and digest)"
        }
    );
    let effective = match &verified.new_root {
        Some(new_root) => {
            println!(
                "trust root updated: version {} -> {}",
                root.version(),
                new_root.version()
            );
            new_root
        }
        None => &root,
    };
    if let (true, true, Some(path)) = (a.update_state, newer, &a.state) {
        // The root in force is recorded when it is not the configured one
        // (an update was accepted, now or before).
        let root_json = if effective.version() > file_version {
            let json = std::str::from_utf8(effective.bytes()).map_err(|_| {
                anyhow::anyhow!("trust root version {} is not UTF-8", effective.version())
            })?;
            Some(json.to_owned())
        } else {
            None
        };
        let next = RollbackState {
            highest_revision: verified.revision,
            digest: verified.digest.clone(),
            root_version: effective.version(),
            root_json,
        };
        next.store(path).map_err(|e| {
            anyhow::anyhow!("cannot store rollback state `{}`: {e}", path.display())
        })?;
        eprintln!(
            "recorded revision {} in `{}`",
            verified.revision,
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn refused(e: &BundleError) -> ExitCode {
    println!("refused ({}): {e}", e.reason());
    ExitCode::from(EXIT_REFUSED)
}

/// The trust root to verify with: the one in ROOT.json, unless the state
/// holds a newer one accepted through a signed root update. A ROOT.json
/// older than the state's version with no root in the state is an error:
/// it would let a retired key sign again.
fn choose_root(
    file_root: TrustRoot,
    file_path: &Path,
    state: Option<&RollbackState>,
    state_path: Option<&Path>,
) -> anyhow::Result<TrustRoot> {
    let (Some(state), Some(state_path)) = (state, state_path) else {
        return Ok(file_root);
    };
    if state.root_version <= file_root.version() {
        return Ok(file_root);
    }
    let Some(json) = &state.root_json else {
        anyhow::bail!(
            "trust root `{}` is version {}, older than version {} recorded in `{}`",
            file_path.display(),
            file_root.version(),
            state.root_version,
            state_path.display()
        );
    };
    let root = TrustRoot::from_json(json.as_bytes())
        .map_err(|e| anyhow::anyhow!("trust root recorded in `{}`: {e}", state_path.display()))?;
    if root.version() <= file_root.version() {
        return Ok(file_root);
    }
    eprintln!(
        "using trust root version {} recorded in `{}` (`{}` is version {})",
        root.version(),
        state_path.display(),
        file_path.display(),
        file_root.version()
    );
    Ok(root)
}
