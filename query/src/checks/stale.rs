//! The `stale_callees` conformity rule: no calls to services that have not reported for a time.
//!
//! A service that stops reporting (decommissioned, its telemetry broken, or a dead instance
//! its callers still reach through a stale endpoint list) does not vanish from its callers'
//! spans: their client spans lose their server children and the graph shows them as calls to a
//! virtual node `<kind>:<name>` (`external:fraud`). The rule takes each such callee whose name
//! is a service that *did* report within `known_within` and asks when that service last
//! reported; one silent for longer than `after` while it is still being called violates.
//! The last-seen read is its own (`otel_traces`, keyed by `ServiceName`: a few narrow range
//! reads), answered at `/orrery/api/checks/last-seen` for the CLI.

use std::collections::HashMap;
use std::time::Duration;

use clickhouse::{Client, Row};
use orrery_api::Graph;
use serde::{Deserialize, Serialize};

use super::outcome::{Measured, Outcome, Verdict};
use super::selector::Selector;

#[derive(Debug, Clone, PartialEq)]
pub struct StaleCallees {
    /// A service silent this long is stale.
    pub after: Duration,
    /// How far back a service must have reported to count as a service at all (older names
    /// are plain external callees).
    pub known_within: Duration,
    /// Whose calls count (default every caller).
    pub callers: Vec<Selector>,
    pub min_requests: u64,
}

/// Most callee names one last-seen read asks about (a bound array parameter).
pub const MAX_NAMES: usize = 1000;
pub const MAX_KNOWN_WITHIN: Duration = Duration::from_secs(7 * 86400);

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawStale {
    after: String,
    known_within: Option<String>,
    #[serde(default)]
    callers: Vec<String>,
    min_requests: Option<u64>,
}

impl TryFrom<RawStale> for StaleCallees {
    type Error = String;

    fn try_from(r: RawStale) -> Result<Self, String> {
        let after = humantime::parse_duration(r.after.trim())
            .ok()
            .filter(|d| (Duration::from_secs(60)..=Duration::from_secs(86400)).contains(d))
            .ok_or_else(|| {
                format!(
                    "stale_callees.after: {:?} is not a duration between 1m and 1d, like \"5m\"",
                    r.after
                )
            })?;
        let known_within = match r.known_within.as_deref() {
            None => Duration::from_secs(86400).max(after * 2),
            Some(k) => humantime::parse_duration(k.trim())
                .ok()
                .filter(|d| *d > after && *d <= MAX_KNOWN_WITHIN)
                .ok_or_else(|| {
                    format!(
                        "stale_callees.known_within: {k:?} must be a duration longer than `after` and at most 7d"
                    )
                })?,
        };
        let callers = if r.callers.is_empty() {
            vec!["*".to_string()]
        } else {
            r.callers
        };
        Ok(StaleCallees {
            after,
            known_within,
            callers: callers
                .iter()
                .map(|s| Selector::parse(s).map_err(|e| format!("stale_callees.callers: {e}")))
                .collect::<Result<_, _>>()?,
            min_requests: r.min_requests.unwrap_or(1).max(1),
        })
    }
}

/// The name a callee node id would have as a service: a virtual node's name after its kind.
fn callee_name(id: &str) -> Option<&str> {
    let (kind, name) = id.split_once(':')?;
    matches!(kind, "external" | "database" | "queue")
        .then_some(name)
        .filter(|n| !n.is_empty())
}

/// Edges whose callee might be a silent service: (edge id, callee name, calls), busiest first.
fn candidates<'a>(s: &StaleCallees, g: &'a Graph) -> Vec<(&'a str, &'a str, u64)> {
    let nodes: HashMap<&str, &orrery_api::Node> =
        g.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut out: Vec<_> = g
        .edges
        .iter()
        .filter(|e| e.metrics.requests >= s.min_requests)
        .filter(|e| {
            s.callers
                .iter()
                .any(|sel| match nodes.get(e.source.as_str()) {
                    Some(n) => sel.matches(n),
                    None => sel.matches_id(&e.source),
                })
        })
        .filter_map(|e| callee_name(&e.target).map(|n| (e.id.as_str(), n, e.metrics.requests)))
        .collect();
    out.sort_by_key(|c| std::cmp::Reverse(c.2));
    out
}

/// The callee names whose last report a rule needs (at most [`MAX_NAMES`]).
pub fn names(s: &StaleCallees, g: &Graph) -> Vec<String> {
    let mut v: Vec<String> = candidates(s, g)
        .into_iter()
        .map(|c| c.1.to_string())
        .collect();
    v.sort();
    v.dedup();
    v.truncate(MAX_NAMES);
    v
}

/// When each service last reported (Unix ms), for those of `names` that reported since.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct LastSeen {
    pub last_seen_ms: HashMap<String, i64>,
}

#[derive(Row, Deserialize, Debug)]
struct LastRow {
    service: String,
    last_ms: i64,
}

/// Reads when each of `names` last reported a span, looking back to `since_ns`.
pub async fn read(client: &Client, names: &[String], since_ns: i64) -> anyhow::Result<LastSeen> {
    if names.is_empty() {
        return Ok(LastSeen::default());
    }
    let rows: Vec<LastRow> = client
        .query(
            "SELECT toString(ServiceName) AS service,
    toInt64(toUnixTimestamp64Milli(max(Timestamp))) AS last_ms
FROM otel_traces
WHERE has({names:Array(String)}, ServiceName)
    AND Timestamp >= fromUnixTimestamp64Nano({since:Int64})
GROUP BY service",
        )
        .param("names", names)
        .param("since", since_ns)
        .fetch_all()
        .await?;
    Ok(LastSeen {
        last_seen_ms: rows.into_iter().map(|r| (r.service, r.last_ms)).collect(),
    })
}

/// Judges a graph against when its callees last reported, at `now_ms`.
pub fn evaluate(s: &StaleCallees, g: &Graph, seen: &LastSeen, now_ms: i64, o: &mut Outcome) {
    let after_ms = s.after.as_millis() as i64;
    let stale: Vec<_> = candidates(s, g)
        .into_iter()
        .filter_map(|(edge, name, calls)| {
            let last = *seen.last_seen_ms.get(name)?;
            (now_ms - last > after_ms).then_some((edge, name, calls, last))
        })
        .collect();
    if let Some((edge, name, calls, last)) = stale.first() {
        o.verdict = Verdict::Violated;
        let silent = Duration::from_secs(((now_ms - last) / 1000).max(0) as u64);
        o.reason = format!(
            "{edge}: {calls} call(s) to {name}, which has not reported for {}{}",
            humantime::format_duration(silent),
            if stale.len() > 1 {
                format!(" (and {} more stale callee edge(s))", stale.len() - 1)
            } else {
                String::new()
            }
        );
        if let Some(e) = g.edges.iter().find(|e| e.id == *edge) {
            o.measured = Some(Measured {
                subject: e.id.clone(),
                requests: e.metrics.requests,
                error_rate: e.metrics.error_rate,
                p95_ms: e.metrics.p95_ms,
                p99_ms: e.metrics.p99_ms,
            });
        }
        o.violating = stale.iter().take(20).map(|s| s.0.to_string()).collect();
    } else if g.edges.is_empty() && g.data_quality.spans == 0 {
        o.verdict = Verdict::NoData;
        o.reason = "no traffic in the window: nothing to check".into();
    } else {
        o.verdict = Verdict::Pass;
        o.reason = "no calls to a service silent for longer than the rule allows".into();
    }
}
