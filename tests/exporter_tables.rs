//! Tables made by the OpenTelemetry Collector ClickHouse exporter (opentelemetry-collector-
//! contrib `exporter/clickhouseexporter`) of three generations, on the real embedded engine:
//! Orrery migrates the database they live in (migration 7 rebuilds `otel_traces_trace_id_ts` in
//! the exporter's current shape, keeping its rows) and its query service reads their spans
//! through Orrery's, Jaeger v1's and Jaeger v3's trace-by-id.
//!
//! The DDL of each generation, as the exporter created it (its `%s` placeholders filled the way
//! the exporter fills them without a cluster, TTL or table-name options). The contrib
//! repository's history was too large to fetch here, so the two older generations are the
//! shapes found in copies of the exporter's older DDL; the newest is its current
//! `internal/sql_templates`:
//!
//! - `GEN1` (oldest): no `ScopeName`/`ScopeVersion`, `Duration Int64`, `SPAN_KIND_*`/
//!   `STATUS_CODE_*` spellings, lookup `DateTime64(9)` ordered by
//!   `(TraceId, toUnixTimestamp(Start))`;
//! - `GEN2`: `ScopeName`/`ScopeVersion` added, still `Duration Int64`, lookup unchanged;
//! - `GEN3` (current `traces_table.sql` and `traces_id_ts_lookup_table.sql`): `Duration UInt64`,
//!   `Server`/`Error` spellings, lookup `DateTime` ordered by `(TraceId, Start)` with
//!   `ttl_only_drop_parts = 1`.

mod query_support;

use clap::Parser;
use orrery_query::QueryArgs;
use orrery_store::ClickHouseArgs;
use orrery_store::schema::{self, SchemaParams};
use orrery_store::testing::TestServer;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const GEN1: &str = "
CREATE TABLE IF NOT EXISTS {db}.otel_traces (
     Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
     TraceId String CODEC(ZSTD(1)),
     SpanId String CODEC(ZSTD(1)),
     ParentSpanId String CODEC(ZSTD(1)),
     TraceState String CODEC(ZSTD(1)),
     SpanName LowCardinality(String) CODEC(ZSTD(1)),
     SpanKind LowCardinality(String) CODEC(ZSTD(1)),
     ServiceName LowCardinality(String) CODEC(ZSTD(1)),
     ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
     SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
     Duration Int64 CODEC(ZSTD(1)),
     StatusCode LowCardinality(String) CODEC(ZSTD(1)),
     StatusMessage String CODEC(ZSTD(1)),
     Events Nested (
         Timestamp DateTime64(9),
         Name LowCardinality(String),
         Attributes Map(LowCardinality(String), String)
     ) CODEC(ZSTD(1)),
     Links Nested (
         TraceId String,
         SpanId String,
         TraceState String,
         Attributes Map(LowCardinality(String), String)
     ) CODEC(ZSTD(1)),
     INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
     INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
     INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
     INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
     INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
     INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE MergeTree()
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toUnixTimestamp(Timestamp), TraceId)
SETTINGS index_granularity=8192, ttl_only_drop_parts = 1;
CREATE TABLE IF NOT EXISTS {db}.otel_traces_trace_id_ts (
     TraceId String CODEC(ZSTD(1)),
     Start DateTime64(9) CODEC(Delta, ZSTD(1)),
     End DateTime64(9) CODEC(Delta, ZSTD(1)),
     INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE MergeTree()
ORDER BY (TraceId, toUnixTimestamp(Start))
SETTINGS index_granularity=8192;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.otel_traces_trace_id_ts_mv
TO {db}.otel_traces_trace_id_ts
AS SELECT TraceId, min(Timestamp) as Start, max(Timestamp) as End
FROM {db}.otel_traces WHERE TraceId != '' GROUP BY TraceId";

fn gen2() -> String {
    GEN1.replace(
        "     SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),",
        "     ScopeName String CODEC(ZSTD(1)),
     ScopeVersion String CODEC(ZSTD(1)),
     SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),",
    )
}

fn gen3() -> String {
    let spans = gen2().replace("Duration Int64", "Duration UInt64").replace(
        "ORDER BY (ServiceName, SpanName, toUnixTimestamp(Timestamp), TraceId)",
        "ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))",
    );
    spans.replace(
        "     Start DateTime64(9) CODEC(Delta, ZSTD(1)),
     End DateTime64(9) CODEC(Delta, ZSTD(1)),
     INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE MergeTree()
ORDER BY (TraceId, toUnixTimestamp(Start))
SETTINGS index_granularity=8192;",
        "     Start DateTime CODEC(Delta, ZSTD(1)),
     End DateTime CODEC(Delta, ZSTD(1)),
     INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE MergeTree()
PARTITION BY toDate(Start)
ORDER BY (TraceId, Start)
SETTINGS index_granularity=8192, ttl_only_drop_parts = 1;",
    )
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    query: QueryArgs,
}

async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

struct Case {
    name: &'static str,
    ddl: String,
    scope: bool,
    kind: &'static str,
    status: &'static str,
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct ColumnType {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

/// One test for all generations: the resolved select list is process-wide (one process reads
/// one database), so the generations run one after another.
#[tokio::test]
async fn tables_of_three_exporter_generations_are_migrated_and_read() {
    let server = TestServer::shared();
    let cases = [
        Case {
            name: "gen1",
            ddl: GEN1.to_string(),
            scope: false,
            kind: "SPAN_KIND_SERVER",
            status: "STATUS_CODE_ERROR",
        },
        Case {
            name: "gen2",
            ddl: gen2(),
            scope: true,
            kind: "SPAN_KIND_SERVER",
            status: "STATUS_CODE_ERROR",
        },
        Case {
            name: "gen3",
            ddl: gen3(),
            scope: true,
            kind: "Server",
            status: "Error",
        },
    ];
    for case in cases {
        let db = format!("exporter_{}_{}", case.name, std::process::id());
        let ch = ClickHouseArgs::for_url(&server.url, db.clone());
        let root = ch.server_client(&server.url);
        root.query(&format!("CREATE DATABASE IF NOT EXISTS {db}"))
            .execute()
            .await
            .unwrap();
        for stmt in case.ddl.replace("{db}", &db).split(';') {
            root.query(stmt)
                .execute()
                .await
                .unwrap_or_else(|e| panic!("{}: exporter DDL failed: {e}\n{stmt}", case.name));
        }
        // Spans as that exporter wrote them.
        let client = ch.client();
        let ts = query_support::now_ns() - 5 * query_support::MINUTE;
        let scope_cols = if case.scope {
            "ScopeName, ScopeVersion, "
        } else {
            ""
        };
        let scope_vals = if case.scope { "'lib', '1.0', " } else { "" };
        let trace = "5b8efff798038103d269b633813fc60c";
        client
            .query(&format!(
                "INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind,
                 ServiceName, ResourceAttributes, {scope_cols}SpanAttributes, Duration, StatusCode,
                 `Events.Timestamp`, `Events.Name`, `Events.Attributes`)
                 VALUES (fromUnixTimestamp64Nano({ts}), '{trace}', 'aaaaaaaaaaaaaaaa', '', 'GET /', '{kind}',
                 'old-svc', map('service.name', 'old-svc'), {scope_vals}map('http.route', '/'), 1500000,
                 '{status}', [fromUnixTimestamp64Nano({ts})], ['boom'], [map('k', 'v')])",
                kind = case.kind,
                status = case.status,
            ))
            .execute()
            .await
            .unwrap();

        // Orrery's migrations on the exporter's database.
        let params = SchemaParams::from_args(&ch).unwrap();
        schema::migrate(&root, &params)
            .await
            .unwrap_or_else(|e| panic!("{}: migrate failed: {e:#}", case.name));
        let cols: Vec<ColumnType> = client
            .query(
                "SELECT name, type FROM system.columns WHERE database = currentDatabase()
                 AND table = 'otel_traces_trace_id_ts' ORDER BY position",
            )
            .fetch_all()
            .await
            .unwrap();
        let cols: Vec<(String, String)> = cols.into_iter().map(|c| (c.name, c.ty)).collect();
        assert_eq!(
            cols,
            vec![
                ("TraceId".into(), "String".into()),
                ("Start".into(), "DateTime".into()),
                ("End".into(), "DateTime".into())
            ],
            "{}",
            case.name
        );
        let key: String = client
            .query(
                "SELECT sorting_key FROM system.tables WHERE database = currentDatabase()
                 AND name = 'otel_traces_trace_id_ts'",
            )
            .fetch_one()
            .await
            .unwrap();
        assert_eq!(key, "TraceId, Start", "{}", case.name);
        // The exporter's lookup row survived the rebuild, and the view fills the new table.
        let n: u64 = client
            .query("SELECT count() FROM otel_traces_trace_id_ts WHERE TraceId = ?")
            .bind(trace)
            .fetch_one()
            .await
            .unwrap();
        assert_eq!(n, 1, "{}: lookup row copied", case.name);
        client
            .query(
                "INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ServiceName, Duration)
                 VALUES (now64(9), 'ffffffffffffffffffffffffffffffff', 'b', 'x', 1)",
            )
            .execute()
            .await
            .unwrap();
        let n: u64 = client
            .query("SELECT count() FROM otel_traces_trace_id_ts WHERE TraceId = 'ffffffffffffffffffffffffffffffff'")
            .fetch_one()
            .await
            .unwrap();
        assert_eq!(n, 1, "{}: the view writes the rebuilt table", case.name);

        // The query service reads the exporter's spans.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let args = Cli::parse_from(["t", "--query-addr", &addr, "--graph-no-rollup"]).query;
        let shutdown = CancellationToken::new();
        let _stop = shutdown.clone().drop_guard();
        tokio::spawn(orrery_query::serve(listener, args, ch.clone(), shutdown));
        let base = format!("http://{addr}");
        let (st, v) = get(&format!("{base}/orrery/api/traces/{trace}")).await;
        assert_eq!(st, 200, "{}: {v}", case.name);
        let span = &v["spans"][0];
        assert_eq!(span["duration_us"], 1500, "{}: {v}", case.name);
        assert_eq!(span["kind"], "Server", "{}", case.name);
        assert_eq!(span["status"]["code"], "Error", "{}", case.name);
        assert_eq!(
            span["scope"]["name"],
            if case.scope { "lib" } else { "" },
            "{}",
            case.name
        );
        let (st, v) = get(&format!("{base}/api/traces/{trace}")).await;
        assert_eq!(st, 200, "{}: {v}", case.name);
        assert_eq!(v["data"][0]["spans"][0]["duration"], 1500);
        let (st, v) = get(&format!("{base}/api/v3/traces/{trace}")).await;
        assert_eq!(st, 200, "{}: {v}", case.name);
        let s = &v["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(s["kind"], 2, "{}", case.name);
        assert_eq!(s["events"][0]["name"], "boom");
        let (st, v) = get(&format!(
            "{base}/api/v3/trace-summaries?query.serviceName=old-svc&query.startTimeMin=2000-01-01T00:00:00Z&query.startTimeMax=2100-01-01T00:00:00Z"
        ))
        .await;
        assert_eq!(st, 200, "{}: {v}", case.name);
        assert_eq!(v["summaries"][0]["errorSpanCount"], 1, "{}: {v}", case.name);
    }
}

async fn lookup_shape(client: &clickhouse::Client) -> (Vec<(String, String)>, String) {
    let cols: Vec<ColumnType> = client
        .query(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase()
             AND table = 'otel_traces_trace_id_ts' ORDER BY position",
        )
        .fetch_all()
        .await
        .unwrap();
    let key: String = client
        .query(
            "SELECT sorting_key FROM system.tables WHERE database = currentDatabase()
             AND name = 'otel_traces_trace_id_ts'",
        )
        .fetch_one()
        .await
        .unwrap();
    (cols.into_iter().map(|c| (c.name, c.ty)).collect(), key)
}

/// Migration 7 run again after a crash, and by several processes at once: the lookup table
/// always ends in the new shape with its rows, and the view keeps filling it.
#[tokio::test]
async fn migration_7_survives_reruns_and_concurrent_migrators() {
    let server = TestServer::shared();
    let db = format!("exporter_race_{}", std::process::id());
    let ch = ClickHouseArgs::for_url(&server.url, db.clone());
    let root = ch.server_client(&server.url);
    root.query(&format!("CREATE DATABASE IF NOT EXISTS {db}"))
        .execute()
        .await
        .unwrap();
    for stmt in GEN1.replace("{db}", &db).split(';') {
        root.query(stmt).execute().await.unwrap();
    }
    let client = ch.client();
    client
        .query(
            "INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ServiceName, Duration)
             SELECT now64(9), lower(hex(number + 1)), 's', 'svc', 1 FROM numbers(100)",
        )
        .execute()
        .await
        .unwrap();
    let params = SchemaParams::from_args(&ch).unwrap();
    // Four migrators at once; some may lose the race on the rename and fail their start.
    let runs = futures::future::join_all((0..4).map(|_| schema::migrate(&root, &params))).await;
    assert!(runs.iter().any(|r| r.is_ok()), "{runs:?}");
    // The losers' restart: nothing left to do, or the whole migration again.
    schema::migrate(&root, &params).await.unwrap();
    let new_shape = (
        vec![
            ("TraceId".to_string(), "String".to_string()),
            ("Start".to_string(), "DateTime".to_string()),
            ("End".to_string(), "DateTime".to_string()),
        ],
        "TraceId, Start".to_string(),
    );
    assert_eq!(lookup_shape(&client).await, new_shape);
    let distinct = |c: clickhouse::Client| async move {
        c.query("SELECT uniqExact(TraceId) FROM otel_traces_trace_id_ts")
            .fetch_one::<u64>()
            .await
            .unwrap()
    };
    assert_eq!(distinct(client.clone()).await, 100);
    // A crash after the rename but before the version was recorded: the statements run again.
    let v7 = schema::migrations()
        .iter()
        .find(|m| m.version == 7)
        .unwrap();
    for stmt in (v7.statements)(&params) {
        root.query(&stmt).execute().await.unwrap();
    }
    assert_eq!(lookup_shape(&client).await, new_shape);
    assert_eq!(distinct(client.clone()).await, 100);
    client
        .query(
            "INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ServiceName, Duration)
             VALUES (now64(9), 'after', 's', 'svc', 1)",
        )
        .execute()
        .await
        .unwrap();
    assert_eq!(
        distinct(client.clone()).await,
        101,
        "the view writes the table in place"
    );
}
