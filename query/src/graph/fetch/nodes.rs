//! Node aggregates of a window (services, regions or one service's instances): rolled-up
//! part (cached), 10-second slots and live ranges, merged here like edges.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::{Context, Result};
use clickhouse::{Client, Row};
use serde::Deserialize;

use super::Coverage;
use super::edges::{Regions, regionless, small_tail};
use super::tail_guess::{Guess, LiveStart, Started, kept_or};
use super::{
    LiveCalls, NodeAgg, Rolled, RolledAgg, RolledTables, Window, bind_live, bind_rolled,
    bind_slots, merge_by_key, merge_folds, rolled_agg_sql, rolled_versions, slot_agg_sql,
};
use crate::GraphArgs;
use crate::graph::cache;
use orrery_store::graph_rules::{self as rules, minute_filter};
use orrery_store::latency::Histogram;

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
    nodes_guessed(client, s, cache, w, rolled, key, None).await
}

/// The live part of a window's nodes started on a guessed tail (`tail_guess`), as
/// `edges::start_live_edges`.
pub fn start_live_nodes(
    client: &Client,
    s: &GraphArgs,
    w: Window,
    guess: Guess,
    key: &NodeKey,
) -> LiveStart<NodeAgg> {
    let (client, s, key, g) = (client.clone(), s.clone(), key.clone(), guess.clone());
    Started::spawn(guess, async move {
        live_nodes(&client, &s, w, &g.live, &key, (Regions::IfNeeded, g.whole)).await
    })
}

/// [`nodes_in`] with the live part perhaps already started on a guessed tail, as
/// `edges::edges_guessed`.
pub async fn nodes_guessed(
    client: &Client,
    s: &GraphArgs,
    cache: &crate::graph::cache::RolledCache,
    w: Window,
    rolled: &Rolled,
    key: &NodeKey,
    started: Option<LiveStart<NodeAgg>>,
) -> Result<Vec<NodeAgg>> {
    let mut c = rolled.coverage(w);
    // The same choice as the edges' (same coverage, same counts): slots from rows or spans.
    let whole = small_tail(s, rolled, w, &mut c);
    let live_part = kept_or(
        started,
        (&c.live, whole),
        live_nodes(client, s, w, &c.live, key, (Regions::IfNeeded, whole)),
    );
    let (old, slots, (mut live, regionless)) = tokio::try_join!(
        rolled_nodes(client, (cache, s.graph_cache_entries), w, rolled, &c, key),
        slot_nodes(client, &c, key),
        live_part,
    )?;
    if regionless {
        // As for edges (`edges::regionless`): a service only the live edge has (seconds old)
        // takes its region from its own spans, so the live part is read again with regions.
        let known: HashSet<&String> = old.iter().chain(&slots).map(|n| &n.id).collect();
        if live.iter().any(|n| !known.contains(&n.id)) {
            live = live_nodes(client, s, w, &c.live, key, (Regions::Always, whole))
                .await?
                .0;
        }
    }
    live.extend(slots);
    let mut out = merge_by_key(&old, &live, |n| &n.id, NodeAgg::add);
    for n in &mut out {
        n.q = n.latency.p50_p95_p99();
    }
    out.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Node rows over rollup rows, keyed by `key` ([`RolledAgg`]).
fn rolled_nodes_agg(key: &NodeKey) -> RolledAgg {
    let (key_expr, filter) = node_key_sql(key);
    RolledAgg {
        select: format!(
            "{key_expr} AS id, toString(any(Region)) AS region, {}",
            super::summed_values()
        ),
        filter,
        group_by: "id",
    }
}

/// The slot part of a window's nodes (not cached: it changes every slot).
async fn slot_nodes(client: &Client, c: &Coverage, key: &NodeKey) -> Result<Vec<NodeAgg>> {
    if c.slots.1 <= c.slots.0 {
        return Ok(Vec::new());
    }
    let sql = slot_agg_sql("orrery_graph_nodes_10s", &rolled_nodes_agg(key));
    let q = bind_slots(client.query(&sql), c);
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
    let tables = RolledTables::of(rolled, w, c);
    if c.live_lo <= w.lo || !tables.any() {
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
    let sql = rolled_agg_sql(
        "orrery_graph_nodes_1h",
        "orrery_graph_nodes_1m",
        &rolled_nodes_agg(key),
        tables,
    );
    let q = bind_node_key(bind_rolled(client.query(&sql), w, c), key);
    let rows: Vec<NodeRow> = q
        .fetch_all()
        .await
        .context("reading service-graph nodes (rolled up)")?;
    let mut rows: Vec<NodeAgg> = rows.into_iter().map(NodeAgg::from).collect();
    if tables.several() {
        rows = merge_by_key(&rows, &[], |n| &n.id, NodeAgg::add);
    }
    let part = Arc::new(rows);
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

/// Adds one live node's region (the first non-empty one stays) and calls to its fold.
fn add_live_node((region, sum): &mut (String, LiveCalls), (r, calls): (String, LiveCalls)) {
    if region.is_empty() {
        *region = r;
    }
    sum.add(&calls);
}

/// The live ranges' nodes, and whether any range was read without regions
/// (`edges::regionless`: services only, at the live edge).
async fn live_nodes(
    client: &Client,
    s: &GraphArgs,
    w: Window,
    live: &[(i64, i64)],
    key: &NodeKey,
    (regions, whole): (Regions, Option<(i64, i64)>),
) -> Result<(Vec<NodeAgg>, bool)> {
    if live.is_empty() {
        return Ok((Vec::new(), false));
    }
    let (key_expr, filter) = node_key_sql(key);
    // A node's region is any of its calls' (as in its rollup rows): keyed by service or
    // instance, it is read off one span's resource per group rather than looked up in every
    // served span's map (most of this read's cost); keyed by region it is the key itself.
    // Still, `any(Resource)` reads every span's map (170 → 70 ms of engine CPU without it for
    // the 12.7 s live tail of 30k spans/s), so the live edge of a service-level read leaves it
    // out when the rolled-up and slot parts name every service it holds.
    let region_of = |with_regions: bool| match key {
        NodeKey::Regions => "toString(any(Region))".to_string(),
        NodeKey::Services if !with_regions => "''".to_string(),
        NodeKey::Services | NodeKey::Instances(_) => {
            rules::REGION_EXPR.replace("Resource[", "any(Resource)[")
        }
    };
    let service_level = *key == NodeKey::Services;
    let without = |range| {
        regions == Regions::IfNeeded
            && (regionless(s, w, range, service_level) || service_level && Some(range) == whole)
    };
    let sql = |with_regions: bool| {
        format!(
            "SELECT {key_expr} AS id, {region} AS region, B AS bucket,
    count() AS requests, sum(Err) AS errors, sum(Duration) AS duration_sum_ns,
    min(Duration) AS min_ns, max(Duration) AS max_ns
FROM (
    {served}
)
WHERE 1 {filter}
GROUP BY id, bucket",
            region = region_of(with_regions),
            served = rules::served_rows_sql(minute_filter::ALL),
        )
    };
    let (full, bare) = (sql(true), sql(false));
    let ranges = live.iter().map(|&range| {
        let sql = if without(range) { &bare } else { &full };
        let q = bind_node_key(bind_live(client.query(sql), w, range, s), key);
        // Folded as the rows arrive (one per node and latency bucket), as `edges::live_edges`.
        async move {
            let mut rows = q.fetch::<LiveNodeRow>()?;
            let mut by_id: HashMap<String, (String, LiveCalls)> = HashMap::new();
            while let Some(r) = rows.next().await? {
                let calls = LiveCalls::bucket(
                    r.bucket,
                    (r.requests, r.errors, r.duration_sum_ns),
                    (r.min_ns, r.max_ns),
                );
                add_live_node(by_id.entry(r.id).or_default(), (r.region, calls));
            }
            anyhow::Ok(by_id)
        }
    });
    let merged = merge_folds(
        futures::future::try_join_all(ranges)
            .await
            .context("reading service-graph nodes (live)")?,
        add_live_node,
    );
    let nodes = merged
        .into_iter()
        .map(|(id, (region, c))| NodeAgg {
            id,
            region,
            requests: c.requests,
            errors: c.errors,
            duration_sum_ns: c.duration_sum_ns,
            latency: c.latency,
            q: Vec::new(),
        })
        .collect();
    let bare = live.iter().any(|&range| without(range));
    Ok((nodes, bare))
}
