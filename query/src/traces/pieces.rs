//! Trace by id read in pieces, so the first rows of a big trace do not wait for all its bytes.
//!
//! A 50,000-span trace is mostly attributes, events and links (18 MB of JSON); its tree needs
//! only ids, parents and times. So:
//! 1. a light read of every span (id, parent, start, duration, service, name, kind, status),
//!    capped as the whole read is (`--query-max-trace-spans`), orders the tree and gives the
//!    trace's figures;
//! 2. the full rows of the first `first_n` spans in display order, looked up by id, make the
//!    answer's first spans (the page draws its first screen from them);
//! 3. the full rows of the rest are read only when the answer's body gets there
//!    ([`Pieces::rest`], polled by `trace_stream`): a client that leaves first drops it.
//!
//! The answer is the same JSON as [`super::trace_capped`]'s, span for span: the light read is
//! the snapshot (its spans, order and figures); a span that a later piece no longer finds (its
//! partition dropped by TTL in between) keeps its light columns with empty attributes, and a
//! span stored after the light read is not added.

use std::collections::HashMap;

use anyhow::{Context, Result};
use clickhouse::{Client, Row};
use futures::future::BoxFuture;
use orrery_store::SpanRow;
use serde::Deserialize;

use super::{TreeRow, kind_name, span_json, status_code, tree};
use crate::model::{Span, Status, Trace};

/// The light columns, by the names the select list gives them.
const LIGHT_COLUMNS: [&str; 8] = [
    "Timestamp",
    "SpanId",
    "ParentSpanId",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "Duration",
    "StatusCode",
];

/// The columns the tree and a first row need; field order = [`LIGHT_COLUMNS`].
#[derive(Row, Deserialize, Debug, Clone, Default)]
struct Light {
    #[serde(rename = "Timestamp")]
    timestamp: i64,
    #[serde(rename = "SpanId")]
    span_id: String,
    #[serde(rename = "ParentSpanId")]
    parent_span_id: String,
    #[serde(rename = "SpanName")]
    span_name: String,
    #[serde(rename = "SpanKind")]
    span_kind: String,
    #[serde(rename = "ServiceName")]
    service_name: String,
    #[serde(rename = "Duration")]
    duration: u64,
    #[serde(rename = "StatusCode")]
    status_code: String,
}

impl TreeRow for Light {
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
        orrery_store::span::status::is_error(&self.status_code)
    }
}

/// The select list's items for the light columns, in [`LIGHT_COLUMNS`] order, taken from the
/// full select list (so an older exporter's table gets the same casts and defaults).
fn light_select() -> String {
    let full = orrery_store::schema::span_select();
    let mut items = Vec::new();
    let (mut depth, mut from) = (0i32, 0usize);
    for (i, c) in full.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                items.push(full[from..i].trim());
                from = i + 1;
            }
            _ => {}
        }
    }
    items.push(full[from..].trim());
    LIGHT_COLUMNS
        .iter()
        .map(|name| {
            let quoted = format!("`{name}`");
            items
                .iter()
                .find(|it| **it == quoted || it.ends_with(&format!(" AS {quoted}")))
                .map(|it| it.to_string())
                .unwrap_or(quoted)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A trace answer whose first spans are ready and whose other spans are still to be read.
pub struct Pieces {
    /// The whole trace's figures (`span_count`, `truncated`, …) with only its first spans.
    pub first: Trace,
    /// The other spans in display order, read when polled.
    pub rest: BoxFuture<'static, Result<Vec<Span>>>,
}

/// Trace by id in pieces (see the module docs): `None` when no span of it is stored. At most
/// `max` spans, as [`super::trace_capped`]; the first `first_n` (display order) in `first`.
pub async fn trace_pieces(
    client: &Client,
    trace_id: &str,
    max: u64,
    first_n: usize,
) -> Result<Option<Pieces>> {
    let light_cols = light_select();
    let mut light: Vec<Light> = client
        .query(&format!(
            "SELECT {light_cols} FROM otel_traces PREWHERE TraceId = {{id:String}} LIMIT {{n:UInt64}}"
        ))
        .param("id", trace_id)
        .param("n", max.saturating_add(1))
        .fetch_all()
        .await
        .context("loading trace")?;
    if light.is_empty() {
        return Ok(None);
    }
    let truncated = light.len() as u64 > max;
    if truncated {
        // Over the cap: the earliest `max` by start, as the whole read keeps.
        light = client
            .query(&format!(
                "SELECT {light_cols} FROM otel_traces PREWHERE TraceId = {{id:String}}
                 ORDER BY Timestamp, SpanId LIMIT {{n:UInt64}}"
            ))
            .param("id", trace_id)
            .param("n", max)
            .fetch_all()
            .await
            .context("loading the earliest spans of a trace over the cap")?;
    }
    let t = tree(&light);
    let mut slots: Vec<Option<Light>> = light.into_iter().map(Some).collect();
    let mut ordered: Vec<(Light, u32, bool)> = t
        .order
        .into_iter()
        .filter_map(|(i, depth)| Some((slots[i].take()?, depth, t.missing[i])))
        .collect();
    drop(slots);
    let span_count = ordered.len() as u64;
    let later = ordered.split_off(first_n.min(ordered.len()));
    let ids: Vec<&str> = ordered.iter().map(|(l, _, _)| l.span_id.as_str()).collect();
    let columns = orrery_store::schema::span_select();
    let full: Vec<SpanRow> = client
        .query(&format!(
            "SELECT {columns} FROM otel_traces
             PREWHERE TraceId = {{id:String}} AND SpanId IN {{ids:Array(String)}}"
        ))
        .param("id", trace_id)
        .param("ids", &ids)
        .fetch_all()
        .await
        .context("loading the first spans of a trace")?;
    let first_spans = complete(ordered, full);
    let first = Trace {
        trace_id: trace_id.to_string(),
        start_us: t.start_ns / 1000,
        duration_us: (t.end_ns - t.start_ns) / 1000,
        span_count,
        error_count: t.error_count,
        services: t.services,
        spans: first_spans,
        truncated,
    };
    let rest: BoxFuture<'static, Result<Vec<Span>>> = if later.is_empty() {
        Box::pin(async { Ok(Vec::new()) })
    } else {
        let (client, trace_id) = (client.clone(), trace_id.to_string());
        Box::pin(async move {
            let query = if truncated {
                format!(
                    "SELECT {columns} FROM otel_traces PREWHERE TraceId = {{id:String}}
                     ORDER BY Timestamp, SpanId LIMIT {{n:UInt64}}"
                )
            } else {
                format!(
                    "SELECT {columns} FROM otel_traces PREWHERE TraceId = {{id:String}}
                     LIMIT {{n:UInt64}}"
                )
            };
            let full: Vec<SpanRow> = client
                .query(&query)
                .param("id", &trace_id)
                .param("n", max.saturating_add(u64::from(!truncated)))
                .fetch_all()
                .await
                .context("loading the rest of a trace")?;
            Ok(complete(later, full))
        })
    };
    Ok(Some(Pieces { first, rest }))
}

/// The spans of `ordered` (light rows in display order) with their full rows from `full`
/// (the first row of an id, as the tree keeps); a span `full` lacks keeps its light columns.
fn complete(ordered: Vec<(Light, u32, bool)>, full: Vec<SpanRow>) -> Vec<Span> {
    let mut by_id: HashMap<String, SpanRow> = HashMap::with_capacity(full.len());
    for r in full {
        if !by_id.contains_key(&r.span_id) {
            by_id.insert(r.span_id.clone(), r);
        }
    }
    ordered
        .into_iter()
        .map(|(l, depth, missing)| match by_id.remove(&l.span_id) {
            Some(r) => span_json(r, depth, missing),
            None => light_span(l, depth, missing),
        })
        .collect()
}

fn light_span(l: Light, depth: u32, missing_parent: bool) -> Span {
    Span {
        kind: kind_name(&l.span_kind).to_string(),
        status: Status {
            code: status_code(&l.status_code).to_string(),
            message: String::new(),
        },
        span_id: l.span_id,
        parent_span_id: l.parent_span_id,
        name: l.span_name,
        service: l.service_name,
        start_us: l.timestamp / 1000,
        duration_us: (l.duration / 1000) as i64,
        depth,
        missing_parent,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn row(trace: &str, i: usize, parent: Option<usize>, ts: i64) -> SpanRow {
        SpanRow {
            trace_id: trace.into(),
            span_id: format!("{i:016x}"),
            parent_span_id: parent.map(|p| format!("{p:016x}")).unwrap_or_default(),
            timestamp: ts,
            duration: 1_000 + i as u64,
            service_name: format!("svc-{}", i % 5),
            span_name: format!("op \"{i}\""),
            span_kind: "Server".into(),
            status_code: if i.is_multiple_of(97) { "Error" } else { "Ok" }.into(),
            status_message: if i.is_multiple_of(97) {
                "boom".into()
            } else {
                String::new()
            },
            span_attributes: vec![
                ("i".into(), i.to_string()),
                ("a b".into(), "c \"d\"".into()),
            ],
            resource_attributes: vec![("host".into(), format!("h{}", i % 3))],
            events_name: vec!["ev".into()],
            events_timestamp: vec![ts + 5],
            events_attributes: vec![vec![("e".into(), "1".into())]],
            links_trace_id: vec!["00ff".into()],
            links_span_id: vec!["0a".into()],
            links_trace_state: vec![String::new()],
            links_attributes: vec![vec![("l".into(), "2".into())]],
            ..Default::default()
        }
    }

    async fn streamed(p: Pieces) -> Vec<u8> {
        let parts: Vec<_> = crate::trace_stream::pieces_chunks(p).collect().await;
        parts
            .into_iter()
            .flat_map(|c| c.unwrap().to_vec())
            .collect()
    }

    /// The answer read in pieces is byte for byte the whole read's, wherever the first piece
    /// ends, over the span cap too; with duplicates, an orphan and a late child.
    #[tokio::test]
    async fn pieces_give_the_same_trace_as_one_read() {
        let ch = orrery_store::testing::fresh_database().await;
        let client = ch.client();
        let id = super::super::normalize_trace_id("abc").unwrap();
        let base = crate::now_ns() - 3_600_000_000_000;
        let n = 1_200;
        let mut rows: Vec<SpanRow> = (0..n)
            .map(|i| {
                let parent = (i > 0).then(|| (i - 1) / 3);
                // Children start after their parent, out of id order.
                row(
                    &id,
                    i,
                    parent,
                    base + ((i * 7919) % n) as i64 * 1_000 + i as i64,
                )
            })
            .collect();
        rows.push(row(&id, 5_000, Some(9_999), base - 10)); // parent never stored
        rows.push(rows[10].clone()); // delivered twice
        let mut other = row("00000000000000000000000000000def", 1, None, base);
        other.span_name = "not this trace".into();
        rows.push(other);
        let mut insert = client.insert::<SpanRow>("otel_traces").await.unwrap();
        for r in &rows {
            insert.write(r).await.unwrap();
        }
        insert.end().await.unwrap();

        for max in [100_000, 500] {
            let whole = super::super::trace_capped(&client, &id, max)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(whole.truncated, max < 1_201, "max {max}");
            let want = serde_json::to_vec(&whole).unwrap();
            for first_n in [0, 1, 64, 400, 1_201, 5_000] {
                let p = trace_pieces(&client, &id, max, first_n)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(p.first.spans.len(), first_n.min(whole.spans.len()));
                let got = streamed(p).await;
                assert!(
                    got == want,
                    "max {max}, first {first_n}: answers differ\n{}\n{}",
                    String::from_utf8_lossy(&got[..got.len().min(600)]),
                    String::from_utf8_lossy(&want[..want.len().min(600)])
                );
            }
        }
        assert!(
            trace_pieces(
                &client,
                &super::super::normalize_trace_id("123").unwrap(),
                10,
                10
            )
            .await
            .unwrap()
            .is_none()
        );
    }

    /// The head goes out before the rest is read; a client gone after it means the rest's
    /// query never runs; a rest that fails cuts the answer with an error (never bad JSON
    /// passed off as complete).
    #[tokio::test]
    async fn the_rest_is_read_only_when_the_body_gets_there() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let spans = |r: std::ops::Range<usize>| -> Vec<Span> {
            r.map(|i| Span {
                span_id: format!("{i}"),
                ..Default::default()
            })
            .collect()
        };
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let p = Pieces {
            first: Trace {
                span_count: 1_000,
                spans: spans(0..400),
                ..Default::default()
            },
            rest: Box::pin(async move {
                flag.store(true, Ordering::SeqCst);
                Ok(spans(400..1_000))
            }),
        };
        let mut s = Box::pin(crate::trace_stream::pieces_chunks(p));
        let mut got = 0;
        while got < 400 {
            let c = s.next().await.unwrap().unwrap();
            got += std::str::from_utf8(&c)
                .unwrap()
                .matches("\"span_id\"")
                .count();
        }
        assert_eq!(got, 400, "the first spans come as they are");
        assert!(
            !ran.load(Ordering::SeqCst),
            "rest read before the first spans went out"
        );
        drop(s);
        assert!(!ran.load(Ordering::SeqCst), "rest read for a gone client");

        let p = Pieces {
            first: Trace {
                spans: spans(0..3),
                ..Default::default()
            },
            rest: Box::pin(async { Err(anyhow::anyhow!("engine gone")) }),
        };
        let parts: Vec<_> = crate::trace_stream::pieces_chunks(p).collect().await;
        assert!(parts[0].is_ok());
        let last = parts.last().unwrap();
        assert!(
            last.as_ref()
                .is_err_and(|e| e.to_string().contains("engine gone")),
            "{parts:?}"
        );
    }

    #[test]
    fn the_light_select_takes_the_full_lists_items_casts_included() {
        let s = light_select();
        assert!(
            s.starts_with("`Timestamp`") || s.contains(" AS `Timestamp`"),
            "{s}"
        );
        for name in LIGHT_COLUMNS {
            assert!(s.contains(&format!("`{name}`")), "{name} in {s}");
        }
        assert!(!s.contains("Attributes"), "{s}");
        assert_eq!(s.matches(", ").count(), LIGHT_COLUMNS.len() - 1, "{s}");
    }
}
