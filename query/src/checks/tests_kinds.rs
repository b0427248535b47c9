//! Canary and stale-callee rules: parsing and judging (the reads are tested against the real
//! engine in tests/query_checks_kinds.rs).

use std::collections::HashMap;

use orrery_api::{DataQuality, Edge, Graph, Metrics, Node};

use super::canary::{Side, VersionSplit};
use super::eval::{Inputs, Verdict, evaluate_with};
use super::rules::{RuleKind, parse};
use super::stale::{LastSeen, names};

const RULES: &str = r#"
rules:
  - name: payments-canary
    window: 10m
    canary:
      service: payments
      version: 1.5.0
      max_error_rate_increase_points: 2
      max_p95_increase_percent: 50
      min_requests: 20
  - name: no-silent-callees
    window: 2m
    stale_callees: { after: 5m }
"#;

fn side(requests: u64, errors: u64, p95: f64, v: &str) -> Side {
    Side {
        requests,
        errors,
        p95_ms: p95,
        p99_ms: p95 * 2.0,
        versions: vec![v.into()],
    }
}

fn split(canary: Side, others: Side) -> VersionSplit {
    VersionSplit {
        service: "payments".into(),
        canary,
        others,
    }
}

fn judge_canary(s: &VersionSplit) -> super::eval::Outcome {
    let set = parse(RULES).unwrap();
    evaluate_with(
        &set.rules[0],
        &Graph::default(),
        Inputs {
            split: Some(s),
            ..Default::default()
        },
    )
}

#[test]
fn canary_rules_parse_and_bad_ones_are_refused_with_the_reason() {
    let set = parse(RULES).unwrap();
    let RuleKind::Canary(c) = &set.rules[0].kind else {
        panic!("{:?}", set.rules[0])
    };
    assert_eq!(c.version.as_deref(), Some("1.5.0"));
    assert_eq!(c.min_requests, 20);
    let RuleKind::StaleCallees(s) = &set.rules[1].kind else {
        panic!()
    };
    assert_eq!(s.after.as_secs(), 300);
    assert_eq!(s.known_within.as_secs(), 86400, "default: a day");
    for (text, want) in [
        (
            "canary: { service: payments, max_p95_increase_percent: 5 }",
            "say which calls",
        ),
        (
            "canary: { service: payments, version: '2' }",
            "max_error_rate_increase_points",
        ),
        (
            "canary: { service: 'pay*', version: '2', max_p95_increase_percent: 5 }",
            "exactly",
        ),
        (
            "canary: { service: p, version: '2', max_p95_increase_percent: -1 }",
            "≥ 0",
        ),
        (
            "canary: { service: p, version: '2', max_p95: 5 }",
            "unknown field",
        ),
        ("stale_callees: { after: 10s }", "between 1m and 1d"),
        (
            "stale_callees: { after: 5m, known_within: 1m }",
            "longer than `after`",
        ),
        (
            "stale_callees: { after: 5m, callers: [''] }",
            "empty selector",
        ),
    ] {
        let file = format!("rules:\n  - name: x\n    {text}\n");
        let err = parse(&file).unwrap_err();
        assert!(
            err.contains("line 2") && err.contains(want),
            "{text}: {err}"
        );
    }
}

#[test]
fn a_canary_is_judged_against_the_other_versions_with_a_margin() {
    // Same errors and latency: pass.
    let o = judge_canary(&split(
        side(50, 0, 40.0, "1.5.0"),
        side(200, 0, 40.0, "1.4.2"),
    ));
    assert_eq!(o.verdict, Verdict::Pass, "{o:?}");
    assert_eq!(o.measured.as_ref().unwrap().subject, "payments@1.5.0");
    assert_eq!(o.baseline.as_ref().unwrap().subject, "payments@1.4.2");
    // Within the margin: +1.5 points, +40 %.
    let o = judge_canary(&split(
        side(200, 3, 56.0, "1.5.0"),
        side(200, 0, 40.0, "1.4.2"),
    ));
    assert_eq!(o.verdict, Verdict::Pass, "{o:?}");
    // Errors: 25 % vs 0 %.
    let o = judge_canary(&split(
        side(40, 10, 40.0, "1.5.0"),
        side(200, 0, 40.0, "1.4.2"),
    ));
    assert_eq!(o.verdict, Verdict::Violated);
    assert!(
        o.reason.contains("error rate 25.00% vs 0.00%"),
        "{}",
        o.reason
    );
    // Latency: 3x the others' p95.
    let o = judge_canary(&split(
        side(40, 0, 120.0, "1.5.0"),
        side(200, 0, 40.0, "1.4.2"),
    ));
    assert_eq!(o.verdict, Verdict::Violated);
    assert!(o.reason.contains("p95 120.0ms vs 40.0ms"), "{}", o.reason);
    // A bad canary with too few calls is no verdict yet — not a pass, not a fail.
    let o = judge_canary(&split(
        side(19, 19, 900.0, "1.5.0"),
        side(200, 0, 40.0, "1.4.2"),
    ));
    assert_eq!(o.verdict, Verdict::NoData);
    assert!(
        o.reason.contains("canary payments@1.5.0 19"),
        "{}",
        o.reason
    );
    // No other version running: nothing to compare with.
    let o = judge_canary(&split(side(200, 0, 40.0, "1.5.0"), Side::default()));
    assert_eq!(o.verdict, Verdict::NoData);
    // Without the split (the read failed): no data.
    let set = parse(RULES).unwrap();
    let o = evaluate_with(&set.rules[0], &Graph::default(), Inputs::default());
    assert_eq!(o.verdict, Verdict::NoData);
}

fn edge(s: &str, t: &str, requests: u64) -> Edge {
    Edge {
        id: format!("{s}->{t}"),
        source: s.into(),
        target: t.into(),
        metrics: Metrics {
            requests,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn node(id: &str) -> Node {
    Node {
        id: id.into(),
        ..Default::default()
    }
}

#[test]
fn calls_to_a_service_silent_for_longer_than_after_violate() {
    let g = Graph {
        nodes: vec![
            node("payments"),
            node("external:fraud"),
            node("external:stripe"),
            node("checkout"),
        ],
        edges: vec![
            edge("checkout", "payments", 100),
            edge("payments", "external:fraud", 30),
            edge("payments", "external:stripe", 100),
        ],
        data_quality: DataQuality {
            spans: 400,
            ..Default::default()
        },
        ..Default::default()
    };
    let set = parse(RULES).unwrap();
    let RuleKind::StaleCallees(st) = &set.rules[1].kind else {
        panic!()
    };
    // Only virtual callees are asked about: a reporting service is matched, not virtual.
    assert_eq!(names(st, &g), ["fraud", "stripe"]);
    let now = 10_000_000;
    let judge = |seen: &[(&str, i64)]| {
        let seen = LastSeen {
            last_seen_ms: seen
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<HashMap<_, _>>(),
        };
        evaluate_with(
            &set.rules[1],
            &g,
            Inputs {
                last_seen: Some(&seen),
                now_ms: now,
                ..Default::default()
            },
        )
    };
    // fraud last reported 6 minutes ago, and payments still calls it.
    let o = judge(&[("fraud", now - 360_000)]);
    assert_eq!(o.verdict, Verdict::Violated, "{o:?}");
    assert!(
        o.reason
            .contains("payments->external:fraud: 30 call(s) to fraud")
            && o.reason.contains("6m"),
        "{}",
        o.reason
    );
    assert_eq!(o.violating, ["payments->external:fraud"]);
    // Reported 4 minutes ago: within `after`.
    assert_eq!(judge(&[("fraud", now - 240_000)]).verdict, Verdict::Pass);
    // Never reported (stripe is a real external API): not a service, not stale.
    assert_eq!(judge(&[]).verdict, Verdict::Pass);
    // Nothing at all in the window: no data.
    let empty = evaluate_with(
        &set.rules[1],
        &Graph::default(),
        Inputs {
            last_seen: Some(&LastSeen::default()),
            now_ms: now,
            ..Default::default()
        },
    );
    assert_eq!(empty.verdict, Verdict::NoData);
}
