//! Evaluating rules against service graphs — the `orrery_api::Graph` the graph API answers
//! (`graph::graph`), so a verdict measures exactly what the map shows. Pure: the caller fetches
//! the graph of each rule's window (and a regression's baseline window).

use std::collections::HashMap;

use orrery_api::{Edge, Graph, Metrics, Node};

use super::rules::{
    AllowedCallers, EdgeMatch, NoCycles, Regression, Rule, RuleKind, Scope, Slo, Subject,
};

pub use super::outcome::{Measured, Outcome, Verdict};

const MAX_LISTED: usize = 20;

/// The verdict of the whole run: violated beats no data beats pass.
pub fn overall(outcomes: &[Outcome]) -> Verdict {
    outcomes
        .iter()
        .map(|o| o.verdict)
        .max()
        .unwrap_or(Verdict::NoData)
}

/// The CLI's exit code for a verdict: 0 pass, 1 violated, 2 not enough data.
pub fn exit_code(v: Verdict) -> i32 {
    match v {
        Verdict::Pass => 0,
        Verdict::Violated => 1,
        Verdict::NoData => 2,
    }
}

struct Nodes<'a>(HashMap<&'a str, &'a Node>);

impl<'a> Nodes<'a> {
    fn of(g: &'a Graph) -> Self {
        Nodes(g.nodes.iter().map(|n| (n.id.as_str(), n)).collect())
    }
    fn get(&self, id: &str) -> Option<&'a Node> {
        self.0.get(id).copied()
    }
}

fn sel_matches(sel: &super::rules::Selector, nodes: &Nodes, id: &str) -> bool {
    match nodes.get(id) {
        Some(n) => sel.matches(n),
        None => sel.matches_id(id),
    }
}

/// The edges or nodes a scope names, with their metrics (region/namespace are the source
/// node's for an edge).
fn subjects<'a>(scope: &Scope, g: &'a Graph, nodes: &Nodes<'a>) -> Vec<(String, &'a Metrics)> {
    let place_ok = |id: &str| {
        let n = nodes.get(id);
        scope
            .region
            .as_ref()
            .is_none_or(|r| n.is_some_and(|n| r.matches(&n.region)))
            && scope.namespace.as_ref().is_none_or(|ns| {
                n.and_then(|n| n.namespace.as_deref())
                    .is_some_and(|v| ns.matches(v))
            })
    };
    match &scope.subject {
        Subject::Edge { source, target } => g
            .edges
            .iter()
            .filter(|e| {
                sel_matches(source, nodes, &e.source)
                    && sel_matches(target, nodes, &e.target)
                    && place_ok(&e.source)
            })
            .map(|e| (e.id.clone(), &e.metrics))
            .collect(),
        Subject::Node(sel) => g
            .nodes
            .iter()
            .filter(|n| sel.matches(n) && place_ok(&n.id))
            .map(|n| (n.id.clone(), &n.metrics))
            .collect(),
    }
}

fn pct(f: f64) -> String {
    format!("{:.2}%", f * 100.0)
}

/// What some rule kinds need besides the window's graph: a regression its baseline window's
/// graph, a canary the version split of its service, a stale-callee rule when its callees last
/// reported (and the time it is judged at). A rule whose input is missing is `no_data`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Inputs<'a> {
    pub baseline: Option<&'a Graph>,
    pub split: Option<&'a super::canary::VersionSplit>,
    pub last_seen: Option<&'a super::stale::LastSeen>,
    pub now_ms: i64,
}

/// Evaluates one rule that needs at most a baseline graph (see [`evaluate_with`]).
pub fn evaluate(rule: &Rule, current: &Graph, baseline: Option<&Graph>) -> Outcome {
    evaluate_with(
        rule,
        current,
        Inputs {
            baseline,
            ..Inputs::default()
        },
    )
}

/// Evaluates one rule on the window's graph and the extra `inputs` its kind needs.
pub fn evaluate_with(rule: &Rule, current: &Graph, inputs: Inputs) -> Outcome {
    let baseline = inputs.baseline;
    let mut o = Outcome {
        rule: rule.name.clone(),
        kind: rule.kind.as_str(),
        verdict: Verdict::Pass,
        reason: String::new(),
        measured: None,
        baseline: None,
        violating: Vec::new(),
    };
    let nodes = Nodes::of(current);
    match &rule.kind {
        RuleKind::Slo(s) => slo(s, current, &nodes, &mut o),
        RuleKind::Regression(r) => match baseline {
            Some(b) => regression(r, current, &nodes, b, &mut o),
            None => {
                o.verdict = Verdict::NoData;
                o.reason = "no baseline graph".into();
            }
        },
        RuleKind::Forbid(m) => forbid(m, current, &nodes, &mut o),
        RuleKind::Require(m) => require(m, current, &nodes, &mut o),
        RuleKind::AllowedCallers(c) => callers(c, current, &nodes, &mut o),
        RuleKind::NoCycles(c) => no_cycles(c, current, &nodes, &mut o),
        RuleKind::Canary(c) => match inputs.split {
            Some(split) => super::canary::evaluate(c, split, &mut o),
            None => {
                o.verdict = Verdict::NoData;
                o.reason = "no version split of the service".into();
            }
        },
        RuleKind::StaleCallees(st) => match inputs.last_seen {
            Some(seen) => super::stale::evaluate(st, current, seen, inputs.now_ms, &mut o),
            None => {
                o.verdict = Verdict::NoData;
                o.reason = "no last-seen times of the callees".into();
            }
        },
    }
    o
}

fn too_little(o: &mut Outcome, matched: &[(String, &Metrics)], min: u64) {
    o.verdict = Verdict::NoData;
    let most = matched.iter().max_by_key(|(_, m)| m.requests);
    o.reason = match most {
        None => "nothing in the window matches the rule's selector".into(),
        Some((id, m)) => format!(
            "not enough traffic: {} matching, busiest {id} has {} call(s) < min_requests {min}",
            matched.len(),
            m.requests
        ),
    };
    o.measured = most.map(|(id, m)| Measured::of(id, m));
}

fn slo(s: &Slo, g: &Graph, nodes: &Nodes, o: &mut Outcome) {
    let matched = subjects(&s.scope, g, nodes);
    let eligible: Vec<_> = matched
        .iter()
        .filter(|(_, m)| m.requests >= s.scope.min_requests)
        .collect();
    if eligible.is_empty() {
        return too_little(o, &matched, s.scope.min_requests);
    }
    // Each subject's worst breach as a ratio over its threshold, to pick the worst subject.
    let breach = |m: &Metrics| -> Option<(f64, String)> {
        let mut worst: Option<(f64, String)> = None;
        let mut see = |ratio: f64, why: String| {
            if ratio > 1.0 && worst.as_ref().is_none_or(|(r, _)| ratio > *r) {
                worst = Some((ratio, why));
            }
        };
        if let Some(max) = s.max_error_rate {
            let ratio = if max > 0.0 {
                m.error_rate / max
            } else if m.error_rate > 0.0 {
                f64::INFINITY
            } else {
                0.0
            };
            see(
                ratio,
                format!("error rate {} > {}", pct(m.error_rate), pct(max)),
            );
        }
        if let Some(max) = s.max_p95_ms {
            see(m.p95_ms / max, format!("p95 {:.1}ms > {max}ms", m.p95_ms));
        }
        if let Some(max) = s.max_p99_ms {
            see(m.p99_ms / max, format!("p99 {:.1}ms > {max}ms", m.p99_ms));
        }
        worst
    };
    let mut violations: Vec<(f64, String, &String, &Metrics)> = eligible
        .iter()
        .filter_map(|(id, m)| breach(m).map(|(r, why)| (r, why, id, *m)))
        .collect();
    violations.sort_by(|a, b| b.0.total_cmp(&a.0));
    if let Some((_, why, id, m)) = violations.first() {
        o.verdict = Verdict::Violated;
        o.reason = format!("{id}: {why}");
        o.measured = Some(Measured::of(id, m));
        o.violating = violations
            .iter()
            .take(MAX_LISTED)
            .map(|v| v.2.clone())
            .collect();
    } else {
        // Passing: show the subject closest to its thresholds (the busiest when none is set).
        let (id, m) = eligible
            .iter()
            .max_by(|a, b| {
                let score = |m: &Metrics| {
                    s.max_error_rate
                        .map_or(0.0, |x| if x > 0.0 { m.error_rate / x } else { 0.0 })
                        .max(s.max_p95_ms.map_or(0.0, |x| m.p95_ms / x))
                        .max(s.max_p99_ms.map_or(0.0, |x| m.p99_ms / x))
                };
                score(a.1).total_cmp(&score(b.1))
            })
            .expect("eligible is not empty");
        o.reason = format!("{} subject(s) within the SLO", eligible.len());
        o.measured = Some(Measured::of(id, m));
    }
}

fn regression(r: &Regression, g: &Graph, nodes: &Nodes, base: &Graph, o: &mut Outcome) {
    let matched = subjects(&r.scope, g, nodes);
    let base_nodes = Nodes::of(base);
    let before: HashMap<String, &Metrics> =
        subjects(&r.scope, base, &base_nodes).into_iter().collect();
    let min = r.scope.min_requests;
    let pairs: Vec<_> = matched
        .iter()
        .filter(|(_, m)| m.requests >= min)
        .filter_map(|(id, m)| {
            before
                .get(id)
                .filter(|b| b.requests >= min)
                .map(|b| (id, *m, *b))
        })
        .collect();
    if pairs.is_empty() {
        o.verdict = Verdict::NoData;
        o.reason = format!(
            "no matching subject has {min}+ calls in both the window and the baseline \
             ({} in the window, {} in the baseline)",
            matched.len(),
            before.len()
        );
        return;
    }
    let mut worst: Option<(f64, String, &String, &Metrics, &Metrics)> = None;
    let mut violating = Vec::new();
    for (id, cur, old) in &pairs {
        let mut hit: Option<(f64, String)> = None;
        if let Some(max) = r.max_error_rate_increase_points {
            let up = (cur.error_rate - old.error_rate) * 100.0;
            if up > max {
                hit = Some((
                    up / max.max(1e-9),
                    format!(
                        "error rate {} → {} (+{up:.2} points > {max})",
                        pct(old.error_rate),
                        pct(cur.error_rate)
                    ),
                ));
            }
        }
        if let Some(max) = r.max_p95_increase_percent
            && old.p95_ms > 0.0
        {
            let up = (cur.p95_ms - old.p95_ms) / old.p95_ms * 100.0;
            let ratio = up / max.max(1e-9);
            if up > max && hit.as_ref().is_none_or(|(r, _)| ratio > *r) {
                hit = Some((
                    ratio,
                    format!(
                        "p95 {:.1}ms → {:.1}ms (+{up:.0}% > {max}%)",
                        old.p95_ms, cur.p95_ms
                    ),
                ));
            }
        }
        if let Some((ratio, why)) = hit {
            violating.push((*id).clone());
            if worst.as_ref().is_none_or(|w| ratio > w.0) {
                worst = Some((ratio, why, id, cur, old));
            }
        }
    }
    if let Some((_, why, id, cur, old)) = worst {
        o.verdict = Verdict::Violated;
        o.reason = format!("{id}: {why}");
        o.measured = Some(Measured::of(id, cur));
        o.baseline = Some(Measured::of(id, old));
        violating.truncate(MAX_LISTED);
        o.violating = violating;
    } else {
        let (id, cur, old) = pairs
            .iter()
            .max_by_key(|(_, m, _)| m.requests)
            .expect("pairs is not empty");
        o.reason = format!("{} subject(s) no worse than the baseline", pairs.len());
        o.measured = Some(Measured::of(id, cur));
        o.baseline = Some(Measured::of(id, old));
    }
}

fn matching_edges<'a>(m: &EdgeMatch, g: &'a Graph, nodes: &Nodes) -> Vec<&'a Edge> {
    g.edges
        .iter()
        .filter(|e| {
            e.metrics.requests >= m.min_requests
                && sel_matches(&m.from, nodes, &e.source)
                && sel_matches(&m.to, nodes, &e.target)
        })
        .collect()
}

fn empty(g: &Graph) -> bool {
    g.edges.is_empty() && g.data_quality.spans == 0
}

fn forbid(m: &EdgeMatch, g: &Graph, nodes: &Nodes, o: &mut Outcome) {
    if empty(g) {
        o.verdict = Verdict::NoData;
        o.reason = "no traffic in the window: nothing to check".into();
        return;
    }
    let mut hits = matching_edges(m, g, nodes);
    hits.sort_by_key(|e| std::cmp::Reverse(e.metrics.requests));
    if let Some(e) = hits.first() {
        o.verdict = Verdict::Violated;
        o.reason = format!(
            "forbidden edge {} carried {} call(s){}",
            e.id,
            e.metrics.requests,
            if hits.len() > 1 {
                format!(" (and {} more forbidden edge(s))", hits.len() - 1)
            } else {
                String::new()
            }
        );
        o.measured = Some(Measured::of(&e.id, &e.metrics));
        o.violating = hits.iter().take(MAX_LISTED).map(|e| e.id.clone()).collect();
    } else {
        o.reason = format!("no forbidden edge among {} edge(s)", g.edges.len());
    }
}

fn require(m: &EdgeMatch, g: &Graph, nodes: &Nodes, o: &mut Outcome) {
    let hits = matching_edges(m, g, nodes);
    if let Some(e) = hits.iter().max_by_key(|e| e.metrics.requests) {
        o.reason = format!("{} carried {} call(s)", e.id, e.metrics.requests);
        o.measured = Some(Measured::of(&e.id, &e.metrics));
    } else if !g.nodes.iter().any(|n| m.from.matches(n)) {
        // The caller did not run at all: absence of the edge says nothing.
        o.verdict = Verdict::NoData;
        o.reason = "no node matching `from` had traffic in the window".into();
    } else {
        o.verdict = Verdict::Violated;
        o.reason = format!(
            "no edge from `from` to `to` with {}+ call(s) in the window",
            m.min_requests
        );
    }
}

fn callers(c: &AllowedCallers, g: &Graph, nodes: &Nodes, o: &mut Outcome) {
    if !g.nodes.iter().any(|n| c.service.matches(n)) {
        o.verdict = Verdict::NoData;
        o.reason = "the service had no traffic in the window".into();
        return;
    }
    let mut bad: Vec<&Edge> = g
        .edges
        .iter()
        .filter(|e| {
            e.metrics.requests >= c.min_requests
                && sel_matches(&c.service, nodes, &e.target)
                && !c.callers.iter().any(|s| sel_matches(s, nodes, &e.source))
        })
        .collect();
    bad.sort_by_key(|e| std::cmp::Reverse(e.metrics.requests));
    if let Some(e) = bad.first() {
        o.verdict = Verdict::Violated;
        o.reason = format!(
            "{} is not an allowed caller ({} call(s))",
            e.source, e.metrics.requests
        );
        o.measured = Some(Measured::of(&e.id, &e.metrics));
        o.violating = bad.iter().take(MAX_LISTED).map(|e| e.id.clone()).collect();
    } else {
        o.reason = "every caller is allowed".into();
    }
}

/// Cycles of the subgraph induced by the selected nodes (the graph's own `cycles` are over all
/// nodes: a cycle through an unselected node is not a cycle among the selected ones).
fn no_cycles(c: &NoCycles, g: &Graph, nodes: &Nodes, o: &mut Outcome) {
    if empty(g) {
        o.verdict = Verdict::NoData;
        o.reason = "no traffic in the window: nothing to check".into();
        return;
    }
    let selected = |id: &str| c.among.iter().any(|s| sel_matches(s, nodes, id));
    let mut dg = petgraph::graph::DiGraph::<&str, ()>::new();
    let mut index = HashMap::new();
    for e in g.edges.iter().filter(|e| {
        e.metrics.requests >= c.min_requests
            && e.source != e.target
            && selected(&e.source)
            && selected(&e.target)
    }) {
        let mut ix = |id: &str| {
            *index
                .entry(id.to_string())
                .or_insert_with(|| dg.add_node(""))
        };
        let (a, b) = (ix(&e.source), ix(&e.target));
        dg.add_edge(a, b, ());
    }
    let names: HashMap<_, _> = index.iter().map(|(k, v)| (*v, k.clone())).collect();
    let mut cycles: Vec<Vec<String>> = petgraph::algo::tarjan_scc(&dg)
        .into_iter()
        .filter(|scc| scc.len() > 1)
        .map(|scc| {
            let mut v: Vec<String> = scc.iter().map(|i| names[i].clone()).collect();
            v.sort();
            v
        })
        .collect();
    cycles.sort();
    if let Some(first) = cycles.first() {
        o.verdict = Verdict::Violated;
        o.reason = format!(
            "cycle among {}{}",
            first.join(", "),
            if cycles.len() > 1 {
                format!(" (and {} more cycle(s))", cycles.len() - 1)
            } else {
                String::new()
            }
        );
        o.violating = cycles
            .iter()
            .take(MAX_LISTED)
            .map(|c| c.join(" <-> "))
            .collect();
    } else {
        o.reason = "no cycle among the selected nodes".into();
    }
}
