//! Signed policy bundles: the policy comes only from a bundle that
//! verified against the trust root, is newer than every bundle accepted
//! before (the rollback state survives restarts), and compiles against
//! the configured routes.
//!
//! The verified bundle is kept in the state directory
//! (`active-bundle.tar`, next to `state.json`); the configuration's policy
//! path points at it, so the ordinary reload machinery activates it in one
//! atomic step. Until a bundle verifies, and whenever no bundle could be
//! confirmed for longer than `max_age`, every request gets 503.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full, Limited};
use portcullis_bundle::{Bundle, BundleError, RollbackState, TrustRoot};
use portcullis_config::{BundleLocation, BundleSource};

use crate::installed::{limits, read_installed, Installed, ACTIVE_BUNDLE, STATE_FILE};
use crate::Shared;

/// Bound on one bundle download.
pub(crate) const BUNDLE_FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether the gateway may serve, and what it serves.
#[derive(Debug, Clone, Default)]
pub(crate) struct GateStatus {
    pub(crate) revision: Option<u64>,
    pub(crate) digest: Option<String>,
    /// When a bundle was last verified or confirmed unchanged.
    confirmed: Option<Instant>,
    pub(crate) last_refusal: Option<String>,
}

pub(crate) struct BundleManager {
    src: BundleSource,
    root: Mutex<TrustRoot>,
    state: Mutex<Option<RollbackState>>,
    gate: Mutex<GateStatus>,
    etag: Mutex<Option<String>>,
    http: Option<crate::https::HttpsClient>,
    /// Serialises installs (poller and admin uploads).
    pub(crate) publish: tokio::sync::Mutex<()>,
}

/// Why an install did not happen.
#[derive(Debug)]
pub(crate) enum InstallError {
    /// The bundle was refused (reason code, detail).
    Refused(&'static str, String),
    /// `If-Match` named another revision than the active one.
    Precondition { active: Option<u64> },
    /// The gateway could not store it.
    Internal(String),
}

impl InstallError {
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::Refused(r, _) => r,
            Self::Precondition { .. } => "precondition_failed",
            Self::Internal(_) => "internal",
        }
    }
}

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(r, d) => write!(f, "{r}: {d}"),
            Self::Precondition { active } => write!(
                f,
                "the active revision is {}",
                active.map_or_else(|| "none".to_owned(), |r| r.to_string())
            ),
            Self::Internal(d) => write!(f, "{d}"),
        }
    }
}

fn refused(e: BundleError) -> InstallError {
    InstallError::Refused(e.reason(), e.to_string())
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

impl BundleManager {
    pub(crate) fn new(src: BundleSource) -> Result<Self, String> {
        std::fs::create_dir_all(&src.state_dir)
            .map_err(|e| format!("policy.bundle.state_dir `{}`: {e}", src.state_dir.display()))?;
        let state = RollbackState::load(&src.state_dir.join(STATE_FILE))
            .map_err(|e| format!("bundle state: {e}"))?;
        let configured = std::fs::read(&src.trust_root)
            .map_err(|e| format!("policy.bundle.trust_root: {e}"))
            .and_then(|b| {
                TrustRoot::from_json(&b).map_err(|e| format!("policy.bundle.trust_root: {e}"))
            })?;
        // A root accepted through a verified root update supersedes the
        // configured one; an older configured root never replaces it.
        let root = match state.as_ref().and_then(|s| s.root_json.as_ref()) {
            Some(json) => {
                let saved = TrustRoot::from_json(json.as_bytes())
                    .map_err(|e| format!("bundle state root: {e}"))?;
                if saved.version() >= configured.version() {
                    saved
                } else {
                    configured
                }
            }
            None => configured,
        };
        let http = match &src.location {
            BundleLocation::Url(_) => Some(crate::https::client(
                src.ca.as_deref(),
                Duration::from_secs(10),
                "policy.bundle.ca",
            )?),
            _ => None,
        };
        let mut gate = GateStatus::default();
        if let Ok(Some(i)) = read_installed(&src) {
            // Installed at an earlier run: it was verified (or confirmed)
            // when the file was last written or touched, so it counts from
            // then; max_age still bounds how long it serves unconfirmed.
            gate.revision = Some(i.revision);
            gate.digest = Some(i.digest);
            gate.confirmed = std::fs::metadata(src.state_dir.join(ACTIVE_BUNDLE))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .and_then(|age| Instant::now().checked_sub(age));
        }
        Ok(Self {
            src,
            root: Mutex::new(root),
            state: Mutex::new(state),
            gate: Mutex::new(gate),
            etag: Mutex::new(None),
            http,
            publish: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) fn source(&self) -> &BundleSource {
        &self.src
    }

    pub(crate) fn status(&self) -> GateStatus {
        self.gate.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// `Ok` when requests may be served; otherwise why not (for 503,
    /// `/readyz` and the log).
    pub(crate) fn check(&self) -> Result<(), String> {
        // Called for every request: judged under the lock, nothing cloned.
        let Ok(g) = self.gate.lock() else {
            return Err("internal: bundle state unavailable".to_owned());
        };
        if g.revision.is_none() {
            return Err(match &g.last_refusal {
                Some(r) => format!("no verified policy bundle yet (last refusal: {r})"),
                None => "no verified policy bundle yet".to_owned(),
            });
        }
        match g.confirmed {
            Some(t) if t.elapsed() <= self.src.max_age => Ok(()),
            Some(t) => Err(format!(
                "no policy bundle confirmed for {}s (max_age {}s)",
                t.elapsed().as_secs(),
                self.src.max_age.as_secs()
            )),
            None => Err(
                "the installed policy bundle has not been confirmed by its source since start"
                    .to_owned(),
            ),
        }
    }

    /// Seconds since the last verification or confirmation.
    pub(crate) fn age_secs(&self) -> Option<u64> {
        self.status().confirmed.map(|t| t.elapsed().as_secs())
    }

    fn confirm(&self) {
        if let Ok(mut g) = self.gate.lock() {
            g.confirmed = Some(Instant::now());
            g.last_refusal = None;
        }
        // Remember the confirmation across restarts (see `new`).
        let path = self.src.state_dir.join(ACTIVE_BUNDLE);
        if let Ok(f) = std::fs::File::options().append(true).open(&path) {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
    }

    fn note_refusal(&self, shared: &Shared, e: &InstallError) {
        shared.metrics.bundle_refused(e.reason());
        tracing::warn!(reason = e.reason(), error = %e, "policy bundle refused; the running policy stays as it was");
        if let Ok(mut g) = self.gate.lock() {
            g.last_refusal = Some(e.to_string());
        }
    }

    /// Reads the source once: verifies and installs a new bundle, or
    /// confirms the current one.
    pub(crate) async fn poll(self: &Arc<Self>, shared: &Arc<Shared>) {
        let bytes = match self.fetch().await {
            Ok(Some(b)) => b,
            Ok(None) => {
                // 304 Not Modified: the source still serves what we run.
                if self.status().revision.is_some() {
                    self.confirm();
                }
                return;
            }
            Err(e) => {
                let e = InstallError::Refused("fetch_failed", e);
                self.note_refusal(shared, &e);
                return;
            }
        };
        match self.install(shared, bytes, None).await {
            Ok(_) => {}
            Err(e) => self.note_refusal(shared, &e),
        }
    }

    async fn fetch(&self) -> Result<Option<Vec<u8>>, String> {
        match &self.src.location {
            BundleLocation::File(p) => read_file(p, self.src.max_bytes).map(Some),
            BundleLocation::Dir(d) => {
                let b = Bundle::from_dir(d, &limits(&self.src))
                    .map_err(|e| format!("{}: {e}", e.reason()))?;
                b.to_tar().map(Some).map_err(|e| e.to_string())
            }
            BundleLocation::Url(u) => {
                let Some(client) = &self.http else {
                    return Err("no https client".to_owned());
                };
                let etag = self.etag.lock().ok().and_then(|e| e.clone());
                let mut req = http::Request::get(u.clone());
                if let Some(tag) = &etag {
                    req = req.header(http::header::IF_NONE_MATCH, tag.as_str());
                }
                let req = req
                    .body(Full::new(Bytes::new()))
                    .map_err(|e| e.to_string())?;
                let max = self.src.max_bytes;
                let fut = async {
                    let resp = client
                        .request(req)
                        .await
                        .map_err(|e| format!("fetch: {e}"))?;
                    let status = resp.status();
                    if status == StatusCode::NOT_MODIFIED && etag.is_some() {
                        return Ok(None);
                    }
                    if !status.is_success() {
                        return Err(format!("fetch: status {status}"));
                    }
                    let new_tag = resp
                        .headers()
                        .get(http::header::ETAG)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    if let Some(len) = resp
                        .headers()
                        .get(http::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<usize>().ok())
                    {
                        if len > max {
                            return Err(format!("too_large: {len} bytes, limit {max}"));
                        }
                    }
                    let body = Limited::new(resp.into_body(), max)
                        .collect()
                        .await
                        .map_err(|e| format!("too_large or truncated download: {e}"))?
                        .to_bytes();
                    if let Ok(mut e) = self.etag.lock() {
                        *e = new_tag;
                    }
                    Ok(Some(body.to_vec()))
                };
                tokio::time::timeout(BUNDLE_FETCH_TIMEOUT, fut)
                    .await
                    .map_err(|_| "fetch: timed out".to_owned())?
            }
        }
    }

    /// Verifies, checks rollback and compiles a bundle, then installs it
    /// and reloads. `expected`: the admin API's `If-Match` revision.
    /// `Ok(None)`: the bundle is the active one (confirmed, nothing to do).
    ///
    /// Everything but the final swap runs on a blocking thread: parsing,
    /// hashing, signature checks, compilation and the `fsync`ed writes
    /// must not stall the requests served by the runtime's threads.
    pub(crate) async fn install(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        bytes: Vec<u8>,
        expected: Option<Option<u64>>,
    ) -> Result<Option<Installed>, InstallError> {
        let _publish = self.publish.lock().await;
        if let Some(want) = expected {
            let active = self.status().revision;
            if want != active {
                return Err(InstallError::Precondition { active });
            }
        }
        let routes = shared.state.load().config.routes.clone();
        let installed = self.status().digest;
        let mgr = self.clone();
        let prepared = crate::background::low_priority("portcullis-bundle", move || {
            mgr.prepare(&bytes, &routes, installed.as_deref())
        })
        .await
        .map_err(InstallError::Internal)??;
        let Some(p) = prepared else {
            self.confirm();
            return Ok(None);
        };
        if let Ok(mut s) = self.state.lock() {
            *s = Some(p.state);
        }
        if let Some(r) = p.new_root {
            tracing::info!(
                version = r.version(),
                "trust root updated by a verified root update"
            );
            if let Ok(mut cur) = self.root.lock() {
                *cur = r;
            }
        }
        // The snapshot load reuses this compilation when nothing changed
        // in between, so a bundle is compiled once.
        crate::reload::reload_with(shared, "bundle", Some(p.precompiled))
            .await
            .map_err(InstallError::Internal)?;
        if let Ok(mut g) = self.gate.lock() {
            g.revision = Some(p.installed.revision);
            g.digest = Some(p.installed.digest.clone());
            g.confirmed = Some(Instant::now());
            g.last_refusal = None;
        }
        shared.metrics.set_bundle(p.installed.revision);
        tracing::info!(
            revision = p.installed.revision,
            digest = %p.installed.digest,
            signers = ?p.signers,
            "policy bundle verified and activated"
        );
        Ok(Some(p.installed))
    }

    /// The synchronous part of [`Self::install`]: verify, check rollback,
    /// compile against `routes`, then persist (bundle to a temp file, the
    /// rollback state, the rename that makes it active). `Ok(None)`: the
    /// bundle is the installed one (`installed`: its digest). Runs at low
    /// CPU priority, so it takes no lock a request waits for.
    fn prepare(
        &self,
        bytes: &[u8],
        routes: &[portcullis_config::Route],
        installed: Option<&str>,
    ) -> Result<Option<Prepared>, InstallError> {
        let bundle = Bundle::from_tar(bytes, &limits(&self.src)).map_err(refused)?;
        let root = self
            .root
            .lock()
            .map_err(|_| InstallError::Internal("trust root lock".into()))?
            .clone();
        let verified = root.verify(&bundle, now()).map_err(refused)?;
        let state = self
            .state
            .lock()
            .map_err(|_| InstallError::Internal("state lock".into()))?
            .clone();
        // The gate holds the installed bundle's digest (read and checked
        // against the rollback state at start, set by every install).
        let installed_matches = installed == Some(verified.digest.as_str());
        if let Some(st) = &state {
            let newer = st
                .check(verified.revision, &verified.digest)
                .map_err(refused)?;
            if !newer && installed_matches {
                return Ok(None);
            }
        }
        // Compile against the running configuration's routes before
        // anything is persisted: a bundle that cannot run is refused whole.
        let policy_text = String::from_utf8(bundle.entrypoint().to_vec()).map_err(|_| {
            InstallError::Refused("policy_invalid", "the policy is not UTF-8".into())
        })?;
        let origin = self.src.state_dir.join(ACTIVE_BUNDLE);
        let compiled = portcullis_config::compile_policy(&origin, &policy_text, routes)
            .map_err(|e| InstallError::Refused("policy_invalid", e.to_string()))?;
        let tmp = self.src.state_dir.join(format!("{ACTIVE_BUNDLE}.tmp"));
        let tar = bundle
            .to_tar()
            .map_err(|e| InstallError::Internal(e.to_string()))?;
        write_private(&tmp, &tar).map_err(InstallError::Internal)?;
        let new_root = verified.new_root.clone();
        let next = RollbackState {
            highest_revision: verified.revision,
            digest: verified.digest.clone(),
            root_version: new_root.as_ref().map_or(root.version(), TrustRoot::version),
            root_json: match &new_root {
                Some(r) => Some(String::from_utf8_lossy(r.bytes()).into_owned()),
                None => state.as_ref().and_then(|s| s.root_json.clone()),
            },
        };
        next.store(&self.src.state_dir.join(STATE_FILE))
            .map_err(|e| InstallError::Internal(e.to_string()))?;
        std::fs::rename(&tmp, &origin).map_err(|e| InstallError::Internal(e.to_string()))?;
        Ok(Some(Prepared {
            state: next,
            new_root,
            precompiled: crate::state::Precompiled {
                digest: verified.digest.clone(),
                routes: routes.iter().map(|r| r.name.clone()).collect(),
                policy: Arc::new(compiled),
            },
            signers: verified.signers,
            installed: Installed {
                policy: policy_text,
                revision: verified.revision,
                digest: verified.digest,
            },
        }))
    }
}

/// A verified, compiled and persisted bundle, ready to be swapped in.
struct Prepared {
    /// The rollback state now on disk, and the trust root it carries.
    state: RollbackState,
    new_root: Option<TrustRoot>,
    precompiled: crate::state::Precompiled,
    signers: Vec<String>,
    installed: Installed,
}

fn read_file(p: &Path, max: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let f = std::fs::File::open(p).map_err(|e| format!("`{}`: {e}", p.display()))?;
    let mut buf = Vec::new();
    f.take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| format!("`{}`: {e}", p.display()))?;
    if buf.len() > max {
        return Err(format!("too_large: `{}` is over {max} bytes", p.display()));
    }
    Ok(buf)
}

fn write_private(p: &PathBuf, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(p)
        .map_err(|e| format!("`{}`: {e}", p.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("`{}`: {e}", p.display()))
}

/// Polls the source every `poll_interval` with ±20 % jitter, faster
/// (backing off from 1 s) while no bundle has verified yet or fetches fail.
pub(crate) async fn poll_loop(
    mgr: Arc<BundleManager>,
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut failures: u32 = 0;
    loop {
        mgr.poll(&shared).await;
        let st = mgr.status();
        let ok = st.last_refusal.is_none() && st.revision.is_some();
        failures = if ok { 0 } else { failures.saturating_add(1) };
        let base = mgr.src.poll_interval;
        let delay = if ok {
            base
        } else {
            // 1 s, 2 s, 4 s ... up to the poll interval.
            Duration::from_secs(1u64 << failures.min(10)).min(base)
        };
        let jitter = jitter_fraction();
        let delay = delay.mul_f64(0.8 + 0.4 * jitter);
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

fn jitter_fraction() -> f64 {
    use aws_lc_rs::rand::SecureRandom;
    let mut b = [0u8; 2];
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut b);
    f64::from(u16::from_be_bytes(b)) / f64::from(u16::MAX)
}
