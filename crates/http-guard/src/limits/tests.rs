use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use super::*;

fn n_headers(n: usize) -> HeaderMap {
    let mut h = HeaderMap::new();
    for i in 0..n {
        h.append(
            HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
            HeaderValue::from_static("v"),
        );
    }
    h
}

#[test]
fn header_count_limit() {
    assert_eq!(
        check_header_limits(
            &n_headers(MAX_HEADER_COUNT),
            MAX_HEADER_COUNT,
            MAX_HEADER_BYTES
        ),
        Ok(())
    );
    let err = check_header_limits(
        &n_headers(MAX_HEADER_COUNT + 1),
        MAX_HEADER_COUNT,
        MAX_HEADER_BYTES,
    )
    .unwrap_err();
    assert_eq!(
        err,
        LimitError::TooManyHeaders {
            max: MAX_HEADER_COUNT
        }
    );
    assert_eq!(err.reason_code(), "too_many_headers");
    assert_eq!(err.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

#[test]
fn repeated_values_count_towards_the_limit() {
    let mut h = HeaderMap::new();
    for _ in 0..=MAX_HEADER_COUNT {
        h.append("cookie", HeaderValue::from_static("a=b"));
    }
    assert_eq!(h.keys_len(), 1);
    assert_eq!(
        check_header_limits(&h, MAX_HEADER_COUNT, MAX_HEADER_BYTES),
        Err(LimitError::TooManyHeaders {
            max: MAX_HEADER_COUNT
        })
    );
}

#[test]
fn header_bytes_limit_counts_name_value_and_overhead() {
    // One field `x: vvv…` of exactly `max` bytes on the wire.
    let max = 100;
    let value = "v".repeat(max - 1 - FIELD_LINE_OVERHEAD);
    let mut h = HeaderMap::new();
    h.insert("x", HeaderValue::from_str(&value).unwrap());
    assert_eq!(check_header_limits(&h, 10, max), Ok(()));
    assert_eq!(
        check_header_limits(&h, 10, max - 1),
        Err(LimitError::HeadersTooLarge { max: max - 1 })
    );
}

#[test]
fn total_bytes_across_many_fields() {
    let mut h = HeaderMap::new();
    let value = HeaderValue::from_str(&"v".repeat(4000)).unwrap();
    for i in 0..9 {
        h.insert(
            HeaderName::from_bytes(format!("x-big-{i}").as_bytes()).unwrap(),
            value.clone(),
        );
    }
    let err = check_header_limits(&h, MAX_HEADER_COUNT, MAX_HEADER_BYTES).unwrap_err();
    assert_eq!(err.reason_code(), "headers_too_large");
}

#[test]
fn single_value_limit() {
    let mut h = HeaderMap::new();
    h.insert(
        "cookie",
        HeaderValue::from_str(&"a".repeat(MAX_HEADER_VALUE_LEN)).unwrap(),
    );
    assert_eq!(
        check_header_limits(&h, MAX_HEADER_COUNT, MAX_HEADER_BYTES),
        Ok(())
    );
    h.insert(
        "cookie",
        HeaderValue::from_str(&"a".repeat(MAX_HEADER_VALUE_LEN + 1)).unwrap(),
    );
    let err = check_header_limits(&h, MAX_HEADER_COUNT, MAX_HEADER_BYTES).unwrap_err();
    assert_eq!(
        err,
        LimitError::HeaderValueTooLong {
            name: HeaderName::from_static("cookie"),
            max: MAX_HEADER_VALUE_LEN
        }
    );
    assert_eq!(
        err.to_string(),
        format!("value of header `cookie` is longer than {MAX_HEADER_VALUE_LEN} bytes")
    );
    assert!(!err.to_string().contains("aaaa"));
}

#[test]
fn empty_headers_pass() {
    assert_eq!(check_header_limits(&HeaderMap::new(), 0, 0), Ok(()));
}

#[test]
fn uri_length_limit() {
    let at_limit: Uri = format!("/{}", "a".repeat(MAX_URI_LEN - 1)).parse().unwrap();
    assert_eq!(check_uri_len(&at_limit), Ok(()));
    let over: Uri = format!("/{}", "a".repeat(MAX_URI_LEN)).parse().unwrap();
    let err = check_uri_len(&over).unwrap_err();
    assert_eq!(err, LimitError::UriTooLong { max: MAX_URI_LEN });
    assert_eq!(err.status(), StatusCode::URI_TOO_LONG);
    // Scheme and authority count for absolute-form targets.
    let prefix = "http://example.com";
    let absolute: Uri = format!("{prefix}/{}", "a".repeat(MAX_URI_LEN - prefix.len()))
        .parse()
        .unwrap();
    assert_eq!(
        check_uri_len(&absolute).unwrap_err().reason_code(),
        "uri_too_long"
    );
}
