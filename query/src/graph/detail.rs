//! Node detail (operations, callers, callees, instances, latency histogram) and edge detail
//! (histogram, operations, exemplar traces), computed for the window from rollups and spans.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use clickhouse::{Client, Row};
use orrery_store::graph_rules;
use orrery_store::latency::Histogram as Latency;
use serde::Deserialize;

use super::fetch::{self, EdgeFilter, Grouping, NodeKey, Span};
use super::{EdgeId, GraphRequest, Level, NodeId, NodeKind, health, metrics, window_json};
use crate::GraphArgs;
use crate::model::{
    Edge, EdgeDetail, Exemplars, Histogram, Instance, NodeDetail, Operation, TraceRef,
};

/// Exemplar calls of each sort (slowest, failed, typical) an edge detail shows.
const EXEMPLARS: usize = 5;
/// Operations an edge or node detail lists (the busiest).
const MAX_OPERATIONS: usize = 200;

/// One operation's calls in one latency bucket (`graph_rules::edge_operations_sql`,
/// `node_operations_sql`).
#[derive(Row, Deserialize, Debug)]
struct OpBucketRow {
    name: String,
    kind: String,
    bucket: u8,
    requests: u64,
    errors: u64,
    duration_sum_ns: u64,
    min_ns: u64,
    max_ns: u64,
}

/// An operation's calls with their merged latency histogram.
#[derive(Default)]
struct OpAgg {
    kind: String,
    requests: u64,
    errors: u64,
    duration_sum_ns: u64,
    latency: Latency,
}

/// Operations from per-bucket rows, busiest first (then by name), at most [`MAX_OPERATIONS`];
/// their quantiles are read off the merged histogram exactly as an edge's or node's are.
fn operations(rows: Vec<OpBucketRow>, seconds: f64) -> Vec<Operation> {
    let mut ops: BTreeMap<String, OpAgg> = BTreeMap::new();
    for r in rows {
        let op = ops.entry(r.name).or_default();
        if op.kind.is_empty() {
            op.kind = r.kind;
        }
        op.requests += r.requests;
        op.errors += r.errors;
        op.duration_sum_ns += r.duration_sum_ns;
        op.latency.merge(&Latency::one_bucket(
            r.bucket as usize,
            r.requests,
            r.min_ns,
            r.max_ns,
        ));
    }
    let mut ops: Vec<(String, OpAgg)> = ops.into_iter().collect();
    ops.sort_by(|a, b| b.1.requests.cmp(&a.1.requests).then_with(|| a.0.cmp(&b.0)));
    ops.truncate(MAX_OPERATIONS);
    ops.into_iter()
        .map(|(name, o)| Operation {
            name,
            span_kind: orrery_store::span::kind::from_otlp(orrery_store::span::kind::to_otlp(
                &o.kind,
            ))
            .to_string(),
            metrics: metrics(
                o.requests,
                o.errors,
                o.duration_sum_ns,
                &o.latency.p50_p95_p99(),
                seconds,
            ),
        })
        .collect()
}

/// Node detail, or `None` when the node has no traffic in the window.
pub async fn node(
    client: &Client,
    s: &GraphArgs,
    cache: &crate::graph::cache::RolledCache,
    id: &str,
    w: Span,
) -> Result<Option<NodeDetail>> {
    let req = GraphRequest {
        level: Level::Focused,
        region: None,
        focus: Some(id.to_string()),
        window: w,
        whats_wrong: false,
        group: Default::default(),
    };
    let g = super::graph(client, s, cache, &req).await?;
    let Some(node) = g.nodes.iter().find(|n| n.id == id).cloned() else {
        return Ok(None);
    };
    if node.metrics.requests == 0 && !g.edges.iter().any(|e| e.source == id || e.target == id) {
        return Ok(None);
    }
    let kind = NodeId::parse(id).kind();
    let operations = async {
        if kind != NodeKind::Service {
            return Ok(Vec::new());
        }
        let rows: Vec<OpBucketRow> = client
            .query(&graph_rules::node_operations_sql())
            .param("service", id)
            .param("lo", w.lo)
            .param("hi", w.hi)
            .fetch_all()
            .await
            .context("node operations")?;
        anyhow::Ok(operations(rows, w.seconds()))
    };
    let (operations, histogram) =
        tokio::try_join!(operations, node_histogram(client, s, cache, id, w))?;
    let instances = g
        .nodes
        .iter()
        .filter(|n| n.kind == "instance")
        .map(|n| Instance {
            id: n.name.clone(),
            region: n.region.clone(),
            metrics: n.metrics.clone(),
            health: n.health,
        })
        .collect();
    Ok(Some(NodeDetail {
        window: g.window,
        callers: g.edges.iter().filter(|e| e.target == id).cloned().collect(),
        callees: g.edges.iter().filter(|e| e.source == id).cloned().collect(),
        node,
        operations,
        instances,
        histogram,
    }))
}

/// Latency of the calls a node served, from the same rollups as its metrics: a service's
/// server/consumer spans (summed over its instances), a virtual node's incoming calls.
async fn node_histogram(
    client: &Client,
    s: &GraphArgs,
    cache: &crate::graph::cache::RolledCache,
    id: &str,
    w: Span,
) -> Result<Histogram> {
    let parts: Vec<Latency> = match NodeId::parse(id).kind() {
        NodeKind::Service => fetch::nodes(client, s, cache, w, &NodeKey::Instances(id.to_string()))
            .await?
            .into_iter()
            .map(|n| n.latency)
            .collect(),
        NodeKind::Database | NodeKind::Queue | NodeKind::External => fetch::edges(
            client,
            s,
            cache,
            w,
            Grouping::Services,
            &EdgeFilter::Touching(id.to_string()),
        )
        .await?
        .into_iter()
        .filter(|e| e.target == id && e.kind != graph_rules::kind::ORPHAN)
        .map(|e| e.latency)
        .collect(),
        _ => Vec::new(),
    };
    Ok(histogram(parts))
}

/// The merged latency of `parts`, one bar per doubling (see `Histogram::display`).
fn histogram(parts: Vec<Latency>) -> Histogram {
    let mut all = Latency::default();
    for p in &parts {
        all.merge(p);
    }
    display(&all)
}

fn display(h: &Latency) -> Histogram {
    let (bounds_ms, counts) = h.display();
    Histogram { bounds_ms, counts }
}

/// Which of `graph_rules::EdgeShape`'s rules makes a span a call of `source -> target`.
fn shape(source: &str, target: &str) -> graph_rules::EdgeShape {
    use graph_rules::EdgeShape;
    if source == graph_rules::INTERNET {
        EdgeShape::Entry
    } else if NodeId::parse(target).is_virtual() {
        EdgeShape::Virtual
    } else {
        EdgeShape::Service
    }
}

/// Binds what the spans of one edge need (`graph_rules::edge_spans_sql`).
fn bind_edge(
    q: clickhouse::query::Query,
    s: &GraphArgs,
    w: Span,
    source: &str,
    target: &str,
) -> clickhouse::query::Query {
    let lookback = s.graph_parent_lookback.as_nanos() as i64;
    q.param("lo", w.lo)
        .param("hi", w.hi)
        .param("plo", w.lo - lookback)
        .param("chi", w.hi + lookback)
        .param("settled", w.now - s.graph_grace.as_nanos() as i64)
        .param("source", source)
        .param("target", target)
}

/// A call an exemplar list holds: `(trace id, span id, operation, start ns, duration ns, err)`.
type CallTuple = (String, String, String, i64, u64, u8);

#[derive(Row, Deserialize)]
struct ExemplarRow {
    slowest: Vec<CallTuple>,
    failed: Vec<CallTuple>,
    typical: Vec<CallTuple>,
}

/// The exemplar calls of an edge, chosen among its spans by the map's rules in one query.
async fn exemplars(
    client: &Client,
    s: &GraphArgs,
    w: Span,
    (source, target): (&str, &str),
    median_ns: i64,
) -> Result<Exemplars> {
    let sql = graph_rules::edge_exemplars_sql(shape(source, target), EXEMPLARS);
    let picked: ExemplarRow = bind_edge(client.query(&sql), s, w, source, target)
        .param("median", median_ns)
        .fetch_one()
        .await
        .context("edge exemplars")?;
    let refs = |calls: Vec<CallTuple>| -> Vec<TraceRef> {
        calls
            .into_iter()
            .map(
                |(trace_id, span_id, operation, start_ns, duration_ns, err)| TraceRef {
                    trace_id,
                    span_id,
                    operation,
                    start_us: start_ns / 1000,
                    duration_us: (duration_ns / 1000) as i64,
                    error: err != 0,
                },
            )
            .collect()
    };
    Ok(Exemplars {
        slowest: refs(picked.slowest),
        failed: refs(picked.failed),
        typical: refs(picked.typical),
    })
}

/// Edge detail, or `None` when no call crossed the edge in the window. Its metrics and
/// histogram are the map's (rollups plus live rows); its operations and exemplars are the
/// edge's spans in `otel_traces`, picked by the map's rules (`graph_rules::edge_spans_sql`),
/// grouped by span name, with quantiles from the same histograms. They are read from the
/// spans, not from the call copy `orrery_span_calls`, because that copy expires after 49 hours
/// (schema v11) while a window can reach back the whole retention.
pub async fn edge(
    client: &Client,
    s: &GraphArgs,
    cache: &crate::graph::cache::RolledCache,
    source: &str,
    target: &str,
    w: Span,
) -> Result<Option<EdgeDetail>> {
    let rows = fetch::edges(
        client,
        s,
        cache,
        w,
        Grouping::Services,
        &EdgeFilter::Between(source.to_string(), target.to_string()),
    )
    .await?;
    let Some(r) = rows
        .into_iter()
        .find(|r| r.kind != graph_rules::kind::ORPHAN)
    else {
        return Ok(None);
    };
    let seconds = w.seconds();
    let m = metrics(r.requests, r.errors, r.duration_sum_ns, &r.q, seconds);
    let median_ns = r.q.first().copied().unwrap_or(0.0) as i64;
    let sql = graph_rules::edge_operations_sql(shape(source, target));
    let ops_q = bind_edge(client.query(&sql), s, w, source, target);
    let (exemplars, ops) = tokio::try_join!(
        exemplars(client, s, w, (source, target), median_ns),
        async {
            ops_q
                .fetch_all::<OpBucketRow>()
                .await
                .context("edge operations")
        },
    )?;
    let operations = operations(ops, seconds);
    // The edge's counts come from the rollups, its operations and exemplars from the spans.
    // Both have the retention, but the spans can be gone while the rollups remain (deleted by
    // hand, or rollups older than a shortened retention): say so rather than show empty tables.
    let notice = (operations.is_empty() && m.requests > 0).then(|| {
        "operations and exemplar traces are not available for this window: its spans are no \
         longer in otel_traces (--retention-days); the edge's numbers come from the rollups"
            .to_string()
    });
    Ok(Some(EdgeDetail {
        edge: Edge {
            id: EdgeId::new(source, target).to_string(),
            source: source.to_string(),
            target: target.to_string(),
            health: health(s, &m),
            metrics: m,
            in_cycle: false,
        },
        window: window_json(w),
        histogram: display(&r.latency),
        operations,
        exemplars,
        notice,
    }))
}

#[cfg(test)]
mod footprint_tests;
#[cfg(test)]
mod tests;
