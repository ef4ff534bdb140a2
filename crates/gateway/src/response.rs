//! The one place that turns a refusal into a client response: a status
//! and a generic body. The precise reason goes to the log, the audit
//! record and a metric, never to the client.

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::upstream::Body;

/// Why the gateway answered instead of the upstream.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    /// Reason code for metrics and audit (fixed set, never client text).
    pub(crate) code: &'static str,
    /// Operator-facing detail for the log and the audit record.
    pub(crate) detail: String,
    /// The policy rule involved (an explicit deny), if any.
    pub(crate) rule: Option<Box<str>>,
    /// Policy denials and bad requests are `deny`; gateway or upstream
    /// faults are `error`.
    pub(crate) is_error: bool,
    /// The `WWW-Authenticate` challenge of a 401 (RFC 6750 section 3).
    pub(crate) challenge: Option<&'static str>,
    /// Headers the answer carries (a login redirect's `Location` and
    /// cookies).
    pub(crate) headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// The session store's reason code, when the store failed.
    pub(crate) store_reason: Option<&'static str>,
}

impl Refusal {
    pub(crate) fn deny(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            rule: None,
            is_error: false,
            challenge: None,
            headers: Vec::new(),
            store_reason: None,
        }
    }

    /// A 401 with a Bearer challenge; the client learns nothing more.
    pub(crate) fn unauthorized(
        code: &'static str,
        challenge: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            challenge: Some(challenge),
            ..Self::deny(StatusCode::UNAUTHORIZED, code, detail)
        }
    }

    pub(crate) fn error(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            rule: None,
            is_error: true,
            challenge: None,
            headers: Vec::new(),
            store_reason: None,
        }
    }
}

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A generic response for `status`: the reason phrase and nothing else.
pub(crate) fn generic(status: StatusCode, request_id: &str) -> Response<Body> {
    let text = format!(
        "{}\n",
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    );
    let mut r = Response::new(full(text));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    if let Ok(v) = http::HeaderValue::from_str(request_id) {
        h.insert(crate::names::REQUEST_ID, v);
    }
    if status == StatusCode::MISDIRECTED_REQUEST || status == StatusCode::BAD_REQUEST {
        h.insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    r
}

pub(crate) fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}
