//! Canary rules: one `service.version` (or a set of `service.instance.id`s) of a service
//! against the service's other versions over the same window — errors and latency no worse than
//! the others beyond a margin, once both sides carried enough calls.
//!
//! The service graph has no per-version split (its call table keeps the instance, not the
//! version), so the split is its own read: the service's server/consumer spans in
//! `otel_traces`, whose key starts with `ServiceName`, so one service's window is a narrow
//! range read. The query service answers it at `/orrery/api/checks/versions` for the CLI.

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

use super::outcome::{Measured, Outcome, Verdict};

/// What a canary rule compares.
#[derive(Debug, Clone, PartialEq)]
pub struct Canary {
    /// The service (its exact `service.name`).
    pub service: String,
    /// The canary's `service.version`.
    pub version: Option<String>,
    /// The canary's `service.instance.id`s.
    pub instances: Vec<String>,
    pub max_error_rate_increase_points: Option<f64>,
    pub max_p95_increase_percent: Option<f64>,
    /// Calls each side (canary and the others) needs before a verdict.
    pub min_requests: u64,
}

/// Calls the canary and the others need by default before a verdict.
pub const DEFAULT_MIN_REQUESTS: u64 = 20;
/// Most instance ids a canary may list (they go into a bound array parameter).
pub const MAX_INSTANCES: usize = 100;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawCanary {
    service: String,
    version: Option<String>,
    #[serde(default)]
    instances: Vec<String>,
    max_error_rate_increase_points: Option<f64>,
    max_p95_increase_percent: Option<f64>,
    min_requests: Option<u64>,
}

fn text(field: &str, s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || s.len() > 256 || s.chars().any(char::is_control) {
        return Err(format!("{field}: 1 to 256 printable characters"));
    }
    Ok(s.to_string())
}

impl TryFrom<RawCanary> for Canary {
    type Error = String;

    fn try_from(r: RawCanary) -> Result<Self, String> {
        let service = text("canary.service", &r.service)?;
        if service.contains('*') {
            return Err(
                "canary.service: name one service exactly (a canary compares versions of one service)"
                    .into(),
            );
        }
        let version = r
            .version
            .as_deref()
            .map(|v| text("canary.version", v))
            .transpose()?;
        if r.instances.len() > MAX_INSTANCES {
            return Err(format!(
                "canary.instances: at most {MAX_INSTANCES}, got {}",
                r.instances.len()
            ));
        }
        let instances = r
            .instances
            .iter()
            .map(|i| text("canary.instances", i))
            .collect::<Result<Vec<_>, _>>()?;
        if version.is_none() && instances.is_empty() {
            return Err(
                "canary: say which calls are the canary's: version (service.version) and/or instances (service.instance.id)"
                    .into(),
            );
        }
        for (f, v) in [
            (
                "max_error_rate_increase_points",
                r.max_error_rate_increase_points,
            ),
            ("max_p95_increase_percent", r.max_p95_increase_percent),
        ] {
            if let Some(v) = v
                && (!v.is_finite() || v < 0.0)
            {
                return Err(format!("canary.{f}: must be a number ≥ 0, got {v}"));
            }
        }
        if r.max_error_rate_increase_points.is_none() && r.max_p95_increase_percent.is_none() {
            return Err(
                "canary: give max_error_rate_increase_points and/or max_p95_increase_percent"
                    .into(),
            );
        }
        Ok(Canary {
            service,
            version,
            instances,
            max_error_rate_increase_points: r.max_error_rate_increase_points,
            max_p95_increase_percent: r.max_p95_increase_percent,
            min_requests: r.min_requests.unwrap_or(DEFAULT_MIN_REQUESTS).max(1),
        })
    }
}

/// Calls served by one side of the split.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Side {
    pub requests: u64,
    pub errors: u64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// The `service.version`s seen on this side (at most 20).
    pub versions: Vec<String>,
}

impl Side {
    fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
    fn measured(&self, subject: String) -> Measured {
        Measured {
            subject,
            requests: self.requests,
            error_rate: self.error_rate(),
            p95_ms: self.p95_ms,
            p99_ms: self.p99_ms,
        }
    }
}

/// A service's calls in a window split into the canary's and everyone else's.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct VersionSplit {
    pub service: String,
    pub canary: Side,
    pub others: Side,
}

#[derive(Row, Deserialize, Debug)]
struct SplitRow {
    canary: u8,
    requests: u64,
    errors: u64,
    q: Vec<f64>,
    versions: Vec<String>,
}

/// The split's SQL: which spans are the canary's is one of three fixed conditions; every
/// value is a bound parameter.
fn split_sql(by_version: bool, by_instances: bool) -> String {
    let cond = match (by_version, by_instances) {
        (true, false) => "ResourceAttributes['service.version'] = {version:String}",
        (false, true) => {
            "has({instances:Array(String)}, ResourceAttributes['service.instance.id'])"
        }
        _ => {
            "(ResourceAttributes['service.version'] = {version:String} \
             OR has({instances:Array(String)}, ResourceAttributes['service.instance.id']))"
        }
    };
    format!(
        "SELECT toUInt8({cond}) AS canary,
    count() AS requests,
    countIf(StatusCode IN ('Error', 'STATUS_CODE_ERROR')
        OR toUInt16OrZero(SpanAttributes['http.response.status_code']) >= 500) AS errors,
    quantiles(0.95, 0.99)(Duration) AS q,
    arraySort(groupUniqArray(20)(ResourceAttributes['service.version'])) AS versions
FROM otel_traces
WHERE ServiceName = {{service:String}}
    AND Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}})
    AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})
    AND SpanKind IN ('Server', 'Consumer', 'SPAN_KIND_SERVER', 'SPAN_KIND_CONSUMER')
GROUP BY canary"
    )
}

/// Reads the split of `service`'s calls in `[lo_ns, hi_ns)`.
pub async fn read(
    client: &Client,
    service: &str,
    version: Option<&str>,
    instances: &[String],
    lo_ns: i64,
    hi_ns: i64,
) -> anyhow::Result<VersionSplit> {
    let sql = split_sql(version.is_some(), !instances.is_empty());
    let mut q = client
        .query(&sql)
        .param("service", service)
        .param("lo", lo_ns)
        .param("hi", hi_ns);
    if let Some(v) = version {
        q = q.param("version", v);
    }
    if !instances.is_empty() {
        q = q.param("instances", instances);
    }
    let rows: Vec<SplitRow> = q.fetch_all().await?;
    let mut out = VersionSplit {
        service: service.to_string(),
        ..Default::default()
    };
    for r in rows {
        let side = Side {
            requests: r.requests,
            errors: r.errors,
            p95_ms: r.q.first().copied().unwrap_or(0.0) / 1e6,
            p99_ms: r.q.get(1).copied().unwrap_or(0.0) / 1e6,
            versions: r.versions,
        };
        if r.canary == 1 {
            out.canary = side;
        } else {
            out.others = side;
        }
    }
    Ok(out)
}

fn pct(f: f64) -> String {
    format!("{:.2}%", f * 100.0)
}

/// Judges a canary from its split.
pub fn evaluate(c: &Canary, split: &VersionSplit, o: &mut Outcome) {
    let name = match (&c.version, c.instances.len()) {
        (Some(v), _) => format!("{}@{v}", c.service),
        (None, n) => format!("{} ({n} canary instance(s))", c.service),
    };
    let others_name = if split.others.versions.is_empty() {
        format!("{} (others)", c.service)
    } else {
        format!("{}@{}", c.service, split.others.versions.join(","))
    };
    o.measured = Some(split.canary.measured(name.clone()));
    o.baseline = Some(split.others.measured(others_name.clone()));
    let (can, oth) = (&split.canary, &split.others);
    if can.requests < c.min_requests || oth.requests < c.min_requests {
        o.verdict = Verdict::NoData;
        o.reason = format!(
            "not enough calls for a verdict: canary {name} {}, others {} (min_requests {})",
            can.requests, oth.requests, c.min_requests
        );
        return;
    }
    let mut worst: Option<(f64, String)> = None;
    if let Some(max) = c.max_error_rate_increase_points {
        let up = (can.error_rate() - oth.error_rate()) * 100.0;
        if up > max {
            worst = Some((
                up / max.max(1e-9),
                format!(
                    "error rate {} vs {} for the others (+{up:.2} points > {max})",
                    pct(can.error_rate()),
                    pct(oth.error_rate())
                ),
            ));
        }
    }
    if let Some(max) = c.max_p95_increase_percent
        && oth.p95_ms > 0.0
    {
        let up = (can.p95_ms - oth.p95_ms) / oth.p95_ms * 100.0;
        let ratio = up / max.max(1e-9);
        if up > max && worst.as_ref().is_none_or(|(r, _)| ratio > *r) {
            worst = Some((
                ratio,
                format!(
                    "p95 {:.1}ms vs {:.1}ms for the others (+{up:.0}% > {max}%)",
                    can.p95_ms, oth.p95_ms
                ),
            ));
        }
    }
    match worst {
        Some((_, why)) => {
            o.verdict = Verdict::Violated;
            o.reason = format!("canary {name}: {why}");
            o.violating = vec![c.service.clone()];
        }
        None => {
            o.verdict = Verdict::Pass;
            o.reason = format!(
                "canary {name} ({} calls) no worse than {others_name} ({} calls)",
                can.requests, oth.requests
            );
        }
    }
}
