//! rustls configurations: the listener's server side and the upstream
//! client side.

use std::sync::Arc;

use rustls::server::NoServerSessionStorage;
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::verifier::{client_verifier, root_store};
use crate::{AuthnError, ClientAuthConfig};

/// ALPN protocols offered, in order of preference.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// TLS 1.3 and 1.2; nothing older.
const VERSIONS: &[&SupportedProtocolVersion] = &[&TLS13, &TLS12];

fn alpn() -> Vec<Vec<u8>> {
    ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect()
}

/// The server configuration of a listener: TLS 1.2 and 1.3 with the
/// aws-lc-rs provider, ALPN `h2` and `http/1.1`, and the
/// [`crate::ClientVerifier`] for `client_auth`.
///
/// Session resumption is off (no session cache, no tickets): every
/// connection verifies the client certificate in full, so a certificate
/// that was revoked or expired since an earlier connection is never
/// accepted through a resumed session.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_auth: &ClientAuthConfig,
) -> Result<Arc<ServerConfig>, AuthnError> {
    server_config_with_verifier(chain, key, client_verifier(client_auth)?)
}

/// As [`server_config`], with a verifier built before (the gateway keeps
/// it to verify established connections again after a reload).
pub fn server_config_with_verifier(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    verifier: Arc<crate::ClientVerifier>,
) -> Result<Arc<ServerConfig>, AuthnError> {
    if chain.is_empty() {
        return Err(AuthnError::ServerCert(
            "the certificate chain is empty".to_owned(),
        ));
    }
    let mut config = ServerConfig::builder_with_provider(crate::provider::provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| AuthnError::Protocol(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| AuthnError::ServerCert(e.to_string()))?;
    config.alpn_protocols = alpn();
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The client configuration for an https upstream whose certificate is
/// verified against `roots` (no client certificate): TLS 1.2 and 1.3 with
/// the aws-lc-rs provider, ALPN `h2` and `http/1.1`.
pub fn upstream_client_config(
    roots: Vec<CertificateDer<'static>>,
) -> Result<Arc<ClientConfig>, AuthnError> {
    if roots.is_empty() {
        return Err(AuthnError::NoUpstreamRoots);
    }
    let store = root_store(&roots)?;
    let mut config = ClientConfig::builder_with_provider(crate::provider::provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| AuthnError::Protocol(e.to_string()))?
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests;
