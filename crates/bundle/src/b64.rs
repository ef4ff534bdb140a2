//! Base64 of signature files: standard alphabet with padding, line breaks
//! ignored (`base64` wraps at 76 columns), nothing else.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Longest decoded signature accepted: a P-256 DER signature is at most 72
/// bytes and Ed25519 is 64; anything much longer is not a signature.
pub const MAX_SIGNATURE_BYTES: usize = 256;

/// Longest signature file accepted: base64 of [`MAX_SIGNATURE_BYTES`] with
/// line breaks, rounded up.
pub const MAX_SIGNATURE_FILE_BYTES: usize = 512;

/// Decodes a signature file's text to raw signature bytes.
pub(crate) fn decode_signature(text: &[u8]) -> Result<Vec<u8>, &'static str> {
    if text.len() > MAX_SIGNATURE_FILE_BYTES {
        return Err("signature file too long");
    }
    let mut joined = Vec::with_capacity(text.len());
    for line in text.split(|&b| b == b'\n') {
        joined.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
    }
    if joined.is_empty() {
        return Err("empty signature");
    }
    let raw = STANDARD
        .decode(&joined)
        .map_err(|_| "not standard base64 with padding")?;
    check_len(&raw)?;
    Ok(raw)
}

/// Checks the length of raw signature bytes.
pub(crate) fn check_len(raw: &[u8]) -> Result<(), &'static str> {
    if raw.is_empty() {
        return Err("empty signature");
    }
    if raw.len() > MAX_SIGNATURE_BYTES {
        return Err("signature too long");
    }
    Ok(())
}

/// The text of a signature file: base64 and one newline.
pub(crate) fn encode_signature(raw: &[u8]) -> String {
    let mut text = STANDARD.encode(raw);
    text.push('\n');
    text
}

#[cfg(test)]
mod tests;
