//! Observability of the Portcullis gateway: Prometheus metrics, the audit
//! log, request ids, W3C trace context parsing and the diagnostic logger.
//!
//! - [`Metrics`] registers every metric family once and offers typed methods
//!   (no free-form label names); [`Metrics::encode`] renders `/metrics`.
//! - [`AuditLog`] takes one [`AuditRecord`] per access decision and writes it
//!   as a JSON line from a background task, through a bounded queue; dropped
//!   records are always counted.
//! - [`new_request_id`], [`parse_traceparent`] and [`init_tracing`] are small
//!   helpers used by the gateway for every request and at startup.
//!
//! This crate makes no access decisions, serves no HTTP (the admin listener
//! exposes [`Metrics::encode`]) and does not export traces or spans.

mod audit;
mod logging;
mod metrics;
mod request_id;
mod trace_context;

pub use audit::{
    audit_time_now, AuditConfig, AuditDecision, AuditDest, AuditError, AuditLog, AuditRecord,
    AuditTime, AuditWriterTask, COALESCE_DELAY, DEFAULT_DENY_WAIT, DEFAULT_QUEUE_CAPACITY,
    LINE_BUFFER_RETAIN_BYTES, MAX_DENY_WAIT, MAX_QUEUE_CAPACITY, WRITE_BATCH, WRITE_BUFFER_BYTES,
};
pub use logging::{init_tracing, TracingInitError};
pub use metrics::{
    ConnectionGuard, Decision, Metrics, RouteMetrics, UpstreamErrorKind, METRICS_CONTENT_TYPE,
    METRIC_PREFIX, REQUEST_DURATION_BUCKETS, ROUTE_METRICS_CACHED,
};
pub use request_id::{new_request_id, new_request_id_shared, REQUEST_ID_BYTES};
pub use trace_context::{parse_traceparent, TRACEPARENT_LEN};
