//! Refresh tokens at rest: AES-256-GCM under a configured key, with the
//! session key as associated data (a sealed token moved to another session
//! does not open). Several keys may be configured for rotation: new
//! tokens are sealed with the first, old ones open with any of them.

use std::fmt;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::SessionKey;

/// Length of a sealing key: AES-256.
pub const SEAL_KEY_BYTES: usize = 32;

/// A sealed secret as stored.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SealedBlob {
    /// Which configured key sealed it.
    pub key_id: String,
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for SealedBlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedBlob")
            .field("key_id", &self.key_id)
            .field("len", &self.ciphertext.len())
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("no sealing key is configured")]
    NoKey,
    #[error("sealing key `{0}` must be exactly 32 bytes")]
    BadKeyLength(String),
    #[error("duplicate sealing key id `{0}`")]
    DuplicateKeyId(String),
    #[error("sealed with key `{0}`, which is not configured")]
    UnknownKey(String),
    #[error("sealed data does not open: wrong key, wrong session or tampered")]
    Open,
    #[error("cannot seal")]
    Seal,
}

/// Seals and opens secrets. Keys never leave it; `Debug` shows key ids only.
pub struct Sealer {
    /// The first key seals; all open.
    keys: Vec<(String, LessSafeKey)>,
    rng: SystemRandom,
}

impl Sealer {
    /// `keys`: (id, 32 key bytes), the sealing key first.
    pub fn new(keys: Vec<(String, Zeroizing<Vec<u8>>)>) -> Result<Self, SealError> {
        if keys.is_empty() {
            return Err(SealError::NoKey);
        }
        let mut out: Vec<(String, LessSafeKey)> = Vec::with_capacity(keys.len());
        for (id, bytes) in keys {
            if out.iter().any(|(k, _)| *k == id) {
                return Err(SealError::DuplicateKeyId(id));
            }
            if bytes.len() != SEAL_KEY_BYTES {
                return Err(SealError::BadKeyLength(id));
            }
            let key = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| SealError::BadKeyLength(id.clone()))?;
            out.push((id, LessSafeKey::new(key)));
        }
        Ok(Self {
            keys: out,
            rng: SystemRandom::new(),
        })
    }

    /// Seals `plaintext` for the session `key` with the first key.
    pub fn seal(&self, session: &SessionKey, plaintext: &[u8]) -> Result<SealedBlob, SealError> {
        let (id, key) = self.keys.first().ok_or(SealError::NoKey)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Seal)?;
        let mut buf = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&session.0),
            &mut buf,
        )
        .map_err(|_| SealError::Seal)?;
        Ok(SealedBlob {
            key_id: id.clone(),
            nonce,
            ciphertext: buf,
        })
    }

    /// Opens a blob sealed for the session `key` with any configured key.
    pub fn open(
        &self,
        session: &SessionKey,
        blob: &SealedBlob,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let (_, key) = self
            .keys
            .iter()
            .find(|(id, _)| *id == blob.key_id)
            .ok_or_else(|| SealError::UnknownKey(blob.key_id.clone()))?;
        let mut buf = Zeroizing::new(blob.ciphertext.clone());
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(blob.nonce),
                Aad::from(&session.0),
                buf.as_mut(),
            )
            .map_err(|_| SealError::Open)?;
        Ok(Zeroizing::new(plain.to_vec()))
    }

    /// The id of the key new blobs are sealed with.
    pub fn sealing_key_id(&self) -> &str {
        self.keys.first().map(|(id, _)| id.as_str()).unwrap_or("")
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field(
                "key_ids",
                &self.keys.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests;
