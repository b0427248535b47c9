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

pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<Outcome, Counter>,
    pub spans_received: Family<Transport, Counter>,
    pub spans_accepted: Family<Transport, Counter>,
    pub spans_rejected: Family<Transport, Counter>,
    pub spans_inserted: Counter,
    pub batches_inserted: Counter,
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
            spans_inserted: Counter::default(),
            batches_inserted: Counter::default(),
            batch_retries: Counter::default(),
            batches_parked: Counter::default(),
            spool_bytes: Gauge::default(),
            batch_spans: Histogram::new(exponential_buckets(100.0, 2.0, 12)),
            insert_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            accept_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 14))
            }),
            registry: Registry::default(),
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
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
