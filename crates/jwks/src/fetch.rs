//! One fetch: the https client, bounded GETs, the discovery document and
//! key files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_LENGTH, USER_AGENT};
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use rustls_pki_types::CertificateDer;
use tokio::io::AsyncReadExt;

use crate::error::{FetchError, StartError};
use crate::redact::Redacted;
use crate::settings::DISCOVERY_PATH;
use crate::FetchSettings;

/// Idle connections kept to one issuer: refreshes are minutes apart, so
/// one is plenty.
pub const MAX_IDLE_CONNECTIONS: usize = 1;
/// An idle pooled connection is closed after this long; a refresh minutes
/// later opens a new one.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
/// Untrusted strings (an issuer from a discovery document) are cut to this
/// many characters in error messages.
pub const MAX_SHOWN_CHARS: usize = 128;

/// TLS 1.3 and 1.2; nothing older.
const VERSIONS: &[&SupportedProtocolVersion] = &[&TLS13, &TLS12];
/// `User-Agent` of our requests.
const AGENT: &str = concat!("portcullis/", env!("CARGO_PKG_VERSION"));
/// `Accept` for a JWKS (RFC 7517, section 8.5) or plain JSON.
pub(crate) const ACCEPT_JWKS: &str = "application/jwk-set+json, application/json";
/// `Accept` for a discovery document.
pub(crate) const ACCEPT_JSON: &str = "application/json";

pub(crate) type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// What is wrong with a URL that should name an https resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlProblem {
    Insecure,
    NotAbsolute,
    NotHttps,
    NoHost,
    Credentials,
}

impl UrlProblem {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Insecure => "http is not allowed, use https",
            Self::NotAbsolute => "not an absolute url",
            Self::NotHttps => "the scheme must be https",
            Self::NoHost => "the url has no host",
            Self::Credentials => "credentials in the url are not allowed",
        }
    }

    pub(crate) fn into_start_error(self, uri: &Uri) -> StartError {
        let url = Redacted(uri).to_string();
        match self {
            Self::Insecure => StartError::InsecureUrl { url },
            other => StartError::InvalidUrl {
                url,
                reason: other.reason(),
            },
        }
    }
}

/// Checks that `uri` is an absolute `https` URL with a host and without
/// credentials.
pub(crate) fn check_https(uri: &Uri) -> Result<(), UrlProblem> {
    match uri.scheme_str() {
        None => return Err(UrlProblem::NotAbsolute),
        Some(s) if s.eq_ignore_ascii_case("https") => {}
        Some(s) if s.eq_ignore_ascii_case("http") => return Err(UrlProblem::Insecure),
        Some(_) => return Err(UrlProblem::NotHttps),
    }
    let Some(authority) = uri.authority() else {
        return Err(UrlProblem::NoHost);
    };
    if authority.as_str().contains('@') {
        return Err(UrlProblem::Credentials);
    }
    if authority.host().is_empty() {
        return Err(UrlProblem::NoHost);
    }
    Ok(())
}

/// The discovery document URL of `issuer`: an `https` URL without query
/// or fragment; one terminating `/` is removed before the well-known path
/// is appended (OpenID Connect Discovery 1.0, section 4.1).
pub(crate) fn discovery_uri(issuer: &str) -> Result<Uri, StartError> {
    let invalid = |reason| StartError::InvalidUrl {
        url: shown(issuer),
        reason,
    };
    if issuer.contains('?') || issuer.contains('#') {
        return Err(invalid("an issuer has no query or fragment"));
    }
    let uri: Uri = issuer
        .parse()
        .map_err(|_| invalid("not a valid issuer url"))?;
    check_https(&uri).map_err(|p| p.into_start_error(&uri))?;
    let base = issuer.strip_suffix('/').unwrap_or(issuer);
    format!("{base}{DISCOVERY_PATH}")
        .parse()
        .map_err(|_| invalid("not a valid issuer url"))
}

/// The parts of a discovery document we use.
#[derive(serde::Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    jwks_uri: String,
}

/// Reads a discovery document: its `issuer` must equal `expected_issuer`
/// exactly (no normalisation: OpenID Connect Discovery 1.0, section 4.3)
/// and its `jwks_uri` must be an https URL. Returns the `jwks_uri`.
pub(crate) fn parse_discovery(body: &[u8], expected_issuer: &str) -> Result<Uri, String> {
    let doc: DiscoveryDocument = serde_json::from_slice(body).map_err(|e| {
        format!(
            "not a json object with string `issuer` and `jwks_uri` (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    if doc.issuer != expected_issuer {
        return Err(format!(
            "issuer {} does not match the configured issuer `{expected_issuer}`",
            shown(&doc.issuer)
        ));
    }
    let uri: Uri = doc
        .jwks_uri
        .parse()
        .map_err(|_| format!("jwks_uri {} is not a valid url", shown(&doc.jwks_uri)))?;
    check_https(&uri).map_err(|p| format!("jwks_uri `{}`: {}", Redacted(&uri), p.reason()))?;
    Ok(uri)
}

/// An untrusted or configured string for a message: escaped, quoted with
/// backticks and cut to [`MAX_SHOWN_CHARS`].
pub(crate) fn shown(s: &str) -> String {
    let mut out = String::from("`");
    for (i, c) in s.chars().enumerate() {
        if i >= MAX_SHOWN_CHARS {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('`');
    out
}

/// The https client: rustls with the aws-lc-rs provider, TLS 1.2/1.3,
/// ALPN `h2` and `http/1.1`, trusting `settings.roots` or the system
/// store. It never follows redirects (hyper's client does not).
pub(crate) fn build_client(settings: &FetchSettings) -> Result<HttpsClient, StartError> {
    let roots = match &settings.roots {
        Some(bundle) => configured_roots(bundle)?,
        None => system_roots()?,
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)
        .map_err(|e| StartError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(settings.fetch_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(MAX_IDLE_CONNECTIONS)
        .pool_idle_timeout(IDLE_CONNECTION_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(https))
}

fn configured_roots(bundle: &[CertificateDer<'static>]) -> Result<RootCertStore, StartError> {
    if bundle.is_empty() {
        return Err(StartError::EmptyCaBundle);
    }
    let mut store = RootCertStore::empty();
    for (index, cert) in bundle.iter().enumerate() {
        store
            .add(cert.clone())
            .map_err(|e| StartError::BadCaCertificate {
                index,
                reason: e.to_string(),
            })?;
    }
    Ok(store)
}

fn system_roots() -> Result<RootCertStore, StartError> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let detail = loaded
            .errors
            .iter()
            .map(|e| format!(": {e}"))
            .collect::<String>();
        return Err(StartError::NoSystemRoots { detail });
    }
    for e in &loaded.errors {
        tracing::debug!(error = %e, "skipped part of the system ca store");
    }
    Ok(store)
}

/// A successful GET: the response headers and the whole body.
pub(crate) struct Response {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// GETs `uri`: status must be 200 (a redirect is an error, never
/// followed), and the body is read frame by frame, aborting as soon as it
/// exceeds `limit` bytes. The caller bounds the time.
pub(crate) async fn get(
    client: &HttpsClient,
    uri: &Uri,
    accept: &'static str,
    limit: usize,
) -> Result<Response, FetchError> {
    let url = || Redacted(uri).to_string();
    let req = Request::get(uri.clone())
        .header(ACCEPT, accept)
        .header(USER_AGENT, AGENT)
        .body(Empty::new())
        .map_err(|e| FetchError::Request {
            url: url(),
            detail: e.to_string(),
        })?;
    let resp = client.request(req).await.map_err(|e| FetchError::Request {
        url: url(),
        detail: error_chain(&e),
    })?;
    let status = resp.status();
    if status.is_redirection() {
        return Err(FetchError::Redirect {
            url: url(),
            status: status.as_u16(),
        });
    }
    if status != StatusCode::OK {
        return Err(FetchError::Status {
            url: url(),
            status: status.as_u16(),
        });
    }
    let too_large = || FetchError::BodyTooLarge { url: url(), limit };
    let declared = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(too_large());
    }
    let (parts, mut body) = resp.into_parts();
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| FetchError::Body {
            url: url(),
            detail: error_chain(&e),
        })?;
        if let Ok(data) = frame.into_data() {
            if data.len() > limit.saturating_sub(buf.len()) {
                return Err(too_large());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Response {
        headers: parts.headers,
        body: buf,
    })
}

/// What identifies a version of a key file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

/// The stamp of `path` now.
pub(crate) async fn file_stamp(path: &Path) -> Result<FileStamp, FetchError> {
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|source| FetchError::File {
            path: path.to_owned(),
            source,
        })?;
    Ok(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

/// Reads a key file of at most `limit` bytes.
pub(crate) async fn read_file(path: &PathBuf, limit: usize) -> Result<Vec<u8>, FetchError> {
    let io = |source| FetchError::File {
        path: path.clone(),
        source,
    };
    let file = tokio::fs::File::open(path).await.map_err(io)?;
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut buf = Vec::new();
    file.take(cap).read_to_end(&mut buf).await.map_err(io)?;
    if buf.len() > limit {
        return Err(FetchError::FileTooLarge {
            path: path.clone(),
            limit,
        });
    }
    Ok(buf)
}

/// An error and its sources, joined with `: ` (hyper's own message is
/// only "client error (Connect)").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests;
