//! Errors of the PKI helpers.

use std::path::PathBuf;

/// Why a PKI operation failed. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot build the certificate: {0}")]
    Build(#[from] rcgen::Error),
    #[error("the system random number generator failed")]
    Random,
    #[error("invalid {field} `{value}`: {reason}")]
    InvalidField {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("not_after must be later than not_before")]
    InvalidValidity,
    #[error("pem input holds no {0}")]
    NoPemItem(&'static str),
    #[error("malformed pem input: {0}")]
    BadPem(&'static str),
    #[error("the private key is not a supported ecdsa, ed25519 or rsa key")]
    BadKey,
    #[error("cannot parse the certificate: {0}")]
    BadCertificate(String),
    #[error("certificate `{subject}` is not a ca certificate (basicConstraints ca is not true)")]
    NotACa { subject: String },
    #[error("the private key does not belong to the certificate `{subject}`")]
    KeyMismatch { subject: String },
    #[error("ca `{subject}` may not issue ca certificates (path length constraint 0)")]
    PathLenExhausted { subject: String },
    #[error("serial number {index} of the revocation list is empty")]
    EmptySerial { index: usize },
    #[error("refusing to overwrite existing file `{}`", path.display())]
    WouldOverwrite { path: PathBuf },
    #[error("file `{}`: cannot {op}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid certificate name `{name}`: {reason}")]
    InvalidName { name: String, reason: &'static str },
}
