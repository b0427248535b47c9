//! Jaeger trace search over `otel_traces` with the tag semantics of Jaeger's own stores
//! (jaegertracing/jaeger `internal/storage/v2/memory/tenant.go`, `validSpan`): one span must
//! match every filter. Tags:
//!
//! - `error=true|false`: the span's status is / is not Error (Unset counts as not an error);
//! - `span.status=ok|error|unset`, `span.kind=server|client|producer|consumer|internal`;
//! - `scope.name`, `scope.version`: the instrumentation scope;
//! - `resource.<key>`: the resource attribute `<key>` only;
//! - any other key: a span, resource, event or link attribute with that key and value.
//!
//! Values are compared as the stored strings. Every value is a bound parameter.

use anyhow::{Context, Result};
use clickhouse::{Client, Row};
use orrery_store::span::{kind, status};
use serde::Deserialize;

use crate::graph::Span as Window;

/// One search: what Jaeger's v1 `/api/traces` and v3 `query.*` parameters describe.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub service: Option<String>,
    pub operation: Option<String>,
    pub tags: Vec<(String, String)>,
    pub min_duration_ns: Option<u64>,
    pub max_duration_ns: Option<u64>,
    pub limit: usize,
}

/// A tag filter as SQL over one span row, with the parameters it binds.
#[derive(Debug, PartialEq)]
struct Cond {
    sql: String,
    params: Vec<(String, Vec<String>)>,
}

fn spellings_of_status(v: &str) -> Vec<String> {
    let code = match v.to_ascii_uppercase().as_str() {
        "OK" => 1,
        "ERROR" => 2,
        _ => 0,
    };
    let mut out = vec![status::from_otlp(code).to_string()];
    out.push(
        match code {
            1 => "STATUS_CODE_OK",
            2 => "STATUS_CODE_ERROR",
            _ => "STATUS_CODE_UNSET",
        }
        .into(),
    );
    if code == 0 {
        out.push(String::new());
    }
    out
}

fn spellings_of_kind(v: &str) -> Vec<String> {
    let code = match v.to_ascii_uppercase().as_str() {
        "INTERNAL" => 1,
        "SERVER" => 2,
        "CLIENT" => 3,
        "PRODUCER" => 4,
        "CONSUMER" => 5,
        _ => 0,
    };
    let stored = kind::from_otlp(code);
    let mut out = vec![
        stored.to_string(),
        format!("SPAN_KIND_{}", stored.to_ascii_uppercase()),
    ];
    if code == 0 {
        out.push(String::new());
    }
    out
}

/// The condition of tag `i` (`key=value`), or a message for a 400.
fn tag_cond(i: usize, key: &str, value: &str) -> Result<Cond, String> {
    let one = |name: String, v: &str| vec![(name, vec![v.to_string()])];
    let c = match key {
        "error" => {
            let want = match value.to_ascii_lowercase().as_str() {
                "true" | "1" | "t" => true,
                "false" | "0" | "f" => false,
                _ => return Err(format!("tag error={value:?}: expected true or false")),
            };
            let spellings = status::ERROR_SPELLINGS.map(String::from).to_vec();
            Cond {
                sql: format!(
                    "StatusCode {} {{t{i}:Array(String)}}",
                    if want { "IN" } else { "NOT IN" }
                ),
                params: vec![(format!("t{i}"), spellings)],
            }
        }
        "span.status" => Cond {
            sql: format!("StatusCode IN {{t{i}:Array(String)}}"),
            params: vec![(format!("t{i}"), spellings_of_status(value))],
        },
        "span.kind" => Cond {
            sql: format!("SpanKind IN {{t{i}:Array(String)}}"),
            params: vec![(format!("t{i}"), spellings_of_kind(value))],
        },
        "scope.name" => Cond {
            sql: format!("ScopeName = {{v{i}:String}}"),
            params: one(format!("v{i}"), value),
        },
        "scope.version" => Cond {
            sql: format!("ScopeVersion = {{v{i}:String}}"),
            params: one(format!("v{i}"), value),
        },
        _ => {
            if let Some(rk) = key.strip_prefix("resource.") {
                Cond {
                    sql: format!(
                        "(mapContains(ResourceAttributes, {{k{i}:String}}) AND ResourceAttributes[{{k{i}:String}}] = {{v{i}:String}})"
                    ),
                    params: vec![
                        (format!("k{i}"), vec![rk.to_string()]),
                        (format!("v{i}"), vec![value.to_string()]),
                    ],
                }
            } else {
                let m = |map: &str| {
                    format!(
                        "(mapContains({map}, {{k{i}:String}}) AND {map}[{{k{i}:String}}] = {{v{i}:String}})"
                    )
                };
                Cond {
                    sql: format!(
                        "({} OR {} OR arrayExists(a -> {}, `Events.Attributes`) OR arrayExists(a -> {}, `Links.Attributes`))",
                        m("SpanAttributes"),
                        m("ResourceAttributes"),
                        m("a"),
                        m("a"),
                    ),
                    params: vec![
                        (format!("k{i}"), vec![key.to_string()]),
                        (format!("v{i}"), vec![value.to_string()]),
                    ],
                }
            }
        }
    };
    Ok(c)
}

/// Checks the tags (for a 400 before any query runs).
pub fn check_tags(tags: &[(String, String)]) -> Result<(), String> {
    for (i, (k, v)) in tags.iter().enumerate() {
        tag_cond(i, k, v)?;
    }
    Ok(())
}

#[derive(Row, Deserialize)]
struct Hit {
    trace_id: String,
}

/// Trace ids with a span matching `q` that starts in the window, most recent first.
pub async fn search_ids(client: &Client, w: Window, q: &Query) -> Result<Vec<String>> {
    let mut sql = String::from(
        "SELECT TraceId AS trace_id FROM otel_traces
WHERE Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp < fromUnixTimestamp64Nano({hi:Int64})",
    );
    if q.service.is_some() {
        sql.push_str(" AND ServiceName = {service:String}");
    }
    if q.operation.is_some() {
        sql.push_str(" AND SpanName = {operation:String}");
    }
    if q.min_duration_ns.is_some() {
        sql.push_str(" AND Duration >= {min_d:UInt64}");
    }
    if q.max_duration_ns.is_some() {
        sql.push_str(" AND Duration <= {max_d:UInt64}");
    }
    let mut conds = Vec::new();
    for (i, (k, v)) in q.tags.iter().enumerate() {
        let c = tag_cond(i, k, v).map_err(anyhow::Error::msg)?;
        sql.push_str(" AND ");
        sql.push_str(&c.sql);
        conds.push(c);
    }
    sql.push_str(" GROUP BY TraceId ORDER BY max(Timestamp) DESC, TraceId LIMIT {limit:UInt64}");
    let mut query = client
        .query(&sql)
        .param("lo", w.lo)
        .param("hi", w.hi)
        .param("limit", q.limit as u64);
    if let Some(s) = &q.service {
        query = query.param("service", s);
    }
    if let Some(o) = &q.operation {
        query = query.param("operation", o);
    }
    if let Some(d) = q.min_duration_ns {
        query = query.param("min_d", d);
    }
    if let Some(d) = q.max_duration_ns {
        query = query.param("max_d", d);
    }
    for c in &conds {
        for (name, values) in &c.params {
            query = if name.starts_with('t') {
                query.param(name, values)
            } else {
                query.param(name, &values[0])
            };
        }
    }
    let hits: Vec<Hit> = query.fetch_all().await.context("searching traces")?;
    Ok(hits.into_iter().map(|h| h.trace_id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_tags_become_their_own_columns() {
        assert!(
            tag_cond(0, "span.kind", "server")
                .unwrap()
                .sql
                .starts_with("SpanKind IN")
        );
        assert_eq!(
            tag_cond(0, "span.kind", "internal").unwrap().params[0].1,
            vec!["Internal", "SPAN_KIND_INTERNAL"]
        );
        assert_eq!(
            tag_cond(0, "span.status", "unset").unwrap().params[0].1,
            vec!["Unset", "STATUS_CODE_UNSET", ""]
        );
        assert!(
            tag_cond(0, "error", "false")
                .unwrap()
                .sql
                .contains("NOT IN")
        );
        assert!(tag_cond(0, "error", "maybe").is_err());
        let r = tag_cond(3, "resource.host.name", "h1").unwrap();
        assert!(r.sql.contains("ResourceAttributes") && !r.sql.contains("SpanAttributes"));
        assert_eq!(r.params[0].1, vec!["host.name"]);
        let any = tag_cond(1, "customer", "1").unwrap();
        assert!(any.sql.contains("Events.Attributes") && any.sql.contains("Links.Attributes"));
        // Keys and values are parameters, never SQL text.
        let evil = tag_cond(2, "x'] OR 1=1 --", "'; DROP TABLE otel_traces").unwrap();
        assert!(!evil.sql.contains("DROP") && !evil.sql.contains("1=1"));
    }
}
