//! `orrery check`: evaluates a rules file (or one inline SLO) against a running query service
//! and exits 0 (pass), 1 (a rule is violated) or 2 (not enough data, or an error) — a deploy
//! gate. The graphs come from the query API (`/orrery/api/graph`, the map's own numbers) and are
//! judged here (docs/decisions.md, "Checks evaluated in the CLI").

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde::Deserialize;

use orrery_query::checks::canary::VersionSplit;
use orrery_query::checks::eval::{self, Outcome, Verdict};
use orrery_query::checks::rules::{self, Rule, RuleKind};
use orrery_query::checks::stale::LastSeen;
use orrery_query::model::Graph;

use super::oncall::{Target, get_json};

/// Check rules against the live graph (exit 0 pass, 1 violated, 2 no data or error).
#[derive(Args, Debug, Clone)]
pub struct CheckCmd {
    #[command(flatten)]
    pub target: Target,
    /// Rules file (YAML, docs/checks.md). Or give one rule inline with --edge/--node.
    #[arg(long, conflicts_with_all = ["edge", "node"])]
    pub rules: Option<PathBuf>,
    /// Inline SLO on one edge, `source->target` (globs allowed: `checkout->database:*`).
    #[arg(long, conflicts_with = "node")]
    pub edge: Option<String>,
    /// Inline SLO on one node (glob allowed).
    #[arg(long)]
    pub node: Option<String>,
    /// Inline: highest error rate, `1%` or `0.01`.
    #[arg(long)]
    pub max_error_rate: Option<String>,
    /// Inline: highest p95, `300ms`, `1.5s`.
    #[arg(long)]
    pub max_p95: Option<String>,
    /// Inline: highest p99.
    #[arg(long)]
    pub max_p99: Option<String>,
    /// Inline: calls needed in the window for a verdict (fewer: exit 2).
    #[arg(long)]
    pub min_requests: Option<u64>,
    /// Inline: the window, ending now.
    #[arg(long, default_value = "5m")]
    pub since: String,
    /// Re-check until every rule passes or this much time has passed (then exit with the last
    /// verdict): for canaries right after a deploy. At most 24h.
    #[arg(long)]
    pub wait: Option<String>,
    /// Pause between checks under --wait.
    #[arg(long, default_value = "15s")]
    pub wait_interval: String,
    /// Give up on one evaluation (all its graph reads) after this long: exit 2.
    #[arg(long, default_value = "60s")]
    pub timeout: String,
}

fn dur(flag: &str, s: &str, max: Duration) -> Result<Duration> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| anyhow!("--{flag}: {s:?} is not a duration like 5m ({e})"))?;
    if d.is_zero() || d > max {
        bail!(
            "--{flag}: more than 0 and at most {}",
            humantime::format_duration(max)
        );
    }
    Ok(d)
}

/// The rules to check: the file, or the inline rule (validated by the same code as the file).
pub fn rules_of(cmd: &CheckCmd) -> Result<Vec<Rule>> {
    if let Some(path) = &cmd.rules {
        return rules::load(path)
            .map(|s| s.rules)
            .map_err(|e| anyhow!("{e}"));
    }
    let mut slo = serde_json::Map::new();
    match (&cmd.edge, &cmd.node) {
        (Some(e), None) => {
            let (s, t) = e
                .split_once("->")
                .ok_or_else(|| anyhow!("--edge: write it as source->target, got {e:?}"))?;
            slo.insert("source".into(), s.trim().into());
            slo.insert("target".into(), t.trim().into());
        }
        (None, Some(n)) => {
            slo.insert("node".into(), n.as_str().into());
        }
        _ => bail!("give --rules <file>, or one inline rule with --edge a->b or --node x"),
    }
    for (k, v) in [
        ("max_error_rate", &cmd.max_error_rate),
        ("max_p95", &cmd.max_p95),
        ("max_p99", &cmd.max_p99),
    ] {
        if let Some(v) = v {
            slo.insert(k.into(), v.as_str().into());
        }
    }
    if let Some(n) = cmd.min_requests {
        slo.insert("min_requests".into(), n.into());
    }
    let name = cmd.edge.clone().or(cmd.node.clone()).unwrap_or_default();
    let raw = serde_json::json!({"name": name, "window": cmd.since, "slo": slo});
    Rule::deserialize(raw)
        .map_err(|e| anyhow!("inline rule: {e}"))
        .map(|r| vec![r])
}

fn now_ms() -> i64 {
    orrery_query::now_ns() / 1_000_000
}

/// Fetches each distinct window's graph once and evaluates every rule. A rule with `for:` that
/// is violated now is judged again with its window ending `for`/3, 2`for`/3 and `for` ago: only
/// violated at all four is it violated (the service would be firing it); otherwise it is
/// `no_data` ("pending"), which a gate reads as "do not promote yet".
pub async fn evaluate(target: &Target, rules: &[Rule], now_ms: i64) -> Result<Vec<Outcome>> {
    let mut graphs: HashMap<(i64, i64), Graph> = HashMap::new();
    let mut out = Vec::with_capacity(rules.len());
    for rule in rules {
        let mut o = eval_at(target, rule, now_ms, &mut graphs).await?;
        let f = rule.for_duration.as_millis() as i64;
        if o.verdict == Verdict::Violated && f > 0 {
            for step in 1..=3 {
                let earlier = eval_at(target, rule, now_ms - f * step / 3, &mut graphs).await?;
                if earlier.verdict != Verdict::Violated {
                    o.verdict = Verdict::NoData;
                    o.reason = format!(
                        "pending: violated now but not throughout its for: {} (not {} ago): {}",
                        humantime::format_duration(rule.for_duration),
                        humantime::format_duration(Duration::from_millis((f * step / 3) as u64)),
                        o.reason
                    );
                    break;
                }
            }
        }
        out.push(o);
    }
    Ok(out)
}

/// One rule judged on the window ending at `end_ms` (graphs cached by window).
async fn eval_at(
    target: &Target,
    rule: &Rule,
    end_ms: i64,
    graphs: &mut HashMap<(i64, i64), Graph>,
) -> Result<Outcome> {
    let w = rule.window.as_millis() as i64;
    let cur = (end_ms - w, end_ms);
    let base = match &rule.kind {
        RuleKind::Regression(r) => {
            let off = r.baseline_offset.as_millis() as i64;
            Some((cur.0 - off, cur.1 - off))
        }
        _ => None,
    };
    for key in std::iter::once(cur).chain(base) {
        if let std::collections::hash_map::Entry::Vacant(slot) = graphs.entry(key) {
            let q = [
                ("level", "region".to_string()),
                ("start", key.0.to_string()),
                ("end", key.1.to_string()),
            ];
            let (g, _): (Graph, String) = get_json(target, "/orrery/api/graph", &q)
                .await
                .with_context(|| format!("reading the graph for rule {:?}", rule.name))?;
            slot.insert(g);
        }
    }
    let g = &graphs[&cur];
    let (split, seen) = extra_inputs(target, rule, g, cur).await?;
    Ok(eval::evaluate_with(
        rule,
        g,
        eval::Inputs {
            baseline: base.map(|b| &graphs[&b]),
            split: split.as_ref(),
            last_seen: seen.as_ref(),
            now_ms: end_ms,
        },
    ))
}

/// A canary's version split or a stale-callee rule's last-seen times, from the query API.
async fn extra_inputs(
    target: &Target,
    rule: &Rule,
    g: &Graph,
    (lo, hi): (i64, i64),
) -> Result<(Option<VersionSplit>, Option<LastSeen>)> {
    let ctx = || format!("reading the data of rule {:?}", rule.name);
    match &rule.kind {
        RuleKind::Canary(c) => {
            let mut q = vec![
                ("service", c.service.clone()),
                ("start", lo.to_string()),
                ("end", hi.to_string()),
            ];
            if let Some(v) = &c.version {
                q.push(("version", v.clone()));
            }
            q.extend(c.instances.iter().map(|i| ("instance", i.clone())));
            let (split, _) = get_json(target, "/orrery/api/checks/versions", &q)
                .await
                .with_context(ctx)?;
            Ok((Some(split), None))
        }
        RuleKind::StaleCallees(st) => {
            let names = orrery_query::checks::stale::names(st, g);
            if names.is_empty() {
                return Ok((None, Some(LastSeen::default())));
            }
            let mut q = vec![(
                "since",
                format!("{}s", st.known_within.as_secs().min(7 * 86400)),
            )];
            q.extend(names.into_iter().map(|n| ("service", n)));
            let (seen, _) = get_json(target, "/orrery/api/checks/last-seen", &q)
                .await
                .with_context(ctx)?;
            Ok((None, Some(seen)))
        }
        _ => Ok((None, None)),
    }
}

/// Runs the command; returns the process exit code.
pub async fn run(cmd: CheckCmd) -> i32 {
    match run_inner(&cmd).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("orrery check: {e:#}");
            2
        }
    }
}

async fn run_inner(cmd: &CheckCmd) -> Result<i32> {
    let rules = rules_of(cmd)?;
    let timeout = dur("timeout", &cmd.timeout, Duration::from_secs(3600))?;
    let wait = cmd
        .wait
        .as_deref()
        .map(|w| dur("wait", w, Duration::from_secs(86400)))
        .transpose()?;
    let interval = dur(
        "wait-interval",
        &cmd.wait_interval,
        Duration::from_secs(3600),
    )?;
    let deadline = wait.map(|w| Instant::now() + w);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let now = now_ms();
        let result = tokio::time::timeout(timeout, evaluate(&cmd.target, &rules, now))
            .await
            .unwrap_or_else(|_| {
                Err(anyhow!(
                    "no answer within --timeout {} (query service hung or overloaded)",
                    humantime::format_duration(timeout)
                ))
            });
        let more_time = deadline.is_some_and(|d| Instant::now() + interval < d);
        match result {
            Ok(outcomes) => {
                let verdict = eval::overall(&outcomes);
                if verdict == Verdict::Pass || !more_time {
                    print!("{}", render(cmd.target.json, &outcomes, now, attempt));
                    return Ok(eval::exit_code(verdict));
                }
                eprintln!(
                    "orrery check: attempt {attempt}: {}; checking again in {}",
                    summary(&outcomes),
                    humantime::format_duration(interval)
                );
            }
            Err(e) if more_time => {
                eprintln!("orrery check: attempt {attempt}: {e:#}; retrying");
            }
            Err(e) => return Err(e),
        }
        tokio::time::sleep(interval).await;
    }
}

fn summary(outcomes: &[Outcome]) -> String {
    let n = |v: Verdict| outcomes.iter().filter(|o| o.verdict == v).count();
    format!(
        "{} rule(s): {} pass, {} violated, {} no data",
        outcomes.len(),
        n(Verdict::Pass),
        n(Verdict::Violated),
        n(Verdict::NoData)
    )
}

fn render(json: bool, outcomes: &[Outcome], now_ms: i64, attempts: u32) -> String {
    let verdict = eval::overall(outcomes);
    if json {
        return serde_json::json!({
            "verdict": verdict,
            "exit_code": eval::exit_code(verdict),
            "checked_at_ms": now_ms,
            "attempts": attempts,
            "outcomes": outcomes,
        })
        .to_string()
            + "\n";
    }
    format_table(outcomes)
}

pub fn format_table(outcomes: &[Outcome]) -> String {
    let mut out = format!(
        "{:<28}  {:<15}  {:<8}  {:<32}  {:>7}  {:>7}  {:>10}  {:>10}  REASON\n",
        "RULE", "KIND", "VERDICT", "SUBJECT", "CALLS", "ERR%", "P95", "P99"
    );
    for o in outcomes {
        let (subject, calls, err, p95, p99) = match &o.measured {
            Some(m) => (
                m.subject.clone(),
                m.requests.to_string(),
                format!("{:.2}%", m.error_rate * 100.0),
                format!("{:.1}ms", m.p95_ms),
                format!("{:.1}ms", m.p99_ms),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into(), "-".into()),
        };
        let _ = writeln!(
            out,
            "{:<28}  {:<15}  {:<8}  {:<32}  {:>7}  {:>7}  {:>10}  {:>10}  {}",
            o.rule,
            o.kind,
            o.verdict.as_str(),
            subject,
            calls,
            err,
            p95,
            p99,
            o.reason
        );
    }
    let _ = writeln!(out, "{}", summary(outcomes));
    out
}
