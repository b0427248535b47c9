//! Request parameters: the typed query string of every Orrery API endpoint (`Params<T>` and
//! the `…Params` structs) and the value rules they share with the Jaeger API and the checks
//! (windows, durations, times, levels); every failure is a 400 naming the parameter.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use orrery_api::NodeId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::error::ApiError;
use crate::graph::{GraphRequest, Level, Span};
use crate::rollup::floor_minute;
use crate::traces::{Order, Search};

mod pairs;

const MINUTE_NS: i64 = 60_000_000_000;
/// Longest window accepted: retention is the real bound (a graph reads hourly rollups, and
/// what is older than the retention holds nothing), this only keeps the arithmetic finite.
const MAX_WINDOW: Duration = MAX_DURATION;
/// Longest duration any parameter accepts (ten years): far beyond any window or span, and
/// far inside what nanosecond arithmetic on `i64` can hold, so no later sum overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86400);
/// Latest timestamp accepted (2100-01-01, in Unix ms); the earliest is the epoch.
pub const MAX_TIMESTAMP_MS: i64 = 4_102_444_800_000;

pub type Query = HashMap<String, String>;

/// `name: message` — every parameter error names its parameter first.
fn named<T>(name: &str, r: Result<T, String>) -> Result<T, String> {
    r.map_err(|e| format!("{name}: {e}"))
}

/// A duration like `250ms`, `1.5s`, `5m`, `2h`, `1d`, or a bare number of `bare_unit`; at
/// most [`MAX_DURATION`], never negative, NaN or infinite.
pub fn duration(name: &str, value: &str, bare_unit: Duration) -> Result<Duration, String> {
    named(name, duration_value(value, bare_unit))
}

fn duration_value(value: &str, bare_unit: Duration) -> Result<Duration, String> {
    let d = parse_duration(value, bare_unit)?;
    if d > MAX_DURATION {
        return Err(format!("{value:?} is longer than 3650 days"));
    }
    Ok(d)
}

/// Seconds as a `Duration`, checked: `Duration::from_secs_f64` panics on NaN, infinity,
/// negatives and overflow, so those are refused first.
fn secs(value: &str, secs: f64) -> Result<Duration, String> {
    if secs.is_nan() || secs < 0.0 {
        return Err(format!("{value:?} must be a non-negative duration"));
    }
    if !secs.is_finite() || secs > MAX_DURATION.as_secs_f64() {
        return Err(format!("{value:?} is longer than 3650 days"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_duration(value: &str, bare_unit: Duration) -> Result<Duration, String> {
    let v = value.trim();
    if let Ok(n) = v.parse::<f64>() {
        return secs(value, n * bare_unit.as_secs_f64());
    }
    // humantime has no fractions ("1.5s"); handle `<float><unit>` for the common units.
    let units: [(&str, f64); 7] = [
        ("us", 1e-6),
        ("µs", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
        ("d", 86400.0),
    ];
    for (unit, secs) in units {
        if let Some(num) = v.strip_suffix(unit)
            && let Ok(n) = num.trim().parse::<f64>()
        {
            return self::secs(value, n * secs);
        }
    }
    humantime::parse_duration(v)
        .map_err(|e| format!("{value:?} is not a duration like 500ms, 1.5s, 5m, 2h ({e})"))
}

pub fn int(name: &str, value: &str) -> Result<i64, String> {
    named(name, int_value(value))
}

fn int_value(value: &str) -> Result<i64, String> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| format!("{value:?} is not an integer"))
}

/// A timestamp in Unix milliseconds (between the epoch and 2100), as nanoseconds.
pub fn timestamp_ms(name: &str, value: &str) -> Result<i64, String> {
    named(name, timestamp_ms_value(value))
}

fn timestamp_ms_value(value: &str) -> Result<i64, String> {
    let ms = int_value(value)?;
    if !(0..=MAX_TIMESTAMP_MS).contains(&ms) {
        return Err(format!(
            "{value:?} is not a Unix time in milliseconds between 1970 and 2100"
        ));
    }
    Ok(ms * 1_000_000)
}

pub fn boolean(name: &str, value: &str) -> Result<bool, String> {
    named(name, boolean_value(value))
}

fn boolean_value(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{value:?} is not a boolean (true/false)")),
    }
}

fn ceil_minute(ns: i64) -> i64 {
    let f = floor_minute(ns);
    if f == ns { f } else { f + MINUTE_NS }
}

/// A minute-aligned window from `start`/`end` (Unix ms) or `since` (default `default_since`),
/// from a map of parameters already read.
pub fn window(q: &Query, now_ns: i64, default_since: Duration) -> Result<Span, String> {
    from_pairs::<WindowParams>(q.clone())?.span(now_ns, default_since)
}

/// A checked window `[start, end)` in ns: non-empty, at most 3650 days, within 1970..2100 (so
/// minute rounding and the comparisons and baselines derived from it cannot overflow).
pub fn span(start_ns: i64, end_ns: i64, now_ns: i64) -> Result<Span, String> {
    let latest = MAX_TIMESTAMP_MS * 1_000_000;
    if !(0..=latest).contains(&start_ns) || !(0..=latest).contains(&end_ns) {
        return Err("the window must lie between 1970 and 2100".into());
    }
    if end_ns <= start_ns {
        return Err("the window is empty: start must be before end".into());
    }
    if (end_ns - start_ns) as u128 > MAX_WINDOW.as_nanos() {
        return Err("the window is longer than 3650 days".into());
    }
    Ok(Span {
        lo: floor_minute(start_ns),
        hi: ceil_minute(end_ns),
        now: now_ns,
    })
}

/// `application/x-www-form-urlencoded` pairs (repeated keys kept).
pub fn url_decode_pairs(q: &str) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()))
}

/// The window of a graph request without `start` or `since`.
pub const DEFAULT_SINCE: Duration = Duration::from_secs(300);

/// A graph request from a map of parameters (see [`GraphParams::request`]).
pub fn graph_request(q: &Query, now_ns: i64) -> Result<GraphRequest, ApiError> {
    let g: GraphParams = from_pairs(q.clone())?;
    let w: WindowParams = from_pairs(q.clone())?;
    g.request(&w, now_ns)
}

// ---------------------------------------------------------------------------------------------
// Typed parameters: each endpoint's query string is a struct deserialized by `Params<T>`
// (`params/pairs.rs`), so there is one way a parameter is read and checked. A field's type
// checks its value (the value types below, `Level`, `NodeId`); the struct's own method
// checks what depends on several (a window's ends, `level=focused` needing `service`). Every
// failure is a 400 `{"error": "<parameter>: <what is wrong, what to send>"}`.
// ---------------------------------------------------------------------------------------------

/// The extractor of a request's typed parameters: unknown parameters are ignored, a repeated
/// one counts once (the last) except in a `Vec` field (`attr`), and an empty value of an
/// optional parameter is as if it were absent.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Params(from_query(parts.uri.query().unwrap_or(""))?))
    }
}

/// `T` from a raw query string (`a=1&b=2`).
pub fn from_query<T: DeserializeOwned>(raw: &str) -> Result<T, String> {
    from_pairs(url_decode_pairs(raw))
}

/// `T` from decoded `(name, value)` pairs.
pub fn from_pairs<T: DeserializeOwned>(
    pairs: impl IntoIterator<Item = (String, String)>,
) -> Result<T, String> {
    pairs::deserialize(pairs)
}

/// Implements `Deserialize` for a value type from its checking function; the message says
/// what is wrong with the value, the reader puts the parameter's name in front.
macro_rules! value_type {
    ($t:ident, $check:expr) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = String::deserialize(d)?;
                $check(&v).map($t).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A duration whose bare number is in seconds (`since`, `interval`): `90`, `1.5m`, `2h`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Secs(pub Duration);
value_type!(Secs, |v| duration_value(v, Duration::from_secs(1)));

/// A duration whose bare number is in milliseconds (`min_duration`, `max_duration`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Millis(pub Duration);
value_type!(Millis, |v| duration_value(v, Duration::from_millis(1)));

/// A time given in Unix milliseconds (1970..2100), held in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnixMs(pub i64);
value_type!(UnixMs, timestamp_ms_value);

/// A whole number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Int(pub i64);
value_type!(Int, int_value);

/// A boolean: true/false, 1/0, yes/no, on/off; given without a value it is true (`?errors`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Flag(pub bool);
value_type!(Flag, boolean_value);

/// The window of a request: `start`/`end` in Unix ms, or `since` (seconds if bare) before
/// `end` (default now); `since` is ignored when `start` is given.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WindowParams {
    pub start: Option<UnixMs>,
    pub end: Option<UnixMs>,
    pub since: Option<Secs>,
}

impl WindowParams {
    /// The checked, minute-aligned window (`default_since` when neither `start` nor `since`).
    pub fn span(&self, now_ns: i64, default_since: Duration) -> Result<Span, String> {
        let end_ns = self.end.map_or(now_ns, |e| e.0);
        let start_ns = match (self.start, self.since) {
            (Some(s), _) => s.0,
            (None, since) => {
                let d = since.map_or(default_since, |s| s.0);
                end_ns.saturating_sub(d.as_nanos() as i64)
            }
        };
        span(start_ns, end_ns, now_ns)
    }
}

/// `GET /orrery/api/graph` (and `/graph/diff`, `/graph/stream`), besides the window.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GraphParams {
    /// `global`, `region` (default) or `focused`.
    pub level: Option<Level>,
    /// Only this region's services (`level=region`).
    pub region: Option<String>,
    /// The node a focused map is centred on (`level=focused`).
    pub service: Option<NodeId>,
    /// `auto`, `none`, `namespace`, `region`, `prefix` or `attr:<kept resource attribute>`
    /// (`graph/group.rs`).
    pub group: Option<String>,
    /// Comma-separated groups shown as their services.
    pub expand: Option<String>,
}

impl GraphParams {
    /// The graph request. The live stream shares one computation among requests equal here
    /// (`live.rs`), so every parameter that changes the graph must end up in the
    /// `GraphRequest`.
    pub fn request(&self, w: &WindowParams, now_ns: i64) -> Result<GraphRequest, ApiError> {
        let level = self.level.unwrap_or_default();
        let window = w.span(now_ns, DEFAULT_SINCE)?;
        let focus = self.service.as_ref().map(NodeId::to_string);
        if level == Level::Focused && focus.is_none() {
            return Err(ApiError::bad_request(
                "level=focused needs service=<node id>",
            ));
        }
        let group = crate::graph::group::parse(self.group.as_deref(), self.expand.as_deref())?;
        crate::graph::group::check_level(level, &group)?;
        Ok(GraphRequest {
            level,
            region: self.region.clone(),
            focus,
            window,
            whats_wrong: true,
            group,
        })
    }
}

/// `GET /orrery/api/graph/diff`: the window compared against (default: the one before).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BaseParams {
    pub base_start: Option<UnixMs>,
    pub base_end: Option<UnixMs>,
}

impl BaseParams {
    pub fn span(&self, window: Span, now_ns: i64) -> Result<Span, ApiError> {
        match (self.base_start, self.base_end) {
            (Some(a), Some(b)) => Ok(span(a.0, b.0, now_ns)?),
            (None, None) => Ok(window.previous()),
            _ => Err(ApiError::bad_request(
                "give both base_start and base_end, or neither",
            )),
        }
    }
}

/// `GET /orrery/api/graph/stream`: how often a new graph is sent (default
/// `--graph-stream-interval`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamParams {
    pub interval: Option<Secs>,
}

impl StreamParams {
    pub fn interval(&self, default: Duration) -> Result<Duration, ApiError> {
        let interval = self.interval.map_or(default, |i| i.0);
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&interval) {
            return Err(ApiError::bad_request("interval: between 1s and 1h"));
        }
        Ok(interval)
    }
}

/// `GET /orrery/api/edges`: the edge's two ends.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EdgeParams {
    pub source: Option<NodeId>,
    pub target: Option<NodeId>,
}

impl EdgeParams {
    pub fn ends(&self) -> Result<(&NodeId, &NodeId), ApiError> {
        match (&self.source, &self.target) {
            (Some(s), Some(t)) => Ok((s, t)),
            _ => Err(ApiError::bad_request(
                "source and target (node ids) are required",
            )),
        }
    }
}

/// `GET /orrery/api/operations`: the service whose operations are listed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ServiceParams {
    pub service: Option<String>,
}

/// `/orrery/api/checks/versions`: the service and its canary (`version` and/or `instance`,
/// repeated); the window is `WindowParams`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct VersionsParams {
    pub service: Option<String>,
    pub version: Option<String>,
    #[serde(default)]
    pub instance: Vec<String>,
}

/// `/orrery/api/checks/last-seen`: the services (repeated) and how far back (`since`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LastSeenParams {
    #[serde(default)]
    pub service: Vec<String>,
    pub since: Option<Secs>,
}

/// `/orrery/api/checks/history`: the rules (repeated; none: all) and events per rule. `limit`
/// is read as text so that any bad value gets the range in its message.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HistoryParams {
    #[serde(default)]
    pub rule: Vec<String>,
    pub limit: Option<String>,
}

/// Most `attr` filters in one search: each is a condition on every span read.
pub const MAX_SEARCH_ATTRIBUTES: usize = 20;

/// `GET /orrery/api/traces` (trace search), besides the window.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SearchParams {
    pub service: Option<String>,
    pub operation: Option<String>,
    /// `key=value`, repeated: traces with a span carrying every one.
    #[serde(default)]
    pub attr: Vec<String>,
    pub min_duration: Option<Millis>,
    pub max_duration: Option<Millis>,
    #[serde(default)]
    pub errors: Flag,
    /// 1..=1000, default 20.
    pub limit: Option<Int>,
    /// `newest` (default), `oldest`, `slowest`, `fastest`.
    pub order: Option<String>,
}

impl SearchParams {
    pub fn search(&self) -> Result<Search, ApiError> {
        if self.attr.len() > MAX_SEARCH_ATTRIBUTES {
            return Err(ApiError::bad_request(format!(
                "attr: at most {MAX_SEARCH_ATTRIBUTES} attribute filters per search"
            )));
        }
        let mut attributes = Vec::with_capacity(self.attr.len());
        for v in &self.attr {
            let Some((key, value)) = v.split_once('=') else {
                return Err(ApiError::bad_request(format!(
                    "attr: {v:?} must be key=value"
                )));
            };
            if key.trim().is_empty() {
                return Err(ApiError::bad_request(format!(
                    "attr: {v:?} has an empty key"
                )));
            }
            attributes.push((key.trim().to_string(), value.to_string()));
        }
        let limit = match self.limit {
            None => 20,
            Some(Int(n)) if (1..=1000).contains(&n) => n as usize,
            Some(_) => return Err(ApiError::bad_request("limit: between 1 and 1000")),
        };
        let min = self.min_duration.map(|d| d.0.as_nanos() as u64);
        let max = self.max_duration.map(|d| d.0.as_nanos() as u64);
        if let (Some(a), Some(b)) = (min, max)
            && a > b
        {
            return Err(ApiError::bad_request(
                "min_duration is greater than max_duration",
            ));
        }
        Ok(Search {
            service: self.service.clone(),
            operation: self.operation.clone(),
            attributes,
            min_duration_ns: min,
            max_duration_ns: max,
            errors_only: self.errors.0,
            limit,
            order: Order::parse(self.order.as_deref().unwrap_or(""))?,
        })
    }
}

#[cfg(test)]
mod tests;
