//! Signing keys (for the CLI and tests) and trust-root public keys.

use std::fmt;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ParsedPublicKey, ECDSA_P256_SHA256_ASN1,
    ECDSA_P256_SHA256_ASN1_SIGNING, ED25519,
};
use zeroize::Zeroizing;

use crate::alg::SigAlg;
use crate::error::{echo, BundleError};
use crate::pem;

/// Longest key id; ids also name files (`signatures/<id>.sig`).
pub const MAX_KEY_ID_LEN: usize = 64;

/// A private key that signs bundles and trust root updates.
///
/// The PKCS#8 encoding held for [`SigningKey::to_pkcs8_pem`] is zeroized on
/// drop; `Debug` shows the algorithm and public key only.
pub struct SigningKey {
    alg: SigAlg,
    pair: Pair,
    pkcs8: Zeroizing<Vec<u8>>,
    public_pem: String,
}

enum Pair {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl SigningKey {
    /// Generates a new key.
    pub fn generate(alg: SigAlg) -> Result<SigningKey, BundleError> {
        let failed = || BundleError::Crypto("key generation failed");
        let (pair, pkcs8) = match alg {
            SigAlg::EcdsaP256 => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
                    .map_err(|_| failed())?;
                let doc = pair.to_pkcs8v1().map_err(|_| failed())?;
                (Pair::Ecdsa(pair), Zeroizing::new(doc.as_ref().to_vec()))
            }
            SigAlg::Ed25519 => {
                let pair = Ed25519KeyPair::generate().map_err(|_| failed())?;
                let doc = pair.to_pkcs8v1().map_err(|_| failed())?;
                (Pair::Ed25519(pair), Zeroizing::new(doc.as_ref().to_vec()))
            }
        };
        SigningKey::assemble(alg, pair, pkcs8)
    }

    /// Reads a PEM private key: `PRIVATE KEY` (PKCS#8, P-256 or Ed25519) or
    /// `EC PRIVATE KEY` (SEC 1, P-256, as `openssl ecparam -genkey` writes
    /// it; a preceding `EC PARAMETERS` block is skipped). Encrypted keys are
    /// refused.
    pub fn from_pkcs8_pem(pem_text: &str) -> Result<SigningKey, BundleError> {
        let blocks = pem::parse(pem_text).map_err(BundleError::KeyRejected)?;
        let mut keys = blocks.into_iter().filter(|b| b.label != "EC PARAMETERS");
        let block = match (keys.next(), keys.next()) {
            (Some(block), None) => block,
            (None, _) => return Err(BundleError::KeyRejected("no private key pem block")),
            (Some(_), Some(_)) => {
                return Err(BundleError::KeyRejected(
                    "more than one private key pem block",
                ))
            }
        };
        match block.label.as_str() {
            "PRIVATE KEY" => {
                if let Ok(pair) =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &block.der)
                {
                    SigningKey::assemble(SigAlg::EcdsaP256, Pair::Ecdsa(pair), block.der)
                } else if let Ok(pair) = Ed25519KeyPair::from_pkcs8(&block.der) {
                    SigningKey::assemble(SigAlg::Ed25519, Pair::Ed25519(pair), block.der)
                } else {
                    Err(BundleError::KeyRejected(
                        "not a p-256 or ed25519 pkcs#8 private key",
                    ))
                }
            }
            "EC PRIVATE KEY" => {
                let pair =
                    EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, &block.der)
                        .map_err(|_| BundleError::KeyRejected("not a p-256 sec1 private key"))?;
                let doc = pair
                    .to_pkcs8v1()
                    .map_err(|_| BundleError::Crypto("pkcs#8 encoding failed"))?;
                let pkcs8 = Zeroizing::new(doc.as_ref().to_vec());
                SigningKey::assemble(SigAlg::EcdsaP256, Pair::Ecdsa(pair), pkcs8)
            }
            "ENCRYPTED PRIVATE KEY" => Err(BundleError::KeyRejected(
                "encrypted private keys are not supported",
            )),
            _ => Err(BundleError::KeyRejected(
                "expected a `PRIVATE KEY` or `EC PRIVATE KEY` pem block",
            )),
        }
    }

    fn assemble(
        alg: SigAlg,
        pair: Pair,
        pkcs8: Zeroizing<Vec<u8>>,
    ) -> Result<SigningKey, BundleError> {
        let spki = match &pair {
            Pair::Ecdsa(p) => p.public_key().as_der(),
            Pair::Ed25519(p) => p.public_key().as_der(),
        }
        .map_err(|_| BundleError::Crypto("public key encoding failed"))?;
        let public_pem = pem::encode("PUBLIC KEY", spki.as_ref()).to_string();
        Ok(SigningKey {
            alg,
            pair,
            pkcs8,
            public_pem,
        })
    }

    /// The key as PKCS#8 v1 PEM (`BEGIN PRIVATE KEY`).
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        pem::encode("PRIVATE KEY", &self.pkcs8)
    }

    /// The public key as SubjectPublicKeyInfo PEM (`BEGIN PUBLIC KEY`), the
    /// form a trust root holds.
    pub fn public_key_pem(&self) -> String {
        self.public_pem.clone()
    }

    /// The key's algorithm.
    pub fn alg(&self) -> SigAlg {
        self.alg
    }

    /// Signs `message`: ECDSA gives a DER signature over SHA-256 of the
    /// message, Ed25519 the 64-byte signature.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, BundleError> {
        let failed = |_| BundleError::Crypto("signing failed");
        match &self.pair {
            Pair::Ecdsa(p) => Ok(p
                .sign(&SystemRandom::new(), message)
                .map_err(failed)?
                .as_ref()
                .to_vec()),
            Pair::Ed25519(p) => Ok(p.try_sign(message).map_err(failed)?.as_ref().to_vec()),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("private_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A trust-root public key, parsed once.
#[derive(Clone)]
pub(crate) struct PublicKey {
    key: ParsedPublicKey,
    der: Vec<u8>,
}

impl PublicKey {
    /// Parses SubjectPublicKeyInfo PEM for `alg`. The DER must be the key's
    /// canonical encoding (uncompressed point for P-256), so one key has one
    /// spelling and duplicates are visible.
    pub(crate) fn from_spki_pem(alg: SigAlg, pem_text: &str) -> Result<PublicKey, &'static str> {
        let der = pem::parse_one(pem_text, "PUBLIC KEY")?;
        let verifier: &'static dyn aws_lc_rs::signature::VerificationAlgorithm = match alg {
            SigAlg::EcdsaP256 => &ECDSA_P256_SHA256_ASN1,
            SigAlg::Ed25519 => &ED25519,
        };
        let key = ParsedPublicKey::new(verifier, der.as_slice())
            .map_err(|_| "public key does not parse for its algorithm")?;
        let canonical = key
            .as_der()
            .map_err(|_| "public key does not parse for its algorithm")?;
        if canonical.as_ref() != der.as_slice() {
            return Err("public key is not a canonical subjectpublickeyinfo");
        }
        Ok(PublicKey {
            key,
            der: der.to_vec(),
        })
    }

    /// True if `signature` is valid over `message`.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }

    /// The SubjectPublicKeyInfo DER.
    pub(crate) fn der(&self) -> &[u8] {
        &self.der
    }
}

/// Checks a key id: `[a-z0-9._-]{1,64}`.
pub(crate) fn check_key_id(id: &str) -> Result<(), BundleError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(BundleError::InvalidKeyId(echo(id.as_bytes())))
    }
}

#[cfg(test)]
mod tests;
