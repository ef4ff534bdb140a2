//! A bound on the nesting of YAML flow collections (`[...]`, `{...}`),
//! checked before a document reaches the YAML parser.
//!
//! The parser's time grows with the square of the flow nesting depth: a
//! 160 KB file of 80 000 nested `[` took 13 s to refuse, and a policy file
//! may be 64 MiB. No policy or configuration needs more than a handful of
//! levels, so a document nested deeper than [`MAX_FLOW_NESTING`] is
//! refused at once, with the line where it went too deep.
//!
//! The scan is deliberately simple and errs toward counting: brackets in
//! quoted scalars and comments are skipped; those in plain or block
//! scalars count, so a document can only be refused by it if it holds
//! hundreds of unclosed brackets in its text.

/// Deepest flow-collection nesting accepted.
pub const MAX_FLOW_NESTING: usize = 256;

/// Where a document first nests flow collections deeper than
/// [`MAX_FLOW_NESTING`]: its 1-based line.
pub fn too_deep_flow_nesting(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut line = 1usize;
    // The previous byte, for telling a comment's `#` and a quote that
    // opens a scalar from the same characters inside a plain scalar.
    let mut prev = b'\n';
    let mut bytes = text.bytes().peekable();
    while let Some(b) = bytes.next() {
        match b {
            b'\n' => line += 1,
            b'#' if prev.is_ascii_whitespace() => {
                // A comment: to the end of the line.
                for c in bytes.by_ref() {
                    if c == b'\n' {
                        line += 1;
                        break;
                    }
                }
                prev = b'\n';
                continue;
            }
            b'"' | b'\'' if opens_scalar(prev) => {
                // A quoted scalar: to its closing quote (`\"` escapes in
                // double quotes, `''` in single quotes).
                while let Some(c) = bytes.next() {
                    match c {
                        b'\n' => line += 1,
                        b'\\' if b == b'"' => line += usize::from(bytes.next() == Some(b'\n')),
                        c if c == b && b == b'\'' && bytes.peek() == Some(&b'\'') => {
                            bytes.next();
                        }
                        c if c == b => break,
                        _ => {}
                    }
                }
                prev = b;
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_FLOW_NESTING {
                    return Some(line);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev = b;
    }
    None
}

/// Whether a quote after `prev` starts a quoted scalar (where a node may
/// start) rather than sitting inside a plain one (`don't`).
fn opens_scalar(prev: u8) -> bool {
    prev.is_ascii_whitespace() || matches!(prev, b'[' | b'{' | b',' | b':' | b'-' | b'?')
}

#[cfg(test)]
mod tests;
