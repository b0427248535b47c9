//! The call copy's expiry (schema v11, v12) against what reads it: edge detail of old windows,
//! the rollup's horizon, call rows rebuilt from the spans, minutes older than the copy and
//! their late spans, and an upgrade with data.

use super::*;
use orrery_store::SpanRow;
use orrery_store::graph_rules::{CallSource, edge_rows_from, minute_filter, node_rows_from};
use std::time::Duration;

const MS: i64 = 1_000_000;
const DAY: i64 = 86_400_000 * MS;

fn span(trace: u32, id: u32, parent: u32, service: &str, kind: &str, ts: i64) -> SpanRow {
    let mut s =
        orrery_store::testing::span(trace.into(), id.into(), parent.into(), service, kind, ts);
    s.resource_attributes
        .push(("cloud.region".into(), format!("r{}", trace % 2)));
    s.duration = (5 + trace as u64 % 40) * MS as u64;
    if trace.is_multiple_of(7) {
        s.status_code = "Error".into();
    }
    s
}

/// `n` traces from `t0`: api (root) → shop (server, operation by trace) → postgres (client),
/// plus an orphan shop span whose parent never arrives.
fn traces(n: u32, t0: i64, first: u32) -> Vec<SpanRow> {
    let mut rows = Vec::new();
    for t in first..first + n {
        let ts = t0 + (t - first) as i64 * 100 * MS;
        rows.push(span(t, 1, 0, "api", "Server", ts));
        rows.push(span(t, 2, 1, "api", "Client", ts));
        let mut shop = span(t, 3, 2, "shop", "Server", ts);
        shop.span_name = format!("GET /{}", t % 3);
        rows.push(shop);
        let mut db = span(t, 4, 3, "shop", "Client", ts);
        db.span_attributes = vec![("db.system".into(), "postgresql".into())];
        db.span_name = "SELECT".into();
        rows.push(db);
        rows.push(span(t, 5, 99, "shop", "Server", ts));
    }
    rows
}

async fn insert(client: &Client, rows: &[SpanRow]) {
    let mut insert = client.insert::<SpanRow>("otel_traces").await.unwrap();
    for r in rows {
        insert.write(r).await.unwrap();
    }
    insert.end().await.unwrap();
}

async fn count(client: &Client, sql: &str) -> u64 {
    client.query(sql).fetch_one().await.unwrap()
}

fn settings() -> GraphArgs {
    GraphArgs {
        graph_grace: Duration::from_millis(1),
        graph_rollup_delay: Duration::from_secs(0),
        ..GraphArgs::default()
    }
}

/// The call copy as schema v10 kept it: the retention's TTL. A call row cannot be stored
/// already expired (ClickHouse drops such parts at once), so a test ages rows this way.
async fn keep_calls_for_the_retention(client: &Client) {
    client
        .query("ALTER TABLE orrery_span_calls MODIFY TTL toDateTime(Timestamp) + toIntervalDay(7)")
        .execute()
        .await
        .unwrap();
}

/// Applies the latest schema's statements for the call copy's TTL (v12), then drops expired
/// rows now, as ClickHouse's TTL merges would in the background.
async fn expire_calls(client: &Client, ch: &orrery_store::ClickHouseArgs) {
    let params = orrery_store::schema::SchemaParams::from_args(ch).unwrap();
    let v12 = orrery_store::schema::migrations()
        .iter()
        .find(|m| m.version == 12)
        .unwrap();
    for stmt in (v12.statements)(&params) {
        client.query(&stmt).execute().await.unwrap();
    }
    for stmt in [
        "ALTER TABLE orrery_span_calls MATERIALIZE TTL SETTINGS mutations_sync = 2",
        "OPTIMIZE TABLE orrery_span_calls FINAL",
    ] {
        client.query(stmt).execute().await.unwrap();
    }
}

#[test]
fn the_call_copy_covers_what_reads_it() {
    // What reads the copy: the minute rollup's regular runs (lookback, with parents before and
    // the delay), the live tail of a window not rolled up (--graph-max-unrolled), and the
    // slots. All of it lies after `copy_from`, which is inside the copy's TTL (a lower bound:
    // rows go only once older than it) with its parent lookback and a margin.
    let s = GraphArgs::default();
    let now = 1_000_000 * 3_600_000 * MS;
    let from = crate::rollup::copy_from(&s, now);
    let ns = |d: Duration| d.as_nanos() as i64;
    let regular = s.graph_rollup_lookback + s.graph_rollup_delay + s.graph_rollup_interval;
    assert!(now - ns(regular) > from);
    assert!(now - ns(s.graph_max_unrolled) - ns(s.graph_rollup_delay) > from);
    let kept = orrery_store::schema::CALLS_HOURS as i64 * 3_600_000 * MS;
    assert!(from - ns(s.graph_parent_lookback) > now - kept);
    assert_eq!(orrery_store::schema::CALLS_HOURS, 6);
}

#[tokio::test]
async fn old_windows_keep_their_edge_detail_after_the_call_rows_expired() {
    let ch = orrery_store::testing::fresh_database().await;
    let client = ch.client();
    let s = settings();
    let now = crate::now_ns();
    keep_calls_for_the_retention(&client).await;
    // Three days ago (past the copy's 49-hour TTL, within the 7-day retention), and now.
    let old = (now - 3 * DAY) / (60_000 * MS) * 60_000 * MS;
    let recent = now - 3 * 60_000 * MS;
    insert(&client, &traces(40, old + 5_000 * MS, 1)).await;
    insert(&client, &traces(40, recent, 1_000)).await;
    // The old minutes were rolled up while their calls were still there (as the rollup does
    // within its 48 h horizon).
    let rollup = crate::rollup::Rollup::new(client.clone(), s.clone());
    let r = rollup
        .run_once(old + 10 * 60_000 * MS, Duration::from_secs(900))
        .await
        .unwrap();
    assert!(!r.computed.is_empty());
    let w = crate::params::span(old, old + 10 * 60_000 * MS, now).unwrap();
    let before: Vec<EdgeDetail> = {
        let mut v = Vec::new();
        for (a, b) in [
            ("api", "shop"),
            ("shop", "database:postgresql"),
            ("INTERNET", "api"),
        ] {
            let d = edge(&client, &s, &Default::default(), a, b, w)
                .await
                .unwrap();
            v.push(d.unwrap_or_else(|| panic!("{a}->{b}")));
        }
        v
    };
    let calls_sql = |lo: i64, hi: i64| {
        format!(
            "SELECT count() FROM orrery_span_calls WHERE Timestamp >= fromUnixTimestamp64Nano({lo}) AND Timestamp < fromUnixTimestamp64Nano({hi})"
        )
    };
    assert_eq!(count(&client, &calls_sql(old, old + DAY)).await, 200);
    expire_calls(&client, &ch).await;
    // The TTL removed the old calls and nothing the rollup still needs: the recent minutes
    // (not rolled up yet) keep every call row; the spans are all still there.
    assert_eq!(count(&client, &calls_sql(old, old + DAY)).await, 0);
    assert_eq!(count(&client, &calls_sql(recent, now)).await, 200);
    assert_eq!(count(&client, "SELECT count() FROM otel_traces").await, 400);
    let r = rollup
        .run_once(now, Duration::from_secs(900))
        .await
        .unwrap();
    assert!(!r.computed.is_empty(), "the recent minutes roll up");
    let g = crate::graph::graph(
        &client,
        &s,
        &Default::default(),
        &GraphRequest {
            level: Level::Focused,
            region: None,
            focus: Some("shop".into()),
            window: crate::params::span(recent - 60_000 * MS, now, now).unwrap(),
            whats_wrong: false,
            group: Default::default(),
        },
    )
    .await
    .unwrap();
    let e = g.edges.iter().find(|e| e.id == "api->shop").unwrap();
    assert_eq!(e.metrics.requests, 40, "recent calls all counted");

    // Edge detail of the old window is complete, and identical to before the expiry.
    for was in &before {
        let (a, b) = (was.edge.source.as_str(), was.edge.target.as_str());
        let d = edge(&client, &s, &Default::default(), a, b, w)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.edge.metrics.requests, 40, "{a}->{b}");
        let ops: u64 = d.operations.iter().map(|o| o.metrics.requests).sum();
        assert_eq!(ops, 40, "{a}->{b}: every call in an operation");
        assert_eq!(d.exemplars.slowest.len(), 5, "{a}->{b}");
        assert!(d.notice.is_none(), "{a}->{b}");
        let json = |d: &EdgeDetail| serde_json::to_value(d).unwrap();
        assert_eq!(json(&d), json(was), "{a}->{b}");
    }
    assert_eq!(before[0].operations.len(), 3, "GET /0, /1, /2");
    assert_eq!(before[0].exemplars.failed.len(), 5);
}

#[tokio::test]
async fn call_rows_rebuilt_from_spans_equal_the_copy() {
    // What a backfill older than the copy reads: the same edge and node rows, by the same
    // expressions, from otel_traces.
    let ch = orrery_store::testing::fresh_database().await;
    let client = ch.client();
    let s = settings();
    let now = crate::now_ns();
    let t0 = now - 5 * 60_000 * MS;
    insert(&client, &traces(60, t0, 1)).await;
    let lookback = s.graph_parent_lookback.as_nanos() as i64;
    for (what, copy, spans) in [
        (
            "edges",
            edge_rows_from(minute_filter::ALL, CallSource::Copy),
            edge_rows_from(minute_filter::ALL, CallSource::Spans),
        ),
        (
            "nodes",
            node_rows_from(minute_filter::ALL, CallSource::Copy),
            node_rows_from(minute_filter::ALL, CallSource::Spans),
        ),
    ] {
        let mut got = Vec::new();
        for sql in [copy, spans] {
            let digest: (u64, u64) = client
                .query(&format!("SELECT count(), sum(cityHash64(*)) FROM ({sql})"))
                .param("lo", t0 - 60_000 * MS)
                .param("hi", now)
                .param("plo", t0 - 60_000 * MS - lookback)
                .param("chi", now + lookback)
                .param("settled", now)
                .param("region_attrs", vec!["cloud.region"])
                .fetch_one()
                .await
                .unwrap();
            got.push(digest);
        }
        assert!(got[0].0 > 3, "{what}: {got:?}");
        assert_eq!(got[0], got[1], "{what}: copy vs spans");
    }
}

#[tokio::test]
async fn upgrade_from_v10_with_data_keeps_working() {
    let ch = orrery_store::testing::fresh_database().await;
    let client = ch.client();
    let s = settings();
    // The schema as v10 left it: the call copy with the retention's TTL by whole parts, no v11
    // or v12 in the ledger.
    client
        .query("ALTER TABLE orrery_span_calls MODIFY TTL toDateTime(Timestamp) + toIntervalDay(7)")
        .execute()
        .await
        .unwrap();
    client
        .query("ALTER TABLE orrery_span_calls MODIFY SETTING ttl_only_drop_parts = 1")
        .execute()
        .await
        .unwrap();
    client
        .query("ALTER TABLE orrery_schema_migrations DELETE WHERE Version >= 11 SETTINGS mutations_sync = 2")
        .execute()
        .await
        .unwrap();
    let now = crate::now_ns();
    let t0 = now - 4 * 60_000 * MS;
    insert(&client, &traces(30, t0, 1)).await;
    let params = orrery_store::schema::SchemaParams::from_args(&ch).unwrap();
    let url = ch.clickhouse_url.clone().unwrap();
    let report = orrery_store::schema::migrate(&ch.server_client(&url), &params)
        .await
        .unwrap();
    // v11, v12 and every later migration (v13: day rollups).
    assert_eq!(
        report.applied,
        (11..=orrery_store::schema::latest_version()).collect::<Vec<_>>()
    );
    let ddl: String = client
        .query("SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = 'orrery_span_calls'")
        .fetch_one()
        .await
        .unwrap();
    assert!(ddl.contains("toIntervalHour(6)"), "{ddl}");
    assert!(ddl.contains("ttl_only_drop_parts = 0"), "{ddl}");
    // The calls stored before the upgrade are kept (not rewritten, not dropped: they are
    // young), new spans still land in the copy, and the graph and edge detail work.
    insert(&client, &traces(30, t0 + 60_000 * MS, 100)).await;
    assert_eq!(
        count(&client, "SELECT count() FROM orrery_span_calls").await,
        300
    );
    let w = crate::params::span(t0 - 60_000 * MS, now, now).unwrap();
    let d = edge(&client, &s, &Default::default(), "api", "shop", w)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.edge.metrics.requests, 60);
    let ops: u64 = d.operations.iter().map(|o| o.metrics.requests).sum();
    assert_eq!(ops, 60);
    // Migrating again is a no-op.
    let again = orrery_store::schema::migrate(&ch.server_client(&url), &params)
        .await
        .unwrap();
    assert!(again.applied.is_empty());
}

/// A focused graph of `shop` over `[lo, hi)` read at the real now.
async fn shop_graph(client: &Client, s: &GraphArgs, lo: i64, hi: i64) -> orrery_api::Graph {
    crate::graph::graph(
        client,
        s,
        &Default::default(),
        &GraphRequest {
            level: Level::Focused,
            region: None,
            focus: Some("shop".into()),
            window: crate::params::span(lo, hi, crate::now_ns()).unwrap(),
            whats_wrong: false,
            group: Default::default(),
        },
    )
    .await
    .unwrap()
}

/// Requests of each edge of `g`, by id.
fn requests(g: &orrery_api::Graph) -> std::collections::BTreeMap<String, u64> {
    g.edges
        .iter()
        .map(|e| (e.id.clone(), e.metrics.requests))
        .collect()
}

#[tokio::test]
async fn minutes_older_than_the_copy_roll_up_from_spans_late_spans_included() {
    // Schema v12 keeps call rows 6 hours. Spans 8 hours old are gone from the copy (or
    // partly there until a TTL merge), yet their minutes roll up to the same graph as the
    // same traces stored a few minutes ago (rolled up from the copy); spans arriving late into
    // such a minute are left out — reported, not served stale — until the next full check
    // recomputes it from the spans with them.
    let ch = orrery_store::testing::fresh_database().await;
    let client = ch.client();
    let s = settings();
    let now = crate::now_ns();
    let minute = 60_000 * MS;
    let old = (now - 8 * 3_600_000 * MS) / minute * minute;
    let recent = (now - 20 * minute) / minute * minute;
    insert(&client, &traces(40, old + 5_000 * MS, 1)).await;
    // Trace numbers 280 apart: the same errors, durations and regions.
    insert(&client, &traces(40, recent + 5_000 * MS, 281)).await;
    let calls = |lo: i64| {
        format!(
            "SELECT count() FROM orrery_span_calls WHERE Timestamp >= fromUnixTimestamp64Nano({lo}) AND Timestamp < fromUnixTimestamp64Nano({})",
            lo + minute
        )
    };
    // Rows already past the TTL are stored, then dropped by the copy's next TTL merge (at
    // most every 30 min per partition); force it here.
    client
        .query("OPTIMIZE TABLE orrery_span_calls FINAL")
        .execute()
        .await
        .unwrap();
    assert_eq!(count(&client, &calls(old)).await, 0, "no call row that old");
    assert_eq!(count(&client, &calls(recent)).await, 200);

    // A full check (the minute rollup's horizon): old minutes from spans, recent from the copy.
    let rollup = crate::rollup::Rollup::new(client.clone(), s.clone());
    let r = rollup
        .run_once(now, Duration::from_secs(9 * 3_600))
        .await
        .unwrap();
    assert!(r.computed.contains(&old) && r.computed.contains(&recent));
    let g_old = shop_graph(&client, &s, old - minute, old + 3 * minute).await;
    let g_recent = shop_graph(&client, &s, recent - minute, recent + 3 * minute).await;
    assert_eq!(g_old.data_quality.rollup_coverage, 1.0);
    assert_eq!(requests(&g_old).get("api->shop"), Some(&40));
    assert_eq!(requests(&g_old), requests(&g_recent));
    let metrics = |g: &orrery_api::Graph| {
        let mut m: Vec<_> = g
            .edges
            .iter()
            .map(|e| (e.id.clone(), serde_json::to_value(&e.metrics).unwrap()))
            .collect();
        m.sort_by(|a, b| a.0.cmp(&b.0));
        m
    };
    assert_eq!(metrics(&g_old), metrics(&g_recent), "errors, latency too");
    assert_eq!(
        g_old.data_quality.orphan_spans,
        g_recent.data_quality.orphan_spans
    );
    assert_eq!(g_old.data_quality.orphan_spans, 40);

    // Ten traces arrive 8 hours late into the old minute. Their call rows sit in the copy
    // until its next TTL merge: part of a minute, which nothing may read as the minute.
    insert(&client, &traces(10, old + 20_000 * MS, 500)).await;
    let stale = shop_graph(&client, &s, old - minute, old + 3 * minute).await;
    assert!(
        stale.data_quality.rollup_coverage < 1.0 && !stale.data_quality.uncovered.is_empty(),
        "a stale minute older than the copy is left out and reported: {:?}",
        stale.data_quality
    );
    assert_ne!(
        requests(&stale).get("api->shop"),
        Some(&40),
        "never the minute's old rows as if current"
    );
    // The regular run (15 minutes back) does not reach it; the next full check does.
    rollup
        .run_once(crate::now_ns(), s.graph_rollup_lookback)
        .await
        .unwrap();
    let r = rollup
        .run_once(crate::now_ns(), Duration::from_secs(9 * 3_600))
        .await
        .unwrap();
    assert!(r.computed.contains(&old), "{:?}", r.computed);
    assert_eq!(r.late_spans, 50);
    let g = shop_graph(&client, &s, old - minute, old + 3 * minute).await;
    assert_eq!(g.data_quality.rollup_coverage, 1.0);
    let got = requests(&g);
    assert_eq!(got.get("api->shop"), Some(&50));
    assert_eq!(got.get("shop->database:postgresql"), Some(&50));
    assert_eq!(g.data_quality.orphan_spans, 50);
}

#[tokio::test]
async fn a_window_older_than_the_copy_gets_the_namespaces_known_now() {
    // Namespaces are read from the call copy's rows; for a window 8 hours old they are gone,
    // so the graph takes those of the copy's newest hour rather than none.
    let ch = orrery_store::testing::fresh_database().await;
    let client = ch.client();
    let s = settings();
    let now = crate::now_ns();
    let minute = 60_000 * MS;
    let old = (now - 8 * 3_600_000 * MS) / minute * minute;
    insert(&client, &traces(20, old + 5_000 * MS, 1)).await;
    let mut recent = traces(5, now - 10 * minute, 281);
    for r in &mut recent {
        r.resource_attributes.push((
            "k8s.namespace.name".into(),
            format!("{}-ns", r.service_name),
        ));
    }
    insert(&client, &recent).await;
    crate::rollup::Rollup::new(client.clone(), s.clone())
        .run_once(now, Duration::from_secs(9 * 3_600))
        .await
        .unwrap();
    let g = shop_graph(&client, &s, old - minute, old + 3 * minute).await;
    assert_eq!(requests(&g).get("api->shop"), Some(&20));
    let ns = |id: &str| {
        g.nodes
            .iter()
            .find(|n| n.id == id)
            .and_then(|n| n.namespace.clone())
    };
    assert_eq!(ns("shop").as_deref(), Some("shop-ns"));
    assert_eq!(ns("api").as_deref(), Some("api-ns"));
    // A window the copy still covers reads its own last hour, as before.
    let w = crate::params::span(now - 3 * 3_600_000 * MS, now - 2 * 3_600_000 * MS, now).unwrap();
    let f = crate::graph::facts_window(&s, w);
    assert_eq!((f.lo, f.hi), (w.lo, w.hi));
}

/// The minute rollups' TTL (v14, read through the writer bits since v16): a marker lives
/// 25 hours after the later of its minute and its computation. An old minute computed now
/// stays; one computed as long ago goes; a value written before v16 (a bare millisecond, read
/// as 1970) goes by its minute alone.
#[tokio::test]
async fn minute_markers_live_hours_after_the_later_of_their_minute_and_computation() {
    use orrery_store::computed_at::ComputedAtClock;
    let ch = orrery_store::testing::fresh_database().await;
    let client = ch.client();
    let now_ms = (crate::now_ns() / MS) as u64;
    let hour_ms = 3_600_000u64;
    let minute_s = |ms: u64| (ms / 60_000 * 60) as u32;
    let old = now_ms - 30 * hour_ms;
    let clock = ComputedAtClock::default();
    // (minute, ComputedAt, kept?)
    let rows = [
        (minute_s(old), clock.next(now_ms), true),
        (
            minute_s(old) - 60,
            ComputedAtClock::default().next(old),
            false,
        ),
        (minute_s(old) - 120, now_ms, false),
        (minute_s(now_ms - hour_ms), now_ms, true),
    ];
    for (minute, computed, _) in rows {
        client
            .query(
                "INSERT INTO orrery_graph_minutes (Minute, ComputedAt, Spans, Orphans, Unmatched, Late)
                 VALUES (toDateTime({m:UInt32}), {c:UInt64}, 1, 0, 0, 0)",
            )
            .param("m", minute)
            .param("c", computed)
            .execute()
            .await
            .unwrap();
    }
    for stmt in [
        "ALTER TABLE orrery_graph_minutes MATERIALIZE TTL SETTINGS mutations_sync = 2",
        "OPTIMIZE TABLE orrery_graph_minutes FINAL",
    ] {
        client.query(stmt).execute().await.unwrap();
    }
    let mut left: Vec<u32> = client
        .query("SELECT toUInt32(Minute) FROM orrery_graph_minutes")
        .fetch_all()
        .await
        .unwrap();
    left.sort_unstable();
    let mut kept: Vec<u32> = rows.iter().filter(|r| r.2).map(|r| r.0).collect();
    kept.sort_unstable();
    assert_eq!(left, kept);
}
