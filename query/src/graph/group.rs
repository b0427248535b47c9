//! Server-side grouping of a service map (`group=namespace`, `group=attr:<key>`,
//! `group=region`, `group=prefix`, `group=auto`): services sharing a namespace (or a value of
//! a kept resource attribute, a region, a name prefix) collapse into one node, and edges are merged between the groups — by
//! `orrery_api::collapse`, the one collapse the browser uses too. Quantiles of a group node or
//! merged edge are read off the merged latency histograms of its members ([`Exact`]) — the
//! same estimator as every other node and edge — not approximated from the members'
//! quantiles.
//!
//! `group=auto` is the namespace zoom decided here, from the ungrouped map: namespaces
//! collapse only when the map has more than `collapse::LEGIBLE_NODES` nodes and more than one
//! namespace (`collapse::auto_collapses`), so a legible region is never hidden and the browser
//! need not fetch the ungrouped map first. The answer's `grouping` says what was done.
//!
//! Services listed in `expand` stay as they are (zoom, not hiding), and so do services
//! without a value.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use clickhouse::{Client, Row};
use orrery_store::latency::Histogram;
use serde::Deserialize;

use orrery_api::collapse::{self, Grouping, Merge, NodeGroup};

use super::{NodeKind, Span, health, metrics};
use crate::GraphArgs;
use crate::model::{Edge, Graph, Health, Metrics, Node};

/// Most names `expand` may list.
pub const MAX_EXPAND: usize = 1000;

/// What services are grouped by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// `k8s.namespace.name`, else `service.namespace` (the node's `namespace` field); group
    /// nodes are `namespace:<name>` of kind `namespace`.
    Namespace,
    /// A resource attribute kept in `orrery_span_calls` (`CALL_RESOURCE_KEYS`); group nodes
    /// are `group:<value>` of kind `group`.
    Attr(String),
    /// What each node carries (region, name prefix): `group:<value>` nodes named with their
    /// member count; a group of one service stays that service.
    Node(NodeGroup),
}

impl GroupBy {
    /// The kind of this grouping's nodes.
    pub fn node_kind(&self) -> NodeKind {
        match self {
            GroupBy::Namespace => NodeKind::Namespace,
            GroupBy::Attr(_) | GroupBy::Node(_) => NodeKind::Group,
        }
    }
}

impl std::fmt::Display for GroupBy {
    /// The `group=` spelling (`namespace`, `attr:<key>`, `region`, `prefix`), as the answer's
    /// `grouping.by`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupBy::Namespace => f.write_str("namespace"),
            GroupBy::Attr(key) => write!(f, "attr:{key}"),
            GroupBy::Node(by) => f.write_str(by.as_str()),
        }
    }
}

/// A grouping request: by what, whether only when crowded, and which groups stay expanded.
/// The default groups nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Group {
    pub by: Option<GroupBy>,
    /// `group=auto`: namespaces, only where `collapse::auto_collapses` says the map is crowded.
    pub auto: bool,
    pub expand: BTreeSet<String>,
}

/// `group` and `expand` parameters: `group=namespace`, `group=attr:<key>` (a key listed in
/// `CALL_RESOURCE_KEYS`), `group=region`, `group=prefix` or `group=auto` (namespaces when
/// crowded); `expand=<a>,<b>` names groups to keep as services.
pub fn parse(group: Option<&str>, expand: Option<&str>) -> Result<Group, String> {
    let value = group.map(str::trim).unwrap_or("");
    let by = match value {
        "" | "none" => None,
        "namespace" | "auto" => Some(GroupBy::Namespace),
        other if NodeGroup::parse(other).is_some() => NodeGroup::parse(other).map(GroupBy::Node),
        other => match other.strip_prefix("attr:") {
            Some(key) if orrery_store::schema::CALL_RESOURCE_KEYS.contains(&key) => {
                Some(GroupBy::Attr(key.to_string()))
            }
            Some(key) => {
                return Err(format!(
                    "group: attr:{key:?} is not a resource attribute the service graph keeps; \
                     use one of {}",
                    orrery_store::schema::CALL_RESOURCE_KEYS.join(", ")
                ));
            }
            None => {
                return Err(format!(
                    "group: {other:?} is not one of auto, namespace, none, region, prefix, \
                     attr:<resource attribute>"
                ));
            }
        },
    };
    let expand: BTreeSet<String> = expand
        .unwrap_or("")
        .split(',')
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect();
    if expand.len() > MAX_EXPAND {
        return Err(format!(
            "expand: {} names; at most {MAX_EXPAND}: expand fewer groups",
            expand.len()
        ));
    }
    if by.is_none() && !expand.is_empty() {
        return Err(
            "expand needs group=auto, group=namespace, group=region, group=prefix or \
             group=attr:<key>"
                .into(),
        );
    }
    Ok(Group {
        by,
        auto: value == "auto",
        expand,
    })
}

/// Grouping applies to the service map of a region (or all regions), not to the region map
/// or a focused service's neighbourhood. `group=auto` is accepted at every level (a client
/// may send it with every request) and groups only at the region level.
pub fn check_level(level: super::Level, group: &Group) -> Result<(), String> {
    if group.by.is_some() && !group.auto && level != super::Level::Region {
        return Err(format!(
            "group applies to level=region, not level={}",
            level.as_str()
        ));
    }
    Ok(())
}

#[derive(Row, Deserialize)]
struct ValueRow {
    service: String,
    value: String,
}

/// How far back from the window's end services' attribute values are looked up (deployment
/// facts rarely change; the last hour keeps the read small), as for namespaces.
const LOOKBACK_NS: i64 = 3_600_000_000_000;

/// Each service's value of resource attribute `key` (kept in `orrery_span_calls.Resource`)
/// from its spans in the last hour (at most) of `w`; services without one are left out. When
/// spans disagree the latest wins.
pub async fn attribute_values(
    client: &Client,
    w: Span,
    key: &str,
) -> Result<BTreeMap<String, String>> {
    let rows: Vec<ValueRow> = client
        .query(
            "SELECT toString(ServiceName) AS service, argMax(v, Timestamp) AS value
FROM (
    SELECT ServiceName, Timestamp, Resource[{key:String}] AS v
    FROM orrery_span_calls
    WHERE Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp < fromUnixTimestamp64Nano({hi:Int64})
)
WHERE v != ''
GROUP BY ServiceName",
        )
        .param("key", key)
        .param("lo", w.lo.max(w.hi - LOOKBACK_NS))
        .param("hi", w.hi)
        .fetch_all()
        .await
        .context("reading services' resource attribute for grouping")?;
    Ok(rows.into_iter().map(|r| (r.service, r.value)).collect())
}

/// What a node's or edge's metrics were computed from: its latency histogram and duration sum.
#[derive(Debug, Clone, Default)]
pub struct Part {
    pub latency: Histogram,
    pub duration_sum_ns: u64,
}

/// The parts of a graph's nodes (by id) and edges (by source and target).
#[derive(Debug, Default)]
pub struct Latencies {
    pub nodes: BTreeMap<String, Part>,
    pub edges: BTreeMap<(String, String), Part>,
}

/// Summed traffic of a group's members.
#[derive(Default)]
struct Sum {
    requests: u64,
    errors: u64,
    duration_sum_ns: u64,
    latency: Histogram,
}

impl Sum {
    fn add(&mut self, m: &crate::model::Metrics, part: Option<&Part>) {
        self.requests += m.requests;
        self.errors += m.errors;
        if let Some(p) = part {
            self.duration_sum_ns += p.duration_sum_ns;
            self.latency.merge(&p.latency);
        }
    }
}

/// The server's merge: counts and durations add, quantiles come from the merged histograms,
/// health is judged on the result like any node's or edge's.
struct Exact<'a> {
    s: &'a GraphArgs,
    lat: &'a Latencies,
    seconds: f64,
    /// Node groups (region, prefix) are named with their member count.
    counted: bool,
}

impl Exact<'_> {
    fn of(&self, sum: Sum) -> (Metrics, Health) {
        let m = metrics(
            sum.requests,
            sum.errors,
            sum.duration_sum_ns,
            &sum.latency.p50_p95_p99(),
            self.seconds,
        );
        (m.clone(), health(self.s, &m))
    }
}

impl Merge for Exact<'_> {
    fn nodes(&self, members: &[Node]) -> (Metrics, Health) {
        let mut sum = Sum::default();
        for n in members {
            sum.add(&n.metrics, self.lat.nodes.get(&n.id));
        }
        self.of(sum)
    }
    fn edges(&self, parallel: &[Edge]) -> (Metrics, Health) {
        let mut sum = Sum::default();
        for e in parallel {
            let key = (e.source.clone(), e.target.clone());
            sum.add(&e.metrics, self.lat.edges.get(&key));
        }
        self.of(sum)
    }
    fn finish(&self, group: &mut Node, members: &[Node]) {
        if self.counted {
            NodeGroup::finish(group, members);
        }
    }
}

/// Collapses `g`'s services by `group` (`values`: service → its group value) and says what
/// it did in `g.grouping`; with `group=auto`, only when the ungrouped map is crowded. Nodes
/// and edges that do not change keep their JSON exactly.
pub fn apply(
    s: &GraphArgs,
    g: &mut Graph,
    group: &Group,
    values: &BTreeMap<String, String>,
    lat: &Latencies,
    seconds: f64,
) {
    let Some(by) = &group.by else { return };
    if g.level != super::Level::Region.as_str() {
        return; // group=auto at another level
    }
    let ungrouped = g.nodes.len();
    let value = |n: &Node| values.get(&n.id).map(String::as_str);
    let crowded = || {
        let distinct: BTreeSet<&str> = g
            .nodes
            .iter()
            .filter(|n| n.node_kind() == Some(NodeKind::Service))
            .filter_map(&value)
            .collect();
        collapse::auto_collapses(ungrouped, distinct.len())
    };
    let to = match by {
        _ if group.auto && !crowded() => BTreeMap::new(),
        GroupBy::Node(node_group) => node_group.assign(g, &group.expand),
        _ => collapse::assign(g, by.node_kind(), &group.expand, value),
    };
    let collapsed: BTreeSet<String> = to.values().map(|id| id.name().to_string()).collect();
    let counted = matches!(by, GroupBy::Node(_));
    collapse::collapse(
        g,
        &to,
        &Exact {
            s,
            lat,
            seconds,
            counted,
        },
    );
    g.grouping = Some(Grouping {
        by: by.to_string(),
        auto: group.auto,
        collapsed: collapsed.into_iter().collect(),
        nodes: ungrouped,
    });
}

#[cfg(test)]
mod tests;
