//! Message framing checks (RFC 9112 §6, RFC 9113 §8.2.2) against request
//! smuggling: the gateway and the upstream must agree on where the body
//! ends, so every ambiguous framing is refused rather than repaired.
//!
//! [`check_framing`] judges the parsed header map; for HTTP/1, whose
//! parser hides part of the framing, [`crate::Http1FramingScanner`] judges
//! the raw byte stream, and its refusals are [`FramingError`]s too.

use http::header::{CONTENT_LENGTH, TE, TRANSFER_ENCODING};
use http::{HeaderMap, StatusCode, Version};

/// Headers that are connection-specific and so malformed in HTTP/2 and
/// HTTP/3 requests (RFC 9113 §8.2.2); `te` is handled apart (only
/// `trailers` is allowed).
pub const H2_CONNECTION_SPECIFIC_HEADERS: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Why the request's framing headers are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    #[error("http version is not supported")]
    UnsupportedVersion,
    #[error("request has both `transfer-encoding` and `content-length`")]
    TransferEncodingAndContentLength,
    #[error("request has more than one `content-length` value")]
    MultipleContentLength,
    #[error("`content-length` is not a decimal number")]
    BadContentLength,
    #[error("`transfer-encoding` must be exactly `chunked`")]
    UnsupportedTransferEncoding,
    #[error("`transfer-encoding` is not allowed in http/1.0")]
    TransferEncodingOnHttp10,
    #[error("connection-specific header `{name}` is not allowed in http/2")]
    ConnectionSpecificHeader { name: &'static str },
    /// The HTTP/1 stream scanner lost the message boundaries at or before
    /// this request; every later request on the connection is refused.
    #[error("cannot follow the http/1 request stream: {reason}")]
    Unparseable { reason: &'static str },
    /// No scanner verdict is waiting for this request (fail closed).
    #[error("no framing verdict for this request")]
    NoVerdict,
    /// The scanner's verdict does not match the request as parsed.
    #[error("request framing differs from the scanned request head")]
    VerdictMismatch,
    /// More request heads were read ahead than verdicts are kept for.
    #[error("more than {} pipelined requests ahead", crate::MAX_PENDING_VERDICTS)]
    TooManyPipelined,
}

impl FramingError {
    /// A stable, low-cardinality label for metrics.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::UnsupportedVersion => "unsupported_version",
            Self::TransferEncodingAndContentLength => "te_and_cl",
            Self::MultipleContentLength => "duplicate_content_length",
            Self::BadContentLength => "bad_content_length",
            Self::UnsupportedTransferEncoding => "bad_transfer_encoding",
            Self::TransferEncodingOnHttp10 => "te_on_http10",
            Self::ConnectionSpecificHeader { .. } => "h2_connection_header",
            Self::Unparseable { .. } => "framing_unparseable",
            Self::NoVerdict => "framing_unknown",
            Self::VerdictMismatch => "framing_mismatch",
            Self::TooManyPipelined => "framing_backlog",
        }
    }

    /// The status the gateway answers with: 501 for a transfer coding it
    /// does not implement (RFC 9112 §6.1), 505 for the version, else 400.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnsupportedVersion => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            Self::UnsupportedTransferEncoding => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Refuses ambiguous or unsupported request framing:
/// - HTTP/2 and HTTP/3: any connection-specific header
///   ([`H2_CONNECTION_SPECIFIC_HEADERS`]) and `te` other than `trailers`;
/// - both `Transfer-Encoding` and `Content-Length`;
/// - `Transfer-Encoding` on HTTP/1.0, in more than one field, or other than
///   exactly `chunked` (ASCII case-insensitive, no list);
/// - more than one `Content-Length` field or a list value, even if the
///   values are equal; a value that is not 1+ ASCII digits fitting a `u64`.
///
/// HTTP/0.9 is refused outright.
pub fn check_framing(headers: &HeaderMap, version: Version) -> Result<(), FramingError> {
    let multiplexed = match version {
        Version::HTTP_10 | Version::HTTP_11 => false,
        Version::HTTP_2 | Version::HTTP_3 => true,
        _ => return Err(FramingError::UnsupportedVersion),
    };
    if multiplexed {
        if let Some(name) = H2_CONNECTION_SPECIFIC_HEADERS
            .into_iter()
            .find(|name| headers.contains_key(*name))
        {
            return Err(FramingError::ConnectionSpecificHeader { name });
        }
        if headers
            .get_all(TE)
            .iter()
            .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"trailers"))
        {
            return Err(FramingError::ConnectionSpecificHeader { name: "te" });
        }
    }

    let mut transfer_encodings = headers.get_all(TRANSFER_ENCODING).iter();
    let mut content_lengths = headers.get_all(CONTENT_LENGTH).iter();
    let first_te = transfer_encodings.next();
    let first_cl = content_lengths.next();

    if first_te.is_some() && first_cl.is_some() {
        return Err(FramingError::TransferEncodingAndContentLength);
    }
    if let Some(te) = first_te {
        if version == Version::HTTP_10 {
            return Err(FramingError::TransferEncodingOnHttp10);
        }
        if transfer_encodings.next().is_some() || !te.as_bytes().eq_ignore_ascii_case(b"chunked") {
            return Err(FramingError::UnsupportedTransferEncoding);
        }
    }
    if let Some(cl) = first_cl {
        if content_lengths.next().is_some() || cl.as_bytes().contains(&b',') {
            return Err(FramingError::MultipleContentLength);
        }
        let digits = cl.as_bytes();
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(FramingError::BadContentLength);
        }
        cl.to_str()
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(FramingError::BadContentLength)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
