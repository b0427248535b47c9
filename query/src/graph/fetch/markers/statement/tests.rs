//! The marker statement against the real engine and its branch plan.

use super::*;

const M: i64 = 60_000_000_000;

#[test]
fn a_window_reads_only_the_marker_branches_it_needs() {
    let day = 24 * HOUR_NS;
    let d = 20_000 * day;
    let now = d + 5 * HOUR_NS;
    // The 1 h graph with its baseline (09:00–11:23, ending now): sums, hours, slots and
    // the ends in one statement; no day marker.
    let r = WindowReads::of(now - 2 * HOUR_NS - 23 * M, now, true, now);
    assert_eq!(
        (r.sums, r.hours, r.days, r.slots, r.minutes),
        (true, true, false, true, true)
    );
    // Seven branches: hour sums and counts, hour markers, two of slots, two of minutes.
    assert_eq!(r.sql().matches("UNION ALL").count(), 6);
    assert!(!r.sql().contains("orrery_graph_days"));
    // 15 minutes: no whole hour, so no hour markers either.
    let r = WindowReads::of(now - 15 * M, now, true, now);
    assert!(!r.hours && !r.days && r.slots);
    assert!(!r.sql().contains("orrery_graph_hours"));
    // A month ending three hours ago: days and hours, no slots (gone after two hours).
    let r = WindowReads::of(now - 31 * day, now - 3 * HOUR_NS, true, now);
    assert!(r.hours && r.days && !r.slots);
    assert!(!r.sql().contains("orrery_graph_slots"));
    // A window of exactly one UTC day has its day marker.
    assert!(WindowReads::of(d, d + day, true, now).days);
    assert!(!WindowReads::of(d + M, d + day, true, now).days);
    // The second round: minutes only.
    let m = WindowReads::MINUTES.sql();
    assert_eq!(m.matches("UNION ALL").count(), 1);
    assert!(m.contains("orrery_span_minutes") && !m.contains("orrery_graph_hours"));
}

/// The first round as it was before one statement: the per-hour sums, hour and day
/// markers (one statement), [`super::super::read_slots`], and the ends' minute markers.
const OLD_SUMS: &str = "SELECT 1 AS level, toUInt32(intDiv(toUInt32(Minute), 3600) * 3600) AS hour,
count() AS marked, sum(c) AS version, sum(s) AS spans, sum(l) AS late
FROM (
SELECT Minute, max(ComputedAt) AS c, argMax(Spans, ComputedAt) AS s,
    argMax(Late, ComputedAt) AS l
FROM orrery_graph_minutes
WHERE Minute >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
  AND Minute < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
GROUP BY Minute
)
GROUP BY hour
UNION ALL
SELECT 2 AS level, toUInt32(intDiv(toUInt32(Minute), 3600) * 3600) AS hour,
toUInt64(0) AS marked, toUInt64(0) AS version, sum(Spans) AS spans, toUInt64(0) AS late
FROM orrery_span_minutes
WHERE Minute >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
  AND Minute < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
GROUP BY hour
UNION ALL
SELECT 3 AS level, toUInt32(Hour) AS hour, toUInt64(0) AS marked,
argMax(MinutesVersion, ComputedAt) AS version,
toUInt64(argMax(Spans, ComputedAt) + 1) AS spans, toUInt64(0) AS late
FROM orrery_graph_hours
WHERE Hour >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
  AND Hour < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
GROUP BY Hour
UNION ALL
SELECT 4 AS level, toUInt32(Day) AS hour, toUInt64(0) AS marked,
argMax(HoursVersion, ComputedAt) AS version, toUInt64(0) AS spans, toUInt64(0) AS late
FROM orrery_graph_days
WHERE Day >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
  AND Day < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
GROUP BY Day";

#[derive(Row, Deserialize)]
struct OldHourRow {
    level: u8,
    hour: u32,
    marked: u64,
    version: u64,
    spans: u64,
    late: u64,
}

fn old_minutes_sql() -> String {
    let skip = "NOT has({skip:Array(UInt32)}, toUInt32(intDiv(toUInt32(Minute), 3600) * 3600))";
    let bounds = bounds_sql("Minute");
    format!(
        "SELECT 1 AS level, Minute, m.1 AS ComputedAt, m.2 AS Spans, m.3 AS Orphans,
m.4 AS Unmatched, m.5 AS Late
FROM (
SELECT Minute, argMax((ComputedAt, Spans, Orphans, Unmatched, Late), ComputedAt) AS m
FROM orrery_graph_minutes
WHERE ({bounds}) AND {skip}
GROUP BY Minute
)
UNION ALL
SELECT 2 AS level, Minute, toUInt64(0) AS ComputedAt, sum(Spans) AS Spans,
toUInt64(0) AS Orphans, toUInt64(0) AS Unmatched, toUInt64(0) AS Late
FROM orrery_span_minutes
WHERE ({bounds}) AND {skip}
GROUP BY Minute"
    )
}

#[derive(Row, Deserialize)]
struct OldMinuteRow {
    level: u8,
    #[serde(rename = "Minute")]
    minute: u32,
    #[serde(rename = "ComputedAt")]
    computed_at: u64,
    #[serde(rename = "Spans")]
    spans: u64,
    #[serde(rename = "Orphans")]
    orphans: u64,
    #[serde(rename = "Unmatched")]
    unmatched: u64,
    #[serde(rename = "Late")]
    late: u64,
}

fn row(level: u8, at: u32) -> MarkRow {
    MarkRow {
        level,
        at,
        marked: 0,
        version: 0,
        spans: 0,
        orphans: 0,
        unmatched: 0,
        late: 0,
    }
}

async fn exec(client: &Client, sql: String) {
    client.query(&sql).execute().await.unwrap();
}

/// The one statement returns exactly what the three did on the same data: minutes marked
/// twice (the latest wins), a stale minute, hours with and without a v14 count, a day
/// marker, slots recomputed, slot and minute counts, minutes outside every bound and in a
/// skipped hour.
#[tokio::test]
async fn the_one_marker_statement_returns_what_the_three_did() {
    let ch = orrery_store::testing::fresh_database().await;
    let client = ch.client();
    let now = crate::now_ns() / 1_000_000_000;
    let day = 86_400;
    let d = (now - now % day - day) as u32; // yesterday 00:00
    let h = (now - now % 3_600 - 3 * 3_600) as u32; // three hours ago, on the hour
    // Minutes of the last four hours: every other one marked twice (a recomputation with
    // more spans, late ones, orphans), one minute counted more than its marker saw.
    let (mut minutes, mut counts) = (Vec::new(), Vec::new());
    for i in 0..240u32 {
        let m = h - 3_600 + i * 60;
        let n = 10 + i as u64 % 7;
        minutes.push(format!("(toDateTime({m}), {}, {n}, 1, 2, 0)", 1_000 + i));
        if i % 2 == 0 {
            minutes.push(format!(
                "(toDateTime({m}), {}, {}, 3, 4, 5)",
                5_000 + i,
                n + 1
            ));
        }
        let now_count = n + u64::from(i % 2 == 0) + u64::from(i == 100);
        // Counted on insert in two parts (the table sums them).
        counts.push(format!("(toDateTime({m}), {})", now_count - 3));
        counts.push(format!("(toDateTime({m}), 3)"));
    }
    exec(&client, format!("INSERT INTO orrery_graph_minutes (Minute, ComputedAt, Spans, Orphans, Unmatched, Late) VALUES {}", minutes.join(", "))).await;
    exec(
        &client,
        format!(
            "INSERT INTO orrery_span_minutes (Minute, Spans) VALUES {}",
            counts.join(", ")
        ),
    )
    .await;
    // Hour markers: one remade (the latest wins), one without a count (before v14).
    exec(&client, format!("INSERT INTO orrery_graph_hours (Hour, ComputedAt, MinutesVersion, Spans) VALUES (toDateTime({}), 1, 77, 500), (toDateTime({}), 2, 78, 600), (toDateTime({h}), 1, 99, 700)", h - 3_600, h - 3_600)).await;
    exec(&client, format!("INSERT INTO orrery_graph_hours (Hour, ComputedAt, MinutesVersion) VALUES (toDateTime({}), 1, 55)", h + 3_600)).await;
    exec(&client, format!("INSERT INTO orrery_graph_days (Day, ComputedAt, HoursVersion) VALUES (toDateTime({d}), 1, 123), (toDateTime({d}), 2, 124)")).await;
    // Slots of the last few minutes: one recomputed, one whose count moved on.
    let s0 = (now - now % 10 - 120) as u32;
    let (mut slots, mut slot_counts) = (Vec::new(), Vec::new());
    for k in 0..10u32 {
        let s = s0 + k * 10;
        slots.push(format!("(toDateTime({s}), {}, {})", 10 + k, 20 + k));
        if k == 3 {
            slots.push(format!("(toDateTime({s}), 99, 30)"));
        }
        slot_counts.push(format!("(toDateTime({s}), {})", 20 + k + u32::from(k == 7)));
    }
    exec(
        &client,
        format!(
            "INSERT INTO orrery_graph_slots (Slot, ComputedAt, Spans) VALUES {}",
            slots.join(", ")
        ),
    )
    .await;
    exec(
        &client,
        format!(
            "INSERT INTO orrery_span_slots (Slot, Spans) VALUES {}",
            slot_counts.join(", ")
        ),
    )
    .await;

    let ns = |t: u32| t as i64 * 1_000_000_000;
    // A window over all of it (a whole day and hours); ends: two bounds.
    let (lo, hi) = (ns(d), ns(now as u32 + 60));
    let first = lo.div_euclid(HOUR_NS) * HOUR_NS;
    let end = (hi + HOUR_NS - 1).div_euclid(HOUR_NS) * HOUR_NS;
    let ends = [(ns(h - 1_800), ns(h + 600)), (ns(h + 3_600), hi)];
    let (slo, shi) = (ns(s0 - 30), hi);
    let all = WindowReads {
        sums: true,
        counts: true,
        only: false,
        hours: true,
        days: true,
        slots: true,
        minutes: true,
        per_minute: false,
    };
    let q = client
        .query(&all.sql())
        .param("lo", first)
        .param("hi", end)
        .param("clo", first)
        .param("chi", end)
        .param("slo", slo)
        .param("shi", shi)
        .param("skip", Vec::<u32>::new());
    let mut one: Vec<MarkRow> = bind_bounds(q, &ends).fetch_all().await.unwrap();
    one.sort();

    let mut three: Vec<MarkRow> = Vec::new();
    let old: Vec<OldHourRow> = client
        .query(OLD_SUMS)
        .param("lo", first)
        .param("hi", end)
        .fetch_all()
        .await
        .unwrap();
    for r in old {
        three.push(MarkRow {
            marked: r.marked,
            version: r.version,
            spans: r.spans,
            late: r.late,
            ..row(r.level, r.hour)
        });
    }
    let (marks, slot_spans) = super::super::read_slots(&client, slo, shi).await.unwrap();
    for (_, m) in marks {
        three.push(MarkRow {
            version: m.computed_at,
            spans: m.spans,
            ..row(5, m.at)
        });
    }
    for (at, n) in slot_spans {
        three.push(MarkRow {
            spans: n,
            ..row(6, (at / 1_000_000_000) as u32)
        });
    }
    let old: Vec<OldMinuteRow> = bind_bounds(client.query(&old_minutes_sql()), &ends)
        .param("skip", Vec::<u32>::new())
        .fetch_all()
        .await
        .unwrap();
    for r in old {
        three.push(MarkRow {
            version: r.computed_at,
            spans: r.spans,
            orphans: r.orphans,
            unmatched: r.unmatched,
            late: r.late,
            ..row(r.level + 6, r.minute)
        });
    }
    three.sort();
    // Every level is there, with what this data makes of it.
    for level in 1..=8u8 {
        assert!(
            one.iter().any(|r| r.level == level),
            "level {level} missing"
        );
    }
    assert!(one.contains(&MarkRow {
        version: 78,
        spans: 601,
        ..row(3, h - 3_600)
    }));
    assert!(one.contains(&MarkRow {
        version: 55,
        ..row(3, h + 3_600)
    }));
    assert!(one.contains(&MarkRow {
        version: 124,
        ..row(4, d)
    }));
    assert_eq!(one, three);

    // The short form (every minute's marker and count, the hours' sums derived) returns
    // the same rows as the four branches it replaces, and every minute for later rounds.
    let short = all.per_minute();
    assert!(!short.sql().contains("GROUP BY at"));
    let q = client
        .query(&short.sql())
        .param("lo", first)
        .param("hi", end)
        .param("clo", first)
        .param("chi", end)
        .param("slo", slo)
        .param("shi", shi);
    let rows: Vec<MarkRow> = q.fetch_all().await.unwrap();
    let (mut derived, every) = per_minute_rows(rows, &ends);
    derived.sort();
    assert_eq!(derived, one);
    assert_eq!(every.iter().filter(|r| r.level == 7).count(), 240);
    assert!(every.iter().any(|r| !in_ranges(r.at, &ends)));

    // The second round (minutes only, a skipped hour) likewise.
    let skip = vec![h];
    let ranges = [(ns(h - 3_600), ns(h + 7_200))];
    let mut one = minute_markers(&client, &ranges, &skip).await.unwrap();
    one.sort();
    let old: Vec<OldMinuteRow> = bind_bounds(client.query(&old_minutes_sql()), &ranges)
        .param("skip", &skip)
        .fetch_all()
        .await
        .unwrap();
    let mut three: Vec<MarkRow> = old
        .into_iter()
        .map(|r| MarkRow {
            version: r.computed_at,
            spans: r.spans,
            orphans: r.orphans,
            unmatched: r.unmatched,
            late: r.late,
            ..row(r.level + 6, r.minute)
        })
        .collect();
    three.sort();
    assert_eq!(
        one.len(),
        2 * 120,
        "two hours of minutes, markers and counts"
    );
    assert!(one.iter().all(|r| r.at < h || r.at >= h + 3_600));
    assert_eq!(one, three);
}
