//! Rule state and history in ClickHouse (`orrery_check_events`, schema: the store's
//! `schema/checks.rs`): one row per change of a rule's verdict or firing state.
//!
//! Before folding an evaluation in, the evaluation loop reads each rule's latest *run* — its
//! newest rows with the same verdict and firing — the state every replica shares: replicas
//! agree on when a rule became violated (and so on `for:` and on the alert's `startsAt`), a
//! restarted replica continues instead of starting over, and a change another replica has
//! already recorded is not recorded again. Two replicas that see the same change within the
//! same few milliseconds both record it; the run's earliest row (by time, then replica name)
//! is its *winner*: its `Since` is the shared one and readers show the run once. The plain
//! webhook is notified by the winner only: a replica that recorded a change reads the history
//! again and notifies if its row won (a later evaluation catches up if that read failed). Two
//! replicas can both believe they won only if one records its earlier-timed row after the
//! other's re-read — both then notify: at least once, normally exactly once. When ClickHouse
//! cannot be read, the replica goes on from its own memory and says so in the log.

use std::collections::HashMap;

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

use super::board::{Board, RuleState};
use super::eval::Verdict;

/// Rows of history a request may ask for, per rule.
pub const MAX_HISTORY: u64 = 500;

/// One state change of a rule.
#[derive(Row, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Event {
    #[serde(rename = "Rule")]
    pub rule: String,
    /// When the change was seen (Unix ms).
    #[serde(rename = "At")]
    pub at_ms: i64,
    /// `pass`, `no_data` or `violated`.
    #[serde(rename = "Verdict")]
    pub verdict: String,
    #[serde(rename = "Firing")]
    pub firing: u8,
    /// Since when the verdict holds (Unix ms): `at_ms` unless only `firing` changed.
    #[serde(rename = "Since")]
    pub since_ms: i64,
    #[serde(rename = "Reason")]
    pub reason: String,
    #[serde(rename = "Subject")]
    pub subject: String,
    #[serde(rename = "Requests")]
    pub requests: u64,
    #[serde(rename = "ErrorRate")]
    pub error_rate: f64,
    #[serde(rename = "P95Ms")]
    pub p95_ms: f64,
    #[serde(rename = "P99Ms")]
    pub p99_ms: f64,
    /// The replica that recorded it (host name, else process id).
    #[serde(rename = "Replica")]
    pub replica: String,
}

fn verdict_of(s: &str) -> Verdict {
    match s {
        "pass" => Verdict::Pass,
        "violated" => Verdict::Violated,
        _ => Verdict::NoData,
    }
}

/// The name this replica records its rows under: unique per evaluation loop (host name,
/// process id and a random part), since replicas are told apart by it.
pub fn replica_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "orrery".into());
    let nonce: u32 = rand::random();
    format!("{host}-{}-{nonce:08x}", std::process::id())
}

/// A rule's latest run of rows with the same verdict and firing.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Its earliest row (time, then replica name): the one every replica takes.
    pub winner: Event,
    /// Whether the run before it fired (`None`: no earlier row was read).
    pub prev_firing: Option<bool>,
}

/// Rows read per rule to find its latest run (racing duplicates are few).
const RUN_ROWS: u64 = 8;

/// The latest run of each rule from its newest rows (newest first, any rule order).
pub fn runs(rows: Vec<Event>) -> HashMap<String, Run> {
    let mut by_rule: HashMap<String, Vec<Event>> = HashMap::new();
    for e in rows {
        by_rule.entry(e.rule.clone()).or_default().push(e);
    }
    by_rule
        .into_iter()
        .map(|(rule, mut rows)| {
            rows.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then(b.replica.cmp(&a.replica)));
            let key = (rows[0].verdict.clone(), rows[0].firing);
            let len = rows
                .iter()
                .take_while(|e| (e.verdict.clone(), e.firing) == key)
                .count();
            let prev_firing = rows.get(len).map(|e| e.firing == 1);
            let winner = rows.swap_remove(len - 1);
            (
                rule,
                Run {
                    winner,
                    prev_firing,
                },
            )
        })
        .collect()
}

/// Each rule's latest run (rules with no history are absent).
pub async fn latest(client: &Client, rules: &[String]) -> anyhow::Result<HashMap<String, Run>> {
    let rows: Vec<Event> = client
        .query(
            "SELECT ?fields FROM orrery_check_events
WHERE has({rules:Array(String)}, Rule)
ORDER BY Rule, At DESC
LIMIT {n:UInt64} BY Rule",
        )
        .param("rules", rules)
        .param("n", RUN_ROWS)
        .fetch_all()
        .await?;
    Ok(runs(rows))
}

/// The webhook notifications this replica owes (the rule's state and the event to tell, for
/// `alerts::webhook_note`): each rule whose latest run started or ended firing, that this
/// replica won, and that it has not notified yet (`notified`: rule → the
/// winner's time last notified; changes from before `start_ms` are not this process's).
pub fn webhook_due<'a, 'b>(
    latest: &'a HashMap<String, Run>,
    board: &'b Board,
    replica: &str,
    start_ms: i64,
    notified: &mut HashMap<String, i64>,
) -> Vec<(&'b RuleState, &'a Event)> {
    let mut out = Vec::new();
    for s in &board.rules {
        let Some(run) = latest.get(&s.rule) else {
            continue;
        };
        let w = &run.winner;
        let fires = w.firing == 1;
        let changed = run.prev_firing.map_or(fires, |p| p != fires);
        let seen = *notified.get(&s.rule).unwrap_or(&start_ms);
        if w.replica != replica || w.at_ms <= seen || !changed {
            continue;
        }
        notified.insert(s.rule.clone(), w.at_ms);
        out.push((s, w));
    }
    out
}

/// Records events.
pub async fn record(client: &Client, events: &[Event]) -> anyhow::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut insert = client.insert::<Event>("orrery_check_events").await?;
    for e in events {
        insert.write(e).await?;
    }
    insert.end().await?;
    Ok(())
}

/// The board's state of each rule as the shared history has it: verdict, firing and since
/// from the latest run's winner, the rest (outcome, error) from this replica's own board.
pub fn shared_board(own: Option<&Board>, latest: &HashMap<String, Run>) -> Option<Board> {
    if latest.is_empty() {
        return own.cloned();
    }
    let mut board = own.cloned().unwrap_or_default();
    for (rule, run) in latest {
        let e = &run.winner;
        match board.rules.iter_mut().find(|r| &r.rule == rule) {
            Some(s) => {
                s.verdict = verdict_of(&e.verdict);
                s.firing = e.firing == 1;
                s.since_ms = e.since_ms;
            }
            None => board.rules.push(RuleState {
                rule: rule.clone(),
                kind: "",
                description: String::new(),
                labels: Default::default(),
                verdict: verdict_of(&e.verdict),
                firing: e.firing == 1,
                since_ms: e.since_ms,
                evaluated_at_ms: e.at_ms,
                outcome: None,
                error: None,
            }),
        }
    }
    Some(board)
}

/// The events an evaluation makes: every rule whose verdict or firing differs from `prev`.
pub fn changes(prev: Option<&Board>, now: &Board, replica: &str) -> Vec<Event> {
    now.rules
        .iter()
        .filter(|s| s.error.is_none())
        .filter(|s| {
            prev.and_then(|p| p.rules.iter().find(|r| r.rule == s.rule))
                .is_none_or(|b| b.verdict != s.verdict || b.firing != s.firing)
        })
        .map(|s| {
            let o = s.outcome.as_ref();
            let m = o.and_then(|o| o.measured.as_ref());
            Event {
                rule: s.rule.clone(),
                at_ms: now.evaluated_at_ms,
                verdict: match s.verdict {
                    Verdict::Pass => "pass",
                    Verdict::NoData => "no_data",
                    Verdict::Violated => "violated",
                }
                .into(),
                firing: s.firing.into(),
                since_ms: s.since_ms,
                reason: o.map(|o| o.reason.clone()).unwrap_or_default(),
                subject: m.map(|m| m.subject.clone()).unwrap_or_default(),
                requests: m.map_or(0, |m| m.requests),
                error_rate: m.map_or(0.0, |m| m.error_rate),
                p95_ms: m.map_or(0.0, |m| m.p95_ms),
                p99_ms: m.map_or(0.0, |m| m.p99_ms),
                replica: replica.to_string(),
            }
        })
        .collect()
}

/// The latest `limit` state changes of each rule, newest first; rows that repeat the state
/// before them (replicas racing to record one change) are shown once, as the earliest.
pub async fn read(client: &Client, rules: &[String], limit: u64) -> anyhow::Result<Vec<Event>> {
    let rows: Vec<Event> = client
        .query(
            "SELECT ?fields FROM orrery_check_events
WHERE has({rules:Array(String)}, Rule)
ORDER BY Rule, At ASC, Replica ASC",
        )
        .param("rules", rules)
        .fetch_all()
        .await?;
    Ok(collapse(rows, limit as usize))
}

/// Rows in (rule, time) order → each rule's changes (a row repeating the previous row's
/// verdict and firing dropped), newest first, at most `limit` per rule.
pub fn collapse(rows: Vec<Event>, limit: usize) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    let mut rule_start = 0;
    for e in rows {
        if out.last().is_none_or(|l| l.rule != e.rule) {
            out[rule_start..].reverse();
            out.truncate(rule_start + limit.min(out.len() - rule_start));
            rule_start = out.len();
        }
        let repeat = out[rule_start..]
            .last()
            .is_some_and(|l| l.verdict == e.verdict && l.firing == e.firing);
        if !repeat {
            out.push(e);
        }
    }
    out[rule_start..].reverse();
    out.truncate(rule_start + limit.min(out.len() - rule_start));
    out
}

/// History as the API answers it.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct History {
    /// Rule → its events, newest first.
    pub rules: HashMap<String, Vec<Event>>,
}
