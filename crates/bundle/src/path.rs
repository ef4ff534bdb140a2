//! Paths inside a bundle: plain relative paths, nothing else.

use std::fmt;

use crate::error::{echo, BundleError};

/// Longest path accepted inside a bundle: the ustar `name` field, so every
/// accepted path is written back in one field, without the prefix split.
pub const MAX_PATH_BYTES: usize = 100;

/// What is wrong with a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathFault {
    /// The empty path.
    Empty,
    /// Starts with `/`.
    Absolute,
    /// A `..` component.
    ParentComponent,
    /// A `.` component.
    CurrentComponent,
    /// An empty component (`a//b`, or a trailing `/` on a file).
    EmptyComponent,
    /// Contains `\`, a separator on Windows.
    Backslash,
    /// Contains a NUL byte.
    Nul,
    /// Contains another control character.
    ControlCharacter,
    /// Not UTF-8.
    NotUtf8,
    /// Longer than [`MAX_PATH_BYTES`].
    TooLong,
    /// A component is a file elsewhere in the bundle.
    FileAsDirectory,
}

impl PathFault {
    /// A stable snake_case code, e.g. `"parent_component"`.
    pub fn code(self) -> &'static str {
        match self {
            PathFault::Empty => "empty",
            PathFault::Absolute => "absolute",
            PathFault::ParentComponent => "parent_component",
            PathFault::CurrentComponent => "current_component",
            PathFault::EmptyComponent => "empty_component",
            PathFault::Backslash => "backslash",
            PathFault::Nul => "nul",
            PathFault::ControlCharacter => "control_character",
            PathFault::NotUtf8 => "not_utf8",
            PathFault::TooLong => "too_long",
            PathFault::FileAsDirectory => "file_as_directory",
        }
    }
}

impl fmt::Display for PathFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathFault::Empty => "empty path",
            PathFault::Absolute => "absolute path",
            PathFault::ParentComponent => "`..` component",
            PathFault::CurrentComponent => "`.` component",
            PathFault::EmptyComponent => "empty component",
            PathFault::Backslash => "backslash",
            PathFault::Nul => "nul byte",
            PathFault::ControlCharacter => "control character",
            PathFault::NotUtf8 => "not utf-8",
            PathFault::TooLong => "longer than 100 bytes",
            PathFault::FileAsDirectory => "a parent component is a file",
        })
    }
}

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
