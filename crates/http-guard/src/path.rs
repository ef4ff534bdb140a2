//! Path normalisation: the one path that is both judged and forwarded.
//!
//! See the crate docs and `docs/path-normalisation.md` for the rules and
//! the attack each one prevents.

use std::fmt;

use http::StatusCode;

use crate::limits::{MAX_PATH_LEN, MAX_PATH_SEGMENTS, MAX_QUERY_LEN};

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Why a path or query is refused. Every variant is answered with 400,
/// except the length limits (414).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// Empty, or does not start with `/` (absolute-, authority- or
    /// asterisk-form, or a relative path).
    #[error("path must start with `/`")]
    NotOriginForm,
    /// A raw `?` or `#`: the caller passed more than the path component.
    #[error("path holds a raw `?` or `#`")]
    QueryOrFragment,
    /// The raw or the normalised path is longer than [`MAX_PATH_LEN`].
    #[error("path is longer than {max} bytes")]
    TooLong { max: usize },
    /// The raw path has more than [`MAX_PATH_SEGMENTS`] segments.
    #[error("path has more than {max} segments")]
    TooManySegments { max: usize },
    /// The query is longer than [`MAX_QUERY_LEN`].
    #[error("query is longer than {max} bytes")]
    QueryTooLong { max: usize },
    /// A `%` not followed by two hex digits.
    #[error("invalid percent-encoding in path")]
    BadPercentEncoding,
    /// `%2F`: a slash the upstream may decode into a separator.
    #[error("encoded slash `%2F` in path")]
    EncodedSlash,
    /// A raw `\`, which some servers treat as `/`.
    #[error("backslash in path")]
    Backslash,
    /// `%5C`, which some servers decode and then treat as `/`.
    #[error("encoded backslash `%5C` in path")]
    EncodedBackslash,
    /// A raw `;` or `%3B`: path parameters (`/admin;x/..`) are parsed
    /// differently by Tomcat, Jetty, Spring and the policy.
    #[error("path parameter delimiter `;` in path")]
    PathParameter,
    /// A control character (0x00–0x1F, 0x7F), raw or percent-encoded.
    #[error("control character `0x{byte:02X}` in request target")]
    ControlChar { byte: u8 },
    /// A raw byte outside printable ASCII: a space or a non-ASCII byte
    /// (non-ASCII must be sent percent-encoded).
    #[error("raw byte `0x{byte:02X}` outside printable ascii in request target")]
    NonAscii { byte: u8 },
    /// A `..` segment that would climb above the root.
    #[error("`..` segment climbs above the root")]
    AboveRoot,
}

impl PathError {
    /// A stable, low-cardinality label for metrics.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::NotOriginForm | Self::QueryOrFragment => "not_origin_form",
            Self::TooLong { .. } | Self::TooManySegments { .. } | Self::QueryTooLong { .. } => {
                "too_long"
            }
            Self::BadPercentEncoding => "bad_percent_encoding",
            Self::EncodedSlash => "encoded_slash",
            Self::Backslash | Self::EncodedBackslash => "backslash",
            Self::PathParameter => "path_parameter",
            Self::ControlChar { .. } => "control_char",
            Self::NonAscii { .. } => "non_ascii",
            Self::AboveRoot => "above_root",
        }
    }

    /// The status the gateway answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooLong { .. } | Self::TooManySegments { .. } | Self::QueryTooLong { .. } => {
                StatusCode::URI_TOO_LONG
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A path in normal form: judged by the policy and forwarded unchanged.
///
/// INVARIANT: `path` is the output of [`normalize_path`], so it starts with
/// `/`, holds only printable ASCII, has no empty or dot segments except a
/// final empty one (trailing slash), no `\`, `;`, `%2F`, `%5C`, escaped
/// control characters or escaped unreserved characters, and all escapes use
/// uppercase hex. Normalising it again returns it unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NormalizedPath {
    path: String,
    changed: bool,
}

impl NormalizedPath {
    /// The normalised path.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// Whether normalisation changed the raw path (for debug logs and
    /// metrics; the normalised path is forwarded either way).
    pub fn was_changed(&self) -> bool {
        self.changed
    }

    /// The normalised path as an owned string.
    pub fn into_string(self) -> String {
        self.path
    }
}

impl fmt::Display for NormalizedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

impl AsRef<str> for NormalizedPath {
    fn as_ref(&self) -> &str {
        &self.path
    }
}

impl PartialEq<str> for NormalizedPath {
    fn eq(&self, other: &str) -> bool {
        self.path == other
    }
}

impl PartialEq<&str> for NormalizedPath {
    fn eq(&self, other: &&str) -> bool {
        self.path == *other
    }
}

/// Normalises the path component of an origin-form request target (without
/// the query). The result is the only path the policy may judge and the
/// gateway may forward.
///
/// Rules, in the order they bite:
/// - the path must start with `/` and hold no raw `?` or `#`;
/// - at most [`MAX_PATH_LEN`] bytes (before and after) and
///   [`MAX_PATH_SEGMENTS`] segments;
/// - raw `\`, `;`, controls, spaces and non-ASCII bytes are refused;
/// - escapes are decoded once, and only for unreserved characters
///   (`A-Z a-z 0-9 - . _ ~`); `%2F`, `%5C`, `%3B` and escaped controls are
///   refused; every other escape is kept with uppercase hex (`%3f` →
///   `%3F`), so `%252e` stays `%252e`;
/// - printable characters RFC 3986 does not allow raw in a path
///   (`"`, `<`, `>`, `[`, `]`, `^`, `{`, `|`, `}` and the backquote) are
///   percent-encoded, so their raw and escaped spellings are one path;
/// - empty segments are merged (`//a///b` → `/a/b`), dot segments removed
///   per RFC 3986 §5.2.4, and a `..` above the root is an error;
/// - a trailing slash is kept.
pub fn normalize_path(raw: &str) -> Result<NormalizedPath, PathError> {
    let rest = raw.strip_prefix('/').ok_or(PathError::NotOriginForm)?;
    if raw.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong { max: MAX_PATH_LEN });
    }
    if raw.bytes().filter(|b| *b == b'/').count() > MAX_PATH_SEGMENTS {
        return Err(PathError::TooManySegments {
            max: MAX_PATH_SEGMENTS,
        });
    }

    // INVARIANT: during the loop `out` is empty or `/seg(/seg)*` with every
    // segment non-empty and not a dot segment, so the last segment starts
    // at `out.rfind('/')`.
    let mut out = String::with_capacity(raw.len());
    let mut trailing_slash = false;
    let mut pieces = rest.split('/').peekable();
    while let Some(piece) = pieces.next() {
        let seg_start = out.len();
        out.push('/');
        decode_segment(piece, &mut out)?;
        let is_dot_or_empty = match out.get(seg_start..) {
            Some("/" | "/.") => {
                out.truncate(seg_start);
                true
            }
            Some("/..") => {
                out.truncate(seg_start);
                let parent = out.rfind('/').ok_or(PathError::AboveRoot)?;
                out.truncate(parent);
                true
            }
            _ => false,
        };
        // A final empty or dot segment leaves the path ending in `/`.
        trailing_slash = is_dot_or_empty && pieces.peek().is_none();
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    if out.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong { max: MAX_PATH_LEN });
    }
    let changed = out != raw;
    Ok(NormalizedPath { path: out, changed })
}

/// Checks a query (without the `?`), which is forwarded unchanged: at most
/// [`MAX_QUERY_LEN`] bytes, no raw control characters, spaces, non-ASCII
/// bytes or `#`. Escapes in the query are not decoded or checked: the
/// policy does not judge the query and the upstream parses it.
pub fn check_query(q: &str) -> Result<(), PathError> {
    if q.len() > MAX_QUERY_LEN {
        return Err(PathError::QueryTooLong { max: MAX_QUERY_LEN });
    }
    for b in q.bytes() {
        match b {
            0x00..=0x1F | 0x7F => return Err(PathError::ControlChar { byte: b }),
            b' ' | 0x80..=0xFF => return Err(PathError::NonAscii { byte: b }),
            b'#' => return Err(PathError::QueryOrFragment),
            _ => {}
        }
    }
    Ok(())
}

/// Appends the normal form of one segment (no `/` in it) to `out`.
fn decode_segment(piece: &str, out: &mut String) -> Result<(), PathError> {
    let mut bytes = piece.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = bytes.next().and_then(hex_value);
            let lo = bytes.next().and_then(hex_value);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PathError::BadPercentEncoding);
            };
            push_decoded((hi << 4) | lo, out)?;
        } else {
            push_raw(b, out)?;
        }
    }
    Ok(())
}

/// Handles the byte an escape decodes to.
fn push_decoded(b: u8, out: &mut String) -> Result<(), PathError> {
    match b {
        b'/' => Err(PathError::EncodedSlash),
        b'\\' => Err(PathError::EncodedBackslash),
        b';' => Err(PathError::PathParameter),
        0x00..=0x1F | 0x7F => Err(PathError::ControlChar { byte: b }),
        _ if is_unreserved(b) => {
            out.push(char::from(b));
            Ok(())
        }
        _ => {
            push_escape(b, out);
            Ok(())
        }
    }
}

/// Handles a raw (not escaped) byte of a segment.
fn push_raw(b: u8, out: &mut String) -> Result<(), PathError> {
    match b {
        b'\\' => Err(PathError::Backslash),
        b';' => Err(PathError::PathParameter),
        b'?' | b'#' => Err(PathError::QueryOrFragment),
        0x00..=0x1F | 0x7F => Err(PathError::ControlChar { byte: b }),
        b' ' | 0x80..=0xFF => Err(PathError::NonAscii { byte: b }),
        // Printable, but not allowed raw in an RFC 3986 path.
        b'"' | b'<' | b'>' | b'[' | b']' | b'^' | b'`' | b'{' | b'|' | b'}' => {
            push_escape(b, out);
            Ok(())
        }
        // Unreserved, sub-delims other than `;`, `:` and `@`.
        _ => {
            out.push(char::from(b));
            Ok(())
        }
    }
}

fn push_escape(b: u8, out: &mut String) {
    out.push('%');
    for nibble in [b >> 4, b & 0x0F] {
        let digit = HEX_UPPER.get(usize::from(nibble)).copied().unwrap_or(b'0');
        out.push(char::from(digit));
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests;
