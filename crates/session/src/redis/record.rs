//! The stored form of a session: hash fields and index names.

use aws_lc_rs::digest;

use crate::{Session, SessionKey, StoreError};

/// Largest session record accepted from the store: far above a real
/// session (claims, a sealed refresh token), small enough that a damaged
/// or hostile store cannot make the gateway buffer and parse megabytes
/// per request.
pub const MAX_REDIS_RECORD_BYTES: usize = 256 * 1024;

/// Lowercase hex of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0xf] {
            s.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
    s
}

/// The subject index name: SHA-256 of `sub`, so any subject (length,
/// characters) makes a fixed-size key.
pub(super) fn subject_hash(subject: &str) -> String {
    hex(digest::digest(&digest::SHA256, subject.as_bytes()).as_ref())
}

/// What the index needs from a session: subject hash and thumbprint hex
/// ("" when unbound).
pub(super) fn index_fields(session: &Session) -> (String, String) {
    (
        subject_hash(&session.subject),
        session
            .bound_thumbprint
            .map(|t| hex(&t))
            .unwrap_or_default(),
    )
}

/// The `r` field: "1" when revoked.
pub(super) fn revoked_flag(revoked: bool) -> &'static str {
    if revoked {
        "1"
    } else {
        "0"
    }
}

/// The JSON of a session as stored.
pub(super) fn encode(session: &Session) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(session)
        .map_err(|_| StoreError::Corrupt("session does not serialize".into()))
}

/// A record from its fields (`json`, `v`, `r`). The hash's `v` and `r`
/// are authoritative (a revocation only writes those two); `expected`
/// is the key the record was read under, and must be the key inside.
pub(super) fn decode(
    json: &[u8],
    version: &[u8],
    revoked: Option<&[u8]>,
    expected: Option<&SessionKey>,
) -> Result<Session, StoreError> {
    if json.len() > MAX_REDIS_RECORD_BYTES {
        return Err(StoreError::Corrupt(format!(
            "record of {} bytes exceeds the limit of {MAX_REDIS_RECORD_BYTES}",
            json.len()
        )));
    }
    let mut session: Session = serde_json::from_slice(json).map_err(|e| {
        StoreError::Corrupt(format!("record does not decode: {}", e.classify_name()))
    })?;
    session.version = std::str::from_utf8(version)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| StoreError::Corrupt("record version is not a number".into()))?;
    session.revoked |= match revoked {
        Some(b"1") => true,
        Some(b"0") => false,
        _ => {
            return Err(StoreError::Corrupt(
                "record revocation flag is invalid".into(),
            ))
        }
    };
    if let Some(key) = expected {
        if !session.key.ct_eq(key) {
            return Err(StoreError::Corrupt(
                "record holds another session key".into(),
            ));
        }
    }
    Ok(session)
}

/// `decode` for the triple replies of `HMGET json v r`: `None` when the
/// record does not exist.
pub(super) fn decode_fields(
    fields: &[Option<Vec<u8>>],
    expected: Option<&SessionKey>,
) -> Result<Option<Session>, StoreError> {
    match fields {
        [None, None, None] => Ok(None),
        [Some(json), Some(v), r] => decode(json, v, r.as_deref(), expected).map(Some),
        _ => Err(StoreError::Corrupt("record is missing fields".into())),
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    /// The error's category only: serde's message may quote record
    /// content.
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}
