//! Parsing request parameters (windows, durations, levels) into checked values; every failure
//! is a message for a 400.

use std::collections::HashMap;
use std::time::Duration;

use crate::error::ApiError;
use crate::graph::{GraphRequest, Level, Span};
use crate::rollup::floor_minute;

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

/// A duration like `250ms`, `1.5s`, `5m`, `2h`, `1d`, or a bare number of `bare_unit`; at
/// most [`MAX_DURATION`], never negative, NaN or infinite.
pub fn duration(name: &str, value: &str, bare_unit: Duration) -> Result<Duration, String> {
    let d = parse_duration(name, value, bare_unit)?;
    if d > MAX_DURATION {
        return Err(format!("{name}: {value:?} is longer than 3650 days"));
    }
    Ok(d)
}

/// Seconds as a `Duration`, checked: `Duration::from_secs_f64` panics on NaN, infinity,
/// negatives and overflow, so those are refused first.
fn secs(name: &str, value: &str, secs: f64) -> Result<Duration, String> {
    if secs.is_nan() || secs < 0.0 {
        return Err(format!("{name}: {value:?} must be a non-negative duration"));
    }
    if !secs.is_finite() || secs > MAX_DURATION.as_secs_f64() {
        return Err(format!("{name}: {value:?} is longer than 3650 days"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_duration(name: &str, value: &str, bare_unit: Duration) -> Result<Duration, String> {
    let v = value.trim();
    if let Ok(n) = v.parse::<f64>() {
        return secs(name, value, n * bare_unit.as_secs_f64());
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
            return self::secs(name, value, n * secs);
        }
    }
    humantime::parse_duration(v)
        .map_err(|e| format!("{name}: {value:?} is not a duration like 500ms, 1.5s, 5m, 2h ({e})"))
}

pub fn int(name: &str, value: &str) -> Result<i64, String> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| format!("{name}: {value:?} is not an integer"))
}

/// A timestamp in Unix milliseconds (between the epoch and 2100), as nanoseconds.
pub fn timestamp_ms(name: &str, value: &str) -> Result<i64, String> {
    let ms = int(name, value)?;
    if !(0..=MAX_TIMESTAMP_MS).contains(&ms) {
        return Err(format!(
            "{name}: {value:?} is not a Unix time in milliseconds between 1970 and 2100"
        ));
    }
    Ok(ms * 1_000_000)
}

pub fn boolean(name: &str, value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{name}: {value:?} is not a boolean (true/false)")),
    }
}

fn ceil_minute(ns: i64) -> i64 {
    let f = floor_minute(ns);
    if f == ns { f } else { f + MINUTE_NS }
}

/// A minute-aligned window from `start`/`end` (Unix ms) or `since` (default `default_since`).
pub fn window(q: &Query, now_ns: i64, default_since: Duration) -> Result<Span, String> {
    let end_ns = match q.get("end").filter(|v| !v.is_empty()) {
        Some(v) => timestamp_ms("end", v)?,
        None => now_ns,
    };
    let start_ns = match (q.get("start").filter(|v| !v.is_empty()), q.get("since")) {
        (Some(v), _) => timestamp_ms("start", v)?,
        (None, Some(s)) => {
            let d = duration("since", s, Duration::from_secs(1))?;
            end_ns.saturating_sub(d.as_nanos() as i64)
        }
        (None, None) => end_ns.saturating_sub(default_since.as_nanos() as i64),
    };
    span(start_ns, end_ns, now_ns)
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

pub fn level(q: &Query) -> Result<Level, String> {
    q.get("level").map_or(Ok(Level::Region), |s| s.parse())
}

/// `application/x-www-form-urlencoded` pairs (repeated keys kept).
pub fn url_decode_pairs(q: &str) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()))
}

/// The window of a graph request without `start` or `since`.
pub const DEFAULT_SINCE: Duration = Duration::from_secs(300);

/// A graph request from its parameters (`level`, `region`, `service`, the window). The live
/// stream shares one computation among requests equal here (`live.rs`), so every parameter
/// that changes the graph must end up in the `GraphRequest`.
pub fn graph_request(q: &Query, now_ns: i64) -> Result<GraphRequest, ApiError> {
    let level = level(q)?;
    let window = window(q, now_ns, DEFAULT_SINCE)?;
    let focus = q.get("service").filter(|s| !s.is_empty()).cloned();
    if level == Level::Focused && focus.is_none() {
        return Err(ApiError::bad_request(
            "level=focused needs service=<node id>",
        ));
    }
    let group = crate::graph::group::parse(
        q.get("group").map(String::as_str),
        q.get("expand").map(String::as_str),
    )?;
    crate::graph::group::check_level(level, &group)?;
    Ok(GraphRequest {
        level,
        region: q.get("region").filter(|s| !s.is_empty()).cloned(),
        focus,
        window,
        whats_wrong: true,
        group,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_spelling() {
        let ms = Duration::from_millis(1);
        assert_eq!(
            duration("d", "1.5s", ms).unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            duration("d", "250ms", ms).unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(duration("d", "5m", ms).unwrap(), Duration::from_secs(300));
        assert_eq!(
            duration("d", "100", ms).unwrap(),
            Duration::from_millis(100)
        );
        assert_eq!(
            duration("d", "1h 30m", ms).unwrap(),
            Duration::from_secs(5400)
        );
        assert!(duration("d", "soon", ms).is_err());
        assert!(duration("d", "-3s", ms).is_err());
    }

    #[test]
    fn extreme_durations_are_refused_not_panics() {
        let ms = Duration::from_millis(1);
        for v in [
            "1e300",
            "1e300s",
            "1e300d",
            "NaN",
            "nans",
            "inf",
            "-inf",
            "infs",
            "-0.5",
            "-1ms",
            "99999999999999999999d",
            "100000000000000000000000000000",
            "5000000000h",
        ] {
            let e = duration("since", v, ms).unwrap_err();
            assert!(e.contains("since"), "{v}: {e}");
        }
        assert_eq!(duration("d", "3650d", ms).unwrap(), MAX_DURATION);
    }

    #[test]
    fn extreme_windows_are_refused_not_panics() {
        let now = 1_000 * MINUTE_NS;
        for (k, v) in [
            ("start", i64::MAX.to_string()),
            ("start", i64::MIN.to_string()),
            ("start", "-1".to_string()),
            ("end", i64::MAX.to_string()),
            ("end", "9223372036854775807000".to_string()),
            ("since", "1e300".to_string()),
            ("since", "3650d".to_string()),
        ] {
            let q: Query = [(k.to_string(), v.clone())].into_iter().collect();
            assert!(window(&q, now, Duration::from_secs(60)).is_err(), "{k}={v}");
        }
        assert!(span(i64::MIN, i64::MAX, now).is_err());
        assert!(span(i64::MAX - 1, i64::MAX, now).is_err());
    }

    #[test]
    fn windows_are_minute_aligned_and_checked() {
        let now = 1_000 * MINUTE_NS + 30_000_000_000;
        let mut q = Query::new();
        q.insert("since".into(), "5m".into());
        let w = window(&q, now, Duration::from_secs(60)).unwrap();
        assert_eq!(w.lo, 995 * MINUTE_NS);
        assert_eq!(w.hi, 1001 * MINUTE_NS);
        assert!(w.live());
        q.insert("start".into(), "10".into());
        q.insert("end".into(), "5".into());
        assert!(window(&q, now, Duration::from_secs(60)).is_err());
        q.insert("start".into(), "x".into());
        assert!(
            window(&q, now, Duration::from_secs(60))
                .unwrap_err()
                .contains("start")
        );
    }
}
