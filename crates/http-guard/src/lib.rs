//! Request hygiene for the Portcullis gateway.
//!
//! Pure functions over [`http`] types, called by the gateway before the
//! policy decision. The gateway forwards exactly what they return, so the
//! upstream receives the path and headers that were judged:
//!
//! - [`normalize_path`] turns the raw path into the one [`NormalizedPath`]
//!   that is judged and forwarded; [`check_query`] vets the query, which
//!   is forwarded unchanged;
//! - [`effective_host`] resolves the host from the request target and the
//!   `Host` header (RFC 9112 §3.2), and [`host_matches_sni`] ties it to the
//!   TLS connection;
//! - [`check_framing`] refuses ambiguous message framing (request
//!   smuggling); for HTTP/1, [`Http1FramingScanner`] judges the framing of
//!   every request head on the connection's byte stream, where the parser
//!   cannot hide a `Content-Length` next to `Transfer-Encoding` or a
//!   duplicate `Content-Length`, and [`VerdictQueue`] pairs each verdict
//!   with its parsed request;
//! - [`sanitize_request_headers`] removes hop-by-hop, gateway-namespace
//!   and spoofable identity headers; [`sanitize_response_headers`] removes
//!   hop-by-hop headers from upstream responses;
//! - [`check_header_limits`] and [`check_uri_len`] enforce the named
//!   limits ([`MAX_URI_LEN`], [`MAX_HEADER_COUNT`], ...).
//!
//! Every error has a `reason_code()` (a stable metrics label) and a
//! `status()` (the response the gateway gives; the detail goes to the log,
//! never to the client).
//!
//! This crate does no I/O and no async work (the scanner is fed the bytes
//! the gateway reads), does not decide anything about identity or
//! authorization, does not parse bodies (the scanner reads chunk framing
//! but never body content), and does not add headers: the gateway adds
//! its own headers after sanitising.
//!
//! # Path normalisation
//!
//! One pass, left to right, then dot-segment removal; the output is a fixed
//! point (normalising it again changes nothing). Anything a server might
//! read in more than one way is refused instead of repaired:
//!
//! | input | result | why |
//! |---|---|---|
//! | `admin`, `*`, empty | error `not_origin_form` | only origin-form paths are judged |
//! | `/admin/..;/`, `/..;/admin`, `/a%3Bx` | error `path_parameter` | Tomcat/Jetty strip `;params` after the proxy judged the path |
//! | `/%2e%2e/admin`, `/.%2e/admin`, `/..` | error `above_root` | escapes of unreserved characters are decoded, then `..` may not climb above `/` |
//! | `/a/./b/../c` | `/a/c` | RFC 3986 §5.2.4 dot-segment removal |
//! | `/admin/%2e/` | `/admin/` | `%2e` is `.` |
//! | `//admin`, `//a///b` | `/admin`, `/a/b` | empty segments merged, so `//admin` is judged as `/admin` |
//! | `/admin%2f..`, `/admin%2F` | error `encoded_slash` | servers that decode `%2F` see another path |
//! | `/admin\..\`, `/a%5Cb` | error `backslash` | IIS, Windows and some frameworks treat `\` as `/` |
//! | `/admin%00.json`, `/a%0Ab` | error `control_char` | NUL truncation, header/log injection |
//! | `/a b`, `/é` | error `non_ascii` | raw bytes must be percent-encoded |
//! | `/%252e%252e/` | `/%252e%252e/` | one decoding pass only; `%25` stays encoded |
//! | `/a%3fb`, `/caf%c3%a9` | `/a%3Fb`, `/caf%C3%A9` | reserved and non-ASCII escapes kept, hex uppercased |
//! | `/%61dmin` | `/admin` | unreserved escapes decoded, one spelling per path |
//! | `/a\|b` | `/a%7Cb` | characters not allowed raw are encoded, one spelling per path |
//! | `/ADMIN` | `/ADMIN` | paths are case-sensitive |
//! | `/a/b/` | `/a/b/` | the trailing slash is kept |
//! | `/%`, `/%4`, `/%zz` | error `bad_percent_encoding` | invalid escapes are ambiguous |
//!
//! Reserved characters other than `/`, `\` and `;` (`:@!$&'()*+,=`) are
//! kept as sent, raw or escaped: RFC 3986 does not make the two spellings
//! equivalent, so a policy rule naming such a path matches the spelling it
//! names. The full table with the attack each rule prevents is in
//! `docs/path-normalisation.md`.

mod form;
mod framing;
mod h1_stream;
mod h2_refusals;
mod limits;
mod method;
mod path;
mod sanitize;
mod target;

pub use form::{
    form_component, form_decode, form_encode, form_encode_into, query_param, BAD_PERCENT_ENCODING,
    NOT_UTF8,
};
pub use framing::{check_framing, FramingError, H2_CONNECTION_SPECIFIC_HEADERS};
pub use h1_stream::{
    BodyFraming, Http1FramingScanner, Verdict, VerdictQueue, MAX_HEAD_BYTES, MAX_PENDING_VERDICTS,
};
pub use h2_refusals::{
    H2RefusalScanner, RefusalKind, StreamRefusal, BARE_STATUS_MAX, MAX_PENDING_BARE,
};
pub use limits::{
    check_header_limits, check_uri_len, LimitError, MAX_HEADER_BYTES, MAX_HEADER_COUNT,
    MAX_HEADER_VALUE_LEN, MAX_PATH_LEN, MAX_PATH_SEGMENTS, MAX_QUERY_LEN, MAX_URI_LEN,
};
pub use method::{check_method, is_tchar, max_forwards, MethodError};
pub use path::{check_query, normalize_path, NormalizedPath, PathError};
pub use sanitize::{
    canonical as canonical_header_name, is_protected_header, sanitize_request_headers,
    sanitize_response_headers, sanitize_trailers, RemovalReason, SanitizeReport,
    CONNECTION_OPTION_EXEMPT, GATEWAY_HEADER_PREFIX, HOP_BY_HOP_HEADERS, IDENTITY_HEADERS,
    IDENTITY_HEADER_PREFIXES, TRAILER_FORBIDDEN_FIELDS,
};
pub use target::{effective_host, host_matches_sni, TargetError, MAX_HOST_LEN};

/// What every refusal of this crate tells its caller: the status to
/// answer with and a stable, low-cardinality reason code (metrics, audit);
/// its `Display` is the detail for the operator, never for the client.
pub trait GuardRefusal: std::fmt::Display {
    fn status(&self) -> http::StatusCode;
    fn reason_code(&self) -> &'static str;
}

macro_rules! guard_refusal {
    ($($t:ty),*) => {$(
        impl GuardRefusal for $t {
            fn status(&self) -> http::StatusCode {
                <$t>::status(self)
            }
            fn reason_code(&self) -> &'static str {
                <$t>::reason_code(self)
            }
        }
    )*};
}

guard_refusal!(
    FramingError,
    LimitError,
    MethodError,
    PathError,
    TargetError
);
