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

use http::{Method, StatusCode};

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
}

impl MethodError {
    /// A stable, low-cardinality label for metrics.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::NotUppercase => "method_not_uppercase",
            Self::Trace => "method_trace",
        }
    }

    /// 400 for a method spelled in lowercase, 405 for `TRACE`.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotUppercase => StatusCode::BAD_REQUEST,
            Self::Trace => StatusCode::METHOD_NOT_ALLOWED,
        }
    }
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
}
