//! Firing rules sent to Alertmanager (`--graph-alertmanager-url`, its `POST /api/v2/alerts`), so
//! routing, grouping, silencing and paging stay in Alertmanager.
//!
//! Several query replicas evaluate the same rules and all send: an alert's identity is its label
//! set — `alertname`, `rule`, `kind`, nothing per replica — so Alertmanager merges the copies
//! into one alert and notifies once, exactly as for a pair of HA Prometheus servers. No lease or
//! coordination is needed. A firing alert is re-sent every evaluation with `endsAt` four
//! intervals ahead: if every replica dies, Alertmanager resolves it on its own; a rule that
//! stops firing is sent once with `endsAt` = now (resolved).

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use super::board::{Board, RuleState};
use super::history::Event;

/// The alert name every check alert carries (route on it in Alertmanager).
pub const ALERT_NAME: &str = "OrreryCheckViolated";

fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

fn alert(s: &RuleState, starts_ms: i64, ends_ms: i64) -> Value {
    let o = s.outcome.as_ref();
    let mut annotations = json!({
        "summary": format!("check {:?} violated: {}", s.rule, o.map_or("", |o| o.reason.as_str())),
    });
    if !s.description.is_empty() {
        annotations["description"] = s.description.clone().into();
    }
    if let Some(m) = o.and_then(|o| o.measured.as_ref()) {
        annotations["subject"] = m.subject.clone().into();
        annotations["measured"] = format!(
            "calls {} errors {:.2}% p95 {:.1}ms p99 {:.1}ms",
            m.requests,
            m.error_rate * 100.0,
            m.p95_ms,
            m.p99_ms
        )
        .into();
    }
    let mut labels = json!({"alertname": ALERT_NAME, "rule": s.rule, "kind": s.kind});
    for (k, v) in &s.labels {
        labels[k] = v.clone().into();
    }
    json!({
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(starts_ms),
        "endsAt": rfc3339(ends_ms),
    })
}

/// The alerts to post after an evaluation: every firing rule (ending 4 intervals ahead) and
/// every rule that was firing before and is not now (ending now: resolved).
pub fn payload(prev: Option<&Board>, now: &Board) -> Vec<Value> {
    let ahead = now.evaluated_at_ms + 4 * now.interval_ms as i64;
    let mut out = Vec::new();
    for s in &now.rules {
        let before = prev.and_then(|p| p.rules.iter().find(|r| r.rule == s.rule));
        if s.firing {
            out.push(alert(s, s.since_ms, ahead));
        } else if let Some(b) = before.filter(|b| b.firing) {
            // The identity (labels, kind, description) comes from this evaluation's rule:
            // `before` may be the shared history's row, which knows none of them, and a resolve
            // with other labels would not resolve the alert in Alertmanager.
            let mut resolved = s.clone();
            if resolved.outcome.is_none() {
                resolved.outcome = b.outcome.clone();
            }
            let ends = now.evaluated_at_ms.max(b.since_ms);
            out.push(alert(&resolved, b.since_ms, ends));
        }
    }
    out
}

/// Posts `alerts` to every Alertmanager (10 s timeout each); failures are logged (the next
/// evaluation re-sends every firing alert, so a missed post heals itself).
pub async fn send(client: &reqwest::Client, urls: &[String], alerts: &[Value]) {
    if alerts.is_empty() {
        return;
    }
    for url in urls {
        let endpoint = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
        let r = client
            .post(&endpoint)
            .timeout(Duration::from_secs(10))
            .json(alerts)
            .send()
            .await;
        match r {
            Ok(resp) if resp.status().is_success() => {}
            Ok(resp) => {
                tracing::warn!(%endpoint, status = %resp.status(), "Alertmanager refused the check alerts")
            }
            Err(e) => tracing::warn!(%endpoint, error = %e, "could not reach Alertmanager"),
        }
    }
}

/// One plain-webhook notification (`--graph-webhook-url`): a rule started (`firing`) or
/// stopped (`resolved`) firing. Sent once per change, unlike Alertmanager's re-sends, because a
/// plain receiver (a chat hook, a ticket system) has no deduplication of its own; which replica
/// sends it is decided through the shared history (`history::webhook_due`).
pub fn webhook_note(s: &RuleState, e: &Event) -> Value {
    json!({
        "source": "orrery",
        "status": if e.firing == 1 { "firing" } else { "resolved" },
        "rule": s.rule,
        "kind": s.kind,
        "labels": s.labels,
        "description": s.description,
        "verdict": e.verdict,
        "reason": e.reason,
        "measured": {
            "subject": e.subject,
            "requests": e.requests,
            "error_rate": e.error_rate,
            "p95_ms": e.p95_ms,
            "p99_ms": e.p99_ms,
        },
        "since": rfc3339(e.since_ms),
        "at": rfc3339(e.at_ms),
    })
}

/// Posts each notification to every webhook URL (10 s timeout each); failures are logged.
pub async fn send_webhook(client: &reqwest::Client, urls: &[String], notes: &[Value]) {
    for note in notes {
        for url in urls {
            match client
                .post(url)
                .timeout(Duration::from_secs(10))
                .json(note)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    tracing::warn!(%url, status = %r.status(), "the check webhook refused a notification")
                }
                Err(e) => tracing::warn!(%url, error = %e, "could not reach the check webhook"),
            }
        }
    }
}
