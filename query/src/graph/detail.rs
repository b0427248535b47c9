//! Node detail (operations, callers, callees, instances) and edge detail (histogram,
//! operations, exemplar traces), computed for the window from rollups and spans.

use anyhow::{Context, Result};
use clickhouse::{Client, Row};
use serde::Deserialize;

use super::fetch::{self, EdgeFilter, Grouping, Span};
use super::{GraphRequest, INTERNET, Level, health, metrics, node_kind, window_json};
use crate::GraphArgs;
use crate::calls::{
    BUCKET_BOUNDS_MS, DIGEST, IS_CLIENT_OR_PRODUCER, IS_SERVER_OR_CONSUMER, error_expr,
    virtual_callee,
};
use crate::model::{
    Edge, EdgeDetail, Exemplars, Histogram, Instance, NodeDetail, Operation, TraceRef,
};

#[derive(Row, Deserialize, Debug)]
struct OpRow {
    name: String,
    kind: String,
    requests: u64,
    errors: u64,
    duration_sum_ns: u64,
    q: Vec<f64>,
}

#[derive(Row, Deserialize, Debug)]
struct RefRow {
    trace_id: String,
    span_id: String,
    operation: String,
    start_ns: i64,
    duration_ns: u64,
    err: u8,
}

fn op_json(r: OpRow, seconds: f64) -> Operation {
    Operation {
        name: r.name,
        span_kind: orrery_store::span::kind::from_otlp(orrery_store::span::kind::to_otlp(&r.kind))
            .to_string(),
        metrics: metrics(r.requests, r.errors, r.duration_sum_ns, &r.q, seconds),
    }
}

fn ops_sql(from: &str) -> String {
    format!(
        "SELECT toString(SpanName) AS name, toString(any(SpanKind)) AS kind, count() AS requests,
    sum(Err) AS errors, sum(Duration) AS duration_sum_ns,
    arrayMap(x -> toFloat64(x), {DIGEST}(Duration)) AS q
FROM ({from}) GROUP BY SpanName ORDER BY requests DESC, name LIMIT 200"
    )
}

/// Node detail, or `None` when the node has no traffic in the window.
pub async fn node(client: &Client, s: &GraphArgs, id: &str, w: Span) -> Result<Option<NodeDetail>> {
    let req = GraphRequest {
        level: Level::Focused,
        region: None,
        focus: Some(id.to_string()),
        window: w,
        whats_wrong: false,
    };
    let g = super::graph(client, s, &req).await?;
    let Some(node) = g.nodes.iter().find(|n| n.id == id).cloned() else {
        return Ok(None);
    };
    if node.metrics.requests == 0 && !g.edges.iter().any(|e| e.source == id || e.target == id) {
        return Ok(None);
    }
    let operations = if node_kind(id) == "service" {
        let from = format!(
            "SELECT SpanName, SpanKind, Duration, toUInt8({err}) AS Err FROM otel_traces
             WHERE ServiceName = {{service:String}}
               AND Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})",
            err = error_expr(true)
        );
        let rows: Vec<OpRow> = client
            .query(&ops_sql(&from))
            .param("service", id)
            .param("lo", w.lo)
            .param("hi", w.hi)
            .fetch_all()
            .await
            .context("node operations")?;
        rows.into_iter().map(|r| op_json(r, w.seconds())).collect()
    } else {
        Vec::new()
    };
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
    }))
}

/// The calls across one edge as rows `TraceId, SpanId, SpanName, SpanKind, Timestamp, Duration,
/// Err` (callee side when the callee is instrumented, else the client span).
fn calls_across_sql(source: &str, target: &str) -> String {
    let err_server = error_expr(true);
    if source == INTERNET {
        return format!(
            "SELECT TraceId, SpanId, SpanName, SpanKind, Timestamp, Duration, toUInt8({err_server}) AS Err
             FROM otel_traces
             WHERE ServiceName = {{target:String}} AND ParentSpanId = '' AND {IS_SERVER_OR_CONSUMER}
               AND Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})"
        );
    }
    if node_kind(target) != "service" {
        return format!(
            "SELECT TraceId, SpanId, SpanName, SpanKind, Timestamp, Duration, toUInt8({err}) AS Err
             FROM (
                SELECT *, SpanAttributes['peer.service'] AS peer,
                    if(SpanAttributes['db.system.name'] != '', SpanAttributes['db.system.name'], SpanAttributes['db.system']) AS dbs,
                    SpanAttributes['messaging.system'] AS msg,
                    multiIf(SpanAttributes['server.address'] != '', SpanAttributes['server.address'],
                            SpanAttributes['net.peer.name'] != '', SpanAttributes['net.peer.name'],
                            SpanAttributes['http.host']) AS addr
                FROM otel_traces
                WHERE ServiceName = {{source:String}} AND {IS_CLIENT_OR_PRODUCER}
                  AND Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})
             )
             WHERE {callee} = {{target:String}}
               AND (TraceId, SpanId) NOT IN (
                 SELECT TraceId, ParentSpanId FROM otel_traces
                 WHERE Timestamp >= fromUnixTimestamp64Nano({{plo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{chi:Int64}})
                   AND ParentSpanId != '')",
            err = error_expr(false),
            callee = virtual_callee(),
        );
    }
    format!(
        "SELECT c.TraceId AS TraceId, c.SpanId AS SpanId, c.SpanName AS SpanName, c.SpanKind AS SpanKind,
            c.Timestamp AS Timestamp, c.Duration AS Duration, c.Err AS Err
         FROM (
            SELECT TraceId, SpanId, ParentSpanId, SpanName, SpanKind, Timestamp, Duration, toUInt8({err_server}) AS Err
            FROM otel_traces
            WHERE ServiceName = {{target:String}}
              AND Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})
         ) AS c
         ANY INNER JOIN (
            SELECT TraceId, SpanId FROM otel_traces
            WHERE ServiceName = {{source:String}}
              AND Timestamp >= fromUnixTimestamp64Nano({{plo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{chi:Int64}})
         ) AS p ON c.TraceId = p.TraceId AND c.ParentSpanId = p.SpanId"
    )
}

fn bind(
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
        .param("source", source)
        .param("target", target)
}

/// Edge detail, or `None` when no call crossed the edge in the window.
pub async fn edge(
    client: &Client,
    s: &GraphArgs,
    source: &str,
    target: &str,
    w: Span,
) -> Result<Option<EdgeDetail>> {
    let rows = fetch::edges(
        client,
        s,
        w,
        Grouping::Services,
        &EdgeFilter::Between(source.to_string(), target.to_string()),
    )
    .await?;
    let Some(r) = rows.into_iter().find(|r| r.kind != "orphan") else {
        return Ok(None);
    };
    let seconds = w.seconds();
    let m = metrics(r.requests, r.errors, r.duration_sum_ns, &r.q, seconds);
    let median_ns = r.q.first().copied().unwrap_or(0.0) as i64;
    let calls = calls_across_sql(source, target);
    let refs = |order: &str, filter: &str| {
        format!(
            "SELECT TraceId AS trace_id, SpanId AS span_id, toString(SpanName) AS operation,
                toInt64(toUnixTimestamp64Nano(Timestamp)) AS start_ns, Duration AS duration_ns, Err AS err
             FROM ({calls}) WHERE 1 {filter} ORDER BY {order} LIMIT 5"
        )
    };
    let fetch_refs = |sql: String| {
        let q = bind(client.query(&sql), s, w, source, target).param("median", median_ns);
        async move { q.fetch_all::<RefRow>().await.context("edge exemplars") }
    };
    let ops_q = bind(client.query(&ops_sql(&calls)), s, w, source, target);
    let (slowest, failed, typical, ops) = tokio::try_join!(
        fetch_refs(refs("Duration DESC, TraceId", "")),
        fetch_refs(refs("Timestamp DESC, TraceId", "AND Err = 1")),
        fetch_refs(refs("abs(toInt64(Duration) - {median:Int64}), TraceId", "")),
        async { ops_q.fetch_all::<OpRow>().await.context("edge operations") },
    )?;
    let to_refs = |rows: Vec<RefRow>| -> Vec<TraceRef> {
        rows.into_iter()
            .map(|r| TraceRef {
                trace_id: r.trace_id,
                span_id: r.span_id,
                operation: r.operation,
                start_us: r.start_ns / 1000,
                duration_us: (r.duration_ns / 1000) as i64,
                error: r.err != 0,
            })
            .collect()
    };
    let mut counts = r.buckets.clone();
    counts.resize(BUCKET_BOUNDS_MS.len() + 1, 0);
    Ok(Some(EdgeDetail {
        edge: Edge {
            id: format!("{source}->{target}"),
            source: source.to_string(),
            target: target.to_string(),
            health: health(s, &m),
            metrics: m,
            in_cycle: false,
        },
        window: window_json(w),
        histogram: Histogram {
            bounds_ms: BUCKET_BOUNDS_MS.to_vec(),
            counts,
        },
        operations: ops.into_iter().map(|o| op_json(o, seconds)).collect(),
        exemplars: Exemplars {
            slowest: to_refs(slowest),
            failed: to_refs(failed),
            typical: to_refs(typical),
        },
    }))
}
