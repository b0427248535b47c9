//! What each table weighs per stored span, and with `--footprint-steady 1` at steady state.

use super::*;

/// Bytes on disk per stored span, per table and in all (issue 14 item 5: ≤ 45 B/span), and the
/// same at steady state under the default 7 days' retention, from each table's TTL (schemas
/// v12, v14): the call copy keeps 6–6.5 h (`CALLS_HOURS` + at most one TTL merge interval), the
/// 10-second slots 2–2.5 h (markers 1–1.5 h), the minute rollups 26–26.5 h (markers 25–25.5),
/// everything else the retention. The bench's data
/// covers 24 h, so a table kept for the retention weighs at steady state what it weighs here.
///
/// With `--footprint-steady 1`, after the rollup backfill it also *measures* that state: the
/// short TTLs are scaled by 24 h / 7 days (so the 24 h of data stand for a week), every table
/// is merged with `OPTIMIZE … FINAL` (TTL applied, parts merged as a week-old day's are), and
/// the tables are measured again; the TTLs are put back afterwards. Slow (minutes).
pub(crate) async fn footprint(client: &clickhouse::Client, spans: u64, when: &str) -> Result<()> {
    use orrery_store::schema::{
        CALLS_HOURS, CALLS_TTL_MERGE_S, MINUTE_MARKER_HOURS, MINUTES_HOURS, SLOT_MARKER_HOURS,
        SLOT_ROWS_HOURS,
    };
    const RETENTION_H: f64 = 7.0 * 24.0;
    async fn sizes(client: &clickhouse::Client) -> Result<Vec<(String, u64, u64)>> {
        Ok(client
            .query(
                "SELECT table, sum(bytes_on_disk), sum(rows) FROM system.parts
                 WHERE database = currentDatabase() AND active GROUP BY table ORDER BY table",
            )
            .fetch_all()
            .await?)
    }
    let per = |b: u64| b as f64 / spans.max(1) as f64;
    let merge_h = CALLS_TTL_MERGE_S as f64 / 3600.0;
    let slot_tables = [
        "orrery_graph_edges_10s",
        "orrery_graph_nodes_10s",
        "orrery_span_slots",
        "orrery_graph_slots",
    ];
    let bytes = sizes(client).await?;
    let (mut total, mut steady, mut minute_rows) = (0u64, 0f64, 0f64);
    for (table, b, rows) in &bytes {
        println!(
            "on disk ({when}): {table:<28} {b:>12} bytes  {rows:>10} rows  {:.1} B/span",
            per(*b)
        );
        total += b;
        if table == "orrery_span_calls" {
            // One row a span, kept 6–6.5 h of the retention's 168 (whatever the TTL already
            // dropped here: bytes per row).
            let life = CALLS_HOURS as f64 + merge_h;
            steady += *b as f64 / (*rows).max(1) as f64 * life / RETENTION_H;
        } else if slot_tables.contains(&table.as_str()) {
            // Counted below: the bench rolls up only its last minutes into slots.
        } else if table.ends_with("_1m") || table == "orrery_graph_minutes" {
            // Minute rollups (schema v14): kept 26–26.5 h (markers an hour less) of the 168;
            // the bench's rows cover its whole 24 h.
            let hours = if table == "orrery_graph_minutes" {
                MINUTE_MARKER_HOURS
            } else {
                minute_rows += per(*b);
                MINUTES_HOURS
            };
            steady += per(*b) * (hours as f64 + merge_h).min(RETENTION_H) / RETENTION_H;
        } else {
            steady += per(*b);
        }
    }
    // A slot row has a minute row's shape; a minute holds six slots, each with at most the
    // minute's keys: at most six slot rows per minute row, kept 2–2.5 h.
    let slots = minute_rows * 6.0 * (SLOT_ROWS_HOURS as f64 + merge_h) / RETENTION_H;
    println!(
        "footprint ({when}): all tables {:.1} B/span; estimated at steady state (7 days' retention; call copy {CALLS_HOURS} h, minute rollups {MINUTES_HOURS} h, slots {SLOT_ROWS_HOURS} h at most six rows a minute row: ≤ {slots:.1}) {:.1} B/span",
        per(total),
        steady + slots
    );
    if when != "after the rollup backfill" || arg("--footprint-steady", 0) == 0 {
        return Ok(());
    }
    // Measured: 24 h of data standing for 7 days, the short TTLs scaled alike (minutes).
    let scaled = |hours: u32| (hours as f64 * 60.0 * 24.0 / RETENTION_H).round() as u32;
    let ttl = |table: &str, column: &str, minutes: u32| {
        format!("ALTER TABLE {table} MODIFY TTL {column} + toIntervalMinute({minutes})")
    };
    let restore = |table: &str, column: &str, hours: u32| {
        format!(
            "ALTER TABLE {table} MODIFY TTL {column} + toIntervalHour({hours}) SETTINGS materialize_ttl_after_modify = 0"
        )
    };
    // The minute rollups' TTL runs from the later of the minute and its computation (v14);
    // the bench computed every minute just now, so the scaled TTL runs from the minute, as it
    // does for minutes rolled up as they close.
    let minute_ttl = "greatest(Minute, toDateTime(intDiv(ComputedAt, 1000)))";
    let short = [
        (
            "orrery_span_calls",
            "toDateTime(Timestamp)",
            "toDateTime(Timestamp)",
            CALLS_HOURS,
        ),
        ("orrery_graph_edges_10s", "Slot", "Slot", SLOT_ROWS_HOURS),
        ("orrery_graph_nodes_10s", "Slot", "Slot", SLOT_ROWS_HOURS),
        ("orrery_span_slots", "Slot", "Slot", SLOT_ROWS_HOURS),
        ("orrery_graph_slots", "Slot", "Slot", SLOT_MARKER_HOURS),
        ("orrery_graph_edges_1m", "Minute", minute_ttl, MINUTES_HOURS),
        ("orrery_graph_nodes_1m", "Minute", minute_ttl, MINUTES_HOURS),
        (
            "orrery_graph_minutes",
            "Minute",
            minute_ttl,
            MINUTE_MARKER_HOURS,
        ),
    ];
    let t = Instant::now();
    for (table, column, _, hours) in short {
        client
            .query(&ttl(table, column, scaled(hours)))
            .execute()
            .await?;
    }
    for (table, _, _) in &bytes {
        client
            .query(&format!("OPTIMIZE TABLE {table} FINAL"))
            .execute()
            .await?;
    }
    for (table, _, column, hours) in short {
        client
            .query(&restore(table, column, hours))
            .execute()
            .await?;
    }
    let mut total = 0;
    for (table, b, rows) in sizes(client).await? {
        println!(
            "on disk (merged, TTLs scaled to 24 h for 7 days): {table:<28} {b:>12} bytes  {rows:>10} rows  {:.1} B/span",
            per(b)
        );
        total += b;
    }
    println!(
        "footprint measured at steady state (24 h of data as 7 days' retention: call copy {} min, minute rollups {} min, slots {} min; every table merged with OPTIMIZE FINAL in {:.0} s): {:.1} B/span",
        scaled(CALLS_HOURS),
        scaled(MINUTES_HOURS),
        scaled(SLOT_ROWS_HOURS),
        t.elapsed().as_secs_f64(),
        per(total)
    );
    Ok(())
}
