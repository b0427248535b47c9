//! Sets of `[lo, hi)` time ranges as a statement takes them: a fixed number of bound pairs
//! (one statement shape whatever the count), how ranges are joined to fit, and the range
//! arithmetic of a marker read.

use super::HOUR_NS;

/// `[lo, hi)` conditions on a DateTime column for up to this many ranges (one statement
/// shape whatever the count; unused ranges are bound empty).
pub const MAX_BOUNDS: usize = 8;

/// How a range's ends are bound: nanoseconds (`Int64`) or Unix seconds (`UInt32`).
#[derive(Clone, Copy, Debug)]
pub enum Ends {
    Nanos,
    Seconds,
}

impl Ends {
    fn sql(self, param: &str) -> String {
        match self {
            Ends::Nanos => format!("toDateTime(fromUnixTimestamp64Nano({{{param}:Int64}}))"),
            Ends::Seconds => format!("toDateTime({{{param}:UInt32}})"),
        }
    }
}

/// `(col >= {p0lo} AND col < {p0hi}) OR …` over [`MAX_BOUNDS`] ranges named `prefix`, bound
/// by [`bind_ranges`]. (`has(list, col)` alone does not prune a table's granules: ranges do.)
pub fn ranges_sql(col: &str, prefix: &str, ends: Ends) -> String {
    (0..MAX_BOUNDS)
        .map(|i| {
            let (lo, hi) = (
                ends.sql(&format!("{prefix}{i}lo")),
                ends.sql(&format!("{prefix}{i}hi")),
            );
            format!("({col} >= {lo} AND {col} < {hi})")
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// Binds `ranges` (at most [`MAX_BOUNDS`]; see [`cover_ranges`]) to [`ranges_sql`]'s
/// `prefix` ranges; unused ones bound empty.
pub fn bind_ranges(
    mut q: clickhouse::query::Query,
    prefix: &str,
    ends: Ends,
    ranges: &[(i64, i64)],
) -> clickhouse::query::Query {
    debug_assert!(ranges.len() <= MAX_BOUNDS);
    for i in 0..MAX_BOUNDS {
        let (lo, hi) = ranges.get(i).copied().unwrap_or((0, 0));
        let (lo_name, hi_name) = (format!("{prefix}{i}lo"), format!("{prefix}{i}hi"));
        q = match ends {
            Ends::Nanos => q.param(&lo_name, lo).param(&hi_name, hi),
            Ends::Seconds => q.param(&lo_name, lo as u32).param(&hi_name, hi as u32),
        };
    }
    q
}

/// [`ranges_sql`] of nanosecond ranges named `b`: the minute ranges of marker and row reads.
pub fn bounds_sql(col: &str) -> String {
    ranges_sql(col, "b", Ends::Nanos)
}

/// Binds `ranges` (ns) to [`bounds_sql`].
pub fn bind_bounds(q: clickhouse::query::Query, ranges: &[(i64, i64)]) -> clickhouse::query::Query {
    bind_ranges(q, "b", Ends::Nanos, ranges)
}

/// At most [`MAX_BOUNDS`] ranges covering `ranges` (ascending, disjoint): the closest
/// neighbours are joined first, so the result is a superset only where that is needed.
pub fn cover_ranges(ranges: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = ranges.to_vec();
    while out.len() > MAX_BOUNDS {
        let i = (1..out.len())
            .min_by_key(|&i| out[i].0 - out[i - 1].1)
            .unwrap_or(1);
        out[i - 1].1 = out[i].1;
        out.remove(i);
    }
    out
}

/// The runs of consecutive `units` (Unix seconds, ascending, each `len` long) as at most
/// [`MAX_BOUNDS`] `[lo, hi)` ranges (the closest runs joined first): the days or hours a
/// window reads whole.
pub fn unit_runs(units: &[u32], len: u32) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &u in units {
        let (lo, hi) = (u as i64, u as i64 + len as i64);
        match runs.last_mut() {
            Some(last) if last.1 == lo => last.1 = hi,
            _ => runs.push((lo, hi)),
        }
    }
    cover_ranges(&runs)
}

/// The parts of `[lo, hi)` read minute by minute with the hour sums, in the first round: the
/// partial hour at its start, and at its end the last two hours it touches. A window ending
/// now never takes those whole — the open hour's counts run ahead of its markers (the last
/// minutes wait for the rollup's delay), and an hour is summed up only when its neighbours are
/// quiet too — so reading them early saves a second round trip; that holds as well when the
/// end falls on the hour (the rounded end of a window ending now does so once an hour). An
/// end read early whose hours turn out whole is still summed up.
pub(super) fn ragged_ends(lo: i64, hi: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    if hi <= lo {
        return out;
    }
    let first_whole = (lo + HOUR_NS - 1).div_euclid(HOUR_NS) * HOUR_NS;
    if lo < first_whole {
        out.push((lo, first_whole.min(hi)));
    }
    let from = ((hi - 1).div_euclid(HOUR_NS) * HOUR_NS - HOUR_NS).max(lo);
    match out.last_mut() {
        Some(last) if last.1 >= from => last.1 = hi,
        _ => out.push((from, hi)),
    }
    out
}

/// `ranges` without `minus` (both ascending and disjoint).
pub(super) fn subtract(ranges: &[(i64, i64)], minus: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for &(mut a, b) in ranges {
        for &(c, d) in minus {
            if d <= a || c >= b {
                continue;
            }
            if c > a {
                out.push((a, c));
            }
            a = a.max(d);
        }
        if a < b {
            out.push((a, b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000_000_000;

    #[test]
    fn ragged_ends_are_what_can_never_be_a_whole_hour() {
        let h = 1_000 * HOUR_NS;
        // 1 h window 10:23–11:23 with its baseline from 09:00: 09:00 may be whole; 10:00 is
        // the hour before the open one, 11:00 partial.
        assert_eq!(
            ragged_ends(h - HOUR_NS, h + HOUR_NS + 23 * M),
            vec![(h, h + HOUR_NS + 23 * M)]
        );
        // A window starting mid-hour: its first partial hour too.
        assert_eq!(
            ragged_ends(h + 23 * M, h + 5 * HOUR_NS + 10 * M),
            vec![
                (h + 23 * M, h + HOUR_NS),
                (h + 4 * HOUR_NS, h + 5 * HOUR_NS + 10 * M)
            ]
        );
        // Hour-aligned both ends: the last two hours are read early all the same (a window
        // ending now on the hour has its last minutes not rolled up yet), the first is not.
        assert_eq!(
            ragged_ends(h, h + 3 * HOUR_NS),
            vec![(h + HOUR_NS, h + 3 * HOUR_NS)]
        );
        // An hour-aligned window of one hour: that hour.
        assert_eq!(ragged_ends(h, h + HOUR_NS), vec![(h, h + HOUR_NS)]);
        assert_eq!(ragged_ends(h, h), vec![]);
        // Shorter than an hour, inside one.
        assert_eq!(
            ragged_ends(h + 5 * M, h + 20 * M),
            vec![(h + 5 * M, h + 20 * M)]
        );
    }

    #[test]
    fn subtract_leaves_exactly_what_is_not_covered() {
        assert_eq!(subtract(&[(0, 100)], &[(0, 10), (90, 100)]), vec![(10, 90)]);
        assert_eq!(
            subtract(&[(0, 10), (20, 30)], &[(5, 25)]),
            vec![(0, 5), (25, 30)]
        );
        assert_eq!(subtract(&[(0, 10)], &[(0, 10)]), vec![]);
        assert_eq!(subtract(&[(0, 10)], &[]), vec![(0, 10)]);
        assert_eq!(subtract(&[(0, 10)], &[(20, 30)]), vec![(0, 10)]);
    }
}
