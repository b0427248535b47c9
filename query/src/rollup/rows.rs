//! Writing one computation's edge and node rows: the shape the minute rollup (`rollup.rs`), the
//! hourly backfill's minutes (`backfill.rs`, over spans) and the 10-second slots (`slots.rs`)
//! share. All aggregate the call rows and served rows of a
//! span range with `graph_rules`' SQL, stamp them with one `ComputedAt`, and write the marker
//! only after both (readers use the latest marker's rows, so half-written rows are never read).

use anyhow::{Context, Result};
use clickhouse::query::Query;

use super::Rollup;
use orrery_store::graph_rules::{self as rules, CallSource, minute_filter};

/// A rollup grain's tables and how its rows are stamped.
pub(super) struct Grain {
    pub edges: &'static str,
    pub nodes: &'static str,
    /// The time column, and what fills it from edge/node rows (which carry their `Minute`).
    pub column: &'static str,
    pub value: &'static str,
    /// Which spans of `[lo, hi)` are rolled up (a `graph_rules::minute_filter` constant).
    pub filter: &'static str,
    /// For error messages.
    pub what: &'static str,
}

/// Minutes: rows per `Minute` of the spans, only the minutes in `{minutes:Array(UInt32)}`.
pub(super) const MINUTES: Grain = Grain {
    edges: "orrery_graph_edges_1m",
    nodes: "orrery_graph_nodes_1m",
    column: "Minute",
    value: "Minute",
    filter: minute_filter::LISTED,
    what: "minutes",
};

/// One 10-second slot `{slot:UInt32}` (its range is the whole `[lo, hi)`).
pub(super) const SLOTS: Grain = Grain {
    edges: "orrery_graph_edges_10s",
    nodes: "orrery_graph_nodes_10s",
    column: "Slot",
    value: "toDateTime({slot:UInt32})",
    filter: minute_filter::ALL,
    what: "a slot",
};

impl Rollup {
    /// Edge then node rows of grain `g` for the spans of `[lo, hi)`, read from `source`,
    /// stamped `computed`; spans ending before `settled` are final (orphans, virtual callees).
    /// `bind` adds the grain's own parameters (`minutes` or `slot`).
    pub(super) async fn write_rows(
        &self,
        g: &Grain,
        source: CallSource,
        (lo, hi): (i64, i64),
        settled: i64,
        computed: u64,
        bind: impl Fn(Query) -> Query,
    ) -> Result<()> {
        let lookback = self.settings.graph_parent_lookback.as_nanos() as i64;
        for (sql, part) in g.inserts(source) {
            let q = self.client.query(&sql);
            bind(
                q.param("lo", lo)
                    .param("hi", hi)
                    .param("plo", lo - lookback)
                    .param("chi", hi + lookback)
                    .param("settled", settled)
                    .param("region_attrs", &self.settings.graph_region_attributes)
                    .param("computed", computed),
            )
            .execute()
            .await
            .with_context(|| format!("rolling up {}: {part}", g.what))?;
        }
        Ok(())
    }
}

impl Grain {
    /// The grain's two statements (edges, then nodes) over the call rows of `source`.
    fn inserts(&self, source: CallSource) -> [(String, &'static str); 2] {
        let values = rules::value_columns();
        let parts = [
            (
                self.edges,
                "Caller, Callee, CallerRegion, CalleeRegion, CalleeKind",
                rules::edge_rows_from(self.filter, source),
                "edges",
            ),
            (
                self.nodes,
                "Service, Region, Instance",
                rules::node_rows_from(self.filter, source),
                "nodes",
            ),
        ];
        parts.map(|(table, keys, rows, part)| {
            let sql = format!(
                "INSERT INTO {table} ({column}, ComputedAt, {keys}, {values})
                 SELECT {value}, {{computed:UInt64}}, {keys}, {values}
                 FROM ({rows})",
                column = self.column,
                value = self.value,
            );
            (sql, part)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grain_reads_the_call_source_it_is_given() {
        for (sql, _) in MINUTES.inserts(CallSource::Copy) {
            assert!(sql.contains("FROM orrery_span_calls"), "{sql}");
            assert!(!sql.contains("otel_traces"), "{sql}");
        }
        // The backfill's minutes, older than the call copy keeps: the same rules over spans.
        for (sql, _) in MINUTES.inserts(CallSource::Spans) {
            assert!(!sql.contains("orrery_span_calls"), "{sql}");
            assert!(sql.contains("FROM otel_traces"), "{sql}");
            assert!(
                sql.contains("cityHash64(TraceId, SpanId) AS SpanKey"),
                "{sql}"
            );
            assert!(sql.starts_with("INSERT INTO orrery_graph_"), "{sql}");
        }
    }
}
