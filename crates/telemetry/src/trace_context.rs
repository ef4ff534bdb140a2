//! W3C Trace Context: the `traceparent` header
//! (<https://www.w3.org/TR/trace-context/#traceparent-header>).
//!
//! Only the trace id is taken, to correlate audit records and logs with the
//! caller's trace; the gateway does not start or propagate spans itself.

#[cfg(test)]
mod tests;

/// Length of a version-`00` `traceparent` value:
/// `vv-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
pub const TRACEPARENT_LEN: usize = 55;

/// Returns the trace id (32 lowercase hex digits) of a valid `traceparent`
/// value, or `None` if the value is malformed.
///
/// Rules: hex is lowercase only; version `ff` is invalid; version `00` has
/// exactly the four fields; a later version may append fields after a `-`
/// (parsed as the spec asks, by reading the version-`00` prefix); the trace
/// id and the parent id must not be all zeros.
pub fn parse_traceparent(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let version = bytes.get(0..2)?;
    if !is_lower_hex(version) || version == b"ff" {
        return None;
    }
    match bytes.len() {
        TRACEPARENT_LEN => {}
        len if len > TRACEPARENT_LEN && version != b"00" => {
            if bytes.get(TRACEPARENT_LEN) != Some(&b'-') {
                return None;
            }
        }
        _ => return None,
    }
    let dashes_ok = [2, 35, 52].iter().all(|&i| bytes.get(i) == Some(&b'-'));
    if !dashes_ok {
        return None;
    }
    let trace_id = value.get(3..35)?;
    let parent_id = bytes.get(36..52)?;
    let flags = bytes.get(53..55)?;
    let fields_ok = is_lower_hex(trace_id.as_bytes())
        && is_lower_hex(parent_id)
        && is_lower_hex(flags)
        && !all_zeros(trace_id.as_bytes())
        && !all_zeros(parent_id);
    fields_ok.then(|| trace_id.to_owned())
}

fn is_lower_hex(field: &[u8]) -> bool {
    field
        .iter()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

fn all_zeros(field: &[u8]) -> bool {
    field.iter().all(|&c| c == b'0')
}
