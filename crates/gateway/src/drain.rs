//! Graceful drain of client connections: on shutdown every connection is
//! told to finish what it is doing and close, and the gateway waits until
//! all have.

use tokio::sync::watch;

/// Held by the gateway; each connection holds a [`DrainWatch`].
#[derive(Debug)]
pub(crate) struct Drain(watch::Sender<bool>);

/// A connection's view of the drain signal. The gateway's
/// [`Drain::drain`] returns once every `DrainWatch` is dropped.
#[derive(Debug, Clone)]
pub(crate) struct DrainWatch(watch::Receiver<bool>);

impl Drain {
    pub(crate) fn new() -> Self {
        Self(watch::channel(false).0)
    }

    pub(crate) fn watcher(&self) -> DrainWatch {
        DrainWatch(self.0.subscribe())
    }

    /// Signals every connection to drain, then waits until all have
    /// ended (every watcher dropped).
    pub(crate) async fn drain(&self) {
        self.0.send_replace(true);
        self.0.closed().await;
    }
}

impl DrainWatch {
    pub(crate) fn is_draining(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once draining has begun (or the gateway is gone).
    pub(crate) async fn draining(&mut self) {
        let _ = self.0.wait_for(|d| *d).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_signals_watchers_and_waits_for_them() {
        let drain = Drain::new();
        let mut w = drain.watcher();
        assert!(!w.is_draining());
        let conn = tokio::spawn(async move {
            w.draining().await;
            assert!(w.is_draining());
            // Still "working" briefly after the signal.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            drop(w);
        });
        let started = std::time::Instant::now();
        drain.drain().await;
        assert!(started.elapsed() >= std::time::Duration::from_millis(50));
        conn.await.unwrap();
    }

    #[tokio::test]
    async fn drain_without_watchers_returns_at_once() {
        let drain = Drain::new();
        tokio::time::timeout(std::time::Duration::from_secs(1), drain.drain())
            .await
            .expect("no watcher: nothing to wait for");
    }
}
