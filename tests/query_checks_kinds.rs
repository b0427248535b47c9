//! Canary and stale-callee rules end to end: `orrery check` (the real binary) against a query
//! service on the real embedded engine — its per-version read (`/orrery/api/checks/versions`)
//! and last-seen read (`/orrery/api/checks/last-seen`) — and the service's own evaluation.

mod query_checks_support;
mod query_support;

use std::time::{Duration, Instant};

use orrery_query::GraphArgs;
use orrery_store::testing::fresh_database;
use query_checks_support::{check, rules_file, serve_query, spans_only};
use query_support::*;
use tokio_util::sync::CancellationToken;

/// `n` calls into `service` (server spans) of (`version`, `instance`), `errors` failed.
fn served(
    tag: &str,
    service: &str,
    (version, instance): (&str, &str),
    ts: i64,
    n: usize,
    errors: usize,
    dur_ms: i64,
) -> Vec<orrery_store::SpanRow> {
    (0..n)
        .map(|i| {
            let s = span(
                &format!("{tag}{i}"),
                "1",
                "",
                service,
                "Server",
                ts + i as i64 * MS,
                dur_ms,
            )
            .resource("service.version", version)
            .resource("service.instance.id", instance);
            if i < errors { s.error() } else { s }
        })
        .collect()
}

async fn serve(
    ch: &orrery_store::ClickHouseArgs,
    rules: Option<std::path::PathBuf>,
    shutdown: &CancellationToken,
) -> String {
    let graph = GraphArgs {
        graph_rules: rules,
        graph_rules_interval: Duration::from_secs(1),
        ..spans_only()
    };
    serve_query(ch, graph, shutdown, |_| {}).await.0
}

const RULES: &str = r#"
rules:
  - name: payments-canary
    window: 5m
    canary:
      service: payments
      version: 1.5.0
      max_error_rate_increase_points: 5
      max_p95_increase_percent: 50
      min_requests: 20
  - name: search-canary
    window: 5m
    canary:
      service: search
      instances: [search-canary-1]
      max_p95_increase_percent: 50
  - name: no-silent-callees
    window: 3m
    stale_callees: { after: 5m }
"#;

#[tokio::test]
async fn canary_and_stale_callee_rules_judge_real_reads_from_the_cli_and_the_service() {
    let ch = fresh_database().await;
    let now = now_ns();
    let recent = now - MINUTE;
    let mut rows = Vec::new();
    // payments: 1.4.2 clean on two instances, the 1.5.0 canary fails a quarter of its calls.
    rows.extend(served(
        "pa",
        "payments",
        ("1.4.2", "payments-a"),
        recent,
        60,
        0,
        40,
    ));
    rows.extend(served(
        "pb",
        "payments",
        ("1.4.2", "payments-b"),
        recent,
        60,
        0,
        40,
    ));
    rows.extend(served(
        "pc",
        "payments",
        ("1.5.0", "payments-c"),
        recent,
        40,
        10,
        40,
    ));
    // search: its canary instance as fast as the others.
    rows.extend(served("sa", "search", ("7", "search-a"), recent, 50, 0, 20));
    rows.extend(served(
        "sc",
        "search",
        ("7", "search-canary-1"),
        recent,
        30,
        0,
        20,
    ));
    // fraud reported ten minutes ago; payments' calls to it now have no server span.
    rows.extend(served(
        "fo",
        "fraud",
        ("1", "fraud-a"),
        now - 10 * MINUTE,
        5,
        0,
        5,
    ));
    for i in 0..8 {
        rows.push(
            span(
                &format!("pf{i}"),
                "1",
                "",
                "payments",
                "Client",
                recent + i * MS,
                3,
            )
            .attr("peer.service", "fraud"),
        );
    }
    insert(&ch, &rows).await;
    let rules = rules_file(RULES);
    let shutdown = CancellationToken::new();
    let url = serve(&ch, Some(rules.path().to_path_buf()), &shutdown).await;
    let file = rules.path().to_str().unwrap();

    let (code, out, err) = check(&["--query-url", &url, "--rules", file, "--json"]).await;
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let o = |rule: &str| {
        v["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["rule"] == rule)
            .unwrap()
            .clone()
    };
    let pay = o("payments-canary");
    assert_eq!(pay["verdict"], "violated", "{pay}");
    assert_eq!(pay["measured"]["subject"], "payments@1.5.0");
    assert_eq!(pay["measured"]["requests"], 40);
    assert_eq!(pay["measured"]["error_rate"], 0.25);
    assert_eq!(pay["baseline"]["requests"], 120);
    assert_eq!(pay["baseline"]["subject"], "payments@1.4.2");
    let search = o("search-canary");
    assert_eq!(search["verdict"], "pass", "{search}");
    assert_eq!(search["measured"]["requests"], 30);
    let stale = o("no-silent-callees");
    assert_eq!(stale["verdict"], "violated", "{stale}");
    let reason = stale["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "payments->external:fraud: 8 call(s) to fraud, which has not reported for"
        ),
        "{reason}"
    );

    // The service's own evaluation reads the same and agrees.
    let started = Instant::now();
    loop {
        let b: serde_json::Value = reqwest::get(format!("{url}/orrery/api/checks"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // 404 until the first evaluation is done.
        let verdicts: Vec<(String, String)> = b["rules"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|r| {
                (
                    r["rule"].as_str().unwrap().to_string(),
                    r["verdict"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        if verdicts
            == [
                ("payments-canary".to_string(), "violated".to_string()),
                ("search-canary".to_string(), "pass".to_string()),
                ("no-silent-callees".to_string(), "violated".to_string()),
            ]
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{b}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // A looser margin passes; a canary that has not served enough calls yet is exit 2.
    let loose = rules_file(
        &RULES
            .replace(
                "max_error_rate_increase_points: 5",
                "max_error_rate_increase_points: 30",
            )
            .replace("after: 5m", "after: 15m"),
    );
    let (code, out, err) = check(&[
        "--query-url",
        &url,
        "--rules",
        loose.path().to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let young = rules_file(&RULES.replace("min_requests: 20", "min_requests: 41"));
    let (code, out, err) = check(&[
        "--query-url",
        &url,
        "--rules",
        young.path().to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 1, "still 1: the stale callee is violated: {out}{err}");
    assert!(
        out.contains("no_data") && out.contains("canary payments@1.5.0 40"),
        "{out}"
    );

    // The reads refuse what they cannot bound.
    let r = reqwest::get(format!("{url}/orrery/api/checks/versions?service=payments"))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = reqwest::get(format!(
        "{url}/orrery/api/checks/last-seen?service=a&since=30d"
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let many: String = (0..1001).map(|i| format!("service=s{i}&")).collect();
    let r = reqwest::get(format!("{url}/orrery/api/checks/last-seen?{many}"))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    shutdown.cancel();
}

/// `for:` in a one-shot gate: a rule violated now is judged again with its window ending
/// `for`/3, 2`for`/3 and `for` ago; violated throughout, exit 1; violated only lately, it is
/// pending — `no_data`, exit 2, "do not promote yet".
#[tokio::test]
async fn the_cli_honours_for_by_judging_earlier_windows_too() {
    let ch = fresh_database().await;
    let now = now_ns();
    let mut rows = Vec::new();
    // fraud has failed a quarter of its calls for minutes; ads only for the last 20 seconds.
    rows.extend(served(
        "fo",
        "fraud",
        ("1", "f-1"),
        now - 270 * 1000 * MS,
        20,
        5,
        5,
    ));
    rows.extend(served(
        "fn",
        "fraud",
        ("1", "f-1"),
        now - 30 * 1000 * MS,
        20,
        5,
        5,
    ));
    rows.extend(served(
        "an",
        "ads",
        ("1", "a-1"),
        now - 20 * 1000 * MS,
        20,
        5,
        5,
    ));
    insert(&ch, &rows).await;
    let shutdown = CancellationToken::new();
    let url = serve(&ch, None, &shutdown).await;
    let rules = rules_file(
        "rules:
  - name: fraud-long
    window: 5m
    for: 2m
    slo: { node: fraud, max_error_rate: 1%, min_requests: 5 }
  - name: ads-new
    window: 1m
    for: 3m
    slo: { node: ads, max_error_rate: 1%, min_requests: 5 }
",
    );
    let file = rules.path().to_str().unwrap();
    let (code, out, err) = check(&["--query-url", &url, "--rules", file, "--json"]).await;
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["outcomes"][0]["verdict"], "violated", "{v}");
    assert_eq!(v["outcomes"][1]["verdict"], "no_data", "{v}");
    let reason = v["outcomes"][1]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("pending: violated now but not throughout its for: 3m"),
        "{reason}"
    );
    // Without the long-standing violation, the gate holds (2) instead of failing (1).
    let ads = rules_file(
        "rules:\n  - name: ads-new\n    window: 1m\n    for: 3m\n    slo: { node: ads, max_error_rate: 1%, min_requests: 5 }\n",
    );
    let (code, out, err) =
        check(&["--query-url", &url, "--rules", ads.path().to_str().unwrap()]).await;
    assert_eq!(code, 2, "{out}{err}");
    // The same rule without `for:` fails at once.
    let now_rule = rules_file(
        "rules:\n  - name: ads-now\n    window: 1m\n    slo: { node: ads, max_error_rate: 1%, min_requests: 5 }\n",
    );
    let (code, out, err) = check(&[
        "--query-url",
        &url,
        "--rules",
        now_rule.path().to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 1, "{out}{err}");
    shutdown.cancel();
}
