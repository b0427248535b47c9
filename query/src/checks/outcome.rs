//! What judging a rule yields (its verdict, the measured values, the violating subjects):
//! apart from `eval` so that the rule kinds judged in their own modules (`canary`, `stale`) and
//! `eval`, which calls them, depend on it and not on each other.

use orrery_api::Metrics;
use serde::Serialize;

#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    /// Not enough traffic (or no graph) to judge: a deploy gate must not read it as a pass.
    NoData,
    Violated,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::NoData => "no_data",
            Verdict::Violated => "VIOLATED",
        }
    }
}

/// Measured values of one edge or node.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Measured {
    pub subject: String,
    pub requests: u64,
    pub error_rate: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

impl Measured {
    pub(super) fn of(subject: &str, m: &Metrics) -> Self {
        Measured {
            subject: subject.to_string(),
            requests: m.requests,
            error_rate: m.error_rate,
            p95_ms: m.p95_ms,
            p99_ms: m.p99_ms,
        }
    }
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Outcome {
    pub rule: String,
    pub kind: &'static str,
    pub verdict: Verdict,
    /// Why: the threshold crossed, what was missing, or what was checked.
    pub reason: String,
    /// The subject the verdict is about (the worst one when a selector matched several).
    pub measured: Option<Measured>,
    /// A regression's baseline for the same subject.
    pub baseline: Option<Measured>,
    /// Every violating edge or node (at most 20).
    pub violating: Vec<String>,
}
