//! What the client-certificate side of a listener is configured with.

use std::fmt;
use std::sync::Arc;

use portcullis_identity::TrustDomain;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use zeroize::Zeroize;

use crate::AuthnError;

/// Whether a client must present a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuthMode {
    /// A handshake without a client certificate fails.
    Required,
    /// A client without a certificate connects anonymously; a client that
    /// presents one must still present a valid one.
    Optional,
}

/// How client certificates are verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAuthConfig {
    /// Trust anchors (CA certificates) client chains must end at.
    pub roots: Vec<CertificateDer<'static>>,
    /// Revocation lists. When any is given, every certificate of a client
    /// chain (except the trust anchor) must be covered by a CRL of its
    /// issuer, and an expired CRL fails the handshake.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    pub mode: ClientAuthMode,
    /// Trust domains whose SPIFFE IDs are accepted. Empty: a client
    /// certificate with a URI SAN is refused.
    pub spiffe_trust_domains: Vec<TrustDomain>,
}

/// A server certificate chain and its private key. The key is zeroized
/// when this is dropped and never shown by `Debug`.
pub struct ServerTls {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl ServerTls {
    /// `chain[0]` is the server's certificate, then its intermediates.
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        Self { chain, key }
    }

    /// Loads the chain and key from PEM files.
    pub fn from_pem_files(
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Result<Self, crate::pem::PemError> {
        Ok(Self::new(
            crate::pem::load_certs(cert)?,
            crate::pem::load_key(key)?,
        ))
    }

    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// A rustls server configuration for this certificate; see
    /// [`crate::server_config`].
    pub fn server_config(
        &self,
        client_auth: &ClientAuthConfig,
    ) -> Result<Arc<rustls::ServerConfig>, AuthnError> {
        crate::server_config(self.chain.clone(), self.key.clone_key(), client_auth)
    }
}

impl Drop for ServerTls {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("chain_len", &self.chain.len())
            .field("key", &"[redacted]")
            .finish()
    }
}
