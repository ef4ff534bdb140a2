//! The Portcullis gateway.
//!
//! Listeners accept mTLS connections; each request goes through one
//! pipeline — authenticate (the verified client certificate, then a
//! bearer token if present) -> normalise -> route -> authorize
//! (default-deny policy) -> forward with a signed identity assertion ->
//! audit. The admin listener serves health,
//! readiness, metrics and the gateway's JWKS. Configuration and policy
//! are loaded completely before any listener accepts, and reloaded
//! atomically.
//!
//! This crate does not parse the configuration (`portcullis-config`),
//! decide (`portcullis-policy`) or verify certificates
//! (`portcullis-authn`); it wires them in order.

mod admin;
mod assertion;
mod authz;
mod background;
mod bearer;
mod body;
mod browser;
mod bundle;
mod chains;
mod conn_trust;
mod drain;
mod https;
mod installed;
mod listener;
mod reload;
mod response;
mod router;
mod service;
mod sessions;
mod state;
mod ticks;
mod upstream;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use portcullis_telemetry::{AuditConfig, AuditDest, AuditLog, AuditWriterTask, Metrics};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use assertion::{IDENTITY_HEADER, JWKS_PATH};
pub use browser::{CALLBACK_PATH, LOGIN_COOKIE, LOGOUT_PATH, MFA_METHODS};
pub use listener::{H2_KEEPALIVE_INTERVAL, H2_KEEPALIVE_TIMEOUT, MAX_CONCURRENT_STREAMS};
pub use upstream::MAX_IDLE_PER_UPSTREAM;

/// Request id sent upstream and back to the client.
pub const REQUEST_ID_HEADER: &str = "x-portcullis-request-id";

/// Names of the headers the gateway writes on every request, made once:
/// inserting by `&str` builds (and allocates) a non-standard name each time.
pub(crate) mod names {
    use http::HeaderName;

    pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static(crate::REQUEST_ID_HEADER);
    pub(crate) const IDENTITY: HeaderName = HeaderName::from_static(crate::IDENTITY_HEADER);
    pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
    pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Load(String),
    #[error("cannot bind `{addr}` for {what}: {source}")]
    Bind {
        what: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("identity assertion key: {0}")]
    Assertion(String),
    #[error("audit log: {0}")]
    Audit(String),
}

/// State shared by every connection.
pub(crate) struct Shared {
    pub(crate) config_path: PathBuf,
    pub(crate) state: ArcSwap<state::Snapshot>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) audit: AuditLog,
    pub(crate) signer: assertion::AssertionSigner,
    /// True while listeners accept; false before start and while draining.
    pub(crate) serving: AtomicBool,
    pub(crate) reload_lock: tokio::sync::Mutex<()>,
    /// How the last reload ended, for `/readyz`.
    pub(crate) last_reload: std::sync::Mutex<Option<reload::Outcome>>,
    /// Signed policy bundles, when the policy comes from them.
    pub(crate) bundle: Option<Arc<bundle::BundleManager>>,
    /// Client chains kept by established connections, shared.
    pub(crate) chains: chains::ChainCache,
}

/// A running gateway.
pub struct Gateway {
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    drain: drain::Drain,
    /// Listeners and the reload watcher: stopped first.
    tasks: Vec<JoinHandle<()>>,
    /// The admin listener stops only after the drain, so `/readyz` answers
    /// 503 and `/metrics` stays scrapeable while requests drain.
    admin_shutdown_tx: watch::Sender<bool>,
    admin_task: Option<JoinHandle<()>>,
    audit_task: AuditWriterTask,
    listeners: BTreeMap<String, SocketAddr>,
    admin: Option<SocketAddr>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("listeners", &self.listeners)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Loads configuration, policy and trust material, then binds and
    /// starts the listeners. Nothing accepts traffic before everything
    /// has loaded; any load error is returned and nothing is started.
    pub async fn start(config_path: &Path) -> Result<Gateway, StartError> {
        let path = config_path.to_owned();
        let metrics = Arc::new(Metrics::new());
        let load_metrics = metrics.clone();
        let (snap, loaded_files) = tokio::task::spawn_blocking(move || {
            reload::load_snapshot_at_start(&path, &load_metrics)
        })
        .await
        .map_err(|e| StartError::Load(e.to_string()))?
        .map_err(|e| StartError::Load(e.to_string()))?;
        metrics.set_policy(snap.policy.policy.revision(), &snap.policy.sha256);
        let audit_cfg = AuditConfig {
            dest: match &snap.config.audit.dest {
                portcullis_config::AuditDest::Stdout => AuditDest::Stdout,
                portcullis_config::AuditDest::File(p) => AuditDest::File(p.clone()),
            },
            queue_capacity: snap.config.audit.queue_capacity,
            deny_wait: snap.config.audit.deny_wait,
        };
        let (audit, audit_task) = AuditLog::start(audit_cfg, metrics.clone())
            .map_err(|e| StartError::Audit(e.to_string()))?;
        let signer = assertion::AssertionSigner::new(
            snap.config
                .assertion
                .signing_key_pkcs8
                .as_deref()
                .map(|k| k.as_slice()),
            &snap.config.assertion.issuer,
            snap.config.assertion.ttl,
        )
        .map_err(|e| StartError::Assertion(e.to_string()))?;

        // Bind everything before serving anything.
        let mut bound = Vec::new();
        for l in &snap.config.listeners {
            let tcp = TcpListener::bind(l.bind)
                .await
                .map_err(|source| StartError::Bind {
                    what: format!("listener `{}`", l.name),
                    addr: l.bind,
                    source,
                })?;
            bound.push((l.name.clone(), tcp));
        }
        let admin_tcp = match &snap.config.admin {
            Some(a) => {
                Some(
                    TcpListener::bind(a.bind)
                        .await
                        .map_err(|source| StartError::Bind {
                            what: "admin".to_owned(),
                            addr: a.bind,
                            source,
                        })?,
                )
            }
            None => None,
        };

        let bundle = match &snap.config.policy.bundle {
            None => None,
            Some(src) => Some(Arc::new(
                bundle::BundleManager::new(src.clone()).map_err(StartError::Load)?,
            )),
        };
        if let Some((rev, _)) = &snap.bundle {
            metrics.set_bundle(*rev);
        }
        let shared = Arc::new(Shared {
            config_path: config_path.to_owned(),
            state: ArcSwap::from_pointee(snap),
            metrics,
            audit,
            signer,
            serving: AtomicBool::new(false),
            reload_lock: tokio::sync::Mutex::new(()),
            last_reload: std::sync::Mutex::new(None),
            bundle,
            chains: chains::ChainCache::default(),
        });
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (admin_shutdown_tx, admin_shutdown_rx) = watch::channel(false);
        let drain = drain::Drain::new();
        let mut tasks = Vec::new();
        let mut listeners = BTreeMap::new();
        let mut admin = None;
        let mut admin_task = None;
        if let Some(tcp) = admin_tcp {
            admin = tcp.local_addr().ok();
            admin_task = Some(tokio::spawn(admin::serve(
                shared.clone(),
                tcp,
                admin_shutdown_rx,
            )));
        }
        for (name, tcp) in bound {
            if let Ok(a) = tcp.local_addr() {
                listeners.insert(name.clone(), a);
            }
            tasks.push(tokio::spawn(listener::serve(
                shared.clone(),
                name,
                tcp,
                drain.watcher(),
                shutdown_rx.clone(),
            )));
        }
        if let Some(b) = &shared.bundle {
            tasks.push(tokio::spawn(bundle::poll_loop(
                b.clone(),
                shared.clone(),
                shutdown_rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(reload::watch_loop(
            shared.clone(),
            shutdown_rx,
            loaded_files,
        )));
        shared.serving.store(true, Ordering::Release);
        {
            let snap = shared.state.load();
            tracing::info!(
                listeners = ?listeners,
                admin = ?admin,
                policy_revision = %snap.policy.policy.revision(),
                policy_sha256 = %snap.policy.sha256,
                assertion_kid = %shared.signer.kid(),
                "portcullis started"
            );
        }
        Ok(Gateway {
            shared,
            shutdown_tx,
            drain,
            tasks,
            admin_shutdown_tx,
            admin_task,
            audit_task,
            listeners,
            admin,
        })
    }

    /// Bound address of each listener (useful with port 0).
    pub fn listener_addrs(&self) -> &BTreeMap<String, SocketAddr> {
        &self.listeners
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// Reloads configuration and policy now, as SIGHUP does.
    pub async fn reload(&self) -> Result<(), String> {
        reload::reload(&self.shared, "api").await
    }

    /// Stops accepting, drains in-flight requests for at most the
    /// configured drain timeout, then stops the admin listener (which
    /// reports not ready meanwhile) and flushes the audit log.
    pub async fn shutdown(self) {
        let drain = self.shared.state.load().config.drain_timeout;
        self.shared.serving.store(false, Ordering::Release);
        let _ = self.shutdown_tx.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        tracing::info!(timeout = ?drain, "draining in-flight requests");
        // Listener tasks have ended: only connections still watch.
        if tokio::time::timeout(drain, self.drain.drain())
            .await
            .is_err()
        {
            tracing::warn!("drain timeout reached; remaining connections are closed");
        }
        let _ = self.admin_shutdown_tx.send(true);
        if let Some(t) = self.admin_task {
            let _ = t.await;
        }
        let shared = self.shared;
        drop(shared);
        self.audit_task.shutdown().await;
        tracing::info!("portcullis stopped");
    }
}

/// Runs the gateway until SIGTERM or SIGINT, then shuts down gracefully.
/// When `ready_file` is given, the bound addresses are written there as
/// JSON once every listener accepts.
pub async fn run(config_path: &Path, ready_file: Option<&Path>) -> Result<(), StartError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| StartError::Load(format!("cannot listen for SIGTERM: {e}")))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| StartError::Load(format!("cannot listen for SIGINT: {e}")))?;
    let gw = Gateway::start(config_path).await?;
    if let Some(p) = ready_file {
        let body =
            serde_json::json!({ "listeners": gw.listener_addrs(), "admin": gw.admin_addr() });
        let tmp = p.with_extension("tmp");
        if let Err(e) =
            std::fs::write(&tmp, body.to_string()).and_then(|()| std::fs::rename(&tmp, p))
        {
            tracing::error!(error = %e, "cannot write the ready file");
        }
    }
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    gw.shutdown().await;
    Ok(())
}
