//! Self-observability: Prometheus counters, gauges and histograms served on `/metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Transport {
    pub transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub transport: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

pub struct Metrics {
    pub registry: Registry,
    /// The embedded engine's metrics, when it runs next to this collector (`with_engine`).
    engine: Option<Registry>,
    pub requests: Family<Outcome, Counter>,
    pub spans_received: Family<Transport, Counter>,
    pub spans_accepted: Family<Transport, Counter>,
    pub spans_rejected: Family<Transport, Counter>,
    pub spans_invalid: Family<Reason, Counter>,
    pub spans_inserted: Counter,
    pub batches_inserted: Counter,
    /// Failed insert attempts by kind (retryable, permanent, unconfirmed, timeout).
    pub insert_failures: Family<Reason, Counter>,
    pub batches_bisected: Counter,
    pub dead_letter_spans: Counter,
    /// What is in `<spool>/dead/` now (refreshed on every change and every scrape).
    pub dead_letter_spans_stored: Gauge<u64, AtomicU64>,
    pub dead_letter_segments: Gauge<u64, AtomicU64>,
    pub dead_letter_bytes: Gauge<u64, AtomicU64>,
    pub spool_write_errors: Counter,
    pub spool_fsync_errors: Counter,
    /// Request bytes (read and inflated) held by requests being received or converted.
    pub inflight_request_bytes: Gauge<u64, AtomicU64>,
    pub batch_retries: Counter,
    pub batches_parked: Counter,
    pub spool_bytes: Gauge<u64, AtomicU64>,
    pub batch_spans: Histogram,
    pub insert_seconds: Histogram,
    pub accept_seconds: Family<Transport, Histogram, fn() -> Histogram>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("orrery_collector");
        let m = Self {
            requests: Family::default(),
            spans_received: Family::default(),
            spans_accepted: Family::default(),
            spans_rejected: Family::default(),
            spans_invalid: Family::default(),
            spans_inserted: Counter::default(),
            batches_inserted: Counter::default(),
            insert_failures: Family::default(),
            batches_bisected: Counter::default(),
            dead_letter_spans: Counter::default(),
            dead_letter_spans_stored: Gauge::default(),
            dead_letter_segments: Gauge::default(),
            dead_letter_bytes: Gauge::default(),
            spool_write_errors: Counter::default(),
            spool_fsync_errors: Counter::default(),
            inflight_request_bytes: Gauge::default(),
            batch_retries: Counter::default(),
            batches_parked: Counter::default(),
            spool_bytes: Gauge::default(),
            batch_spans: Histogram::new(exponential_buckets(100.0, 2.0, 12)),
            insert_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            accept_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 14))
            }),
            registry: Registry::default(),
            engine: None,
        };
        registry.register("requests", "Export requests by outcome", m.requests.clone());
        registry.register("spans_received", "Spans received", m.spans_received.clone());
        registry.register(
            "spans_accepted",
            "Spans accepted (spooled and acknowledged)",
            m.spans_accepted.clone(),
        );
        registry.register(
            "spans_rejected",
            "Spans rejected individually (partial success)",
            m.spans_rejected.clone(),
        );
        registry.register(
            "spans_invalid",
            "Spans rejected individually, by reason (invalid_id, too_old, too_far_in_future, end_before_start)",
            m.spans_invalid.clone(),
        );
        registry.register(
            "insert_failures",
            "Failed insert attempts by kind: retryable, permanent (ClickHouse refused the data), unconfirmed (fewer rows written than sent), timeout",
            m.insert_failures.clone(),
        );
        registry.register(
            "batches_bisected",
            "Batches split to isolate rows ClickHouse refuses permanently",
            m.batches_bisected.clone(),
        );
        registry.register(
            "dead_letter_spans",
            "Spans set aside in <spool>/dead/ because ClickHouse refuses them permanently (see `orrery spool list`)",
            m.dead_letter_spans.clone(),
        );
        registry.register(
            "dead_letter_spans_stored",
            "Spans now in <spool>/dead/",
            m.dead_letter_spans_stored.clone(),
        );
        registry.register(
            "dead_letter_segments",
            "Dead-letter segments now in <spool>/dead/",
            m.dead_letter_segments.clone(),
        );
        registry.register(
            "dead_letter_bytes",
            "Bytes now in <spool>/dead/ (not counted against --spool-max-bytes)",
            m.dead_letter_bytes.clone(),
        );
        registry.register(
            "spool_write_errors",
            "Spool writes that failed (disk full, I/O error): those requests got 503 / UNAVAILABLE",
            m.spool_write_errors.clone(),
        );
        registry.register(
            "spool_fsync_errors",
            "Failed fsyncs of spool files or the spool directory",
            m.spool_fsync_errors.clone(),
        );
        registry.register(
            "inflight_request_bytes",
            "Request bytes (as read plus inflated) held by requests being received or converted",
            m.inflight_request_bytes.clone(),
        );
        registry.register(
            "spans_inserted",
            "Spans inserted into ClickHouse",
            m.spans_inserted.clone(),
        );
        registry.register(
            "batches_inserted",
            "Batches inserted into ClickHouse",
            m.batches_inserted.clone(),
        );
        registry.register(
            "batch_retries",
            "Insert attempts retried",
            m.batch_retries.clone(),
        );
        registry.register(
            "batches_parked",
            "Batches parked on disk after their time to live",
            m.batches_parked.clone(),
        );
        registry.register("spool_bytes", "Bytes in the spool", m.spool_bytes.clone());
        registry.register(
            "batch_spans",
            "Spans per inserted batch",
            m.batch_spans.clone(),
        );
        registry.register(
            "insert_seconds",
            "ClickHouse insert latency",
            m.insert_seconds.clone(),
        );
        registry.register(
            "accept_seconds",
            "Time to accept a request once its body is read: conversion, spool write, acknowledgement",
            m.accept_seconds.clone(),
        );
        Self { registry, ..m }
    }

    pub fn encode(&self) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        let _ = encode_registry(&mut out, &self.registry);
        if let Some(engine) = &self.engine {
            let _ = encode_registry(&mut out, engine);
        }
        let _ = encode_eof(&mut out);
        out
    }

    /// Also exports the embedded engine's `orrery_embedded_engine_*` metrics (all-in-one: the
    /// engine runs next to this collector). A registry of its own, so that the names keep
    /// their prefix instead of taking `orrery_collector_`.
    pub fn with_engine(mut self, health: &orrery_store::embedded::EngineHealth) -> Self {
        let mut registry = Registry::default();
        health.register(&mut registry);
        self.engine = Some(registry);
        self
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
