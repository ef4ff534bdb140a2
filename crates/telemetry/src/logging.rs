//! Installation of the process-wide diagnostic logger.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[cfg(test)]
mod tests;

/// Why the logger could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum TracingInitError {
    #[error("invalid log filter `{filter}`")]
    Filter {
        filter: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("a global tracing subscriber is already installed")]
    AlreadySet,
}

/// Installs a plain-text `tracing` subscriber writing to stderr, filtered by
/// `filter` (`EnvFilter` syntax, e.g. `info,portcullis_gateway=debug`).
///
/// Diagnostics go to stderr so they never mix with audit lines on stdout.
/// Colours are used only when stderr is a terminal. JSON output is not
/// offered: the audit log is the machine-readable stream.
pub fn init_tracing(filter: &str) -> Result<(), TracingInitError> {
    let env_filter = EnvFilter::try_new(filter).map_err(|source| TracingInitError::Filter {
        filter: filter.to_owned(),
        source,
    })?;
    tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|_| TracingInitError::AlreadySet)
}
