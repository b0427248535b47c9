//! Parsing request parameters (windows, durations, levels) into checked values; every failure
//! is a message for a 400.

use std::collections::HashMap;
use std::time::Duration;

use crate::graph::{Level, Span};
use crate::rollup::floor_minute;

const MINUTE_NS: i64 = 60_000_000_000;
/// Longest window accepted (retention is days; anything longer is a typo).
const MAX_WINDOW: Duration = Duration::from_secs(31 * 86400);

pub type Query = HashMap<String, String>;

/// A duration like `250ms`, `1.5s`, `5m`, `2h`, `1d`, or a bare number of `bare_unit`.
pub fn duration(name: &str, value: &str, bare_unit: Duration) -> Result<Duration, String> {
    let v = value.trim();
    if let Ok(n) = v.parse::<f64>() {
        if n.is_finite() && n >= 0.0 {
            return Ok(bare_unit.mul_f64(n));
        }
        return Err(format!("{name}: {value:?} must not be negative"));
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
            && n.is_finite()
            && n >= 0.0
        {
            return Ok(Duration::from_secs_f64(n * secs));
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
        Some(v) => int("end", v)?.saturating_mul(1_000_000),
        None => now_ns,
    };
    let start_ns = match (q.get("start").filter(|v| !v.is_empty()), q.get("since")) {
        (Some(v), _) => int("start", v)?.saturating_mul(1_000_000),
        (None, Some(s)) => {
            let d = duration("since", s, Duration::from_secs(1))?;
            end_ns - d.as_nanos() as i64
        }
        (None, None) => end_ns - default_since.as_nanos() as i64,
    };
    span(start_ns, end_ns, now_ns)
}

pub fn span(start_ns: i64, end_ns: i64, now_ns: i64) -> Result<Span, String> {
    if end_ns <= start_ns {
        return Err("the window is empty: start must be before end".into());
    }
    if (end_ns - start_ns) as u128 > MAX_WINDOW.as_nanos() {
        return Err("the window is longer than 31 days".into());
    }
    Ok(Span {
        lo: floor_minute(start_ns),
        hi: ceil_minute(end_ns),
        now: now_ns,
    })
}

pub fn level(q: &Query) -> Result<Level, String> {
    match q.get("level").map(|s| s.as_str()).unwrap_or("region") {
        "global" => Ok(Level::Global),
        "region" | "" => Ok(Level::Region),
        "focused" => Ok(Level::Focused),
        other => Err(format!(
            "level: {other:?} is not one of global, region, focused"
        )),
    }
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
