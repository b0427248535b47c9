//! The service map's vocabulary, typed: node ids and kinds, edge ids, levels, quantiles. The
//! JSON structs keep their string fields (the wire format is unchanged); these types are the
//! one place that builds and reads those strings.

use serde::{Deserialize, Serialize};

use crate::Metrics;

/// What a node of the service map is. Spelled in JSON (`Node::kind`) as [`NodeKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeKind {
    /// An instrumented service.
    Service,
    /// `INTERNET`: where root calls come from.
    Entry,
    /// Virtual callees: calls leaving the instrumented world, named from client spans.
    Database,
    Queue,
    External,
    /// The global level's nodes.
    Region,
    /// A focused service's instances.
    Instance,
    /// Services collapsed by namespace (`group=namespace`).
    Namespace,
    /// Services collapsed by a resource attribute, a region or a name prefix
    /// (`group=attr:<key>|region|prefix`).
    Group,
}

impl NodeKind {
    pub const ALL: [NodeKind; 9] = [
        NodeKind::Service,
        NodeKind::Entry,
        NodeKind::Database,
        NodeKind::Queue,
        NodeKind::External,
        NodeKind::Region,
        NodeKind::Instance,
        NodeKind::Namespace,
        NodeKind::Group,
    ];

    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Service => "service",
            NodeKind::Entry => "entry",
            NodeKind::Database => "database",
            NodeKind::Queue => "queue",
            NodeKind::External => "external",
            NodeKind::Region => "region",
            NodeKind::Instance => "instance",
            NodeKind::Namespace => "namespace",
            NodeKind::Group => "group",
        }
    }

    /// The id prefix of this kind's nodes (`database:`), none for services and the entry.
    pub fn prefix(self) -> Option<&'static str> {
        match self {
            NodeKind::Service | NodeKind::Entry => None,
            NodeKind::Database => Some("database:"),
            NodeKind::Queue => Some("queue:"),
            NodeKind::External => Some("external:"),
            NodeKind::Region => Some("region:"),
            NodeKind::Instance => Some("instance:"),
            NodeKind::Namespace => Some("namespace:"),
            NodeKind::Group => Some("group:"),
        }
    }

    /// Virtual nodes are calls leaving the instrumented world (databases, queues, externals).
    pub fn is_virtual(self) -> bool {
        matches!(
            self,
            NodeKind::Database | NodeKind::Queue | NodeKind::External
        )
    }

    /// A kind from its JSON spelling (`None` for a spelling this build does not know).
    pub fn parse(s: &str) -> Option<NodeKind> {
        NodeKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for NodeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The id of the entry node.
pub const INTERNET: &str = "INTERNET";

/// A node id, typed: its kind and name. On the wire it is exactly the string the API has
/// always used (`checkout`, `INTERNET`, `database:pg`, `region:eu-west-1`, `instance:i-1`,
/// `namespace:shop`, `group:payments`), so `Display`/`FromStr` and serde round-trip it
/// unchanged. Any id without a known prefix is a service (service names may contain `:`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    kind: NodeKind,
    name: String,
}

impl NodeId {
    pub fn service(name: impl Into<String>) -> NodeId {
        NodeId {
            kind: NodeKind::Service,
            name: name.into(),
        }
    }

    pub fn internet() -> NodeId {
        NodeId {
            kind: NodeKind::Entry,
            name: INTERNET.to_string(),
        }
    }

    /// A node of `kind` named `name` (an entry is always `INTERNET`).
    pub fn new(kind: NodeKind, name: impl Into<String>) -> NodeId {
        match kind {
            NodeKind::Entry => NodeId::internet(),
            _ => NodeId {
                kind,
                name: name.into(),
            },
        }
    }

    /// Reads an id as the API spells it (never fails: see the type's docs).
    pub fn parse(id: &str) -> NodeId {
        if id == INTERNET {
            return NodeId::internet();
        }
        for kind in NodeKind::ALL {
            if let Some(name) = kind.prefix().and_then(|p| id.strip_prefix(p)) {
                return NodeId::new(kind, name);
            }
        }
        NodeId::service(id)
    }

    pub fn kind(&self) -> NodeKind {
        self.kind
    }

    /// The name shown for the node: the id without its kind prefix.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_virtual(&self) -> bool {
        self.kind.is_virtual()
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(p) = self.kind.prefix() {
            f.write_str(p)?;
        }
        f.write_str(&self.name)
    }
}

impl std::str::FromStr for NodeId {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(NodeId::parse(s))
    }
}

impl Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Ok(NodeId::parse(&s))
    }
}

/// An edge id: `source->target` on the wire (`Edge::id`, `WhatsWrong::edge_id`), built and
/// parsed only here.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeId {
    pub source: String,
    pub target: String,
}

impl EdgeId {
    pub const SEPARATOR: &'static str = "->";

    pub fn new(source: impl Into<String>, target: impl Into<String>) -> EdgeId {
        EdgeId {
            source: source.into(),
            target: target.into(),
        }
    }

    /// `source->target` split at the first `->`; `None` when there is none.
    pub fn parse(id: &str) -> Option<EdgeId> {
        let (a, b) = id.split_once(Self::SEPARATOR)?;
        Some(EdgeId::new(a, b))
    }

    /// Whether a string is an edge id rather than a node id (diff marks hold both).
    pub fn is_edge_id(id: &str) -> bool {
        id.contains(Self::SEPARATOR)
    }
}

impl std::fmt::Display for EdgeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{}", self.source, Self::SEPARATOR, self.target)
    }
}

impl std::str::FromStr for EdgeId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EdgeId::parse(s).ok_or_else(|| format!("{s:?} is not an edge id (source->target)"))
    }
}

/// The map's levels (`level=` of the graph API, `Graph::level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Level {
    Global,
    #[default]
    Region,
    Focused,
}

impl Level {
    pub fn as_str(&self) -> &'static str {
        match self {
            Level::Global => "global",
            Level::Region => "region",
            Level::Focused => "focused",
        }
    }

    /// A level from its spelling (`""` is the default, region).
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "global" => Some(Level::Global),
            "region" | "" => Some(Level::Region),
            "focused" => Some(Level::Focused),
            _ => None,
        }
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::parse(s).ok_or_else(|| format!("level: {s:?} is not one of global, region, focused"))
    }
}

/// `level=` of the graph API as its typed parameters read it (`query/src/params.rs`, which
/// puts the parameter's name in front of the message).
impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Level::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format_args!("{s:?} is not one of global, region, focused"))
        })
    }
}

/// Latency quantiles in ms, as `Metrics` carries them (`p50_ms`, `p95_ms`, `p99_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Quantiles {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

impl Quantiles {
    /// From p50, p95, p99 in nanoseconds (missing values are 0).
    pub fn from_ns(q: &[f64]) -> Quantiles {
        let ms = |i: usize| q.get(i).copied().unwrap_or(0.0) / 1e6;
        Quantiles {
            p50_ms: ms(0),
            p95_ms: ms(1),
            p99_ms: ms(2),
        }
    }
}

impl Metrics {
    pub fn quantiles(&self) -> Quantiles {
        Quantiles {
            p50_ms: self.p50_ms,
            p95_ms: self.p95_ms,
            p99_ms: self.p99_ms,
        }
    }

    pub fn set_quantiles(&mut self, q: Quantiles) {
        self.p50_ms = q.p50_ms;
        self.p95_ms = q.p95_ms;
        self.p99_ms = q.p99_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Edge, EdgeDetail};

    #[test]
    fn node_and_edge_ids_keep_their_wire_spelling() {
        for (id, kind, name) in [
            ("checkout", NodeKind::Service, "checkout"),
            ("INTERNET", NodeKind::Entry, "INTERNET"),
            ("database:pg", NodeKind::Database, "pg"),
            ("queue:jobs", NodeKind::Queue, "jobs"),
            (
                "external:api.stripe.com:443",
                NodeKind::External,
                "api.stripe.com:443",
            ),
            ("region:eu-west-1", NodeKind::Region, "eu-west-1"),
            ("instance:i-1", NodeKind::Instance, "i-1"),
            ("namespace:shop", NodeKind::Namespace, "shop"),
            ("group:payments", NodeKind::Group, "payments"),
            ("svc:with:colons", NodeKind::Service, "svc:with:colons"),
            ("", NodeKind::Service, ""),
        ] {
            let n: NodeId = id.parse().unwrap();
            assert_eq!((n.kind(), n.name()), (kind, name), "{id}");
            assert_eq!(n.to_string(), id);
            let json = serde_json::to_string(&n).unwrap();
            assert_eq!(json, serde_json::to_string(id).unwrap());
            assert_eq!(serde_json::from_str::<NodeId>(&json).unwrap(), n);
            assert_eq!(NodeId::new(kind, name), n);
            assert_eq!(NodeKind::parse(kind.as_str()), Some(kind));
        }
        assert!(NodeId::parse("queue:q").is_virtual() && !NodeId::parse("q").is_virtual());
        assert_eq!(NodeKind::parse("orphan"), None);

        let e = EdgeId::new("INTERNET", "database:pg");
        assert_eq!(e.to_string(), "INTERNET->database:pg");
        assert_eq!("INTERNET->database:pg".parse::<EdgeId>().unwrap(), e);
        assert!("checkout".parse::<EdgeId>().is_err());
        assert!(EdgeId::is_edge_id("a->b") && !EdgeId::is_edge_id("a"));
        let edge = Edge {
            id: "a->b".into(),
            source: "a".into(),
            target: "b".into(),
            ..Default::default()
        };
        assert_eq!(edge.edge_id().to_string(), edge.id);

        for l in [Level::Global, Level::Region, Level::Focused] {
            assert_eq!(l.as_str().parse::<Level>().unwrap(), l);
        }
        assert_eq!(Level::parse(""), Some(Level::Region));
        assert!(
            "galaxy"
                .parse::<Level>()
                .unwrap_err()
                .contains("global, region, focused")
        );

        let q = Quantiles::from_ns(&[1e6, 2.5e6]);
        assert_eq!((q.p50_ms, q.p95_ms, q.p99_ms), (1.0, 2.5, 0.0));
        let mut m = Metrics::default();
        m.set_quantiles(q);
        assert_eq!(m.quantiles(), q);
        // Metrics' JSON is unchanged: the quantiles stay three flat fields.
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["p95_ms"], 2.5);
        assert!(v.get("quantiles").is_none());
        // EdgeDetail's notice is only written when there is one.
        let d = serde_json::to_value(EdgeDetail::default()).unwrap();
        assert!(d.get("notice").is_none());
    }
}
