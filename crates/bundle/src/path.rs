//! Paths inside a bundle: plain relative paths, nothing else.

use crate::error::{echo, BundleError, PathFault};

/// Longest path accepted inside a bundle: the ustar `name` field, so every
/// accepted path is written back in one field, without the prefix split.
pub const MAX_PATH_BYTES: usize = 100;

/// Checks a raw path and returns it as a string.
pub(crate) fn check(raw: &[u8]) -> Result<&str, BundleError> {
    let fault = |fault| BundleError::UnsafePath {
        path: echo(raw),
        fault,
    };
    if raw.is_empty() {
        return Err(fault(PathFault::Empty));
    }
    if raw.contains(&0) {
        return Err(fault(PathFault::Nul));
    }
    if raw.contains(&b'\\') {
        return Err(fault(PathFault::Backslash));
    }
    if raw.starts_with(b"/") {
        return Err(fault(PathFault::Absolute));
    }
    let text = std::str::from_utf8(raw).map_err(|_| fault(PathFault::NotUtf8))?;
    if text.chars().any(char::is_control) {
        return Err(fault(PathFault::ControlCharacter));
    }
    for component in text.split('/') {
        match component {
            "" => return Err(fault(PathFault::EmptyComponent)),
            "." => return Err(fault(PathFault::CurrentComponent)),
            ".." => return Err(fault(PathFault::ParentComponent)),
            _ => {}
        }
    }
    if raw.len() > MAX_PATH_BYTES {
        return Err(fault(PathFault::TooLong));
    }
    Ok(text)
}

/// The strict ancestors of a checked path: `a/b/c` gives `a`, `a/b`.
pub(crate) fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').filter_map(|(at, _)| path.get(..at))
}

#[cfg(test)]
mod tests;
