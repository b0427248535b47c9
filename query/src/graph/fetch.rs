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

/// Rolled-up minutes of `[rlo, rhi)` outside the hours read from hourly rows, each at its
/// latest computation.
const ROLLED_MINUTES: &str = "(Minute, ComputedAt) IN (
    SELECT Minute, max(ComputedAt) FROM orrery_rollup_minutes
    WHERE Minute >= toDateTime(fromUnixTimestamp64Nano({rlo:Int64}))
      AND Minute < toDateTime(fromUnixTimestamp64Nano({rhi:Int64}))
    GROUP BY Minute)
    AND NOT has({hours:Array(UInt32)}, toUInt32(toStartOfHour(Minute)))";

const MINUTE_RANGE: &str = "Minute >= toDateTime(fromUnixTimestamp64Nano({rlo:Int64}))
    AND Minute < toDateTime(fromUnixTimestamp64Nano({rhi:Int64}))";

/// The hours read from hourly rows, each at its latest computation.
const ROLLED_HOURS: &str = "has({hours:Array(UInt32)}, toUInt32(Hour))
    AND Hour >= toDateTime(fromUnixTimestamp64Nano({rlo:Int64}))
    AND Hour < toDateTime(fromUnixTimestamp64Nano({rhi:Int64}))
    AND (Hour, ComputedAt) IN (
        SELECT Hour, max(ComputedAt) FROM orrery_rollup_hours
        WHERE has({hours:Array(UInt32)}, toUInt32(Hour))
          AND Hour >= toDateTime(fromUnixTimestamp64Nano({rlo:Int64}))
          AND Hour < toDateTime(fromUnixTimestamp64Nano({rhi:Int64}))
        GROUP BY Hour)";

/// How a window is read: whole hours whose hourly rows are current, rolled-up minutes for the
/// rest, and spans only from `live_lo` on (the first minute without a rollup marker; the rollup
/// marks every closed minute, empty ones too, so normally this is the last minute or two).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    pub hours: Vec<u32>,
    pub live_lo: i64,
}

const MINUTE_NS: i64 = 60_000_000_000;
const HOUR_NS: i64 = 60 * MINUTE_NS;

#[derive(Row, Deserialize)]
struct MarkerRow {
    level: u8,
    at: u32,
    version: u64,
}

/// The rollup markers of a time range: each marked minute's latest `ComputedAt` and each
/// hour's latest `MinutesVersion` (ns keys). One small query; graphs, their previous window
/// and the rollup's hour step all decide from it.
#[derive(Debug, Clone, Default)]
pub struct Rolled {
    pub minutes: std::collections::BTreeMap<i64, u64>,
    pub hours: std::collections::BTreeMap<i64, u64>,
}

impl Rolled {
    pub async fn read(client: &Client, lo: i64, hi: i64) -> Result<Rolled> {
        let rows: Vec<MarkerRow> = client
            .query(
                "SELECT 0 AS level, toUInt32(Minute) AS at, max(ComputedAt) AS version
FROM orrery_rollup_minutes
WHERE Minute >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
  AND Minute < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
GROUP BY Minute
UNION ALL
SELECT 1 AS level, toUInt32(Hour) AS at, argMax(MinutesVersion, ComputedAt) AS version
FROM orrery_rollup_hours
WHERE Hour >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
  AND Hour < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
GROUP BY Hour",
            )
            .param("lo", lo)
            .param("hi", hi)
            .fetch_all()
            .await
            .context("reading rollup markers")?;
        let mut out = Rolled::default();
        for r in rows {
            let at = r.at as i64 * 1_000_000_000;
            match r.level {
                0 => out.minutes.insert(at, r.version),
                _ => out.hours.insert(at, r.version),
            };
        }
        Ok(out)
    }

    /// Sum of the latest `ComputedAt` of the hour's minutes, and how many are marked.
    pub fn minutes_version(&self, hour: i64) -> (u64, usize) {
        let v = self.minutes.range(hour..hour + HOUR_NS);
        (v.clone().map(|(_, c)| *c).sum(), v.count())
    }

    /// Hours whose rows were made from the current computation of each of their minutes.
    fn current_hours(&self) -> impl Iterator<Item = i64> + '_ {
        self.hours
            .iter()
            .filter(|(h, v)| self.minutes_version(**h).0 == **v)
            .map(|(h, _)| *h)
    }

    /// Closed hours in `[lo, hi)` with all 60 minutes marked whose hour rows are missing or
    /// made from older minute computations.
    pub fn stale_hours(&self, lo: i64, hi: i64) -> Vec<i64> {
        let first = lo.div_euclid(HOUR_NS) * HOUR_NS;
        (first..hi)
            .step_by(HOUR_NS as usize)
            .filter(|&h| h >= lo && h + HOUR_NS <= hi)
            .filter(|&h| {
                let (v, n) = self.minutes_version(h);
                n == 60 && self.hours.get(&h) != Some(&v)
            })
            .collect()
    }

    /// How `w` is read (the markers must cover `w`).
    pub fn coverage(&self, w: Span) -> Coverage {
        coverage_of(
            w,
            self.minutes.range(w.lo..w.hi).map(|(m, _)| *m),
            self.current_hours(),
        )
    }
}

/// What of `w` is rolled up. Minutes once marked stay marked, so everything before `live_lo`
/// is still rolled up when the data query runs; from `live_lo` on, the data query itself tells
/// rolled-up minutes from live ones. An hour is used only when it ends by `live_lo` and its
/// marker was computed from the current computation of each of its minutes.
pub async fn coverage(client: &Client, w: Span) -> Result<Coverage> {
    Ok(Rolled::read(client, w.lo, w.hi).await?.coverage(w))
}

/// `coverage` from the marked minutes and the current hours (both ascending, ns).
pub fn coverage_of(
    w: Span,
    marked: impl Iterator<Item = i64>,
    current_hours: impl Iterator<Item = i64>,
) -> Coverage {
    let mut live_lo = w.lo;
    for m in marked {
        if m != live_lo {
            break;
        }
        live_lo += MINUTE_NS;
    }
    let live_lo = live_lo.min(w.hi);
    let hours = current_hours
        .filter(|&h| h >= w.lo && h + HOUR_NS <= live_lo)
        .map(|h| (h / 1_000_000_000) as u32)
        .collect();
    Coverage { hours, live_lo }
}

fn bind_window(
    q: clickhouse::query::Query,
    w: Span,
    c: &Coverage,
    s: &GraphArgs,
) -> clickhouse::query::Query {
    let lookback = s.graph_parent_lookback.as_nanos() as i64;
    q.param("rlo", w.lo)
        .param("rhi", w.hi)
        .param("hours", &c.hours)
        .param("lo", c.live_lo)
        .param("hi", w.hi)
        .param("plo", c.live_lo - lookback)
        .param("chi", w.hi + lookback)
        .param("settled", w.now - s.graph_grace.as_nanos() as i64)
        .param("region_attrs", &s.graph_region_attributes)
}

/// The rows of a window from hourly, minute and (when any minute is not rolled up) live rows.
fn union_sql(
    hourly: &str,
    minutely: &str,
    cols: &str,
    live_sql: &str,
    c: &Coverage,
    w: Span,
) -> String {
    let mut sql = format!(
        "SELECT {cols} FROM {hourly} WHERE {ROLLED_HOURS}
    UNION ALL
    SELECT {cols} FROM {minutely} WHERE {MINUTE_RANGE} AND {ROLLED_MINUTES}"
    );
    if c.live_lo < w.hi {
        sql.push_str(&format!(
            "\n    UNION ALL\n    SELECT {cols} FROM ({live_sql})"
        ));
    }
    sql
}

pub async fn edges(
    client: &Client,
    s: &GraphArgs,
    w: Span,
    grouping: Grouping,
    filter: &EdgeFilter,
) -> Result<Vec<EdgeAgg>> {
    let c = coverage(client, w).await?;
    edges_in(client, s, w, &c, grouping, filter, true).await
}

/// Edges of `w` read as `c` says; without `buckets` the histograms are left empty (the
/// previous window of "what's wrong" needs only rates and quantiles).
pub async fn edges_in(
    client: &Client,
    s: &GraphArgs,
    w: Span,
    c: &Coverage,
    grouping: Grouping,
    filter: &EdgeFilter,
    buckets: bool,
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
    {buckets} AS buckets
FROM (
    SELECT {src} AS src, {dst} AS dst, toString(CalleeKind) AS CalleeKind,
        toString(CallerRegion) AS CallerRegion, toString(CalleeRegion) AS CalleeRegion,
        Requests, Errors, DurationSumNs, LatencyDigest, LatencyBuckets
    FROM (
        {rows}
    )
    WHERE 1 {where_filter}
)
GROUP BY src, dst, CalleeKind
ORDER BY src, dst, CalleeKind",
        buckets = if buckets {
            "sumForEach(LatencyBuckets)"
        } else {
            "[]::Array(UInt64)"
        },
        rows = union_sql(
            "orrery_edges_1h",
            "orrery_edges_1m",
            cols,
            &calls::edge_rows_sql(minute_filter::NOT_ROLLED),
            c,
            w
        ),
    );
    let mut q = bind_window(client.query(&sql), w, c, s);
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
    let c = coverage(client, w).await?;
    nodes_in(client, s, w, &c, key, true).await
}

/// Nodes of `w` read as `c` says; without `buckets` the histograms are left empty (the graph
/// shows only rates and quantiles; node detail reads the histogram).
pub async fn nodes_in(
    client: &Client,
    s: &GraphArgs,
    w: Span,
    c: &Coverage,
    key: &NodeKey,
    buckets: bool,
) -> Result<Vec<NodeAgg>> {
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
    {buckets} AS buckets
FROM (
    {rows}
)
WHERE 1 {filter}
GROUP BY id ORDER BY id",
        buckets = if buckets {
            "sumForEach(LatencyBuckets)"
        } else {
            "[]::Array(UInt64)"
        },
        rows = union_sql(
            "orrery_nodes_1h",
            "orrery_nodes_1m",
            cols,
            &calls::node_rows_sql(minute_filter::NOT_ROLLED),
            c,
            w
        ),
    );
    let mut q = bind_window(client.query(&sql), w, c, s);
    if let NodeKey::Instances(service) = key {
        q = q.param("service", service);
    }
    q.fetch_all().await.context("reading service-graph nodes")
}

/// Spans in the window (rollup markers, plus the per-minute counts of minutes not rolled up)
/// and late spans the rollup noticed.
pub async fn quality(client: &Client, s: &GraphArgs, w: Span) -> Result<QualityAgg> {
    let c = coverage(client, w).await?;
    quality_in(client, s, w, &c).await
}

pub async fn quality_in(
    client: &Client,
    s: &GraphArgs,
    w: Span,
    c: &Coverage,
) -> Result<QualityAgg> {
    let sql = format!(
        "SELECT
    toUInt64(ifNull((SELECT sum(s) FROM (SELECT argMax(Spans, ComputedAt) AS s FROM orrery_rollup_minutes
        WHERE {MINUTE_RANGE} GROUP BY Minute)), 0))
    + toUInt64(ifNull((SELECT sum(Spans) FROM orrery_span_minutes
        WHERE Minute >= toDateTime(fromUnixTimestamp64Nano({{lo:Int64}})) AND Minute < toDateTime(fromUnixTimestamp64Nano({{hi:Int64}}))
        AND Minute NOT IN (SELECT Minute FROM orrery_rollup_minutes WHERE Minute >= toDateTime(fromUnixTimestamp64Nano({{lo:Int64}})) AND Minute < toDateTime(fromUnixTimestamp64Nano({{hi:Int64}})))), 0)) AS spans,
    toUInt64(ifNull((SELECT sum(l) FROM (SELECT argMax(Late, ComputedAt) AS l FROM orrery_rollup_minutes
        WHERE {MINUTE_RANGE} GROUP BY Minute)), 0)) AS late",
    );
    bind_window(client.query(&sql), w, c, s)
        .fetch_one()
        .await
        .context("reading data-quality counts")
}

#[derive(Row, Deserialize, Debug, Clone)]
struct NamespaceRow {
    service: String,
    namespace: String,
}

/// How far back from the window's end services' namespaces are looked up: a namespace is a
/// deployment fact that rarely changes, so the last hour is enough and keeps the read small.
const NAMESPACE_LOOKBACK_NS: i64 = HOUR_NS;

/// Each service's namespace (`k8s.namespace.name`, else `service.namespace`, both kept in
/// `orrery_span_calls.Resource`), from its spans in the last hour (at most) of `w`; services
/// with neither are left out. When spans disagree the latest wins.
pub async fn namespaces(
    client: &Client,
    w: Span,
) -> Result<std::collections::BTreeMap<String, String>> {
    let rows: Vec<NamespaceRow> = client
        .query(
            "SELECT toString(ServiceName) AS service, argMax(ns, Timestamp) AS namespace
FROM (
    SELECT ServiceName, Timestamp,
        if(Resource['k8s.namespace.name'] != '', Resource['k8s.namespace.name'], Resource['service.namespace']) AS ns
    FROM orrery_span_calls
    WHERE Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp < fromUnixTimestamp64Nano({hi:Int64})
)
WHERE ns != ''
GROUP BY ServiceName",
        )
        .param("lo", w.lo.max(w.hi - NAMESPACE_LOOKBACK_NS))
        .param("hi", w.hi)
        .fetch_all()
        .await
        .context("reading service namespaces")?;
    Ok(rows.into_iter().map(|r| (r.service, r.namespace)).collect())
}
