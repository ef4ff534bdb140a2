//! The HTTPS client the gateway uses for its own calls (the OpenID
//! provider, bundle servers): rustls with the aws-lc-rs provider, a
//! configured CA bundle or the system store, HTTP/1.1, https only.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;

pub(crate) type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Builds a client trusting `ca`, or the system store when `None`;
/// `ca_key` names the setting in the error when the system store is empty.
pub(crate) fn client(
    ca: Option<&[CertificateDer<'static>]>,
    connect_timeout: Duration,
    ca_key: &str,
) -> Result<HttpsClient, String> {
    let roots = match ca {
        Some(c) => c.to_vec(),
        None => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                return Err(format!("no system CA certificates found; set `{ca_key}`"));
            }
            found.certs
        }
    };
    let mut tls =
        (*portcullis_authn::upstream_client_config(roots).map_err(|e| e.to_string())?).clone();
    // hyper-rustls sets ALPN itself (HTTP/1.1 here).
    tls.alpn_protocols.clear();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// Constant-time comparison of secrets (tokens, `state`, `nonce`).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
