//! Node detail (operations, callers, callees, instances, latency histogram) and edge detail
//! (histogram, operations, exemplar traces), computed for the window from rollups and spans.

use anyhow::{Context, Result};
use clickhouse::{Client, Row};
use serde::Deserialize;

use super::fetch::{self, EdgeFilter, Grouping, NodeKey, Span};
use super::{GraphRequest, INTERNET, Level, health, metrics, node_kind, window_json};
use crate::GraphArgs;
use crate::calls::{
    DIGEST, IS_CLIENT_OR_PRODUCER, IS_SERVER_OR_CONSUMER, error_expr, virtual_callee,
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
    let kind = node_kind(id);
    let operations = async {
        if kind != "service" {
            return Ok(Vec::new());
        }
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
        anyhow::Ok(rows.into_iter().map(|r| op_json(r, w.seconds())).collect())
    };
    let (operations, histogram) = tokio::try_join!(operations, node_histogram(client, s, id, w))?;
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
async fn node_histogram(client: &Client, s: &GraphArgs, id: &str, w: Span) -> Result<Histogram> {
    let parts: Vec<orrery_store::latency::Histogram> = match node_kind(id) {
        "service" => fetch::nodes(client, s, w, &NodeKey::Instances(id.to_string()))
            .await?
            .into_iter()
            .map(|n| n.latency)
            .collect(),
        "database" | "queue" | "external" => fetch::edges(
            client,
            s,
            w,
            Grouping::Services,
            &EdgeFilter::Touching(id.to_string()),
        )
        .await?
        .into_iter()
        .filter(|e| e.target == id && e.kind != "orphan")
        .map(|e| e.latency)
        .collect(),
        _ => Vec::new(),
    };
    Ok(histogram(parts))
}

/// The merged latency of `parts`, one bar per doubling (see `Histogram::display`).
fn histogram(parts: Vec<orrery_store::latency::Histogram>) -> Histogram {
    let mut all = orrery_store::latency::Histogram::default();
    for p in &parts {
        all.merge(p);
    }
    display(&all)
}

fn display(h: &orrery_store::latency::Histogram) -> Histogram {
    let (bounds_ms, counts) = h.display();
    Histogram { bounds_ms, counts }
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
        histogram: display(&r.latency),
        operations: ops.into_iter().map(|o| op_json(o, seconds)).collect(),
        exemplars: Exemplars {
            slowest: to_refs(slowest),
            failed: to_refs(failed),
            typical: to_refs(typical),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use orrery_store::SpanRow;
    use std::time::Duration;

    const MS: i64 = 1_000_000;

    fn span(
        trace: u32,
        id: u32,
        parent: u32,
        service: &str,
        kind: &str,
        ts: i64,
        dur_ms: i64,
    ) -> SpanRow {
        SpanRow {
            timestamp: ts,
            trace_id: format!("{trace:032x}"),
            span_id: format!("{id:016x}"),
            parent_span_id: if parent == 0 {
                String::new()
            } else {
                format!("{parent:016x}")
            },
            span_name: format!("{service} {kind}"),
            span_kind: kind.into(),
            service_name: service.into(),
            resource_attributes: vec![
                ("service.name".into(), service.into()),
                (
                    "service.instance.id".into(),
                    format!("{service}-{}", trace % 2),
                ),
            ],
            duration: (dur_ms * MS) as u64,
            status_code: "Unset".into(),
            ..Default::default()
        }
    }

    fn settings() -> GraphArgs {
        GraphArgs {
            graph_grace: Duration::from_millis(1),
            graph_rollup_delay: Duration::from_secs(0),
            ..GraphArgs::default()
        }
    }

    /// `(upper bound, count)` of the non-empty buckets (`None` = overflow).
    fn filled(h: &Histogram) -> Vec<(Option<f64>, u64)> {
        h.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| (h.bounds_ms.get(i).copied(), *c))
            .collect()
    }

    #[tokio::test]
    async fn node_detail_has_the_latency_histogram_of_the_calls_it_served() {
        let ch = orrery_store::testing::fresh_database().await;
        let client = ch.client();
        let s = settings();
        let now = crate::now_ns();
        let t0 = now - 3 * 60_000 * MS;
        // api (root) → shop (3 fast calls, 1 at 40 ms, 1 over 30 s) → postgres (client spans).
        let mut rows = Vec::new();
        for (i, dur) in [3, 4, 3, 40, 31_000].into_iter().enumerate() {
            let t = i as u32 + 1;
            let ts = t0 + i as i64 * MS;
            rows.push(span(t, 1, 0, "api", "Server", ts, dur + 2));
            rows.push(span(t, 2, 1, "api", "Client", ts, dur + 1));
            rows.push(span(t, 3, 2, "shop", "Server", ts, dur));
            let mut db = span(t, 4, 3, "shop", "Client", ts, 7);
            db.span_attributes = vec![("db.system".into(), "postgresql".into())];
            rows.push(db);
        }
        let mut insert = client.insert::<SpanRow>("otel_traces").await.unwrap();
        for r in &rows {
            insert.write(r).await.unwrap();
        }
        insert.end().await.unwrap();
        let w = crate::params::span(t0 - 60_000 * MS, now, now).unwrap();

        let check = |d: &NodeDetail, want: Vec<(Option<f64>, u64)>| {
            assert_eq!(d.histogram.counts.len(), d.histogram.bounds_ms.len() + 1);
            assert_eq!(filled(&d.histogram), want, "{}", d.node.id);
            assert_eq!(
                d.histogram.counts.iter().sum::<u64>(),
                d.node.metrics.requests
            );
        };
        // One bar per doubling: 3, 4, 3 ms ≤ 4.19 ms; 40 ms ≤ 67.1 ms; 31 s beyond the last
        // bucket's start (21.6 s). The same as the histogram of the exact durations.
        let shop_want = vec![(Some(4.19), 3), (Some(67.1), 1), (None, 1)];
        let exact = orrery_store::latency::Histogram::of(
            &[3, 4, 3, 40, 31_000].map(|ms: u64| ms * MS as u64),
        )
        .display();
        assert_eq!(
            filled(&Histogram {
                bounds_ms: exact.0,
                counts: exact.1
            }),
            shop_want
        );
        let shop = node(&client, &s, "shop", w)
            .await
            .unwrap()
            .expect("shop has traffic");
        check(&shop, shop_want.clone());
        let db = node(&client, &s, "database:postgresql", w)
            .await
            .unwrap()
            .expect("the database has calls");
        check(&db, vec![(Some(8.39), 5)]);

        // Once the minutes are rolled up, the histogram comes from the rollup and is the same.
        let report = crate::rollup::Rollup::new(client.clone(), s.clone())
            .run_once(now, Duration::from_secs(600))
            .await
            .unwrap();
        assert!(!report.computed.is_empty());
        let shop = node(&client, &s, "shop", w).await.unwrap().unwrap();
        check(&shop, shop_want);

        // A window without the calls has no detail at all.
        let empty =
            crate::params::span(now - 60 * 60_000 * MS, now - 50 * 60_000 * MS, now).unwrap();
        assert!(node(&client, &s, "shop", empty).await.unwrap().is_none());
    }
}
