//! Reading edge and node aggregates for a window: rolled-up minutes and hours (latest
//! computation of each, current ones only — see [`markers`]) plus the live ranges, computed from
//! spans, merged in the query service.

use anyhow::{Context, Result};
use clickhouse::{Client, Row};
use serde::Deserialize;

use crate::GraphArgs;
use std::collections::HashMap;
use std::sync::Arc;

use super::cache;
use crate::calls::{self, IS_SERVER_OR_CONSUMER, REGION_EXPR, minute_filter};
use orrery_store::latency::{self, Histogram};

pub mod markers;
pub use super::agg::{EdgeAgg, NodeAgg};
use markers::HOUR_NS;
pub use markers::{Coverage, MinuteMarker, QualityAgg, Rolled, coverage_of};

/// A time window in nanoseconds, minute-aligned: `[lo, hi)`; `now` caps rates and settles
/// spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub lo: i64,
    pub hi: i64,
    pub now: i64,
}

/// The window's former name, kept so modules not yet moved to [`Window`] keep building.
pub type Span = Window;

impl Window {
    /// Seconds of the window that have happened (for rates).
    pub fn seconds(&self) -> f64 {
        ((self.hi.min(self.now) - self.lo) as f64 / 1e9).max(1.0)
    }
    pub fn live(&self) -> bool {
        self.hi >= self.now
    }
    /// What "what's wrong" compares this window with: the previous window of the same length
    /// (rounded up to whole hours), moved back to end on the last whole hour at or before this
    /// window's start, so it is read from hourly rollups instead of ~60 minute rows per hour
    /// (a 1 h window 10:23–11:23 compares with 09:00–10:00; a 15 min window with the last
    /// whole hour before it). Error rates and quantiles do not depend on the length; rates
    /// are per second of the baseline.
    pub fn baseline(&self) -> Window {
        let len = (self.hi - self.lo).max(1);
        let len = (len + HOUR_NS - 1) / HOUR_NS * HOUR_NS;
        let hi = self.lo.div_euclid(HOUR_NS) * HOUR_NS;
        Window {
            lo: hi - len,
            hi,
            now: self.now,
        }
    }

    /// The window of equal length just before this one.
    pub fn previous(&self) -> Window {
        let len = self.hi - self.lo;
        Window {
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

#[derive(Row, Deserialize)]
struct EdgeRow {
    source: String,
    target: String,
    kind: String,
    caller_region: String,
    callee_region: String,
    requests: u64,
    errors: u64,
    duration_sum_ns: u64,
    min_ns: u64,
    max_ns: u64,
    hist: Vec<u64>,
}

impl From<EdgeRow> for EdgeAgg {
    fn from(r: EdgeRow) -> Self {
        EdgeAgg {
            latency: Histogram::new(&r.hist, r.min_ns, r.max_ns),
            // Quantiles are read once the parts are merged (`merge_edges`).
            q: Vec::new(),
            source: r.source,
            target: r.target,
            kind: r.kind,
            caller_region: r.caller_region,
            callee_region: r.callee_region,
            requests: r.requests,
            errors: r.errors,
            duration_sum_ns: r.duration_sum_ns,
        }
    }
}

#[derive(Row, Deserialize)]
struct NodeRow {
    id: String,
    region: String,
    requests: u64,
    errors: u64,
    duration_sum_ns: u64,
    min_ns: u64,
    max_ns: u64,
    hist: Vec<u64>,
}

impl From<NodeRow> for NodeAgg {
    fn from(r: NodeRow) -> Self {
        NodeAgg {
            latency: Histogram::new(&r.hist, r.min_ns, r.max_ns),
            // Quantiles are read once the parts are merged (`merge_nodes`).
            q: Vec::new(),
            id: r.id,
            region: r.region,
            requests: r.requests,
            errors: r.errors,
            duration_sum_ns: r.duration_sum_ns,
        }
    }
}

/// Rolled-up minutes of `[rlo, rhi)` outside the hours read from hourly rows and outside the
/// live ranges, each at its latest computation.
const ROLLED_MINUTES: &str = "(Minute, ComputedAt) IN (
    SELECT Minute, max(ComputedAt) FROM orrery_graph_minutes
    WHERE Minute >= toDateTime(fromUnixTimestamp64Nano({rlo:Int64}))
      AND Minute < toDateTime(fromUnixTimestamp64Nano({rhi:Int64}))
    GROUP BY Minute)
    AND NOT has({hours:Array(UInt32)}, toUInt32(toStartOfHour(Minute)))
    AND NOT has({live_minutes:Array(UInt32)}, toUInt32(Minute))";

const MINUTE_RANGE: &str = "Minute >= toDateTime(fromUnixTimestamp64Nano({rlo:Int64}))
    AND Minute < toDateTime(fromUnixTimestamp64Nano({rhi:Int64}))";

/// The hours read from hourly rows, each at its latest computation.
const ROLLED_HOURS: &str = "has({hours:Array(UInt32)}, toUInt32(Hour))
    AND Hour >= toDateTime(fromUnixTimestamp64Nano({rlo:Int64}))
    AND Hour < toDateTime(fromUnixTimestamp64Nano({rhi:Int64}))
    AND (Hour, ComputedAt) IN (
        SELECT Hour, max(ComputedAt) FROM orrery_graph_hours
        WHERE has({hours:Array(UInt32)}, toUInt32(Hour))
          AND Hour >= toDateTime(fromUnixTimestamp64Nano({rlo:Int64}))
          AND Hour < toDateTime(fromUnixTimestamp64Nano({rhi:Int64}))
        GROUP BY Hour)";

/// Binds the rolled-up part of `w`: `[w.lo, live_lo)` but the live minutes, of which
/// `c.hours` from hourly rows.
fn bind_rolled(q: clickhouse::query::Query, w: Window, c: &Coverage) -> clickhouse::query::Query {
    q.param("rlo", w.lo)
        .param("rhi", c.live_lo)
        .param("hours", &c.hours)
        .param("live_minutes", &c.live_minutes)
}

/// Binds one live range `[lo, hi)` of `w`: its spans, whatever the rollup has marked since.
fn bind_live(
    q: clickhouse::query::Query,
    w: Window,
    (lo, hi): (i64, i64),
    s: &GraphArgs,
) -> clickhouse::query::Query {
    let lookback = s.graph_parent_lookback.as_nanos() as i64;
    q.param("lo", lo)
        .param("hi", hi)
        .param("plo", lo - lookback)
        .param("chi", hi + lookback)
        .param("settled", w.now - s.graph_grace.as_nanos() as i64)
        .param("region_attrs", &s.graph_region_attributes)
}

/// The rolled-up rows of a window: hourly rows of the covered hours, minute rows of the other
/// marked minutes before `live_lo`, each at its latest computation.
fn rolled_rows_sql(hourly: &str, minutely: &str, cols: &str) -> String {
    format!(
        "SELECT {cols} FROM {hourly} WHERE {ROLLED_HOURS}
    UNION ALL
    SELECT {cols} FROM {minutely} WHERE {MINUTE_RANGE} AND {ROLLED_MINUTES}"
    )
}

/// The part of a cache key that says which rollup rows a window's rolled-up part is made of:
/// the versions of its hours and of its rolled-up minutes, and which minutes are left out for
/// the live part (a minute that turns stale changes the key even before it is recomputed).
fn rolled_versions(rolled: &Rolled, w: Window, c: &Coverage) -> (Vec<(i64, u64)>, Vec<u32>) {
    let hours = c.hours.iter().map(|h| {
        let at = *h as i64 * 1_000_000_000;
        (at, rolled.hours.get(&at).copied().unwrap_or(0))
    });
    let minutes = rolled
        .minutes
        .range(w.lo..c.live_lo)
        .map(|(m, mark)| (*m, mark.computed_at));
    (hours.chain(minutes).collect(), c.live_minutes.clone())
}

/// Grouping expressions `(source, target)` over rollup or call rows.
fn edge_ends(grouping: Grouping) -> (&'static str, &'static str) {
    match grouping {
        Grouping::Services => ("Caller", "Callee"),
        Grouping::Regions => (
            "multiIf(Caller = 'INTERNET', 'INTERNET', CalleeKind = 'orphan', '', concat('region:', CallerRegion))",
            "if(CalleeKind IN ('service', 'orphan'), concat('region:', CalleeRegion), Callee)",
        ),
    }
}

fn edge_filter_sql(filter: &EdgeFilter) -> &'static str {
    match filter {
        EdgeFilter::None => "",
        EdgeFilter::Region(_) => {
            "AND (CallerRegion = {region:String} OR CalleeRegion = {region:String})"
        }
        EdgeFilter::Touching(_) => "AND (Caller = {focus:String} OR Callee = {focus:String})",
        EdgeFilter::Between(_, _) => "AND Caller = {source:String} AND Callee = {target:String}",
    }
}

fn bind_edge_filter(q: clickhouse::query::Query, filter: &EdgeFilter) -> clickhouse::query::Query {
    match filter {
        EdgeFilter::None => q,
        EdgeFilter::Region(r) => q.param("region", r),
        EdgeFilter::Touching(f) => q.param("focus", f),
        EdgeFilter::Between(a, b) => q.param("source", a).param("target", b),
    }
}

pub async fn edges(
    client: &Client,
    s: &GraphArgs,
    cache: &crate::graph::cache::RolledCache,
    w: Window,
    grouping: Grouping,
    filter: &EdgeFilter,
) -> Result<Vec<EdgeAgg>> {
    let rolled = Rolled::read(client, w.lo, w.hi).await?;
    edges_in(client, s, cache, w, &rolled, grouping, filter).await
}

/// Edges of `w`: the rolled-up part (from cache when its rollup versions are unchanged) and
/// the live part, read concurrently and merged here (histograms merge exactly).
pub async fn edges_in(
    client: &Client,
    s: &GraphArgs,
    cache: &crate::graph::cache::RolledCache,
    w: Window,
    rolled: &Rolled,
    grouping: Grouping,
    filter: &EdgeFilter,
) -> Result<Vec<EdgeAgg>> {
    let c = rolled.coverage(w);
    let (old, slots, mut live) = tokio::try_join!(
        rolled_edges(
            client,
            (cache, s.graph_cache_entries),
            w,
            rolled,
            &c,
            grouping,
            filter
        ),
        slot_edges(client, &c, grouping, filter),
        live_edges(client, s, w, &c, grouping, filter),
    )?;
    live.extend(slots);
    let mut out = merge_by_key(
        &old,
        &live,
        |e| (&e.source, &e.target, &e.kind),
        EdgeAgg::add,
    );
    for e in &mut out {
        e.q = e.latency.p50_p95_p99();
    }
    out.sort_unstable_by(|a, b| {
        (&a.source, &a.target, &a.kind).cmp(&(&b.source, &b.target, &b.kind))
    });
    Ok(out)
}

/// `old` then `live` with rows of equal key added up (one copy of each row, no key clones).
fn merge_by_key<'a, T: Clone, K: std::hash::Hash + Eq + 'a>(
    old: &'a [T],
    live: &'a [T],
    key: impl Fn(&'a T) -> K,
    add: impl Fn(&mut T, &T),
) -> Vec<T> {
    let mut index: HashMap<K, usize> = HashMap::with_capacity(old.len() + live.len());
    let mut out: Vec<T> = Vec::with_capacity(old.len() + live.len());
    for row in old.iter().chain(live) {
        match index.entry(key(row)) {
            std::collections::hash_map::Entry::Occupied(o) => add(&mut out[*o.get()], row),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(out.len());
                out.push(row.clone());
            }
        }
    }
    out
}

/// Edge rows of rollup rows `rows` (a subquery with the edge key and value columns), grouped
/// by the grouping's node ids, filtered.
fn rolled_edges_sql(rows: &str, grouping: Grouping, filter: &EdgeFilter) -> String {
    let (src, dst) = edge_ends(grouping);
    let values = calls::value_columns();
    format!(
        "SELECT src AS source, dst AS target, CalleeKind AS kind,
    any(CallerRegion) AS caller_region, any(CalleeRegion) AS callee_region,
    sum(Requests) AS requests, sum(Errors) AS errors, sum(DurationSumNs) AS duration_sum_ns,
    min(DurationMinNs) AS min_ns, max(DurationMaxNs) AS max_ns, {hist} AS hist
FROM (
    SELECT {src} AS src, {dst} AS dst, toString(CalleeKind) AS CalleeKind,
        toString(CallerRegion) AS CallerRegion, toString(CalleeRegion) AS CalleeRegion, {values}
    FROM ({rows})
    WHERE 1 {filter_sql}
)
GROUP BY src, dst, CalleeKind",
        hist = latency::sum_array_sql(),
        filter_sql = edge_filter_sql(filter),
    )
}

/// Rows of a slot table in `[slo, shi)`, each slot at its latest computation.
fn slot_rows_sql(table: &str, cols: &str) -> String {
    format!(
        "SELECT {cols} FROM {table}
    WHERE Slot >= toDateTime(fromUnixTimestamp64Nano({{slo:Int64}}))
      AND Slot < toDateTime(fromUnixTimestamp64Nano({{shi:Int64}}))
      AND (Slot, ComputedAt) IN (
        SELECT Slot, max(ComputedAt) FROM orrery_graph_slots
        WHERE Slot >= toDateTime(fromUnixTimestamp64Nano({{slo:Int64}}))
          AND Slot < toDateTime(fromUnixTimestamp64Nano({{shi:Int64}}))
        GROUP BY Slot)"
    )
}

/// The slot part of a window's edges (not cached: it changes every slot).
async fn slot_edges(
    client: &Client,
    c: &Coverage,
    grouping: Grouping,
    filter: &EdgeFilter,
) -> Result<Vec<EdgeAgg>> {
    if c.slots.1 <= c.slots.0 {
        return Ok(Vec::new());
    }
    let cols = format!(
        "Caller, Callee, CallerRegion, CalleeRegion, CalleeKind, {}",
        calls::value_columns()
    );
    let sql = rolled_edges_sql(
        &slot_rows_sql("orrery_graph_edges_10s", &cols),
        grouping,
        filter,
    );
    let q = client
        .query(&sql)
        .param("slo", c.slots.0)
        .param("shi", c.slots.1);
    let rows: Vec<EdgeRow> = bind_edge_filter(q, filter)
        .fetch_all()
        .await
        .context("reading service-graph edges (10-second slots)")?;
    Ok(rows.into_iter().map(EdgeAgg::from).collect())
}

/// `cache`: the rolled-up parts and their capacity (`--graph-cache-entries`).
async fn rolled_edges(
    client: &Client,
    (cache, entries): (&cache::RolledCache, usize),
    w: Window,
    rolled: &Rolled,
    c: &Coverage,
    grouping: Grouping,
    filter: &EdgeFilter,
) -> Result<Arc<Vec<EdgeAgg>>> {
    if c.live_lo <= w.lo {
        return Ok(Arc::default());
    }
    let key = cache::key(&(
        "edges",
        grouping == Grouping::Services,
        format!("{filter:?}"),
        w.lo,
        c.live_lo,
        rolled_versions(rolled, w, c),
    ));
    if let Some(cache::Part::Edges(hit)) = cache.get(key) {
        return Ok(hit);
    }
    // Whole hours without the region split when neither the grouping nor the filter needs it.
    let hourly = match (grouping, filter) {
        (
            Grouping::Services,
            EdgeFilter::None | EdgeFilter::Touching(_) | EdgeFilter::Between(..),
        ) => "orrery_graph_services_1h",
        _ => "orrery_graph_edges_1h",
    };
    let cols = format!(
        "Caller, Callee, CallerRegion, CalleeRegion, CalleeKind, {}",
        calls::value_columns()
    );
    let sql = rolled_edges_sql(
        &rolled_rows_sql(hourly, "orrery_graph_edges_1m", &cols),
        grouping,
        filter,
    );
    let q = bind_edge_filter(bind_rolled(client.query(&sql), w, c), filter);
    let rows: Vec<EdgeRow> = q
        .fetch_all()
        .await
        .context("reading service-graph edges (rolled up)")?;
    let part: Arc<Vec<EdgeAgg>> = Arc::new(rows.into_iter().map(EdgeAgg::from).collect());
    cache.put(key, cache::Part::Edges(part.clone()), entries);
    Ok(part)
}

/// One row per edge and latency bucket: the live part stays a plain GROUP BY (64 per-bucket
/// aggregates would cost more to plan than the few minutes of spans cost to read).
#[derive(Row, Deserialize)]
struct LiveEdgeRow {
    source: String,
    target: String,
    kind: String,
    caller_region: String,
    callee_region: String,
    bucket: u8,
    requests: u64,
    errors: u64,
    duration_sum_ns: u64,
    min_ns: u64,
    max_ns: u64,
}

async fn live_edges(
    client: &Client,
    s: &GraphArgs,
    w: Window,
    c: &Coverage,
    grouping: Grouping,
    filter: &EdgeFilter,
) -> Result<Vec<EdgeAgg>> {
    if c.live.is_empty() {
        return Ok(Vec::new());
    }
    let (src, dst) = edge_ends(grouping);
    let sql = format!(
        "SELECT src AS source, dst AS target, CalleeKind AS kind,
    any(CallerRegion) AS caller_region, any(CalleeRegion) AS callee_region,
    {index} AS bucket, count() AS requests, sum(Err) AS errors, sum(Duration) AS duration_sum_ns,
    min(Duration) AS min_ns, max(Duration) AS max_ns
FROM (
    SELECT {src} AS src, {dst} AS dst, toString(CalleeKind) AS CalleeKind,
        toString(CallerRegion) AS CallerRegion, toString(CalleeRegion) AS CalleeRegion, Err, Duration
    FROM ({calls})
    WHERE 1 {filter_sql}
)
GROUP BY src, dst, CalleeKind, bucket",
        index = latency::index_sql("Duration"),
        calls = calls::call_rows_sql(minute_filter::ALL),
        filter_sql = edge_filter_sql(filter),
    );
    // One query per live range (normally one: the tail), concurrently.
    let ranges = c.live.iter().map(|&range| {
        bind_edge_filter(bind_live(client.query(&sql), w, range, s), filter).fetch_all()
    });
    let rows: Vec<Vec<LiveEdgeRow>> = futures::future::try_join_all(ranges)
        .await
        .context("reading service-graph edges (live)")?;
    let parts: Vec<EdgeAgg> = rows
        .into_iter()
        .flatten()
        .map(|r| EdgeAgg {
            latency: Histogram::one_bucket(r.bucket as usize, r.requests, r.min_ns, r.max_ns),
            source: r.source,
            target: r.target,
            kind: r.kind,
            caller_region: r.caller_region,
            callee_region: r.callee_region,
            requests: r.requests,
            errors: r.errors,
            duration_sum_ns: r.duration_sum_ns,
            q: Vec::new(),
        })
        .collect();
    Ok(merge_by_key(
        &[],
        &parts,
        |e| (&e.source, &e.target, &e.kind),
        EdgeAgg::add,
    ))
}

/// How nodes are keyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKey {
    Services,
    Regions,
    /// Instances of one service.
    Instances(String),
}

pub async fn nodes(
    client: &Client,
    s: &GraphArgs,
    cache: &crate::graph::cache::RolledCache,
    w: Window,
    key: &NodeKey,
) -> Result<Vec<NodeAgg>> {
    let rolled = Rolled::read(client, w.lo, w.hi).await?;
    nodes_in(client, s, cache, w, &rolled, key).await
}

fn node_key_sql(key: &NodeKey) -> (&'static str, &'static str) {
    match key {
        NodeKey::Services => ("toString(Service)", ""),
        NodeKey::Regions => ("concat('region:', Region)", ""),
        NodeKey::Instances(_) => ("toString(Instance)", "AND Service = {service:String}"),
    }
}

fn bind_node_key(q: clickhouse::query::Query, key: &NodeKey) -> clickhouse::query::Query {
    match key {
        NodeKey::Instances(service) => q.param("service", service),
        _ => q,
    }
}

/// Nodes of `w`: rolled-up part (cached like edges) plus live part, merged here.
pub async fn nodes_in(
    client: &Client,
    s: &GraphArgs,
    cache: &crate::graph::cache::RolledCache,
    w: Window,
    rolled: &Rolled,
    key: &NodeKey,
) -> Result<Vec<NodeAgg>> {
    let c = rolled.coverage(w);
    let (old, slots, mut live) = tokio::try_join!(
        rolled_nodes(client, (cache, s.graph_cache_entries), w, rolled, &c, key),
        slot_nodes(client, &c, key),
        live_nodes(client, s, w, &c, key),
    )?;
    live.extend(slots);
    let mut out = merge_by_key(&old, &live, |n| &n.id, NodeAgg::add);
    for n in &mut out {
        n.q = n.latency.p50_p95_p99();
    }
    out.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Node rows of rollup rows `rows` (a subquery with the node key and value columns).
fn rolled_nodes_sql(rows: &str, key: &NodeKey) -> String {
    let (key_expr, filter) = node_key_sql(key);
    format!(
        "SELECT {key_expr} AS id, toString(any(Region)) AS region,
    sum(Requests) AS requests, sum(Errors) AS errors, sum(DurationSumNs) AS duration_sum_ns,
    min(DurationMinNs) AS min_ns, max(DurationMaxNs) AS max_ns, {hist} AS hist
FROM ({rows})
WHERE 1 {filter}
GROUP BY id",
        hist = latency::sum_array_sql(),
    )
}

/// The slot part of a window's nodes (not cached: it changes every slot).
async fn slot_nodes(client: &Client, c: &Coverage, key: &NodeKey) -> Result<Vec<NodeAgg>> {
    if c.slots.1 <= c.slots.0 {
        return Ok(Vec::new());
    }
    let cols = format!("Service, Region, Instance, {}", calls::value_columns());
    let sql = rolled_nodes_sql(&slot_rows_sql("orrery_graph_nodes_10s", &cols), key);
    let q = client
        .query(&sql)
        .param("slo", c.slots.0)
        .param("shi", c.slots.1);
    let rows: Vec<NodeRow> = bind_node_key(q, key)
        .fetch_all()
        .await
        .context("reading service-graph nodes (10-second slots)")?;
    Ok(rows.into_iter().map(NodeAgg::from).collect())
}

/// `cache` as for [`rolled_edges`].
async fn rolled_nodes(
    client: &Client,
    (cache, entries): (&cache::RolledCache, usize),
    w: Window,
    rolled: &Rolled,
    c: &Coverage,
    key: &NodeKey,
) -> Result<Arc<Vec<NodeAgg>>> {
    if c.live_lo <= w.lo {
        return Ok(Arc::default());
    }
    let cache_key = cache::key(&(
        "nodes",
        format!("{key:?}"),
        w.lo,
        c.live_lo,
        rolled_versions(rolled, w, c),
    ));
    if let Some(cache::Part::Nodes(hit)) = cache.get(cache_key) {
        return Ok(hit);
    }
    let cols = format!("Service, Region, Instance, {}", calls::value_columns());
    let sql = rolled_nodes_sql(
        &rolled_rows_sql("orrery_graph_nodes_1h", "orrery_graph_nodes_1m", &cols),
        key,
    );
    let q = bind_node_key(bind_rolled(client.query(&sql), w, c), key);
    let rows: Vec<NodeRow> = q
        .fetch_all()
        .await
        .context("reading service-graph nodes (rolled up)")?;
    let part: Arc<Vec<NodeAgg>> = Arc::new(rows.into_iter().map(NodeAgg::from).collect());
    cache.put(cache_key, cache::Part::Nodes(part.clone()), entries);
    Ok(part)
}

#[derive(Row, Deserialize)]
struct LiveNodeRow {
    id: String,
    region: String,
    bucket: u8,
    requests: u64,
    errors: u64,
    duration_sum_ns: u64,
    min_ns: u64,
    max_ns: u64,
}

async fn live_nodes(
    client: &Client,
    s: &GraphArgs,
    w: Window,
    c: &Coverage,
    key: &NodeKey,
) -> Result<Vec<NodeAgg>> {
    if c.live.is_empty() {
        return Ok(Vec::new());
    }
    let (key_expr, filter) = node_key_sql(key);
    let sql = format!(
        "SELECT {key_expr} AS id, toString(any(Region)) AS region, B AS bucket,
    count() AS requests, sum(Err) AS errors, sum(Duration) AS duration_sum_ns,
    min(Duration) AS min_ns, max(Duration) AS max_ns
FROM (
    SELECT ServiceName AS Service, {REGION_EXPR} AS Region,
        Resource['service.instance.id'] AS Instance,
        toUInt8({err}) AS Err, Duration, {index} AS B
    FROM orrery_span_calls
    WHERE Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})
        AND {IS_SERVER_OR_CONSUMER}
)
WHERE 1 {filter}
GROUP BY id, bucket",
        err = calls::call_error_expr(true),
        index = latency::index_sql("Duration"),
    );
    let ranges = c
        .live
        .iter()
        .map(|&range| bind_node_key(bind_live(client.query(&sql), w, range, s), key).fetch_all());
    let rows: Vec<Vec<LiveNodeRow>> = futures::future::try_join_all(ranges)
        .await
        .context("reading service-graph nodes (live)")?;
    let parts: Vec<NodeAgg> = rows
        .into_iter()
        .flatten()
        .map(|r| NodeAgg {
            latency: Histogram::one_bucket(r.bucket as usize, r.requests, r.min_ns, r.max_ns),
            id: r.id,
            region: r.region,
            requests: r.requests,
            errors: r.errors,
            duration_sum_ns: r.duration_sum_ns,
            q: Vec::new(),
        })
        .collect();
    Ok(merge_by_key(&[], &parts, |n| &n.id, NodeAgg::add))
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
    w: Window,
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

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = markers::MINUTE_NS;

    #[test]
    fn baseline_is_the_previous_window_in_whole_hours_ending_before_it() {
        let h = 100 * HOUR_NS;
        // 1 h window 10:23–11:23 → 09:00–10:00.
        let w = Window {
            lo: h + 23 * M,
            hi: h + 83 * M,
            now: h + 83 * M,
        };
        assert_eq!((w.baseline().lo, w.baseline().hi), (h - HOUR_NS, h));
        // 15 min → the last whole hour before it; 24 h → the 24 whole hours before.
        let w = Window {
            lo: h + 50 * M,
            hi: h + 65 * M,
            ..w
        };
        assert_eq!((w.baseline().lo, w.baseline().hi), (h - HOUR_NS, h));
        let w = Window {
            lo: h + M,
            hi: h + 24 * HOUR_NS + M,
            ..w
        };
        assert_eq!((w.baseline().lo, w.baseline().hi), (h - 24 * HOUR_NS, h));
        // A window starting on the hour ends its baseline there.
        let w = Window {
            lo: h,
            hi: h + HOUR_NS,
            ..w
        };
        assert_eq!((w.baseline().lo, w.baseline().hi), (h - HOUR_NS, h));
    }

    #[test]
    fn rolled_and_live_rows_of_one_key_add_up() {
        let row = |k: &str, n: u64, ms: u64| NodeAgg {
            id: k.into(),
            region: String::new(),
            requests: n,
            errors: 0,
            duration_sum_ns: n * ms * 1_000_000,
            latency: Histogram::of(&vec![ms * 1_000_000; n as usize]),
            q: Vec::new(),
        };
        let old = [row("a", 2, 10), row("b", 1, 5)];
        let live = [row("a", 1, 40), row("c", 3, 1)];
        let out = merge_by_key(&old, &live, |n| &n.id, NodeAgg::add);
        let got: Vec<(&str, u64)> = out.iter().map(|n| (n.id.as_str(), n.requests)).collect();
        assert_eq!(got, [("a", 3), ("b", 1), ("c", 3)]);
        assert_eq!(
            out[0].latency,
            Histogram::of(&[10_000_000, 10_000_000, 40_000_000])
        );
    }
}
