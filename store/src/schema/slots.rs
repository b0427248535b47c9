//! Schema v10: 10-second rollup slots, the bridge between the rolled-up minutes and the live
//! part of a graph.
//!
//! A minute can only be rolled up once it has closed (plus a delay for stragglers), so the part
//! of a live graph computed from spans used to span the open minute plus that delay: 30–105 s,
//! ~3M spans at 30k spans/s. The rollup now also rolls up each 10-second slot a few seconds
//! after it ends, so a graph reads spans only from the first slot not rolled up (10–25 s).
//! Slot rows are only read until their minute is rolled up (the minute is recomputed from
//! spans, not merged from slots), so they are kept a day, not the retention.
//! `orrery_span_slots` counts spans per slot on insert, as `orrery_span_minutes` does per minute:
//! a slot whose count changed since its marker is read from spans until recomputed.

use super::SchemaParams;
use super::ddl::{EDGE_KEYS, histogram_table_ddl};

/// Slot rows live this long whatever the retention (they are superseded by minute rows within
/// a minute or two).
const SLOT_DAYS: u32 = 1;

pub(super) fn v10_rollup_slots(p: &SchemaParams) -> Vec<String> {
    let short = SchemaParams {
        retention_days: if p.retention_days == 0 {
            SLOT_DAYS
        } else {
            p.retention_days.min(SLOT_DAYS)
        },
        ..p.clone()
    };
    let db = &p.database;
    let oc = p.on_cluster();
    let mut out = vec![histogram_table_ddl(
        &short,
        "orrery_graph_edges_10s",
        "Slot",
        EDGE_KEYS,
        "Slot, Caller, Callee, CallerRegion, CalleeRegion, CalleeKind",
    )];
    out.extend(p.distributed("orrery_graph_edges_10s", "cityHash64(Caller, Callee)"));
    out.push(histogram_table_ddl(
        &short,
        "orrery_graph_nodes_10s",
        "Slot",
        &["Service", "Region", "Instance"],
        "Slot, Service, Region, Instance",
    ));
    out.extend(p.distributed("orrery_graph_nodes_10s", "cityHash64(Service)"));
    let markers = p.storage_name("orrery_graph_slots");
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {db}.{markers}{oc} (
    Slot DateTime CODEC(Delta, ZSTD(1)),
    ComputedAt UInt64,
    Spans UInt64
) ENGINE = {engine}
PARTITION BY toDate(Slot)
ORDER BY Slot{ttl}",
        engine = p.engine("ReplacingMergeTree", &markers, Some("ComputedAt")),
        ttl = short.ttl("Slot"),
    ));
    out.extend(p.distributed("orrery_graph_slots", "toUnixTimestamp(Slot)"));
    let counts = p.storage_name("orrery_span_slots");
    // A retried insert (same insert_deduplication_token) must not count twice (see v8).
    let dedup = if p.cluster.is_some() {
        ""
    } else {
        "\nSETTINGS non_replicated_deduplication_window = 10000"
    };
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {db}.{counts}{oc} (
    Slot DateTime CODEC(Delta, ZSTD(1)),
    Spans UInt64
) ENGINE = {engine}
PARTITION BY toDate(Slot)
ORDER BY Slot{ttl}{dedup}",
        engine = p.engine("SummingMergeTree", &counts, None),
        ttl = short.ttl("Slot"),
    ));
    out.extend(p.distributed("orrery_span_slots", "rand()"));
    out.push(format!(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{mv}{oc} TO {db}.{counts}
AS SELECT toStartOfInterval(toDateTime(Timestamp), INTERVAL 10 SECOND) AS Slot, count() AS Spans
FROM {db}.{spans}
GROUP BY Slot",
        mv = p.storage_name("orrery_span_slots_mv"),
        spans = p.storage_name("otel_traces"),
    ));
    out
}
