//! The client's TLS configuration: trust the benchmark CA, present the
//! client certificate, speak HTTP/1.1, and never resume a session, so
//! every connection costs the server a full mTLS handshake.

use std::path::Path;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::LoadgenError;

/// Key exchange groups the client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum KeyExchange {
    /// The crypto provider's default list.
    #[default]
    Default,
    /// X25519 only: what every peer in the benchmark supports.
    X25519,
    /// NIST P-256 only.
    P256,
}

/// PEM files of the trust anchor and the client identity.
#[derive(Debug, Clone, Copy)]
pub struct TlsFiles<'a> {
    pub ca: &'a Path,
    pub cert: &'a Path,
    pub key: &'a Path,
}

fn pem_err(path: &Path, e: impl std::fmt::Display) -> LoadgenError {
    LoadgenError::Pem {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

/// Builds the client configuration; resumption and early data are off.
pub fn client_config(
    files: TlsFiles<'_>,
    kx: KeyExchange,
) -> Result<Arc<ClientConfig>, LoadgenError> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    match kx {
        KeyExchange::Default => {}
        KeyExchange::X25519 => {
            provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
        }
        KeyExchange::P256 => {
            provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::SECP256R1];
        }
    }
    let mut roots = rustls::RootCertStore::empty();
    let cas = CertificateDer::pem_file_iter(files.ca)
        .map_err(|e| pem_err(files.ca, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(files.ca, e))?;
    if cas.is_empty() {
        return Err(pem_err(files.ca, "no certificate in the file"));
    }
    for c in cas {
        roots.add(c).map_err(|e| pem_err(files.ca, e))?;
    }
    let chain = CertificateDer::pem_file_iter(files.cert)
        .map_err(|e| pem_err(files.cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(files.cert, e))?;
    if chain.is_empty() {
        return Err(pem_err(files.cert, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(files.key).map_err(|e| pem_err(files.key, e))?;
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| LoadgenError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| LoadgenError::Tls(e.to_string()))?;
    config.resumption = Resumption::disabled();
    config.enable_early_data = false;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What was negotiated, e.g. `TLSv1_3 TLS13_AES_128_GCM_SHA256 X25519`.
pub fn describe(conn: &rustls::ClientConnection) -> String {
    let version = conn
        .protocol_version()
        .map_or_else(|| "-".to_owned(), |v| format!("{v:?}"));
    let suite = conn
        .negotiated_cipher_suite()
        .map_or_else(|| "-".to_owned(), |s| format!("{:?}", s.suite()));
    let group = conn
        .negotiated_key_exchange_group()
        .map_or_else(|| "-".to_owned(), |g| format!("{:?}", g.name()));
    format!("{version} {suite} {group}")
}
