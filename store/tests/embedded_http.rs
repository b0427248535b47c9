//! The embedded server must be indistinguishable from a real ClickHouse for the `clickhouse`
//! crate: typed rows (validation on), bound and server-side parameters, streaming, errors.
//! Plus the raw HTTP interface features other clients use (JSONEachRow/Native inserts, GET
//! queries, gzip bodies).

use clickhouse::Row;
use orrery_store::SpanRow;
use orrery_store::testing::{TestServer, fresh_database};
use serde::Deserialize;

/// Now, in ns: rows older than the retention TTL would be dropped on insert.
fn base_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
        - 3_600_000_000_000
}

fn span(i: u64) -> SpanRow {
    SpanRow {
        timestamp: base_ns() / 1_000_000_000 * 1_000_000_000 + i as i64 * 1_000_003,
        trace_id: format!("{:032x}", 0xabcdef00u64 + i / 4),
        span_id: format!("{:016x}", 0x1000 + i),
        parent_span_id: if i.is_multiple_of(4) {
            String::new()
        } else {
            format!("{:016x}", 0x1000 + i - 1)
        },
        trace_state: "k=v".into(),
        span_name: format!("GET /item/{}", i % 3),
        span_kind: orrery_store::span::kind::SERVER.into(),
        service_name: format!("svc-{}", i % 5),
        resource_attributes: vec![
            ("service.name".into(), format!("svc-{}", i % 5)),
            ("cloud.region".into(), "eu-west-1".into()),
        ],
        scope_name: "scope".into(),
        scope_version: "1.0".into(),
        span_attributes: vec![
            ("http.response.status_code".into(), "200".into()),
            ("ünïcødé".into(), "\u{1F680}\n'\"\\".into()),
        ],
        duration: 1_000_000 + i,
        status_code: if i.is_multiple_of(7) {
            "Error".into()
        } else {
            "Unset".into()
        },
        status_message: String::new(),
        events_timestamp: if i.is_multiple_of(5) {
            vec![base_ns() / 1_000_000_000 * 1_000_000_000 + 123]
        } else {
            vec![]
        },
        events_name: if i.is_multiple_of(5) {
            vec!["exception".into()]
        } else {
            vec![]
        },
        events_attributes: if i.is_multiple_of(5) {
            vec![vec![("exception.message".into(), "boom".into())]]
        } else {
            vec![]
        },
        links_trace_id: vec![format!("{:032x}", i)],
        links_span_id: vec![format!("{:016x}", i)],
        links_trace_state: vec![String::new()],
        links_attributes: vec![vec![("link".into(), "yes".into())]],
    }
}

#[tokio::test]
async fn span_rows_round_trip_exactly_through_rowbinary_with_validation() {
    let ch = fresh_database().await;
    let client = ch.client();
    let rows: Vec<SpanRow> = (0..2_000).map(span).collect();
    let mut insert = client.insert::<SpanRow>("otel_traces").await.unwrap();
    for r in &rows {
        insert.write(r).await.unwrap();
    }
    insert.end().await.unwrap();
    let stored: u64 = client
        .query("SELECT count() FROM otel_traces")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(stored, rows.len() as u64);

    let mut got: Vec<SpanRow> = client
        .query("SELECT ?fields FROM otel_traces ORDER BY SpanId")
        .fetch_all()
        .await
        .unwrap();
    let mut want = rows.clone();
    want.sort_by(|a, b| a.span_id.cmp(&b.span_id));
    // Map columns come back in key order; compare as sorted pairs.
    for r in got.iter_mut().chain(want.iter_mut()) {
        r.resource_attributes.sort();
        r.span_attributes.sort();
    }
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);

    // The exporter's trace-id lookup table is filled by its materialized view (to the second:
    // the exporter's shape stores DateTime).
    let (start, end): (i64, i64) = client
        .query("SELECT toInt64(toUnixTimestamp(Start)), toInt64(toUnixTimestamp(End)) FROM otel_traces_trace_id_ts WHERE TraceId = ?")
        .bind(&rows[5].trace_id)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(start, rows[4].timestamp / 1_000_000_000);
    assert_eq!(end, rows[7].timestamp / 1_000_000_000);
}

#[tokio::test]
async fn client_side_binds_and_server_side_params_are_values_not_sql() {
    let ch = fresh_database().await;
    let client = ch.client();
    let hostile = "x' OR 1=1 --";
    let n: u64 = client
        .query("SELECT count() FROM system.one WHERE 'x' = ?")
        .bind(hostile)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(n, 0);
    let s: String = client
        .query("SELECT concat({a:String}, '-', toString({b:UInt32}))")
        .param("a", hostile)
        .param("b", 42u32)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(s, format!("{hostile}-42"));
    let arr: Vec<String> = client
        .query("SELECT {list:Array(String)}")
        .param("list", vec!["a", "b'c"])
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(arr, vec!["a".to_string(), "b'c".to_string()]);
}

#[tokio::test]
async fn large_results_stream_through_a_cursor() {
    let ch = fresh_database().await;
    #[derive(Row, Deserialize)]
    struct N {
        n: u64,
        s: String,
    }
    let mut cursor = ch
        .client()
        .query("SELECT number AS n, toString(number) AS s FROM numbers(300000)")
        .fetch::<N>()
        .unwrap();
    let (mut count, mut sum) = (0u64, 0u64);
    while let Some(row) = cursor.next().await.unwrap() {
        assert_eq!(row.s, row.n.to_string());
        count += 1;
        sum += row.n;
    }
    assert_eq!(count, 300_000);
    assert_eq!(sum, 300_000 * 299_999 / 2);
}

#[tokio::test]
async fn errors_carry_clickhouse_codes_and_the_server_keeps_serving() {
    let ch = fresh_database().await;
    let client = ch.client();
    let err = client
        .query("SELECT * FROM no_such_table")
        .fetch_all::<u8>()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("UNKNOWN_TABLE") || text.contains("60"),
        "{text}"
    );
    let err = client.query("SELEKT 1").execute().await.unwrap_err();
    assert!(
        err.to_string().contains("SYNTAX_ERROR") || err.to_string().contains("62"),
        "{err}"
    );
    let one: u8 = client.query("SELECT 1").fetch_one().await.unwrap();
    assert_eq!(one, 1);

    // Raw: status and the exception-code header, as real ClickHouse sends them.
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/?database={}",
            TestServer::shared().url,
            ch.clickhouse_database
        ))
        .body("SELECT * FROM no_such_table")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(resp.headers()["x-clickhouse-exception-code"], "60");
}

#[tokio::test]
async fn raw_http_interface_inserts_json_native_and_gzip_and_answers_get() {
    let ch = fresh_database().await;
    let url = &TestServer::shared().url;
    let db = &ch.clickhouse_database;
    let http = reqwest::Client::new();
    let post = |query: &str, body: Vec<u8>| {
        http.post(url.to_string())
            .query(&[("database", db.as_str()), ("query", query)])
            .body(body)
    };
    let r = post(
        "CREATE TABLE t (a UInt32, b String) ENGINE = MergeTree ORDER BY a",
        vec![],
    )
    .send()
    .await
    .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    // JSONEachRow in the body.
    let json: String = (0..1000)
        .map(|i| format!("{{\"a\":{i},\"b\":\"j{i}\"}}\n"))
        .collect();
    let r = post("INSERT INTO t FORMAT JSONEachRow", json.into_bytes())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    // Native: produced by the engine itself, then inserted back.
    let native = post("SELECT number + 1000 AS a, concat('n', toString(number)) AS b FROM numbers(500) FORMAT Native", vec![])
        .send().await.unwrap().bytes().await.unwrap();
    let r = post("INSERT INTO t FORMAT Native", native.to_vec())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    // gzip-compressed TSV body, query and data both in the body.
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"INSERT INTO t FORMAT TabSeparated\n2000\tg\n2001\tg\n")
        .unwrap();
    let r = http
        .post(format!("{url}/?database={db}"))
        .header("Content-Encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    // GET with the query in the URL; a GET may not write.
    let text = http
        .get(url.to_string())
        .query(&[
            ("database", db.as_str()),
            (
                "query",
                "SELECT count(), countIf(b LIKE 'n%'), countIf(b = 'g') FROM t FORMAT TSV",
            ),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text.trim(), "1502\t500\t2");
    let r = http
        .get(url.to_string())
        .query(&[("database", db.as_str()), ("query", "DROP TABLE t")])
        .send()
        .await
        .unwrap();
    assert!(!r.status().is_success());
    assert!(r.headers().contains_key("x-clickhouse-exception-code"));
}

#[tokio::test]
async fn settings_apply_to_one_request_only() {
    let ch = fresh_database().await;
    let client = ch.client();
    let v: String = client
        .query("SELECT getSetting('max_threads')::String")
        .with_setting("max_threads", "3")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(v, "3");
    // Many later requests (spread over the server's threads) see the default again.
    for _ in 0..8 {
        let v: String = client
            .query("SELECT getSetting('max_threads')::String")
            .fetch_one()
            .await
            .unwrap();
        assert_ne!(v, "3");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_and_reads_all_land() {
    let ch = fresh_database().await;
    let client = ch.client();
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for batch in 0..5u64 {
                let mut insert = client.insert::<SpanRow>("otel_traces").await.unwrap();
                for i in 0..200u64 {
                    let mut row = span(i);
                    row.span_id = format!("{w:04x}{batch:04x}{i:08x}");
                    insert.write(&row).await.unwrap();
                }
                insert.end().await.unwrap();
                // Reads interleave with other writers' inserts.
                let n: u64 = client
                    .query("SELECT count() FROM otel_traces")
                    .fetch_one()
                    .await
                    .unwrap();
                assert!(n >= (batch + 1) * 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (n, distinct): (u64, u64) = client
        .query("SELECT count(), uniqExact(SpanId) FROM otel_traces")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!((n, distinct), (8 * 5 * 200, 8 * 5 * 200));
}
