//! The query service's own evaluation of a rules file (`--graph-rules`): every
//! `--graph-rules-interval` each rule is judged on the graph `graph::graph` builds (the graph
//! API's numbers, through the same rollups and cache), and `/orrery/api/checks` lists every
//! rule's state — verdict, since when, the measured values — for the map's notices.
//!
//! Each rule's state (verdict, firing, since when) is shared through ClickHouse (`history`):
//! replicas agree on it and a restart continues from it. Firing rules go to Alertmanager
//! (`alerts`) and to a plain webhook.

use std::collections::HashMap;
use std::time::Duration;

use clickhouse::Client;
use tokio_util::sync::CancellationToken;

use super::eval::{self, Outcome, Verdict};
use super::rules::{Rule, RuleKind};
use crate::GraphArgs;
use crate::graph::{self, GraphRequest, Level};

pub use super::board::{Board, Checks, RuleState};

/// Evaluates every rule once at `now_ns`: one graph read per distinct window.
pub async fn evaluate_all(
    client: &Client,
    s: &GraphArgs,
    cache: &crate::graph::cache::RolledCache,
    rules: &[Rule],
    now_ns: i64,
) -> Vec<Result<Outcome, String>> {
    let mut graphs: HashMap<(i64, i64), Result<orrery_api::Graph, String>> = HashMap::new();
    let mut out = Vec::with_capacity(rules.len());
    for rule in rules {
        let w = rule.window.as_nanos() as i64;
        let cur = (now_ns - w, now_ns);
        let base = match &rule.kind {
            RuleKind::Regression(r) => {
                let off = r.baseline_offset.as_nanos() as i64;
                Some((cur.0 - off, cur.1 - off))
            }
            _ => None,
        };
        for key in std::iter::once(cur).chain(base) {
            if let std::collections::hash_map::Entry::Vacant(slot) = graphs.entry(key) {
                let g = match crate::params::span(key.0, key.1, now_ns) {
                    Ok(window) => {
                        let req = GraphRequest {
                            level: Level::Region,
                            region: None,
                            focus: None,
                            window,
                            whats_wrong: false,
                            group: Default::default(),
                        };
                        graph::graph(client, s, cache, &req)
                            .await
                            .map_err(|e| format!("{e:#}"))
                    }
                    Err(e) => Err(e),
                };
                slot.insert(g);
            }
        }
        let current = &graphs[&cur];
        let baseline = base.map(|b| &graphs[&b]);
        out.push(match (current, baseline) {
            (Err(e), _) | (_, Some(Err(e))) => Err(e.clone()),
            (Ok(g), b) => extra_inputs(client, rule, g, cur, now_ns)
                .await
                .map(|(split, seen)| {
                    eval::evaluate_with(
                        rule,
                        g,
                        eval::Inputs {
                            baseline: b.and_then(|b| b.as_ref().ok()),
                            split: split.as_ref(),
                            last_seen: seen.as_ref(),
                            now_ms: now_ns / 1_000_000,
                        },
                    )
                }),
        });
    }
    out
}

/// The reads a canary (its version split) or a stale-callee rule (when its callees last
/// reported) needs besides the graph; nothing for other kinds.
async fn extra_inputs(
    client: &Client,
    rule: &Rule,
    g: &orrery_api::Graph,
    (lo, hi): (i64, i64),
    now_ns: i64,
) -> Result<
    (
        Option<super::canary::VersionSplit>,
        Option<super::stale::LastSeen>,
    ),
    String,
> {
    match &rule.kind {
        RuleKind::Canary(c) => super::canary::read(
            client,
            &c.service,
            c.version.as_deref(),
            &c.instances,
            lo,
            hi,
        )
        .await
        .map(|s| (Some(s), None))
        .map_err(|e| format!("{e:#}")),
        RuleKind::StaleCallees(st) => {
            let since = now_ns - st.known_within.as_nanos() as i64;
            super::stale::read(client, &super::stale::names(st, g), since)
                .await
                .map(|s| (None, Some(s)))
                .map_err(|e| format!("{e:#}"))
        }
        _ => Ok((None, None)),
    }
}

/// Folds one evaluation into the board: `since_ms` moves only when a verdict changes, and each
/// change is one log line.
pub fn fold(
    prev: Option<&Board>,
    rules: &[Rule],
    results: Vec<Result<Outcome, String>>,
    now_ms: i64,
    interval: Duration,
) -> Board {
    let mut states = Vec::with_capacity(rules.len());
    for (rule, result) in rules.iter().zip(results) {
        let before = prev.and_then(|b| b.rules.iter().find(|r| r.rule == rule.name));
        let state = match result {
            Ok(o) => {
                let changed = before.is_none_or(|b| b.verdict != o.verdict);
                if changed {
                    let from = before.map_or("unknown", |b| b.verdict.as_str());
                    if o.verdict == Verdict::Violated {
                        tracing::warn!(rule = %rule.name, from, to = o.verdict.as_str(), reason = %o.reason, "check state changed");
                    } else {
                        tracing::info!(rule = %rule.name, from, to = o.verdict.as_str(), reason = %o.reason, "check state changed");
                    }
                }
                let since_ms = match before {
                    Some(b) if !changed => b.since_ms,
                    _ => now_ms,
                };
                // A run that already fired keeps firing while it lasts: the shared history's
                // `since` may be a few ms after this evaluation's clock (another replica
                // recorded the change while this one was evaluating), and `now - since` must
                // not then read as "not yet" and resolve a firing alert.
                let firing = o.verdict == Verdict::Violated
                    && (before.is_some_and(|b| b.firing && !changed)
                        || now_ms - since_ms >= rule.for_duration.as_millis() as i64);
                if firing != before.is_some_and(|b| b.firing) {
                    tracing::warn!(rule = %rule.name, firing, reason = %o.reason, "check firing state changed");
                }
                RuleState {
                    rule: rule.name.clone(),
                    kind: rule.kind.as_str(),
                    description: rule.description.clone(),
                    labels: rule.labels.clone(),
                    verdict: o.verdict,
                    firing,
                    since_ms,
                    evaluated_at_ms: now_ms,
                    outcome: Some(o),
                    error: None,
                }
            }
            Err(e) => {
                if before.is_none_or(|b| b.error.is_none()) {
                    tracing::warn!(rule = %rule.name, error = %e, "check could not be evaluated");
                }
                RuleState {
                    rule: rule.name.clone(),
                    kind: rule.kind.as_str(),
                    description: rule.description.clone(),
                    labels: rule.labels.clone(),
                    verdict: before.map_or(Verdict::NoData, |b| b.verdict),
                    firing: before.is_some_and(|b| b.firing),
                    since_ms: before.map_or(now_ms, |b| b.since_ms),
                    evaluated_at_ms: now_ms,
                    outcome: before.and_then(|b| b.outcome.clone()),
                    error: Some(e),
                }
            }
        };
        states.push(state);
    }
    Board {
        configured: true,
        interval_ms: interval.as_millis() as u64,
        evaluated_at_ms: now_ms,
        rules: states,
    }
}

/// The evaluation loop, until `shutdown`.
pub async fn run(
    client: Client,
    s: GraphArgs,
    cache: crate::graph::cache::RolledCache,
    checks: Checks,
    rules: Vec<Rule>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let http = reqwest::Client::new();
    let mut posting: Option<tokio::task::JoinHandle<()>> = None;
    let replica = super::history::replica_name();
    let names: Vec<String> = rules.iter().map(|r| r.name.clone()).collect();
    let mut history_ok = true;
    let start_ms = crate::now_ns() / 1_000_000;
    let mut notified = HashMap::new();
    let (webhook, mut webhook_rx) = tokio::sync::mpsc::channel::<Vec<serde_json::Value>>(64);
    let hook = {
        let (http, urls) = (http.clone(), s.graph_webhook_url.clone());
        tokio::spawn(async move {
            while let Some(notes) = webhook_rx.recv().await {
                super::alerts::send_webhook(&http, &urls, &notes).await;
            }
        })
    };
    tracing::info!(rules = rules.len(), interval = %humantime::format_duration(interval), "evaluating check rules");
    loop {
        let now = crate::now_ns();
        let results = evaluate_all(&client, &s, &cache, &rules, now).await;
        // The state every replica shares (and a restart continues from) is the history's latest
        // row per rule; this replica's memory only when ClickHouse cannot be read.
        let own = checks.snapshot();
        let latest = match super::history::latest(&client, &names).await {
            Ok(latest) => {
                if !history_ok {
                    tracing::info!("check history readable again");
                    history_ok = true;
                }
                Some(latest)
            }
            Err(e) => {
                if history_ok {
                    tracing::warn!(error = %format!("{e:#}"), "could not read the check history: going on from this replica's memory");
                    history_ok = false;
                }
                None
            }
        };
        let prev = match &latest {
            Some(l) => super::history::shared_board(own.as_ref(), l),
            None => own,
        };
        let board = fold(prev.as_ref(), &rules, results, now / 1_000_000, interval);
        let events = super::history::changes(prev.as_ref(), &board, &replica);
        if let Err(e) = super::history::record(&client, &events).await {
            tracing::warn!(error = %format!("{e:#}"), changes = events.len(), "could not record check state changes");
        }
        let alerts = super::alerts::payload(prev.as_ref(), &board);
        // The plain webhook hears of a change from the replica that won it in the shared
        // history: after recording, the history is read again and only the run's winner (the
        // earliest row) notifies.
        let runs = if events.is_empty() {
            latest
        } else {
            super::history::latest(&client, &names)
                .await
                .ok()
                .or(latest)
        };
        let notes = match &runs {
            Some(l) => super::history::webhook_due(l, &board, &replica, start_ms, &mut notified)
                .into_iter()
                .map(|(s, e)| super::alerts::webhook_note(s, e))
                .collect(),
            None => Vec::new(),
        };
        checks.set(board);
        if !notes.is_empty() && !s.graph_webhook_url.is_empty() {
            // A change is sent once, so it is queued (bounded) rather than skipped when the
            // previous post is still out.
            if webhook.try_send(notes).is_err() {
                tracing::warn!(
                    "check webhook queue full (webhook hung?): dropped this round's notifications"
                );
            }
        }
        // Posts run beside the evaluation, one batch at a time: a slow or hung Alertmanager
        // neither delays the verdicts nor piles up posts. A batch skipped while the previous one
        // is still out loses nothing lasting: firing alerts are re-sent next time, and a skipped
        // "resolved" is reached by the alert's own `endsAt`.
        if !s.graph_alertmanager_url.is_empty() && !alerts.is_empty() {
            if posting.as_ref().is_none_or(|p| p.is_finished()) {
                let (http, urls) = (http.clone(), s.graph_alertmanager_url.clone());
                posting = Some(tokio::spawn(async move {
                    super::alerts::send(&http, &urls, &alerts).await;
                }));
            } else {
                tracing::warn!("previous Alertmanager post still in flight: skipped this round");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => {
                if let Some(p) = posting {
                    p.abort();
                }
                hook.abort();
                return;
            }
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
