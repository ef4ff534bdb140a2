//! The OpenID provider as the gateway's relying party sees it: discovery
//! (once, lazily, retried after failures), the token endpoint, and the
//! provider's keys for ID tokens.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use portcullis_config::{ClientAuth, Oidc};
use rustls_pki_types::CertificateDer;
use serde_json::Value;

/// Bound on every call to the provider.
pub(crate) const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// Discovery documents and token responses are small.
pub(crate) const MAX_PROVIDER_RESPONSE_BYTES: usize = 256 * 1024;

use crate::https::HttpsClient;
pub(crate) use portcullis_http_guard::{form_component, form_encode, query_param};

/// What discovery told us.
#[derive(Debug)]
pub(crate) struct ProviderMeta {
    pub(crate) authorization_endpoint: String,
    pub(crate) token_endpoint: http::Uri,
    pub(crate) end_session_endpoint: Option<String>,
    pub(crate) iss_parameter_supported: bool,
}

pub(crate) struct ProviderClient {
    http: HttpsClient,
}

impl ProviderClient {
    pub(crate) fn new(ca: Option<&[CertificateDer<'static>]>) -> Result<Self, String> {
        Ok(Self {
            http: crate::https::client(ca, PROVIDER_TIMEOUT, "oidc.ca")?,
        })
    }

    async fn call(&self, req: Request<Full<Bytes>>) -> Result<(StatusCode, Value), String> {
        let fut = async {
            let resp = self.http.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_PROVIDER_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading the response: {e}"))?
                .to_bytes();
            let v: Value = serde_json::from_slice(&body)
                .map_err(|_| format!("answer with status {status} is not JSON"))?;
            Ok((status, v))
        };
        tokio::time::timeout(PROVIDER_TIMEOUT, fut)
            .await
            .map_err(|_| format!("no answer within {PROVIDER_TIMEOUT:?}"))?
    }

    /// OIDC discovery; the document's `issuer` must equal ours exactly and
    /// every endpoint must be https.
    pub(crate) async fn discover(&self, issuer: &str) -> Result<ProviderMeta, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let req = Request::get(&url)
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let (status, doc) = self
            .call(req)
            .await
            .map_err(|e| format!("discovery: {e}"))?;
        if !status.is_success() {
            return Err(format!("discovery: status {status}"));
        }
        if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
            return Err("discovery: the document names another issuer".to_owned());
        }
        let https = |name: &str| -> Result<String, String> {
            match doc.get(name).and_then(Value::as_str) {
                Some(u) if u.starts_with("https://") => Ok(u.to_owned()),
                Some(_) => Err(format!("discovery: `{name}` is not https")),
                None => Err(format!("discovery: no `{name}`")),
            }
        };
        let parse = |s: String| -> Result<http::Uri, String> {
            s.parse()
                .map_err(|_| "discovery: bad endpoint URL".to_owned())
        };
        // The keys are fetched by the key source; it must be https too.
        https("jwks_uri")?;
        Ok(ProviderMeta {
            authorization_endpoint: https("authorization_endpoint")?,
            token_endpoint: parse(https("token_endpoint")?)?,
            end_session_endpoint: https("end_session_endpoint").ok(),
            iss_parameter_supported: doc
                .get("authorization_response_iss_parameter_supported")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// A token endpoint request (code exchange or refresh) with the
    /// configured client authentication. Returns the status and JSON body.
    pub(crate) async fn token(
        &self,
        meta: &ProviderMeta,
        oidc: &Oidc,
        form: &[(&str, &str)],
    ) -> Result<(StatusCode, Value), String> {
        let mut pairs: Vec<(&str, &str)> = form.to_vec();
        let secret = oidc.client_secret.0.as_str();
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(meta.token_endpoint.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        match oidc.auth_method {
            ClientAuth::ClientSecretBasic => {
                use base64::Engine as _;
                // RFC 6749 2.3.1: form-encode id and secret, then base64.
                let creds = zeroize::Zeroizing::new(format!(
                    "{}:{}",
                    form_component(&oidc.client_id),
                    form_component(secret)
                ));
                let b64 = zeroize::Zeroizing::new(
                    base64::engine::general_purpose::STANDARD.encode(creds.as_bytes()),
                );
                req = req.header(header::AUTHORIZATION, format!("Basic {}", b64.as_str()));
            }
            ClientAuth::ClientSecretPost => {
                pairs.push(("client_id", &oidc.client_id));
                pairs.push(("client_secret", secret));
            }
        }
        let body = zeroize::Zeroizing::new(form_encode(&pairs));
        let req = req
            .body(Full::new(Bytes::from(body.as_bytes().to_vec())))
            .map_err(|e| e.to_string())?;
        self.call(req)
            .await
            .map_err(|e| format!("token endpoint: {e}"))
    }
}

/// Shared, lazily discovered provider state.
pub(crate) struct Provider {
    pub(crate) client: ProviderClient,
    meta: tokio::sync::Mutex<Option<Arc<ProviderMeta>>>,
}

impl Provider {
    pub(crate) fn new(client: ProviderClient) -> Self {
        Self {
            client,
            meta: tokio::sync::Mutex::new(None),
        }
    }

    /// The discovery result; discovered on first use and again after a
    /// failure (never cached as failed).
    pub(crate) async fn meta(&self, issuer: &str) -> Result<Arc<ProviderMeta>, String> {
        let mut slot = self.meta.lock().await;
        if let Some(m) = slot.as_ref() {
            return Ok(Arc::clone(m));
        }
        let m = Arc::new(self.client.discover(issuer).await?);
        *slot = Some(Arc::clone(&m));
        Ok(m)
    }
}
