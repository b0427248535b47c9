//! The on-call CLI (`orrery traces`, `orrery trace`, `orrery graph`) run as the real binary
//! against a query service on the real embedded engine.

mod query_checks_support;
mod query_support;

use orrery_store::testing::fresh_database;
use query_checks_support::{serve_query, spans_only};
use query_support::*;
use tokio_util::sync::CancellationToken;

async fn orrery(args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args(args)
        .env_remove("ORRERY_API_TOKEN")
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn traces_trace_and_graph_print_tables_and_json() {
    let ch = fresh_database().await;
    let base = now_ns() - 2 * MINUTE;
    insert(
        &ch,
        &[
            span("c1", "1", "", "shop", "Server", base, 120).name("GET /cart"),
            span("c1", "2", "1", "shop", "Client", base + MS, 100).name("POST /pay"),
            {
                let mut s = span("c1", "3", "2", "payments", "Server", base + 2 * MS, 90)
                    .name("charge")
                    .error();
                s.status_message = "card declined".into();
                s
            },
            span("c2", "1", "", "shop", "Server", base + 500 * MS, 10).name("GET /cart"),
        ],
    )
    .await;
    let shutdown = CancellationToken::new();
    let (url, _) = serve_query(&ch, spans_only(), &shutdown, |_| {}).await;

    let (ok, out, err) = orrery(&[
        "traces",
        "--query-url",
        &url,
        "--service",
        "payments",
        "--errors",
        "--since",
        "15m",
    ])
    .await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("TRACE"), "{out}");
    assert_eq!(lines.len(), 3, "header, one trace, count: {out}");
    assert!(
        lines[1].contains(&format!("{:0>32}", "c1"))
            && lines[1].contains("shop")
            && lines[1].contains("GET /cart"),
        "{out}"
    );
    assert!(lines[1].contains("120.0ms"), "{out}");

    let (ok, out, err) = orrery(&["trace", "c1", "--query-url", &url]).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("3 span(s), 1 error(s)"), "{out}");
    assert!(
        lines[1].starts_with("shop GET /cart [Server] +0.0ms 120.0ms"),
        "{out}"
    );
    assert!(lines[2].starts_with("  shop POST /pay [Client]"), "{out}");
    assert!(
        lines[3].starts_with("    payments charge [Server] +2.0ms 90.0ms  ERROR: card declined"),
        "{out}"
    );

    let (ok, out, err) = orrery(&["graph", "--query-url", &url, "--since", "10m"]).await;
    assert!(ok, "{err}");
    assert!(out.lines().next().unwrap().starts_with("SOURCE"), "{out}");
    let edge = out
        .lines()
        .find(|l| l.starts_with("shop "))
        .expect("shop -> payments row");
    let cols: Vec<&str> = edge.split_whitespace().collect();
    assert_eq!(cols[1], "payments");
    assert_eq!(cols[3], "1", "one error: {edge}");
    assert_eq!(cols[4], "100.0%");
    assert_eq!(cols[6], "danger");
    assert!(out.contains("INTERNET"), "{out}");

    let (ok, out, _) = orrery(&["graph", "--query-url", &url, "--since", "10m", "--json"]).await;
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["edges"].as_array().unwrap().len(), 2);

    // Bad input: a clear message and a failing exit code.
    let (ok, _, err) = orrery(&["traces", "--query-url", &url, "--since", "soon"]).await;
    assert!(!ok);
    assert!(err.contains("since"), "{err}");
    let (ok, _, err) = orrery(&["trace", "zz", "--query-url", &url]).await;
    assert!(!ok);
    assert!(err.contains("hex"), "{err}");

    // A trace bigger than --query-max-trace-spans: its earliest spans, and the CLI says so.
    let (capped_url, _) = serve_query(&ch, spans_only(), &shutdown, |a| {
        a.limits.query_max_trace_spans = 2
    })
    .await;
    let (ok, out, err) = orrery(&["trace", "c1", "--query-url", &capped_url]).await;
    assert!(ok, "{err}");
    assert!(out.lines().next().unwrap().contains("2 span(s)"), "{out}");
    assert!(
        out.contains("TRUNCATED") && out.contains("its 2 earliest"),
        "{out}"
    );
    let (ok, out, _) = orrery(&["trace", "c1", "--query-url", &url]).await;
    assert!(ok && !out.contains("TRUNCATED"), "{out}");
    shutdown.cancel();
}
