//! `orrery check` (issue 16) run as the real binary against a query service on the real
//! embedded engine: verdicts and exit codes for passing, violated, no-data and broken rules, and
//! a hung query service.

mod query_checks_support;
mod query_support;

use std::time::{Duration, Instant};

use orrery_query::GraphArgs;
use orrery_store::testing::fresh_database;
use query_checks_support::{check, receiver, rules_file, serve_query, spans_only};
use query_support::*;
use tokio_util::sync::CancellationToken;

/// `n` calls shop -> `callee` at `ts`, `errors` of them failed, each `dur_ms` long.
fn calls(
    tag: &str,
    callee: &str,
    ts: i64,
    n: usize,
    errors: usize,
    dur_ms: i64,
) -> Vec<orrery_store::SpanRow> {
    let mut rows = Vec::new();
    for i in 0..n {
        let t = format!("{tag}{i}");
        let at = ts + i as i64 * MS;
        rows.push(span(&t, "1", "", "shop", "Server", at, dur_ms + 2));
        rows.push(span(&t, "2", "1", "shop", "Client", at, dur_ms + 1));
        let callee_span = span(&t, "3", "2", callee, "Server", at, dur_ms);
        rows.push(if i < errors {
            callee_span.error()
        } else {
            callee_span
        });
    }
    rows
}

async fn serve(ch: &orrery_store::ClickHouseArgs, shutdown: &CancellationToken) -> String {
    serve_query(ch, spans_only(), shutdown, |_| {}).await.0
}

const HEALTHY: &str = r#"
rules:
  - name: payments-slo
    window: 10m
    slo: { source: shop, target: payments, max_error_rate: 1%, max_p95: 300ms, min_requests: 10 }
  - name: shop-needs-payments
    require: { from: shop, to: payments }
  - name: payments-callers
    allowed_callers: { service: payments, callers: [shop] }
  - name: payments-no-db
    forbid: { from: payments, to: "database:*" }
  - name: search-no-regression
    window: 2m
    regression:
      source: shop
      target: search
      baseline_offset: 5m
      max_p95_increase_percent: 50
"#;

#[tokio::test]
async fn check_gates_on_slo_conformity_regression_and_data() {
    let ch = fresh_database().await;
    let now = now_ns();
    let recent = now - MINUTE;
    let mut rows = calls("p", "payments", recent, 20, 0, 40);
    // 5 of 20 failed: 25% errors on shop -> fraud.
    rows.extend(calls("f", "fraud", recent, 20, 5, 40));
    // shop -> search: 20 ms five minutes ago (baseline), 200 ms now.
    rows.extend(calls("sb", "search", now - 6 * MINUTE, 20, 0, 20));
    rows.extend(calls("sc", "search", recent, 20, 0, 200));
    // shop reads a database straight (a client span with no child: a virtual edge).
    rows.push(
        span("db1", "1", "", "shop", "Client", recent, 3)
            .attr("db.system", "postgresql")
            .attr("peer.service", "orders-db"),
    );
    insert(&ch, &rows).await;
    let shutdown = CancellationToken::new();
    let url = serve(&ch, &shutdown).await;
    let u = url.as_str();

    // A healthy part of the topology passes every rule kind, table and JSON.
    let healthy_rules = rules_file(&HEALTHY.replace(
        "max_p95_increase_percent: 50",
        "max_p95_increase_percent: 2000",
    ));
    let path = healthy_rules.path().to_str().unwrap();
    let (code, out, err) = check(&["--query-url", u, "--rules", path]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("RULE"), "{out}");
    let row = out.lines().find(|l| l.starts_with("payments-slo")).unwrap();
    assert!(
        row.contains("pass") && row.contains("shop->payments") && row.contains(" 20 "),
        "{out}"
    );
    assert!(
        out.contains("5 rule(s): 5 pass, 0 violated, 0 no data"),
        "{out}"
    );
    let (code, out, _) = check(&["--query-url", u, "--rules", path, "--json"]).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verdict"], "pass");
    assert_eq!(v["outcomes"][0]["measured"]["requests"], 20);

    // The regression rule as written (p95 may rise by 50%) catches 20 ms -> 200 ms.
    let strict = rules_file(HEALTHY);
    let (code, out, err) =
        check(&["--query-url", u, "--rules", strict.path().to_str().unwrap()]).await;
    assert_eq!(code, 1, "{out}{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("search-no-regression"))
        .unwrap();
    assert!(
        row.contains("VIOLATED") && row.contains("shop->search"),
        "{out}"
    );

    // Inline SLO: the healthy edge passes, the error-injected one fails with its measured rate.
    let (code, out, err) = check(&[
        "--query-url",
        u,
        "--edge",
        "shop->payments",
        "--max-error-rate",
        "1%",
        "--max-p95",
        "300ms",
        "--since",
        "10m",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = check(&[
        "--query-url",
        u,
        "--edge",
        "shop->fraud",
        "--max-error-rate",
        "1%",
        "--since",
        "10m",
    ])
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("VIOLATED") && out.contains("25.00% > 1.00%"),
        "{out}"
    );

    // A forbidden edge the topology has.
    let forbid = rules_file(
        "rules:\n  - name: shop-no-db\n    forbid: { from: shop, to: \"database:*\" }\n",
    );
    let (code, out, err) =
        check(&["--query-url", u, "--rules", forbid.path().to_str().unwrap()]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("shop->database:orders-db"), "{out}");

    // Too little traffic for a verdict: exit 2, not a pass.
    let (code, out, err) = check(&[
        "--query-url",
        u,
        "--edge",
        "shop->payments",
        "--max-error-rate",
        "1%",
        "--min-requests",
        "1000",
        "--since",
        "10m",
    ])
    .await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.contains("no_data") && out.contains("min_requests 1000"),
        "{out}"
    );

    // A bad rules file: exit 2 with the line and the reason, before any request.
    let bad = rules_file(
        "rules:\n  - name: ok\n    require: { from: a, to: b }\n  - name: broken\n    slo: { source: a, max_p95: fast }\n",
    );
    let (code, out, err) =
        check(&["--query-url", u, "--rules", bad.path().to_str().unwrap()]).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("line 4") && err.contains("not a latency"),
        "{err}"
    );
    let (code, _, err) = check(&["--query-url", u, "--edge", "nope", "--max-p95", "1s"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("source->target"), "{err}");

    // --wait re-checks a violated rule until the time is up, then exits with the verdict.
    let started = Instant::now();
    let (code, out, err) = check(&[
        "--query-url",
        u,
        "--edge",
        "shop->fraud",
        "--max-error-rate",
        "1%",
        "--since",
        "10m",
        "--wait",
        "3s",
        "--wait-interval",
        "1s",
    ])
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("attempt 2"), "{err}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    shutdown.cancel();
}

/// A query service that accepts connections and never answers must not hang a deploy gate.
#[tokio::test]
async fn a_hung_query_service_is_an_error_not_a_hang() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            open.push(s);
        }
    });
    let started = Instant::now();
    let (code, _, err) = check(&[
        "--query-url",
        &url,
        "--edge",
        "a->b",
        "--max-p95",
        "1s",
        "--timeout",
        "2s",
    ])
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no answer within"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
    held.abort();
}

/// `--graph-rules` on the query service: evaluated every interval, states at
/// `/orrery/api/checks`; an invalid file stops the start with the line and the reason.
#[tokio::test]
async fn the_query_service_evaluates_its_rules_and_lists_their_states() {
    let ch = fresh_database().await;
    let recent = now_ns() - MINUTE;
    let mut rows = calls("p", "payments", recent, 20, 0, 40);
    rows.extend(calls("f", "fraud", recent, 20, 5, 40));
    insert(&ch, &rows).await;
    let rules = rules_file(
        "rules:\n  - name: payments-slo\n    window: 10m\n    slo: { source: shop, target: payments, max_error_rate: 1% }\n  - name: fraud-slo\n    window: 10m\n    slo: { source: shop, target: fraud, max_error_rate: 1% }\n  - name: quiet\n    slo: { source: shop, target: nobody, max_p95: 1s }\n",
    );
    let start = |rules: Option<std::path::PathBuf>| {
        let ch = ch.clone();
        async move {
            let shutdown = CancellationToken::new();
            let graph = GraphArgs {
                graph_rules: rules,
                graph_rules_interval: Duration::from_secs(1),
                ..spans_only()
            };
            let (url, task) = serve_query(&ch, graph, &shutdown, |_| {}).await;
            (url, shutdown, task)
        }
    };
    let (url, shutdown, _task) = start(Some(rules.path().to_path_buf())).await;
    let http = reqwest::Client::new();
    let mut board = serde_json::Value::Null;
    for _ in 0..100 {
        let r = http
            .get(format!("{url}/orrery/api/checks"))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            board = r.json().await.unwrap();
            // An empty board until the first evaluation is done.
            if board["evaluated_at_ms"].as_i64() > Some(0) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let states = board["rules"].as_array().expect("a board");
    let verdict = |name: &str| {
        states
            .iter()
            .find(|s| s["rule"] == name)
            .map(|s| s["verdict"].as_str().unwrap().to_string())
    };
    assert_eq!(verdict("payments-slo").as_deref(), Some("pass"), "{board}");
    assert_eq!(verdict("fraud-slo").as_deref(), Some("violated"), "{board}");
    assert_eq!(verdict("quiet").as_deref(), Some("no_data"), "{board}");
    let fraud = states.iter().find(|s| s["rule"] == "fraud-slo").unwrap();
    assert_eq!(fraud["outcome"]["measured"]["requests"], 20);
    assert_eq!(fraud["firing"], true, "no `for:`: fires at once");
    let since = fraud["since_ms"].as_i64().unwrap();
    // A later evaluation with the same verdict keeps `since_ms`, moves `evaluated_at_ms`.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later: serde_json::Value = http
        .get(format!("{url}/orrery/api/checks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fraud = later["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["rule"] == "fraud-slo")
        .unwrap()
        .clone();
    assert_eq!(fraud["since_ms"].as_i64().unwrap(), since, "{later}");
    assert!(
        fraud["evaluated_at_ms"].as_i64().unwrap() > since,
        "{later}"
    );
    shutdown.cancel();

    // Without rules the endpoint answers an empty board that says how to get them (the UI
    // polls it on every page: not an error).
    let (url, shutdown, _task) = start(None).await;
    let r = http
        .get(format!("{url}/orrery/api/checks"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b: serde_json::Value = r.json().await.unwrap();
    assert_eq!(b["configured"], false, "{b}");
    assert_eq!(b["rules"], serde_json::json!([]), "{b}");
    assert!(b["hint"].as_str().unwrap().contains("--graph-rules"), "{b}");
    shutdown.cancel();

    // An invalid file: the service does not start, and says where and why.
    let bad = rules_file("rules:\n  - name: x\n    forbid: { from: a }\n");
    let (_, _, task) = start(Some(bad.path().to_path_buf())).await;
    let err = format!("{:#}", task.await.unwrap().unwrap_err());
    assert!(
        err.contains("line 2") && err.contains("missing field `to`"),
        "{err}"
    );
}

/// Two replicas with the same rules post the violated rule to Alertmanager's v2 API with the
/// same identity (labels), so Alertmanager merges them; the passing rule is never sent.
#[tokio::test]
async fn two_replicas_send_the_same_alert_identity_to_alertmanager() {
    let ch = fresh_database().await;
    let recent = now_ns() - MINUTE;
    let mut rows = calls("p", "payments", recent, 20, 0, 40);
    rows.extend(calls("f", "fraud", recent, 20, 5, 40));
    insert(&ch, &rows).await;
    let rules = rules_file(
        "rules:\n  - name: payments-slo\n    window: 10m\n    slo: { source: shop, target: payments, max_error_rate: 1% }\n  - name: fraud-slo\n    description: fraud scoring answers\n    window: 10m\n    slo: { source: shop, target: fraud, max_error_rate: 1% }\n",
    );
    let (am, got) = receiver().await;
    let shutdown = CancellationToken::new();
    for _ in 0..2 {
        let graph = GraphArgs {
            graph_rules: Some(rules.path().to_path_buf()),
            graph_rules_interval: Duration::from_secs(1),
            graph_alertmanager_url: vec![am.clone()],
            ..spans_only()
        };
        serve_query(&ch, graph, &shutdown, |_| {}).await;
    }
    let started = Instant::now();
    while got.lock().unwrap().len() < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            got.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    let posts = got.lock().unwrap().clone();
    let mut identities = std::collections::BTreeSet::new();
    for (path, body) in &posts {
        assert_eq!(path, "/api/v2/alerts");
        let alerts = body.as_array().unwrap();
        assert_eq!(alerts.len(), 1, "only the violated rule: {body}");
        let a = &alerts[0];
        identities.insert(a["labels"].to_string());
        assert_eq!(a["annotations"]["subject"], "shop->fraud", "{a}");
        assert_eq!(
            a["annotations"]["description"], "fraud scoring answers",
            "{a}\nevery post: {posts:?}"
        );
        assert!(
            a["annotations"]["summary"]
                .as_str()
                .unwrap()
                .contains("25.00% > 1.00%"),
            "{a}"
        );
        assert!(
            a["startsAt"].as_str().unwrap() < a["endsAt"].as_str().unwrap(),
            "{a}"
        );
    }
    assert_eq!(
        identities.into_iter().collect::<Vec<_>>(),
        vec![serde_json::json!({"alertname": "OrreryCheckViolated", "rule": "fraud-slo", "kind": "slo"}).to_string()],
        "one identity across both replicas and every re-send"
    );
}

/// An Alertmanager that accepts connections and never answers does not stall the evaluation:
/// the rule states keep being refreshed every interval.
#[tokio::test]
async fn a_hung_alertmanager_does_not_stall_the_evaluation() {
    let ch = fresh_database().await;
    insert(&ch, &calls("f", "fraud", now_ns() - MINUTE, 20, 5, 40)).await;
    let rules = rules_file(
        "rules:\n  - name: fraud-slo\n    window: 10m\n    slo: { source: shop, target: fraud, max_error_rate: 1% }\n",
    );
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let am = format!("http://{}", hung.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = hung.accept().await {
            open.push(s);
        }
    });
    let shutdown = CancellationToken::new();
    let graph = GraphArgs {
        graph_rules: Some(rules.path().to_path_buf()),
        graph_rules_interval: Duration::from_secs(1),
        graph_alertmanager_url: vec![am],
        ..spans_only()
    };
    let (url, _) = serve_query(&ch, graph, &shutdown, |_| {}).await;
    let http = reqwest::Client::new();
    let evaluated = || async {
        let r = http
            .get(format!("{url}/orrery/api/checks"))
            .send()
            .await
            .unwrap();
        if r.status() != 200 {
            return None;
        }
        let b: serde_json::Value = r.json().await.unwrap();
        if b["evaluated_at_ms"] == 0 {
            return None;
        }
        assert_eq!(b["rules"][0]["verdict"], "violated", "{b}");
        b["evaluated_at_ms"].as_i64()
    };
    let started = Instant::now();
    let first = loop {
        if let Some(t) = evaluated().await {
            break t;
        }
        assert!(started.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The post to the hung receiver would hold a blocking loop for its 10 s timeout.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = evaluated().await.unwrap();
    assert!(
        later - first >= 2_000,
        "evaluations stalled: {first} -> {later}"
    );
    shutdown.cancel();
    held.abort();
}

/// Against a service with --api-token: no token is exit 2 saying 401, the token is a verdict.
#[tokio::test]
async fn check_sends_the_api_token_and_a_refusal_is_an_error() {
    let ch = fresh_database().await;
    insert(&ch, &calls("p", "payments", now_ns() - MINUTE, 20, 0, 40)).await;
    let shutdown = CancellationToken::new();
    let (url, _) = serve_query(&ch, spans_only(), &shutdown, |a| {
        a.api_token = Some("s3cret-token".into())
    })
    .await;
    let inline = [
        "--edge",
        "shop->payments",
        "--max-error-rate",
        "1%",
        "--since",
        "10m",
    ];
    let mut a = vec!["--query-url", url.as_str()];
    a.extend(inline);
    let (code, out, err) = check(&a).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("401"), "{err}");
    a.extend(["--api-token", "s3cret-token"]);
    let (code, out, err) = check(&a).await;
    assert_eq!(code, 0, "{out}{err}");
    shutdown.cancel();
}
