//! One multiplexed connection to Redis, rebuilt on failure.
//!
//! Every operation takes a handle to the current connection (a cheap
//! clone), so requests from all tasks are pipelined on one socket. A
//! connection that fails with an I/O error, or that times out
//! [`REDIS_TIMEOUTS_BEFORE_RECONNECT`] times in a row, is dropped; the next
//! operation connects again. Reconnection attempts are spaced by
//! [`REDIS_RECONNECT_BACKOFF`], and operations in between fail at once with the
//! last connection error: a store that is down answers quickly, and
//! service resumes by itself when it returns.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client, ErrorKind, RedisError, ServerErrorKind};

use crate::StoreError;

/// Minimum spacing of reconnection attempts: bounds the connect rate
/// against a store that is down while still resuming within a fraction
/// of a second once it is back.
pub const REDIS_RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// Consecutive timeouts after which the connection is presumed dead (a
/// peer gone without a reset) and rebuilt; one slow command is not enough.
pub const REDIS_TIMEOUTS_BEFORE_RECONNECT: u32 = 3;

/// A connection and its generation (to ignore failures reported for a
/// connection that has already been replaced).
pub(super) type Handle = (u64, MultiplexedConnection);

struct State {
    current: Option<Handle>,
    generation: u64,
    consecutive_timeouts: u32,
    /// When the last connection attempt failed, and how.
    last_failure: Option<(Instant, StoreError)>,
}

pub(super) struct Link {
    client: Client,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    state: Mutex<State>,
    /// Serializes connection attempts: one at a time, shared by all
    /// waiting operations.
    connecting: tokio::sync::Mutex<()>,
}

impl Link {
    pub(super) fn new(client: Client, connect_timeout: Duration) -> Self {
        // Timeouts are applied by the store around each operation.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(None);
        Self {
            client,
            config,
            connect_timeout,
            state: Mutex::new(State {
                current: None,
                generation: 0,
                consecutive_timeouts: 0,
                last_failure: None,
            }),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few plain fields, consistent after every write.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current connection, connecting if there is none.
    pub(super) async fn get(&self) -> Result<Handle, StoreError> {
        if let Some(h) = self.state().current.clone() {
            return Ok(h);
        }
        let _one_at_a_time = self.connecting.lock().await;
        {
            let state = self.state();
            if let Some(h) = state.current.clone() {
                return Ok(h);
            }
            if let Some((at, err)) = &state.last_failure {
                if at.elapsed() < REDIS_RECONNECT_BACKOFF {
                    return Err(err.clone());
                }
            }
        }
        let attempt = tokio::time::timeout(
            self.connect_timeout,
            self.client
                .get_multiplexed_async_connection_with_config(&self.config),
        )
        .await;
        let mut state = self.state();
        match attempt {
            Ok(Ok(conn)) => {
                state.generation = state.generation.wrapping_add(1);
                let handle = (state.generation, conn);
                state.current = Some(handle.clone());
                state.consecutive_timeouts = 0;
                if state.last_failure.take().is_some() {
                    tracing::info!("session store connection restored");
                }
                Ok(handle)
            }
            Ok(Err(e)) => {
                let err = map_error(&e);
                tracing::warn!(reason = err.reason(), "session store connection failed");
                state.last_failure = Some((Instant::now(), err.clone()));
                Err(err)
            }
            Err(_) => {
                let err = StoreError::Timeout(self.connect_timeout);
                tracing::warn!(reason = err.reason(), "session store connection failed");
                state.last_failure = Some((Instant::now(), err.clone()));
                Err(err)
            }
        }
    }

    /// An operation on connection `generation` succeeded.
    pub(super) fn succeeded(&self, generation: u64) {
        let mut state = self.state();
        if state.current.as_ref().map(|(g, _)| *g) == Some(generation) {
            state.consecutive_timeouts = 0;
        }
    }

    /// An operation on connection `generation` failed with `err`: drop the
    /// connection if the error says it is broken.
    pub(super) fn failed(&self, generation: u64, err: &RedisError) {
        if breaks_connection(err) {
            self.drop_connection(generation, "connection lost");
        }
    }

    /// An operation on connection `generation` timed out.
    pub(super) fn timed_out(&self, generation: u64) {
        let mut state = self.state();
        if state.current.as_ref().map(|(g, _)| *g) != Some(generation) {
            return;
        }
        state.consecutive_timeouts = state.consecutive_timeouts.saturating_add(1);
        if state.consecutive_timeouts >= REDIS_TIMEOUTS_BEFORE_RECONNECT {
            state.current = None;
            state.consecutive_timeouts = 0;
            tracing::warn!("session store connection unresponsive; reconnecting");
        }
    }

    fn drop_connection(&self, generation: u64, why: &'static str) {
        let mut state = self.state();
        if state.current.as_ref().map(|(g, _)| *g) == Some(generation) {
            state.current = None;
            state.consecutive_timeouts = 0;
            tracing::warn!(why, "session store connection dropped; reconnecting");
        }
    }
}

/// Whether the connection that returned `err` cannot be used again.
pub(super) fn breaks_connection(err: &RedisError) -> bool {
    // A parse error leaves the reply stream out of step: start afresh.
    err.is_io_error() || err.is_connection_dropped() || err.kind() == ErrorKind::Parse
}

/// Maps a Redis error to the store's error. Messages carry the error
/// kind or the server's error code, never the server's message text
/// (which may echo arguments).
pub(super) fn map_error(err: &RedisError) -> StoreError {
    let code = server_code(err);
    match code.as_deref() {
        Some("READONLY") => return StoreError::ReadOnly("`READONLY` from the server".into()),
        Some("OOM") => {
            return StoreError::OutOfMemory("`OOM` from the server (maxmemory reached)".into())
        }
        Some(c @ ("NOPERM" | "WRONGPASS" | "NOAUTH")) => {
            return StoreError::PermissionDenied(format!("`{c}` from the server"))
        }
        Some("WRONGTYPE") => {
            return StoreError::Corrupt("`WRONGTYPE`: a key holds an unexpected type".into())
        }
        Some(c @ ("LOADING" | "MASTERDOWN" | "BUSY" | "TRYAGAIN" | "CLUSTERDOWN")) => {
            return StoreError::Unavailable(format!("`{c}` from the server"))
        }
        _ => {}
    }
    match err.kind() {
        ErrorKind::AuthenticationFailed => {
            StoreError::PermissionDenied("authentication failed".into())
        }
        ErrorKind::Io => {
            if let Some(tls) = tls_error(err) {
                StoreError::Unavailable(format!("tls handshake failed: {tls}"))
            } else if err.is_connection_refusal() {
                StoreError::Unavailable("connection refused".into())
            } else if err.is_timeout() {
                StoreError::Unavailable("connection timed out".into())
            } else {
                StoreError::Unavailable("connection lost".into())
            }
        }
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => {
            StoreError::Corrupt("unexpected reply from the server".into())
        }
        ErrorKind::InvalidClientConfig => {
            StoreError::Unavailable("invalid connection settings".into())
        }
        ErrorKind::Server(ServerErrorKind::NoScript) => {
            StoreError::Unavailable("script not loaded".into())
        }
        _ => match code {
            Some(c) => StoreError::Unavailable(format!("`{c}` from the server")),
            None => StoreError::Unavailable(err.category().to_owned()),
        },
    }
}

/// The TLS error under an I/O error (an untrusted or misnamed server
/// certificate), if that is what it is.
fn tls_error(err: &RedisError) -> Option<&rustls::Error> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let source = std::error::Error::source(err)?;
    // The client keeps its I/O error behind an `Arc`.
    let source: &(dyn std::error::Error + 'static) = match source.downcast_ref::<Shared>() {
        Some(shared) => shared.as_ref(),
        None => source,
    };
    if let Some(tls) = source.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    source
        .downcast_ref::<std::io::Error>()?
        .get_ref()?
        .downcast_ref::<rustls::Error>()
}

/// The server's error code (`OOM`, `NOPERM`, ...), also when it was raised
/// inside a script.
fn server_code(err: &RedisError) -> Option<String> {
    let code = err.code()?;
    let code = code.trim_start_matches('-');
    // Bound what is echoed: codes are short upper-case words.
    if code.is_empty()
        || code.len() > 32
        || !code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
    {
        return None;
    }
    Some(code.to_owned())
}
