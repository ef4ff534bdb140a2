//! Atomic hot reload on SIGHUP and when the configuration or policy file
//! changes. A new snapshot is built completely off the request path and
//! published with one atomic store; a failed load keeps the running
//! snapshot, logs the reason and counts it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;

use crate::Shared;

/// Hash of the files whose change triggers a reload: the configuration,
/// the policy and every certificate, key and CRL the configuration read.
/// `None` when one cannot be read (e.g. mid-replacement): try again later.
fn fingerprint(config_path: &Path, snap: &crate::state::Snapshot) -> Option<[u8; 32]> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let files = [config_path, snap.config.policy.path.as_path()]
        .into_iter()
        .chain(snap.config.inputs.iter().map(PathBuf::as_path));
    for p in files {
        // With bundles the installed bundle may not exist yet; its arrival
        // is itself a change.
        let bytes = match std::fs::read(p) {
            Ok(b) => b,
            Err(_) if snap.config.policy.bundle.is_some() && p == snap.config.policy.path => {
                Vec::new()
            }
            Err(_) => return None,
        };
        ctx.update(&(bytes.len() as u64).to_be_bytes());
        ctx.update(&bytes);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Some(out)
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
        crate::state::load_with(&s.config_path, Some(&prev), precompiled)
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
    run_watch_loop(shared, shutdown, hup, usr1)
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
    let mut last = fingerprint(&shared.config_path, &shared.state.load());
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
                let _ = reload(&shared, "sighup").await;
                last = fingerprint(&shared.config_path, &shared.state.load());
            }
            Some(()) = next(usr1.as_mut()) => {
                tracing::info!("SIGUSR1 received: reopening the audit log");
                shared.audit.reopen();
            }
            _ = ticker.tick(), if watch_files => {
                let now = fingerprint(&shared.config_path, &shared.state.load());
                if now.is_some() && now != last {
                    // After a success the new configuration may name other
                    // files; after a failure this remembers the bad state
                    // so it is not retried until a file changes again.
                    let ok = reload(&shared, "file_change").await.is_ok();
                    last = if ok { fingerprint(&shared.config_path, &shared.state.load()) } else { now };
                }
            }
        }
    }
}
