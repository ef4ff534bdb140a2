//! Work that must not compete with requests for the CPU: activating a
//! policy bundle (parsing, hashing, signature checks, compiling a policy of
//! thousands of rules) and freeing a replaced snapshot.
//!
//! Such work runs on a thread of its own at the lowest scheduling priority
//! the gateway may set without privileges (nice 19 on Linux, where the nice
//! value is per thread). When the machine is busy, the threads serving
//! requests run first and the activation takes longer; when it is not,
//! the activation runs at full speed. Work on such a thread must not hold a
//! lock that a request waits for: a low-priority holder may be preempted
//! for a long time.

/// Nice value of background threads (19: the lowest priority).
pub(crate) const BACKGROUND_NICE: i32 = 19;

/// Runs `f` on a new low-priority thread (inside the current tokio runtime's
/// context, so it may use its handle) and returns its result. A panic in
/// `f` is an error, never a lost result.
pub(crate) async fn low_priority<T, F>(name: &str, f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    spawn(name, move || {
        let _ = tx.send(f());
    })?;
    rx.await
        .map_err(|_| "internal: the background task ended without a result".to_owned())
}

/// Starts `f` on a new low-priority thread and does not wait for it.
pub(crate) fn spawn<F>(name: &str, f: F) -> Result<(), String>
where
    F: FnOnce() + Send + 'static,
{
    let runtime = tokio::runtime::Handle::try_current().ok();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            lower_priority();
            let _guard = runtime.as_ref().map(tokio::runtime::Handle::enter);
            f();
        })
        .map(drop)
        .map_err(|e| format!("internal: cannot start a background thread: {e}"))
}

/// Lowers the calling thread's priority; on failure it keeps running at
/// the normal priority (slower requests during activation, nothing worse).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // On Linux `setpriority(PRIO_PROCESS, 0, ..)` sets the calling
        // thread's nice value only.
        if let Err(e) = rustix::process::setpriority_process(None, BACKGROUND_NICE) {
            tracing::debug!(error = %e, "cannot lower a background thread's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_result_comes_back_and_the_thread_runs_at_low_priority() {
        let nice = super::low_priority("test-bg", || {
            #[cfg(target_os = "linux")]
            {
                rustix::process::getpriority_process(None).ok()
            }
            #[cfg(not(target_os = "linux"))]
            {
                None::<i32>
            }
        })
        .await;
        #[cfg(target_os = "linux")]
        assert_eq!(nice, Ok(Some(super::BACKGROUND_NICE)));
        #[cfg(not(target_os = "linux"))]
        assert!(nice.is_ok());
        // The caller's own thread keeps its priority.
        #[cfg(target_os = "linux")]
        assert_ne!(
            rustix::process::getpriority_process(None).ok(),
            Some(super::BACKGROUND_NICE)
        );
    }

    #[tokio::test]
    async fn a_panic_is_an_error_not_a_hang() {
        let r: Result<(), String> = super::low_priority("test-bg-panic", || panic!("boom")).await;
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn the_runtime_handle_is_available() {
        let ok = super::low_priority("test-bg-rt", || {
            tokio::runtime::Handle::try_current().is_ok()
        })
        .await;
        assert_eq!(ok, Ok(true));
    }
}
