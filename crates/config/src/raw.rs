//! The configuration file as written: serde structs that refuse unknown
//! fields. Nothing here is validated beyond its YAML type; see
//! [`crate::Config::from_raw`].

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) listeners: Vec<RawListener>,
    pub(crate) routes: Vec<RawRoute>,
    pub(crate) policy: RawPolicy,
    #[serde(default)]
    pub(crate) admin: Option<RawAdmin>,
    #[serde(default)]
    pub(crate) identity_assertion: Option<RawAssertion>,
    #[serde(default)]
    pub(crate) audit: Option<RawAudit>,
    #[serde(default)]
    pub(crate) shutdown: Option<RawShutdown>,
    #[serde(default)]
    pub(crate) bearer: Option<RawBearer>,
    #[serde(default)]
    pub(crate) oidc: Option<RawOidc>,
    #[serde(default)]
    pub(crate) sessions: Option<RawSessions>,
    #[serde(default)]
    pub(crate) via: Option<RawVia>,
}

/// The `Via` entry added to forwarded requests.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVia {
    /// Default `true`.
    #[serde(default)]
    pub(crate) send: Option<bool>,
    /// Default [`crate::DEFAULT_VIA_PSEUDONYM`].
    #[serde(default)]
    pub(crate) pseudonym: Option<String>,
}

/// The OpenID provider browsers log in at.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOidc {
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    #[serde(default)]
    pub(crate) client_secret_file: Option<String>,
    #[serde(default)]
    pub(crate) client_secret_env: Option<String>,
    #[serde(default)]
    pub(crate) auth_method: Option<String>,
    pub(crate) redirect_uri: String,
    #[serde(default)]
    pub(crate) post_logout_redirect_uri: Option<String>,
    #[serde(default)]
    pub(crate) scopes: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) ca: Option<String>,
    #[serde(default)]
    pub(crate) algorithms: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) leeway: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSessions {
    #[serde(default)]
    pub(crate) store: Option<RawSessionStore>,
    #[serde(default)]
    pub(crate) cookie_name: Option<String>,
    #[serde(default)]
    pub(crate) idle_timeout: Option<String>,
    #[serde(default)]
    pub(crate) absolute_timeout: Option<String>,
    #[serde(default)]
    pub(crate) provider_refresh_interval: Option<String>,
    pub(crate) refresh_token_keys: Vec<RawSealKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSessionStore {
    #[serde(default)]
    pub(crate) embedded: Option<RawEmbeddedStore>,
    #[serde(default)]
    pub(crate) redis: Option<RawRedisStore>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEmbeddedStore {
    pub(crate) path: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedisStore {
    pub(crate) url: String,
    #[serde(default)]
    pub(crate) username: Option<String>,
    #[serde(default)]
    pub(crate) password_file: Option<String>,
    #[serde(default)]
    pub(crate) password_env: Option<String>,
    #[serde(default)]
    pub(crate) ca: Option<String>,
    #[serde(default)]
    pub(crate) timeout: Option<String>,
    #[serde(default)]
    pub(crate) key_prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSealKey {
    pub(crate) id: String,
    pub(crate) file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBearer {
    pub(crate) issuers: Vec<RawIssuer>,
    #[serde(default)]
    pub(crate) cache_entries: Option<usize>,
}

/// A trusted token issuer. There is no key that skips signature or claim
/// checks: `issuer` and `audiences` are required and never empty.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIssuer {
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    #[serde(default)]
    pub(crate) jwks_uri: Option<String>,
    #[serde(default)]
    pub(crate) jwks_file: Option<String>,
    #[serde(default)]
    pub(crate) ca: Option<String>,
    #[serde(default)]
    pub(crate) algorithms: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) leeway: Option<String>,
    #[serde(default)]
    pub(crate) required_claims: Vec<String>,
    #[serde(default)]
    pub(crate) typ: Vec<String>,
    #[serde(default)]
    pub(crate) max_token_bytes: Option<usize>,
    #[serde(default)]
    pub(crate) jwks: Option<RawJwksTiming>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwksTiming {
    pub(crate) min_refresh: Option<String>,
    pub(crate) max_refresh: Option<String>,
    pub(crate) default_refresh: Option<String>,
    pub(crate) unknown_kid_interval: Option<String>,
    pub(crate) max_staleness: Option<String>,
    pub(crate) fetch_timeout: Option<String>,
    pub(crate) max_bytes: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListener {
    pub(crate) name: String,
    pub(crate) bind: String,
    pub(crate) tls: RawTls,
    #[serde(default)]
    pub(crate) server_names: Vec<String>,
    #[serde(default)]
    pub(crate) limits: Option<RawLimits>,
    #[serde(default)]
    pub(crate) timeouts: Option<RawServerTimeouts>,
}

/// There is deliberately no key that turns verification off: the only
/// choices are `required` and `optional` (anonymous requests are then
/// judged by the policy, which denies them unless a rule allows them).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub(crate) cert: String,
    pub(crate) key: String,
    pub(crate) client_ca: String,
    #[serde(default)]
    pub(crate) client_auth: Option<RawClientAuth>,
    #[serde(default)]
    pub(crate) crls: Vec<String>,
    #[serde(default)]
    pub(crate) spiffe_trust_domains: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawClientAuth {
    Required,
    Optional,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub(crate) max_header_count: Option<usize>,
    pub(crate) max_header_bytes: Option<usize>,
    pub(crate) max_uri_len: Option<usize>,
    pub(crate) max_body_bytes: Option<u64>,
    pub(crate) max_connections: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServerTimeouts {
    pub(crate) header_read: Option<String>,
    pub(crate) request: Option<String>,
    pub(crate) tls_handshake: Option<String>,
    pub(crate) idle: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) host: Option<String>,
    #[serde(default)]
    pub(crate) path_prefix: Option<String>,
    #[serde(default)]
    pub(crate) methods: Vec<String>,
    pub(crate) upstream: RawUpstream,
    /// Forward the client's `Authorization: Bearer` header upstream
    /// (default: removed once verified; the identity assertion carries who).
    #[serde(default)]
    pub(crate) pass_bearer_token: Option<bool>,
    /// Browsers without a session are sent to the OpenID provider.
    #[serde(default)]
    pub(crate) browser_login: Option<bool>,
    /// The only client request headers the upstream receives (besides
    /// what the gateway writes); absent: every header the gateway does
    /// not remove.
    #[serde(default)]
    pub(crate) client_headers: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    pub(crate) url: String,
    #[serde(default)]
    pub(crate) ca: Option<String>,
    #[serde(default)]
    pub(crate) connect_timeout: Option<String>,
    #[serde(default)]
    pub(crate) request_timeout: Option<String>,
    #[serde(default)]
    pub(crate) idle_timeout: Option<String>,
    #[serde(default)]
    pub(crate) body_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    #[serde(default)]
    pub(crate) file: Option<String>,
    #[serde(default)]
    pub(crate) bundle: Option<RawBundle>,
    #[serde(default)]
    pub(crate) watch: Option<bool>,
    #[serde(default)]
    pub(crate) poll_interval: Option<String>,
}

/// Signed policy bundles: the policy comes only from a verified bundle.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBundle {
    #[serde(default)]
    pub(crate) file: Option<String>,
    #[serde(default)]
    pub(crate) dir: Option<String>,
    #[serde(default)]
    pub(crate) url: Option<String>,
    pub(crate) trust_root: String,
    #[serde(default)]
    pub(crate) state_dir: Option<String>,
    #[serde(default)]
    pub(crate) poll_interval: Option<String>,
    #[serde(default)]
    pub(crate) max_age: Option<String>,
    #[serde(default)]
    pub(crate) ca: Option<String>,
    #[serde(default)]
    pub(crate) max_bytes: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub(crate) bind: String,
    /// File holding the bearer token the session admin API requires.
    #[serde(default)]
    pub(crate) token_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAssertion {
    #[serde(default)]
    pub(crate) signing_key: Option<String>,
    #[serde(default)]
    pub(crate) issuer: Option<String>,
    #[serde(default)]
    pub(crate) ttl: Option<String>,
    /// `request` (default) or `connection`.
    #[serde(default)]
    pub(crate) scope: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    /// `stdout` or a file path.
    pub(crate) dest: String,
    #[serde(default)]
    pub(crate) queue_capacity: Option<usize>,
    #[serde(default)]
    pub(crate) deny_wait: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawShutdown {
    pub(crate) drain_timeout: Option<String>,
}
