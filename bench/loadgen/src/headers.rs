//! Extra request headers: fixed ones (`--header NAME:VALUE`, e.g. an
//! `Authorization: Bearer` token) sent on every request, and at most one
//! rotating header (`--rotate-header NAME:FILE`) whose value is the next
//! line of a file on each request, so a server cannot answer from a cache
//! keyed by the value.
//!
//! Header values may be credentials: errors name the header and the
//! problem, never the value.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::LoadgenError;

/// Most `--header` arguments: a benchmark request with a few credentials,
/// not a header-count stress test.
pub const MAX_EXTRA_HEADERS: usize = 32;
/// Longest header value: twice the largest bearer token Portcullis can be
/// configured to accept (64 KiB), so any real token fits.
pub const MAX_HEADER_VALUE_BYTES: usize = 128 * 1024;
/// Most values in a rotation file: enough distinct tokens to miss any
/// verified-token cache a benchmark configures.
pub const MAX_ROTATING_VALUES: usize = 100_000;
/// Largest rotation file read into memory.
pub const MAX_ROTATING_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Headers the load generator sets itself or that change how the request
/// is framed or the connection is kept; setting them would measure
/// something else.
pub const RESERVED_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "expect",
];

fn bad(name: &str, reason: &'static str) -> LoadgenError {
    LoadgenError::Header {
        name: name.to_owned(),
        reason,
    }
}

/// Splits `NAME:VALUE` at the first `:` and checks the name.
fn split(arg: &str) -> Result<(HeaderName, &str), LoadgenError> {
    let Some((name, rest)) = arg.split_once(':') else {
        return Err(LoadgenError::HeaderArg("expected `NAME:VALUE`"));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(LoadgenError::HeaderArg("empty header name"));
    }
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| bad(name, "not a valid header name"))?;
    if RESERVED_HEADERS.contains(&parsed.as_str()) {
        return Err(bad(parsed.as_str(), "set by the load generator"));
    }
    Ok((parsed, rest))
}

/// A value after the `:` with optional surrounding blanks removed, as in
/// an HTTP header field.
fn value(name: &HeaderName, raw: &str) -> Result<HeaderValue, LoadgenError> {
    let v = raw.trim_matches([' ', '\t']);
    if v.len() > MAX_HEADER_VALUE_BYTES {
        return Err(bad(name.as_str(), "value too long"));
    }
    HeaderValue::from_str(v).map_err(|_| bad(name.as_str(), "value has forbidden characters"))
}

/// Parses one `--header` argument, `NAME:VALUE` (blanks after the colon
/// are dropped, so `authorization: Bearer x` works as written).
pub fn parse_header(arg: &str) -> Result<(HeaderName, HeaderValue), LoadgenError> {
    let (name, rest) = split(arg)?;
    let v = value(&name, rest)?;
    Ok((name, v))
}

/// A header whose value changes on every request, cycling through a list.
#[derive(Debug)]
pub struct Rotating {
    name: HeaderName,
    values: Vec<HeaderValue>,
    next: AtomicUsize,
}

impl Rotating {
    /// A rotation over `values`, which must not be empty.
    pub fn new(name: HeaderName, values: Vec<HeaderValue>) -> Result<Self, LoadgenError> {
        if values.is_empty() {
            return Err(bad(name.as_str(), "no values to rotate through"));
        }
        if values.len() > MAX_ROTATING_VALUES {
            return Err(bad(name.as_str(), "too many values to rotate through"));
        }
        Ok(Self {
            name,
            values,
            next: AtomicUsize::new(0),
        })
    }

    /// Parses `--rotate-header NAME:FILE`: one value per non-empty line.
    pub fn from_arg(arg: &str) -> Result<Self, LoadgenError> {
        let (name, path) = split(arg)?;
        let path = Path::new(path.trim());
        let unreadable = |detail: String| LoadgenError::HeaderFile {
            path: path.display().to_string(),
            detail,
        };
        let len = std::fs::metadata(path)
            .map_err(|e| unreadable(e.to_string()))?
            .len();
        if len > MAX_ROTATING_FILE_BYTES {
            return Err(unreadable(format!(
                "larger than {MAX_ROTATING_FILE_BYTES} bytes"
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
        let values = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| value(&name, l))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(name, values)
    }

    /// The name of the rotating header.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }

    /// Number of distinct values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Never true: an empty rotation cannot be built.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The next value, round robin over every caller.
    pub fn next_value(&self) -> Option<&HeaderValue> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.values.len();
        self.values.get(i)
    }
}

/// Everything added to each request besides `Host`.
#[derive(Debug, Default)]
pub struct ExtraHeaders {
    fixed: Vec<(HeaderName, HeaderValue)>,
    rotating: Option<Rotating>,
}

impl ExtraHeaders {
    /// `fixed` are appended in order (a name given twice is sent twice);
    /// `rotating` is appended after them.
    pub fn new(
        fixed: Vec<(HeaderName, HeaderValue)>,
        rotating: Option<Rotating>,
    ) -> Result<Self, LoadgenError> {
        if fixed.len() > MAX_EXTRA_HEADERS {
            return Err(LoadgenError::OutOfBounds {
                what: "header count",
                value: fixed.len().to_string(),
                min: "0".to_owned(),
                max: MAX_EXTRA_HEADERS.to_string(),
            });
        }
        Ok(Self { fixed, rotating })
    }

    /// Parses the `--header` and `--rotate-header` arguments.
    pub fn from_args(headers: &[String], rotate: Option<&str>) -> Result<Self, LoadgenError> {
        let fixed = headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<Result<Vec<_>, _>>()?;
        let rotating = rotate.map(Rotating::from_arg).transpose()?;
        Self::new(fixed, rotating)
    }

    /// The fixed headers, in order.
    pub fn fixed(&self) -> &[(HeaderName, HeaderValue)] {
        &self.fixed
    }

    /// The rotating header, if any.
    pub fn rotating(&self) -> Option<&Rotating> {
        self.rotating.as_ref()
    }

    /// Adds the headers of the next request to `map`.
    pub fn apply(&self, map: &mut HeaderMap) {
        for (name, value) in &self.fixed {
            map.append(name.clone(), value.clone());
        }
        if let Some(r) = &self.rotating {
            if let Some(v) = r.next_value() {
                map.append(r.name.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests;
