//! The 10-second slots' markers and span counts, read in one statement.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use clickhouse::{Client, Row};
use serde::Deserialize;

/// A slot's latest marker: its computation and the span count it saw.
#[derive(Row, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotMark {
    pub at: u32,
    pub computed_at: u64,
    pub spans: u64,
}

/// A row of [`read_slots`]' one statement: a marker (`level` 1) or a span count (`level` 2).
#[derive(Row, Deserialize)]
struct SlotRow {
    level: u8,
    at: u32,
    computed_at: u64,
    spans: u64,
}

/// Slot markers and slot span counts of `[lo, hi)` (ns keys).
pub async fn read_slots(
    client: &Client,
    lo: i64,
    hi: i64,
) -> Result<(BTreeMap<i64, SlotMark>, BTreeMap<i64, u64>)> {
    // One statement for both (each query costs the engine a fixed ~5–10 ms on 2 cores).
    let rows = client
        .query(
            "SELECT 1 AS level, toUInt32(Slot) AS at, max(ComputedAt) AS computed_at,
    argMax(Spans, ComputedAt) AS spans
FROM orrery_graph_slots
WHERE Slot >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
  AND Slot < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
GROUP BY Slot
UNION ALL
SELECT 2 AS level, toUInt32(Slot) AS at, toUInt64(0) AS computed_at, sum(Spans) AS spans
FROM orrery_span_slots
WHERE Slot >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
  AND Slot < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
GROUP BY Slot",
        )
        .param("lo", lo)
        .param("hi", hi)
        .fetch_all::<SlotRow>()
        .await
        .context("reading slot markers")?;
    let (marks, counts): (Vec<SlotRow>, Vec<SlotRow>) =
        rows.into_iter().partition(|r| r.level == 1);
    let mark = |r: SlotRow| SlotMark {
        at: r.at,
        computed_at: r.computed_at,
        spans: r.spans,
    };
    let marks: Vec<SlotMark> = marks.into_iter().map(mark).collect();
    let counts: Vec<SlotMark> = counts.into_iter().map(mark).collect();
    let key = |at: u32| at as i64 * 1_000_000_000;
    Ok((
        marks.into_iter().map(|m| (key(m.at), m)).collect(),
        counts.into_iter().map(|c| (key(c.at), c.spans)).collect(),
    ))
}
