//! The JWS algorithms we verify: asymmetric only (RFC 7518 section 3).

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::signature::{self, VerificationAlgorithm};

use crate::text::echo;

/// An asymmetric JWS signature algorithm. `none` and the `HS*` family have
/// no variant: a token naming them can never be verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Alg {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256 and MGF1-SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384 and MGF1-SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512 and MGF1-SHA-512.
    Ps512,
    /// EdDSA over Ed25519 (RFC 8037); Ed448 is not supported.
    EdDsa,
}

/// The family of key an algorithm needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyFamily {
    EcP256,
    EcP384,
    Rsa,
    Ed25519,
}

impl Alg {
    /// Every supported algorithm.
    pub const ALL: [Alg; 9] = [
        Alg::Es256,
        Alg::Es384,
        Alg::Rs256,
        Alg::Rs384,
        Alg::Rs512,
        Alg::Ps256,
        Alg::Ps384,
        Alg::Ps512,
        Alg::EdDsa,
    ];

    /// The RSA algorithms, which all share one key type.
    pub(crate) const RSA: [Alg; 6] = [
        Alg::Rs256,
        Alg::Rs384,
        Alg::Rs512,
        Alg::Ps256,
        Alg::Ps384,
        Alg::Ps512,
    ];

    /// Looks up an algorithm by its exact, case-sensitive JOSE name
    /// (`"ES256"`, ..., `"EdDSA"`). `none`, `HS256` and anything else give
    /// `None`.
    pub fn from_name(name: &str) -> Option<Alg> {
        Some(match name {
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            "RS256" => Alg::Rs256,
            "RS384" => Alg::Rs384,
            "RS512" => Alg::Rs512,
            "PS256" => Alg::Ps256,
            "PS384" => Alg::Ps384,
            "PS512" => Alg::Ps512,
            "EdDSA" => Alg::EdDsa,
            _ => return None,
        })
    }

    /// The JOSE name, e.g. `"ES256"` or `"EdDSA"`.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
            Alg::EdDsa => "EdDSA",
        }
    }

    pub(crate) fn family(self) -> KeyFamily {
        match self {
            Alg::Es256 => KeyFamily::EcP256,
            Alg::Es384 => KeyFamily::EcP384,
            Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256 | Alg::Ps384 | Alg::Ps512 => {
                KeyFamily::Rsa
            }
            Alg::EdDsa => KeyFamily::Ed25519,
        }
    }

    /// Length of a JOSE ECDSA signature (fixed-size `r || s`), if ECDSA.
    pub(crate) fn ecdsa_signature_len(self) -> Option<usize> {
        match self {
            Alg::Es256 => Some(64),
            Alg::Es384 => Some(96),
            _ => None,
        }
    }

    /// The aws-lc-rs verification algorithm. RSA variants accept
    /// 2048..=8192-bit moduli; ECDSA takes the fixed-size JOSE form.
    pub(crate) fn verification(self) -> &'static dyn VerificationAlgorithm {
        match self {
            Alg::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
            Alg::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
            Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Alg::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Alg::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Alg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
            Alg::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
            Alg::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
            Alg::EdDsa => &signature::ED25519,
        }
    }

    /// The RSA parameters, for building a key from `n` and `e`.
    pub(crate) fn rsa_parameters(self) -> Option<&'static signature::RsaParameters> {
        match self {
            Alg::Rs256 => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
            Alg::Rs384 => Some(&signature::RSA_PKCS1_2048_8192_SHA384),
            Alg::Rs512 => Some(&signature::RSA_PKCS1_2048_8192_SHA512),
            Alg::Ps256 => Some(&signature::RSA_PSS_2048_8192_SHA256),
            Alg::Ps384 => Some(&signature::RSA_PSS_2048_8192_SHA384),
            Alg::Ps512 => Some(&signature::RSA_PSS_2048_8192_SHA512),
            _ => None,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of our algorithms.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported algorithm `{0}`")]
pub struct UnknownAlg(String);

impl FromStr for Alg {
    type Err = UnknownAlg;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Alg::from_name(s).ok_or_else(|| UnknownAlg(echo(s)))
    }
}

impl serde::Serialize for Alg {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Alg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = Alg;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JWS algorithm name such as `ES256`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Alg, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Name)
    }
}

#[cfg(test)]
mod tests;
