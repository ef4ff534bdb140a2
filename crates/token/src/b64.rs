//! Strict base64url without padding (RFC 7515 section 2, RFC 4648 section 5).
//!
//! Padding (`=`), the standard alphabet (`+`, `/`), whitespace, impossible
//! lengths and non-zero trailing bits are all refused, so every value has
//! exactly one accepted encoding.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Decodes strict base64url; `None` on any deviation.
pub(crate) fn decode(s: &str) -> Option<Vec<u8>> {
    // INVARIANT: URL_SAFE_NO_PAD refuses padding and, by default, non-zero
    // trailing bits; the alphabet has neither `+`, `/` nor whitespace.
    URL_SAFE_NO_PAD.decode(s.as_bytes()).ok()
}

#[cfg(test)]
pub(crate) fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests;
