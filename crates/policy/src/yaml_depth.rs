//! A bound on the nesting of YAML flow collections (`[...]`, `{...}`),
//! checked before a document reaches the YAML parser.
//!
//! The parser's time grows with the square of the flow nesting depth: a
//! 160 KB file of 80 000 nested `[` took 13 s to refuse, and a policy file
//! may be 64 MiB. No policy or configuration needs more than a handful of
//! levels, so a document nested deeper than [`MAX_FLOW_NESTING`] is
//! refused at once, with the line where it went too deep.
//!
//! The scan counts every `[` and `{` and every `]` and `}`, wherever it
//! stands: telling a quoted scalar from a quote inside a plain one (`it
//! 's`, `a 'b`) takes the parser's own rules, and a scan that skipped
//! "quoted" text could be led to skip the nesting itself. A document can
//! only be refused by it if it holds hundreds of unclosed brackets in its
//! text, which no policy or configuration does.

/// Deepest flow-collection nesting accepted.
pub const MAX_FLOW_NESTING: usize = 256;

/// A document nested deeper than [`MAX_FLOW_NESTING`], at its 1-based
/// `line`; its `Display` is the message for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "flow collections (`[`, `{{`) nested more than {MAX_FLOW_NESTING} levels deep at line {line}"
)]
pub struct TooDeep {
    pub line: usize,
}

/// Where a document first nests flow collections deeper than
/// [`MAX_FLOW_NESTING`].
pub fn too_deep_flow_nesting(text: &str) -> Option<TooDeep> {
    let mut depth = 0usize;
    let mut line = 1usize;
    for b in text.bytes() {
        match b {
            b'\n' => line += 1,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_FLOW_NESTING {
                    return Some(TooDeep { line });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests;
