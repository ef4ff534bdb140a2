//! The bundle a gateway has installed, as kept in its state directory:
//! read back at start and by every snapshot load, written by the bundle
//! manager ([`crate::bundle`]).

use portcullis_bundle::{Bundle, Limits, RollbackState};
use portcullis_config::BundleSource;

/// File names in the state directory.
pub(crate) const ACTIVE_BUNDLE: &str = "active-bundle.tar";
pub(crate) const STATE_FILE: &str = "state.json";

/// The installed bundle's policy bytes and identity, for snapshot loads.
pub(crate) struct Installed {
    pub(crate) policy: String,
    pub(crate) revision: u64,
    pub(crate) digest: String,
}

/// Reads the installed bundle and checks it is the one the rollback state
/// recorded (a file swapped behind the gateway's back is refused).
/// `Ok(None)` before any bundle was accepted.
pub(crate) fn read_installed(src: &BundleSource) -> Result<Option<Installed>, String> {
    let path = src.state_dir.join(ACTIVE_BUNDLE);
    let state = RollbackState::load(&src.state_dir.join(STATE_FILE)).map_err(|e| e.to_string())?;
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("`{}`: {e}", path.display())),
    };
    let Some(state) = state else {
        return Err(format!(
            "`{}` exists but no rollback state records it; refusing an unverified policy",
            path.display()
        ));
    };
    let bundle = Bundle::from_tar(&bytes, &limits(src)).map_err(|e| e.to_string())?;
    if bundle.digest() != state.digest || bundle.revision() != state.highest_revision {
        return Err(format!(
            "`{}` is not the bundle the rollback state recorded; refusing it",
            path.display()
        ));
    }
    let policy = String::from_utf8(bundle.entrypoint().to_vec())
        .map_err(|_| "the bundle's policy is not UTF-8".to_owned())?;
    Ok(Some(Installed {
        policy,
        revision: bundle.revision(),
        digest: bundle.digest(),
    }))
}

/// Archive limits for bundles of `src`.
pub(crate) fn limits(src: &BundleSource) -> Limits {
    Limits {
        max_bundle_bytes: src.max_bytes,
        ..Limits::default()
    }
}
