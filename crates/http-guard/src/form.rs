//! `application/x-www-form-urlencoded`: OAuth request bodies, redirect
//! queries and the parameters a provider sends back. Everything but the
//! RFC 3986 unreserved characters is percent-encoded; on decoding, `+` is
//! a space and a `%` must be followed by two hex digits.

/// Why a form component does not decode.
pub const BAD_PERCENT_ENCODING: &str = "bad percent-encoding";
pub const NOT_UTF8: &str = "not UTF-8";

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn encoded_len(s: &str) -> usize {
    s.bytes().map(|b| if unreserved(b) { 1 } else { 3 }).sum()
}

/// Uppercase hex digit of a nibble (`n` < 16).
fn hex_char(n: u8) -> char {
    char::from_digit(u32::from(n), 16).map_or('0', |c| c.to_ascii_uppercase())
}

fn push_component(out: &mut String, s: &str) {
    for b in s.bytes() {
        if unreserved(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(hex_char(b >> 4));
            out.push(hex_char(b & 0x0f));
        }
    }
}

/// One percent-encoded component.
pub fn form_component(s: &str) -> String {
    let mut out = String::with_capacity(encoded_len(s));
    push_component(&mut out, s);
    out
}

/// `k1=v1&k2=v2…`, appended to `out` after reserving its exact length, so
/// the string never reallocates: a caller that zeroizes `out` leaves no
/// copy of a secret parameter behind.
pub fn form_encode_into(out: &mut String, pairs: &[(&str, &str)]) {
    let encoded: usize = pairs
        .iter()
        .map(|(k, v)| encoded_len(k) + encoded_len(v) + 1)
        .sum();
    // One `&` between pairs, and before the first when `out` has some.
    let separators = if out.is_empty() {
        pairs.len().saturating_sub(1)
    } else {
        pairs.len()
    };
    out.reserve_exact(encoded + separators);
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        push_component(out, k);
        out.push('=');
        push_component(out, v);
    }
}

/// `k1=v1&k2=v2…` in a new string.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    form_encode_into(&mut out, pairs);
    out
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one component; the error is [`BAD_PERCENT_ENCODING`] or
/// [`NOT_UTF8`].
pub fn form_decode(s: &str) -> Result<String, &'static str> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.next().and_then(hex_digit);
                let lo = bytes.next().and_then(hex_digit);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(BAD_PERCENT_ENCODING),
                }
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).map_err(|_| NOT_UTF8)
}

/// The decoded value of `name` in a query string when it is there exactly
/// once and decodes; `None` otherwise (absent, repeated or malformed).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    let mut found = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if form_decode(k).as_deref() == Ok(name) {
            if found.is_some() {
                return None;
            }
            found = Some(form_decode(v).ok()?);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_all_but_unreserved_and_round_trips() {
        let raw = "a b&c=d/é~-._+%";
        assert_eq!(form_component(raw), "a%20b%26c%3Dd%2F%C3%A9~-._%2B%25");
        assert_eq!(form_decode(&form_component(raw)).as_deref(), Ok(raw));
        assert_eq!(form_decode("a+b").as_deref(), Ok("a b"));
        assert_eq!(form_encode(&[("a", "1 2"), ("b&", "")]), "a=1%202&b%26=");
    }

    #[test]
    fn encode_into_reserves_exactly_once() {
        let mut out = String::new();
        form_encode_into(&mut out, &[("code", "x/y"), ("state", "s")]);
        assert_eq!(out, "code=x%2Fy&state=s");
        assert_eq!(out.capacity(), out.len(), "no spare reallocation");
    }

    #[test]
    fn decode_refuses_bad_percent_encoding_and_non_utf8() {
        assert_eq!(form_decode("%4"), Err(BAD_PERCENT_ENCODING));
        assert_eq!(form_decode("%zz"), Err(BAD_PERCENT_ENCODING));
        assert_eq!(form_decode("%+1"), Err(BAD_PERCENT_ENCODING), "no sign");
        assert_eq!(form_decode("%ff"), Err(NOT_UTF8));
    }

    #[test]
    fn query_param_needs_exactly_one_well_formed_value() {
        assert_eq!(query_param("a=1&b=2", "b").as_deref(), Some("2"));
        assert_eq!(query_param("a=1&a=2", "a"), None, "repeated");
        assert_eq!(query_param("a=%zz", "a"), None, "malformed");
        assert_eq!(query_param("a", "a").as_deref(), Some(""));
        assert_eq!(query_param("b=1", "a"), None);
        assert_eq!(query_param("st%61te=x", "state").as_deref(), Some("x"));
    }
}
