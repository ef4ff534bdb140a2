//! The login transaction: what the callback needs to finish a login it
//! started (state, nonce, PKCE verifier, where to return, and for a step-up
//! the session it upgrades). It travels in a short-lived cookie sealed with
//! AES-256-GCM under a key derived from the first refresh-token key, so
//! every gateway instance with the same configuration can open it and
//! nothing is written to the session store before a login succeeds.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use zeroize::Zeroizing;

/// How long a login may take from redirect to callback.
pub(crate) const MAX_LOGIN_AGE_SECS: i64 = 600;
/// Associated data: a transaction cookie is nothing else.
const AAD: &[u8] = b"portcullis login transaction v1";

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct LoginTxn {
    pub(crate) state: String,
    pub(crate) nonce: String,
    pub(crate) verifier: String,
    /// A path on this gateway (starts with one `/`).
    pub(crate) return_to: String,
    pub(crate) created: i64,
    /// Step-up of this session (key hex), if any.
    pub(crate) step_up: Option<String>,
}

impl Drop for LoginTxn {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.verifier.zeroize();
        self.nonce.zeroize();
        self.state.zeroize();
    }
}

pub(crate) struct TxnSealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl TxnSealer {
    /// Derives the transaction key from `secret` (HKDF-SHA256).
    pub(crate) fn new(secret: &[u8]) -> Result<Self, String> {
        use aws_lc_rs::hkdf;
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"portcullis");
        let prk = salt.extract(secret);
        let info: [&[u8]; 1] = [b"login transaction cookie"];
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .map_err(|_| "cannot derive the login transaction key".to_owned())?;
        let key = UnboundKey::from(okm);
        Ok(Self {
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        })
    }

    pub(crate) fn seal(&self, txn: &LoginTxn) -> Result<String, String> {
        let mut buf = Zeroizing::new(serde_json::to_vec(txn).map_err(|e| e.to_string())?);
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| "no randomness".to_owned())?;
        let mut out = buf.to_vec();
        buf.iter_mut().for_each(|b| *b = 0);
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut out,
            )
            .map_err(|_| "cannot seal the login transaction".to_owned())?;
        let mut all = nonce.to_vec();
        all.extend_from_slice(&out);
        Ok(B64.encode(all))
    }

    /// Opens a transaction cookie; `None` for anything forged, tampered,
    /// sealed by another configuration or too old.
    pub(crate) fn open(&self, cookie: &str, now: i64) -> Option<LoginTxn> {
        if cookie.len() > 4096 {
            return None;
        }
        let raw = B64.decode(cookie.as_bytes()).ok()?;
        let (nonce, sealed) = raw.split_at_checked(NONCE_LEN)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                buf.as_mut(),
            )
            .ok()?;
        let txn: LoginTxn = serde_json::from_slice(plain).ok()?;
        let age = now.saturating_sub(txn.created);
        if !(0..=MAX_LOGIN_AGE_SECS).contains(&age) {
            return None;
        }
        Some(txn)
    }
}

/// `n` random bytes as base64url.
pub(crate) fn random_b64(n: usize) -> Result<String, String> {
    let mut b = Zeroizing::new(vec![0u8; n]);
    SystemRandom::new()
        .fill(b.as_mut())
        .map_err(|_| "no randomness".to_owned())?;
    Ok(B64.encode(b.as_slice()))
}

/// The PKCE S256 challenge of `verifier` (RFC 7636).
pub(crate) fn s256(verifier: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    B64.encode(d.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(created: i64) -> LoginTxn {
        LoginTxn {
            state: "s".into(),
            nonce: "n".into(),
            verifier: "v".into(),
            return_to: "/app".into(),
            created,
            step_up: None,
        }
    }

    #[test]
    fn round_trip_tamper_age_and_other_key() {
        let s = TxnSealer::new(b"key one").unwrap();
        let c = s.seal(&txn(1000)).unwrap();
        assert_eq!(s.open(&c, 1000).unwrap().return_to, "/app");
        assert!(
            s.open(&c, 1000 + MAX_LOGIN_AGE_SECS + 1).is_none(),
            "too old"
        );
        assert!(s.open(&c, 999 - 1).is_none(), "from the future");
        let mut raw = B64.decode(&c).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert!(s.open(&B64.encode(raw), 1000).is_none(), "tampered");
        assert!(TxnSealer::new(b"key two").unwrap().open(&c, 1000).is_none());
        assert!(s.open("garbage", 1000).is_none());
        assert!(!c.contains("\"v\""));
    }

    #[test]
    fn pkce_s256_matches_rfc7636() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
