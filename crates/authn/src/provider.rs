//! The crypto provider of every TLS configuration and certificate check.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The one crypto provider Portcullis uses: aws-lc-rs.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}
