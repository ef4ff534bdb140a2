//! The runtime snapshot: everything a request needs, built completely
//! from one configuration and one policy, then published in one atomic
//! step. A request loads the snapshot once and uses it throughout, so it
//! never sees a mix of two versions, an empty policy or a half-loaded one.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use portcullis_config::{load_policy, Config, LoadedPolicy};
use tokio_rustls::TlsAcceptor;

use crate::bearer::BearerAuth;
use crate::router::RouteTable;
use crate::upstream::UpstreamClient;

pub(crate) struct Snapshot {
    pub(crate) config: Config,
    pub(crate) policy: Arc<LoadedPolicy>,
    pub(crate) routes: RouteTable,
    /// One client per route (shared between routes with the same upstream).
    pub(crate) upstreams: Vec<Arc<UpstreamClient>>,
    /// TLS acceptor and client-certificate trust per listener, in the
    /// order of `config.listeners` (which a reload cannot change).
    pub(crate) tls: Vec<ListenerTls>,
    /// Bearer token verification, when issuers are configured.
    pub(crate) bearer: Option<BearerAuth>,
    /// Browser login and sessions, when `oidc` is configured.
    pub(crate) browser: Option<crate::browser::BrowserAuth>,
    /// Revision and digest of the signed bundle the policy came from.
    pub(crate) bundle: Option<(u64, Arc<str>)>,
    /// Strings every audit record of this snapshot repeats, shared.
    pub(crate) audit: AuditStrings,
    /// Request metric handles by route index, made on first use.
    pub(crate) route_metrics: Vec<std::sync::OnceLock<portcullis_telemetry::RouteMetrics>>,
    /// The `Via` entry forwarded requests get, by the version the request
    /// came in with; `None` with `via.send: false`.
    pub(crate) via: Option<ViaEntries>,
    pub(crate) loaded_at: jiff::Timestamp,
}

/// `1.0 <pseudonym>`, `1.1 <pseudonym>` and `2 <pseudonym>` (RFC 9110
/// §7.6.3: the received protocol, then who received it), made once per
/// snapshot.
pub(crate) struct ViaEntries {
    http10: http::HeaderValue,
    http11: http::HeaderValue,
    http2: http::HeaderValue,
}

impl ViaEntries {
    /// `None` if the pseudonym is not a header value (the configuration
    /// allows only token characters, so never).
    pub(crate) fn new(pseudonym: &str) -> Option<Self> {
        let entry = |version: &str| http::HeaderValue::from_str(&format!("{version} {pseudonym}"));
        Some(Self {
            http10: entry("1.0").ok()?,
            http11: entry("1.1").ok()?,
            http2: entry("2").ok()?,
        })
    }

    /// The entry for a request received as `version`.
    pub(crate) fn for_version(&self, version: http::Version) -> &http::HeaderValue {
        match version {
            http::Version::HTTP_2 => &self.http2,
            http::Version::HTTP_09 | http::Version::HTTP_10 => &self.http10,
            _ => &self.http11,
        }
    }
}

/// A listener's TLS as one snapshot has it.
#[derive(Clone)]
pub(crate) struct ListenerTls {
    pub(crate) acceptor: TlsAcceptor,
    /// The verifier the acceptor uses, to verify established connections
    /// again when `trust_id` changes.
    pub(crate) verifier: Arc<portcullis_authn::ClientVerifier>,
    /// Names the listener's `client_auth` (CA bundle, CRLs, mode, trust
    /// domains): kept across a reload that leaves it as it was, new
    /// otherwise. Never [`crate::conn_trust::DISTRUSTED`].
    pub(crate) trust_id: u64,
}

/// A fresh [`ListenerTls::trust_id`].
fn next_trust_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The policy's revision and digest and the route names, made once per
/// snapshot and shared by the audit records of its requests.
pub(crate) struct AuditStrings {
    pub(crate) policy_revision: Arc<str>,
    pub(crate) policy_sha256: Arc<str>,
    /// By route index.
    pub(crate) route_names: Vec<Arc<str>>,
}

impl AuditStrings {
    fn new(policy: &LoadedPolicy, config: &Config) -> Self {
        Self {
            policy_revision: policy.policy.revision().into(),
            policy_sha256: policy.sha256.as_str().into(),
            route_names: config
                .routes
                .iter()
                .map(|r| r.name.as_str().into())
                .collect(),
        }
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("policy_revision", &self.policy.policy.revision())
            .field("policy_sha256", &self.policy.sha256)
            .field("loaded_at", &self.loaded_at)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    pub(crate) fn listener(&self, name: &str) -> Option<&portcullis_config::Listener> {
        self.config.listeners.iter().find(|l| l.name == name)
    }

    /// The position of listener `name`: the same in every snapshot.
    pub(crate) fn listener_index(&self, name: &str) -> Option<usize> {
        self.config.listeners.iter().position(|l| l.name == name)
    }
}

/// Loads and validates configuration and policy, builds TLS acceptors and
/// upstream clients. Reuses `previous`'s upstream clients whose settings
/// did not change. Blocking (file I/O): call from a blocking thread.
/// A policy compiled ahead of the load (a bundle compiled when it was
/// verified): used when it is the installed bundle and the configuration
/// still has the same routes, so activation compiles once.
pub(crate) struct Precompiled {
    pub(crate) digest: String,
    pub(crate) routes: Vec<String>,
    pub(crate) policy: Arc<LoadedPolicy>,
}

pub(crate) fn load(
    config_path: &Path,
    previous: Option<&Snapshot>,
    metrics: &Arc<portcullis_telemetry::Metrics>,
) -> Result<Snapshot, LoadError> {
    load_with(config_path, previous, None, metrics)
}

pub(crate) fn load_with(
    config_path: &Path,
    previous: Option<&Snapshot>,
    precompiled: Option<Precompiled>,
    metrics: &Arc<portcullis_telemetry::Metrics>,
) -> Result<Snapshot, LoadError> {
    let config = Config::load(config_path).map_err(|e| LoadError::Config(e.to_string()))?;
    let (policy, bundle) = match &config.policy.bundle {
        None => (
            Arc::new(
                load_policy(&config.policy.path, &config.routes)
                    .map_err(|e| LoadError::Policy(e.to_string()))?,
            ),
            None,
        ),
        // Only the verified, installed bundle; before the first one, the
        // empty policy (and the gateway answers 503 anyway).
        Some(src) => match crate::installed::read_installed(src).map_err(LoadError::Policy)? {
            None => (
                Arc::new(LoadedPolicy {
                    policy: portcullis_policy::Policy::empty(),
                    sha256: String::new(),
                }),
                None,
            ),
            Some(i) => {
                let routes: Vec<String> = config.routes.iter().map(|r| r.name.clone()).collect();
                let policy = match precompiled {
                    Some(p) if p.digest == i.digest && p.routes == routes => p.policy,
                    _ => Arc::new(
                        portcullis_config::compile_policy(
                            &config.policy.path,
                            &i.policy,
                            &config.routes,
                        )
                        .map_err(|e| LoadError::Policy(e.to_string()))?,
                    ),
                };
                (policy, Some((i.revision, Arc::from(i.digest))))
            }
        },
    };
    for warning in portcullis_config::policy_warnings(&config, &policy.policy) {
        tracing::warn!(policy = %config.policy.path.display(), "{warning}");
    }
    let mut snap =
        build(config_path, config, policy, previous, metrics).map_err(LoadError::Config)?;
    snap.bundle = bundle;
    Ok(snap)
}

/// Which part of a load failed: the configuration (and what it names) or
/// the policy.
#[derive(Debug)]
pub(crate) enum LoadError {
    Config(String),
    Policy(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(m) | Self::Policy(m) => f.write_str(m),
        }
    }
}

fn build(
    config_path: &Path,
    config: Config,
    policy: Arc<LoadedPolicy>,
    previous: Option<&Snapshot>,
    metrics: &Arc<portcullis_telemetry::Metrics>,
) -> Result<Snapshot, String> {
    if let Some(prev) = previous {
        check_static_parts(&prev.config, &config)?;
    }
    let mut tls = Vec::with_capacity(config.listeners.len());
    for (index, l) in config.listeners.iter().enumerate() {
        let listener_err = |e: portcullis_authn::AuthnError| {
            format!("{}: listener `{}`: {e}", config_path.display(), l.name)
        };
        // Unchanged client-certificate trust keeps its verifier and id, so
        // established connections need not be verified again.
        // (Listeners keep their order: a reload that changes them was
        // refused above.)
        let kept = previous
            .filter(|p| {
                p.config
                    .listeners
                    .get(index)
                    .is_some_and(|old| old.tls.client_auth == l.tls.client_auth)
            })
            .and_then(|p| p.tls.get(index));
        let (verifier, trust_id) = match kept {
            Some(k) => (Arc::clone(&k.verifier), k.trust_id),
            None => (
                portcullis_authn::client_verifier(&l.tls.client_auth).map_err(listener_err)?,
                next_trust_id(),
            ),
        };
        let sc = portcullis_authn::server_config_with_verifier(
            l.tls.chain.clone(),
            l.tls.key.clone_key(),
            Arc::clone(&verifier),
        )
        .map_err(listener_err)?;
        tls.push(ListenerTls {
            acceptor: TlsAcceptor::from(sc),
            verifier,
            trust_id,
        });
    }
    let mut upstreams: Vec<Arc<UpstreamClient>> = Vec::with_capacity(config.routes.len());
    let mut by_key: HashMap<String, Arc<UpstreamClient>> = HashMap::new();
    if let Some(prev) = previous {
        for c in &prev.upstreams {
            by_key.insert(c.key().to_owned(), c.clone());
        }
    }
    for r in &config.routes {
        let key = crate::upstream::client_key(&r.upstream);
        let client = match by_key.get(&key) {
            Some(c) => c.clone(),
            None => {
                let c =
                    Arc::new(UpstreamClient::new(&r.upstream).map_err(|e| {
                        format!("{}: route `{}`: {e}", config_path.display(), r.name)
                    })?);
                by_key.insert(key, c.clone());
                c
            }
        };
        upstreams.push(client);
    }
    let bearer = match &config.bearer {
        None => None,
        Some(b) => {
            let rt = tokio::runtime::Handle::try_current()
                .map_err(|_| "internal: no runtime to fetch issuer keys".to_owned())?;
            Some(
                BearerAuth::build(b, previous.and_then(|p| p.bearer.as_ref()), &rt)
                    .map_err(|e| format!("{}: bearer: {e}", config_path.display()))?,
            )
        }
    };
    let browser = match (&config.oidc, &config.sessions) {
        (Some(o), Some(sess)) => {
            let rt = tokio::runtime::Handle::try_current()
                .map_err(|_| "internal: no runtime for the session store".to_owned())?;
            Some(
                crate::browser::BrowserAuth::build(
                    o,
                    sess,
                    previous.and_then(|p| p.browser.as_ref()),
                    &rt,
                    metrics,
                )
                .map_err(|e| format!("{}: {e}", config_path.display()))?,
            )
        }
        _ => None,
    };
    let via = match &config.via {
        None => None,
        Some(p) => Some(ViaEntries::new(p).ok_or_else(|| {
            format!(
                "{}: via.pseudonym: not a header value",
                config_path.display()
            )
        })?),
    };
    Ok(Snapshot {
        bundle: None,
        via,
        audit: AuditStrings::new(&policy, &config),
        route_metrics: config
            .routes
            .iter()
            .map(|_| std::sync::OnceLock::new())
            .collect(),
        browser,
        bearer,
        routes: RouteTable::new(&config.routes),
        config,
        policy,
        upstreams,
        tls,
        loaded_at: jiff::Timestamp::now(),
    })
}

/// Sockets are bound, the audit writer and the assertion signer started
/// once at start: a reload may not change them.
fn check_static_parts(old: &Config, new: &Config) -> Result<(), String> {
    let listeners = |c: &Config| {
        c.listeners
            .iter()
            .map(|l| (l.name.clone(), l.bind))
            .collect::<Vec<_>>()
    };
    if listeners(old) != listeners(new) {
        return Err(format!(
            "{}: listeners: names and bind addresses cannot change on reload; restart the gateway to change them",
            new.source.display()
        ));
    }
    if old.admin.as_ref().map(|a| a.bind) != new.admin.as_ref().map(|a| a.bind) {
        return Err(format!(
            "{}: admin.bind cannot change on reload; restart the gateway to change it",
            new.source.display()
        ));
    }
    // The bundle poller and its state are set up once at start; a
    // snapshot built from other bundle settings would read another state
    // directory than the poller writes, or a policy file the poller does
    // not serve.
    if old.policy.bundle != new.policy.bundle {
        return Err(format!(
            "{}: policy.bundle cannot change on reload (added, removed or edited); restart the gateway to change it",
            new.source.display()
        ));
    }
    // Accepting a new destination and writing on to the old one would
    // send the audit trail where the operator no longer looks.
    if old.audit != new.audit {
        return Err(format!(
            "{}: audit: dest, queue_capacity and deny_wait cannot change on reload; restart the gateway to change them (SIGUSR1 reopens the same file after rotation)",
            new.source.display()
        ));
    }
    // The assertion signer is built once at start; `scope` is read per
    // request and may change.
    let (a, b) = (&old.assertion, &new.assertion);
    // Compared in place: no copy of the private key is made.
    let same_key = a.signing_key_pkcs8.as_deref().map(Vec::as_slice)
        == b.signing_key_pkcs8.as_deref().map(Vec::as_slice);
    if a.issuer != b.issuer || a.ttl != b.ttl || !same_key {
        return Err(format!(
            "{}: identity_assertion.signing_key, issuer and ttl cannot change on reload; restart the gateway to change them",
            new.source.display()
        ));
    }
    Ok(())
}
