//! Errors building TLS configurations.

/// Why a TLS configuration cannot be built. Messages never contain key
/// material.
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    #[error("no trust anchor is configured: client certificates need at least one ca certificate")]
    NoClientRoots,
    #[error(
        "no trust anchor is configured for the upstream: at least one ca certificate is needed"
    )]
    NoUpstreamRoots,
    #[error("ca certificate {index} cannot be used as a trust anchor: {reason}")]
    BadTrustAnchor { index: usize, reason: String },
    #[error("cannot build the client certificate verifier: {0}")]
    Verifier(String),
    #[error("server certificate and key are not usable: {0}")]
    ServerCert(String),
    #[error("tls protocol configuration rejected: {0}")]
    Protocol(String),
}
