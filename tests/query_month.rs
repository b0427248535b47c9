//! A month-long graph read from the rollups (issue 14 item 3), on the real embedded engine:
//! whole hours and whole days taken from their summaries must give exactly what minutes and
//! raw spans give, and still see late spans and hours no rollup has reached; hours whose
//! minute rollups are gone stand on their markers. (How the old hours get rolled up in the
//! first place: tests/query_backfill.rs.)

mod backfill_support;
mod query_support;

use std::collections::BTreeSet;
use std::time::Duration;

use backfill_support::*;
use orrery_query::graph::Level;
use orrery_query::graph::fetch::{Rolled, Window};
use orrery_query::rollup::Rollup;
use query_support::*;

/// A 30-day window read hour by hour must lose nothing to that shortcut: an hour that is
/// rolled up and current is taken whole (one summary, not its 60 minutes), but late spans into
/// such an hour are in the very next read (the same parts cache too) and counted late, and an
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_long_window_taken_by_whole_hours_still_sees_late_spans_and_unrolled_hours() {
    let ch = database().await;
    let now = now_ns();
    let trace = |t: &str, ts: i64| {
        [
            span(t, "1", "", "frontend", "Server", ts, 20),
            span(t, "2", "1", "frontend", "Client", ts + MS, 10),
            span(t, "3", "2", "checkout", "Server", ts + 2 * MS, 5),
        ]
    };
    // A trace every 10 minutes for the last 7 hours, and 5 traces 20 days ago that no rollup
    // reaches (the minute rollup only looks 8 hours back; no backfill runs here).
    let mut rows = Vec::new();
    let mut recent = 0;
    let mut ts = floor_hour(now) - 7 * HOUR + 30_000 * MS;
    while ts < now - 10 * MINUTE {
        rows.extend(trace(&format!("r{recent}"), ts));
        recent += 1;
        ts += 10 * MINUTE;
    }
    let old_hour = floor_hour(now) - 20 * DAY;
    for i in 0..5 {
        rows.extend(trace(&format!("o{i}"), old_hour + i * MINUTE));
    }
    insert(&ch, &rows).await;
    let job = Rollup::new(ch.client(), settings());
    job.run_once(now_ns(), Duration::from_secs(8 * 3600))
        .await
        .unwrap();

    let month = || window(now_ns() - 30 * DAY, now_ns());
    let cache = Default::default();
    let entries = |g: &orrery_query::model::Graph| {
        g.edges
            .iter()
            .find(|e| e.source == "INTERNET" && e.target == "frontend")
            .map_or(0, |e| e.metrics.requests)
    };
    // The closed hours are taken whole; only the ragged ends are read minute by minute.
    let late_hour = floor_hour(now) - 3 * HOUR;
    let w = month();
    let rolled = Rolled::read_window(&ch.client(), w.lo, w.hi).await.unwrap();
    assert!(
        rolled.summarized.contains_key(&late_hour),
        "{:?}",
        rolled.summarized.keys().collect::<Vec<_>>()
    );
    assert!(rolled.summarized.len() >= 4, "{:?}", rolled.summarized);
    let c = rolled.coverage(w);
    assert!(
        c.hours.contains(&((late_hour / 1_000_000_000) as u32)),
        "{c:?}"
    );
    let g = graph_with(&ch, &settings(), &cache, Level::Region, w).await;
    assert_eq!(entries(&g), recent);
    assert_eq!(g.data_quality.late_spans, 0);
    // The old, unrolled stretch is left out and said to be: its spans are counted in the
    // window, its range is listed, the share is what the answer is made of.
    let dq = &g.data_quality;
    assert_eq!(dq.spans, (recent + 5) * 3, "{dq:?}");
    assert_eq!(
        dq.uncovered
            .iter()
            .map(|r| (r.start_ms, r.end_ms))
            .collect::<Vec<_>>(),
        vec![(old_hour / 1_000_000, (old_hour + 5 * MINUTE) / 1_000_000)],
        "{dq:?}"
    );
    let share = recent as f64 * 3.0 / ((recent + 5) as f64 * 3.0);
    assert!((dq.rollup_coverage - share).abs() < 1e-9, "{dq:?}");

    // Late spans into that whole hour, into a minute that already held a trace: the very
    // next read has them (same cache), counted late, and the hour is no longer taken whole.
    let late_at = late_hour + 20 * MINUTE + 40_000 * MS;
    insert(&ch, &trace("late", late_at)).await;
    let w = month();
    let rolled = Rolled::read_window(&ch.client(), w.lo, w.hi).await.unwrap();
    assert!(!rolled.summarized.contains_key(&late_hour));
    let g = graph_with(&ch, &settings(), &cache, Level::Region, w).await;
    assert_eq!(entries(&g), recent + 1, "late spans missing from the month");
    assert_eq!(g.data_quality.late_spans, 3);
    assert_eq!(g.data_quality.spans, (recent + 6) * 3);
    let checkout = |g: &orrery_query::model::Graph| {
        g.edges
            .iter()
            .find(|e| e.source == "frontend" && e.target == "checkout")
            .map_or(0, |e| e.metrics.requests)
    };
    assert_eq!(checkout(&g), recent + 1);

    // Once the rollup has recomputed the minutes and re-merged the hour, it is whole again
    // and the answer is the same.
    job.run_once(now_ns(), Duration::from_secs(8 * 3600))
        .await
        .unwrap();
    let w = month();
    let rolled = Rolled::read_window(&ch.client(), w.lo, w.hi).await.unwrap();
    assert!(rolled.summarized.contains_key(&late_hour));
    let g = graph_with(&ch, &settings(), &cache, Level::Region, w).await;
    assert_eq!(entries(&g), recent + 1);
    assert_eq!(checkout(&g), recent + 1);
    assert_eq!(g.data_quality.late_spans, 3);
}

/// Day rollups (schema v13): a window of several whole days read from day rows is exactly the
/// same window read from hourly rows, and from minute rows (counts, duration sums, every
/// histogram bucket). A late span into an old day takes that day off the day rows at once:
/// its minutes (older than the call copy) are left out and reported, never read from a day
/// merged without them; once the backfill recomputes the hour the day is read from its hours,
/// with the late trace; and the next day pass merges it again — the same answer from days.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_days_from_day_rows_equal_hours_and_minutes_and_a_late_span_takes_its_day_off_until_merged()
 {
    let ch = database().await;
    let now = now_ns();
    let today = now.div_euclid(DAY) * DAY;
    let end = floor_hour(now) - 2 * HOUR;
    // The last ~5 days of `month`'s traffic (cut between traces, never inside one).
    let cut = end - 5 * DAY - 30 * MINUTE;
    let rows = month_since(end, cut);
    let job = rolled_up(&ch, &rows).await;

    // Ragged both ends; whole days between, up to the day before yesterday (yesterday's last
    // hour waits for today's first to be whole).
    let lo = cut + 7 * HOUR;
    let hi = today - DAY + 5 * HOUR + 13 * MINUTE;
    let w = window(lo, hi);
    let whole = whole_days(lo, today);
    assert!(whole.len() >= 2, "{whole:?}");
    // Before any day pass: hours only.
    let rolled = Rolled::read_window(&ch.client(), w.lo, w.hi).await.unwrap();
    assert!(rolled.coverage(w).days.is_empty());

    let report = job.roll_days(now_ns()).await.unwrap();
    for d in &whole {
        assert!(
            report.merged.contains(&(*d as i64 * 1_000_000_000)),
            "{report:?}"
        );
    }
    assert!(
        report.merged.windows(2).all(|p| p[0] > p[1]),
        "newest first"
    );
    // A second pass has nothing to do.
    let again = job.roll_days(now_ns()).await.unwrap();
    assert!(
        again.merged.is_empty() && again.plan.pending.is_empty(),
        "{again:?}"
    );
    assert_eq!(again.plan.done, report.merged.len());

    let rolled = Rolled::read_window(&ch.client(), w.lo, w.hi).await.unwrap();
    let c = rolled.coverage(w);
    assert_eq!(c.days, whole, "{c:?}");
    assert!(c.live.is_empty() && c.uncovered.is_empty(), "{c:?}");
    // No hour inside a day read whole is read again.
    assert!(
        c.hours
            .iter()
            .all(|h| whole.binary_search(&(h - h % 86_400)).is_err()),
        "{c:?}"
    );
    let from_days = sorted(exact_parts(&ch, w, &rolled).await);
    let mut hours_only = rolled.clone();
    hours_only.days.clear();
    hours_only.days_by_count.clear();
    let ch_hours = hours_only.coverage(w);
    assert!(ch_hours.days.is_empty() && ch_hours.hours.len() >= 24 * whole.len());
    let from_hours = sorted(exact_parts(&ch, w, &hours_only).await);
    let minutes_only = Rolled::read(&ch.client(), w.lo, w.hi).await.unwrap();
    let from_minutes = sorted(exact_parts(&ch, w, &minutes_only).await);
    assert_eq!(from_days, from_hours, "days vs hours");
    assert_eq!(from_days, from_minutes, "days vs minutes");
    assert_calls(&from_days, &rows, w);

    // A late trace into the middle of an old day.
    let day = whole[whole.len() / 2] as i64 * 1_000_000_000;
    let old = day + 10 * HOUR + 30 * MINUTE + 30_000 * MS;
    let late = [
        span("late", "1", "", "frontend", "Server", old, 5),
        span("late", "2", "1", "frontend", "Client", old + MS, 3),
        span("late", "3", "2", "checkout", "Server", old + 2 * MS, 2),
    ];
    insert(&ch, &late).await;
    let all: Vec<_> = rows.iter().cloned().chain(late.iter().cloned()).collect();
    let read = || async {
        let mut r = Rolled::read_window(&ch.client(), w.lo, w.hi).await.unwrap();
        // As a graph reads: minutes older than the call copy are never read from spans.
        r.readable_from = orrery_query::rollup::copy_from(&args(), now_ns());
        r
    };
    let rolled = read().await;
    let c = rolled.coverage(w);
    let day_s = (day / 1_000_000_000) as u32;
    assert!(!c.days.contains(&day_s), "{c:?}");
    assert_eq!(c.days.len(), whole.len() - 1, "{c:?}");
    assert!(
        c.uncovered.iter().any(|&(a, b)| a <= old && old < b),
        "{c:?}"
    );
    // What is shown is exactly the rows outside what it says it leaves out.
    let shown = outside(&all, &c.uncovered);
    let parts = exact_parts(&ch, w, &rolled).await;
    assert_eq!(edge_counts(&parts), expected_calls(&shown, w.lo, w.hi).0);
    // Its spans are counted in the window (a minute marked empty: not "late", it never held
    // a rolled-up span).
    let in_window = |rows: &[orrery_store::SpanRow]| {
        rows.iter()
            .filter(|r| r.timestamp >= w.lo && r.timestamp < w.hi)
            .count() as u64
    };
    assert_eq!(rolled.quality(w).spans, in_window(&all));

    // The backfill recomputes the hour: the day is read from its (current) hours, late trace
    // included, while its day rows are stale.
    backfill_all(&job).await;
    let rolled = read().await;
    let c = rolled.coverage(w);
    assert!(c.uncovered.is_empty() && c.live.is_empty(), "{c:?}");
    assert!(!c.days.contains(&day_s), "a stale day read whole: {c:?}");
    assert!(
        (0..24).all(|k| c.hours.contains(&(day_s + k * 3600))),
        "{c:?}"
    );
    let from_hours = sorted(exact_parts(&ch, w, &rolled).await);
    assert_calls(&from_hours, &all, w);

    // The day pass merges that day again; the same answer from days.
    let report = job.roll_days(now_ns()).await.unwrap();
    assert_eq!(report.merged, vec![day], "{report:?}");
    let rolled = read().await;
    let c = rolled.coverage(w);
    assert_eq!(c.days, whole, "{c:?}");
    let from_days = sorted(exact_parts(&ch, w, &rolled).await);
    assert_eq!(from_days, from_hours);
}

/// Schema v14 keeps minute rollups ~a day: an hour older than that stands on its hour marker
/// (its span count). With every old minute gone, an old window of whole hours is still exact
/// (counts, sums, histograms) and the backfill does not recompute it; its ragged ends — minutes
/// that are gone — are left out and reported, never read as minutes without traffic; an hour
/// whose marker has no span count (written before v14), or one with a late span, is left out
/// and reported (with its neighbours) until the backfill recomputes them, then exact again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hours_whose_minutes_are_gone_stand_on_their_markers_and_missing_minutes_are_never_empty() {
    let ch = database().await;
    let now = now_ns();
    let end = floor_hour(now) - 2 * HOUR;
    let first = end - 2 * DAY - 30 * MINUTE;
    let rows = month_since(end, first);
    let job = rolled_up(&ch, &rows).await;
    let cut = orrery_query::rollup::minutes_from(now_ns());
    drop_minutes(&ch, cut).await;
    // Nothing to recompute: the old hours' markers still match their counts.
    assert_eq!(
        job.backfill_plan(now_ns()).await.unwrap().pending,
        vec![],
        "hours recomputed only because their minutes are gone"
    );

    let client = ch.client();
    let read = |w: Window| {
        let client = client.clone();
        async move {
            let mut r = Rolled::read_window(&client, w.lo, w.hi).await.unwrap();
            r.readable_from = orrery_query::rollup::copy_from(&args(), now_ns());
            r
        }
    };
    let in_range = |rows: &[orrery_store::SpanRow], ranges: &[(i64, i64)]| -> Vec<_> {
        rows.iter()
            .filter(|r| {
                !ranges
                    .iter()
                    .any(|&(a, b)| a <= r.timestamp && r.timestamp < b)
            })
            .cloned()
            .collect()
    };
    // Whole old hours: exact.
    let w = window(cut - 24 * HOUR, cut - 2 * HOUR);
    let rolled = read(w).await;
    let c = rolled.coverage(w);
    assert!(c.uncovered.is_empty() && c.live.is_empty(), "{c:?}");
    assert_eq!(c.hours.len() + 24 * c.days.len(), 22, "{c:?}");
    let parts = exact_parts(&ch, w, &rolled).await;
    assert_calls(&parts, &rows, w);
    let spans_in = |lo: i64, hi: i64| {
        rows.iter()
            .filter(|r| r.timestamp >= lo && r.timestamp < hi)
            .count() as u64
    };
    assert_eq!(rolled.quality(w).spans, spans_in(w.lo, w.hi));

    // Ragged ends in hours whose minutes are gone: what they hold is left out and said to be.
    let w = window(cut - 24 * HOUR + 7 * MINUTE, cut - 3 * HOUR + 50 * MINUTE);
    let rolled = read(w).await;
    let c = rolled.coverage(w);
    let ends = [(w.lo, cut - 23 * HOUR), (cut - 3 * HOUR, w.hi)];
    for (a, b) in ends {
        if spans_in(a, b) > 0 {
            assert!(
                c.uncovered.iter().any(|&(x, y)| x < b && y > a),
                "spans in {a}..{b} not reported: {c:?}"
            );
        }
    }
    assert!(
        c.uncovered.iter().all(|&(a, b)| spans_in(a, b) > 0),
        "{c:?}"
    );
    let parts = exact_parts(&ch, w, &rolled).await;
    let shown = in_range(&rows, &c.uncovered);
    assert_eq!(edge_counts(&parts), expected_calls(&shown, w.lo, w.hi).0);

    // An hour marker without a span count (as written before v14), and a late trace into
    // another old hour: both left out and reported with their neighbours, never summed.
    let w = window(cut - 24 * HOUR, cut - 2 * HOUR);
    let pre_v14 = cut - 20 * HOUR;
    ch.client()
        .query(
            "INSERT INTO orrery_graph_hours (Hour, ComputedAt, MinutesVersion, Spans)
             SELECT Hour, max(ComputedAt) + 1, argMax(MinutesVersion, ComputedAt), -1
             FROM orrery_graph_hours WHERE Hour = toDateTime({h:UInt32}) GROUP BY Hour",
        )
        .param("h", (pre_v14 / 1_000_000_000) as u32)
        .execute()
        .await
        .unwrap();
    let late_hour = cut - 10 * HOUR;
    let old = late_hour + 30 * MINUTE + 30_000 * MS;
    let late = [
        span("late", "1", "", "frontend", "Server", old, 5),
        span("late", "2", "1", "frontend", "Client", old + MS, 3),
        span("late", "3", "2", "checkout", "Server", old + 2 * MS, 2),
    ];
    insert(&ch, &late).await;
    let all: Vec<_> = rows.iter().cloned().chain(late.iter().cloned()).collect();
    let rolled = read(w).await;
    let c = rolled.coverage(w);
    let hours: BTreeSet<u32> = c.hours.iter().copied().collect();
    for h in [pre_v14, late_hour] {
        assert!(
            !hours.contains(&((h / 1_000_000_000) as u32)),
            "{h} read whole: {c:?}"
        );
        for x in [h - HOUR, h, h + HOUR] {
            if spans_in(x, x + HOUR) > 0 {
                assert!(
                    c.uncovered.iter().any(|&(a, b)| a < x + HOUR && b > x),
                    "{x} not reported: {c:?}"
                );
            }
        }
    }
    let parts = exact_parts(&ch, w, &rolled).await;
    let shown = in_range(&all, &c.uncovered);
    assert_eq!(edge_counts(&parts), expected_calls(&shown, w.lo, w.hi).0);
    // The backfill recomputes exactly those hours and their neighbours; then exact again.
    let pending: BTreeSet<i64> = backfill_all(&job).await.into_iter().collect();
    for h in [pre_v14, late_hour] {
        assert!(pending.contains(&h), "{pending:?}");
    }
    assert!(pending.len() <= 6, "{pending:?}");
    assert!(
        job.backfill_plan(now_ns())
            .await
            .unwrap()
            .pending
            .is_empty()
    );
    drop_minutes(&ch, cut).await;
    let rolled = read(w).await;
    let c = rolled.coverage(w);
    assert!(c.uncovered.is_empty(), "{c:?}");
    let parts = exact_parts(&ch, w, &rolled).await;
    assert_calls(&parts, &all, w);
}

/// Day markers with their span count (schema v15): a graph takes a day whole by its day
/// marker and its count — of the day and the hour either side — without its hour markers. On
/// the real engine: days taken so equal their hours and minutes; day markers from before v15
/// (no count) fall back to the version rule and the next day pass gives them counts; and a
/// late parent backdated into the last second of the day before — outside the day, so the
/// day's own count does not move, yet its first minute's calls change (an orphan child becomes
/// an edge) — takes both days off the day rows at once, until the hours are recomputed and the
/// days merged again, then exact with the late call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_is_taken_whole_by_its_count_and_a_late_parent_next_to_it_takes_it_off() {
    let ch = database().await;
    let now = now_ns();
    let today = now.div_euclid(DAY) * DAY;
    let end = floor_hour(now) - 2 * HOUR;
    let cut = end - 5 * DAY - 30 * MINUTE;
    let mut rows = month_since(end, cut);
    let lo = cut + 7 * HOUR;
    let hi = today - DAY + 5 * HOUR + 13 * MINUTE;
    let w = window(lo, hi);
    let whole = whole_days(lo, today);
    assert!(whole.len() >= 2, "{whole:?}");
    let ns = |d: u32| d as i64 * 1_000_000_000;
    let day = ns(whole[1]);
    // A child stored on time in the day's first second whose parent is late: an orphan in
    // the day's rows until its parent arrives, at the last instant of the day before.
    let child = span("late", "3", "2", "checkout", "Server", day + 2 * MS, 4);
    rows.push(child.clone());
    let job = rolled_up(&ch, &rows).await;
    let report = job.roll_days(now_ns()).await.unwrap();
    assert!(
        whole.iter().all(|d| report.merged.contains(&ns(*d))),
        "{report:?}"
    );
    let read = || async {
        let mut r = Rolled::read_window(&ch.client(), w.lo, w.hi).await.unwrap();
        r.readable_from = orrery_query::rollup::copy_from(&args(), now_ns());
        r
    };
    let by_count = |r: &Rolled| -> Vec<u32> {
        r.days_by_count
            .iter()
            .map(|d| (d / 1_000_000_000) as u32)
            .collect()
    };

    // Every whole day by its count; the same rows as its hours and its minutes.
    let rolled = read().await;
    assert_eq!(by_count(&rolled), whole);
    let c = rolled.coverage(w);
    assert_eq!(c.days, whole, "{c:?}");
    assert!(c.live.is_empty() && c.uncovered.is_empty(), "{c:?}");
    let from_days = sorted(exact_parts(&ch, w, &rolled).await);
    let minutes_only = Rolled::read(&ch.client(), w.lo, w.hi).await.unwrap();
    assert_eq!(from_days, sorted(exact_parts(&ch, w, &minutes_only).await));
    assert_eq!(rolled.quality(w).spans, minutes_only.quality(w).spans);

    // Day markers as schema v14 wrote them (no count): the version rule decides, the same
    // answer; the next day pass merges every day once more, with its count.
    ch.client()
        .query(
            "ALTER TABLE orrery_graph_days UPDATE Spans = -1 WHERE 1 SETTINGS mutations_sync = 2",
        )
        .execute()
        .await
        .unwrap();
    let rolled = read().await;
    assert!(
        rolled.days_by_count.is_empty(),
        "{:?}",
        rolled.days_by_count
    );
    assert_eq!(rolled.coverage(w).days, whole);
    assert_eq!(sorted(exact_parts(&ch, w, &rolled).await), from_days);
    let report = job.roll_days(now_ns()).await.unwrap();
    assert!(
        whole.iter().all(|d| report.merged.contains(&ns(*d))),
        "{report:?}"
    );
    assert_eq!(by_count(&read().await), whole);

    // The late parent, in the day before's last second: neither day is read whole.
    let late = [
        span("late", "1", "", "frontend", "Server", day - 10 * MS, 20),
        span("late", "2", "1", "frontend", "Client", day - 5 * MS, 15),
    ];
    insert(&ch, &late).await;
    let all: Vec<_> = rows.iter().cloned().chain(late.iter().cloned()).collect();
    let rolled = read().await;
    let c = rolled.coverage(w);
    for d in [whole[0], whole[1]] {
        assert!(!rolled.days_by_count.contains(&ns(d)), "{d}: {c:?}");
        assert!(
            !c.days.contains(&d),
            "a day read whole past a late parent: {c:?}"
        );
    }
    assert!(
        c.uncovered.iter().any(|&(a, b)| a < day && day <= b),
        "{c:?}"
    );
    // Exactly the rows outside what it says it leaves out.
    let shown = outside(&all, &c.uncovered);
    let parts = exact_parts(&ch, w, &rolled).await;
    assert_eq!(edge_counts(&parts), expected_calls(&shown, w.lo, w.hi).0);

    // Recomputed hours: both days from their hours, with the late call; then merged again
    // (with counts), the same answer from days.
    backfill_all(&job).await;
    let rolled = read().await;
    let c = rolled.coverage(w);
    assert!(c.uncovered.is_empty() && c.live.is_empty(), "{c:?}");
    assert!(!c.days.contains(&whole[1]), "a stale day read whole: {c:?}");
    let from_hours = sorted(exact_parts(&ch, w, &rolled).await);
    assert_calls(&from_hours, &all, w);
    let report = job.roll_days(now_ns()).await.unwrap();
    assert!(report.merged.contains(&day), "{report:?}");
    let rolled = read().await;
    assert_eq!(by_count(&rolled), whole);
    assert_eq!(rolled.coverage(w).days, whole);
    assert_eq!(sorted(exact_parts(&ch, w, &rolled).await), from_hours);
}
