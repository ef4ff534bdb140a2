//! The request method (RFC 9110 §9).
//!
//! Methods are case-sensitive, so `delete` is not `DELETE`: a policy that
//! denies `DELETE` does not deny `delete`. But upstream frameworks fold
//! the case (Django, Werkzeug/Flask and CherryPy upper-case the method),
//! and would run as `DELETE` what the gateway judged as an unknown method.
//! The gateway therefore refuses every method with a lowercase letter,
//! rather than judge one spelling and forward another.
//!
//! `TRACE` is refused too: the upstream would echo the request, the
//! gateway's identity assertion included, back to the client.
//!
//! `Max-Forwards` (RFC 9110 §7.6.2) limits how many intermediaries an
//! `OPTIONS` (or `TRACE`) request may pass. The gateway is one: it reads
//! the value with [`max_forwards`], answers an `OPTIONS` that arrives
//! with `0` itself, and forwards any other with the value less one. On
//! other methods the field means nothing and is passed on as sent.

use http::{HeaderMap, Method, StatusCode};

/// Why the request's method is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MethodError {
    #[error(
        "method has a lowercase letter (methods are case-sensitive; upstreams may fold the case)"
    )]
    NotUppercase,
    #[error("trace is not forwarded")]
    Trace,
    #[error("max-forwards is not one decimal number")]
    MaxForwards,
}

impl MethodError {
    /// A stable, low-cardinality label for metrics.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::NotUppercase => "method_not_uppercase",
            Self::Trace => "method_trace",
            Self::MaxForwards => "max_forwards_invalid",
        }
    }

    /// 400 for a method spelled in lowercase or an unreadable
    /// `Max-Forwards`, 405 for `TRACE`.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotUppercase | Self::MaxForwards => StatusCode::BAD_REQUEST,
            Self::Trace => StatusCode::METHOD_NOT_ALLOWED,
        }
    }
}

/// Whether `b` may appear in an HTTP token (RFC 9110 §5.6.2 `tchar`): a
/// method, a field name, a `Via` pseudonym.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks the method the request will be judged and forwarded with.
pub fn check_method(method: &Method) -> Result<(), MethodError> {
    if *method == Method::TRACE {
        return Err(MethodError::Trace);
    }
    if method.as_str().bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(MethodError::NotUppercase);
    }
    Ok(())
}

/// The `Max-Forwards` of an `OPTIONS` request: `None` for any other
/// method or when the field is absent. A value that is not one run of
/// ASCII digits (`1*DIGIT`), or a field sent more than once, is refused
/// rather than guessed at: intermediaries that read it differently would
/// disagree on where the request stops. A number too large for `u64`
/// counts as `u64::MAX` (it still allows more hops than any chain has).
pub fn max_forwards(method: &Method, headers: &HeaderMap) -> Result<Option<u64>, MethodError> {
    if *method != Method::OPTIONS {
        return Ok(None);
    }
    let mut values = headers.get_all(http::header::MAX_FORWARDS).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(MethodError::MaxForwards);
    }
    let digits = value.as_bytes();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(MethodError::MaxForwards);
    }
    Ok(Some(digits.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Method {
        Method::from_bytes(s.as_bytes()).unwrap()
    }

    #[test]
    fn uppercase_methods_pass_standard_or_not() {
        for s in [
            "GET", "POST", "DELETE", "PATCH", "PROPFIND", "M-SEARCH", "X_1",
        ] {
            assert_eq!(check_method(&m(s)), Ok(()), "{s}");
        }
    }

    #[test]
    fn any_lowercase_letter_is_refused_with_400() {
        for s in ["delete", "Delete", "get", "deletE", "propfind"] {
            let e = check_method(&m(s)).unwrap_err();
            assert_eq!(e, MethodError::NotUppercase, "{s}");
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
            assert_eq!(e.reason_code(), "method_not_uppercase");
        }
    }

    #[test]
    fn trace_is_refused_with_405() {
        let e = check_method(&Method::TRACE).unwrap_err();
        assert_eq!(e.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(e.reason_code(), "method_trace");
        assert_eq!(check_method(&m("trace")), Err(MethodError::NotUppercase));
    }

    fn hops(method: &Method, values: &[&str]) -> Result<Option<u64>, MethodError> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                http::header::MAX_FORWARDS,
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        max_forwards(method, &h)
    }

    #[test]
    fn max_forwards_is_read_on_options_only() {
        assert_eq!(hops(&Method::OPTIONS, &[]), Ok(None));
        assert_eq!(hops(&Method::OPTIONS, &["0"]), Ok(Some(0)));
        assert_eq!(hops(&Method::OPTIONS, &["007"]), Ok(Some(7)));
        assert_eq!(hops(&Method::OPTIONS, &["70"]), Ok(Some(70)));
        assert_eq!(
            hops(&Method::OPTIONS, &["99999999999999999999999"]),
            Ok(Some(u64::MAX))
        );
        // Other methods: the field means nothing and is not read.
        assert_eq!(hops(&Method::GET, &["0"]), Ok(None));
        assert_eq!(hops(&Method::POST, &["x"]), Ok(None));
    }

    #[test]
    fn max_forwards_that_is_not_one_number_is_refused_with_400() {
        for bad in [
            vec![""],
            vec!["-1"],
            vec!["+1"],
            vec!["1 2"],
            vec!["1,2"],
            vec!["0x1"],
            vec!["1.0"],
            vec!["\u{661}"],
            vec!["1", "2"],
            vec!["0", "0"],
        ] {
            let e = hops(&Method::OPTIONS, &bad).unwrap_err();
            assert_eq!(e, MethodError::MaxForwards, "{bad:?}");
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
            assert_eq!(e.reason_code(), "max_forwards_invalid");
        }
    }
}
