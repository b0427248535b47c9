//! Edge aggregates of a window: the rolled-up part (hours and minutes, cached), the 10-second
//! slots after it and the live ranges from spans, merged here.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::{Context, Result};
use clickhouse::{Client, Row};
use serde::Deserialize;

use super::Coverage;
use super::markers::{HOUR_NS, MINUTE_NS};
use super::tail_guess::{Guess, LiveStart, Started, Tail, kept_or};
use super::{
    EdgeAgg, LiveCalls, Rolled, RolledAgg, RolledTables, Window, bind_live, bind_rolled,
    bind_slots, merge_by_key, merge_folds, rolled_agg_sql, rolled_versions, slot_agg_sql,
};
use crate::GraphArgs;
use crate::graph::cache;
use orrery_store::graph_rules::{self as rules, minute_filter};
use orrery_store::latency::{self, Histogram};

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

/// Grouping expressions `(source, target)` over rollup or call rows.
fn edge_ends(grouping: Grouping) -> (&'static str, &'static str) {
    match grouping {
        Grouping::Services => ("Caller", "Callee"),
        Grouping::Regions => rules::REGION_EDGE_ENDS,
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
    edges_guessed(client, s, cache, w, rolled, (grouping, filter), None).await
}

/// The live part of a window's edges started on a guessed tail (`tail_guess`), before the
/// markers are read: what [`edges_guessed`] keeps when the markers say the same range.
pub fn start_live_edges(
    client: &Client,
    s: &GraphArgs,
    w: Window,
    guess: Guess,
    (grouping, filter): (Grouping, &EdgeFilter),
) -> LiveStart<EdgeAgg> {
    let (client, s, filter, g) = (client.clone(), s.clone(), filter.clone(), guess.clone());
    Started::spawn(guess, async move {
        live_edges(
            &client,
            &s,
            w,
            &g.live,
            (grouping, &filter),
            (Regions::IfNeeded, g.whole),
        )
        .await
    })
}

/// [`edges_in`] with the live part perhaps already started on a guessed tail: kept when the
/// markers say that tail, else read now. Notes the tail found for the next read's guess.
pub async fn edges_guessed(
    client: &Client,
    s: &GraphArgs,
    cache: &crate::graph::cache::RolledCache,
    w: Window,
    rolled: &Rolled,
    (grouping, filter): (Grouping, &EdgeFilter),
    started: Option<LiveStart<EdgeAgg>>,
) -> Result<Vec<EdgeAgg>> {
    let mut c = rolled.coverage(w);
    let whole = small_tail(s, rolled, w, &mut c);
    // Only a read cut as the map's graph is (settled unless `--graph-live-edge-from-spans`)
    // notes its tail: a detail read, read to now, would leave the next map read a guess its
    // markers refute (an early live read thrown away).
    if w.live() && rolled.ends_settled != s.graph_live_edge_from_spans {
        cache.note_tail(Tail::of(w, &c.live, whole));
    }
    let live_part = kept_or(
        started,
        (&c.live, whole),
        live_edges(
            client,
            s,
            w,
            &c.live,
            (grouping, filter),
            (Regions::IfNeeded, whole),
        ),
    );
    let (old, slots, (mut live, regionless)) = tokio::try_join!(
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
        live_part,
    )?;
    if regionless {
        // The live edge was read without regions: an edge the rolled-up and slot parts do
        // not have takes its regions from its own calls (a new edge, seconds old), so the
        // live part is read again with them — rare once the rollup runs.
        let known: HashSet<_> = old.iter().chain(&slots).map(edge_key).collect();
        if live.iter().any(|e| !known.contains(&edge_key(e))) {
            live = live_edges(
                client,
                s,
                w,
                &c.live,
                (grouping, filter),
                (Regions::Always, whole),
            )
            .await?
            .0;
        }
    }
    live.extend(slots);
    let mut out = merge_by_key(&old, &live, edge_key, EdgeAgg::add);
    for e in &mut out {
        e.q = e.latency.p50_p95_p99();
    }
    out.sort_unstable_by(|a, b| {
        (&a.source, &a.target, &a.kind).cmp(&(&b.source, &b.target, &b.kind))
    });
    Ok(out)
}

/// Edge rows over rollup rows, keyed by the grouping's node ids, filtered ([`RolledAgg`]).
fn rolled_edges_agg(grouping: Grouping, filter: &EdgeFilter) -> RolledAgg {
    let (src, dst) = edge_ends(grouping);
    RolledAgg {
        select: format!(
            "{src} AS source, {dst} AS target, toString(CalleeKind) AS kind,
    toString(any(CallerRegion)) AS caller_region, toString(any(CalleeRegion)) AS callee_region,
    {}",
            super::summed_values()
        ),
        filter: edge_filter_sql(filter),
        group_by: "source, target, kind",
    }
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
    let sql = slot_agg_sql(
        "orrery_graph_edges_10s",
        &rolled_edges_agg(grouping, filter),
    );
    let q = bind_slots(client.query(&sql), c);
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
    let tables = RolledTables::of(rolled, w, c);
    if c.live_lo <= w.lo || !tables.any() {
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
    let agg = rolled_edges_agg(grouping, filter);
    let sql = rolled_agg_sql(hourly, "orrery_graph_edges_1m", &agg, tables);
    let q = bind_edge_filter(bind_rolled(client.query(&sql), w, c), filter);
    let rows: Vec<EdgeRow> = q
        .fetch_all()
        .await
        .context("reading service-graph edges (rolled up)")?;
    let mut rows: Vec<EdgeAgg> = rows.into_iter().map(EdgeAgg::from).collect();
    if tables.several() {
        rows = merge_by_key(&rows, &[], edge_key, EdgeAgg::add);
    }
    let part = Arc::new(rows);
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

fn edge_key(e: &EdgeAgg) -> (&String, &String, &String) {
    (&e.source, &e.target, &e.kind)
}

/// Whether a live read computes its edges' (or nodes') regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Regions {
    /// Only where the answer needs them: always but for the live edge of a service-level
    /// read (see [`regionless`]).
    IfNeeded,
    Always,
}

/// Whether the live range `range` is read without regions: at the live edge of a
/// service-level read that filters by no region. Regions are not its group keys there, only
/// a label each edge and node carries (any of its calls' region), and the rolled-up and slot
/// parts carry the same label for every edge and node they hold — the merge keeps the first
/// non-empty one — so the live edge need not look them up in each span's `Resource` map
/// (about a third of its read: 630 → 405 ms of engine CPU for the 12.7 s live tail of
/// 30k spans/s at 2,000 services). A key only the live part has is read again with regions.
pub(super) fn regionless(s: &GraphArgs, w: Window, range: (i64, i64), service_level: bool) -> bool {
    service_level && at_live_edge(s, w, range)
}

/// Whether the 10-second slots of `c` and the live tail after them are read from spans as
/// one live range instead, and that range (`c` is changed to read it so: no slots, the last
/// live range starting where the slots did). Each slot-row statement costs the engine a
/// fixed ~50 ms (planning and opening 69 columns: ~105 ms of engine CPU for the edges' and
/// nodes' slot rows of a 1 h graph at ~100 spans/s, for a few hundred rows), so when the
/// slots, the tail and the parent lookback before them hold at most
/// `--graph-small-tail-spans` spans (counted on insert, per minute, as the markers read them)
/// the tail's own statement reads the slots' spans too. That range is read with the whole
/// parent lookback, orphans included (the slot rollup's own rule, so the same calls as the
/// slot rows: exact, and every slot read once — from rows or from spans, never both). At
/// high rates (30k spans/s: ~20M spans in the lookback) the slots are read as before.
/// `None` (nothing changed) when a minute of that span is not known minute by minute (before
/// the window, or in an hour read whole).
pub fn small_tail(
    s: &GraphArgs,
    rolled: &Rolled,
    w: Window,
    c: &mut Coverage,
) -> Option<(i64, i64)> {
    let (slo, shi) = c.slots;
    if shi <= slo || s.graph_small_tail_spans == 0 || s.graph_no_rollup {
        return None;
    }
    // The tail after the slots: the last live range starts where they end — or, in a graph
    // ending at its settled frontier (`Rolled::settled_through`), there is none and the
    // slots' range alone is read.
    let tail_hi = match c.live.last() {
        Some(&(lo, hi)) if lo == shi => hi,
        _ if c.through == Some(shi) => shi,
        _ => return None,
    };
    let lookback = s.graph_parent_lookback.as_nanos().min(i64::MAX as u128) as i64;
    let first = (slo.saturating_sub(lookback)).div_euclid(MINUTE_NS) * MINUTE_NS;
    if first < w.lo {
        return None;
    }
    let mut spans = 0u64;
    for m in (first..w.hi).step_by(MINUTE_NS as usize) {
        if rolled
            .summarized
            .contains_key(&(m.div_euclid(HOUR_NS) * HOUR_NS))
        {
            return None;
        }
        // A minute without a count has no spans (every minute outside whole hours is read).
        spans += rolled.spans.get(&m).copied().unwrap_or(0);
        if spans > s.graph_small_tail_spans {
            return None;
        }
    }
    match c.live.last_mut() {
        Some(tail) if tail.0 == shi => tail.0 = slo,
        _ => c.live.push((slo, tail_hi)),
    }
    c.slots = (slo, slo);
    Some((slo, tail_hi))
}

/// A live range that starts at most this long before now is one the slot rollup computes
/// within seconds (it keeps the slots of the last 2 minutes before the minute rollup's end).
const LIVE_EDGE_NS: i64 = 120_000_000_000;

/// Whether a live range is read with the near parent lookup
/// (`graph_rules::live_call_rows_sql`): only while a rollup runs and only for the live edge,
/// whose left-out calls (parent older than the near range, still running, or never coming)
/// the slot rollup counts seconds later. Older live ranges (a lagging rollup, minutes with
/// late spans) and every range without a rollup keep the exact lookup over the whole
/// `--graph-parent-lookback`, orphans included.
fn at_live_edge(s: &GraphArgs, w: Window, (lo, _): (i64, i64)) -> bool {
    !s.graph_no_rollup && lo >= w.now - LIVE_EDGE_NS
}

/// The live ranges' edges, and whether any range was read without regions ([`regionless`]).
async fn live_edges(
    client: &Client,
    s: &GraphArgs,
    w: Window,
    live: &[(i64, i64)],
    (grouping, filter): (Grouping, &EdgeFilter),
    (regions, whole): (Regions, Option<(i64, i64)>),
) -> Result<(Vec<EdgeAgg>, bool)> {
    if live.is_empty() {
        return Ok((Vec::new(), false));
    }
    let (src, dst) = edge_ends(grouping);
    // Each branch of the call rows (joined calls, virtual edges) grouped where it is read, the
    // two groupings side by side: one nesting level less to plan than grouping their
    // `UNION ALL` (a live read of a few spans costs mostly its planning: ~52 → ~47 ms of engine
    // CPU for an empty tail, docs/decisions.md). Their keys never meet (a branch's kinds are its
    // own), and the merge below adds any that did.
    // Near: the live edge's parent lookup (`live_call_row_branches`), else the whole lookback.
    let sql = |near: bool, cols: rules::RegionCols| {
        let branches = if near {
            rules::live_call_row_branches(cols)
        } else {
            rules::call_row_branches(minute_filter::ALL, cols)
        };
        // Without regions the call rows carry none (`RegionCols::Empty`): no region
        // expression to plan, no `Resource` map read.
        let regions = match cols {
            rules::RegionCols::Read => {
                "any(toString(CallerRegion)) AS caller_region, any(toString(CalleeRegion)) AS callee_region,"
            }
            rules::RegionCols::Empty => "'' AS caller_region, '' AS callee_region,",
        };
        branches
            .iter()
            .map(|calls| {
                format!(
                    "SELECT {src} AS source, {dst} AS target, toString(CalleeKind) AS kind,
    {regions}
    {index} AS bucket, count() AS requests, sum(Err) AS errors, sum(Duration) AS duration_sum_ns,
    min(Duration) AS min_ns, max(Duration) AS max_ns
FROM ({calls})
WHERE 1 {filter_sql}
GROUP BY source, target, kind, bucket",
                    index = latency::index_sql("Duration"),
                    filter_sql = edge_filter_sql(filter),
                )
            })
            .collect::<Vec<_>>()
            .join("\nUNION ALL\n")
    };
    let service_level = grouping == Grouping::Services && !matches!(filter, EdgeFilter::Region(_));
    // The slots' range read from spans ([`small_tail`]) is exact (whole lookback); at the
    // service level it goes without regions like the live edge (the minute rows label its
    // keys; a key only it has is read again with them).
    let without = |range| {
        regions == Regions::IfNeeded
            && (regionless(s, w, range, service_level) || service_level && Some(range) == whole)
    };
    let (read, empty) = (rules::RegionCols::Read, rules::RegionCols::Empty);
    let (exact, exact_bare, near, near_bare) = (
        sql(false, read),
        sql(false, empty),
        sql(true, read),
        sql(true, empty),
    );
    // One query per live range (normally one: the tail), concurrently.
    let ranges = live.iter().map(|&range| {
        let near_lookup = at_live_edge(s, w, range) && Some(range) != whole;
        let sql = match (near_lookup, without(range)) {
            (true, true) => &near_bare,
            (true, false) => &near,
            (false, true) => &exact_bare,
            (false, false) => &exact,
        };
        let q = bind_edge_filter(bind_live(client.query(sql), w, range, s), filter);
        async move {
            let mut rows = q.fetch::<LiveEdgeRow>()?;
            let mut by_key: HashMap<(String, String, String), LiveEdge> = HashMap::new();
            while let Some(r) = rows.next().await? {
                let calls = LiveCalls::bucket(
                    r.bucket,
                    (r.requests, r.errors, r.duration_sum_ns),
                    (r.min_ns, r.max_ns),
                );
                by_key.entry((r.source, r.target, r.kind)).or_default().add(
                    r.caller_region,
                    r.callee_region,
                    &calls,
                );
            }
            anyhow::Ok(by_key)
        }
    });
    let merged = merge_folds(
        futures::future::try_join_all(ranges)
            .await
            .context("reading service-graph edges (live)")?,
        |e: &mut LiveEdge, o: LiveEdge| e.add(o.caller_region, o.callee_region, &o.calls),
    );
    let edges = merged
        .into_iter()
        .map(|((source, target, kind), e)| EdgeAgg {
            source,
            target,
            kind,
            caller_region: e.caller_region,
            callee_region: e.callee_region,
            requests: e.calls.requests,
            errors: e.calls.errors,
            duration_sum_ns: e.calls.duration_sum_ns,
            latency: e.calls.latency,
            q: Vec::new(),
        })
        .collect();
    let bare = live.iter().any(|&range| without(range));
    Ok((edges, bare))
}

/// One live edge's calls, folded from its rows (one per latency bucket) as they arrive: at
/// 2,000 services a live tail is ~40k rows, and an aggregate per row (a 64-bucket histogram
/// each, ~28 MB allocated and zeroed) merged afterwards cost ~10 ms of the query service's CPU
/// per 15-minute graph (54–56 → 44–48 ms, docs/benchmarks.md).
#[derive(Default)]
struct LiveEdge {
    caller_region: String,
    callee_region: String,
    calls: LiveCalls,
}

impl LiveEdge {
    fn add(&mut self, caller_region: String, callee_region: String, calls: &LiveCalls) {
        if self.caller_region.is_empty() {
            self.caller_region = caller_region;
        }
        if self.callee_region.is_empty() {
            self.callee_region = callee_region;
        }
        self.calls.add(calls);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_live_edge_of_a_service_level_read_goes_without_regions() {
        const SEC: i64 = 1_000_000_000;
        let now = 1_800_000_000 * SEC;
        let w = crate::params::span(now - 900 * SEC, now, now).unwrap();
        let s = GraphArgs::default();
        let tail = (now - 12 * SEC, now);
        assert!(regionless(&s, w, tail, true));
        // Regions are the keys (global level, region filter): always read.
        assert!(!regionless(&s, w, tail, false));
        // Older live ranges (a lagging rollup, minutes with late spans): nothing labels
        // their keys seconds later, so they keep their regions.
        assert!(!regionless(&s, w, (now - 300 * SEC, now - 240 * SEC), true));
        // Without a rollup every range is live, and nothing else labels it.
        let plain = GraphArgs {
            graph_no_rollup: true,
            ..GraphArgs::default()
        };
        assert!(!regionless(&plain, w, tail, true));
    }
}
