//! [`KeySource`]: the current key set of one issuer, its background
//! refresh, and the rate-limited refetch for unknown `kid`s.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use http::header::CACHE_CONTROL;
use http::Uri;
use portcullis_token::{KeySet, KeySetVersion};
use tokio::sync::{watch, Notify};

use crate::error::{FetchError, StartError, Unavailable};
use crate::fetch::{self, FileStamp, HttpsClient};
use crate::redact::Redacted;
use crate::schedule::{freshness_lifetime, jitter_seed, refresh_delay, retry_delay};
use crate::{FetchSettings, JwksSource};

/// Marks "never" in [`Inner::last_success_nanos`].
const NEVER: u64 = u64::MAX;

/// The keys of one issuer, kept up to date in the background.
///
/// Built by [`KeySource::start`] and shared as `Arc<KeySource>`; the
/// refresh task stops when the last `Arc` is dropped.
pub struct KeySource {
    inner: Arc<Inner>,
    /// Never sent on: dropping it tells the refresh task to stop.
    _stop: watch::Sender<()>,
}

/// What [`KeySource::status`] reports, for the admin endpoint and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceStatus {
    /// When a fetch last succeeded (an unchanged key set counts).
    pub last_success: Option<SystemTime>,
    /// The most recent failure, kept after later successes; no secrets.
    pub last_error: Option<String>,
    /// When [`Self::last_error`] happened.
    pub last_error_at: Option<SystemTime>,
    /// Failed fetches since the last success.
    pub consecutive_failures: u32,
    /// Usable keys in the current key set (0 before the first success).
    pub key_count: usize,
    /// Version of the current key set.
    pub version: Option<KeySetVersion>,
    /// Successful fetches (or unchanged key file checks).
    pub fetches_ok: u64,
    /// Failed fetches.
    pub fetches_failed: u64,
    /// Fetches started because of an unknown `kid`.
    pub refetches_unknown_kid: u64,
    /// Unknown-`kid` refetches refused by the rate limit.
    pub refetches_rate_limited: u64,
}

/// Why a fetch is started; only unknown-`kid` fetches are rate limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Scheduled,
    UnknownKid,
}

struct Inner {
    name: String,
    origin: Origin,
    settings: FetchSettings,
    /// Base of [`Self::last_success_nanos`].
    epoch: Instant,
    keys: ArcSwapOption<KeySet>,
    /// Nanoseconds after `epoch` of the last success, or [`NEVER`].
    /// INVARIANT: stored before `keys` on success, so a set key set always
    /// has a success time.
    last_success_nanos: AtomicU64,
    state: Mutex<State>,
    /// Wakes the refresh task when `State::next_refresh` moved.
    rescheduled: Notify,
}

enum Origin {
    Discovery {
        issuer: String,
        discovery: Uri,
        client: HttpsClient,
    },
    Uri {
        uri: Uri,
        client: HttpsClient,
    },
    File {
        path: PathBuf,
    },
}

struct State {
    /// The fetch in progress; completion is signalled by `true`.
    inflight: Option<watch::Receiver<bool>>,
    last_unknown_kid_fetch: Option<Instant>,
    next_refresh: Instant,
    consecutive_failures: u32,
    /// `jwks_uri` from discovery; forgotten after any failure so the next
    /// attempt discovers again.
    jwks_uri: Option<Uri>,
    /// Stamp of the key file the current keys were read from.
    file_stamp: Option<FileStamp>,
    last_success_at: Option<SystemTime>,
    last_error: Option<String>,
    last_error_at: Option<SystemTime>,
    fetches_ok: u64,
    fetches_failed: u64,
    refetches_unknown_kid: u64,
    refetches_rate_limited: u64,
}

/// A fetch that produced something to use.
enum Fetched {
    /// A JWKS document and how long it is fresh.
    Document {
        body: Vec<u8>,
        lifetime: Duration,
        from: String,
        stamp: Option<FileStamp>,
    },
    /// The key file has not changed since the current keys were read.
    FileUnchanged,
}

impl KeySource {
    /// Checks the source, builds the https client, does the first fetch
    /// (bounded by `fetch_timeout`) and spawns the refresh task; must run
    /// inside a tokio runtime.
    ///
    /// A failed first fetch is not an error: the source starts empty,
    /// [`Self::current`] refuses, and the refresh task retries with backoff.
    /// An `http://` URL, an issuer that is not an https URL, or an unusable
    /// CA bundle or system store are errors.
    pub async fn start(
        name: String,
        source: JwksSource,
        settings: FetchSettings,
    ) -> Result<Arc<KeySource>, StartError> {
        let origin = Origin::new(source, &settings)?;
        let now = Instant::now();
        let inner = Arc::new(Inner {
            name,
            origin,
            settings,
            epoch: now,
            keys: ArcSwapOption::empty(),
            last_success_nanos: AtomicU64::new(NEVER),
            state: Mutex::new(State {
                inflight: None,
                last_unknown_kid_fetch: None,
                next_refresh: now,
                consecutive_failures: 0,
                jwks_uri: None,
                file_stamp: None,
                last_success_at: None,
                last_error: None,
                last_error_at: None,
                fetches_ok: 0,
                fetches_failed: 0,
                refetches_unknown_kid: 0,
                refetches_rate_limited: 0,
            }),
            rescheduled: Notify::new(),
        });
        if let Some(done) = inner.begin(Trigger::Scheduled) {
            wait(done).await;
        }
        let (stop, stopped) = watch::channel(());
        tokio::spawn(refresh_loop(Arc::clone(&inner), stopped));
        Ok(Arc::new(KeySource { inner, _stop: stop }))
    }

    /// The source's name (the issuer, for logs).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The keys to verify with now, or why there are none: nothing fetched
    /// yet, or the last success is older than `max_staleness`.
    pub fn current(&self) -> Result<Arc<KeySet>, Unavailable> {
        self.inner.current()
    }

    /// Called when a token names a `kid` that the key set of version
    /// `seen` (from [`Self::current`]) does not have.
    ///
    /// If the keys changed since `seen`, returns them without fetching.
    /// Otherwise joins the fetch in progress, or starts one if none was
    /// started for an unknown `kid` within `unknown_kid_interval`, and
    /// returns the new keys if their version differs from `seen`. `None`
    /// when rate limited, unchanged, failed or stale.
    pub async fn refresh_for_unknown_kid(&self, seen: KeySetVersion) -> Option<Arc<KeySet>> {
        if let Ok(keys) = self.inner.current() {
            if keys.version() != seen {
                return Some(keys);
            }
        }
        let done = self.inner.begin(Trigger::UnknownKid)?;
        wait(done).await;
        self.inner
            .current()
            .ok()
            .filter(|keys| keys.version() != seen)
    }

    /// Counters and the last outcome.
    pub fn status(&self) -> SourceStatus {
        let keys = self.inner.keys.load_full();
        let st = self.inner.lock();
        SourceStatus {
            last_success: st.last_success_at,
            last_error: st.last_error.clone(),
            last_error_at: st.last_error_at,
            consecutive_failures: st.consecutive_failures,
            key_count: keys.as_ref().map_or(0, |k| k.len()),
            version: keys.as_ref().map(|k| k.version()),
            fetches_ok: st.fetches_ok,
            fetches_failed: st.fetches_failed,
            refetches_unknown_kid: st.refetches_unknown_kid,
            refetches_rate_limited: st.refetches_rate_limited,
        }
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySource")
            .field("name", &self.inner.name)
            .field("origin", &self.inner.origin)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Discovery { discovery, .. } => f
                .debug_tuple("Discovery")
                .field(&Redacted(discovery))
                .finish(),
            Self::Uri { uri, .. } => f.debug_tuple("Uri").field(&Redacted(uri)).finish(),
            Self::File { path } => f.debug_tuple("File").field(path).finish(),
        }
    }
}

impl Origin {
    fn new(source: JwksSource, settings: &FetchSettings) -> Result<Self, StartError> {
        match source {
            JwksSource::Discovery { issuer } => {
                let discovery = fetch::discovery_uri(&issuer)?;
                let client = fetch::build_client(settings)?;
                Ok(Self::Discovery {
                    issuer,
                    discovery,
                    client,
                })
            }
            JwksSource::Uri(uri) => {
                fetch::check_https(&uri).map_err(|p| p.into_start_error(&uri))?;
                let client = fetch::build_client(settings)?;
                Ok(Self::Uri { uri, client })
            }
            JwksSource::File(path) => Ok(Self::File { path }),
        }
    }
}

/// Waits until a fetch signals completion (or its task is gone).
async fn wait(mut done: watch::Receiver<bool>) {
    // An error means the sender is gone, which also ends the fetch.
    let _ = done.wait_for(|finished| *finished).await;
}

/// `delay` from now; a delay too large for the clock means a year.
fn deadline(delay: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(365 * 24 * 60 * 60);
    let now = Instant::now();
    now.checked_add(delay)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}

/// Scheduled refreshes until the [`KeySource`] is dropped.
async fn refresh_loop(inner: Arc<Inner>, mut stop: watch::Receiver<()>) {
    loop {
        let next = inner.lock().next_refresh;
        tokio::select! {
            () = tokio::time::sleep_until(next.into()) => {}
            () = inner.rescheduled.notified() => continue,
            _ = stop.changed() => return,
        }
        // Another fetch (an unknown kid) may have moved the schedule.
        if Instant::now() < inner.lock().next_refresh {
            continue;
        }
        let Some(done) = inner.begin(Trigger::Scheduled) else {
            continue;
        };
        tokio::select! {
            () = wait(done) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Clears the in-flight marker and wakes the waiters when a fetch task
/// ends, whether it finished or was cancelled.
struct FlightGuard {
    inner: Arc<Inner>,
    done: watch::Sender<bool>,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.inner.lock().inflight = None;
        // No receiver left is fine: nobody waits.
        let _ = self.done.send(true);
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent between statements; a panic elsewhere
        // must not take the issuer's keys down with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn current(&self) -> Result<Arc<KeySet>, Unavailable> {
        let never = || Unavailable::NeverFetched {
            issuer: self.name.clone(),
        };
        let keys = self.keys.load_full().ok_or_else(never)?;
        let at = self.last_success_nanos.load(Ordering::Acquire);
        if at == NEVER {
            return Err(never());
        }
        let age = self
            .epoch
            .elapsed()
            .saturating_sub(Duration::from_nanos(at));
        if age > self.settings.max_staleness {
            return Err(Unavailable::Stale {
                issuer: self.name.clone(),
                age,
                max_staleness: self.settings.max_staleness,
            });
        }
        Ok(keys)
    }

    /// Joins the fetch in progress or starts one (rate limited for unknown
    /// `kid`s). `None` when rate limited.
    fn begin(self: &Arc<Self>, trigger: Trigger) -> Option<watch::Receiver<bool>> {
        let mut st = self.lock();
        if let Some(done) = &st.inflight {
            return Some(done.clone());
        }
        if trigger == Trigger::UnknownKid {
            let now = Instant::now();
            let limited = st
                .last_unknown_kid_fetch
                .is_some_and(|last| now.duration_since(last) < self.settings.unknown_kid_interval);
            if limited {
                st.refetches_rate_limited = st.refetches_rate_limited.saturating_add(1);
                return None;
            }
            st.last_unknown_kid_fetch = Some(now);
            st.refetches_unknown_kid = st.refetches_unknown_kid.saturating_add(1);
        }
        let (tx, rx) = watch::channel(false);
        st.inflight = Some(rx.clone());
        drop(st);
        // The fetch runs in its own task so a caller that gives up (request
        // cancelled) does not abandon it for the others waiting on it.
        let guard = FlightGuard {
            inner: Arc::clone(self),
            done: tx,
        };
        tokio::spawn(async move {
            guard.inner.run_fetch().await;
            drop(guard);
        });
        Some(rx)
    }

    async fn run_fetch(&self) {
        let timeout = self.settings.fetch_timeout;
        let result = match tokio::time::timeout(timeout, self.fetch_once()).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout(timeout)),
        };
        let parsed = result.and_then(|fetched| match fetched {
            Fetched::FileUnchanged => Ok(None),
            Fetched::Document {
                body,
                lifetime,
                from,
                stamp,
            } => KeySet::from_jwks_json(&body)
                .map(|(keys, skipped)| Some((keys, skipped, lifetime, stamp)))
                .map_err(|source| FetchError::Jwks { from, source }),
        });
        match parsed {
            Ok(Some((keys, skipped, lifetime, stamp))) => {
                self.succeeded(lifetime, stamp);
                self.install(keys, &skipped);
            }
            Ok(None) => {
                let lifetime =
                    crate::schedule::clamp_refresh(self.settings.default_refresh, &self.settings);
                self.succeeded(lifetime, None);
            }
            Err(e) => self.failed(&e),
        }
    }

    async fn fetch_once(&self) -> Result<Fetched, FetchError> {
        let limit = self.settings.max_body_bytes;
        match &self.origin {
            Origin::Uri { uri, client } => self.fetch_jwks(client, uri).await,
            Origin::Discovery {
                issuer,
                discovery,
                client,
            } => {
                let known = self.lock().jwks_uri.clone();
                let jwks_uri = match known {
                    Some(uri) => uri,
                    None => {
                        let doc = fetch::get(client, discovery, fetch::ACCEPT_JSON, limit).await?;
                        let uri = fetch::parse_discovery(&doc.body, issuer).map_err(|reason| {
                            FetchError::Discovery {
                                url: Redacted(discovery).to_string(),
                                reason,
                            }
                        })?;
                        self.lock().jwks_uri = Some(uri.clone());
                        uri
                    }
                };
                self.fetch_jwks(client, &jwks_uri).await
            }
            Origin::File { path } => {
                let stamp = fetch::file_stamp(path).await?;
                if self.lock().file_stamp == Some(stamp) && self.keys.load().is_some() {
                    return Ok(Fetched::FileUnchanged);
                }
                let body = fetch::read_file(path, limit).await?;
                Ok(Fetched::Document {
                    body,
                    lifetime: crate::schedule::clamp_refresh(
                        self.settings.default_refresh,
                        &self.settings,
                    ),
                    from: format!("file `{}`", path.display()),
                    stamp: Some(stamp),
                })
            }
        }
    }

    async fn fetch_jwks(&self, client: &HttpsClient, uri: &Uri) -> Result<Fetched, FetchError> {
        let resp = fetch::get(
            client,
            uri,
            fetch::ACCEPT_JWKS,
            self.settings.max_body_bytes,
        )
        .await?;
        Ok(Fetched::Document {
            lifetime: freshness_lifetime(resp.headers.get_all(CACHE_CONTROL), &self.settings),
            body: resp.body,
            from: format!("`{}`", Redacted(uri)),
            stamp: None,
        })
    }

    /// Bookkeeping of a successful fetch; the schedule moves to the next
    /// refresh before expiry of `lifetime`.
    fn succeeded(&self, lifetime: Duration, stamp: Option<FileStamp>) {
        let nanos = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(NEVER - 1);
        self.last_success_nanos.store(nanos, Ordering::Release);
        let mut st = self.lock();
        st.last_success_at = Some(SystemTime::now());
        st.fetches_ok = st.fetches_ok.saturating_add(1);
        st.consecutive_failures = 0;
        if stamp.is_some() {
            st.file_stamp = stamp;
        }
        let delay = refresh_delay(lifetime, &self.settings, jitter_seed());
        st.next_refresh = deadline(delay);
        drop(st);
        self.rescheduled.notify_one();
        tracing::debug!(issuer = %self.name, next_refresh_in = ?delay, "jwks fetched");
    }

    /// Replaces the key set if its version changed.
    fn install(&self, keys: KeySet, skipped: &[portcullis_token::SkippedKey]) {
        let old = self.keys.load_full();
        let old_version = old.as_ref().map(|k| k.version());
        if old_version == Some(keys.version()) {
            return;
        }
        for key in skipped {
            tracing::warn!(
                issuer = %self.name,
                kid = %key.kid.as_deref().map(fetch::shown).unwrap_or_default(),
                reason = %key.reason,
                "jwks key skipped"
            );
        }
        let kids: Vec<String> = keys
            .kids()
            .map(|kid| kid.map(fetch::shown).unwrap_or_else(|| "(none)".to_owned()))
            .collect();
        let kids = kids.join(", ");
        match old_version {
            Some(old) => tracing::info!(
                issuer = %self.name,
                old_version = %old,
                new_version = %keys.version(),
                kids = %kids,
                "jwks rotated"
            ),
            None => tracing::info!(
                issuer = %self.name,
                version = %keys.version(),
                kids = %kids,
                "jwks loaded"
            ),
        }
        self.keys.store(Some(Arc::new(keys)));
    }

    fn failed(&self, e: &FetchError) {
        let mut st = self.lock();
        st.fetches_failed = st.fetches_failed.saturating_add(1);
        st.consecutive_failures = st.consecutive_failures.saturating_add(1);
        st.last_error = Some(e.to_string());
        st.last_error_at = Some(SystemTime::now());
        st.jwks_uri = None;
        let delay = retry_delay(st.consecutive_failures, &self.settings, jitter_seed());
        st.next_refresh = deadline(delay);
        let failures = st.consecutive_failures;
        drop(st);
        self.rescheduled.notify_one();
        tracing::warn!(
            issuer = %self.name,
            error = %e,
            consecutive_failures = failures,
            retry_in = ?delay,
            "jwks fetch failed"
        );
    }
}

#[cfg(test)]
mod tests;
