//! Prometheus metrics of the gateway, behind typed methods.

use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

#[cfg(test)]
mod tests;

/// Prefix of every metric name.
pub const METRIC_PREFIX: &str = "portcullis";

/// HTTP `Content-Type` of [`Metrics::encode`]'s output (OpenMetrics text,
/// which Prometheus scrapes natively).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the request duration buckets: 50 µs (a cached
/// deny) to 10 s (a slow upstream), roughly ×2–2.5 per step so percentiles
/// stay within one bucket's error across that range.
pub const REQUEST_DURATION_BUCKETS: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// Outcome of a request or of an audit record.
///
/// Serialised and used as a label value in lowercase: `allow`, `deny`,
/// `error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The policy allowed the request.
    Allow,
    /// The policy (or a guard before it) denied the request.
    Deny,
    /// The request failed for another reason (upstream, evaluation error).
    Error,
}

impl Decision {
    /// The lowercase name used in labels and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Error => "error",
        }
    }
}

impl EncodeLabelValue for Decision {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// Kind of upstream failure counted in `portcullis_upstream_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamErrorKind {
    /// The connection to the upstream could not be established.
    Connect,
    /// The upstream did not answer in time.
    Timeout,
    /// The upstream broke the HTTP protocol or reset the stream.
    Protocol,
}

impl UpstreamErrorKind {
    /// The lowercase name used as label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Protocol => "protocol",
        }
    }
}

impl EncodeLabelValue for UpstreamErrorKind {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// Counters a [`RouteMetrics`] keeps at most (distinct decision and status
/// pairs); others are looked up per request.
pub const ROUTE_METRICS_CACHED: usize = 32;

/// One route's request metrics, held by the gateway per route so that
/// counting a request needs no label set (two strings and two hash
/// lookups per request otherwise). The handles share their series with
/// the registry's families.
#[derive(Debug)]
pub struct RouteMetrics {
    route: String,
    duration: Histogram,
    /// The counters per (decision, status) seen so far.
    requests: RwLock<Vec<(Decision, u16, Counter)>>,
}

impl RouteMetrics {
    /// Counts one request of this route and observes its latency.
    pub fn observe(&self, metrics: &Metrics, decision: Decision, status: u16, latency: Duration) {
        /// The cached counter of `decision` and `status`.
        fn find(
            list: &[(Decision, u16, Counter)],
            decision: Decision,
            status: u16,
        ) -> Option<&Counter> {
            list.iter()
                .find(|(d, s, _)| *d == decision && *s == status)
                .map(|(_, _, c)| c)
        }
        self.duration.observe(latency.as_secs_f64());
        let cached = self.requests.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(counter) = find(&cached, decision, status) {
            counter.inc();
            return;
        }
        drop(cached);
        let counter = metrics
            .requests
            .get_or_create(&RequestLabels {
                route: self.route.clone(),
                decision,
                status,
            })
            .clone();
        counter.inc();
        let mut requests = self
            .requests
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if requests.len() < ROUTE_METRICS_CACHED && find(&requests, decision, status).is_none() {
            requests.push((decision, status, counter));
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    decision: Decision,
    status: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

impl ResultLabels {
    fn of(ok: bool) -> Self {
        Self {
            result: if ok { "success" } else { "failure" },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PolicyLabels {
    revision: String,
    sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TlsFailureLabels {
    listener: String,
    reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultReasonLabels {
    result: &'static str,
    reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DecisionLabels {
    decision: Decision,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ListenerLabels {
    listener: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamErrorLabels {
    route: String,
    kind: UpstreamErrorKind,
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

fn request_duration_histogram() -> Histogram {
    Histogram::new(REQUEST_DURATION_BUCKETS)
}

/// Every metric of the gateway, registered in one registry.
///
/// Share it as `Arc<Metrics>`; all methods take `&self` and are cheap
/// (atomic updates, plus a label-set lookup for labelled families).
///
/// # Cardinality
///
/// Every label value comes either from the configuration (route and listener
/// names, the policy revision and digest) or from a fixed set of codes chosen
/// by the calling code (decisions, reload results, reason codes, upstream
/// error kinds, HTTP status codes). No label ever holds client-controlled text
/// such as a path, a header or a certificate field: one series per distinct
/// value is kept for the life of the process, so client text would let a
/// client grow memory and the scrape without bound. Callers passing `&str`
/// reasons must pass one of their fixed reason codes.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<RouteLabels>,
    policy_reloads: Family<ResultLabels, Counter>,
    policy_info: Family<PolicyLabels, Gauge>,
    // INVARIANT: holds the only label set present in `policy_info`; updated
    // under this lock so concurrent swaps cannot leave two series behind.
    current_policy: Mutex<Option<PolicyLabels>>,
    policy_loaded_timestamp: Gauge<f64, AtomicU64>,
    tls_handshake_failures: Family<TlsFailureLabels, Counter>,
    bad_requests: Family<ReasonLabels, Counter>,
    bearer_tokens: Family<ResultReasonLabels, Counter>,
    session_store_errors: Family<ReasonLabels, Counter>,
    provider_refresh_failures: Family<ReasonLabels, Counter>,
    bundle_refusals: Family<ReasonLabels, Counter>,
    bundle_revision: Gauge,
    bundle_age: Gauge,
    audit_records: Family<DecisionLabels, Counter>,
    audit_records_dropped: Family<DecisionLabels, Counter>,
    audit_queue_depth: Gauge,
    audit_write_errors: Counter,
    connections_active: Family<ListenerLabels, Gauge>,
    connections: Family<ListenerLabels, Counter>,
    connections_idle: Gauge,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    config_reloads: Family<ResultLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric family, all empty.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(METRIC_PREFIX);
        let requests = Family::default();
        registry.register(
            "requests",
            "Requests handled, by route, decision and response status",
            requests.clone(),
        );
        let request_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(request_duration_histogram);
        registry.register_with_unit(
            "request_duration",
            "Time from request head received to response head sent, by route",
            Unit::Seconds,
            request_duration.clone(),
        );
        let policy_reloads = Family::default();
        registry.register(
            "policy_reloads",
            "Policy reload attempts, by result",
            policy_reloads.clone(),
        );
        let policy_info = Family::default();
        registry.register(
            "policy_info",
            "The policy in force (value 1), labelled with its revision and SHA-256",
            policy_info.clone(),
        );
        let policy_loaded_timestamp = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "policy_loaded_timestamp",
            "Unix time at which the policy in force was loaded",
            Unit::Seconds,
            policy_loaded_timestamp.clone(),
        );
        let tls_handshake_failures = Family::default();
        registry.register(
            "tls_handshake_failures",
            "Failed TLS handshakes, by listener and reason code",
            tls_handshake_failures.clone(),
        );
        let bad_requests = Family::default();
        registry.register(
            "bad_requests",
            "Requests rejected before routing as malformed or hostile, by reason code",
            bad_requests.clone(),
        );
        let bearer_tokens = Family::default();
        registry.register(
            "bearer_tokens",
            "Bearer tokens checked, by result (`verified`, `cached`, `refused`) and refusal reason code",
            bearer_tokens.clone(),
        );
        let session_store_errors = Family::default();
        registry.register(
            "session_store_errors",
            "Requests refused with 503 because the session store failed, by reason code",
            session_store_errors.clone(),
        );
        let provider_refresh_failures = Family::default();
        registry.register(
            "provider_refresh_failures",
            "Provider token refreshes of browser sessions that failed, by reason (invalid_client, \
             unauthorized_client, invalid_request, provider_error, unreachable, id_token_unverified \
             keep the session; id_token_invalid ends it)",
            provider_refresh_failures.clone(),
        );
        let bundle_refusals = Family::default();
        registry.register(
            "policy_bundle_refusals",
            "Policy bundles refused (tampered, unsigned, rolled back, unreachable ...), by reason code",
            bundle_refusals.clone(),
        );
        let bundle_revision = Gauge::default();
        registry.register(
            "policy_bundle_revision",
            "Revision of the active signed policy bundle",
            bundle_revision.clone(),
        );
        let bundle_age = Gauge::default();
        registry.register(
            "policy_bundle_age_seconds",
            "Seconds since the active policy bundle was last verified or confirmed by its source",
            bundle_age.clone(),
        );
        let audit_records = Family::default();
        registry.register(
            "audit_records",
            "Audit records written and flushed to the audit sink, by decision",
            audit_records.clone(),
        );
        let audit_records_dropped = Family::default();
        registry.register(
            "audit_records_dropped",
            "Audit records dropped because the audit queue was full or closed, by decision",
            audit_records_dropped.clone(),
        );
        let audit_queue_depth = Gauge::default();
        registry.register(
            "audit_queue_depth",
            "Audit records waiting to be written",
            audit_queue_depth.clone(),
        );
        let audit_write_errors = Counter::default();
        registry.register(
            "audit_write_errors",
            "Failed writes, flushes or reopens of the audit log",
            audit_write_errors.clone(),
        );
        let connections_active = Family::default();
        registry.register(
            "connections_active",
            "Open client connections, by listener",
            connections_active.clone(),
        );
        let connections = Family::default();
        registry.register(
            "connections",
            "Client connections accepted, by listener",
            connections.clone(),
        );
        let connections_idle = Gauge::default();
        registry.register(
            "connections_idle",
            "HTTP/1 client connections waiting for their next request, holding no HTTP buffers",
            connections_idle.clone(),
        );
        let upstream_errors = Family::default();
        registry.register(
            "upstream_errors",
            "Failed upstream exchanges, by route and kind",
            upstream_errors.clone(),
        );
        let config_reloads = Family::default();
        registry.register(
            "config_reloads",
            "Configuration reload attempts, by result",
            config_reloads.clone(),
        );
        // Series whose label values form a small fixed set are created at
        // zero, so they are scrapeable before their first event and the
        // first reload or dropped audit record shows up as an increase
        // (a series that appears at 1 is invisible to `rate`/`increase`).
        for ok in [true, false] {
            let _ = policy_reloads.get_or_create(&ResultLabels::of(ok));
            let _ = config_reloads.get_or_create(&ResultLabels::of(ok));
        }
        for decision in [Decision::Allow, Decision::Deny, Decision::Error] {
            let _ = audit_records.get_or_create(&DecisionLabels { decision });
            let _ = audit_records_dropped.get_or_create(&DecisionLabels { decision });
        }
        Self {
            registry,
            requests,
            request_duration,
            policy_reloads,
            policy_info,
            current_policy: Mutex::new(None),
            policy_loaded_timestamp,
            tls_handshake_failures,
            bad_requests,
            bearer_tokens,
            session_store_errors,
            provider_refresh_failures,
            bundle_refusals,
            bundle_revision,
            bundle_age,
            audit_records,
            audit_records_dropped,
            audit_queue_depth,
            audit_write_errors,
            connections_active,
            connections,
            connections_idle,
            upstream_errors,
            config_reloads,
        }
    }

    /// Encodes every metric in the OpenMetrics text format, ending with
    /// `# EOF`; serve it with [`METRICS_CONTENT_TYPE`]. Families whose labels
    /// come from the configuration or from requests (routes, listeners,
    /// reason codes) are left out until their first series exists; reload
    /// and audit counters are always present, from zero.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a `String` cannot fail; an error could only come from
        // a metric's own encoder.
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %err, "failed to encode metrics");
        }
        out
    }

    /// Counts a finished request and records its latency.
    ///
    /// `route` is the configured route name (or a fixed placeholder such as
    /// `none` for requests that matched no route).
    pub fn observe_request(&self, route: &str, decision: Decision, status: u16, latency: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                decision,
                status,
            })
            .inc();
        self.request_duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(latency.as_secs_f64());
    }

    /// The request metrics of `route`, for [`RouteMetrics::observe`]:
    /// the same series as [`Metrics::observe_request`], looked up once.
    pub fn route_metrics(&self, route: &str) -> RouteMetrics {
        let duration = self
            .request_duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .clone();
        RouteMetrics {
            route: route.to_owned(),
            duration,
            requests: RwLock::new(Vec::new()),
        }
    }

    /// Counts a policy reload attempt.
    pub fn policy_reload(&self, ok: bool) {
        self.policy_reloads
            .get_or_create(&ResultLabels::of(ok))
            .inc();
    }

    /// Marks the policy now in force: `policy_info{revision, sha256}` is 1
    /// for it and the previous label set is removed; the load timestamp is
    /// set to now.
    pub fn set_policy(&self, revision: &str, sha256: &str) {
        let labels = PolicyLabels {
            revision: revision.to_owned(),
            sha256: sha256.to_owned(),
        };
        let mut current = self
            .current_policy
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.policy_info.get_or_create(&labels).set(1);
        if let Some(old) = current.take() {
            if old != labels {
                self.policy_info.remove(&old);
            }
        }
        *current = Some(labels);
        let now = jiff::Timestamp::now().as_microsecond() as f64 / 1e6;
        self.policy_loaded_timestamp.set(now);
    }

    /// Counts a failed TLS handshake; `reason` is a fixed reason code.
    pub fn tls_handshake_failure(&self, listener: &str, reason: &str) {
        self.tls_handshake_failures
            .get_or_create(&TlsFailureLabels {
                listener: listener.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a request rejected as malformed; `reason` is a fixed reason
    /// code such as `encoded_slash`, `smuggling` or `header_too_large`.
    pub fn bad_request(&self, reason: &str) {
        self.bad_requests
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a bearer token accepted (`cached`: without a signature check).
    pub fn bearer_token_accepted(&self, cached: bool) {
        self.bearer_tokens
            .get_or_create(&ResultReasonLabels {
                result: if cached { "cached" } else { "verified" },
                reason: String::new(),
            })
            .inc();
    }

    /// Counts a request refused because the session store failed; the
    /// label is the store's reason code (`timeout`, `unavailable`, ...),
    /// the text before the first `:` of `detail`.
    pub fn session_store_error(&self, reason: &'static str) {
        self.session_store_errors
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a provider token refresh of a browser session that failed
    /// (`id_token_invalid` also ended the session; the others kept it);
    /// `reason` is from a fixed set.
    pub fn provider_refresh_failed(&self, reason: &'static str) {
        self.provider_refresh_failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a refused policy bundle by reason code.
    pub fn bundle_refused(&self, reason: &str) {
        self.bundle_refusals
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The active bundle's revision.
    pub fn set_bundle(&self, revision: u64) {
        self.bundle_revision
            .set(i64::try_from(revision).unwrap_or(i64::MAX));
    }

    /// Seconds since the bundle was last verified or confirmed.
    pub fn set_bundle_age(&self, secs: u64) {
        self.bundle_age.set(i64::try_from(secs).unwrap_or(i64::MAX));
    }

    /// Counts a bearer token refused; `reason` is a fixed reason code such
    /// as `expired`, `bad_signature` or `unknown_kid`.
    pub fn bearer_token_refused(&self, reason: &str) {
        self.bearer_tokens
            .get_or_create(&ResultReasonLabels {
                result: "refused",
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts `count` audit records written (and flushed) to the audit sink.
    pub(crate) fn audit_records_written(&self, decision: Decision, count: u64) {
        if count > 0 {
            self.audit_records
                .get_or_create(&DecisionLabels { decision })
                .inc_by(count);
        }
    }

    /// Counts an audit record that was dropped.
    pub(crate) fn audit_record_dropped(&self, decision: Decision) {
        self.audit_records_dropped
            .get_or_create(&DecisionLabels { decision })
            .inc();
    }

    /// Sets the number of audit records waiting in the queue.
    pub(crate) fn set_audit_queue_depth(&self, depth: usize) {
        self.audit_queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Counts a failed write, flush or reopen of the audit log.
    pub(crate) fn audit_write_error(&self) {
        self.audit_write_errors.inc();
    }

    /// Counts an accepted connection and returns a guard that keeps it in
    /// `connections_active` until dropped.
    #[must_use = "the connection is counted as active until the guard is dropped"]
    pub fn connection_opened(&self, listener: &str) -> ConnectionGuard {
        let labels = ListenerLabels {
            listener: listener.to_owned(),
        };
        self.connections.get_or_create(&labels).inc();
        let active = self.connections_active.get_or_create_owned(&labels);
        active.inc();
        ConnectionGuard { gauge: active }
    }

    /// Counts an HTTP/1 connection in `connections_idle` until the guard
    /// is dropped.
    #[must_use = "the connection is counted as idle until the guard is dropped"]
    pub fn connection_idle(&self) -> ConnectionGuard {
        self.connections_idle.inc();
        ConnectionGuard {
            gauge: self.connections_idle.clone(),
        }
    }

    /// Counts a failed upstream exchange on a route.
    pub fn upstream_error(&self, route: &str, kind: UpstreamErrorKind) {
        self.upstream_errors
            .get_or_create(&UpstreamErrorLabels {
                route: route.to_owned(),
                kind,
            })
            .inc();
    }

    /// Counts a configuration reload attempt.
    pub fn config_reload(&self, ok: bool) {
        self.config_reloads
            .get_or_create(&ResultLabels::of(ok))
            .inc();
    }
}

/// Keeps one connection counted in a gauge (`portcullis_connections_active`
/// or `portcullis_connections_idle`); the gauge is decremented when the
/// guard is dropped.
#[derive(Debug)]
pub struct ConnectionGuard {
    gauge: Gauge,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}
