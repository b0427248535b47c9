//! The rules file (`docs/checks.md`): parsing and validation. Every rule is checked while the
//! YAML is read (`try_from` on each rule), so a bad rule is refused with the YAML reader's
//! position — `rules[2]: … at line 14 column 5` — instead of failing later at evaluation.

use std::time::Duration;

use serde::Deserialize;

pub use super::selector::{Glob, Selector};

/// Longest window a rule may look at: the graph API's own cap (31 days).
const MAX_WINDOW: Duration = Duration::from_secs(31 * 86400);
/// Default window of a rule.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);
/// Default calls a subject needs in the window before an SLO or regression rule judges it.
pub const DEFAULT_MIN_REQUESTS: u64 = 10;

/// A parsed, valid rules file.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub description: String,
    /// The window the rule is evaluated over, ending now.
    pub window: Duration,
    /// How long a rule must stay violated before the query service reports it firing (`for:`;
    /// zero: at once). A one-shot `orrery check` judges the moment and ignores it.
    pub for_duration: Duration,
    /// Extra alert labels (`severity: page`, `team: payments`) for Alertmanager's routing.
    pub labels: std::collections::BTreeMap<String, String>,
    pub kind: RuleKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    Slo(Slo),
    Regression(Regression),
    Forbid(EdgeMatch),
    Require(EdgeMatch),
    AllowedCallers(AllowedCallers),
    NoCycles(NoCycles),
    Canary(super::canary::Canary),
    StaleCallees(super::stale::StaleCallees),
}

impl RuleKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            RuleKind::Slo(_) => "slo",
            RuleKind::Regression(_) => "regression",
            RuleKind::Forbid(_) => "forbid",
            RuleKind::Require(_) => "require",
            RuleKind::AllowedCallers(_) => "allowed_callers",
            RuleKind::NoCycles(_) => "no_cycles",
            RuleKind::Canary(_) => "canary",
            RuleKind::StaleCallees(_) => "stale_callees",
        }
    }
}

/// What an SLO or regression rule measures: edges (`source`/`target`) or nodes (`node`), each
/// further narrowed by the source node's (edges) or the node's region and namespace.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    Edge { source: Selector, target: Selector },
    Node(Selector),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    pub subject: Subject,
    pub region: Option<Glob>,
    pub namespace: Option<Glob>,
    pub min_requests: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    pub scope: Scope,
    /// Fraction 0..1.
    pub max_error_rate: Option<f64>,
    pub max_p95_ms: Option<f64>,
    pub max_p99_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Regression {
    pub scope: Scope,
    /// How far back the baseline window lies (same length as the rule's window).
    pub baseline_offset: Duration,
    /// Percentage points.
    pub max_error_rate_increase_points: Option<f64>,
    /// Percent of the baseline p95.
    pub max_p95_increase_percent: Option<f64>,
}

/// Edges from a matching node to a matching node, with at least `min_requests` calls.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeMatch {
    pub from: Selector,
    pub to: Selector,
    pub min_requests: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AllowedCallers {
    pub service: Selector,
    pub callers: Vec<Selector>,
    pub min_requests: u64,
}

/// No cycle among the selected nodes (over edges with at least `min_requests` calls).
#[derive(Debug, Clone, PartialEq)]
pub struct NoCycles {
    pub among: Vec<Selector>,
    pub min_requests: u64,
}

/// A number (`0.01`) or a percentage (`"1%"`).
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
enum NumOrText {
    Num(f64),
    Text(String),
}

fn error_rate(field: &str, v: &NumOrText) -> Result<f64, String> {
    let f = match v {
        NumOrText::Num(n) => *n,
        NumOrText::Text(t) => match t.trim().strip_suffix('%') {
            Some(p) => {
                p.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("{field}: {t:?} is not a percentage like \"1%\""))?
                    / 100.0
            }
            None => t.trim().parse::<f64>().map_err(|_| {
                format!("{field}: {t:?} is not a fraction (0.01) or a percentage (\"1%\")")
            })?,
        },
    };
    if !(0.0..=1.0).contains(&f) {
        return Err(format!(
            "{field}: must be between 0 and 1 (or 0% and 100%), got {f}"
        ));
    }
    Ok(f)
}

/// A latency: `"300ms"`, `"1.5s"`, or a number of milliseconds.
fn millis(field: &str, v: &NumOrText) -> Result<f64, String> {
    let ms = match v {
        NumOrText::Num(n) => *n,
        NumOrText::Text(t) => {
            let t = t.trim();
            let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
                (n, 1.0)
            } else if let Some(n) = t.strip_suffix("us") {
                (n, 0.001)
            } else if let Some(n) = t.strip_suffix('s') {
                (n, 1000.0)
            } else if let Some(n) = t.strip_suffix('m') {
                (n, 60_000.0)
            } else {
                (t, 1.0)
            };
            num.trim().parse::<f64>().map_err(|_| {
                format!("{field}: {t:?} is not a latency like \"300ms\" or \"1.5s\"")
            })? * scale
        }
    };
    if !ms.is_finite() || ms <= 0.0 || ms > 86_400_000.0 {
        return Err(format!(
            "{field}: must be more than 0 and at most a day, got {ms} ms"
        ));
    }
    Ok(ms)
}

fn duration(field: &str, s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{field}: {s:?} is not a duration like \"5m\" ({e})"))?;
    if d < Duration::from_secs(60) || d > MAX_WINDOW {
        return Err(format!(
            "{field}: between 1m and 31d (the graph is per minute), got {s:?}"
        ));
    }
    Ok(d)
}

fn non_negative(field: &str, v: f64) -> Result<f64, String> {
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{field}: must be a number ≥ 0, got {v}"));
    }
    Ok(v)
}

/// Exactly one of the kinds must be present.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    #[serde(default)]
    description: String,
    window: Option<String>,
    #[serde(rename = "for")]
    for_duration: Option<String>,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    slo: Option<RawSlo>,
    regression: Option<RawRegression>,
    forbid: Option<RawEdgeMatch>,
    require: Option<RawEdgeMatch>,
    allowed_callers: Option<RawCallers>,
    no_cycles: Option<RawNoCycles>,
    canary: Option<super::canary::RawCanary>,
    stale_callees: Option<super::stale::RawStale>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawNoCycles {
    #[serde(default)]
    among: Vec<String>,
    min_requests: Option<u64>,
}

/// The subject fields SLO and regression rules share (serde cannot `flatten` into a
/// `deny_unknown_fields` struct, so both list them and hand them over as this).
struct RawScope {
    source: Option<String>,
    target: Option<String>,
    node: Option<String>,
    region: Option<String>,
    namespace: Option<String>,
    min_requests: Option<u64>,
}

macro_rules! raw_scope {
    ($r:expr) => {
        RawScope {
            source: $r.source,
            target: $r.target,
            node: $r.node,
            region: $r.region,
            namespace: $r.namespace,
            min_requests: $r.min_requests,
        }
    };
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawSlo {
    source: Option<String>,
    target: Option<String>,
    node: Option<String>,
    region: Option<String>,
    namespace: Option<String>,
    min_requests: Option<u64>,
    max_error_rate: Option<NumOrText>,
    max_p95: Option<NumOrText>,
    max_p99: Option<NumOrText>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawRegression {
    source: Option<String>,
    target: Option<String>,
    node: Option<String>,
    region: Option<String>,
    namespace: Option<String>,
    min_requests: Option<u64>,
    baseline_offset: Option<String>,
    max_error_rate_increase_points: Option<f64>,
    max_p95_increase_percent: Option<f64>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawEdgeMatch {
    from: String,
    to: String,
    min_requests: Option<u64>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawCallers {
    service: String,
    callers: Vec<String>,
    min_requests: Option<u64>,
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawRule::deserialize(d)?;
        Rule::try_from(raw).map_err(serde::de::Error::custom)
    }
}

fn scope(raw: RawScope) -> Result<Scope, String> {
    let sel = |f: &str, v: &str| Selector::parse(v).map_err(|e| format!("{f}: {e}"));
    let subject = match (raw.source, raw.target, raw.node) {
        (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            return Err("give either source/target (edges) or node, not both".into());
        }
        (None, None, Some(n)) => Subject::Node(sel("node", &n)?),
        (None, None, None) => {
            return Err("say what to measure: source and/or target (edges), or node".into());
        }
        (s, t, None) => Subject::Edge {
            source: sel("source", s.as_deref().unwrap_or("*"))?,
            target: sel("target", t.as_deref().unwrap_or("*"))?,
        },
    };
    Ok(Scope {
        subject,
        region: raw.region.map(Glob),
        namespace: raw.namespace.map(Glob),
        min_requests: raw.min_requests.unwrap_or(DEFAULT_MIN_REQUESTS),
    })
}

impl TryFrom<RawRule> for Rule {
    type Error = String;

    fn try_from(r: RawRule) -> Result<Self, String> {
        let name = r.name.trim().to_string();
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err("name: 1 to 200 printable characters".into());
        }
        let window = match &r.window {
            Some(w) => duration("window", w)?,
            None => DEFAULT_WINDOW,
        };
        let given = [
            r.slo.is_some(),
            r.regression.is_some(),
            r.forbid.is_some(),
            r.require.is_some(),
            r.allowed_callers.is_some(),
            r.no_cycles.is_some(),
            r.canary.is_some(),
            r.stale_callees.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(format!(
                "rule {name:?}: give exactly one of slo, regression, canary, forbid, require, allowed_callers, no_cycles, stale_callees"
            ));
        }
        let at = |e: String| format!("rule {name:?}: {e}");
        let kind = if let Some(s) = r.slo {
            let scope = scope(raw_scope!(s)).map_err(at)?;
            let slo = Slo {
                scope,
                max_error_rate: s
                    .max_error_rate
                    .as_ref()
                    .map(|v| error_rate("max_error_rate", v))
                    .transpose()
                    .map_err(at)?,
                max_p95_ms: s
                    .max_p95
                    .as_ref()
                    .map(|v| millis("max_p95", v))
                    .transpose()
                    .map_err(at)?,
                max_p99_ms: s
                    .max_p99
                    .as_ref()
                    .map(|v| millis("max_p99", v))
                    .transpose()
                    .map_err(at)?,
            };
            if slo.max_error_rate.is_none() && slo.max_p95_ms.is_none() && slo.max_p99_ms.is_none()
            {
                return Err(at("an slo needs max_error_rate, max_p95 or max_p99".into()));
            }
            RuleKind::Slo(slo)
        } else if let Some(g) = r.regression {
            let scope = scope(raw_scope!(g)).map_err(at)?;
            let reg = Regression {
                scope,
                baseline_offset: match &g.baseline_offset {
                    Some(o) => duration("baseline_offset", o).map_err(at)?,
                    None => window,
                },
                max_error_rate_increase_points: g
                    .max_error_rate_increase_points
                    .map(|v| non_negative("max_error_rate_increase_points", v))
                    .transpose()
                    .map_err(at)?,
                max_p95_increase_percent: g
                    .max_p95_increase_percent
                    .map(|v| non_negative("max_p95_increase_percent", v))
                    .transpose()
                    .map_err(at)?,
            };
            if reg.max_error_rate_increase_points.is_none()
                && reg.max_p95_increase_percent.is_none()
            {
                return Err(at(
                    "a regression needs max_error_rate_increase_points or max_p95_increase_percent"
                        .into(),
                ));
            }
            if reg.baseline_offset < window {
                return Err(at(
                    "baseline_offset must be at least the window, so the baseline does not overlap it"
                        .into(),
                ));
            }
            RuleKind::Regression(reg)
        } else if let Some(f) = r.forbid {
            RuleKind::Forbid(edge_match(f).map_err(at)?)
        } else if let Some(f) = r.require {
            RuleKind::Require(edge_match(f).map_err(at)?)
        } else if let Some(c) = r.allowed_callers {
            if c.callers.is_empty() {
                return Err(at(
                    "allowed_callers.callers: list at least one caller".into()
                ));
            }
            RuleKind::AllowedCallers(AllowedCallers {
                service: Selector::parse(&c.service).map_err(|e| at(format!("service: {e}")))?,
                callers: c
                    .callers
                    .iter()
                    .map(|s| Selector::parse(s).map_err(|e| at(format!("callers: {e}"))))
                    .collect::<Result<_, _>>()?,
                min_requests: c.min_requests.unwrap_or(1).max(1),
            })
        } else if let Some(c) = r.no_cycles {
            let among = if c.among.is_empty() {
                vec!["*".to_string()]
            } else {
                c.among
            };
            RuleKind::NoCycles(NoCycles {
                among: among
                    .iter()
                    .map(|s| Selector::parse(s).map_err(|e| at(format!("among: {e}"))))
                    .collect::<Result<_, _>>()?,
                min_requests: c.min_requests.unwrap_or(1).max(1),
            })
        } else if let Some(c) = r.canary {
            RuleKind::Canary(c.try_into().map_err(at)?)
        } else if let Some(c) = r.stale_callees {
            RuleKind::StaleCallees(c.try_into().map_err(at)?)
        } else {
            unreachable!("exactly one kind was checked above")
        };
        let for_duration = match r.for_duration.as_deref().map(str::trim) {
            None | Some("0") | Some("0s") => Duration::ZERO,
            Some(f) => humantime::parse_duration(f)
                .ok()
                .filter(|d| *d <= Duration::from_secs(86400))
                .ok_or_else(|| {
                    at(format!(
                        "for: {f:?} is not a duration up to 1d, like \"5m\""
                    ))
                })?,
        };
        for (k, v) in &r.labels {
            let valid = k
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !k.starts_with("__");
            if !valid {
                return Err(at(format!(
                    "labels: {k:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)"
                )));
            }
            if matches!(k.as_str(), "alertname" | "rule" | "kind") {
                return Err(at(format!("labels: {k:?} is set by Orrery")));
            }
            if v.len() > 1024 {
                return Err(at(format!("labels: {k:?}: value over 1024 bytes")));
            }
        }
        Ok(Rule {
            labels: r.labels,
            for_duration,
            name,
            description: r.description,
            window,
            kind,
        })
    }
}

fn edge_match(f: RawEdgeMatch) -> Result<EdgeMatch, String> {
    Ok(EdgeMatch {
        from: Selector::parse(&f.from).map_err(|e| format!("from: {e}"))?,
        to: Selector::parse(&f.to).map_err(|e| format!("to: {e}"))?,
        // A conformity rule counts any call; 0 would match edges that are not there.
        min_requests: f.min_requests.unwrap_or(1).max(1),
    })
}

/// Largest rules file read (a typo'd path to a huge file is refused, not read into memory).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The file's shape, read first so YAML syntax errors keep the reader's exact position; each
/// rule is then validated on its own and an error is placed on the rule's line.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawFile {
    rules: Vec<serde_norway::Value>,
}

/// Line (1-based) of each block-style item of the top-level `rules:` sequence.
fn item_lines(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut in_rules = false;
    let mut indent: Option<usize> = None;
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let at = line.len() - body.len();
        if at == 0 && !body.starts_with('-') {
            in_rules = body.starts_with("rules:");
            continue;
        }
        if in_rules && (body == "-" || body.starts_with("- ")) && indent.is_none_or(|i| i == at) {
            indent = Some(at);
            out.push(n + 1);
        }
    }
    out
}

/// Parses and validates a rules file's text; the error names the line and the reason.
pub fn parse(text: &str) -> Result<RuleSet, String> {
    let file: RawFile = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    if file.rules.is_empty() {
        return Err("rules: the file has no rules".into());
    }
    let lines = item_lines(text);
    let at = |i: usize| {
        lines
            .get(i)
            .map(|l| format!("line {l}: "))
            .unwrap_or_default()
    };
    let mut rules: Vec<Rule> = Vec::with_capacity(file.rules.len());
    for (i, v) in file.rules.into_iter().enumerate() {
        let rule = Rule::deserialize(v).map_err(|e| format!("{}rules[{i}]: {e}", at(i)))?;
        // Names identify rules in output and (later) alerts: they must be unique.
        if rules.iter().any(|p| p.name == rule.name) {
            return Err(format!(
                "{}rules[{i}]: duplicate rule name {:?}",
                at(i),
                rule.name
            ));
        }
        rules.push(rule);
    }
    Ok(RuleSet { rules })
}

/// Reads and parses a rules file.
pub fn load(path: &std::path::Path) -> Result<RuleSet, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{}: {} bytes, more than the {MAX_FILE_BYTES} a rules file may have",
            path.display(),
            meta.len()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}
