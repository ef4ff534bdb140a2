//! A minimal HTTPS client for the OAuth endpoints: one HTTP/1.1 request
//! per connection over rustls (aws-lc-rs), bounded in time and size. No
//! redirects, no proxies, no cookies, no plain http.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use zeroize::Zeroizing;

use super::LoginError;

/// Bound on connecting and the TLS handshake.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one whole request (connect, send, read the response).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body read: discovery documents and token responses
/// are a few KiB.
pub(crate) const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Longest URL accepted from the command line or a discovery document.
pub(crate) const MAX_URL_LEN: usize = 4096;

/// An absolute `https` URL without user info or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpsUrl {
    text: String,
    /// Host without IPv6 brackets.
    host: String,
    port: u16,
    /// `host[:port]` as written, for the Host header.
    authority: String,
    path_and_query: String,
}

impl HttpsUrl {
    pub(crate) fn parse(text: &str) -> Result<Self, LoginError> {
        let bad = |reason| LoginError::Url {
            url: super::error::printable(text),
            reason,
        };
        if text.len() > MAX_URL_LEN {
            return Err(bad("too long"));
        }
        if text.contains('#') {
            return Err(bad("a fragment is not allowed"));
        }
        let uri: http::Uri = text.parse().map_err(|_| bad("not a URL"))?;
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") => {
                return Err(LoginError::NotHttps {
                    url: super::error::printable(text),
                })
            }
            _ => return Err(bad("the scheme must be https")),
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("user info is not allowed"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Self {
            text: text.to_owned(),
            host,
            port: authority.port_u16().unwrap_or(443),
            authority: authority.as_str().to_owned(),
            path_and_query: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }
}

/// A response: status and a body that is zeroized on drop (it may hold
/// tokens).
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Zeroizing<Vec<u8>>,
}

/// HTTPS client trusting either the system store or one CA file.
#[derive(Clone)]
pub(crate) struct HttpsClient {
    tls: tokio_rustls::TlsConnector,
}

impl HttpsClient {
    /// Trusts the certificates in `ca` (PEM) if given, else the operating
    /// system's trust store.
    pub(crate) fn new(ca: Option<&Path>) -> Result<Self, LoginError> {
        let mut roots = rustls::RootCertStore::empty();
        match ca {
            Some(path) => {
                let ca_err = |reason: String| LoginError::Ca {
                    path: path.display().to_string(),
                    reason,
                };
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| ca_err(e.to_string()))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ca_err(e.to_string()))?;
                if certs.is_empty() {
                    return Err(ca_err("no PEM certificate found".to_owned()));
                }
                for cert in certs {
                    roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                for cert in native.certs {
                    // Skip the odd unparsable system certificate.
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    let detail = native
                        .errors
                        .first()
                        .map_or_else(|| "no certificates".to_owned(), |e| e.to_string());
                    return Err(LoginError::SystemRoots(detail));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| LoginError::TlsConfig(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    pub(crate) async fn get(&self, url: &HttpsUrl) -> Result<Response, LoginError> {
        self.send(url, http::Method::GET, None).await
    }

    /// POSTs an `application/x-www-form-urlencoded` body.
    pub(crate) async fn post_form(
        &self,
        url: &HttpsUrl,
        body: Zeroizing<String>,
    ) -> Result<Response, LoginError> {
        self.send(url, http::Method::POST, Some(body)).await
    }

    async fn send(
        &self,
        url: &HttpsUrl,
        method: http::Method,
        form: Option<Zeroizing<String>>,
    ) -> Result<Response, LoginError> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.send_inner(url, method, form))
            .await
            .map_err(|_| LoginError::Timeout {
                url: url.as_str().to_owned(),
                after: REQUEST_TIMEOUT,
            })?
    }

    async fn send_inner(
        &self,
        url: &HttpsUrl,
        method: http::Method,
        form: Option<Zeroizing<String>>,
    ) -> Result<Response, LoginError> {
        let http_err = |reason: String| LoginError::Http {
            url: url.as_str().to_owned(),
            reason,
        };
        let connect_timeout = |authority: &str| LoginError::Connect {
            authority: authority.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
        };
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect((url.host.as_str(), url.port)),
        )
        .await
        .map_err(|_| connect_timeout(&url.authority))?
        .map_err(|source| LoginError::Connect {
            authority: url.authority.clone(),
            source,
        })?;
        let name = ServerName::try_from(url.host.clone()).map_err(|_| LoginError::Url {
            url: url.as_str().to_owned(),
            reason: "the host is not a valid server name",
        })?;
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, self.tls.connect(name, tcp))
            .await
            .map_err(|_| connect_timeout(&url.authority))?
            .map_err(|source| LoginError::Tls {
                authority: url.authority.clone(),
                source,
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| http_err(e.to_string()))?;
        let conn = tokio::spawn(conn);

        let mut req = http::Request::builder()
            .method(method)
            .uri(url.path_and_query.as_str())
            .header(http::header::HOST, url.authority.as_str())
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("portcullis/", env!("CARGO_PKG_VERSION")),
            );
        let body = match form {
            Some(form) => {
                req = req.header(
                    http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                );
                // The body crosses into hyper as bytes it owns; this copy
                // cannot be zeroized.
                Bytes::copy_from_slice(form.as_bytes())
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(body))
            .map_err(|e| http_err(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| http_err(e.to_string()))?;
        let status = resp.status().as_u16();
        let collected = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    LoginError::TooLarge {
                        url: url.as_str().to_owned(),
                        limit: MAX_RESPONSE_BYTES,
                    }
                } else {
                    http_err(e.to_string())
                }
            })?;
        conn.abort();
        Ok(Response {
            status,
            body: Zeroizing::new(collected.to_bytes().to_vec()),
        })
    }
}
