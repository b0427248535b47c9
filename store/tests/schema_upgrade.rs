//! The squashed baseline against history, on the real embedded engine (one shared engine
//! process, a database per case):
//! - a fresh install (the baseline) ends in exactly the schema of replaying every migration;
//! - an install made by the release of EVERY older version, with rows in its tables, upgrades
//!   to the current version keeping its spans and derived rows (only the v2/v5 rollups, which
//!   v6 replaces, go) and ends in that same schema;
//! - migrators racing on a fresh install (some taking the baseline, some replaying history as
//!   a previous release would) converge;
//! - a database that is not empty but has no ledger (the exporter's tables, a baseline that
//!   stopped half way) is brought up by replaying, not taken for a fresh one;
//! - a database at a version newer than this build knows is refused and left untouched.

use std::collections::BTreeMap;

use orrery_store::ClickHouseArgs;
use orrery_store::schema::{
    self, MigrateReport, SchemaParams, baseline_ddl, latest_version, migrations,
};
use orrery_store::testing::TestServer;

/// A database of its own on the shared engine: (settings, schema params).
fn database(tag: &str) -> (ClickHouseArgs, SchemaParams) {
    let db = format!("upgrade_{}_{tag}", std::process::id());
    let args = ClickHouseArgs::for_url(&TestServer::shared().url, db);
    let params = SchemaParams::from_args(&args).unwrap();
    (args, params)
}

/// A client not bound to a database (migrations create theirs).
fn root(args: &ClickHouseArgs) -> clickhouse::Client {
    args.server_client(&TestServer::shared().url)
}

/// Versions in the ledger.
async fn ledger(args: &ClickHouseArgs) -> Vec<u32> {
    args.client()
        .query("SELECT DISTINCT Version FROM orrery_schema_migrations ORDER BY Version")
        .fetch_all()
        .await
        .unwrap()
}

fn all_versions() -> Vec<u32> {
    (1..=latest_version()).collect()
}

/// `SHOW CREATE TABLE` text with the database name taken out and the `SETTINGS` list sorted
/// (a setting in the CREATE and the same setting added by `ALTER … MODIFY SETTING` are listed
/// in a different order, and mean the same).
fn normalise(db: &str, create: &str) -> String {
    let text = create.replace(&format!("{db}."), "DB.");
    match text.rsplit_once("\nSETTINGS ") {
        Some((head, settings)) => {
            let mut list: Vec<&str> = settings.split(", ").collect();
            list.sort_unstable();
            format!("{head}\nSETTINGS {}", list.join(", "))
        }
        None => text,
    }
}

/// Every table and view of the database, by name, as the engine describes it.
async fn schema_of(args: &ClickHouseArgs) -> BTreeMap<String, String> {
    let db = &args.clickhouse_database;
    let client = args.client();
    let names: Vec<String> = client
        .query("SELECT name FROM system.tables WHERE database = ? ORDER BY name")
        .bind(db)
        .fetch_all()
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for name in names {
        let create: String = client
            .query(&format!("SHOW CREATE TABLE `{db}`.`{name}`"))
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("SHOW CREATE TABLE {name}: {e}"));
        out.insert(name, normalise(db, &create));
    }
    out
}

/// Table by table, what differs between two schemas (empty when equal).
fn differences(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .filter(|n| a.get(*n) != b.get(*n))
        .map(|n| format!("{n}:\n  {:?}\n  {:?}", a.get(n), b.get(n)))
        .collect()
}

/// The schema a fresh install makes (the baseline), in a database of its own.
async fn reference(tag: &str) -> BTreeMap<String, String> {
    let (args, params) = database(tag);
    let report = schema::migrate(&root(&args), &params).await.unwrap();
    assert!(report.baseline, "{report:?}");
    schema_of(&args).await
}

/// Fresh install ≡ replaying history: the same tables and views, each described the same, and
/// the same ledger; the baseline itself never creates what the replay drops.
#[tokio::test]
async fn fresh_baseline_is_the_schema_of_replaying_every_migration() {
    for days in [7, 0] {
        let (fresh, mut p) = database(&format!("fresh_{days}"));
        p.retention_days = days;
        let report = schema::migrate(&root(&fresh), &p).await.unwrap();
        assert_eq!(
            report,
            MigrateReport {
                applied: all_versions(),
                already: vec![],
                baseline: true
            }
        );
        let (replayed, mut q) = database(&format!("replay_{days}"));
        q.retention_days = days;
        let report = schema::replay_to(&root(&replayed), &q, latest_version())
            .await
            .unwrap();
        assert_eq!(report.applied, all_versions());
        assert!(!report.baseline);

        let (a, b) = (schema_of(&fresh).await, schema_of(&replayed).await);
        let diff = differences(&a, &b);
        assert!(diff.is_empty(), "retention {days}:\n{}", diff.join("\n"));
        for table in ["otel_traces", "orrery_span_calls", "orrery_graph_edges_1m"] {
            assert!(a.contains_key(table), "{table} missing: {:?}", a.keys());
        }
        assert!(!a.contains_key("orrery_edges_1m"), "the v2 table is gone");
        assert_eq!(ledger(&fresh).await, all_versions());
        assert_eq!(ledger(&replayed).await, all_versions());
        // Run again: nothing to do.
        let again = schema::migrate(&root(&fresh), &p).await.unwrap();
        assert!(again.applied.is_empty() && !again.baseline, "{again:?}");
        assert_eq!(again.already, all_versions());
    }
    // The baseline's text has no v2/v5 table, no drop, no copy.
    let ddl = baseline_ddl(&database("text").1).join(";\n");
    for absent in [
        "orrery_edges_1m",
        "orrery_rollup_hours",
        "DROP ",
        "INSERT ",
        "EXCHANGE ",
    ] {
        assert!(!ddl.contains(absent), "{absent} in the baseline");
    }
}

/// Tables v6 drops (derived rollups with t-digests, recomputed from spans into the v6 tables).
const REPLACED_BY_V6: &[&str] = &[
    "orrery_edges_1m",
    "orrery_nodes_1m",
    "orrery_rollup_minutes",
    "orrery_edges_1h",
    "orrery_nodes_1h",
    "orrery_rollup_hours",
];

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

#[derive(clickhouse::Row, serde::Deserialize)]
struct Column {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

/// Rows in every data table at the install's version: a client span of `front` and the server
/// span of `back` it called (the views fill the lookup, call and count tables from them), and
/// one row in each other table, its time columns two minutes ago (inside every TTL).
async fn seed(args: &ClickHouseArgs) {
    let client = args.client();
    client
        .query(
            "INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind,
             ServiceName, ResourceAttributes, SpanAttributes, Duration, StatusCode)
             VALUES
             (now64(9) - INTERVAL 2 MINUTE, ?, '1111111111111111', '', 'GET /cart', 'Client', 'front',
              map('service.name', 'front'), map('http.method', 'GET'), 3000000, 'Ok'),
             (now64(9) - INTERVAL 2 MINUTE, ?, '2222222222222222', '1111111111111111', 'GET /cart', 'Server',
              'back', map('service.name', 'back'), map('http.response.status_code', '500'),
              2000000, 'Error')",
        )
        .bind(TRACE)
        .bind(TRACE)
        .execute()
        .await
        .unwrap();
    let tables: Vec<String> = client
        .query(
            "SELECT name FROM system.tables WHERE database = currentDatabase()
             AND engine LIKE '%MergeTree' AND name NOT IN ('otel_traces', 'orrery_schema_migrations')
             ORDER BY name",
        )
        .fetch_all()
        .await
        .unwrap();
    for table in tables {
        let cols: Vec<Column> = client
            .query(
                "SELECT name, type FROM system.columns WHERE database = currentDatabase()
                 AND table = ? ORDER BY position",
            )
            .bind(&table)
            .fetch_all()
            .await
            .unwrap();
        let times: Vec<String> = cols
            .iter()
            .filter(|c| c.ty.starts_with("DateTime"))
            .map(|c| format!("`{}`", c.name))
            .collect();
        assert!(!times.is_empty(), "{table} has no time column");
        let values = vec!["now() - 120"; times.len()].join(", ");
        client
            .query(&format!(
                "INSERT INTO `{table}` ({}) SELECT {values}",
                times.join(", ")
            ))
            .execute()
            .await
            .unwrap_or_else(|e| panic!("seeding {table}: {e}"));
    }
}

/// Rows per data table, merge-independent (collapsing engines counted FINAL).
async fn row_counts(args: &ClickHouseArgs) -> BTreeMap<String, u64> {
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Table {
        name: String,
        engine: String,
    }
    let client = args.client();
    let tables: Vec<Table> = client
        .query(
            "SELECT name, engine FROM system.tables WHERE database = currentDatabase()
             AND engine LIKE '%MergeTree' AND name != 'orrery_schema_migrations'",
        )
        .fetch_all()
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for t in tables {
        let fin = if t.engine.contains("Replacing") || t.engine.contains("Summing") {
            " FINAL"
        } else {
            ""
        };
        let n: u64 = client
            .query(&format!("SELECT count() FROM `{}`{fin}", t.name))
            .fetch_one()
            .await
            .unwrap();
        out.insert(t.name, n);
    }
    out
}

/// Install at version `k` (as the release whose latest it was made it), rows in, upgrade.
async fn upgrade_from(k: u32, want: &BTreeMap<String, String>) -> Result<(), String> {
    let (args, params) = database(&format!("from_v{k}"));
    let made = schema::replay_to(&root(&args), &params, k)
        .await
        .map_err(|e| format!("v{k}: {e:#}"))?;
    assert_eq!(made.applied, (1..=k).collect::<Vec<_>>());
    seed(&args).await;
    let before = row_counts(&args).await;

    let report = schema::migrate(&root(&args), &params)
        .await
        .map_err(|e| format!("upgrade from v{k}: {e:#}"))?;
    let mut problems = Vec::new();
    if report.baseline
        || report.already != (1..=k).collect::<Vec<_>>()
        || report.applied != (k + 1..=latest_version()).collect::<Vec<_>>()
    {
        problems.push(format!("report {report:?}"));
    }
    if ledger(&args).await != all_versions() {
        problems.push(format!("ledger {:?}", ledger(&args).await));
    }
    problems.extend(differences(&schema_of(&args).await, want));

    // Spans and derived rows are all still there; only the v2/v5 rollups are gone.
    let after = row_counts(&args).await;
    for (table, n) in &before {
        let left = after.get(table);
        if REPLACED_BY_V6.contains(&table.as_str()) && k < 6 {
            if left.is_some() {
                problems.push(format!("{table} should be dropped by v6"));
            }
        } else if left != Some(n) {
            problems.push(format!("{table}: {n} rows before, {left:?} after"));
        }
    }
    let client = args.client();
    // A day marker made before v15 has no span count (−1): readers decide that day by the
    // version rule and the next day pass merges it once more, with its count.
    if (13..15).contains(&k) {
        let counts: Vec<i64> = client
            .query("SELECT Spans FROM orrery_graph_days")
            .fetch_all()
            .await
            .unwrap();
        if counts != vec![-1] {
            problems.push(format!(
                "day markers from v{k} read counts {counts:?}, not [-1]"
            ));
        }
    }
    let spans: u64 = client
        .query("SELECT count() FROM otel_traces WHERE TraceId = ?")
        .bind(TRACE)
        .fetch_one()
        .await
        .unwrap();
    if spans != 2 {
        problems.push(format!("{spans} spans of the trace"));
    }
    // The views write the upgraded tables: a new span reaches the lookup and the counts.
    let lookups = |c: clickhouse::Client| async move {
        c.query("SELECT count() FROM otel_traces_trace_id_ts WHERE TraceId = 'after-upgrade'")
            .fetch_one::<u64>()
            .await
            .unwrap()
    };
    let counted = |c: clickhouse::Client| async move {
        c.query("SELECT sum(Spans) FROM orrery_span_slots")
            .fetch_one::<u64>()
            .await
            .unwrap()
    };
    let slots_before = counted(client.clone()).await;
    client
        .query(
            "INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ServiceName, SpanKind, Duration)
             VALUES (now64(9), 'after-upgrade', '3333333333333333', 'front', 'Server', 1)",
        )
        .execute()
        .await
        .unwrap();
    if lookups(client.clone()).await != 1 {
        problems.push("the lookup view no longer writes its table".into());
    }
    if counted(client.clone()).await != slots_before + 1 {
        problems.push("the slot count view no longer writes its table".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("from v{k}:\n{}", problems.join("\n")))
    }
}

/// An install at every older version upgrades to the current one with its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_older_version_upgrades_to_current_with_its_data() {
    let want = reference("upgrade_reference").await;
    let mut runs = tokio::task::JoinSet::new();
    for k in 1..latest_version() {
        let want = want.clone();
        runs.spawn(async move { upgrade_from(k, &want).await });
    }
    let mut failures = Vec::new();
    let mut done = 0;
    while let Some(run) = runs.join_next().await {
        match run.unwrap() {
            Ok(()) => done += 1,
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(done, latest_version() - 1);
}

/// Migrators starting at once on an empty database — two of this build (the baseline) and two
/// replaying history one migration at a time as an older release would — end in the current
/// schema with nothing of the replay left over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrators_on_a_fresh_install_converge() {
    let want = reference("race_reference").await;
    for round in 0..2 {
        let (args, params) = database(&format!("race_{round}"));
        let mut runs = tokio::task::JoinSet::new();
        for i in 0..4 {
            let (client, params) = (root(&args), params.clone());
            runs.spawn(async move {
                if i % 2 == round % 2 {
                    schema::migrate(&client, &params).await
                } else {
                    schema::replay_to(&client, &params, latest_version()).await
                }
            });
        }
        let results: Vec<_> = runs.join_all().await;
        // A replayer may lose migration 7's exchange to another and fail its start; its
        // restart then finds nothing left to do.
        assert!(results.iter().any(|r| r.is_ok()), "{results:?}");
        schema::migrate(&root(&args), &params).await.unwrap();
        let diff = differences(&schema_of(&args).await, &want);
        assert!(diff.is_empty(), "round {round}:\n{}", diff.join("\n"));
        assert_eq!(ledger(&args).await, all_versions());
    }
}

/// Not empty but no ledger: the OpenTelemetry exporter's first tables, or a baseline that died
/// half way. Both are replayed (the exporter's lookup table is rebuilt by v7), not taken for
/// a fresh install, and end in the current schema.
#[tokio::test]
async fn tables_without_a_ledger_are_replayed_not_baselined() {
    let want = reference("orphan_reference").await;
    let v1 = &migrations()[0];
    assert_eq!(v1.version, 1);
    let (args, params) = database("exporter_made");
    let client = root(&args);
    client
        .query(&format!("CREATE DATABASE {}", params.database))
        .execute()
        .await
        .unwrap();
    for stmt in (v1.statements)(&params) {
        client.query(&stmt).execute().await.unwrap();
    }
    seed(&args).await;
    let report = schema::migrate(&client, &params).await.unwrap();
    assert!(!report.baseline, "{report:?}");
    assert_eq!(report.applied, all_versions());
    let diff = differences(&schema_of(&args).await, &want);
    assert!(diff.is_empty(), "{}", diff.join("\n"));
    let lookups: u64 = args
        .client()
        .query("SELECT count() FROM otel_traces_trace_id_ts WHERE TraceId = ?")
        .bind(TRACE)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        lookups, 1,
        "the exporter's lookup row survives v7's rebuild"
    );

    let (args, params) = database("half_baseline");
    let client = root(&args);
    let ddl = baseline_ddl(&params);
    for stmt in &ddl[..ddl.len() / 2] {
        client.query(stmt).execute().await.unwrap();
    }
    let report = schema::migrate(&client, &params).await.unwrap();
    assert!(!report.baseline, "{report:?}");
    let diff = differences(&schema_of(&args).await, &want);
    assert!(diff.is_empty(), "{}", diff.join("\n"));
    assert_eq!(ledger(&args).await, all_versions());
}

/// A database a newer release migrated is refused with the versions named, and nothing in it
/// changes (a table missing there is not re-created by this build).
#[tokio::test]
async fn a_database_newer_than_this_build_is_refused() {
    let (args, params) = database("newer");
    schema::migrate(&root(&args), &params).await.unwrap();
    let future = latest_version() + 1;
    let client = args.client();
    client
        .query("INSERT INTO orrery_schema_migrations (Version, Name) VALUES (?, 'from the future')")
        .bind(future)
        .execute()
        .await
        .unwrap();
    client
        .query("DROP TABLE orrery_graph_slots SYNC")
        .execute()
        .await
        .unwrap();
    let before = schema_of(&args).await;
    let err = schema::migrate(&root(&args), &params)
        .await
        .expect_err("a newer schema must be refused");
    let msg = format!("{err:#}");
    for part in [
        format!("schema version {future}"),
        format!("latest is {}", latest_version()),
        params.database.clone(),
        "newer".to_string(),
    ] {
        assert!(msg.contains(&part), "{part:?} not in: {msg}");
    }
    assert_eq!(
        schema_of(&args).await,
        before,
        "a refused migrate changed the schema"
    );
    // The replay path (an older target) refuses too.
    assert!(schema::replay_to(&root(&args), &params, 3).await.is_err());
}
