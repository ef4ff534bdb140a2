//! Session ids (in the cookie) and session keys (in the store).

use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Bytes of randomness in a session id: 256 bits, well over the 128 the
/// cookie needs to be unguessable.
pub const SESSION_ID_BYTES: usize = 32;

/// The secret in the session cookie. Redacted in `Debug`, zeroized on drop,
/// compared in constant time.
pub struct SessionId(Zeroizing<[u8; SESSION_ID_BYTES]>);

impl SessionId {
    /// A fresh id from the OS random source (through aws-lc-rs).
    pub fn generate() -> Result<Self, aws_lc_rs::error::Unspecified> {
        let mut bytes = Zeroizing::new([0u8; SESSION_ID_BYTES]);
        SystemRandom::new().fill(bytes.as_mut())?;
        Ok(Self(bytes))
    }

    /// Parses a cookie value: exactly 43 characters of strict base64url.
    pub fn from_cookie(value: &str) -> Option<Self> {
        if value.len() != 43 {
            return None;
        }
        let decoded = Zeroizing::new(B64.decode(value.as_bytes()).ok()?);
        let bytes: [u8; SESSION_ID_BYTES] = decoded.as_slice().try_into().ok()?;
        Some(Self(Zeroizing::new(bytes)))
    }

    /// The cookie value (base64url, 43 characters).
    pub fn to_cookie(&self) -> Zeroizing<String> {
        Zeroizing::new(B64.encode(self.0.as_ref()))
    }

    /// The key the store knows the session by: SHA-256 of the id.
    pub fn key(&self) -> SessionKey {
        let d = digest::digest(&digest::SHA256, self.0.as_ref());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        SessionKey(out)
    }

    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &SessionId) -> bool {
        self.0.as_ref().ct_eq(other.0.as_ref()).into()
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

/// SHA-256 of a [`SessionId`]: what stores, logs and the admin API use.
/// Knowing a key does not let anyone forge the cookie.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(pub [u8; 32]);

impl SessionKey {
    /// Lowercase hex (64 characters).
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(hex_digit(b >> 4));
            s.push(hex_digit(b & 0xf));
        }
        s
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let hi = (*pair.first()? as char).to_digit(16)?;
            let lo = (*pair.get(1)? as char).to_digit(16)?;
            *o = u8::try_from(hi * 16 + lo).ok()?;
        }
        Some(Self(out))
    }

    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &SessionKey) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n), 16).unwrap_or('0')
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to correlate log lines.
        let hex = self.to_hex();
        write!(f, "SessionKey({}…)", hex.get(..12).unwrap_or(""))
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests;
