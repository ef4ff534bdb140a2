//! Named size limits on the request target and the header section.

use http::{HeaderMap, HeaderName, StatusCode, Uri};

/// Longest request target, in bytes: RFC 9112 §3 recommends supporting at
/// least 8000 octets of request-line, and longer targets are almost always
/// probes or buffer-exhaustion attempts.
pub const MAX_URI_LEN: usize = 8 * 1024;
/// Longest path, in bytes (raw and normalised): half of [`MAX_URI_LEN`], far
/// above any route a policy names, and it bounds the normaliser's work.
pub const MAX_PATH_LEN: usize = 4 * 1024;
/// Most `/`-separated segments in a raw path: bounds dot-segment removal and
/// the policy's segment matching; real routes have a handful.
pub const MAX_PATH_SEGMENTS: usize = 128;
/// Longest query, in bytes: leaves 2 KiB of [`MAX_URI_LEN`] for the path and
/// still fits SAML redirect-binding and OAuth callback queries.
pub const MAX_QUERY_LEN: usize = 6 * 1024;
/// Most header fields (each value of a repeated field counts): browsers send
/// about 20; 100 is hyper's and Envoy's default order of magnitude.
pub const MAX_HEADER_COUNT: usize = 100;
/// Most bytes in the whole header section, counted as `name: value\r\n`:
/// room for large cookies and bearer tokens, small enough to bound memory
/// per connection.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Longest single header value, in bytes: the common proxy default (nginx
/// `large_client_header_buffers`), so one field cannot take the whole
/// [`MAX_HEADER_BYTES`] budget.
pub const MAX_HEADER_VALUE_LEN: usize = 8 * 1024;

// The limits nest: each part fits in the whole.
const _: () = assert!(MAX_PATH_LEN < MAX_URI_LEN && MAX_QUERY_LEN < MAX_URI_LEN);
const _: () = assert!(MAX_HEADER_VALUE_LEN < MAX_HEADER_BYTES);

/// Bytes a field line adds besides its name and value: `": "` and CRLF.
const FIELD_LINE_OVERHEAD: usize = 4;

/// A limit on the request target or the header section was exceeded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    #[error("request target is longer than {max} bytes")]
    UriTooLong { max: usize },
    #[error("request has more than {max} header fields")]
    TooManyHeaders { max: usize },
    #[error("header section is larger than {max} bytes")]
    HeadersTooLarge { max: usize },
    #[error("value of header `{name}` is longer than {max} bytes")]
    HeaderValueTooLong { name: HeaderName, max: usize },
}

impl LimitError {
    /// A stable, low-cardinality label for metrics.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::UriTooLong { .. } => "uri_too_long",
            Self::TooManyHeaders { .. } => "too_many_headers",
            Self::HeadersTooLarge { .. } => "headers_too_large",
            Self::HeaderValueTooLong { .. } => "header_value_too_long",
        }
    }

    /// The status the gateway answers with: 414 for the target, 431 for
    /// the header section.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            Self::TooManyHeaders { .. }
            | Self::HeadersTooLarge { .. }
            | Self::HeaderValueTooLong { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }
}

/// Checks the header section against `max_count` fields and `max_bytes`
/// bytes (each field counted as `name: value\r\n`), and every value against
/// [`MAX_HEADER_VALUE_LEN`]. Callers normally pass [`MAX_HEADER_COUNT`] and
/// [`MAX_HEADER_BYTES`]; the gateway answers 431 on error.
pub fn check_header_limits(
    headers: &HeaderMap,
    max_count: usize,
    max_bytes: usize,
) -> Result<(), LimitError> {
    // `len` counts every value, so a repeated field cannot slip past.
    if headers.len() > max_count {
        return Err(LimitError::TooManyHeaders { max: max_count });
    }
    let mut total: usize = 0;
    for (name, value) in headers {
        if value.len() > MAX_HEADER_VALUE_LEN {
            return Err(LimitError::HeaderValueTooLong {
                name: name.clone(),
                max: MAX_HEADER_VALUE_LEN,
            });
        }
        total = total
            .saturating_add(name.as_str().len())
            .saturating_add(value.len())
            .saturating_add(FIELD_LINE_OVERHEAD);
        if total > max_bytes {
            return Err(LimitError::HeadersTooLarge { max: max_bytes });
        }
    }
    Ok(())
}

/// Checks the whole request URI (scheme, authority, path and query, as
/// present) against [`MAX_URI_LEN`]; the gateway answers 414 on error.
pub fn check_uri_len(uri: &Uri) -> Result<(), LimitError> {
    let scheme = uri.scheme_str().map_or(0, |s| s.len().saturating_add(3));
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    let path_and_query = uri.path_and_query().map_or(0, |p| p.as_str().len());
    let len = scheme
        .saturating_add(authority)
        .saturating_add(path_and_query);
    if len > MAX_URI_LEN {
        return Err(LimitError::UriTooLong { max: MAX_URI_LEN });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
