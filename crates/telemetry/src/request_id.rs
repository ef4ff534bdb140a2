//! Request ids: 128 random bits in lowercase hex.
//!
//! The bits come from the system CSPRNG in batches: one call fills
//! [`BATCH_IDS`] ids' worth of a per-thread buffer. A call per id cost
//! about half a microsecond (the generator's fixed cost per call, not per
//! byte), a few percent of a proxied request. Request ids are not secrets
//! (every response carries its own), so bytes waiting in the buffer need no
//! protection; they are used once and in order.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

#[cfg(test)]
mod tests;

/// Random bytes in a request id: 128 bits make a collision negligible at any
/// request volume and the id unguessable.
pub const REQUEST_ID_BYTES: usize = 16;

/// Request ids drawn from one call to the CSPRNG.
pub(crate) const BATCH_IDS: usize = 32;

/// A thread's unused random bytes: `next` is the offset of the first
/// unused one; a full offset means empty.
struct Batch {
    bytes: [u8; REQUEST_ID_BYTES * BATCH_IDS],
    next: usize,
}

impl Batch {
    const EMPTY: Self = Self {
        bytes: [0; REQUEST_ID_BYTES * BATCH_IDS],
        next: REQUEST_ID_BYTES * BATCH_IDS,
    };

    /// The next id's bytes, refilling from the CSPRNG when empty; `None`
    /// if the generator fails (the batch stays empty).
    fn take(&mut self) -> Option<[u8; REQUEST_ID_BYTES]> {
        if self.next >= self.bytes.len() {
            SystemRandom::new().fill(&mut self.bytes).ok()?;
            self.next = 0;
        }
        let id = self
            .bytes
            .get(self.next..self.next + REQUEST_ID_BYTES)?
            .try_into()
            .ok()?;
        self.next += REQUEST_ID_BYTES;
        Some(id)
    }
}

thread_local! {
    static BATCH: RefCell<Batch> = const { RefCell::new(Batch::EMPTY) };
}

/// A new request id: 32 lowercase hex digits from the system CSPRNG.
pub fn new_request_id() -> String {
    let digits = new_id_digits();
    String::from_utf8(digits.to_vec()).unwrap_or_default()
}

/// [`new_request_id`], shared: one allocation, and every copy (the audit
/// record, the record of a response cut off later) only counts a
/// reference.
pub fn new_request_id_shared() -> std::sync::Arc<str> {
    let digits = new_id_digits();
    std::sync::Arc::from(std::str::from_utf8(&digits).unwrap_or_default())
}

fn new_id_digits() -> [u8; REQUEST_ID_BYTES * 2] {
    let bytes = BATCH
        .try_with(|b| b.try_borrow_mut().ok().and_then(|mut b| b.take()))
        .ok()
        .flatten();
    match bytes {
        Some(bytes) => hex_digits(&bytes),
        None => {
            tracing::error!("system random generator failed, request id is not random");
            fallback_id_bytes()
        }
    }
}

/// Unique within this process (time plus a counter), for the case the
/// CSPRNG fails: ids must stay distinct even when they cannot be random.
#[cfg(test)]
fn fallback_request_id() -> String {
    String::from_utf8(fallback_id_bytes().to_vec()).unwrap_or_default()
}

fn fallback_id_bytes() -> [u8; REQUEST_ID_BYTES * 2] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = jiff::Timestamp::now().as_nanosecond();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut bytes = [0u8; REQUEST_ID_BYTES];
    let (high, low) = bytes.split_at_mut(REQUEST_ID_BYTES / 2);
    high.copy_from_slice(&(nanos as u64).to_be_bytes());
    low.copy_from_slice(&count.to_be_bytes());
    hex_digits(&bytes)
}

fn hex_digits(bytes: &[u8; REQUEST_ID_BYTES]) -> [u8; REQUEST_ID_BYTES * 2] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; REQUEST_ID_BYTES * 2];
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        if let [hi, lo] = pair {
            *hi = HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
            *lo = HEX.get(usize::from(b & 0xf)).copied().unwrap_or(b'0');
        }
    }
    out
}
