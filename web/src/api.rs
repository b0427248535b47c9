//! The query API's JSON shapes (query/openapi.yaml), as the UI reads them. Every field the UI can
//! live without has a default so that an older or newer server still renders.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metrics {
    pub requests: i64,
    pub errors: i64,
    pub rps: f64,
    pub error_rate: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
    pub live: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Node {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub region: String,
    pub metrics: Metrics,
    pub health: String,
    pub rank: u32,
    pub in_cycle: bool,
    pub focused: bool,
}

impl Node {
    /// Virtual nodes are calls leaving the instrumented world (databases, queues, externals).
    pub fn is_virtual(&self) -> bool {
        matches!(self.kind.as_str(), "database" | "queue" | "external")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Edge {
    pub id: String,
    pub source: String,
    pub target: String,
    pub metrics: Metrics,
    pub health: String,
    pub in_cycle: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WhatsWrong {
    pub edge_id: String,
    pub source: String,
    pub target: String,
    pub score: f64,
    pub reason: String,
    pub health: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DataQuality {
    pub spans: i64,
    pub orphan_spans: i64,
    pub unmatched_client_spans: i64,
    pub late_spans: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Graph {
    pub level: String,
    pub name: String,
    pub window: Window,
    pub generated_at_ms: i64,
    pub max_volume: f64,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    pub cycles: Vec<Vec<String>>,
    pub whats_wrong: Vec<WhatsWrong>,
    pub data_quality: DataQuality,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EdgeChange {
    pub id: String,
    pub source: String,
    pub target: String,
    pub base: Metrics,
    pub current: Metrics,
    pub rps_delta: f64,
    pub error_rate_delta: f64,
    pub p95_ms_delta: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GraphDiff {
    pub base: Window,
    pub current: Window,
    pub added_nodes: Vec<Node>,
    pub removed_nodes: Vec<Node>,
    pub added_edges: Vec<Edge>,
    pub removed_edges: Vec<Edge>,
    pub changed_edges: Vec<EdgeChange>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Operation {
    pub name: String,
    pub span_kind: String,
    pub metrics: Metrics,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Instance {
    pub id: String,
    pub region: String,
    pub metrics: Metrics,
    pub health: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeDetail {
    pub node: Node,
    pub window: Window,
    pub operations: Vec<Operation>,
    pub callers: Vec<Edge>,
    pub callees: Vec<Edge>,
    pub instances: Vec<Instance>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TraceRef {
    pub trace_id: String,
    pub span_id: String,
    pub operation: String,
    pub start_us: i64,
    pub duration_us: i64,
    pub error: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Exemplars {
    pub slowest: Vec<TraceRef>,
    pub failed: Vec<TraceRef>,
    pub typical: Vec<TraceRef>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Histogram {
    pub bounds_ms: Vec<f64>,
    pub counts: Vec<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EdgeDetail {
    pub edge: Edge,
    pub window: Window,
    pub histogram: Histogram,
    pub operations: Vec<Operation>,
    pub exemplars: Exemplars,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceCount {
    pub name: String,
    pub span_count: i64,
    pub error_count: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TraceSummary {
    pub trace_id: String,
    pub root_service: String,
    pub root_operation: String,
    pub start_us: i64,
    pub duration_us: i64,
    pub span_count: i64,
    pub error_count: i64,
    pub services: Vec<ServiceCount>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TraceList {
    pub traces: Vec<TraceSummary>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpanEvent {
    pub time_us: i64,
    pub name: String,
    pub attributes: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpanLink {
    pub trace_id: String,
    pub span_id: String,
    pub attributes: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Span {
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub kind: String,
    pub service: String,
    pub start_us: i64,
    pub duration_us: i64,
    pub status: Status,
    pub depth: u32,
    pub missing_parent: bool,
    pub resource: std::collections::BTreeMap<String, String>,
    pub attributes: std::collections::BTreeMap<String, String>,
    pub events: Vec<SpanEvent>,
    pub links: Vec<SpanLink>,
}

impl Span {
    pub fn is_error(&self) -> bool {
        self.status.code.eq_ignore_ascii_case("error") || self.status.code == "STATUS_CODE_ERROR"
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Trace {
    pub trace_id: String,
    pub start_us: i64,
    pub duration_us: i64,
    pub span_count: i64,
    pub error_count: i64,
    pub services: Vec<String>,
    pub spans: Vec<Span>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiError {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_parses_the_documented_shape_and_tolerates_missing_fields() {
        let g: Graph = serde_json::from_str(
            r#"{"level":"region","name":"all","window":{"start_ms":1,"end_ms":2,"live":true},
            "max_volume":12.5,"nodes":[{"id":"checkout","name":"checkout","kind":"service",
            "region":"eu","metrics":{"requests":10,"errors":1,"rps":2.0,"error_rate":0.1,
            "p50_ms":1,"p95_ms":2,"p99_ms":3},"health":"warning","rank":1,"in_cycle":false},
            {"id":"database:pg","kind":"database"}],
            "edges":[{"id":"a->b","source":"a","target":"b"}],"cycles":[],"whats_wrong":[],
            "data_quality":{"spans":5,"orphan_spans":1,"unmatched_client_spans":0,"late_spans":0},
            "future_field":1}"#,
        )
        .unwrap();
        assert_eq!(g.nodes.len(), 2);
        assert_eq!(g.nodes[0].metrics.error_rate, 0.1);
        assert!(g.nodes[1].is_virtual());
        assert!(!g.nodes[0].is_virtual());
        assert_eq!(g.data_quality.orphan_spans, 1);
    }
}
