//! The query API's JSON shapes (`query/openapi.yaml`), one definition for the server
//! (`orrery-query`) and the UI (`orrery-web`). Readers are tolerant: every struct fills absent
//! fields with defaults, so an older or newer server still renders.

use serde::{Deserialize, Serialize};

mod vocab;
pub use vocab::{EdgeId, INTERNET, Level, NodeId, NodeKind, Quantiles};

pub mod collapse;
pub use collapse::Grouping;
pub mod live;

#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    #[default]
    Normal,
    Warning,
    Danger,
}

impl Health {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Normal => "normal",
            Health::Warning => "warning",
            Health::Danger => "danger",
        }
    }
}

/// Unknown spellings (a newer server's states) read as `normal` rather than failing the graph.
impl<'de> Deserialize<'de> for Health {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Ok(match s.as_ref() {
            "danger" => Health::Danger,
            "warning" => Health::Warning,
            _ => Health::Normal,
        })
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(default)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
    pub live: bool,
    /// A live graph that ends before now: it holds the calls that started before this
    /// instant (Unix ms), the end of the newest 10-second slot the rollup closed (5–15 s
    /// ago); newer calls are still being exported and appear at the next slot. Rates are per
    /// second up to it. Absent when the graph is read to now (docs/query.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through_ms: Option<i64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
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

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(default)]
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
    /// The service's namespace (`k8s.namespace.name`, else `service.namespace`); absent when
    /// neither is set or the node is not a service. The map groups services by it when zoomed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl Node {
    /// Virtual nodes are calls leaving the instrumented world (databases, queues, externals).
    pub fn is_virtual(&self) -> bool {
        self.node_kind().is_some_and(NodeKind::is_virtual)
    }

    /// The node's kind (`None` for a kind this build does not know, from a newer server).
    pub fn node_kind(&self) -> Option<NodeKind> {
        NodeKind::parse(&self.kind)
    }

    /// The node's id, typed.
    pub fn node_id(&self) -> NodeId {
        NodeId::parse(&self.id)
    }
}

impl Edge {
    /// The edge's id, typed (from its ends, which the id is built from).
    pub fn edge_id(&self) -> EdgeId {
        EdgeId::new(self.source.clone(), self.target.clone())
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(default)]
pub struct Edge {
    pub id: String,
    pub source: String,
    pub target: String,
    pub metrics: Metrics,
    pub health: Health,
    pub in_cycle: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(default)]
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

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(default)]
pub struct DataQuality {
    pub spans: u64,
    pub orphan_spans: u64,
    pub unmatched_client_spans: u64,
    pub late_spans: u64,
    /// Share (0.0-1.0) of the window's spans the graph is made of: rolled up, or read from
    /// spans where not rolled up yet. Below 1 while the hourly backfill has not reached old
    /// data of the window (more than `--graph-max-unrolled` of it): that part is left out.
    pub rollup_coverage: f64,
    /// The stretches of the window left out (oldest first, at most 16; older ones merged).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uncovered: Vec<TimeRange>,
}

impl Default for DataQuality {
    fn default() -> Self {
        DataQuality {
            spans: 0,
            orphan_spans: 0,
            unmatched_client_spans: 0,
            late_spans: 0,
            rollup_coverage: 1.0,
            uncovered: Vec::new(),
        }
    }
}

/// A time range `[start_ms, end_ms)` in Unix milliseconds.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(default)]
pub struct TimeRange {
    pub start_ms: i64,
    pub end_ms: i64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
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
    /// What the request's `group=` did (`collapse::Grouping`); absent without `group=`, so
    /// ungrouped answers are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grouping: Option<Grouping>,
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

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
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

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
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

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(default)]
pub struct Operation {
    pub name: String,
    pub span_kind: String,
    pub metrics: Metrics,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(default)]
pub struct Instance {
    pub id: String,
    pub region: String,
    pub metrics: Metrics,
    pub health: Health,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(default)]
pub struct NodeDetail {
    pub node: Node,
    pub window: Window,
    pub operations: Vec<Operation>,
    pub callers: Vec<Edge>,
    pub callees: Vec<Edge>,
    pub instances: Vec<Instance>,
    /// Latency of the calls the node served in the window (`bounds_ms` as in `EdgeDetail`).
    pub histogram: Histogram,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(default)]
pub struct Histogram {
    pub bounds_ms: Vec<f64>,
    pub counts: Vec<u64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
pub struct TraceRef {
    pub trace_id: String,
    pub span_id: String,
    pub operation: String,
    pub start_us: i64,
    pub duration_us: i64,
    pub error: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
pub struct Exemplars {
    pub slowest: Vec<TraceRef>,
    pub failed: Vec<TraceRef>,
    pub typical: Vec<TraceRef>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(default)]
pub struct EdgeDetail {
    pub edge: Edge,
    pub window: Window,
    pub histogram: Histogram,
    pub operations: Vec<Operation>,
    pub exemplars: Exemplars,
    /// Why operations and exemplars are missing although the edge had calls (its calls are no
    /// longer, or never were, in `orrery_span_calls`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
pub struct ServiceCount {
    pub name: String,
    pub span_count: u64,
    pub error_count: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
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

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
pub struct TraceSearchResult {
    pub traces: Vec<TraceSummary>,
    pub limit: usize,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
pub struct Status {
    pub code: String,
    pub message: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
pub struct Scope {
    pub name: String,
    pub version: String,
}

pub type Attributes = std::collections::BTreeMap<String, String>;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
pub struct Event {
    pub time_us: i64,
    pub name: String,
    pub attributes: Attributes,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
pub struct Link {
    pub trace_id: String,
    pub span_id: String,
    pub trace_state: String,
    pub attributes: Attributes,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
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

impl Span {
    pub fn is_error(&self) -> bool {
        self.status.code.eq_ignore_ascii_case("error") || self.status.code == "STATUS_CODE_ERROR"
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
pub struct Trace {
    pub trace_id: String,
    pub start_us: i64,
    pub duration_us: i64,
    pub span_count: u64,
    pub error_count: u64,
    pub services: Vec<String>,
    pub spans: Vec<Span>,
    /// The trace has more spans than the query service returns (`--query-max-trace-spans`):
    /// `spans` holds the earliest ones by start time, `span_count` counts only those.
    /// Absent in answers of older servers (read as `false`).
    pub truncated: bool,
}

/// The body of every 4xx/5xx answer.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
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
        assert_eq!(g.nodes[0].health, Health::Warning);
        assert_eq!(g.nodes[1].health, Health::Normal);
        assert!(g.nodes[1].is_virtual());
        assert!(!g.nodes[0].is_virtual());
        assert_eq!(g.data_quality.orphan_spans, 1);
        assert_eq!(g.edge("a", "b").map(|e| e.id.as_str()), Some("a->b"));
    }

    #[test]
    fn serialised_shape_is_unchanged_by_the_tolerant_reader() {
        let n = Node {
            id: "a".into(),
            health: Health::Danger,
            ..Default::default()
        };
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["health"], "danger");
        // `focused` is only written when set.
        assert!(v.get("focused").is_none());
        // `namespace` is only written when known, and read back when present.
        assert!(v.get("namespace").is_none());
        let with_ns: Node = serde_json::from_str(r#"{"id":"a","namespace":"shop"}"#).unwrap();
        assert_eq!(with_ns.namespace.as_deref(), Some("shop"));
        assert_eq!(Health::Danger.as_str(), "danger");
        for h in [Health::Normal, Health::Warning, Health::Danger] {
            let json = serde_json::to_string(&h).unwrap();
            assert_eq!(serde_json::from_str::<Health>(&json).unwrap(), h);
        }
        assert_eq!(
            serde_json::from_str::<Health>(r#""critical""#).unwrap(),
            Health::Normal
        );
    }
}
