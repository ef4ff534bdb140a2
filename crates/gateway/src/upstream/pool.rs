//! The idle connections of one upstream.
//!
//! HTTP/1.1 connections wait in a stack, newest on top: the next request
//! takes the connection that was used last (the one least likely to have
//! been closed by the upstream's own idle timeout). A connection comes back
//! when its response body has ended ([`Returner`]); one whose connection
//! task has seen it close is skipped. Expiry costs no clock reading per
//! request: a sweeper ([`crate::ticks`]) ticks four times per idle timeout
//! and closes the connections put back four or more ticks ago, so an idle
//! connection is closed after between one and one and a quarter idle
//! timeouts. An HTTP/2
//! connection is shared by all requests while it is open.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use hyper::client::conn::{http1, http2};

use super::{Body, Sender};
use crate::ticks::{ticks, TICKS_PER_TIMEOUT};

pub(super) struct Pool {
    inner: Mutex<Inner>,
    idle_timeout: Duration,
    max_idle: usize,
    sweeper_started: AtomicBool,
}

#[derive(Default)]
struct Inner {
    /// Newest last.
    idle: Vec<Idle>,
    h2: Option<http2::SendRequest<Body>>,
    /// Sweeper ticks so far.
    tick: u64,
}

struct Idle {
    tx: http1::SendRequest<Body>,
    /// The sweeper tick during which it was put back.
    tick: u64,
}

impl Pool {
    pub(super) fn new(idle_timeout: Duration, max_idle: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            idle_timeout,
            max_idle,
            sweeper_started: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The shared HTTP/2 connection if open, else the newest idle HTTP/1.1
    /// connection that is ready for a request. Closed connections are
    /// dropped on the way; one not ready yet stays (its connection task
    /// has not finished the last exchange, e.g. a request body the
    /// upstream answered early is still being sent): a request never
    /// waits behind another one's exchange.
    pub(super) fn checkout(&self) -> Option<Sender> {
        let mut closed = Vec::new();
        let mut inner = self.lock();
        if let Some(h2) = &inner.h2 {
            if !h2.is_closed() {
                return Some(Sender::H2(h2.clone()));
            }
            inner.h2 = None;
        }
        let mut found = None;
        let mut i = inner.idle.len();
        while i > 0 && found.is_none() {
            i -= 1;
            let (is_closed, is_ready) = match inner.idle.get(i) {
                Some(e) => (e.tx.is_closed(), e.tx.is_ready()),
                None => break,
            };
            if is_closed {
                closed.push(inner.idle.remove(i));
            } else if is_ready {
                found = Some(Sender::H1(inner.idle.remove(i).tx));
            }
        }
        drop(inner);
        drop(closed);
        found
    }

    pub(super) fn set_h2(&self, tx: http2::SendRequest<Body>) {
        let old = self.lock().h2.replace(tx);
        drop(old);
    }

    /// Forgets the HTTP/2 connection (it refused a request).
    pub(super) fn clear_h2(&self) {
        let old = self.lock().h2.take();
        drop(old);
    }

    /// Puts an HTTP/1.1 connection back, unless it is closed or the pool
    /// is full (then dropping it closes it).
    fn put(self: &Arc<Self>, tx: http1::SendRequest<Body>) {
        if tx.is_closed() {
            return;
        }
        let mut inner = self.lock();
        if inner.idle.len() >= self.max_idle {
            drop(inner);
            return;
        }
        let tick = inner.tick;
        inner.idle.push(Idle { tx, tick });
        drop(inner);
        if !self.sweeper_started.load(Ordering::Relaxed) {
            self.start_sweeper();
        }
    }

    fn start_sweeper(self: &Arc<Self>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.sweeper_started.swap(true, Ordering::Relaxed) {
            return;
        }
        rt.spawn(sweep(Arc::downgrade(self), self.idle_timeout));
    }

    /// One sweeper tick: closes the connections idle for the whole idle
    /// timeout and those whose upstream has closed them.
    fn tick(&self) {
        let mut inner = self.lock();
        inner.tick += 1;
        let oldest_kept = inner.tick.saturating_sub(u64::from(TICKS_PER_TIMEOUT));
        let (keep, expired): (Vec<Idle>, Vec<Idle>) = std::mem::take(&mut inner.idle)
            .into_iter()
            .partition(|i| i.tick >= oldest_kept && !i.tx.is_closed());
        inner.idle = keep;
        drop(inner);
        drop(expired);
    }

    #[cfg(test)]
    pub(super) fn idle_len(&self) -> usize {
        self.lock().idle.len()
    }
}

/// Runs while the pool exists.
async fn sweep(pool: Weak<Pool>, idle_timeout: Duration) {
    let mut interval = ticks(idle_timeout);
    loop {
        interval.tick().await;
        match pool.upgrade() {
            Some(p) => p.tick(),
            None => return,
        }
    }
}

/// Gives an HTTP/1.1 connection back to its pool once its response has
/// been read to the end.
pub(super) struct Returner {
    pool: Arc<Pool>,
    tx: http1::SendRequest<Body>,
}

impl Returner {
    pub(super) fn new(pool: &Arc<Pool>, tx: http1::SendRequest<Body>) -> Self {
        Self {
            pool: Arc::clone(pool),
            tx,
        }
    }

    pub(super) fn give_back(self) {
        self.pool.put(self.tx);
    }
}
