//! Errors found while loading a policy, a request description or a test file.

use std::fmt;

use portcullis_identity::SpiffeIdError;

/// A load error: where it is (a key path such as `rules[3].path`) and what
/// is wrong. Displays as `<key path>: <what is wrong>`; errors about the
/// whole input (empty, too large, YAML syntax) have no key path and display
/// only the message, which then carries the line and column when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    path: String,
    kind: PolicyErrorKind,
}

impl PolicyError {
    pub(crate) fn new(path: impl Into<String>, kind: PolicyErrorKind) -> Self {
        Self {
            path: path.into(),
            kind,
        }
    }

    /// The key path, e.g. `roles.admin.inherits[0]`; empty for the whole input.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong.
    pub fn kind(&self) -> &PolicyErrorKind {
        &self.kind
    }

    /// Converts a YAML or JSON deserialisation error, keeping the key path
    /// tracked by `serde_path_to_error`.
    pub(crate) fn from_serde<E: fmt::Display>(err: serde_path_to_error::Error<E>) -> Self {
        let mut path = err.path().to_string();
        // Segments the parser could not name (after a syntax error) show as `?`.
        while let Some(p) = path.strip_suffix(".?") {
            path = p.to_owned();
        }
        if path == "." || path == "?" {
            path.clear();
        }
        let mut message = err.inner().to_string();
        // serde_norway prefixes its own, possibly shorter, copy of the path.
        if let Some((prefix, rest)) = message.split_once(": ") {
            if !prefix.is_empty() && !path.is_empty() && path.starts_with(prefix) {
                message = rest.to_owned();
            }
        }
        Self::new(path, PolicyErrorKind::Syntax(message))
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}: {}", self.path, self.kind)
        }
    }
}

impl std::error::Error for PolicyError {}

/// What is wrong with a policy, request description or test file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyErrorKind {
    /// YAML or JSON syntax, a wrong type, a missing or unknown field; the
    /// message carries the line and column when the parser knows them.
    #[error("{0}")]
    Syntax(String),
    #[error("input is empty")]
    Empty,
    #[error("input is {len} bytes, more than the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("{count} {what} is more than the limit of {max}")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("must not be empty")]
    EmptyValue,
    #[error("is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("`{0}` must not contain whitespace or control characters")]
    BadName(String),
    #[error("unknown role `{0}`")]
    UnknownRole(String),
    #[error("inheritance cycle `{0}`")]
    InheritanceCycle(String),
    #[error("duplicate rule id `{0}`")]
    DuplicateRuleId(String),
    #[error("binding needs exactly one of `spiffe_id`, `spiffe_id_prefix`, `cert_subject`, `cert_issuer`, found {0}")]
    BindingSelectors(usize),
    #[error("invalid spiffe id `{value}`: {reason}")]
    InvalidSpiffeId {
        value: String,
        reason: SpiffeIdError,
    },
    #[error("invalid method `{value}`: {reason}")]
    InvalidMethod { value: String, reason: &'static str },
    #[error("invalid cidr `{value}`: {reason}")]
    InvalidCidr { value: String, reason: String },
    #[error("unknown time zone `{0}`")]
    UnknownTimeZone(String),
    #[error("invalid time `{0}`: expected HH:MM from 00:00 to 23:59 (`to` may be 24:00)")]
    InvalidTime(String),
    #[error("invalid day `{0}`: expected mon, tue, wed, thu, fri, sat or sun")]
    InvalidDay(String),
    #[error("allow rule needs at least one role")]
    AllowWithoutRoles,
    #[error("{0}")]
    InvalidPattern(String),
    #[error("duplicate path parameter `{0}`")]
    DuplicateParam(String),
    #[error("path has no parameter `{{{0}}}`")]
    UnknownParam(String),
    #[error("invalid attribute `{value}`: {reason}")]
    InvalidAttribute { value: String, reason: &'static str },
    #[error("{0}")]
    Invalid(&'static str),
}
