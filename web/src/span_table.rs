//! The trace page's spans table (Jaeger UI's "trace spans table"), browser-free: the spans
//! ordered by a column, at most `limit` of them (a 50,000-span trace lists its slowest 1,000, not
//! 50,000 DOM rows).

use crate::waterfall::TraceModel;

/// The table's row cap.
pub const LIMIT: usize = 1_000;

/// Columns the table sorts by.
pub const COLUMNS: [(&str, &str); 4] = [
    ("duration", "duration"),
    ("start", "start"),
    ("service", "service"),
    ("operation", "operation"),
];

/// Span indexes ordered by `by` (duration: longest first; start: earliest first; service and
/// operation: A→Z, then longest first), cut to `limit`. Ties by span id (stable).
pub fn order(m: &TraceModel, by: &str, limit: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..m.spans.len()).collect();
    let s = &m.spans;
    let id = |a: usize, b: usize| s[a].span_id.cmp(&s[b].span_id);
    let longest = |a: usize, b: usize| s[b].duration_us.cmp(&s[a].duration_us);
    let cmp = |&a: &usize, &b: &usize| match by {
        "start" => s[a].start_us.cmp(&s[b].start_us).then_with(|| id(a, b)),
        "service" => s[a]
            .service
            .cmp(&s[b].service)
            .then_with(|| longest(a, b))
            .then_with(|| id(a, b)),
        "operation" => s[a]
            .name
            .cmp(&s[b].name)
            .then_with(|| longest(a, b))
            .then_with(|| id(a, b)),
        _ => longest(a, b).then_with(|| id(a, b)),
    };
    if v.len() > limit {
        v.select_nth_unstable_by(limit, cmp);
        v.truncate(limit);
    }
    v.sort_by(cmp);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Span, Trace};

    #[test]
    fn ordered_by_each_column_and_capped() {
        let sp = |id: &str, svc: &str, name: &str, start: i64, dur: i64| Span {
            span_id: id.into(),
            service: svc.into(),
            name: name.into(),
            start_us: start,
            duration_us: dur,
            ..Default::default()
        };
        let m = TraceModel::new(Trace {
            spans: vec![
                sp("a", "web", "GET", 0, 50),
                sp("b", "db", "SELECT", 5, 20),
                sp("c", "web", "render", 2, 30),
                sp("d", "cache", "get", 1, 20),
            ],
            ..Default::default()
        });
        let ids = |v: Vec<usize>| -> String {
            v.into_iter().map(|i| m.spans[i].span_id.as_str()).collect()
        };
        assert_eq!(ids(order(&m, "duration", 10)), "acbd");
        assert_eq!(ids(order(&m, "start", 10)), "adcb");
        assert_eq!(ids(order(&m, "service", 10)), "dbac");
        assert_eq!(ids(order(&m, "operation", 10)), "abdc");
        assert_eq!(ids(order(&m, "duration", 2)), "ac");
        assert_eq!(ids(order(&m, "start", 1)), "a");
        let big = TraceModel::new(crate::waterfall::synthetic_trace(50_000, 9));
        let top = order(&big, "duration", LIMIT);
        assert_eq!(top.len(), LIMIT);
        let max = big.spans.iter().map(|s| s.duration_us).max().unwrap();
        assert_eq!(big.spans[top[0]].duration_us, max);
        let cut = big.spans[top[LIMIT - 1]].duration_us;
        let longer = big.spans.iter().filter(|s| s.duration_us > cut).count();
        assert!(longer < LIMIT, "nothing longer was left out");
    }
}
