//! The service graph for a window and level, its diff, and node/edge detail.

pub mod agg;
pub mod cache;
pub mod detail;
pub mod fetch;
pub mod group;
pub mod layout;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use clickhouse::Client;

use crate::GraphArgs;
use crate::model::{
    DataQuality, Edge, EdgeChange, Graph, GraphDiff, Health, Metrics, Node, WhatsWrong, Window,
};
pub use fetch::Span;
use fetch::{EdgeAgg, EdgeFilter, Grouping, NodeAgg, NodeKey};
use orrery_store::latency::Histogram;

pub use orrery_api::{EdgeId, INTERNET, Level, NodeId, NodeKind, Quantiles};

/// What graph to build.
#[derive(Debug, Clone)]
pub struct GraphRequest {
    pub level: Level,
    pub region: Option<String>,
    pub focus: Option<String>,
    pub window: Span,
    /// Also compute the "what's wrong" ranking (one more query, for the baseline window).
    pub whats_wrong: bool,
    /// Services collapsed into groups (`group=namespace`), none by default.
    pub group: group::Group,
}

pub fn window_json(w: Span) -> Window {
    Window {
        start_ms: w.lo / 1_000_000,
        end_ms: w.hi / 1_000_000,
        live: w.live(),
        through_ms: None,
    }
}

pub fn metrics(
    requests: u64,
    errors: u64,
    duration_sum_ns: u64,
    q: &[f64],
    seconds: f64,
) -> Metrics {
    let q = if requests == 0 {
        Quantiles::default()
    } else {
        Quantiles::from_ns(q)
    };
    let mut m = Metrics {
        requests,
        errors,
        rps: requests as f64 / seconds,
        error_rate: if requests == 0 {
            0.0
        } else {
            errors as f64 / requests as f64
        },
        avg_ms: if requests == 0 {
            0.0
        } else {
            duration_sum_ns as f64 / requests as f64 / 1e6
        },
        ..Metrics::default()
    };
    m.set_quantiles(q);
    m
}

pub fn health(s: &GraphArgs, m: &Metrics) -> Health {
    if m.requests == 0 {
        return Health::Normal;
    }
    if m.error_rate >= s.graph_error_danger || m.p95_ms >= s.graph_p95_danger_ms {
        Health::Danger
    } else if m.error_rate >= s.graph_error_warning || m.p95_ms >= s.graph_p95_warning_ms {
        Health::Warning
    } else {
        Health::Normal
    }
}

/// Node kind from a node id (`NodeId` is the one place that reads ids).
pub fn node_kind(id: &str) -> NodeKind {
    NodeId::parse(id).kind()
}

/// Whether a row's `CalleeKind` is a virtual callee's.
fn is_virtual_row(kind: &str) -> bool {
    orrery_store::graph_rules::kind::VIRTUAL.contains(&kind)
}

/// Edges of one window at a level, plus the orphan/unmatched counts found on the way.
struct EdgeSet {
    edges: Vec<EdgeAgg>,
    orphans: u64,
    unmatched: u64,
}

/// How a request's edges are grouped and filtered at its level.
fn edge_shape(req: &GraphRequest) -> (Grouping, EdgeFilter) {
    match req.level {
        Level::Global => (Grouping::Regions, EdgeFilter::None),
        Level::Region => (
            Grouping::Services,
            req.region
                .clone()
                .map(EdgeFilter::Region)
                .unwrap_or(EdgeFilter::None),
        ),
        Level::Focused => (
            Grouping::Services,
            EdgeFilter::Touching(req.focus.clone().unwrap_or_default()),
        ),
    }
}

/// `started`: the live part begun on a guessed tail (`fetch::tail_guess`), if any.
async fn edge_set(
    client: &Client,
    s: &GraphArgs,
    cache: &crate::graph::cache::RolledCache,
    req: &GraphRequest,
    (w, rolled): (Span, &fetch::Rolled),
    started: Option<fetch::tail_guess::LiveStart<EdgeAgg>>,
) -> Result<EdgeSet> {
    let (grouping, filter) = edge_shape(req);
    let rows =
        fetch::edges_guessed(client, s, cache, w, rolled, (grouping, &filter), started).await?;
    let mut out = EdgeSet {
        edges: Vec::new(),
        orphans: 0,
        unmatched: 0,
    };
    for r in rows {
        if r.kind == orrery_store::graph_rules::kind::ORPHAN {
            out.orphans += r.requests;
            continue;
        }
        if is_virtual_row(&r.kind) {
            out.unmatched += r.requests;
            if req.level == Level::Global {
                continue;
            }
        }
        if req.level == Level::Global && r.source == r.target {
            continue;
        }
        out.edges.push(r);
    }
    Ok(out)
}

fn edge_json(s: &GraphArgs, r: &EdgeAgg, seconds: f64, in_cycle: bool) -> Edge {
    let m = metrics(r.requests, r.errors, r.duration_sum_ns, &r.q, seconds);
    Edge {
        id: EdgeId::new(r.source.clone(), r.target.clone()).to_string(),
        source: r.source.clone(),
        target: r.target.clone(),
        health: health(s, &m),
        metrics: m,
        in_cycle,
    }
}

fn node_metrics(r: &NodeAgg, seconds: f64) -> Metrics {
    metrics(r.requests, r.errors, r.duration_sum_ns, &r.q, seconds)
}

/// The window services' deployment facts (namespaces, `group=attr:` values) are read for: `w`
/// itself, or — when `w` ends before the call copy's reach (schema v12 keeps its rows 6 h), where
/// they are read from — the copy's newest hour: an old window gets the facts known now (they
/// rarely change) rather than none.
pub fn facts_window(s: &GraphArgs, w: Span) -> Span {
    if w.hi > crate::rollup::copy_from(s, w.now) {
        w
    } else {
        let hour = 3_600_000_000_000;
        Span {
            lo: w.now - hour,
            hi: w.now,
            now: w.now,
        }
    }
}

/// Builds the graph for a request.
pub async fn graph(
    client: &Client,
    s: &GraphArgs,
    cache: &crate::graph::cache::RolledCache,
    req: &GraphRequest,
) -> Result<Graph> {
    let w = req.window;
    let node_key = match req.level {
        Level::Global => NodeKey::Regions,
        _ => NodeKey::Services,
    };
    // The rollup markers of both windows, then all parts at once: each is one query. The
    // services' deployment facts need no markers: they are read meanwhile (one round trip
    // less on the way to the answer).
    let base = w.baseline();
    let lo = if req.whats_wrong { base.lo } else { w.lo };
    let facts = async {
        tokio::try_join!(
            async {
                // Regions have no namespace; services at the other levels do.
                if req.level == Level::Global {
                    Ok(BTreeMap::new())
                } else {
                    fetch::namespaces(client, facts_window(s, w)).await
                }
            },
            async {
                match &req.group.by {
                    Some(group::GroupBy::Attr(key)) => {
                        group::attribute_values(client, facts_window(s, w), key).await
                    }
                    _ => Ok(BTreeMap::new()),
                }
            },
        )
    };
    // The live tail started beside the markers on the last read's guess (kept only if the
    // markers say the same range: `fetch::tail_guess`).
    let guess = (!s.graph_no_rollup)
        .then(|| cache.last_tail())
        .flatten()
        .and_then(|t| t.guess(w));
    let (started_edges, started_nodes) = match guess {
        Some(g) => {
            let (grouping, filter) = edge_shape(req);
            (
                Some(fetch::start_live_edges(
                    client,
                    s,
                    w,
                    g.clone(),
                    (grouping, &filter),
                )),
                Some(fetch::start_live_nodes(client, s, w, g, &node_key)),
            )
        }
        None => (None, None),
    };
    let parts = async {
        let mut rolled = fetch::Rolled::read_window(client, lo, w.hi).await?;
        rolled.max_unrolled = s.graph_max_unrolled.as_nanos().min(i64::MAX as u128) as i64;
        // Older than the call copy's reach (schema v12: 6 hours) its rows may be gone: what
        // is not rolled up there is left out, never read as if it were empty.
        rolled.readable_from = crate::rollup::copy_from(s, w.now);
        rolled.ends_settled = !s.graph_live_edge_from_spans;
        // The baseline is read from rollups only: it is closed, so normally all rolled up;
        // where it is not (older than the rollup's backfill, or a lagging rollup) its unrolled
        // tail is left out rather than joined from spans — a day-long baseline from spans
        // would cost more than the whole graph.
        let base = Span {
            hi: rolled.coverage(base).live_lo.max(base.lo),
            ..base
        };
        let (current, node_rows, previous) = tokio::try_join!(
            edge_set(client, s, cache, req, (w, &rolled), started_edges),
            fetch::nodes_guessed(client, s, cache, w, &rolled, &node_key, started_nodes),
            async {
                if req.whats_wrong {
                    edge_set(client, s, cache, req, (base, &rolled), None)
                        .await
                        .map(Some)
                } else {
                    Ok(None)
                }
            },
        )?;
        anyhow::Ok((rolled, current, node_rows, previous))
    };
    let ((rolled, current, node_rows, previous), (namespaces, group_values)) =
        tokio::try_join!(parts, facts)?;
    let quality = rolled.quality(w);
    // Rates are per second of what the graph holds: up to its settled end when it has one.
    let through = rolled.settled_through(w);
    let seconds = Span {
        now: through.unwrap_or(w.now),
        ..w
    }
    .seconds();
    let coverage = rollup_coverage(&rolled, w, quality.spans);

    let pairs: Vec<(String, String)> = current
        .edges
        .iter()
        .map(|e| (e.source.clone(), e.target.clone()))
        .collect();
    // Which nodes are shown.
    let mut shown: BTreeSet<String> = pairs
        .iter()
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    match req.level {
        Level::Focused => {
            let focus = req.focus.clone().unwrap_or_default();
            shown = layout::neighbourhood(&pairs, &focus);
        }
        Level::Region => {
            for n in &node_rows {
                if req.region.as_ref().is_none_or(|r| &n.region == r) {
                    shown.insert(n.id.clone());
                }
            }
        }
        Level::Global => {
            shown.extend(node_rows.iter().map(|n| n.id.clone()));
        }
    }
    let edges_shown: Vec<&EdgeAgg> = current
        .edges
        .iter()
        .filter(|e| shown.contains(&e.source) && shown.contains(&e.target))
        .collect();
    let shown_pairs: Vec<(String, String)> = edges_shown
        .iter()
        .map(|e| (e.source.clone(), e.target.clone()))
        .collect();
    let ids: Vec<String> = shown.iter().cloned().collect();
    let lay = layout::layout(&ids, &shown_pairs);

    let node_by_id: BTreeMap<&str, &NodeAgg> =
        node_rows.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut nodes = Vec::new();
    let mut parts = group::Latencies::default();
    for id in &ids {
        let node_id = NodeId::parse(id);
        let kind = node_id.kind();
        let (m, region) = match node_by_id.get(id.as_str()) {
            Some(n) => {
                if req.group.by.is_some() {
                    parts.nodes.insert(
                        id.clone(),
                        group::Part {
                            latency: n.latency.clone(),
                            duration_sum_ns: n.duration_sum_ns,
                        },
                    );
                }
                (node_metrics(n, seconds), n.region.clone())
            }
            None => {
                // Virtual nodes and INTERNET: the calls into (or, for INTERNET, out of) them.
                let (mut req_n, mut err_n, mut dur) = (0u64, 0u64, 0u64);
                let mut latency = Histogram::default();
                let mut region = String::new();
                for e in &edges_shown {
                    let relevant = if kind == NodeKind::Entry {
                        &e.source == id
                    } else {
                        &e.target == id
                    };
                    if relevant {
                        req_n += e.requests;
                        err_n += e.errors;
                        dur += e.duration_sum_ns;
                        latency.merge(&e.latency);
                        if kind == NodeKind::Service && region.is_empty() {
                            region = e.callee_region.clone();
                        }
                    }
                }
                let q = latency.p50_p95_p99();
                if req.group.by.is_some() {
                    parts.nodes.insert(
                        id.clone(),
                        group::Part {
                            latency,
                            duration_sum_ns: dur,
                        },
                    );
                }
                (metrics(req_n, err_n, dur, &q, seconds), region)
            }
        };
        let region = if kind == NodeKind::Region {
            node_id.name().to_string()
        } else {
            region
        };
        nodes.push(Node {
            id: id.clone(),
            name: node_id.name().to_string(),
            kind: kind.to_string(),
            region,
            health: health(s, &m),
            metrics: m,
            rank: lay.ranks.get(id).copied().unwrap_or(0),
            in_cycle: lay.in_cycle.contains(id),
            focused: req.focus.as_deref() == Some(id.as_str()) && req.level == Level::Focused,
            namespace: if kind == NodeKind::Service {
                namespaces.get(id).cloned()
            } else {
                None
            },
        });
    }
    if req.level == Level::Focused
        && let Some(focus) = &req.focus
    {
        let instances = fetch::nodes_in(
            client,
            s,
            cache,
            w,
            &rolled,
            &NodeKey::Instances(focus.clone()),
        )
        .await?;
        for i in instances {
            let m = node_metrics(&i, seconds);
            nodes.push(Node {
                id: NodeId::new(NodeKind::Instance, i.id.clone()).to_string(),
                name: i.id.clone(),
                kind: NodeKind::Instance.to_string(),
                region: i.region.clone(),
                health: health(s, &m),
                metrics: m,
                rank: lay.ranks.get(focus).copied().unwrap_or(0),
                in_cycle: false,
                focused: false,
                namespace: None,
            });
        }
    }
    let cycle_edges: BTreeSet<(String, String)> = lay
        .cycles
        .iter()
        .flat_map(|c| {
            let set: BTreeSet<&String> = c.iter().collect();
            shown_pairs
                .iter()
                .filter(move |(a, b)| set.contains(a) && set.contains(b))
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    let edges: Vec<Edge> = edges_shown
        .iter()
        .map(|e| {
            edge_json(
                s,
                e,
                seconds,
                cycle_edges.contains(&(e.source.clone(), e.target.clone())),
            )
        })
        .collect();
    if req.group.by.is_some() {
        for e in &edges_shown {
            parts.edges.insert(
                (e.source.clone(), e.target.clone()),
                group::Part {
                    latency: e.latency.clone(),
                    duration_sum_ns: e.duration_sum_ns,
                },
            );
        }
    }
    let max_volume = edges.iter().map(|e| e.metrics.rps).fold(0.0, f64::max);
    let whats_wrong = match previous {
        Some(prev) => whats_wrong(s, &edges, &prev.edges, base.seconds()),
        None => Vec::new(),
    };
    let name = match req.level {
        Level::Global => "global".to_string(),
        Level::Region => req.region.clone().unwrap_or_else(|| "all".into()),
        Level::Focused => req.focus.clone().unwrap_or_default(),
    };
    let mut g = Graph {
        level: req.level.as_str().into(),
        name,
        window: Window {
            through_ms: through.map(|t| t / 1_000_000),
            ..window_json(w)
        },
        generated_at_ms: crate::now_ns() / 1_000_000,
        max_volume,
        nodes,
        edges,
        cycles: lay.cycles,
        whats_wrong,
        data_quality: DataQuality {
            spans: quality.spans,
            orphan_spans: current.orphans,
            unmatched_client_spans: current.unmatched,
            late_spans: quality.late,
            rollup_coverage: coverage.0,
            uncovered: coverage.1,
        },
        grouping: None,
    };
    let values = match &req.group.by {
        Some(group::GroupBy::Attr(_)) => &group_values,
        _ => &namespaces,
    };
    group::apply(s, &mut g, &req.group, values, &parts, seconds);
    Ok(g)
}

/// At most this many uncovered ranges are listed (older ones merged into the first).
const MAX_UNCOVERED_LISTED: usize = 16;

/// The share of `w`'s `spans` the graph is made of, and the ranges it leaves out (see
/// [`fetch::Coverage::uncovered`]).
fn rollup_coverage(
    rolled: &fetch::Rolled,
    w: Span,
    spans: u64,
) -> (f64, Vec<orrery_api::TimeRange>) {
    let c = rolled.coverage(w);
    let left_out = rolled.uncovered_spans(&c);
    let share = if spans == 0 {
        1.0
    } else {
        1.0 - left_out.min(spans) as f64 / spans as f64
    };
    let mut ranges: Vec<orrery_api::TimeRange> = c
        .uncovered
        .iter()
        .map(|&(lo, hi)| orrery_api::TimeRange {
            start_ms: lo / 1_000_000,
            end_ms: hi / 1_000_000,
        })
        .collect();
    if ranges.len() > MAX_UNCOVERED_LISTED {
        let cut = ranges.len() - MAX_UNCOVERED_LISTED;
        let end_ms = ranges[cut].end_ms;
        ranges.drain(1..=cut);
        ranges[0].end_ms = end_ms;
    }
    (share, ranges)
}

/// Edges ranked by how much worse they got: error-rate rise (in percentage points) plus
/// relative p95 rise, weighted up when the edge is now unhealthy.
fn whats_wrong(
    s: &GraphArgs,
    edges: &[Edge],
    previous: &[EdgeAgg],
    prev_seconds: f64,
) -> Vec<WhatsWrong> {
    let prev: BTreeMap<(&str, &str), Metrics> = previous
        .iter()
        .map(|e| {
            (
                (e.source.as_str(), e.target.as_str()),
                metrics(e.requests, e.errors, e.duration_sum_ns, &e.q, prev_seconds),
            )
        })
        .collect();
    let mut out = Vec::new();
    for e in edges {
        let before = prev
            .get(&(e.source.as_str(), e.target.as_str()))
            .cloned()
            .unwrap_or_default();
        let m = &e.metrics;
        let err_rise = (m.error_rate - before.error_rate) * 100.0;
        let p95_rise = if before.p95_ms > 0.0 {
            (m.p95_ms - before.p95_ms) / before.p95_ms
        } else if m.p95_ms >= s.graph_p95_warning_ms {
            1.0
        } else {
            0.0
        };
        let score = err_rise.max(0.0) + p95_rise.max(0.0) * 10.0;
        if score <= 0.0 {
            continue;
        }
        let reason = if err_rise >= p95_rise * 10.0 {
            format!(
                "error rate {:.1}% -> {:.1}%",
                before.error_rate * 100.0,
                m.error_rate * 100.0
            )
        } else {
            format!("p95 {:.1} ms -> {:.1} ms", before.p95_ms, m.p95_ms)
        };
        out.push(WhatsWrong {
            edge_id: e.id.clone(),
            source: e.source.clone(),
            target: e.target.clone(),
            score,
            reason,
            health: e.health,
            error_rate: m.error_rate,
            previous_error_rate: before.error_rate,
            p95_ms: m.p95_ms,
            previous_p95_ms: before.p95_ms,
        });
    }
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.edge_id.cmp(&b.edge_id))
    });
    out.truncate(20);
    out
}

/// Differences base → current.
pub async fn diff(
    client: &Client,
    s: &GraphArgs,
    cache: &crate::graph::cache::RolledCache,
    current: GraphRequest,
    base: Span,
) -> Result<GraphDiff> {
    let mut base_req = current.clone();
    base_req.window = base;
    base_req.whats_wrong = false;
    let mut cur_req = current;
    cur_req.whats_wrong = false;
    let (a, b) = tokio::try_join!(
        graph(client, s, cache, &base_req),
        graph(client, s, cache, &cur_req)
    )?;
    let a_nodes: BTreeSet<&str> = a.nodes.iter().map(|n| n.id.as_str()).collect();
    let b_nodes: BTreeSet<&str> = b.nodes.iter().map(|n| n.id.as_str()).collect();
    let a_edges: BTreeMap<&str, &Edge> = a.edges.iter().map(|e| (e.id.as_str(), e)).collect();
    let b_edges: BTreeMap<&str, &Edge> = b.edges.iter().map(|e| (e.id.as_str(), e)).collect();
    let mut changed: Vec<EdgeChange> = b
        .edges
        .iter()
        .filter_map(|e| {
            a_edges.get(e.id.as_str()).map(|old| EdgeChange {
                id: e.id.clone(),
                source: e.source.clone(),
                target: e.target.clone(),
                rps_delta: e.metrics.rps - old.metrics.rps,
                error_rate_delta: e.metrics.error_rate - old.metrics.error_rate,
                p95_ms_delta: e.metrics.p95_ms - old.metrics.p95_ms,
                base: old.metrics.clone(),
                current: e.metrics.clone(),
            })
        })
        .collect();
    changed.sort_by(|x, y| {
        y.error_rate_delta
            .abs()
            .total_cmp(&x.error_rate_delta.abs())
            .then(y.p95_ms_delta.abs().total_cmp(&x.p95_ms_delta.abs()))
    });
    Ok(GraphDiff {
        base: a.window,
        current: b.window,
        added_nodes: b
            .nodes
            .iter()
            .filter(|n| !a_nodes.contains(n.id.as_str()))
            .cloned()
            .collect(),
        removed_nodes: a
            .nodes
            .iter()
            .filter(|n| !b_nodes.contains(n.id.as_str()))
            .cloned()
            .collect(),
        added_edges: b
            .edges
            .iter()
            .filter(|e| !a_edges.contains_key(e.id.as_str()))
            .cloned()
            .collect(),
        removed_edges: a
            .edges
            .iter()
            .filter(|e| !b_edges.contains_key(e.id.as_str()))
            .cloned()
            .collect(),
        changed_edges: changed,
    })
}
