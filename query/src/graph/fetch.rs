//! Reading edge and node aggregates for a window: rolled-up minutes (latest computation of
//! each) plus the minutes not rolled up yet, computed from spans in the same query.

use anyhow::{Context, Result};
use clickhouse::{Client, Row};
use serde::Deserialize;

use crate::GraphArgs;
use crate::calls::{self, minute_filter};

/// A window in nanoseconds, minute-aligned: `[lo, hi)`; `now` caps rates and settles spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub lo: i64,
    pub hi: i64,
    pub now: i64,
}

impl Span {
    /// Seconds of the window that have happened (for rates).
    pub fn seconds(&self) -> f64 {
        ((self.hi.min(self.now) - self.lo) as f64 / 1e9).max(1.0)
    }
    pub fn live(&self) -> bool {
        self.hi >= self.now
    }
    /// The window of equal length just before this one.
    pub fn previous(&self) -> Span {
        let len = self.hi - self.lo;
        Span {
            lo: self.lo - len,
            hi: self.lo,
            now: self.now,
        }
    }
}

/// How edges are grouped: by node ids of services (region level) or of regions (global).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    Services,
    Regions,
}

/// Extra filter on edge rows (SQL constants; values bound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeFilter {
    None,
    /// Edges with either end in this region.
    Region(String),
    /// Edges into or out of this node id.
    Touching(String),
    /// Exactly this edge (by node ids, services grouping).
    Between(String, String),
}

#[derive(Row, Deserialize, Debug, Clone)]
pub struct EdgeAgg {
    pub source: String,
    pub target: String,
    pub kind: String,
    pub caller_region: String,
    pub callee_region: String,
    pub requests: u64,
    pub errors: u64,
    pub duration_sum_ns: u64,
    pub q: Vec<f64>,
    pub buckets: Vec<u64>,
}

#[derive(Row, Deserialize, Debug, Clone)]
pub struct NodeAgg {
    pub id: String,
    pub region: String,
    pub requests: u64,
    pub errors: u64,
    pub duration_sum_ns: u64,
    pub q: Vec<f64>,
    pub buckets: Vec<u64>,
}

#[derive(Row, Deserialize, Debug, Clone, Default)]
pub struct QualityAgg {
    pub spans: u64,
    pub late: u64,
}

fn bind_window(q: clickhouse::query::Query, w: Span, s: &GraphArgs) -> clickhouse::query::Query {
    let lookback = s.graph_parent_lookback.as_nanos() as i64;
    q.param("lo", w.lo)
        .param("hi", w.hi)
        .param("plo", w.lo - lookback)
        .param("chi", w.hi + lookback)
        .param("settled", w.now - s.graph_grace.as_nanos() as i64)
        .param("region_attrs", &s.graph_region_attributes)
}

const ROLLED_MINUTES: &str = "(Minute, ComputedAt) IN (
    SELECT Minute, max(ComputedAt) FROM orrery_rollup_minutes
    WHERE Minute >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
      AND Minute < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
    GROUP BY Minute)";

const MINUTE_RANGE: &str = "Minute >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
    AND Minute < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))";

pub async fn edges(
    client: &Client,
    s: &GraphArgs,
    w: Span,
    grouping: Grouping,
    filter: &EdgeFilter,
) -> Result<Vec<EdgeAgg>> {
    let (src, dst) = match grouping {
        Grouping::Services => ("Caller", "Callee"),
        Grouping::Regions => (
            "multiIf(Caller = 'INTERNET', 'INTERNET', CalleeKind = 'orphan', '', concat('region:', CallerRegion))",
            "if(CalleeKind IN ('service', 'orphan'), concat('region:', CalleeRegion), Callee)",
        ),
    };
    let where_filter = match filter {
        EdgeFilter::None => "",
        EdgeFilter::Region(_) => {
            "AND (CallerRegion = {region:String} OR CalleeRegion = {region:String})"
        }
        EdgeFilter::Touching(_) => "AND (Caller = {focus:String} OR Callee = {focus:String})",
        EdgeFilter::Between(_, _) => "AND Caller = {source:String} AND Callee = {target:String}",
    };
    let cols = "Caller, Callee, CallerRegion, CalleeRegion, CalleeKind, Requests, Errors, DurationSumNs, LatencyDigest, LatencyBuckets";
    let sql = format!(
        "SELECT src AS source, dst AS target, CalleeKind AS kind,
    any(CallerRegion) AS caller_region, any(CalleeRegion) AS callee_region,
    sum(Requests) AS requests, sum(Errors) AS errors, sum(DurationSumNs) AS duration_sum_ns,
    arrayMap(x -> toFloat64(x), quantilesTDigestMerge(0.5, 0.95, 0.99)(LatencyDigest)) AS q,
    sumForEach(LatencyBuckets) AS buckets
FROM (
    SELECT {src} AS src, {dst} AS dst, toString(CalleeKind) AS CalleeKind,
        toString(CallerRegion) AS CallerRegion, toString(CalleeRegion) AS CalleeRegion,
        Requests, Errors, DurationSumNs, LatencyDigest, LatencyBuckets
    FROM (
        SELECT {cols} FROM orrery_edges_1m WHERE {MINUTE_RANGE} AND {ROLLED_MINUTES}
        UNION ALL
        SELECT {cols} FROM ({live})
    )
    WHERE 1 {where_filter}
)
GROUP BY src, dst, CalleeKind
ORDER BY src, dst, CalleeKind",
        live = calls::edge_rows_sql(minute_filter::NOT_ROLLED),
    );
    let mut q = bind_window(client.query(&sql), w, s);
    q = match filter {
        EdgeFilter::None => q,
        EdgeFilter::Region(r) => q.param("region", r),
        EdgeFilter::Touching(f) => q.param("focus", f),
        EdgeFilter::Between(a, b) => q.param("source", a).param("target", b),
    };
    q.fetch_all().await.context("reading service-graph edges")
}

/// How nodes are keyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKey {
    Services,
    Regions,
    /// Instances of one service.
    Instances(String),
}

pub async fn nodes(client: &Client, s: &GraphArgs, w: Span, key: &NodeKey) -> Result<Vec<NodeAgg>> {
    let (key_expr, filter) = match key {
        NodeKey::Services => ("toString(Service)", ""),
        NodeKey::Regions => ("concat('region:', Region)", ""),
        NodeKey::Instances(_) => ("toString(Instance)", "AND Service = {service:String}"),
    };
    let cols =
        "Service, Region, Instance, Requests, Errors, DurationSumNs, LatencyDigest, LatencyBuckets";
    let sql = format!(
        "SELECT {key_expr} AS id, toString(any(Region)) AS region,
    sum(Requests) AS requests, sum(Errors) AS errors, sum(DurationSumNs) AS duration_sum_ns,
    arrayMap(x -> toFloat64(x), quantilesTDigestMerge(0.5, 0.95, 0.99)(LatencyDigest)) AS q,
    sumForEach(LatencyBuckets) AS buckets
FROM (
    SELECT {cols} FROM orrery_nodes_1m WHERE {MINUTE_RANGE} AND {ROLLED_MINUTES}
    UNION ALL
    SELECT {cols} FROM ({live})
)
WHERE 1 {filter}
GROUP BY id ORDER BY id",
        live = calls::node_rows_sql(minute_filter::NOT_ROLLED),
    );
    let mut q = bind_window(client.query(&sql), w, s);
    if let NodeKey::Instances(service) = key {
        q = q.param("service", service);
    }
    q.fetch_all().await.context("reading service-graph nodes")
}

/// Spans in the window and late spans the rollup noticed.
pub async fn quality(client: &Client, s: &GraphArgs, w: Span) -> Result<QualityAgg> {
    let sql = format!(
        "SELECT
    toUInt64(ifNull((SELECT sum(s) FROM (SELECT argMax(Spans, ComputedAt) AS s FROM orrery_rollup_minutes
        WHERE {MINUTE_RANGE} GROUP BY Minute)), 0))
    + toUInt64(ifNull((SELECT count() FROM otel_traces
        WHERE Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})
        {not_rolled}), 0)) AS spans,
    toUInt64(ifNull((SELECT sum(l) FROM (SELECT argMax(Late, ComputedAt) AS l FROM orrery_rollup_minutes
        WHERE {MINUTE_RANGE} GROUP BY Minute)), 0)) AS late",
        not_rolled = minute_filter::NOT_ROLLED,
    );
    bind_window(client.query(&sql), w, s)
        .fetch_one()
        .await
        .context("reading data-quality counts")
}
