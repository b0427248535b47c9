//! The service and operation lookups behind the services/operations routes of the Orrery API
//! and of the Jaeger APIs (v1 and v3): one query each, so the three APIs list the same names.

use anyhow::{Context, Result};
use clickhouse::{Client, Row};
use orrery_store::span::kind;
use serde::Deserialize;

use crate::graph::Span as Window;

/// The window the Jaeger APIs list services and operations over: all stored spans (the
/// retention bounds them), up to a day past `now` for clocks that run ahead.
pub fn catalog_window(now: i64) -> Window {
    Window {
        lo: 0,
        hi: now.saturating_add(86_400_000_000_000),
        now,
    }
}

#[derive(Row, Deserialize)]
struct Name {
    name: String,
}

#[derive(Row, Deserialize)]
struct NameKind {
    name: String,
    kind: String,
}

/// Services with spans in the window, sorted.
pub async fn services(client: &Client, w: Window) -> Result<Vec<String>> {
    let rows: Vec<Name> = client
        .query(
            "SELECT DISTINCT toString(ServiceName) AS name FROM otel_traces
             WHERE Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp < fromUnixTimestamp64Nano({hi:Int64})
             ORDER BY name",
        )
        .param("lo", w.lo)
        .param("hi", w.hi)
        .fetch_all()
        .await
        .context("listing services")?;
    Ok(rows.into_iter().map(|r| r.name).collect())
}

/// (operation, span kind in the stored current spelling) of a service, sorted; `span_kind`
/// (any case, e.g. Jaeger's `server`) keeps only that kind.
pub async fn operations(
    client: &Client,
    w: Window,
    service: &str,
    span_kind: Option<&str>,
) -> Result<Vec<(String, String)>> {
    let rows: Vec<NameKind> = client
        .query(
            "SELECT DISTINCT toString(SpanName) AS name, toString(SpanKind) AS kind FROM otel_traces
             WHERE ServiceName = {service:String}
               AND Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp < fromUnixTimestamp64Nano({hi:Int64})
             ORDER BY name, kind",
        )
        .param("service", service)
        .param("lo", w.lo)
        .param("hi", w.hi)
        .fetch_all()
        .await
        .context("listing operations")?;
    let mut out: Vec<(String, String)> = rows
        .into_iter()
        .map(|r| (r.name, kind::from_otlp(kind::to_otlp(&r.kind)).to_string()))
        .filter(|(_, k)| span_kind.is_none_or(|want| k.eq_ignore_ascii_case(want)))
        .collect();
    out.dedup();
    Ok(out)
}
