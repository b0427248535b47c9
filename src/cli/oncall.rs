//! The on-call CLI: `orrery traces`, `orrery trace <id>`, `orrery graph` (and `orrery check`,
//! `check.rs`), against a running query service's HTTP API; `--json` prints the API's JSON for
//! scripts. It is a client of the query service, so it lives in the binary crate, not in
//! orrery-query (which it uses only for the wire model and the rules library).

use std::fmt::Write as _;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::de::DeserializeOwned;

use orrery_query::model::{Graph, Trace, TraceSearchResult};

/// Where the query service is.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// Base URL of a running query service.
    #[arg(
        long,
        env = "ORRERY_QUERY_URL",
        default_value = "http://127.0.0.1:16686"
    )]
    pub query_url: String,
    /// Bearer token, when the service runs with --api-token.
    #[arg(long, env = "ORRERY_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Find traces.
#[derive(Args, Debug, Clone)]
pub struct TracesCmd {
    #[command(flatten)]
    pub target: Target,
    #[arg(long)]
    pub service: Option<String>,
    #[arg(long)]
    pub operation: Option<String>,
    /// `key=value` attribute filter (repeatable).
    #[arg(long = "attr")]
    pub attrs: Vec<String>,
    /// Only traces with an error span.
    #[arg(long)]
    pub errors: bool,
    /// How far back to look.
    #[arg(long, default_value = "15m")]
    pub since: String,
    #[arg(long)]
    pub min_duration: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// newest, oldest, slowest or fastest.
    #[arg(long, default_value = "newest")]
    pub order: String,
}

/// Show one trace as a span tree.
#[derive(Args, Debug, Clone)]
pub struct TraceCmd {
    /// Trace id (hex).
    pub id: String,
    #[command(flatten)]
    pub target: Target,
}

/// Table of service-graph edges.
#[derive(Args, Debug, Clone)]
pub struct GraphCmd {
    #[command(flatten)]
    pub target: Target,
    #[arg(long, default_value = "5m")]
    pub since: String,
    /// Only edges touching this service (focused level).
    #[arg(long)]
    pub service: Option<String>,
}

pub(crate) async fn get_json<T: DeserializeOwned>(
    t: &Target,
    path: &str,
    query: &[(&str, String)],
) -> Result<(T, String)> {
    let url = format!("{}{}", t.query_url.trim_end_matches('/'), path);
    let mut req = reqwest::Client::new().get(&url).query(query);
    if let Some(token) = &t.api_token {
        req = req.bearer_auth(token);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("reaching the query service at {url}"))?;
    let status = resp.status();
    let body = resp.text().await.context("reading the answer")?;
    if !status.is_success() {
        let msg = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or(body.clone());
        bail!("{status}: {msg}");
    }
    let parsed =
        serde_json::from_str(&body).with_context(|| format!("unexpected answer from {url}"))?;
    Ok((parsed, body))
}

pub async fn traces(cmd: TracesCmd) -> Result<()> {
    let mut q = vec![
        ("since", cmd.since.clone()),
        ("limit", cmd.limit.to_string()),
        ("order", cmd.order.clone()),
    ];
    if let Some(s) = &cmd.service {
        q.push(("service", s.clone()));
    }
    if let Some(o) = &cmd.operation {
        q.push(("operation", o.clone()));
    }
    if let Some(d) = &cmd.min_duration {
        q.push(("min_duration", d.clone()));
    }
    if cmd.errors {
        q.push(("errors", "true".into()));
    }
    for a in &cmd.attrs {
        q.push(("attr", a.clone()));
    }
    let (r, raw): (TraceSearchResult, String) =
        get_json(&cmd.target, "/orrery/api/traces", &q).await?;
    print!(
        "{}",
        if cmd.target.json {
            raw + "\n"
        } else {
            format_traces(&r)
        }
    );
    Ok(())
}

pub async fn trace(cmd: TraceCmd) -> Result<()> {
    let path = format!("/orrery/api/traces/{}", cmd.id.trim());
    let (t, raw): (Trace, String) = get_json(&cmd.target, &path, &[]).await?;
    print!(
        "{}",
        if cmd.target.json {
            raw + "\n"
        } else {
            format_trace(&t)
        }
    );
    Ok(())
}

pub async fn graph(cmd: GraphCmd) -> Result<()> {
    let mut q = vec![("since", cmd.since.clone())];
    if let Some(s) = &cmd.service {
        q.push(("level", "focused".into()));
        q.push(("service", s.clone()));
    }
    let (g, raw): (Graph, String) = get_json(&cmd.target, "/orrery/api/graph", &q).await?;
    print!(
        "{}",
        if cmd.target.json {
            raw + "\n"
        } else {
            format_graph(&g)
        }
    );
    Ok(())
}

fn ms(us: i64) -> String {
    if us >= 1_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else {
        format!("{:.1}ms", us as f64 / 1e3)
    }
}

pub fn format_traces(r: &TraceSearchResult) -> String {
    let mut out = format!(
        "{:<32}  {:<20}  {:<28}  {:>9}  {:>5}  {:>6}\n",
        "TRACE", "ROOT SERVICE", "ROOT OPERATION", "DURATION", "SPANS", "ERRORS"
    );
    for t in &r.traces {
        let _ = writeln!(
            out,
            "{:<32}  {:<20}  {:<28}  {:>9}  {:>5}  {:>6}",
            t.trace_id,
            t.root_service,
            t.root_operation,
            ms(t.duration_us),
            t.span_count,
            t.error_count
        );
    }
    let _ = writeln!(out, "{} trace(s)", r.traces.len());
    out
}

pub fn format_trace(t: &Trace) -> String {
    let mut out = format!(
        "trace {}  {}  {} span(s), {} error(s), services: {}\n",
        t.trace_id,
        ms(t.duration_us),
        t.span_count,
        t.error_count,
        t.services.join(", ")
    );
    for s in &t.spans {
        let indent = "  ".repeat(s.depth as usize);
        let offset = s.start_us - t.start_us;
        let err = if s.status.code == "Error" {
            if s.status.message.is_empty() {
                "  ERROR".to_string()
            } else {
                format!("  ERROR: {}", s.status.message)
            }
        } else {
            String::new()
        };
        let orphan = if s.missing_parent {
            "  (parent missing)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{indent}{} {} [{}] +{} {}{err}{orphan}",
            s.service,
            s.name,
            s.kind,
            ms(offset),
            ms(s.duration_us)
        );
    }
    if t.truncated {
        let _ = writeln!(
            out,
            "TRUNCATED: the trace has more spans than the query service returns \
             (--query-max-trace-spans); shown are its {} earliest",
            t.spans.len()
        );
    }
    out
}

pub fn format_graph(g: &Graph) -> String {
    let mut out = format!(
        "{:<28}  {:<28}  {:>9}  {:>7}  {:>7}  {:>10}  {:<7}\n",
        "SOURCE", "TARGET", "RPS", "ERRORS", "ERR%", "P95", "HEALTH"
    );
    let mut edges: Vec<_> = g.edges.iter().collect();
    edges.sort_by(|a, b| {
        b.metrics
            .requests
            .cmp(&a.metrics.requests)
            .then(a.id.cmp(&b.id))
    });
    for e in edges {
        let m = &e.metrics;
        let _ = writeln!(
            out,
            "{:<28}  {:<28}  {:>9.3}  {:>7}  {:>6.1}%  {:>8.1}ms  {:<7}",
            e.source,
            e.target,
            m.rps,
            m.errors,
            m.error_rate * 100.0,
            m.p95_ms,
            format!("{:?}", e.health).to_lowercase()
        );
    }
    let q = &g.data_quality;
    let _ = writeln!(
        out,
        "{} edge(s), {} node(s); {} span(s), {} orphan, {} unmatched client, {} late",
        g.edges.len(),
        g.nodes.len(),
        q.spans,
        q.orphan_spans,
        q.unmatched_client_spans,
        q.late_spans
    );
    out
}
