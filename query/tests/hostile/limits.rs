//! The engine's limits, queries killed when their request is dropped, the trace span cap.

use std::time::{Duration, Instant};

use orrery_query::limits::LimitArgs;
use orrery_store::testing::fresh_database;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::*;

/// One hour, three hours ago, with no rollup running: the graph self-joins its raw spans (an
/// hour is what `--graph-max-unrolled` lets a window join; older than the minute rollup's
/// horizon nothing would be read from spans at all — left out, issue 14 item 3).
pub fn old_window() -> (i64, i64) {
    let start = (now_ms() - 3 * 3_600_000) / 60_000 * 60_000;
    (start, start + 3_600_000)
}

#[tokio::test]
async fn a_query_over_the_limits_is_a_503_naming_the_limit_and_what_to_do() {
    let ch = fresh_database().await;
    let (start, end) = old_window();
    bulk_spans(&ch, 1_000_000, start).await;
    let http = reqwest::Client::new();
    let url = |s: &Server| format!("{}/orrery/api/graph?start={start}&end={end}", s.base);

    // Generous limits: the window's graph is computed (from raw spans).
    let s = start_with(&ch, LimitArgs::default()).await;
    let r = http.get(url(&s)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    drop(s);

    let s = start_with(
        &ch,
        LimitArgs {
            query_max_execution_time: Duration::from_millis(20),
            ..LimitArgs::default()
        },
    )
    .await;
    let r = http.get(url(&s)).send().await.unwrap();
    let status = r.status();
    let retry_after = r.headers().contains_key("retry-after");
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 503, "{v}");
    assert!(retry_after);
    assert_eq!(v["limit"], "max_execution_time", "{v}");
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains("--query-max-execution-time") && msg.contains("narrow the time window"),
        "{msg}"
    );
    let text = http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metric(
            &text,
            "orrery_query_limit_hits_total{limit=\"max_execution_time\"}"
        ) >= 1.0,
        "{text}"
    );
    drop(s);

    let s = start_with(
        &ch,
        LimitArgs {
            query_max_memory: 4 << 20,
            ..LimitArgs::default()
        },
    )
    .await;
    let r = http.get(url(&s)).send().await.unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["limit"], "max_memory_usage", "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("--query-max-memory"),
        "{v}"
    );
}

/// A time limit that hits after the engine has begun streaming rows (a slow machine, a result
/// of many blocks) can only be told in the response body. It must still reach the client as the
/// engine's limit (a 503 naming it), never as rows or a parse error (a 502): on the CI machine a
/// graph query over the time limit once came back 502 this way.
#[tokio::test]
async fn a_limit_hit_after_the_first_rows_is_still_the_named_limit() {
    let ch = fresh_database().await;
    let client = LimitArgs {
        query_max_execution_time: Duration::from_millis(500),
        ..LimitArgs::default()
    }
    .bound(ch.client());
    let mut cursor = client
        .query("SELECT number FROM system.numbers WHERE number % 1000 = 0")
        .fetch::<u64>()
        .unwrap();
    let mut rows = 0u64;
    let err = loop {
        match cursor.next().await {
            Ok(Some(n)) => {
                assert_eq!(n, rows * 1000, "row {rows} is not the engine's row");
                rows += 1;
            }
            Ok(None) => panic!("an endless query ended after {rows} rows"),
            Err(e) => break anyhow::Error::from(e),
        }
    };
    assert!(
        rows > 0,
        "the limit hit before any row was streamed: {err:#}"
    );
    let hit = orrery_query::limits::limit_hit(&err).unwrap_or_else(|| panic!("{err:#}"));
    assert_eq!(hit.limit, "max_execution_time", "{err:#}");
    assert_eq!(hit.status, 503);
}

#[tokio::test]
async fn a_dropped_request_kills_its_clickhouse_query() {
    // The mechanism on its own, with a query that would run for minutes.
    let ch = fresh_database().await;
    let client = LimitArgs::default().bound(ch.client());
    let tag = orrery_query::limits::new_tag();
    let heavy = orrery_query::limits::killed_if_dropped(client.clone(), tag, async {
        orrery_query::limits::tagged(&client)
            .query("SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) % 7 = 3")
            .fetch_one::<u64>()
            .await
    });
    let started = Instant::now();
    let timed_out = tokio::time::timeout(Duration::from_secs(1), heavy).await;
    assert!(timed_out.is_err(), "the heavy query cannot finish in 1 s");
    wait_for(
        "the dropped query is killed",
        Duration::from_secs(10),
        async || running_queries(&ch).await == 0,
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn a_client_that_goes_away_leaves_no_query_running() {
    let ch = fresh_database().await;
    let (start, end) = old_window();
    bulk_spans(&ch, 2_000_000, start).await;
    let s = start_with(&ch, LimitArgs::default()).await;
    let path = format!("/orrery/api/graph?start={start}&end={end}&level=global");
    // How long the graph takes when the client waits for it.
    let t = Instant::now();
    let r = reqwest::get(format!("{}{path}", s.base)).await.unwrap();
    assert_eq!(r.status(), 200);
    let full = t.elapsed();
    // A raw client: send the request, wait until its queries run, hang up.
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    let t = Instant::now();
    conn.write_all(req.as_bytes()).await.unwrap();
    wait_for(
        "the graph's queries start",
        Duration::from_secs(20),
        async || running_queries(&ch).await > 0,
    )
    .await;
    drop(conn);
    wait_for(
        "the disconnected client's queries stop",
        Duration::from_secs(5),
        async || running_queries(&ch).await == 0,
    )
    .await;
    let gone = t.elapsed();
    eprintln!("graph answered in {full:?}; a client that hung up: its queries gone after {gone:?}");
    // Stopped, not finished: gone well before the full graph would have been computed.
    assert!(gone < full / 2, "{gone:?} vs {full:?}");
}

#[tokio::test]
async fn a_request_over_the_request_timeout_is_a_503_and_its_query_is_killed() {
    let ch = fresh_database().await;
    let (start, end) = old_window();
    bulk_spans(&ch, 2_000_000, start).await;
    let s = start_with(
        &ch,
        LimitArgs {
            query_request_timeout: Duration::from_millis(300),
            ..LimitArgs::default()
        },
    )
    .await;
    let r = reqwest::get(format!(
        "{}/orrery/api/graph?start={start}&end={end}&level=global",
        s.base
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["limit"], "request_timeout", "{v}");
    wait_for(
        "the timed-out request's queries stop",
        Duration::from_secs(5),
        async || running_queries(&ch).await == 0,
    )
    .await;
}

#[tokio::test]
async fn a_trace_over_the_span_cap_comes_back_truncated() {
    let ch = fresh_database().await;
    bulk_spans(&ch, 1, now_ms() - 60_000).await; // trace 0: 2 spans
    let s = start_with(
        &ch,
        LimitArgs {
            query_max_trace_spans: 1,
            ..LimitArgs::default()
        },
    )
    .await;
    let t: orrery_api::Trace = reqwest::get(format!("{}/orrery/api/traces/0", s.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(t.truncated);
    assert_eq!(t.spans.len(), 1);
    assert_eq!(t.spans[0].kind, "Client", "the earliest span is kept");
    drop(s);
    let s = start_with(&ch, LimitArgs::default()).await;
    let t: orrery_api::Trace = reqwest::get(format!("{}/orrery/api/traces/0", s.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!t.truncated);
    assert_eq!(t.spans.len(), 2);
}
