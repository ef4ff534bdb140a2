//! Errors that stop a run before it starts. Failures during a run
//! (refused connections, timeouts, bad responses) are counted in the
//! report instead.

/// Why a run cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error("target `{url}`: {reason}")]
    Target { url: String, reason: &'static str },
    #[error("invalid server name `{0}`")]
    ServerName(String),
    #[error("{what} must be between {min} and {max}, got `{value}`")]
    OutOfBounds {
        what: &'static str,
        value: String,
        min: String,
        max: String,
    },
    #[error("cannot read `{path}`: {detail}")]
    Pem { path: String, detail: String },
    #[error("header argument: {0}")]
    HeaderArg(&'static str),
    #[error("header `{name}`: {reason}")]
    Header { name: String, reason: &'static str },
    #[error("cannot read header values from `{path}`: {detail}")]
    HeaderFile { path: String, detail: String },
    #[error("tls client configuration: {0}")]
    Tls(String),
    #[error("histogram: {0}")]
    Histogram(String),
    #[error("runtime: {0}")]
    Runtime(#[from] std::io::Error),
}
