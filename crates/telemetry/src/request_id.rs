//! Request ids: 128 random bits in lowercase hex.

use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

#[cfg(test)]
mod tests;

/// Random bytes in a request id: 128 bits make a collision negligible at any
/// request volume and the id unguessable.
pub const REQUEST_ID_BYTES: usize = 16;

/// A new request id: 32 lowercase hex digits from the system CSPRNG.
pub fn new_request_id() -> String {
    let mut bytes = [0u8; REQUEST_ID_BYTES];
    match SystemRandom::new().fill(&mut bytes) {
        Ok(()) => to_hex(&bytes),
        Err(_) => {
            tracing::error!("system random generator failed, request id is not random");
            fallback_request_id()
        }
    }
}

/// Unique within this process (time plus a counter), for the case the
/// CSPRNG fails: ids must stay distinct even when they cannot be random.
fn fallback_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = jiff::Timestamp::now().as_nanosecond();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut bytes = [0u8; REQUEST_ID_BYTES];
    let (high, low) = bytes.split_at_mut(REQUEST_ID_BYTES / 2);
    high.copy_from_slice(&(nanos as u64).to_be_bytes());
    low.copy_from_slice(&count.to_be_bytes());
    to_hex(&bytes)
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        for nibble in [b >> 4, b & 0xf] {
            if let Some(&c) = HEX.get(usize::from(nibble)) {
                out.push(char::from(c));
            }
        }
    }
    out
}
