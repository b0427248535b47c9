//! The shared rule state: runs and their winners, collapsed history, which replica notifies.

use std::collections::HashMap;

use super::board::{Board, RuleState};
use super::eval::Verdict;
use super::history::{Event, changes, collapse, runs, shared_board, webhook_due};

/// The notes `webhook_due` owes, as the webhook gets them.
fn due(
    latest: &HashMap<String, super::history::Run>,
    board: &Board,
    replica: &str,
    start_ms: i64,
    notified: &mut HashMap<String, i64>,
) -> Vec<serde_json::Value> {
    webhook_due(latest, board, replica, start_ms, notified)
        .into_iter()
        .map(|(s, e)| super::alerts::webhook_note(s, e))
        .collect()
}

fn ev(rule: &str, at: i64, verdict: &str, firing: u8, since: i64, replica: &str) -> Event {
    Event {
        rule: rule.into(),
        at_ms: at,
        verdict: verdict.into(),
        firing,
        since_ms: since,
        reason: format!("{verdict} at {at}"),
        subject: "shop->fraud".into(),
        requests: 20,
        error_rate: 0.25,
        p95_ms: 40.0,
        p99_ms: 40.0,
        replica: replica.into(),
    }
}

fn state(rule: &str, verdict: Verdict, firing: bool, since: i64) -> RuleState {
    RuleState {
        rule: rule.into(),
        kind: "slo",
        description: String::new(),
        labels: Default::default(),
        verdict,
        firing,
        since_ms: since,
        evaluated_at_ms: 0,
        outcome: None,
        error: None,
    }
}

/// Two replicas recorded the same change 3 ms apart: one run, the earlier row wins, and its
/// `since` is what both replicas then go on from.
fn raced() -> Vec<Event> {
    vec![
        ev("fraud", 1_000, "pass", 0, 1_000, "b"),
        ev("fraud", 5_003, "violated", 1, 5_003, "a"),
        ev("fraud", 5_000, "violated", 1, 5_000, "b"),
    ]
}

#[test]
fn racing_records_of_one_change_are_one_run_won_by_the_earliest() {
    let r = runs(raced());
    let run = &r["fraud"];
    assert_eq!(run.winner.at_ms, 5_000);
    assert_eq!(run.winner.replica, "b");
    assert_eq!(run.prev_firing, Some(false));
    // Same time: the replica name decides, the same on every replica.
    let tie = runs(vec![
        ev("x", 7, "violated", 0, 7, "z"),
        ev("x", 7, "violated", 0, 7, "m"),
    ]);
    assert_eq!(tie["x"].winner.replica, "m");
    assert_eq!(tie["x"].prev_firing, None);

    // A replica (or a restarted one) takes the winner's since; nothing to record again.
    let own = Board {
        rules: vec![state("fraud", Verdict::Pass, false, 1_000)],
        ..Default::default()
    };
    let prev = shared_board(Some(&own), &r).unwrap();
    assert_eq!(prev.rules[0].verdict, Verdict::Violated);
    assert!(prev.rules[0].firing);
    assert_eq!(prev.rules[0].since_ms, 5_000);
    let now = Board {
        evaluated_at_ms: 6_000,
        rules: vec![state("fraud", Verdict::Violated, true, 5_000)],
        ..Default::default()
    };
    assert!(changes(Some(&prev), &now, "a").is_empty());
    let cleared = Board {
        evaluated_at_ms: 9_000,
        rules: vec![state("fraud", Verdict::Pass, false, 9_000)],
        ..Default::default()
    };
    let rec = changes(Some(&prev), &cleared, "a");
    assert_eq!(rec.len(), 1);
    assert_eq!(
        (rec[0].verdict.as_str(), rec[0].firing, rec[0].at_ms),
        ("pass", 0, 9_000)
    );
    // No history yet (a fresh table): this replica's memory.
    assert_eq!(
        shared_board(Some(&own), &HashMap::new()).unwrap().rules,
        own.rules
    );
}

#[test]
fn history_shows_each_change_once_newest_first_within_the_limit() {
    let mut rows = raced();
    rows.push(ev("fraud", 9_000, "pass", 0, 9_000, "a"));
    rows.push(ev("other", 2_000, "no_data", 0, 2_000, "a"));
    rows.sort_by(|x, y| (&x.rule, x.at_ms, &x.replica).cmp(&(&y.rule, y.at_ms, &y.replica)));
    let h = collapse(rows.clone(), 10);
    let seen: Vec<(&str, i64)> = h.iter().map(|e| (e.rule.as_str(), e.at_ms)).collect();
    assert_eq!(
        seen,
        [
            ("fraud", 9_000),
            ("fraud", 5_000),
            ("fraud", 1_000),
            ("other", 2_000)
        ]
    );
    let h = collapse(rows, 2);
    let seen: Vec<(&str, i64)> = h.iter().map(|e| (e.rule.as_str(), e.at_ms)).collect();
    assert_eq!(seen, [("fraud", 9_000), ("fraud", 5_000), ("other", 2_000)]);
}

#[test]
fn only_the_winning_replica_notifies_the_webhook_and_only_once() {
    let r = runs(raced());
    let board = Board {
        rules: vec![state("fraud", Verdict::Violated, true, 5_000)],
        ..Default::default()
    };
    let mut notified = HashMap::new();
    assert!(
        due(&r, &board, "a", 0, &mut notified).is_empty(),
        "a lost the race"
    );
    let mut notified = HashMap::new();
    let notes = due(&r, &board, "b", 0, &mut notified);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["status"], "firing");
    assert_eq!(notes[0]["rule"], "fraud");
    assert_eq!(notes[0]["measured"]["subject"], "shop->fraud");
    assert!(
        notes[0]["since"]
            .as_str()
            .unwrap()
            .starts_with("1970-01-01T00:00:05")
    );
    assert!(due(&r, &board, "b", 0, &mut notified).is_empty(), "once");
    // A change of verdict that does not change firing (pass -> no_data) is not notified.
    let quiet = runs(vec![
        ev("fraud", 1, "pass", 0, 1, "b"),
        ev("fraud", 2, "no_data", 0, 2, "b"),
    ]);
    assert!(due(&quiet, &board, "b", 0, &mut HashMap::new()).is_empty());
    // Resolved.
    let resolved = runs(vec![
        ev("fraud", 1, "violated", 1, 1, "b"),
        ev("fraud", 2, "pass", 0, 2, "b"),
    ]);
    let notes = due(&resolved, &board, "b", 0, &mut HashMap::new());
    assert_eq!(notes[0]["status"], "resolved");
}
