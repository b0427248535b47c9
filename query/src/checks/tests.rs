use orrery_api::{DataQuality, Edge, Graph, Metrics, Node};

use super::eval::{Verdict, evaluate, exit_code, overall};
use super::rules::{RuleKind, Selector, parse};

const GOOD: &str = r#"
rules:
  - name: checkout-payments
    description: the payment call stays fast and clean
    window: 10m
    slo:
      source: checkout
      target: payments
      max_error_rate: 1%
      max_p95: 300ms
      max_p99: 1.5s
      min_requests: 5
  - name: databases-fast
    slo:
      node: "database:*"
      region: eu-*
      max_p95: 50
  - name: frontend-no-db
    forbid: { from: frontend, to: "database:*" }
  - name: checkout-needs-payments
    require: { from: checkout, to: payments }
  - name: payments-callers
    allowed_callers: { service: payments, callers: [checkout, "region:us-*"] }
  - name: checkout-regression
    window: 15m
    regression:
      source: checkout
      max_error_rate_increase_points: 2
      max_p95_increase_percent: 50
      baseline_offset: 1d
"#;

#[test]
fn the_documented_schema_parses() {
    let set = parse(GOOD).unwrap();
    assert_eq!(set.rules.len(), 6);
    let r = &set.rules[0];
    assert_eq!(r.window.as_secs(), 600);
    let RuleKind::Slo(s) = &r.kind else {
        panic!("{r:?}")
    };
    assert_eq!(s.max_error_rate, Some(0.01));
    assert_eq!(s.max_p95_ms, Some(300.0));
    assert_eq!(s.max_p99_ms, Some(1500.0));
    assert_eq!(s.scope.min_requests, 5);
    let RuleKind::Slo(s) = &set.rules[1].kind else {
        panic!()
    };
    assert_eq!(s.max_p95_ms, Some(50.0), "a bare number is milliseconds");
    assert_eq!(set.rules[1].window.as_secs(), 300, "default window");
    let RuleKind::Regression(g) = &set.rules[5].kind else {
        panic!()
    };
    assert_eq!(g.baseline_offset.as_secs(), 86400);
    assert_eq!(
        Selector::parse("region:eu-*").unwrap(),
        Selector::Region(super::rules::Glob("eu-*".into()))
    );
}

/// Each bad file is refused with the line of the offending rule and the reason.
#[test]
fn bad_rules_are_refused_with_line_and_reason() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "rules:\n  - name: a\n    slo: { source: x, max_error_rate: 150% }\n",
            "line 2",
            "between 0 and 1",
        ),
        (
            "rules:\n  - name: a\n    slo: { source: x }\n",
            "line 2",
            "needs max_error_rate",
        ),
        (
            "rules:\n  - name: ok\n    forbid: { from: a, to: b }\n  - name: b\n    slo: { source: x, max_p95: fast }\n",
            "line 4",
            "not a latency",
        ),
        (
            "rules:\n  - name: a\n    slo: { source: x, max_p95: 10ms, max_p59: 1 }\n",
            "line 2",
            "unknown field `max_p59`",
        ),
        (
            "rules:\n  - name: a\n    window: 5 parsecs\n    forbid: { from: a, to: b }\n",
            "line 2",
            "not a duration",
        ),
        (
            "rules:\n  - name: a\n    window: 10s\n    forbid: { from: a, to: b }\n",
            "line 2",
            "between 1m and 31d",
        ),
        (
            "rules:\n  - name: a\n    forbid: { from: a, to: b }\n    require: { from: a, to: b }\n",
            "line 2",
            "exactly one of",
        ),
        (
            "rules:\n  - name: a\n    slo: { node: x, source: y, max_p95: 1 }\n",
            "line 2",
            "not both",
        ),
        (
            "rules:\n  - name: a\n    forbid: { from: \"region:\", to: b }\n",
            "line 2",
            "needs a name",
        ),
        (
            "rules:\n  - name: a\n    forbid: { from: a, to: b }\n  - name: a\n    forbid: { from: a, to: c }\n",
            "line 4",
            "duplicate rule name",
        ),
        (
            "rules:\n  - name: a\n    regression: { source: x, window: 1h }\n",
            "line 2",
            "unknown field `window`",
        ),
        (
            "rules:\n  - name: a\n    window: 1h\n    regression: { source: x, max_p95_increase_percent: 10, baseline_offset: 30m }\n",
            "line 2",
            "must be at least the window",
        ),
        ("rules: []\n", "", "no rules"),
        ("rules:\n  - name: a\n   bad indent: [\n", "line 3", ""),
        ("rulez: []\n", "", "unknown field `rulez`"),
        // Nested block lists and comments do not shift the rule's line.
        (
            "# gate\nrules:\n  - name: a\n    allowed_callers:\n      service: p\n      callers:\n        - x\n        - y\n\n  # next\n  - name: b\n    require: { from: a }\n",
            "line 11: rules[1]",
            "missing field `to`",
        ),
    ];
    for (text, line, reason) in cases {
        let err = parse(text).expect_err(text);
        assert!(
            err.contains(line) && err.contains(reason),
            "{text}\n→ {err}\n(want {line:?} and {reason:?})"
        );
    }
}

fn m(requests: u64, errors: u64, p95: f64) -> Metrics {
    Metrics {
        requests,
        errors,
        error_rate: errors as f64 / requests.max(1) as f64,
        p95_ms: p95,
        p99_ms: p95 * 1.5,
        ..Default::default()
    }
}

fn node(id: &str, region: &str) -> Node {
    Node {
        id: id.into(),
        region: region.into(),
        ..Default::default()
    }
}

fn edge(s: &str, t: &str, metrics: Metrics) -> Edge {
    Edge {
        id: format!("{s}->{t}"),
        source: s.into(),
        target: t.into(),
        metrics,
        ..Default::default()
    }
}

fn shop(pay: Metrics) -> Graph {
    Graph {
        nodes: vec![
            node("INTERNET", ""),
            node("frontend", "us-east-1"),
            node("checkout", "us-east-1"),
            node("payments", "eu-west-1"),
            Node {
                metrics: m(500, 0, 5.0),
                ..node("database:orders", "eu-west-1")
            },
        ],
        edges: vec![
            edge("INTERNET", "frontend", m(1000, 0, 40.0)),
            edge("frontend", "checkout", m(500, 0, 120.0)),
            edge("checkout", "payments", pay),
            edge("checkout", "database:orders", m(500, 0, 5.0)),
        ],
        data_quality: DataQuality {
            spans: 3000,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn verdicts(g: &Graph, base: Option<&Graph>) -> Vec<(String, Verdict)> {
    parse(GOOD)
        .unwrap()
        .rules
        .iter()
        .map(|r| {
            let o = evaluate(r, g, base);
            (o.rule, o.verdict)
        })
        .collect()
}

#[test]
fn a_healthy_shop_passes_every_rule() {
    let g = shop(m(500, 2, 200.0));
    for (rule, v) in verdicts(&g, Some(&g)) {
        assert_eq!(v, Verdict::Pass, "{rule}");
    }
}

#[test]
fn errors_latency_and_shape_violations_are_found() {
    // 3% errors on checkout->payments: the SLO fails with the measured value.
    let g = shop(m(500, 15, 200.0));
    let rules = parse(GOOD).unwrap().rules;
    let o = evaluate(&rules[0], &g, None);
    assert_eq!(o.verdict, Verdict::Violated);
    assert!(o.reason.contains("3.00% > 1.00%"), "{}", o.reason);
    assert_eq!(o.measured.unwrap().subject, "checkout->payments");
    // p99 (1.5 × p95 here) over 1.5 s.
    let o = evaluate(&rules[0], &shop(m(500, 0, 1100.0)), None);
    assert_eq!(o.verdict, Verdict::Violated, "{o:?}");

    // A database in eu with p95 over 50 ms fails the node SLO; the same in us is not selected.
    let mut g = shop(m(500, 0, 10.0));
    g.nodes[4].metrics = m(500, 0, 80.0);
    assert_eq!(evaluate(&rules[1], &g, None).verdict, Verdict::Violated);
    g.nodes[4].region = "us-east-1".into();
    assert_eq!(evaluate(&rules[1], &g, None).verdict, Verdict::NoData);

    // frontend -> database:orders is forbidden; a caller in eu is not an allowed caller.
    let mut g = shop(m(500, 0, 10.0));
    g.edges
        .push(edge("frontend", "database:orders", m(3, 0, 1.0)));
    g.edges.push(edge("payments", "payments", m(4, 0, 1.0)));
    let o = evaluate(&rules[2], &g, None);
    assert_eq!(o.verdict, Verdict::Violated);
    assert_eq!(o.violating, vec!["frontend->database:orders".to_string()]);
    let o = evaluate(&rules[4], &g, None);
    assert_eq!(o.verdict, Verdict::Violated);
    assert_eq!(o.violating, vec!["payments->payments".to_string()]);

    // The required edge is missing while checkout runs: violated; checkout silent: no data.
    let mut g = shop(m(500, 0, 10.0));
    g.edges.retain(|e| e.target != "payments");
    assert_eq!(evaluate(&rules[3], &g, None).verdict, Verdict::Violated);
    g.nodes.retain(|n| n.id != "checkout");
    assert_eq!(evaluate(&rules[3], &g, None).verdict, Verdict::NoData);
}

#[test]
fn regressions_compare_with_the_baseline() {
    let rules = parse(GOOD).unwrap().rules;
    let base = shop(m(500, 0, 100.0));
    // p95 +60% (> 50%) on checkout->payments.
    let o = evaluate(&rules[5], &shop(m(500, 0, 160.0)), Some(&base));
    assert_eq!(o.verdict, Verdict::Violated, "{o:?}");
    assert!(o.reason.contains("+60%"), "{}", o.reason);
    assert_eq!(o.baseline.unwrap().p95_ms, 100.0);
    // +3 points of errors (> 2).
    let o = evaluate(&rules[5], &shop(m(500, 15, 100.0)), Some(&base));
    assert_eq!(o.verdict, Verdict::Violated, "{o:?}");
    // +40% and +1 point: within.
    let o = evaluate(&rules[5], &shop(m(500, 5, 140.0)), Some(&base));
    assert_eq!(o.verdict, Verdict::Pass, "{o:?}");
    // No baseline traffic: not a pass.
    let o = evaluate(&rules[5], &shop(m(500, 0, 900.0)), Some(&Graph::default()));
    assert_eq!(o.verdict, Verdict::NoData);
}

#[test]
fn too_little_traffic_or_an_empty_graph_is_no_data_not_a_pass() {
    let rules = parse(GOOD).unwrap().rules;
    let o = evaluate(&rules[0], &shop(m(4, 4, 9000.0)), None);
    assert_eq!(o.verdict, Verdict::NoData);
    assert!(o.reason.contains("min_requests 5"), "{}", o.reason);
    let empty = Graph::default();
    for r in &rules {
        assert_eq!(
            evaluate(r, &empty, Some(&empty)).verdict,
            Verdict::NoData,
            "{}",
            r.name
        );
    }
    assert_eq!(exit_code(overall(&[])), 2);
}

#[test]
fn globs_match_without_blowup() {
    let g = super::rules::Glob("*a*a*a*a*a*a*a*a*b".into());
    assert!(!g.matches(&"a".repeat(10_000)));
    assert!(super::rules::Glob("database:*".into()).matches("database:orders"));
    assert!(!super::rules::Glob("database:*".into()).matches("queue:orders"));
    assert!(super::rules::Glob("*".into()).matches(""));
    assert!(super::rules::Glob("a*c".into()).matches("abbbc"));
    assert!(!super::rules::Glob("a*c".into()).matches("abbbcd"));
}

#[test]
fn the_demo_rules_file_in_the_repo_parses() {
    let set = parse(include_str!("../../../docs/examples/demo-rules.yaml")).unwrap();
    assert!(set.rules.len() >= 6);
}

#[test]
fn the_board_keeps_since_until_the_verdict_changes_and_survives_errors() {
    use super::server::fold;
    let rules = parse(GOOD).unwrap().rules;
    let one = &rules[..1];
    let every = std::time::Duration::from_secs(30);
    let bad = evaluate(&rules[0], &shop(m(500, 15, 200.0)), None);
    let good = evaluate(&rules[0], &shop(m(500, 0, 200.0)), None);
    let b1 = fold(None, one, vec![Ok(bad.clone())], 1_000, every);
    assert_eq!(b1.rules[0].verdict, Verdict::Violated);
    assert_eq!(b1.rules[0].since_ms, 1_000);
    let b2 = fold(Some(&b1), one, vec![Ok(bad)], 2_000, every);
    assert_eq!(
        (b2.rules[0].since_ms, b2.rules[0].evaluated_at_ms),
        (1_000, 2_000)
    );
    // A failed read keeps the last verdict (a storage hiccup must not "resolve" a rule).
    let b3 = fold(
        Some(&b2),
        one,
        vec![Err("engine down".into())],
        3_000,
        every,
    );
    assert_eq!(b3.rules[0].verdict, Verdict::Violated);
    assert_eq!(b3.rules[0].since_ms, 1_000);
    assert_eq!(b3.rules[0].error.as_deref(), Some("engine down"));
    let b4 = fold(Some(&b3), one, vec![Ok(good)], 4_000, every);
    assert_eq!(b4.rules[0].verdict, Verdict::Pass);
    assert_eq!(b4.rules[0].since_ms, 4_000);
    assert!(b4.rules[0].error.is_none());
    assert_eq!(b4.interval_ms, 30_000);
}

#[test]
fn cycles_among_the_selected_nodes_only() {
    let rule = |among: &str| {
        parse(&format!(
            "rules:\n  - name: c\n    no_cycles: {{ among: [{among}] }}\n"
        ))
        .unwrap()
        .rules
        .remove(0)
    };
    let mut g = shop(m(500, 0, 10.0));
    assert_eq!(evaluate(&rule("\"*\""), &g, None).verdict, Verdict::Pass);
    // payments -> frontend closes frontend -> checkout -> payments -> frontend.
    g.edges.push(edge("payments", "frontend", m(2, 0, 1.0)));
    let o = evaluate(&rule("\"*\""), &g, None);
    assert_eq!(o.verdict, Verdict::Violated, "{o:?}");
    assert!(
        o.reason.contains("checkout, frontend, payments"),
        "{}",
        o.reason
    );
    // Without checkout selected, the remaining edges form no cycle among the selection.
    let o = evaluate(&rule("frontend, payments"), &g, None);
    assert_eq!(o.verdict, Verdict::Pass, "{o:?}");
    assert_eq!(
        evaluate(&rule("\"*\""), &Graph::default(), None).verdict,
        Verdict::NoData
    );
}

#[test]
fn for_delays_firing_until_the_rule_stayed_violated() {
    use super::server::fold;
    let rules = parse(
        "rules:\n  - name: a\n    for: 2m\n    slo: { source: checkout, target: payments, max_error_rate: 1% }\n",
    )
    .unwrap()
    .rules;
    assert_eq!(rules[0].for_duration.as_secs(), 120);
    let every = std::time::Duration::from_secs(30);
    let bad = || Ok(evaluate(&rules[0], &shop(m(500, 15, 200.0)), None));
    let b1 = fold(None, &rules, vec![bad()], 0, every);
    assert!(b1.rules[0].verdict == Verdict::Violated && !b1.rules[0].firing);
    let b2 = fold(Some(&b1), &rules, vec![bad()], 119_000, every);
    assert!(!b2.rules[0].firing);
    let b3 = fold(Some(&b2), &rules, vec![bad()], 120_000, every);
    assert!(b3.rules[0].firing);
    // Clearing resets it; a new violation waits the full `for` again.
    let good = Ok(evaluate(&rules[0], &shop(m(500, 0, 200.0)), None));
    let b4 = fold(Some(&b3), &rules, vec![good], 150_000, every);
    assert!(!b4.rules[0].firing);
    let b5 = fold(Some(&b4), &rules, vec![bad()], 180_000, every);
    assert!(!b5.rules[0].firing);
    // Without `for:` a violation fires at once.
    let now = parse(GOOD).unwrap().rules;
    let b = fold(
        None,
        &now[..1],
        vec![Ok(evaluate(&now[0], &shop(m(500, 15, 1.0)), None))],
        0,
        every,
    );
    assert!(b.rules[0].firing);
    let err = parse("rules:\n  - name: a\n    for: forever\n    forbid: { from: a, to: b }\n")
        .unwrap_err();
    assert!(err.contains("line 2") && err.contains("for:"), "{err}");
}

#[test]
fn alertmanager_payload_fires_and_resolves_with_a_replica_independent_identity() {
    use super::alerts::{ALERT_NAME, payload};
    use super::server::fold;
    let rules = parse(GOOD).unwrap().rules;
    let one = &rules[..1];
    let every = std::time::Duration::from_secs(30);
    let bad = || Ok(evaluate(&rules[0], &shop(m(500, 15, 200.0)), None));
    let b1 = fold(None, one, vec![bad()], 1_700_000_000_000, every);
    let a = payload(None, &b1);
    assert_eq!(a.len(), 1);
    assert_eq!(
        a[0]["labels"],
        serde_json::json!({"alertname": ALERT_NAME, "rule": "checkout-payments", "kind": "slo"})
    );
    assert_eq!(a[0]["startsAt"], "2023-11-14T22:13:20.000Z");
    // Ends four intervals ahead: Alertmanager resolves it alone if every replica dies.
    assert_eq!(a[0]["endsAt"], "2023-11-14T22:15:20.000Z");
    assert!(
        a[0]["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("3.00% > 1.00%"),
        "{a:?}"
    );
    assert_eq!(a[0]["annotations"]["subject"], "checkout->payments");
    // A second replica that saw the violation later sends the same identity.
    let other = fold(None, one, vec![bad()], 1_700_000_030_000, every);
    assert_eq!(payload(None, &other)[0]["labels"], a[0]["labels"]);
    // Still firing: re-sent; cleared: sent once as resolved (endsAt = now), then nothing.
    let b2 = fold(Some(&b1), one, vec![bad()], 1_700_000_030_000, every);
    assert_eq!(payload(Some(&b1), &b2).len(), 1);
    let good = || Ok(evaluate(&rules[0], &shop(m(500, 0, 200.0)), None));
    let b3 = fold(Some(&b2), one, vec![good()], 1_700_000_060_000, every);
    let r = payload(Some(&b2), &b3);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["endsAt"], "2023-11-14T22:14:20.000Z");
    assert_eq!(r[0]["startsAt"], "2023-11-14T22:13:20.000Z");
    let b4 = fold(Some(&b3), one, vec![good()], 1_700_000_090_000, every);
    assert!(payload(Some(&b3), &b4).is_empty());
}

#[test]
fn rule_labels_route_alerts_and_bad_label_names_are_refused() {
    use super::alerts::payload;
    use super::server::fold;
    let rules = parse(
        "rules:\n  - name: a\n    labels: { severity: page, team: pay }\n    slo: { source: checkout, target: payments, max_error_rate: 1% }\n",
    )
    .unwrap()
    .rules;
    let b = fold(
        None,
        &rules,
        vec![Ok(evaluate(&rules[0], &shop(m(500, 15, 1.0)), None))],
        0,
        std::time::Duration::from_secs(30),
    );
    let a = payload(None, &b);
    assert_eq!(a[0]["labels"]["severity"], "page");
    assert_eq!(a[0]["labels"]["team"], "pay");
    assert_eq!(a[0]["labels"]["rule"], "a");
    for (bad, why) in [
        ("\"bad-name\": x", "not a label name"),
        ("__x: y", "not a label name"),
        ("rule: other", "set by Orrery"),
    ] {
        let err = parse(&format!(
            "rules:\n  - name: a\n    labels: {{ {bad} }}\n    forbid: {{ from: a, to: b }}\n"
        ))
        .unwrap_err();
        assert!(err.contains("line 2") && err.contains(why), "{err}");
    }
}

/// A replica whose evaluation clock reads a few ms before the shared history's `since` (another
/// replica recorded the change while this one was evaluating) keeps the rule firing; and when a
/// rule it learnt of only from the history resolves, the resolve carries the rule's own labels
/// and annotations, so Alertmanager matches it to the firing alert.
#[test]
fn a_shared_since_after_this_clock_neither_resolves_nor_loses_the_identity() {
    use super::board::{Board, RuleState};
    use super::server::fold;
    let rules = parse(
        "rules:\n  - name: a\n    description: fraud answers\n    labels: { team: risk }\n    slo: { source: checkout, target: payments, max_error_rate: 1% }\n",
    )
    .unwrap()
    .rules;
    let every = std::time::Duration::from_secs(1);
    // The shared history as a fresh replica reads it: firing since 5_001, nothing else known.
    let shared = Board {
        rules: vec![RuleState {
            rule: "a".into(),
            kind: "",
            description: String::new(),
            labels: Default::default(),
            verdict: Verdict::Violated,
            firing: true,
            since_ms: 5_001,
            evaluated_at_ms: 5_001,
            outcome: None,
            error: None,
        }],
        ..Default::default()
    };
    let bad = Ok(evaluate(&rules[0], &shop(m(500, 15, 1.0)), None));
    let b = fold(Some(&shared), &rules, vec![bad], 5_000, every);
    assert!(b.rules[0].firing, "{:?}", b.rules[0]);
    assert_eq!(
        super::alerts::payload(Some(&shared), &b)[0]["labels"]["kind"],
        "slo"
    );
    // It clears: the resolve has the rule's identity and never ends before it started.
    let good = Ok(evaluate(&rules[0], &shop(m(500, 0, 1.0)), None));
    let cleared = fold(Some(&shared), &rules, vec![good], 5_000, every);
    let sent = super::alerts::payload(Some(&shared), &cleared);
    assert_eq!(sent.len(), 1);
    let a = &sent[0];
    assert_eq!(
        a["labels"],
        serde_json::json!({"alertname": "OrreryCheckViolated", "rule": "a", "kind": "slo", "team": "risk"}),
        "{a}"
    );
    assert_eq!(a["annotations"]["description"], "fraud answers", "{a}");
    assert!(
        a["startsAt"].as_str().unwrap() <= a["endsAt"].as_str().unwrap(),
        "{a}"
    );
}
