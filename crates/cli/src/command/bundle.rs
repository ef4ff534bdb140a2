//! `portcullis bundle build|sign|verify|inspect|root-sign`: signed policy
//! bundles (format and trust root: `docs/bundles.md`).
//!
//! The checks themselves live in `portcullis-bundle`; these commands read
//! and write the files, validate the policy before it is packed, and turn a
//! refusal into a reason code and exit status 2.

mod build;
mod files;
mod inspect;
mod sign;
mod verify;

#[cfg(test)]
mod tests;

use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub(crate) enum Cmd {
    /// Build an unsigned bundle (tar) from a directory; the entrypoint must
    /// be a valid Portcullis policy.
    Build(build::Args),
    /// Add a signature to a bundle: made here with a private key, or made
    /// elsewhere (e.g. `openssl dgst -sha256 -sign`) over the manifest bytes.
    Sign(sign::Args),
    /// Verify a bundle against a trust root (files, signatures, threshold,
    /// key validity, trust-root update) and optionally the rollback state.
    /// Exit code 0: accepted, 1: error, 2: refused.
    Verify(verify::Args),
    /// Print a bundle's revision, digest, files and signatures (nothing is
    /// verified), or the exact manifest bytes, or one signature.
    Inspect(inspect::Args),
    /// Sign a trust-root update (the exact bytes of ROOT.json) with a key of
    /// the current trust root; the output goes to `build --root-signature`.
    RootSign(sign::RootArgs),
}

pub(crate) fn run(c: Cmd) -> anyhow::Result<ExitCode> {
    match c {
        Cmd::Build(a) => build::run(a),
        Cmd::Sign(a) => sign::run(a),
        Cmd::Verify(a) => verify::run(a),
        Cmd::Inspect(a) => inspect::run(a),
        Cmd::RootSign(a) => sign::run_root(a),
    }
}
