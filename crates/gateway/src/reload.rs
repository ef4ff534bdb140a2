//! Atomic hot reload on SIGHUP and when the configuration or policy file
//! changes. A new snapshot is built completely off the request path and
//! published with one atomic store; a failed load keeps the running
//! snapshot, logs the reason and counts it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;

use crate::Shared;

/// The files whose change triggers a reload: the configuration, the
/// policy and every certificate, key and CRL the configuration read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Watched {
    files: Vec<PathBuf>,
}

impl Watched {
    fn of(config_path: &Path, snap: &crate::state::Snapshot) -> Self {
        Self::of_config(config_path, &snap.config)
    }

    fn of_config(config_path: &Path, config: &portcullis_config::Config) -> Self {
        let files = [config_path, config.policy.path.as_path()]
            .into_iter()
            .chain(config.inputs.iter().map(PathBuf::as_path))
            .map(Path::to_path_buf)
            .collect();
        Self { files }
    }
}

/// How many times the load at start is repeated when the configuration
/// changed which files it names while it loaded.
const START_LOAD_ATTEMPTS: usize = 3;

/// The load at start, and the hash of the watched files taken before the
/// load read them, for the file watcher to start from.
///
/// Hashed after the load, a policy written in between would be taken for
/// loaded and not enforced until the next change. Hashed before, such a
/// write differs from the hash and is loaded at the watcher's next polls.
/// The files to hash come from the configuration alone (`names`, cheap:
/// no policy is compiled, no certificate read); when the loaded snapshot
/// names other files (the configuration changed in between), the load is
/// repeated. If it keeps changing, the hash is left to the watcher.
fn load_at_start<S, E>(
    names: impl Fn() -> Option<Watched>,
    mut load: impl FnMut() -> Result<S, E>,
    watched_of: impl Fn(&S) -> Watched,
) -> Result<(S, Option<[u8; 32]>), E> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let before = names().map(|w| {
            let digest = fingerprint(&w);
            (w, digest)
        });
        let snap = load()?;
        match before {
            Some((w, digest)) if w == watched_of(&snap) => return Ok((snap, Some(digest))),
            _ if attempt >= START_LOAD_ATTEMPTS => return Ok((snap, None)),
            _ => {}
        }
    }
}

/// [`load_at_start`] for the gateway's snapshot. Blocking.
pub(crate) fn load_snapshot_at_start(
    config_path: &Path,
    metrics: &Arc<portcullis_telemetry::Metrics>,
) -> Result<(crate::state::Snapshot, Option<[u8; 32]>), crate::state::LoadError> {
    load_at_start(
        || {
            portcullis_config::Config::load(config_path)
                .ok()
                .map(|c| Watched::of_config(config_path, &c))
        },
        || crate::state::load(config_path, None, metrics),
        |snap| Watched::of(config_path, snap),
    )
}

/// The most of one watched file that is hashed to tell whether it
/// changed: above the policy file limit, so any file a load would accept
/// is hashed whole.
const MAX_WATCHED_FILE_BYTES: u64 = portcullis_config::MAX_POLICY_FILE_BYTES as u64 + 1;

/// Hash of the watched files as they are now. A file that is missing,
/// unreadable, not a regular file (a FIFO would block the read) or too
/// large is hashed as such a marker rather than making the whole hash
/// unknown: its disappearance (an old certificate retired after the
/// configuration moved on) is a change like any other, and a reload then
/// says what is wrong, instead of watching stopping silently. Files are
/// hashed as they are read, not held whole. Blocking: run it off the
/// runtime.
fn fingerprint(w: &Watched) -> [u8; 32] {
    use std::io::Read;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    for p in &w.files {
        ctx.update(p.as_os_str().as_encoded_bytes());
        ctx.update(&[0]);
        let meta = match std::fs::metadata(p) {
            Ok(m) => m,
            // The installed bundle may not exist yet; its arrival is a
            // change. Any other missing file is one too.
            Err(e) => {
                ctx.update(b"missing:");
                ctx.update(format!("{:?}", e.kind()).as_bytes());
                continue;
            }
        };
        if !meta.is_file() {
            ctx.update(b"not a regular file");
            continue;
        }
        let mut len = 0u64;
        let read = std::fs::File::open(p).and_then(|f| {
            let mut f = f.take(MAX_WATCHED_FILE_BYTES);
            loop {
                let n = f.read(&mut buf)?;
                let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
                    return Ok(());
                };
                ctx.update(chunk);
                len += n as u64;
            }
        });
        match read {
            Ok(()) => ctx.update(&len.to_be_bytes()),
            Err(e) => {
                ctx.update(b"unreadable:");
                ctx.update(format!("{:?}", e.kind()).as_bytes());
            }
        }
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The watched files of the running snapshot and their hash, read on a
/// blocking thread; `None` if that thread could not run.
async fn current(shared: &Arc<Shared>) -> Option<(Watched, [u8; 32])> {
    let watched = Watched::of(&shared.config_path, &shared.state.load());
    tokio::task::spawn_blocking(move || {
        let digest = fingerprint(&watched);
        (watched, digest)
    })
    .await
    .ok()
}

/// What the file watcher knows between two polls.
#[derive(Debug, Default)]
struct WatchState {
    /// The watched files as they were just before the running
    /// configuration read them.
    last: Option<[u8; 32]>,
    /// A change seen at the last poll, waiting to be seen once more.
    pending: Option<[u8; 32]>,
}

impl WatchState {
    /// At a poll that saw `now`: whether to reload. A change is applied
    /// once the files have stayed the same for one poll interval, so a
    /// file being written in place is not loaded half-written.
    fn poll(&mut self, now: [u8; 32]) -> bool {
        if Some(now) == self.last {
            self.pending = None;
            return false;
        }
        if self.pending == Some(now) {
            self.pending = None;
            return true;
        }
        self.pending = Some(now);
        false
    }

    /// After a reload (a success or a refusal) of the files that hashed
    /// to `before` just before it read them. Remembering what was read,
    /// not what is there after, means a change written while the reload
    /// ran is seen at the next poll instead of being taken for loaded.
    fn reloaded(&mut self, before: [u8; 32]) {
        self.last = Some(before);
        self.pending = None;
    }
}

/// The hash to remember after a reload that read the files `watched`
/// hashing to `before`: `before` itself, unless the reload changed which
/// files are watched (a new certificate path), whose hash is then taken
/// now.
async fn after_reload(shared: &Arc<Shared>, watched: Watched, before: [u8; 32]) -> [u8; 32] {
    // The files are hashed again only when the set changed (the common
    // reload keeps it: its hash is `before`).
    if Watched::of(&shared.config_path, &shared.state.load()) == watched {
        return before;
    }
    current(shared).await.map_or(before, |(_, now)| now)
}

/// How a reload ended, as `/readyz` shows it: a refused reload leaves the
/// running configuration in force, and an operator should see that the
/// files on disk are not what is enforced without reading the log.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Outcome {
    pub(crate) at: String,
    pub(crate) trigger: &'static str,
    pub(crate) result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

fn record(shared: &Shared, trigger: &'static str, error: Option<String>) {
    let outcome = Outcome {
        at: jiff::Timestamp::now().to_string(),
        trigger,
        result: if error.is_none() {
            "applied"
        } else {
            "refused"
        },
        error,
    };
    if let Ok(mut last) = shared.last_reload.lock() {
        *last = Some(outcome);
    }
}

/// Reloads now. Reloads are serialised: two triggers never build in
/// parallel, and the later one always publishes last.
pub(crate) async fn reload(shared: &Arc<Shared>, trigger: &'static str) -> Result<(), String> {
    reload_with(shared, trigger, None).await
}

/// As [`reload`], with a policy compiled ahead (a just-verified bundle).
pub(crate) async fn reload_with(
    shared: &Arc<Shared>,
    trigger: &'static str,
    precompiled: Option<crate::state::Precompiled>,
) -> Result<(), String> {
    let _guard = shared.reload_lock.lock().await;
    let s = shared.clone();
    let result = tokio::task::spawn_blocking(move || {
        let prev = s.state.load_full();
        crate::state::load_with(&s.config_path, Some(&prev), precompiled, &s.metrics)
    })
    .await
    .map_err(|e| crate::state::LoadError::Config(format!("reload task failed: {e}")))
    .and_then(|r| r);
    match result {
        Ok(snap) => {
            let rev = snap.policy.policy.revision().to_owned();
            let sha = snap.policy.sha256.clone();
            let old = shared.state.swap(Arc::new(snap));
            retire(old);
            shared.metrics.config_reload(true);
            shared.metrics.policy_reload(true);
            shared.metrics.set_policy(&rev, &sha);
            tracing::info!(trigger, policy_revision = %rev, policy_sha256 = %sha, "configuration and policy reloaded");
            record(shared, trigger, None);
            Ok(())
        }
        Err(e) => {
            // Every reload counts in config_reloads_total; the policy counter
            // only moves when the policy itself was the problem.
            shared.metrics.config_reload(false);
            if matches!(e, crate::state::LoadError::Policy(_)) {
                shared.metrics.policy_reload(false);
            }
            tracing::error!(trigger, error = %e, "reload refused; the running configuration and policy stay in force");
            record(shared, trigger, Some(e.to_string()));
            Err(e.to_string())
        }
    }
}

/// Longest wait for the requests still using a replaced snapshot.
const RETIRE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Frees a replaced snapshot on a low-priority thread once no request uses
/// it any more: a large compiled policy takes tens of milliseconds to drop,
/// which must not land on whichever request happens to hold it last, nor
/// take CPU from the requests.
fn retire(old: Arc<crate::state::Snapshot>) {
    let work = move || {
        let start = std::time::Instant::now();
        while Arc::strong_count(&old) > 1 && start.elapsed() < RETIRE_WAIT {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        drop(old);
    };
    if let Err(e) = crate::background::spawn("portcullis-retire", work) {
        // The snapshot was moved into the closure that could not start and
        // is freed here; nothing else is lost.
        tracing::warn!(error = %e, "replaced snapshot freed on the reload path");
    }
}

/// The reload loop: runs until `shutdown` turns true, reloading on SIGHUP
/// and (when enabled) when the configuration or policy file changes, and
/// reopening the audit log on SIGUSR1 (after log rotation).
///
/// The signal handlers are installed by this call, not when the returned
/// future first runs: the default action of both signals ends the
/// process, and the gateway may report itself ready before a spawned task
/// is polled.
pub(crate) fn watch_loop(
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    loaded: Option<[u8; 32]>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let hup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; reload by file change only");
            None
        }
    };
    let usr1 = match signal(SignalKind::user_defined1()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGUSR1; the audit log cannot be reopened");
            None
        }
    };
    run_watch_loop(shared, shutdown, hup, usr1, loaded)
}

/// The next delivery of `sig`, or never when it has no handler.
async fn next(sig: Option<&mut tokio::signal::unix::Signal>) -> Option<()> {
    match sig {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

async fn run_watch_loop(
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    mut hup: Option<tokio::signal::unix::Signal>,
    mut usr1: Option<tokio::signal::unix::Signal>,
    loaded: Option<[u8; 32]>,
) {
    let settings = |shared: &Shared| {
        let snap = shared.state.load();
        (snap.config.policy.watch, snap.config.policy.poll_interval)
    };
    let ticker_every = |period| {
        let mut t = tokio::time::interval(period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    };
    let mut ticker = ticker_every(settings(&shared).1);
    let mut state = WatchState::default();
    // The files as they were before the running snapshot read them
    // ([`load_at_start`]); hashed now only when that is unknown.
    match loaded {
        Some(digest) => state.reloaded(digest),
        None => {
            if let Some((_, digest)) = current(&shared).await {
                state.reloaded(digest);
            }
        }
    }
    loop {
        // A reload (by signal, file change or a new bundle) may have
        // turned watching on or off or changed its pace.
        let (watch_files, interval) = settings(&shared);
        if interval != ticker.period() {
            ticker = ticker_every(interval);
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            Some(()) = next(hup.as_mut()) => {
                let before = current(&shared).await;
                let _ = reload(&shared, "sighup").await;
                if let Some((watched, digest)) = before {
                    state.reloaded(after_reload(&shared, watched, digest).await);
                }
            }
            Some(()) = next(usr1.as_mut()) => {
                tracing::info!("SIGUSR1 received: reopening the audit log");
                shared.audit.reopen();
            }
            _ = ticker.tick(), if watch_files => {
                let Some((watched, now)) = current(&shared).await else {
                    continue;
                };
                if state.poll(now) {
                    // After a refusal this remembers the bad state, so it
                    // is not retried until a file changes again.
                    let _ = reload(&shared, "file_change").await;
                    state.reloaded(after_reload(&shared, watched, now).await);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
