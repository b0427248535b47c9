//! Checks in the UI (issue 16): the rule states the query service evaluates (`GET
//! /orrery/api/checks`) and their history (`/orrery/api/checks/history`), turned into map
//! notices — which node and edge ids carry one — and links to the failing traces. Pure, so it
//! is unit-tested natively; the views (`ChecksView`, `NoticesPanel`) are in `checks/view.rs`.

use std::collections::{BTreeMap, BTreeSet};

use orrery_api::Graph;
use serde::Deserialize;

#[cfg(target_arch = "wasm32")]
mod view;
#[cfg(target_arch = "wasm32")]
pub use view::{ChecksView, NoticesPanel, poll_board};

/// `GET /orrery/api/checks`.
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct Board {
    /// False: the service evaluates no rules (`hint` says how to give it some).
    pub configured: bool,
    pub hint: String,
    pub interval_ms: u64,
    pub evaluated_at_ms: i64,
    pub rules: Vec<RuleState>,
}

#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct RuleState {
    pub rule: String,
    pub kind: String,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    /// `pass`, `no_data` or `violated`.
    pub verdict: String,
    pub firing: bool,
    pub since_ms: i64,
    pub evaluated_at_ms: i64,
    pub outcome: Option<Outcome>,
    pub error: Option<String>,
}

#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct Outcome {
    pub reason: String,
    pub measured: Option<Measured>,
    pub baseline: Option<Measured>,
    pub violating: Vec<String>,
}

#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct Measured {
    pub subject: String,
    pub requests: u64,
    pub error_rate: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// One state change of a rule (`/orrery/api/checks/history`, the table's column names).
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct Event {
    #[serde(rename = "At")]
    pub at_ms: i64,
    #[serde(rename = "Verdict")]
    pub verdict: String,
    #[serde(rename = "Firing")]
    pub firing: u8,
    #[serde(rename = "Reason")]
    pub reason: String,
}

#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct History {
    pub rules: BTreeMap<String, Vec<Event>>,
}

/// When a rule fired and when it cleared, from its history (newest first).
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub fired_ms: i64,
    /// `None`: still firing.
    pub cleared_ms: Option<i64>,
}

/// The firing episodes in a rule's history (newest first, as the API gives it), newest first.
pub fn episodes(events: &[Event]) -> Vec<Episode> {
    let mut out = Vec::new();
    let mut open: Option<i64> = None;
    for e in events.iter().rev() {
        match (e.firing == 1, open) {
            (true, None) => open = Some(e.at_ms),
            (false, Some(fired_ms)) => {
                out.push(Episode {
                    fired_ms,
                    cleared_ms: Some(e.at_ms),
                });
                open = None;
            }
            _ => {}
        }
    }
    if let Some(fired_ms) = open {
        out.push(Episode {
            fired_ms,
            cleared_ms: None,
        });
    }
    out.reverse();
    out
}

/// A notice on the map: a firing rule that concerns a node or an edge.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub rule: String,
    pub reason: String,
    pub since_ms: i64,
}

/// Which node ids and edge ids carry notices (what the map marks).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notices {
    pub nodes: BTreeMap<String, Vec<Notice>>,
    pub edges: BTreeMap<String, Vec<Notice>>,
}

impl Notices {
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.edges.is_empty()
    }
}

/// The nodes and edges of `graph` each firing rule is about: its violating edges (`a->b`) and
/// nodes, its cycles' nodes and the edges among them (`a <-> b <-> c`), else the subject it
/// measured. Ids not in the graph (another level, another window) are left out.
pub fn notice_targets(board: &Board, graph: &Graph) -> Notices {
    let node_ids: BTreeSet<&str> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
    let edge_ids: BTreeSet<&str> = graph.edges.iter().map(|e| e.id.as_str()).collect();
    let mut out = Notices::default();
    for s in board.rules.iter().filter(|s| s.firing) {
        let Some(o) = &s.outcome else { continue };
        let notice = Notice {
            rule: s.rule.clone(),
            reason: o.reason.clone(),
            since_ms: s.since_ms,
        };
        let mut items: Vec<&str> = o.violating.iter().map(String::as_str).collect();
        if items.is_empty()
            && let Some(m) = &o.measured
        {
            items.push(m.subject.as_str());
        }
        let (mut nodes, mut edges) = (BTreeSet::new(), BTreeSet::new());
        for item in items {
            if item.contains(" <-> ") {
                let members: BTreeSet<&str> = item.split(" <-> ").collect();
                nodes.extend(members.iter().copied());
                for e in &graph.edges {
                    if members.contains(e.source.as_str()) && members.contains(e.target.as_str()) {
                        edges.insert(e.id.as_str());
                    }
                }
            } else if edge_ids.contains(item) {
                edges.insert(item);
            } else {
                // A canary's subject is `service@version`: the notice goes on the service.
                nodes.insert(item.split('@').next().unwrap_or(item));
            }
        }
        for n in nodes.into_iter().filter(|n| node_ids.contains(n)) {
            out.nodes
                .entry(n.to_string())
                .or_default()
                .push(notice.clone());
        }
        for e in edges.into_iter().filter(|e| edge_ids.contains(e)) {
            out.edges
                .entry(e.to_string())
                .or_default()
                .push(notice.clone());
        }
    }
    out
}

/// The search page's URL for the traces behind a rule's state (from `since` to `now`, with
/// errors only when the rule is about errors): the callee of an edge subject, the service of a
/// node or canary subject. `None` when the subject is not a service (a database, the internet).
pub fn traces_link(s: &RuleState, now_ms: i64) -> Option<String> {
    let o = s.outcome.as_ref()?;
    let subject = o
        .violating
        .first()
        .filter(|v| !v.contains(" <-> "))
        .cloned()
        .or_else(|| o.measured.as_ref().map(|m| m.subject.clone()))?;
    let service = match subject.split_once("->") {
        Some((_, callee)) if !callee.contains(':') => callee,
        Some((caller, _)) => caller,
        None => subject.split('@').next().unwrap_or(&subject),
    };
    if service.is_empty() || service.contains(':') || service == "INTERNET" {
        return None;
    }
    let errors = o.reason.contains("error rate") || s.kind == "forbid";
    let start = s.since_ms.min(now_ms - 60_000).max(0);
    Some(format!(
        "?view=traces&service={}&start={start}&end={now_ms}{}",
        encode(service),
        if errors { "&errors=1" } else { "" }
    ))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The measured values of an outcome in a line (`calls 20 · errors 25.00% · p95 40.0ms`).
pub fn measured_line(m: &Measured) -> String {
    format!(
        "{} · calls {} · errors {:.2}% · p95 {:.1}ms · p99 {:.1}ms",
        m.subject,
        m.requests,
        m.error_rate * 100.0,
        m.p95_ms,
        m.p99_ms
    )
}

/// Firing rules first, then violated, no data, passing; by name within each.
pub fn ordered(board: &Board) -> Vec<&RuleState> {
    let rank = |s: &RuleState| match (s.firing, s.verdict.as_str()) {
        (true, _) => 0,
        (_, "violated") => 1,
        (_, "no_data") => 2,
        _ => 3,
    };
    let mut v: Vec<&RuleState> = board.rules.iter().collect();
    v.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.rule.cmp(&b.rule)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use orrery_api::{Edge, Node};

    fn graph() -> Graph {
        let node = |id: &str| Node {
            id: id.into(),
            ..Default::default()
        };
        let edge = |s: &str, t: &str| Edge {
            id: format!("{s}->{t}"),
            source: s.into(),
            target: t.into(),
            ..Default::default()
        };
        Graph {
            nodes: ["shop", "fraud", "payments", "a", "b", "database:orders"]
                .map(node)
                .to_vec(),
            edges: vec![
                edge("shop", "fraud"),
                edge("shop", "payments"),
                edge("a", "b"),
                edge("b", "a"),
                edge("shop", "database:orders"),
            ],
            ..Default::default()
        }
    }

    fn firing(
        rule: &str,
        kind: &str,
        reason: &str,
        violating: &[&str],
        subject: &str,
    ) -> RuleState {
        RuleState {
            rule: rule.into(),
            kind: kind.into(),
            verdict: "violated".into(),
            firing: true,
            since_ms: 1_000_000,
            outcome: Some(Outcome {
                reason: reason.into(),
                violating: violating.iter().map(|s| s.to_string()).collect(),
                measured: Some(Measured {
                    subject: subject.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn notices_land_on_the_violating_edges_nodes_cycles_and_canaries() {
        let mut quiet = firing("quiet", "slo", "x", &["shop->payments"], "shop->payments");
        quiet.firing = false;
        let board = Board {
            rules: vec![
                firing(
                    "fraud-slo",
                    "slo",
                    "shop->fraud: error rate 25.00% > 1.00%",
                    &["shop->fraud"],
                    "shop->fraud",
                ),
                firing("loops", "no_cycles", "cycle among a, b", &["a <-> b"], ""),
                firing(
                    "pay-canary",
                    "canary",
                    "canary payments@1.5.0: …",
                    &[],
                    "payments@1.5.0",
                ),
                firing(
                    "gone",
                    "forbid",
                    "x",
                    &["elsewhere->nowhere"],
                    "elsewhere->nowhere",
                ),
                quiet,
            ],
            ..Default::default()
        };
        let n = notice_targets(&board, &graph());
        assert_eq!(
            n.edges.keys().collect::<Vec<_>>(),
            ["a->b", "b->a", "shop->fraud"]
        );
        assert_eq!(n.nodes.keys().collect::<Vec<_>>(), ["a", "b", "payments"]);
        assert_eq!(n.edges["shop->fraud"][0].rule, "fraud-slo");
        assert_eq!(n.edges["shop->fraud"][0].since_ms, 1_000_000);
        assert!(notice_targets(&Board::default(), &graph()).is_empty());
    }

    #[test]
    fn the_failing_traces_link_names_the_callee_the_window_and_errors() {
        let s = firing(
            "f",
            "slo",
            "shop->fraud: error rate 25.00% > 1.00%",
            &["shop->fraud"],
            "",
        );
        assert_eq!(
            traces_link(&s, 2_000_000).unwrap(),
            "?view=traces&service=fraud&start=1000000&end=2000000&errors=1"
        );
        let slow = firing(
            "p",
            "slo",
            "shop->database:orders: p95 900ms > 50ms",
            &["shop->database:orders"],
            "",
        );
        assert_eq!(
            traces_link(&slow, 2_000_000).unwrap(),
            "?view=traces&service=shop&start=1000000&end=2000000"
        );
        let canary = firing("c", "canary", "p95", &[], "pay ments@1.5.0");
        assert!(
            traces_link(&canary, 2_000_000)
                .unwrap()
                .contains("service=pay%20ments&")
        );
        let internet = firing("i", "slo", "x", &[], "INTERNET");
        assert_eq!(traces_link(&internet, 2_000_000), None);
    }

    #[test]
    fn episodes_pair_each_firing_with_its_clearing() {
        let ev = |at: i64, verdict: &str, firing: u8| Event {
            at_ms: at,
            verdict: verdict.into(),
            firing,
            reason: String::new(),
        };
        // Newest first: cleared at 50, fired at 30 (violated since 20), fired at 5, cleared 10.
        let h = [
            ev(60, "pass", 0),
            ev(50, "pass", 0),
            ev(30, "violated", 1),
            ev(20, "violated", 0),
            ev(10, "pass", 0),
            ev(5, "violated", 1),
        ];
        assert_eq!(
            episodes(&h),
            [
                Episode {
                    fired_ms: 30,
                    cleared_ms: Some(50)
                },
                Episode {
                    fired_ms: 5,
                    cleared_ms: Some(10)
                },
            ]
        );
        assert_eq!(
            episodes(&[ev(9, "violated", 1)]),
            [Episode {
                fired_ms: 9,
                cleared_ms: None
            }]
        );
    }

    #[test]
    fn firing_rules_are_listed_first() {
        let mut pass = firing("a-pass", "slo", "", &[], "");
        pass.firing = false;
        pass.verdict = "pass".into();
        let board = Board {
            rules: vec![pass, firing("z-fire", "slo", "", &[], "")],
            ..Default::default()
        };
        let names: Vec<&str> = ordered(&board).iter().map(|s| s.rule.as_str()).collect();
        assert_eq!(names, ["z-fire", "a-pass"]);
    }
}
