//! Trace search and trace by id.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};
use clickhouse::{Client, Row};
use orrery_store::SpanRow;
use orrery_store::span::status;
use serde::Deserialize;

use crate::graph::Span as Window;
use crate::model::{
    Attributes, Event, Link, Scope, ServiceCount, Span, Status, Trace, TraceSummary,
};
use orrery_store::graph_rules::error_expr;

mod pieces;
pub use pieces::{Pieces, trace_pieces};

/// Search filters; all must match one span of a trace.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub service: Option<String>,
    pub operation: Option<String>,
    /// `(key, value)`: span or resource attribute equals value.
    pub attributes: Vec<(String, String)>,
    pub min_duration_ns: Option<u64>,
    pub max_duration_ns: Option<u64>,
    pub errors_only: bool,
    /// Only spans of this kind (Jaeger's `spanKind`), any spelling.
    pub limit: usize,
    pub order: Order,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    Newest,
    Oldest,
    Slowest,
    Fastest,
}

impl Order {
    pub fn parse(s: &str) -> Result<Order, String> {
        match s {
            "" | "newest" => Ok(Order::Newest),
            "oldest" => Ok(Order::Oldest),
            "slowest" => Ok(Order::Slowest),
            "fastest" => Ok(Order::Fastest),
            other => Err(format!(
                "order: {other:?} is not one of newest, oldest, slowest, fastest"
            )),
        }
    }
}

/// A 32-digit lowercase trace id from user input (shorter ids are zero-padded), or a message.
pub fn normalize_trace_id(id: &str) -> Result<String, String> {
    let id = id.trim().to_ascii_lowercase();
    if id.is_empty() || id.len() > 32 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("trace id {id:?} must be 1 to 32 hex digits"));
    }
    Ok(format!("{id:0>32}"))
}

#[derive(Row, Deserialize, Debug)]
struct Hit {
    trace_id: String,
}

#[derive(Row, Deserialize, Debug)]
struct PerService {
    trace_id: String,
    service: String,
    spans: u64,
    errors: u64,
    start_ns: i64,
    end_ns: i64,
    roots: u64,
    root_operation: String,
    root_start_ns: i64,
}

/// Trace ids matching `search` in the window, in the requested order.
pub async fn search_ids(client: &Client, w: Window, search: &Search) -> Result<Vec<String>> {
    let mut sql = String::from(
        "SELECT TraceId AS trace_id FROM otel_traces
WHERE Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp < fromUnixTimestamp64Nano({hi:Int64})",
    );
    if search.service.is_some() {
        sql.push_str(" AND ServiceName = {service:String}");
    }
    if search.operation.is_some() {
        sql.push_str(" AND SpanName = {operation:String}");
    }
    for i in 0..search.attributes.len() {
        sql.push_str(&format!(
            " AND (SpanAttributes[{{k{i}:String}}] = {{v{i}:String}} OR ResourceAttributes[{{k{i}:String}}] = {{v{i}:String}})"
        ));
    }
    if search.min_duration_ns.is_some() {
        sql.push_str(" AND Duration >= {min_d:UInt64}");
    }
    if search.max_duration_ns.is_some() {
        sql.push_str(" AND Duration <= {max_d:UInt64}");
    }
    if search.errors_only {
        sql.push_str(&format!(" AND {}", error_expr(true)));
    }
    sql.push_str(" GROUP BY TraceId ORDER BY ");
    sql.push_str(match search.order {
        Order::Newest => "max(Timestamp) DESC",
        Order::Oldest => "min(Timestamp) ASC",
        Order::Slowest => "max(Duration) DESC",
        Order::Fastest => "min(Duration) ASC",
    });
    sql.push_str(", TraceId LIMIT {limit:UInt64}");
    let mut q = client
        .query(&sql)
        .param("lo", w.lo)
        .param("hi", w.hi)
        .param("limit", search.limit as u64);
    if let Some(s) = &search.service {
        q = q.param("service", s);
    }
    if let Some(o) = &search.operation {
        q = q.param("operation", o);
    }
    for (i, (k, v)) in search.attributes.iter().enumerate() {
        q = q.param(&format!("k{i}"), k).param(&format!("v{i}"), v);
    }
    if let Some(d) = search.min_duration_ns {
        q = q.param("min_d", d);
    }
    if let Some(d) = search.max_duration_ns {
        q = q.param("max_d", d);
    }
    let hits: Vec<Hit> = q.fetch_all().await.context("searching traces")?;
    Ok(hits.into_iter().map(|h| h.trace_id).collect())
}

/// Summaries of the given traces (in the given order). Spans are looked up within
/// `[lo - slack, hi + slack)` of the search window.
pub async fn summaries(
    client: &Client,
    ids: &[String],
    w: Window,
    slack_ns: i64,
) -> Result<Vec<TraceSummary>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT TraceId AS trace_id, toString(ServiceName) AS service, count() AS spans,
    countIf({err}) AS errors,
    toInt64(min(toUnixTimestamp64Nano(Timestamp))) AS start_ns,
    toInt64(max(toUnixTimestamp64Nano(Timestamp) + Duration)) AS end_ns,
    countIf(ParentSpanId = '') AS roots,
    toString(argMinIf(SpanName, Timestamp, ParentSpanId = '')) AS root_operation,
    toInt64(minIf(toUnixTimestamp64Nano(Timestamp), ParentSpanId = '')) AS root_start_ns
FROM otel_traces
WHERE TraceId IN {{ids:Array(String)}}
  AND Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})
GROUP BY TraceId, ServiceName",
        err = error_expr(true)
    );
    let rows: Vec<PerService> = client
        .query(&sql)
        .param("ids", ids)
        .param("lo", w.lo - slack_ns)
        .param("hi", w.hi + slack_ns)
        .fetch_all()
        .await
        .context("summarising traces")?;
    let mut by_trace: HashMap<&str, Vec<&PerService>> = HashMap::new();
    for r in &rows {
        by_trace.entry(r.trace_id.as_str()).or_default().push(r);
    }
    let mut out = Vec::new();
    for id in ids {
        let Some(parts) = by_trace.get(id.as_str()) else {
            continue;
        };
        let start = parts.iter().map(|p| p.start_ns).min().unwrap_or(0);
        let end = parts.iter().map(|p| p.end_ns).max().unwrap_or(0);
        let root = parts
            .iter()
            .filter(|p| p.roots > 0)
            .min_by_key(|p| p.root_start_ns);
        let mut services: Vec<ServiceCount> = parts
            .iter()
            .map(|p| ServiceCount {
                name: p.service.clone(),
                span_count: p.spans,
                error_count: p.errors,
            })
            .collect();
        services.sort_by(|a, b| a.name.cmp(&b.name));
        out.push(TraceSummary {
            trace_id: id.clone(),
            root_service: root.map(|r| r.service.clone()).unwrap_or_default(),
            root_operation: root.map(|r| r.root_operation.clone()).unwrap_or_default(),
            start_us: start / 1000,
            duration_us: (end - start) / 1000,
            span_count: parts.iter().map(|p| p.spans).sum(),
            error_count: parts.iter().map(|p| p.errors).sum(),
            services,
        });
    }
    Ok(out)
}

/// Every stored span of one trace (normalized id), in no particular order (the tree sorts).
///
/// One query through the TraceId bloom filter over all partitions. Bounding it by the trace's
/// Start/End from `otel_traces_trace_id_ts` first was measured slower at 10M spans (50 vs 41 ms
/// p50): the extra round trip costs more than the partitions it prunes, and the primary key
/// `(ServiceName, SpanName, time)` cannot use the time range without the service.
///
/// At most [`DEFAULT_MAX_TRACE_SPANS`] spans (the earliest): use [`load_spans_capped`] to
/// choose the cap and learn whether the trace was cut.
pub async fn load_spans(client: &Client, trace_id: &str) -> Result<Vec<SpanRow>> {
    Ok(load_spans_capped(client, trace_id, DEFAULT_MAX_TRACE_SPANS)
        .await?
        .0)
}

/// The default of `--query-max-trace-spans`.
pub const DEFAULT_MAX_TRACE_SPANS: u64 = 100_000;

/// At most `max` spans of one trace, and whether there were more (then the earliest `max` by
/// start time). Anyone can put any number of spans under one trace id; this keeps the answer
/// (and the service's memory) bounded.
///
/// The usual trace fits: one unsorted read of at most `max + 1` rows tells so, as fast as the
/// plain read (sorting costs: a 50,000-span trace read in 13 ms took 87 ms sorted, chDB). Only a
/// trace over the cap is read again, sorted by start time, so that its root and first levels
/// are what is kept.
pub async fn load_spans_capped(
    client: &Client,
    trace_id: &str,
    max: u64,
) -> Result<(Vec<SpanRow>, bool)> {
    // The span columns as this table has them (an older exporter's table: casts and defaults,
    // resolved once at start), never `?fields`, which assumes the current shape.
    let columns = orrery_store::schema::span_select();
    let rows: Vec<SpanRow> = client
        .query(&format!(
            "SELECT {columns} FROM otel_traces PREWHERE TraceId = {{id:String}} LIMIT {{n:UInt64}}"
        ))
        .param("id", trace_id)
        .param("n", max.saturating_add(1))
        .fetch_all()
        .await
        .context("loading trace")?;
    if rows.len() as u64 <= max {
        return Ok((rows, false));
    }
    drop(rows);
    let rows: Vec<SpanRow> = client
        .query(&format!(
            "SELECT {columns} FROM otel_traces PREWHERE TraceId = {{id:String}}
             ORDER BY Timestamp, SpanId LIMIT {{n:UInt64}}"
        ))
        .param("id", trace_id)
        .param("n", max)
        .fetch_all()
        .await
        .context("loading the earliest spans of a trace over the cap")?;
    Ok((rows, true))
}

fn span_error(s: &SpanRow) -> bool {
    s.is_error()
}

/// Normalizes a stored status spelling to `Ok|Error|Unset`.
pub(crate) fn status_code(stored: &str) -> &'static str {
    match status::to_otlp(stored) {
        1 => status::OK,
        2 => status::ERROR,
        _ => status::UNSET,
    }
}

pub(crate) fn kind_name(stored: &str) -> &'static str {
    orrery_store::span::kind::from_otlp(orrery_store::span::kind::to_otlp(stored))
}

/// What the span tree needs of a stored row: the full [`SpanRow`], or the light row of the
/// piecewise read (`pieces.rs`), which orders the tree before the heavy columns are read.
pub(crate) trait TreeRow {
    fn id(&self) -> &str;
    fn parent(&self) -> &str;
    fn start_ns(&self) -> i64;
    fn duration_ns(&self) -> u64;
    fn service(&self) -> &str;
    fn error(&self) -> bool;
}

impl TreeRow for SpanRow {
    fn id(&self) -> &str {
        &self.span_id
    }
    fn parent(&self) -> &str {
        &self.parent_span_id
    }
    fn start_ns(&self) -> i64 {
        self.timestamp
    }
    fn duration_ns(&self) -> u64 {
        self.duration
    }
    fn service(&self) -> &str {
        &self.service_name
    }
    fn error(&self) -> bool {
        span_error(self)
    }
}

/// The tree over some rows: display order as `(row index, depth)`, which rows have a parent
/// that is not stored, and the trace's figures.
pub(crate) struct Tree {
    pub order: Vec<(usize, u32)>,
    pub missing: Vec<bool>,
    pub start_ns: i64,
    pub end_ns: i64,
    pub error_count: u64,
    pub services: Vec<String>,
}

/// The span tree: depth-first, children by start time; spans whose parent is missing are roots
/// marked `missing_parent`. Duplicate span ids (at-least-once delivery) are shown once (the
/// first row of an id).
///
/// Built in linear passes over indices (hash maps keyed by borrowed ids, sorts on borrowed
/// keys): a 50,000-span trace is one answer the UI waits for.
pub(crate) fn tree<R: TreeRow>(rows: &[R]) -> Tree {
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
    let mut keep = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        if !first.contains_key(r.id()) {
            first.insert(r.id(), i);
            keep.push(i);
        }
    }
    let has_parent =
        |r: &R| !r.parent().is_empty() && r.parent() != r.id() && first.contains_key(r.parent());
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for &i in &keep {
        let r = &rows[i];
        if has_parent(r) {
            children.entry(r.parent()).or_default().push(i);
        } else {
            roots.push(i);
        }
    }
    let by_start = |v: &mut Vec<usize>| {
        v.sort_unstable_by(|&a, &b| {
            (rows[a].start_ns(), rows[a].id()).cmp(&(rows[b].start_ns(), rows[b].id()))
        })
    };
    by_start(&mut roots);
    for v in children.values_mut() {
        by_start(v);
    }
    let mut order: Vec<(usize, u32)> = Vec::with_capacity(keep.len());
    let mut visited = vec![false; rows.len()];
    let mut stack: Vec<(usize, u32)> = roots.iter().rev().map(|&i| (i, 0)).collect();
    while let Some((i, d)) = stack.pop() {
        if std::mem::replace(&mut visited[i], true) {
            continue;
        }
        order.push((i, d));
        if let Some(kids) = children.get(rows[i].id()) {
            stack.extend(kids.iter().rev().map(|&k| (k, d + 1)));
        }
    }
    // Spans on a parent cycle (corrupt data) are never reached from a root: append them.
    for &i in &keep {
        if !visited[i] {
            order.push((i, 0));
        }
    }
    let missing: Vec<bool> = rows
        .iter()
        .map(|r| !r.parent().is_empty() && !first.contains_key(r.parent()))
        .collect();
    let kept = keep.iter().map(|&i| &rows[i]);
    let start_ns = kept.clone().map(|r| r.start_ns()).min().unwrap_or(0);
    let end_ns = kept
        .clone()
        .map(|r| r.start_ns() + r.duration_ns() as i64)
        .max()
        .unwrap_or(0);
    let error_count = kept.clone().filter(|r| r.error()).count() as u64;
    let mut services: Vec<String> = kept
        .map(|r| r.service())
        .collect::<HashSet<_>>()
        .into_iter()
        .map(String::from)
        .collect();
    services.sort();
    Tree {
        order,
        missing,
        start_ns,
        end_ns,
        error_count,
        services,
    }
}

/// The trace of these rows, in [`tree`] order; each row is moved, not cloned, into its span.
pub fn build_trace(trace_id: &str, rows: Vec<SpanRow>) -> Trace {
    let t = tree(&rows);
    let mut slots: Vec<Option<SpanRow>> = rows.into_iter().map(Some).collect();
    let spans: Vec<Span> = t
        .order
        .into_iter()
        .filter_map(|(i, depth)| Some(span_json(slots[i].take()?, depth, t.missing[i])))
        .collect();
    Trace {
        trace_id: trace_id.to_string(),
        start_us: t.start_ns / 1000,
        duration_us: (t.end_ns - t.start_ns) / 1000,
        span_count: spans.len() as u64,
        error_count: t.error_count,
        services: t.services,
        spans,
        truncated: false,
    }
}

fn owned_attrs(pairs: Vec<(String, String)>) -> Attributes {
    pairs.into_iter().collect()
}

/// One stored row as an API span (moved field by field).
pub(crate) fn span_json(r: SpanRow, depth: u32, missing_parent: bool) -> Span {
    let kind = kind_name(&r.span_kind).to_string();
    let code = status_code(&r.status_code).to_string();
    let mut events_ts = r.events_timestamp.into_iter();
    let mut events_attrs = r.events_attributes.into_iter();
    let events = r
        .events_name
        .into_iter()
        .map(|name| Event {
            time_us: events_ts.next().unwrap_or(0) / 1000,
            name,
            attributes: events_attrs.next().map(owned_attrs).unwrap_or_default(),
        })
        .collect();
    let mut links_trace = r.links_trace_id.into_iter();
    let mut links_state = r.links_trace_state.into_iter();
    let mut links_attrs = r.links_attributes.into_iter();
    let links = r
        .links_span_id
        .into_iter()
        .map(|span_id| Link {
            trace_id: links_trace.next().unwrap_or_default(),
            span_id,
            trace_state: links_state.next().unwrap_or_default(),
            attributes: links_attrs.next().map(owned_attrs).unwrap_or_default(),
        })
        .collect();
    Span {
        span_id: r.span_id,
        parent_span_id: r.parent_span_id,
        trace_state: r.trace_state,
        name: r.span_name,
        kind,
        service: r.service_name,
        start_us: r.timestamp / 1000,
        duration_us: (r.duration / 1000) as i64,
        status: Status {
            code,
            message: r.status_message,
        },
        depth,
        missing_parent,
        resource: owned_attrs(r.resource_attributes),
        attributes: owned_attrs(r.span_attributes),
        scope: Scope {
            name: r.scope_name,
            version: r.scope_version,
        },
        events,
        links,
    }
}

/// Trace by id: `None` when no span of it is stored.
pub async fn trace(client: &Client, trace_id: &str) -> Result<Option<Trace>> {
    trace_capped(client, trace_id, DEFAULT_MAX_TRACE_SPANS).await
}

/// Trace by id with at most `max` spans (`truncated` says when there were more).
pub async fn trace_capped(client: &Client, trace_id: &str, max: u64) -> Result<Option<Trace>> {
    let (rows, truncated) = load_spans_capped(client, trace_id, max).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut t = build_trace(trace_id, rows);
    t.truncated = truncated;
    Ok(Some(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_are_normalized_or_rejected() {
        assert_eq!(
            normalize_trace_id("ABC").unwrap(),
            format!("{}abc", "0".repeat(29))
        );
        assert!(normalize_trace_id("xyz").is_err());
        assert!(normalize_trace_id(&"a".repeat(33)).is_err());
        assert!(normalize_trace_id("").is_err());
    }

    #[tokio::test]
    async fn trace_by_id_finds_its_spans_with_or_without_lookup_rows() {
        let ch = orrery_store::testing::fresh_database().await;
        let client = ch.client();
        let id = normalize_trace_id("abc").unwrap();
        let base = crate::now_ns() - 3_600_000_000_000;
        // Two days apart: two partitions.
        let mut spans = vec![row("r", "", base), row("c", "r", base - 86_400_000_000_000)];
        let mut other = row("x", "", base);
        other.trace_id = normalize_trace_id("def").unwrap();
        for s in &mut spans {
            s.trace_id = id.clone();
            s.service_name = "svc".into();
        }
        spans.push(other);
        let mut insert = client.insert::<SpanRow>("otel_traces").await.unwrap();
        for s in &spans {
            insert.write(s).await.unwrap();
        }
        insert.end().await.unwrap();

        let t = trace(&client, &id).await.unwrap().expect("trace found");
        assert_eq!(t.span_count, 2);
        // The streamed answer is byte for byte the one-piece serialisation of this real trace.
        let whole = serde_json::to_vec(&t).unwrap();
        let streamed: Vec<u8> = {
            use futures::StreamExt;
            let parts: Vec<_> = crate::trace_stream::chunks(t).collect().await;
            parts
                .into_iter()
                .flat_map(|c| c.unwrap().to_vec())
                .collect()
        };
        assert_eq!(streamed, whole);
        // An exporter without the lookup view leaves no lookup row: nothing changes.
        client
            .query("TRUNCATE TABLE otel_traces_trace_id_ts")
            .execute()
            .await
            .unwrap();
        let t = trace(&client, &id).await.unwrap().expect("trace found");
        assert_eq!(t.span_count, 2);
        assert!(
            trace(&client, &normalize_trace_id("123").unwrap())
                .await
                .unwrap()
                .is_none()
        );
    }

    fn row(id: &str, parent: &str, ts: i64) -> SpanRow {
        SpanRow {
            span_id: id.into(),
            parent_span_id: parent.into(),
            timestamp: ts,
            duration: 1000,
            ..Default::default()
        }
    }

    #[test]
    fn tree_is_depth_first_by_start_with_orphans_marked() {
        let rows = vec![
            row("c2", "r", 30),
            row("r", "", 10),
            row("c1", "r", 20),
            row("g", "c1", 25),
            row("o", "missing", 5),
            row("c1", "r", 20),
        ];
        let t = build_trace("t", rows);
        let order: Vec<(&str, u32, bool)> = t
            .spans
            .iter()
            .map(|s| (s.span_id.as_str(), s.depth, s.missing_parent))
            .collect();
        assert_eq!(
            order,
            vec![
                ("o", 0, true),
                ("r", 0, false),
                ("c1", 1, false),
                ("g", 2, false),
                ("c2", 1, false)
            ]
        );
        assert_eq!(t.span_count, 5);
    }
}
