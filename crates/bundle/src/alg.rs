//! The signature algorithms a trust root key may use.

use std::fmt;
use std::str::FromStr;

use crate::error::{echo, BundleError};

/// A signature algorithm: ECDSA P-256 with SHA-256 (DER signatures) or
/// Ed25519 (64-byte signatures). Written `ecdsa-p256` and `ed25519`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigAlg {
    /// ECDSA over P-256 with SHA-256; the signature is ASN.1 DER
    /// `Ecdsa-Sig-Value`, as `openssl dgst -sha256 -sign` writes it.
    EcdsaP256,
    /// Ed25519 (RFC 8032), 64-byte signatures.
    Ed25519,
}

impl SigAlg {
    /// The name used in trust roots and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SigAlg::EcdsaP256 => "ecdsa-p256",
            SigAlg::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for SigAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SigAlg {
    type Err = BundleError;

    fn from_str(s: &str) -> Result<SigAlg, BundleError> {
        match s {
            "ecdsa-p256" => Ok(SigAlg::EcdsaP256),
            "ed25519" => Ok(SigAlg::Ed25519),
            other => Err(BundleError::UnknownAlgorithm(echo(other.as_bytes()))),
        }
    }
}

#[cfg(test)]
mod tests;
