//! Path patterns (`/api/tenants/{tenant}/**`) and request path splitting.
//!
//! A pattern is `/` followed by segments separated by `/`. A segment is a
//! literal (matched exactly, case-sensitive), `{name}` (exactly one
//! non-empty segment, captured as `name`), `*` (exactly one non-empty
//! segment) or `**` (zero or more segments, only as the last segment).
//! Patterns do not end with `/`; a single trailing `/` on a request path is
//! ignored, so `/a/b/` matches like `/a/b`.

use crate::error::PolicyErrorKind;
use crate::name::Name;
use crate::MAX_PATTERN_SEGMENTS;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Literal(Box<str>),
    /// `{name}`: one segment, captured.
    Param(Name),
    /// `*`: one segment, not captured.
    Star,
    /// `**`: the rest of the path, zero or more segments; always last.
    Rest,
}

#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    source: Box<str>,
    segments: Vec<Segment>,
}

impl Pattern {
    /// The pattern that matches every path.
    pub(crate) fn any() -> Self {
        Self {
            source: "/**".into(),
            segments: vec![Segment::Rest],
        }
    }

    pub(crate) fn parse(src: &str) -> Result<Self, PolicyErrorKind> {
        let invalid = |m: String| PolicyErrorKind::InvalidPattern(m);
        let Some(rest) = src.strip_prefix('/') else {
            return Err(invalid(format!("pattern `{src}` must start with `/`")));
        };
        let mut segments = Vec::new();
        if rest.is_empty() {
            return Ok(Self {
                source: src.into(),
                segments,
            });
        }
        if rest.ends_with('/') {
            return Err(invalid(format!(
                "pattern `{src}` must not end with `/` (a trailing slash on a request is ignored)"
            )));
        }
        let count = rest.split('/').count();
        if count > MAX_PATTERN_SEGMENTS {
            return Err(PolicyErrorKind::TooMany {
                what: "path segments",
                count,
                max: MAX_PATTERN_SEGMENTS,
            });
        }
        let mut params: Vec<&str> = Vec::new();
        let mut parts = rest.split('/').peekable();
        while let Some(seg) = parts.next() {
            let parsed = match seg {
                "" => return Err(invalid(format!("pattern `{src}` has an empty segment"))),
                "**" => {
                    if parts.peek().is_some() {
                        return Err(invalid("`**` may only be the last segment".to_owned()));
                    }
                    Segment::Rest
                }
                "*" => Segment::Star,
                "." | ".." => {
                    return Err(invalid(format!(
                        "segment `{seg}` never matches a normalised path"
                    )))
                }
                _ => {
                    if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        validate_param_name(name)?;
                        if params.contains(&name) {
                            return Err(PolicyErrorKind::DuplicateParam(name.to_owned()));
                        }
                        params.push(name);
                        Segment::Param(Name::new(name))
                    } else {
                        validate_literal(seg)?;
                        Segment::Literal(seg.into())
                    }
                }
            };
            segments.push(parsed);
        }
        Ok(Self {
            source: src.into(),
            segments,
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether every path it matches starts with the segments `prefix`:
    /// they are literal leading segments of the pattern.
    pub(crate) fn matches_only_under(&self, prefix: &[&str]) -> bool {
        prefix.len() <= self.segments.len()
            && prefix
                .iter()
                .zip(&self.segments)
                .all(|(want, s)| matches!(s, Segment::Literal(l) if **l == **want))
    }

    /// Whether some path whose first segments are `prefix` matches.
    pub(crate) fn can_match_under(&self, prefix: &[&str]) -> bool {
        let mut segments = self.segments().iter();
        for want in prefix {
            match segments.next() {
                Some(Segment::Literal(l)) if **l == **want => {}
                Some(Segment::Literal(_)) | None => return false,
                Some(Segment::Param(_) | Segment::Star) => {}
                Some(Segment::Rest) => return true,
            }
        }
        true
    }

    pub(crate) fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The request segment index each parameter captures, in pattern order.
    pub(crate) fn captures(&self) -> Vec<(Name, usize)> {
        self.segments
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Segment::Param(name) => Some((name.clone(), i)),
                _ => None,
            })
            .collect()
    }
}

fn validate_param_name(name: &str) -> Result<(), PolicyErrorKind> {
    if name.is_empty() {
        return Err(PolicyErrorKind::InvalidPattern(
            "parameter name is empty (`{}`)".to_owned(),
        ));
    }
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !first_ok
        || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        || name.len() > crate::MAX_NAME_LEN
    {
        return Err(PolicyErrorKind::InvalidPattern(format!(
            "parameter name `{name}` must be a letter or `_` followed by letters, digits or `_`"
        )));
    }
    Ok(())
}

fn validate_literal(seg: &str) -> Result<(), PolicyErrorKind> {
    if seg.contains(['{', '}', '*']) {
        return Err(PolicyErrorKind::InvalidPattern(format!(
            "segment `{seg}` mixes text with `{{`, `}}` or `*`; a wildcard must be a whole segment"
        )));
    }
    if seg.contains(['?', '#']) || seg.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(PolicyErrorKind::InvalidPattern(format!(
            "segment `{}` holds `?`, `#`, whitespace or a control character, which never appear in a normalised path",
            seg.escape_default()
        )));
    }
    match normal_form(seg) {
        Ok(normal) if normal == seg => Ok(()),
        Ok(normal) => Err(PolicyErrorKind::InvalidPattern(format!(
            "segment `{}` never appears in a normalised path, which spells it `{normal}`: write that",
            seg.escape_default()
        ))),
        Err(why) => Err(PolicyErrorKind::InvalidPattern(format!(
            "segment `{}` never appears in a normalised path: {why}",
            seg.escape_default()
        ))),
    }
}

/// A literal segment as the gateway's path normalisation
/// ([`portcullis_http_guard::normalize_path`], the very function that
/// normalises request paths before the decision) spells it, or why no
/// request path holds it. Request paths are matched as normalised, byte
/// for byte, so a literal in any other spelling would never match: a deny
/// rule naming `/café` or `/%7Eadmin` would be dead while `policy check`
/// said it was fine.
///
/// Non-ASCII characters, which a request can only send percent-encoded,
/// are encoded (UTF-8) first, so the answer for `café` is the spelling to
/// write (`caf%C3%A9`) rather than a refusal.
pub(crate) fn normal_form(seg: &str) -> Result<String, String> {
    // An empty segment (`/a/` has one) is judged as it is.
    if seg.is_empty() {
        return Ok(String::new());
    }
    if seg == "." || seg == ".." {
        return Err("dot segments are removed".to_owned());
    }
    let mut path = String::with_capacity(seg.len() + 1);
    path.push('/');
    for c in seg.chars() {
        if c.is_ascii() {
            path.push(c);
        } else {
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                path.push_str(&format!("%{b:02X}"));
            }
        }
    }
    let normal = portcullis_http_guard::normalize_path(&path).map_err(|e| e.to_string())?;
    match normal.as_str().strip_prefix('/') {
        // Still one segment: what the gateway would judge.
        Some(one) if !one.is_empty() && !one.contains('/') => Ok(one.to_owned()),
        // Decoded into a dot segment and removed (`%2E`).
        _ => Err("dot segments are removed".to_owned()),
    }
}

/// Segments of a request path. Holds the first
/// [`MAX_PATTERN_SEGMENTS`]` + 1` segments inline (no pattern looks
/// further) and the total count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PathSegments<'a> {
    inline: [&'a str; MAX_PATTERN_SEGMENTS + 1],
    len: usize,
}

impl<'a> PathSegments<'a> {
    /// Total number of segments.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Segment `i`, if it exists and is within pattern reach.
    pub(crate) fn get(&self, i: usize) -> Option<&'a str> {
        if i < self.len {
            self.inline.get(i).copied()
        } else {
            None
        }
    }

    #[cfg(test)]
    pub(crate) fn to_vec(self) -> Vec<&'a str> {
        (0..self.len).filter_map(|i| self.get(i)).collect()
    }
}

/// Splits a normalised request path into segments, ignoring one trailing
/// `/`. `None` when the path is not normalised: it does not start with `/`,
/// has an empty, `.` or `..` segment, or holds `?`, `#` or a control
/// character. Such requests are denied (fail closed).
pub(crate) fn split_request_path(path: &str) -> Option<PathSegments<'_>> {
    let rest = path.strip_prefix('/')?;
    let mut out = PathSegments {
        inline: [""; MAX_PATTERN_SEGMENTS + 1],
        len: 0,
    };
    if rest.is_empty() {
        return Some(out);
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    // One pass over the bytes: check each and cut at `/`.
    let bytes = rest.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'/' {
            out.push(rest.get(start..i)?)?;
            start = i + 1;
        } else if b == b'?' || b == b'#' || b.is_ascii_control() {
            return None;
        }
    }
    out.push(rest.get(start..)?)?;
    Some(out)
}

impl<'a> PathSegments<'a> {
    /// Appends a segment; `None` for an empty, `.` or `..` segment.
    fn push(&mut self, seg: &'a str) -> Option<()> {
        if seg.is_empty() || seg == "." || seg == ".." {
            return None;
        }
        if let Some(slot) = self.inline.get_mut(self.len) {
            *slot = seg;
        }
        self.len += 1;
        Some(())
    }
}

#[cfg(test)]
mod tests;
