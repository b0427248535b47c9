//! Slow and many clients, shutdown with open streams, auth and security headers.

use std::time::{Duration, Instant};

use orrery_query::limits::LimitArgs;
use orrery_store::testing::fresh_database;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::limits::old_window;
use crate::*;

/// Reads until the server closes the connection; how long that took.
async fn closed_within(conn: &mut tokio::net::TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the server kept the connection open for {limit:?}"),
        }
    }
}

#[tokio::test]
async fn slowloris_and_silent_clients_are_cut_off() {
    let ch = fresh_database().await;
    let s = start_with(
        &ch,
        LimitArgs {
            query_header_read_timeout: Duration::from_secs(1),
            ..LimitArgs::default()
        },
    )
    .await;
    // Half a request's headers, then a byte every 300 ms: never finishes them.
    let mut slow = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(b"GET /orrery/api/health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let drip = tokio::spawn(async move {
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if slow.write_all(b"X").await.is_err() {
                return slow;
            }
        }
        slow
    });
    let mut slow = drip.await.unwrap();
    let took = closed_within(&mut slow, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(5));
    // A client that connects and says nothing.
    let mut silent = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    closed_within(&mut silent, Duration::from_secs(5)).await;
    // Everyone else is served.
    let r = reqwest::get(format!("{}/orrery/api/health", s.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn requests_and_streams_are_capped() {
    let ch = fresh_database().await;
    let (start, end) = old_window();
    bulk_spans(&ch, 2_000_000, start).await;
    let s = start_with(
        &ch,
        LimitArgs {
            query_max_concurrent_requests: 1,
            query_max_streams: 1,
            ..LimitArgs::default()
        },
    )
    .await;
    let http = reqwest::Client::new();
    // One slow request holds the only request slot: another is shed with 503 at once.
    let slow = tokio::spawn({
        let url = format!(
            "{}/orrery/api/graph?start={start}&end={end}&level=global",
            s.base
        );
        async move { reqwest::get(url).await.unwrap().status().as_u16() }
    });
    wait_for(
        "the slow request runs",
        Duration::from_secs(20),
        async || running_queries(&ch).await > 0,
    )
    .await;
    let r = http
        .get(format!("{}/orrery/api/services", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["limit"], "max_concurrent_requests");
    assert_eq!(slow.await.unwrap(), 200);

    // One live stream per replica here: the second is 429 with Retry-After.
    let mut first = http
        .get(format!("{}/orrery/api/graph/stream?since=5m", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let _ = tokio::time::timeout(Duration::from_secs(10), first.chunk()).await;
    let r = http
        .get(format!("{}/orrery/api/graph/stream?since=5m", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["limit"], "max_streams");
    assert!(v["error"].as_str().unwrap().contains("--query-max-streams"));
    // What an operator sees.
    let text = http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("\norrery_query_streams_open 1\n"), "{text}");
    assert!(
        metric(&text, "orrery_query_streams_refused_total") >= 1.0,
        "{text}"
    );
    assert!(
        metric(&text, "orrery_query_requests_shed_total") >= 1.0,
        "{text}"
    );
    drop(first);
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let ch = fresh_database().await;
    let s = start_with(
        &ch,
        LimitArgs {
            query_max_connections: 2,
            ..LimitArgs::default()
        },
    )
    .await;
    // Two connections open (idle): a third is closed without an answer.
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(tokio::net::TcpStream::connect(s.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /orrery/api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), extra.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection over the cap was kept open");
    assert!(
        buf.is_empty(),
        "answered over the cap: {}",
        String::from_utf8_lossy(&buf)
    );
    // Once one closes, a new connection is served.
    drop(idle.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = reqwest::get(format!("{}/orrery/api/health", s.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(idle);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = reqwest::get(format!("{}/metrics", s.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metric(&text, "orrery_query_connections_refused_total") >= 1.0,
        "{text}"
    );
    assert!(
        metric(&text, "orrery_query_connections_open") >= 1.0,
        "{text}"
    );
}

#[tokio::test]
async fn open_streams_end_on_shutdown_and_the_server_returns() {
    let ch = fresh_database().await;
    let mut s = start_with(&ch, LimitArgs::default()).await;
    let http = reqwest::Client::new();
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut r = http
            .get(format!(
                "{}/orrery/api/graph/stream?since=5m&interval=1s",
                s.base
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.chunk().await.unwrap();
        streams.push(r);
    }
    let started = Instant::now();
    s.shutdown.cancel();
    for r in &mut streams {
        // The stream ends (its body completes) rather than hanging.
        loop {
            match tokio::time::timeout(Duration::from_secs(5), r.chunk()).await {
                Ok(Ok(Some(_))) => continue,
                Ok(_) => break,
                Err(_) => panic!("a stream stayed open after shutdown"),
            }
        }
    }
    let done = tokio::time::timeout(Duration::from_secs(5), &mut s.task).await;
    assert!(done.is_ok(), "serve() did not return after shutdown");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn auth_is_header_only_json_and_leaves_the_ui_public() {
    let ch = fresh_database().await;
    let s = start(&ch, Some("s3cret-token"), LimitArgs::default()).await;
    let http = reqwest::Client::new();
    for path in [
        "/orrery/api/graph",
        "/orrery/api/traces",
        "/orrery/api/nope",
        "/api/services",
        "/api/v3/services",
        "/api/nope",
        "/metrics",
    ] {
        let r = http.get(format!("{}{path}", s.base)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("Authorization: Bearer"),
            "{v}"
        );
        for bad in ["s3cret-toke", "s3cret-tokenX", "S3cret-token", ""] {
            let r = http
                .get(format!("{}{path}", s.base))
                .bearer_auth(bad)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{path} with {bad:?}");
        }
        let r = http
            .get(format!("{}{path}?access_token=s3cret-token", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}: no token in URLs");
    }
    let r = http
        .get(format!("{}/orrery/api/graph", s.base))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The UI loads without a token (to show its sign-in form), with its security headers.
    for path in ["/", "/orrery_web_bg.wasm", "/services/x"] {
        let r = http.get(format!("{}{path}", s.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        check_security_headers(&r, path);
    }
    let r = http
        .get(format!("{}/orrery/api/graph", s.base))
        .send()
        .await
        .unwrap();
    check_security_headers(&r, "401");
}

fn check_security_headers(r: &reqwest::Response, what: &str) {
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    for part in [
        "script-src 'self' 'wasm-unsafe-eval'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(part), "{what}: {csp}");
    }
    assert!(
        !csp.contains("unsafe-eval'") || csp.contains("wasm-unsafe-eval"),
        "{csp}"
    );
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
}
