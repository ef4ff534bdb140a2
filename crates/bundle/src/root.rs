//! The trust root: which keys may sign, how many must, and when; and
//! verification of a bundle (and of the trust root update it may carry).

use std::collections::BTreeSet;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::alg::SigAlg;
use crate::bundle::Bundle;
use crate::error::{echo, BundleError, Rejection, SignatureReport};
use crate::key::{check_key_id, PublicKey};
use crate::limits::MAX_ROOT_BYTES;
use crate::manifest;

/// The `format` of every trust root.
pub const TRUST_ROOT_FORMAT: &str = "portcullis-trust-root-v1";

/// Most keys in one trust root: a handful of operators, each with an
/// overlapping successor; bounds verification work per bundle.
pub const MAX_ROOT_KEYS: usize = 64;

/// The keys trusted to sign bundles, parsed from its exact JSON.
#[derive(Clone)]
pub struct TrustRoot {
    bytes: Vec<u8>,
    version: u64,
    threshold: usize,
    keys: Vec<RootKey>,
}

#[derive(Clone)]
struct RootKey {
    id: String,
    alg: SigAlg,
    public_key_pem: String,
    key: PublicKey,
    not_before: Timestamp,
    not_after: Timestamp,
}

/// A key of a trust root, as listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RootKeyInfo<'a> {
    /// The key id.
    pub id: &'a str,
    /// Its algorithm.
    pub alg: SigAlg,
    /// SubjectPublicKeyInfo PEM, as written in the root.
    pub public_key_pem: &'a str,
    /// First instant the key's signatures count.
    pub not_before: Timestamp,
    /// First instant they no longer count.
    pub not_after: Timestamp,
}

/// A key to write into a new trust root with [`TrustRoot::create`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootKeySpec {
    /// Key id, `[a-z0-9._-]{1,64}`.
    pub id: String,
    /// Algorithm of the key.
    pub alg: SigAlg,
    /// SubjectPublicKeyInfo PEM ([`crate::SigningKey::public_key_pem`]).
    pub public_key: String,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity (exclusive).
    pub not_after: Timestamp,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoot {
    format: String,
    version: u64,
    threshold: u64,
    keys: Vec<RawKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    id: String,
    alg: String,
    public_key: String,
    not_before: String,
    not_after: String,
}

/// A bundle whose signatures met the threshold of the (possibly updated)
/// trust root at the verification time. Only [`TrustRoot::verify`] makes
/// one; check [`crate::RollbackState::check`] before activating it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Verified {
    /// The bundle's revision.
    pub revision: u64,
    /// The bundle's digest ([`Bundle::digest`]).
    pub digest: String,
    /// Key ids whose signatures counted, sorted.
    pub signers: Vec<String>,
    /// The trust root the bundle carried and that was accepted; persist it
    /// (with the rollback state) and use it from now on.
    pub new_root: Option<TrustRoot>,
}

impl TrustRoot {
    /// Parses and validates a trust root: strict JSON, known format,
    /// `version >= 1`, `1 <= threshold <= keys`, unique valid ids, keys that
    /// parse for their algorithm, no key listed twice, `not_before <
    /// not_after`.
    pub fn from_json(bytes: &[u8]) -> Result<TrustRoot, BundleError> {
        let bad = |msg: String| BundleError::BadTrustRoot(msg);
        if bytes.len() > MAX_ROOT_BYTES {
            return Err(bad(format!(
                "{} bytes exceed the limit of {MAX_ROOT_BYTES} bytes",
                bytes.len()
            )));
        }
        let raw: RawRoot = crate::json::parse(bytes, "root.json", bad)?;
        if raw.format != TRUST_ROOT_FORMAT {
            return Err(bad(format!(
                "format `{}` is not `{TRUST_ROOT_FORMAT}`",
                echo(raw.format.as_bytes())
            )));
        }
        if raw.version == 0 {
            return Err(bad("version must be a positive integer".to_owned()));
        }
        if raw.keys.is_empty() || raw.keys.len() > MAX_ROOT_KEYS {
            return Err(bad(format!(
                "a trust root lists 1 to {MAX_ROOT_KEYS} keys, not {}",
                raw.keys.len()
            )));
        }
        let threshold = usize::try_from(raw.threshold).unwrap_or(usize::MAX);
        if threshold == 0 || threshold > raw.keys.len() {
            return Err(bad(format!(
                "threshold {} is not between 1 and the number of keys ({})",
                raw.threshold,
                raw.keys.len()
            )));
        }
        let mut ids = BTreeSet::new();
        let mut ders = BTreeSet::new();
        let mut keys = Vec::with_capacity(raw.keys.len());
        for k in raw.keys {
            check_key_id(&k.id).map_err(|e| bad(e.to_string()))?;
            if !ids.insert(k.id.clone()) {
                return Err(bad(format!("key id `{}` is listed twice", k.id)));
            }
            let alg: SigAlg = k
                .alg
                .parse()
                .map_err(|e: BundleError| bad(format!("key `{}`: {e}", k.id)))?;
            let key = PublicKey::from_spki_pem(alg, &k.public_key)
                .map_err(|e| bad(format!("key `{}`: {e}", k.id)))?;
            if !ders.insert(key.der().to_vec()) {
                return Err(bad(format!(
                    "key `{}` is the same public key as another id",
                    k.id
                )));
            }
            let time = |field: &str, text: &str| {
                text.parse::<Timestamp>().map_err(|_| {
                    bad(format!(
                        "key `{}`: {field} `{}` is not an rfc 3339 time",
                        k.id,
                        echo(text.as_bytes())
                    ))
                })
            };
            let not_before = time("not_before", &k.not_before)?;
            let not_after = time("not_after", &k.not_after)?;
            if not_before >= not_after {
                return Err(bad(format!(
                    "key `{}`: not_before is not before not_after",
                    k.id
                )));
            }
            keys.push(RootKey {
                id: k.id,
                alg,
                public_key_pem: k.public_key,
                key,
                not_before,
                not_after,
            });
        }
        Ok(TrustRoot {
            bytes: bytes.to_vec(),
            version: raw.version,
            threshold,
            keys,
        })
    }

    /// Writes a new trust root (pretty JSON, final newline) and parses it
    /// back with every check of [`TrustRoot::from_json`].
    pub fn create(
        version: u64,
        threshold: usize,
        keys: &[RootKeySpec],
    ) -> Result<TrustRoot, BundleError> {
        let raw = RawRoot {
            format: TRUST_ROOT_FORMAT.to_owned(),
            version,
            threshold: threshold as u64,
            keys: keys
                .iter()
                .map(|k| RawKey {
                    id: k.id.clone(),
                    alg: k.alg.to_string(),
                    public_key: k.public_key.clone(),
                    not_before: k.not_before.to_string(),
                    not_after: k.not_after.to_string(),
                })
                .collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&raw)
            .map_err(|e| BundleError::BadTrustRoot(e.to_string()))?;
        bytes.push(b'\n');
        TrustRoot::from_json(&bytes)
    }

    /// The root's version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// How many valid signatures a bundle needs.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The key ids, in file order.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// The keys, in file order.
    pub fn keys(&self) -> impl Iterator<Item = RootKeyInfo<'_>> {
        self.keys.iter().map(|k| RootKeyInfo {
            id: &k.id,
            alg: k.alg,
            public_key_pem: &k.public_key_pem,
            not_before: k.not_before,
            not_after: k.not_after,
        })
    }

    /// The exact JSON this root was parsed from.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Lowercase hex SHA-256 of [`TrustRoot::bytes`].
    pub fn digest(&self) -> String {
        manifest::sha256_hex(&self.bytes)
    }

    /// Verifies the root update (if any) with self, then the bundle with the
    /// resulting root.
    ///
    /// An update is accepted only if its version is above this root's and at
    /// least this root's threshold of keys valid at `now` signed its exact
    /// bytes; an update identical to this root is a no-op. A refused update
    /// refuses the bundle. The bundle then needs the threshold of the
    /// resulting root, each key counted once and only within
    /// `not_before <= now < not_after`.
    pub fn verify(&self, bundle: &Bundle, now: Timestamp) -> Result<Verified, BundleError> {
        let new_root = match bundle.root_update() {
            None => None,
            Some((json, signatures)) => self
                .accept_update(json, signatures, now)
                .map_err(|e| BundleError::RootUpdateRefused(Box::new(e)))?,
        };
        let root = new_root.as_ref().unwrap_or(self);
        let signers = root.count(bundle.manifest_bytes(), bundle.signatures(), now)?;
        Ok(Verified {
            revision: bundle.revision(),
            digest: bundle.digest(),
            signers,
            new_root,
        })
    }

    fn accept_update(
        &self,
        json: &[u8],
        signatures: &[(String, Vec<u8>)],
        now: Timestamp,
    ) -> Result<Option<TrustRoot>, BundleError> {
        if json == self.bytes.as_slice() {
            return Ok(None);
        }
        let new = TrustRoot::from_json(json)?;
        if new.version <= self.version {
            return Err(BundleError::BadTrustRoot(format!(
                "version {} is not above the current version {}",
                new.version, self.version
            )));
        }
        self.count(
            json,
            signatures.iter().map(|(id, s)| (id.as_str(), s.as_slice())),
            now,
        )?;
        Ok(Some(new))
    }

    /// Counts valid signatures over `message`; the sorted signer ids if the
    /// threshold is met.
    fn count<'a>(
        &self,
        message: &[u8],
        signatures: impl Iterator<Item = (&'a str, &'a [u8])>,
        now: Timestamp,
    ) -> Result<Vec<String>, BundleError> {
        let mut valid = BTreeSet::new();
        let mut rejected: Vec<(String, Rejection)> = Vec::new();
        for (id, signature) in signatures {
            if valid.contains(id) {
                continue;
            }
            let why = match self.keys.iter().find(|k| k.id == id) {
                None => Rejection::UnknownKey,
                Some(k) if now < k.not_before => Rejection::NotYetValid {
                    not_before: k.not_before,
                },
                Some(k) if now >= k.not_after => Rejection::Expired {
                    not_after: k.not_after,
                },
                Some(k) if k.key.verify(message, signature) => {
                    valid.insert(id.to_owned());
                    continue;
                }
                Some(_) => Rejection::BadSignature,
            };
            rejected.push((echo(id.as_bytes()), why));
        }
        rejected.retain(|(id, _)| !valid.contains(id));
        if valid.len() >= self.threshold {
            return Ok(valid.into_iter().collect());
        }
        Err(BundleError::Signatures(SignatureReport::new(
            self.threshold,
            valid.into_iter().collect(),
            rejected,
        )))
    }
}

impl fmt::Debug for TrustRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustRoot")
            .field("version", &self.version)
            .field("threshold", &self.threshold)
            .field("keys", &self.key_ids())
            .finish()
    }
}

#[cfg(test)]
mod tests;
