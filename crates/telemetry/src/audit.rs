//! The audit log: one JSON line per access decision, written off the request
//! path.
//!
//! Request handlers hand an [`AuditRecord`] to an [`AuditLog`] handle, which
//! puts it on a bounded queue; one writer task serialises the records in
//! queue order and writes them through a buffer to stdout or to a file.
//!
//! See [`AuditLog`] for what happens when the queue is full, log rotation
//! and shutdown.

use std::borrow::Cow;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::{Decision, Metrics};

#[cfg(test)]
mod tests;

/// The outcome recorded in an audit record (serialised in lowercase).
pub type AuditDecision = Decision;

/// Default number of records the queue holds: a burst of several seconds of
/// heavy traffic while the sink stalls, at a few MiB of memory.
pub const DEFAULT_QUEUE_CAPACITY: usize = 8192;
/// Largest accepted queue capacity: bounds the memory a stalled sink can pin
/// (about 1 GiB at ~1 KiB per record).
pub const MAX_QUEUE_CAPACITY: usize = 1 << 20;
/// Default time a deny record may wait for queue space: long enough to ride
/// out a flush, short enough that a stalled sink does not hang clients.
pub const DEFAULT_DENY_WAIT: Duration = Duration::from_millis(250);
/// Longest accepted deny wait: a denied request is never held longer than
/// this for the audit log, so a stalled sink cannot pin connections forever.
pub const MAX_DENY_WAIT: Duration = Duration::from_secs(10);
/// How long the writer waits after a flush before it takes more records:
/// bounds how stale the file is (records are on disk within about this
/// long) while sparing request threads a wake-up per record. Short, so
/// that under load each wake-up is a short burst of work: at 10 ms the
/// writer took a core for about a millisecond at a time, and the request
/// threads' p99 latency rose with it.
pub const COALESCE_DELAY: Duration = Duration::from_millis(2);
/// Size of the writer's output buffer: many records per write system call.
pub const WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// Records written back to back before the writer looks at control messages
/// again, so a reopen or shutdown is not starved by a busy queue.
pub const WRITE_BATCH: usize = 256;
/// Capacity of the reused serialisation buffer kept after an unusually
/// large record; beyond this it is shrunk back.
pub const LINE_BUFFER_RETAIN_BYTES: usize = 64 * 1024;

/// One access decision, as written to the audit log.
///
/// Strings a connection or a policy snapshot repeats in every record are
/// shared ([`Arc<str>`]), so a record costs few allocations on the request
/// path; the time is formatted by the writer.
#[derive(serde::Serialize, Clone, Debug)]
pub struct AuditRecord {
    /// The instant the decision was made for: the gateway reads the clock
    /// once, when the request arrives, and judges the request at that time
    /// (see [`audit_time_now`]).
    pub time: AuditTime,
    pub request_id: Arc<str>,
    /// Trace id from a valid W3C `traceparent` header, when present.
    pub trace_id: Option<String>,
    /// Display name of the principal, or `anonymous`.
    pub principal: Arc<str>,
    pub spiffe_id: Option<Arc<str>>,
    /// SHA-256 of the client certificate, lowercase hex.
    pub cert_thumbprint: Option<Arc<str>>,
    /// `iss` of the verified bearer token, when the request carried one.
    pub token_issuer: Option<String>,
    /// `sub` of the verified bearer token.
    pub token_subject: Option<String>,
    /// Revision and manifest digest of the signed bundle the deciding
    /// policy came from.
    pub bundle_revision: Option<u64>,
    pub bundle_digest: Option<Arc<str>>,
    /// Name of the matched route.
    pub route: Option<Arc<str>>,
    pub method: Cow<'static, str>,
    /// The normalised path (or the raw one, escaped, for a 400).
    pub path: String,
    /// Client address, `ip:port`.
    pub source: Arc<str>,
    pub decision: AuditDecision,
    pub status: u16,
    /// The matched rule (allow or explicit deny).
    pub rule: Option<Arc<str>>,
    /// Deny or error reason code and explanation.
    pub reason: Option<String>,
    pub policy_revision: Arc<str>,
    pub policy_sha256: Arc<str>,
    pub latency_us: u64,
}

impl AuditRecord {
    /// Appends the record as one JSON object to `out`: the same bytes as
    /// `serde_json::to_writer(out, self)`, without escaping the member
    /// names again for every record (the writer's main cost). Values go
    /// through `serde_json`, so their escaping is the same.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        fn member<T: serde::Serialize + ?Sized>(
            out: &mut Vec<u8>,
            name: &str,
            value: &T,
        ) -> Result<(), serde_json::Error> {
            out.extend_from_slice(name.as_bytes());
            serde_json::to_writer(&mut *out, value)
        }
        /// A string (or `null`): copied as is when nothing in it needs
        /// escaping (control characters, `"` and `\\` are all that JSON
        /// and `serde_json` escape), else through `serde_json`.
        fn string(
            out: &mut Vec<u8>,
            name: &str,
            value: Option<&str>,
        ) -> Result<(), serde_json::Error> {
            out.extend_from_slice(name.as_bytes());
            match value {
                None => out.extend_from_slice(b"null"),
                Some(v) if !needs_escape(v.as_bytes()) => {
                    out.reserve(v.len() + 2);
                    out.push(b'"');
                    out.extend_from_slice(v.as_bytes());
                    out.push(b'"');
                }
                Some(v) => serde_json::to_writer(&mut *out, v)?,
            }
            Ok(())
        }
        /// Eight bytes at a time: a byte below 0x20, a `"` or a `\\`
        /// sets its high bit in the mask (exact for these values).
        fn needs_escape(bytes: &[u8]) -> bool {
            const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
            const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
            let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
            let mut chunks = bytes.chunks_exact(8);
            let mut hits = 0;
            for c in &mut chunks {
                let mut word = [0u8; 8];
                word.copy_from_slice(c);
                let v = u64::from_ne_bytes(word);
                hits |= v.wrapping_sub(ONES * 0x20) & !v & HIGH
                    | has_zero(v ^ (ONES * u64::from(b'"')))
                    | has_zero(v ^ (ONES * u64::from(b'\\')));
            }
            hits != 0
                || chunks
                    .remainder()
                    .iter()
                    .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
        }
        out.extend_from_slice(b"{\"time\":\"");
        self.time.write_to(out);
        out.push(b'"');
        string(out, ",\"request_id\":", Some(&self.request_id))?;
        string(out, ",\"trace_id\":", self.trace_id.as_deref())?;
        string(out, ",\"principal\":", Some(&self.principal))?;
        string(out, ",\"spiffe_id\":", self.spiffe_id.as_deref())?;
        string(
            out,
            ",\"cert_thumbprint\":",
            self.cert_thumbprint.as_deref(),
        )?;
        string(out, ",\"token_issuer\":", self.token_issuer.as_deref())?;
        string(out, ",\"token_subject\":", self.token_subject.as_deref())?;
        member(out, ",\"bundle_revision\":", &self.bundle_revision)?;
        string(out, ",\"bundle_digest\":", self.bundle_digest.as_deref())?;
        string(out, ",\"route\":", self.route.as_deref())?;
        string(out, ",\"method\":", Some(&self.method))?;
        string(out, ",\"path\":", Some(&self.path))?;
        string(out, ",\"source\":", Some(&self.source))?;
        member(out, ",\"decision\":", &self.decision)?;
        member(out, ",\"status\":", &self.status)?;
        string(out, ",\"rule\":", self.rule.as_deref())?;
        string(out, ",\"reason\":", self.reason.as_deref())?;
        string(out, ",\"policy_revision\":", Some(&self.policy_revision))?;
        string(out, ",\"policy_sha256\":", Some(&self.policy_sha256))?;
        member(out, ",\"latency_us\":", &self.latency_us)?;
        out.push(b'}');
        Ok(())
    }
}

/// The time of an audit record, written as RFC 3339 in UTC with
/// microsecond precision, e.g. `2025-01-31T12:00:00.123456Z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditTime(pub jiff::Timestamp);

impl serde::Serialize for AuditTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::fmt::Display for AuditTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.6}", self.0)
    }
}

impl AuditTime {
    /// Appends the same text as `Display`. Records come many per second:
    /// the date and time up to the second are formatted once per second
    /// (per thread) and reused; only the microseconds are new.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        /// `YYYY-MM-DDTHH:MM:SS`
        const PREFIX: usize = 19;
        thread_local! {
            static LAST: std::cell::Cell<(i64, [u8; PREFIX])> =
                const { std::cell::Cell::new((i64::MIN, [0; PREFIX])) };
        }
        let second = self.0.as_second();
        let micros = match u32::try_from(self.0.subsec_microsecond()) {
            Ok(m) if second >= 0 && self.0.subsec_nanosecond() >= 0 => m,
            // before 1970: jiff formats it
            _ => {
                let _ = write!(out, "{self}");
                return;
            }
        };
        let cached = LAST
            .try_with(|last| {
                let (s, prefix) = last.get();
                if s == second {
                    return Some(prefix);
                }
                let text = format!("{self}");
                // Four-digit years only; others keep jiff's text.
                let prefix: [u8; PREFIX] = text.as_bytes().get(..PREFIX)?.try_into().ok()?;
                (text.len() == PREFIX + 8).then(|| {
                    last.set((second, prefix));
                    prefix
                })
            })
            .ok()
            .flatten();
        let Some(prefix) = cached else {
            let _ = write!(out, "{self}");
            return;
        };
        out.extend_from_slice(&prefix);
        let mut frac = *b".000000Z";
        let mut m = micros;
        for d in frac.get_mut(1..7).into_iter().flatten().rev() {
            *d = b'0' + u8::try_from(m % 10).unwrap_or(0);
            m /= 10;
        }
        out.extend_from_slice(&frac);
    }
}

/// The current time, for [`AuditRecord::time`].
pub fn audit_time_now() -> AuditTime {
    AuditTime(jiff::Timestamp::now())
}

/// Where audit lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditDest {
    /// Standard output (diagnostic logs go to stderr, so the two never mix).
    Stdout,
    /// A file, opened for appending and created with mode 0640.
    File(PathBuf),
}

/// Settings of the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditConfig {
    pub dest: AuditDest,
    /// Records the queue holds, `1..=MAX_QUEUE_CAPACITY`.
    pub queue_capacity: usize,
    /// How long a deny record may wait for queue space, at most
    /// [`MAX_DENY_WAIT`].
    pub deny_wait: Duration,
}

impl AuditConfig {
    /// Settings with the default queue capacity and deny wait.
    pub fn new(dest: AuditDest) -> Self {
        Self {
            dest,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            deny_wait: DEFAULT_DENY_WAIT,
        }
    }
}

/// Why the audit log could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit queue capacity `{capacity}` is outside 1..={MAX_QUEUE_CAPACITY}")]
    QueueCapacity { capacity: usize },
    #[error("audit deny wait `{wait:?}` is longer than the maximum of {MAX_DENY_WAIT:?}")]
    DenyWait { wait: Duration },
    #[error("cannot open audit log `{}`", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the audit writer must be started inside a tokio runtime")]
    NoRuntime,
}

#[derive(Debug)]
enum Control {
    Reopen,
}

/// Handle for submitting audit records; cheap to clone.
///
/// # Losing records
///
/// A record is never lost silently. When the queue is full:
/// - an *allow* record ([`AuditLog::record`]) is dropped at once and counted
///   in `portcullis_audit_records_dropped_total{decision="allow"}`: an audit
///   backlog must not slow down allowed traffic;
/// - a *deny* or *error* record ([`AuditLog::record_deny`]) waits up to
///   [`AuditConfig::deny_wait`] for space, holding back the denied request
///   (backpressure lands on the traffic being refused). If the queue is still
///   full it is counted in `..._dropped_total{decision="deny"}` (or `"error"`)
///   and logged at error level with its request id.
///
/// Write failures are counted in `portcullis_audit_write_errors_total` and
/// logged; they never stop the writer.
///
/// # Log rotation
///
/// For a file destination, rotate by renaming the file and then calling
/// [`AuditLog::reopen`] (the gateway does on `SIGUSR1`): the writer flushes what it
/// buffered into the renamed file and opens a fresh file at the configured
/// path (created with mode 0640). Records queued before the call may land in
/// either file; none is lost. For stdout, reopening only flushes.
///
/// # Shutdown
///
/// [`AuditWriterTask::shutdown`] closes the queue, writes every queued
/// record, flushes and returns. Records offered after that are counted as
/// dropped. If the task handle is dropped instead, the writer keeps running
/// until every [`AuditLog`] handle is gone, then drains and exits.
///
/// The writer needs a tokio runtime with the time driver enabled (the
/// default of `#[tokio::main]`).
#[derive(Clone, Debug)]
pub struct AuditLog {
    records: mpsc::Sender<AuditRecord>,
    control: mpsc::Sender<Control>,
    deny_wait: Duration,
    metrics: Arc<Metrics>,
}

/// The running writer task; see [`AuditWriterTask::shutdown`].
#[derive(Debug)]
pub struct AuditWriterTask {
    shutdown: oneshot::Sender<()>,
    done: oneshot::Receiver<()>,
}

impl AuditLog {
    /// Opens the destination and spawns the writer task on the current tokio
    /// runtime.
    pub fn start(
        cfg: AuditConfig,
        metrics: Arc<Metrics>,
    ) -> Result<(AuditLog, AuditWriterTask), AuditError> {
        check_limits(cfg.queue_capacity, cfg.deny_wait)?;
        // Callers need a runtime for `record_deny`'s timer.
        tokio::runtime::Handle::try_current().map_err(|_| AuditError::NoRuntime)?;
        let (sink, path): (Sink, Option<PathBuf>) = match cfg.dest {
            AuditDest::Stdout => (Box::new(tokio::io::stdout()), None),
            AuditDest::File(path) => {
                let file = open_options()
                    .open(&path)
                    .map_err(|source| AuditError::Open {
                        path: path.clone(),
                        source,
                    })?;
                (Box::new(SyncFile(file)), Some(path))
            }
        };
        Ok(spawn(
            sink,
            path,
            cfg.queue_capacity,
            cfg.deny_wait,
            metrics,
        ))
    }

    /// Like [`AuditLog::start`] but writes to `writer` (an in-memory pipe, a
    /// socket); [`AuditLog::reopen`] only flushes it.
    pub fn start_with_writer<W>(
        writer: W,
        queue_capacity: usize,
        deny_wait: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<(AuditLog, AuditWriterTask), AuditError>
    where
        W: AsyncWrite + Send + Unpin + 'static,
    {
        check_limits(queue_capacity, deny_wait)?;
        // Callers need a runtime for `record_deny`'s timer.
        tokio::runtime::Handle::try_current().map_err(|_| AuditError::NoRuntime)?;
        Ok(spawn(
            Box::new(writer),
            None,
            queue_capacity,
            deny_wait,
            metrics,
        ))
    }

    /// Queues an allow record without waiting. If the queue is full (or
    /// closed) the record is dropped and counted in
    /// `portcullis_audit_records_dropped_total` under its decision.
    ///
    /// Use [`AuditLog::record_deny`] for deny and error records.
    pub fn record(&self, rec: AuditRecord) {
        let decision = rec.decision;
        match self.records.try_send(rec) {
            Ok(()) => self.update_depth(),
            Err(TrySendError::Full(rec) | TrySendError::Closed(rec)) => {
                self.metrics.audit_record_dropped(decision);
                tracing::debug!(
                    request_id = %rec.request_id,
                    decision = decision.as_str(),
                    "audit queue full or closed, record dropped"
                );
            }
        }
    }

    /// Queues a deny or error record, waiting up to the configured deny wait
    /// for space. If there is still none, the record is counted in
    /// `portcullis_audit_records_dropped_total` under its decision and logged
    /// at error level with its request id.
    pub async fn record_deny(&self, rec: AuditRecord) {
        let permit = match self.records.try_reserve() {
            Ok(permit) => Ok(permit),
            Err(TrySendError::Closed(())) => Err("audit queue is closed"),
            Err(TrySendError::Full(())) => {
                match tokio::time::timeout(self.deny_wait, self.records.reserve()).await {
                    Ok(Ok(permit)) => Ok(permit),
                    Ok(Err(_closed)) => Err("audit queue is closed"),
                    Err(_elapsed) => Err("audit queue stayed full"),
                }
            }
        };
        match permit {
            Ok(permit) => {
                permit.send(rec);
                self.update_depth();
            }
            Err(why) => {
                self.metrics.audit_record_dropped(rec.decision);
                tracing::error!(
                    request_id = %rec.request_id,
                    decision = rec.decision.as_str(),
                    "{why}, audit record dropped"
                );
            }
        }
    }

    /// Asks the writer to flush and reopen the file at the configured path
    /// (after log rotation renamed it). Requests made while one is pending
    /// are merged into it.
    pub fn reopen(&self) {
        match self.control.try_send(Control::Reopen) {
            Ok(()) | Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Closed(_)) => {
                tracing::warn!("audit writer has stopped, reopen ignored");
            }
        }
    }

    fn update_depth(&self) {
        let depth = self
            .records
            .max_capacity()
            .saturating_sub(self.records.capacity());
        self.metrics.set_audit_queue_depth(depth);
    }
}

impl AuditWriterTask {
    /// Closes the queue, writes every queued record, flushes and returns.
    pub async fn shutdown(self) {
        // An error means the writer already stopped; joining is still right.
        let _ = self.shutdown.send(());
        if self.done.await.is_err() {
            tracing::error!("audit writer thread failed");
        }
    }
}

fn check_limits(queue_capacity: usize, deny_wait: Duration) -> Result<(), AuditError> {
    if queue_capacity == 0 || queue_capacity > MAX_QUEUE_CAPACITY {
        return Err(AuditError::QueueCapacity {
            capacity: queue_capacity,
        });
    }
    if deny_wait > MAX_DENY_WAIT {
        return Err(AuditError::DenyWait { wait: deny_wait });
    }
    Ok(())
}

fn open_options() -> std::fs::OpenOptions {
    let mut opts = std::fs::OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o640);
    opts
}

type Sink = Box<dyn AsyncWrite + Send + Unpin>;

fn spawn(
    sink: Sink,
    path: Option<PathBuf>,
    queue_capacity: usize,
    deny_wait: Duration,
    metrics: Arc<Metrics>,
) -> (AuditLog, AuditWriterTask) {
    let (records, records_rx) = mpsc::channel(queue_capacity);
    // One pending reopen is enough: later requests merge into it.
    let (control, control_rx) = mpsc::channel(1);
    let (shutdown, shutdown_rx) = oneshot::channel();
    let writer = Writer {
        records: records_rx,
        control: control_rx,
        out: BufWriter::with_capacity(WRITE_BUFFER_BYTES, sink),
        path,
        line: Vec::with_capacity(1024),
        batch: Vec::with_capacity(WRITE_BATCH),
        unflushed: Unflushed::default(),
        metrics: Arc::clone(&metrics),
        failing: false,
    };
    // The writer gets its own thread and single-threaded runtime: its
    // writes and flushes never occupy a request worker.
    let (done_tx, done) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("portcullis-audit".to_owned())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(writer.run(shutdown_rx)),
                Err(e) => tracing::error!(error = %e, "cannot start the audit writer runtime"),
            }
            let _ = done_tx.send(());
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the audit writer thread");
    }
    let log = AuditLog {
        records,
        control,
        deny_wait,
        metrics,
    };
    (log, AuditWriterTask { shutdown, done })
}

struct Writer {
    records: mpsc::Receiver<AuditRecord>,
    control: mpsc::Receiver<Control>,
    out: BufWriter<Sink>,
    path: Option<PathBuf>,
    line: Vec<u8>,
    /// The records taken from the queue in one go (kept for its capacity):
    /// the queue's lock is taken once per batch, not once per record.
    batch: Vec<AuditRecord>,
    // Records buffered since the last successful flush; they are counted as
    // written once a flush succeeds.
    unflushed: Unflushed,
    metrics: Arc<Metrics>,
    // True after a failed write until the next successful flush, so a
    // broken sink logs once rather than once per record.
    failing: bool,
}

impl Writer {
    async fn run(mut self, mut shutdown: oneshot::Receiver<()>) {
        let mut shutdown_armed = true;
        loop {
            tokio::select! {
                biased;
                Some(Control::Reopen) = self.control.recv() => self.reopen().await,
                res = &mut shutdown, if shutdown_armed => match res {
                    Ok(()) => break,
                    // The task handle was dropped: run until the senders go.
                    Err(_) => shutdown_armed = false,
                },
                // Cancel safe: records are either taken into the batch
                // or left in the queue.
                taken = self.records.recv_many(&mut self.batch, WRITE_BATCH) => {
                    if taken == 0 {
                        break; // closed and empty
                    }
                    self.write_batch().await;
                }
            }
        }
        self.records.close();
        while let Some(rec) = self.records.recv().await {
            self.write(&rec).await;
        }
        self.metrics.set_audit_queue_depth(0);
        match self.out.shutdown().await {
            Ok(()) => self.flushed(),
            Err(err) => self.write_failed(&err, "failed to flush audit log at shutdown"),
        }
    }

    /// Writes the records taken into `batch`, then flushes and pauses if
    /// the queue is empty.
    async fn write_batch(&mut self) {
        let mut batch = std::mem::take(&mut self.batch);
        for rec in batch.drain(..) {
            self.write(&rec).await;
        }
        self.batch = batch;
        self.metrics.set_audit_queue_depth(self.records.len());
        if self.records.is_empty() {
            self.flush().await;
            // Let records gather before looking again: under load the
            // writer then takes a batch per wake-up instead of being woken
            // (a cross-thread wake on the request path) for every record.
            tokio::time::sleep(COALESCE_DELAY).await;
        }
    }

    async fn write(&mut self, rec: &AuditRecord) {
        self.line.clear();
        if self.line.capacity() > LINE_BUFFER_RETAIN_BYTES {
            self.line.shrink_to(LINE_BUFFER_RETAIN_BYTES);
        }
        let result = match rec.write_json(&mut self.line) {
            Ok(()) => {
                self.line.push(b'\n');
                self.out.write_all(&self.line).await
            }
            Err(err) => Err(io::Error::other(err)),
        };
        match result {
            Ok(()) => self.unflushed.add(rec.decision),
            Err(err) => self.write_failed(&err, "failed to write audit record"),
        }
    }

    async fn flush(&mut self) {
        match self.out.flush().await {
            Ok(()) => self.flushed(),
            Err(err) => self.write_failed(&err, "failed to flush audit log"),
        }
    }

    async fn reopen(&mut self) {
        let Some(path) = self.path.clone() else {
            self.flush().await;
            return;
        };
        let file = match open_file(&path).await {
            Ok(file) => file,
            Err(err) => {
                self.metrics.audit_write_error();
                tracing::error!(
                    path = %path.display(),
                    error = %err,
                    "cannot reopen audit log, still writing to the previous file"
                );
                return;
            }
        };
        self.flush().await;
        let lost = self.unflushed.total();
        if lost > 0 {
            // The old file refused the flush; its buffer goes with it.
            tracing::error!(
                lost,
                "audit records lost: previous file could not be flushed"
            );
            self.unflushed = Unflushed::default();
        }
        self.out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, Box::new(file));
        tracing::info!(path = %path.display(), "audit log reopened");
    }

    fn write_failed(&mut self, err: &io::Error, what: &'static str) {
        self.metrics.audit_write_error();
        if !self.failing {
            self.failing = true;
            tracing::error!(error = %err, "{what}");
        }
    }

    fn flushed(&mut self) {
        let Unflushed { allow, deny, error } = std::mem::take(&mut self.unflushed);
        self.metrics.audit_records_written(Decision::Allow, allow);
        self.metrics.audit_records_written(Decision::Deny, deny);
        self.metrics.audit_records_written(Decision::Error, error);
        if self.failing {
            self.failing = false;
            tracing::info!("audit log writes succeed again");
        }
    }
}

#[derive(Default)]
struct Unflushed {
    allow: u64,
    deny: u64,
    error: u64,
}

impl Unflushed {
    fn add(&mut self, decision: Decision) {
        let n = match decision {
            Decision::Allow => &mut self.allow,
            Decision::Deny => &mut self.deny,
            Decision::Error => &mut self.error,
        };
        *n = n.saturating_add(1);
    }

    fn total(&self) -> u64 {
        self.allow
            .saturating_add(self.deny)
            .saturating_add(self.error)
    }
}

async fn open_file(path: &Path) -> io::Result<SyncFile> {
    open_options().open(path).map(SyncFile)
}

/// A file written with plain blocking writes. The writer runs on its own
/// thread (see [`spawn`]), so a write that blocks stalls only the audit
/// writer, never a request; and unlike `tokio::fs::File` no write or flush
/// is handed to the blocking pool (one thread hop per flush).
struct SyncFile(std::fs::File);

impl AsyncWrite for SyncFile {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        use std::io::Write;
        std::task::Poll::Ready(self.get_mut().0.write(buf))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::io::Write;
        std::task::Poll::Ready(self.get_mut().0.flush())
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
