//! The API's JSON shapes (see `query/openapi.yaml`).

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Normal,
    Warning,
    Danger,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
    pub live: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    pub requests: u64,
    pub errors: u64,
    pub rps: f64,
    pub error_rate: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub avg_ms: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Node {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub region: String,
    pub metrics: Metrics,
    pub health: Health,
    pub rank: u32,
    pub in_cycle: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub focused: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Edge {
    pub id: String,
    pub source: String,
    pub target: String,
    pub metrics: Metrics,
    pub health: Health,
    pub in_cycle: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct WhatsWrong {
    pub edge_id: String,
    pub source: String,
    pub target: String,
    pub score: f64,
    pub reason: String,
    pub health: Health,
    pub error_rate: f64,
    pub previous_error_rate: f64,
    pub p95_ms: f64,
    pub previous_p95_ms: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct DataQuality {
    pub spans: u64,
    pub orphan_spans: u64,
    pub unmatched_client_spans: u64,
    pub late_spans: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
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

impl Graph {
    pub fn edge(&self, source: &str, target: &str) -> Option<&Edge> {
        self.edges
            .iter()
            .find(|e| e.source == source && e.target == target)
    }
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
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

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct GraphDiff {
    pub base: Window,
    pub current: Window,
    pub added_nodes: Vec<Node>,
    pub removed_nodes: Vec<Node>,
    pub added_edges: Vec<Edge>,
    pub removed_edges: Vec<Edge>,
    pub changed_edges: Vec<EdgeChange>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Operation {
    pub name: String,
    pub span_kind: String,
    pub metrics: Metrics,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Instance {
    pub id: String,
    pub region: String,
    pub metrics: Metrics,
    pub health: Health,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct NodeDetail {
    pub node: Node,
    pub window: Window,
    pub operations: Vec<Operation>,
    pub callers: Vec<Edge>,
    pub callees: Vec<Edge>,
    pub instances: Vec<Instance>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Histogram {
    pub bounds_ms: Vec<f64>,
    pub counts: Vec<u64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TraceRef {
    pub trace_id: String,
    pub span_id: String,
    pub operation: String,
    pub start_us: i64,
    pub duration_us: i64,
    pub error: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Exemplars {
    pub slowest: Vec<TraceRef>,
    pub failed: Vec<TraceRef>,
    pub typical: Vec<TraceRef>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct EdgeDetail {
    pub edge: Edge,
    pub window: Window,
    pub histogram: Histogram,
    pub operations: Vec<Operation>,
    pub exemplars: Exemplars,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ServiceCount {
    pub name: String,
    pub span_count: u64,
    pub error_count: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TraceSummary {
    pub trace_id: String,
    pub root_service: String,
    pub root_operation: String,
    pub start_us: i64,
    pub duration_us: i64,
    pub span_count: u64,
    pub error_count: u64,
    pub services: Vec<ServiceCount>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TraceSearchResult {
    pub traces: Vec<TraceSummary>,
    pub limit: usize,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    pub code: String,
    pub message: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    pub name: String,
    pub version: String,
}

pub type Attributes = std::collections::BTreeMap<String, String>;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    pub time_us: i64,
    pub name: String,
    pub attributes: Attributes,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Link {
    pub trace_id: String,
    pub span_id: String,
    pub trace_state: String,
    pub attributes: Attributes,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Span {
    pub span_id: String,
    pub parent_span_id: String,
    pub trace_state: String,
    pub name: String,
    pub kind: String,
    pub service: String,
    pub start_us: i64,
    pub duration_us: i64,
    pub status: Status,
    pub depth: u32,
    pub missing_parent: bool,
    pub resource: Attributes,
    pub attributes: Attributes,
    pub scope: Scope,
    pub events: Vec<Event>,
    pub links: Vec<Link>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub trace_id: String,
    pub start_us: i64,
    pub duration_us: i64,
    pub span_count: u64,
    pub error_count: u64,
    pub services: Vec<String>,
    pub spans: Vec<Span>,
}
