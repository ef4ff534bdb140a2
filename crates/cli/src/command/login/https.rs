//! A minimal HTTPS client for the OAuth endpoints: one HTTP/1.1 request
//! per connection over rustls (aws-lc-rs), bounded in time and size. No
//! redirects, no proxies, no cookies, no plain http.

use std::io::Read;
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
/// Largest CA file read: a system-wide bundle (some 150 roots) fits. Its
/// certificates are stored with the login, and the token store holds at
/// most [`MAX_STORE_BYTES`](crate::command::token_store::MAX_STORE_BYTES).
pub(crate) const MAX_CA_BYTES: u64 = 256 * 1024;

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

/// CA certificates to trust instead of the system's, read once: from a
/// `--ca` file, or from a stored login.
#[derive(Debug, Clone)]
pub(crate) struct CaBundle {
    certs: Vec<CertificateDer<'static>>,
    roots: rustls::RootCertStore,
}

impl CaBundle {
    /// The certificates of the PEM file at `path` (at most
    /// [`MAX_CA_BYTES`]); other sections, such as a private key, are
    /// left out.
    pub(crate) fn read(path: &Path) -> Result<Self, LoginError> {
        let origin = || format!("CA file `{}`", path.display());
        let err = |reason: String| LoginError::Ca {
            origin: origin(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
        let mut pem = Vec::new();
        file.take(MAX_CA_BYTES + 1)
            .read_to_end(&mut pem)
            .map_err(|e| err(e.to_string()))?;
        if pem.len() as u64 > MAX_CA_BYTES {
            return Err(err(format!("larger than {MAX_CA_BYTES} bytes")));
        }
        Self::parse(&pem, origin)
    }

    /// The certificates stored with a login ([`Self::to_pem`]).
    pub(crate) fn from_stored(pem: &str) -> Result<Self, LoginError> {
        Self::parse(pem.as_bytes(), || {
            "the CA certificates stored at login".to_owned()
        })
    }

    fn parse(pem: &[u8], origin: impl Fn() -> String) -> Result<Self, LoginError> {
        let err = |reason: String| LoginError::Ca {
            origin: origin(),
            reason,
        };
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(e.to_string()))?;
        if certs.is_empty() {
            return Err(err("no PEM certificate found".to_owned()));
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in &certs {
            roots.add(cert.clone()).map_err(|e| err(e.to_string()))?;
        }
        Ok(Self { certs, roots })
    }

    /// The certificates as PEM, to store with a login.
    pub(crate) fn to_pem(&self) -> String {
        self.certs
            .iter()
            .map(|cert| portcullis_bundle::pem_encode("CERTIFICATE", cert.as_ref()))
            .fold(String::new(), |mut out, block| {
                out.push_str(&block);
                out
            })
    }
}

/// HTTPS client trusting either the system store or one CA bundle.
#[derive(Clone)]
pub(crate) struct HttpsClient {
    tls: tokio_rustls::TlsConnector,
}

impl HttpsClient {
    /// Trusts the certificates of `ca` if given, else the operating
    /// system's trust store.
    pub(crate) fn new(ca: Option<&CaBundle>) -> Result<Self, LoginError> {
        let roots = match ca {
            Some(ca) => ca.roots.clone(),
            None => {
                let mut roots = rustls::RootCertStore::empty();
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
                roots
            }
        };
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
