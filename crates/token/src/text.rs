//! Making untrusted text safe to put in an error message or a log line.

/// Characters of an untrusted value echoed in an error: enough to recognise
/// an `alg`, `kid` or issuer, too few to carry a token.
pub const MAX_ECHO_CHARS: usize = 32;

/// Truncates `s` to [`MAX_ECHO_CHARS`] characters and escapes everything
/// that is not printable ASCII (and backticks and backslashes), so the
/// result can sit inside backticks in a single-line message.
pub(crate) fn echo(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_ECHO_CHARS * 2));
    let mut chars = s.chars();
    for c in chars.by_ref().take(MAX_ECHO_CHARS) {
        if (c.is_ascii_graphic() || c == ' ') && c != '`' && c != '\\' {
            out.push(c);
        } else if c == '`' {
            out.push_str("\\u{60}");
        } else {
            out.extend(c.escape_default());
        }
    }
    if chars.next().is_some() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests;
