//! The checks API's parameters (`http/checks.rs`, typed `Params<…>`): each wrong or extreme
//! parameter is a 400 whose message says what to send, before anything is read; the right
//! ones are answered from the real engine.

use orrery_query::limits::LimitArgs;
use orrery_store::testing::fresh_database;
use serde_json::Value;

use crate::*;

async fn get(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = http.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {body}"));
    (status, v)
}

async fn refused(http: &reqwest::Client, url: &str, status: u16, message: &str) {
    let (s, v) = get(http, url).await;
    let error = v["error"].as_str().unwrap_or_default();
    assert_eq!(s, status, "{url} -> {v}");
    assert!(
        error.contains(message),
        "{url}: {error:?} should say {message:?}"
    );
}

#[tokio::test]
async fn checks_parameters_are_refused_with_what_to_send_and_good_ones_answered() {
    let ch = fresh_database().await;
    bulk_spans(&ch, 50, now_ms() - 120_000).await;
    let server = start(&ch, None, LimitArgs::default()).await;
    let b = &server.base;
    let http = reqwest::Client::new();

    let versions = format!("{b}/orrery/api/checks/versions");
    refused(
        &http,
        &format!("{versions}?version=v2"),
        400,
        "service is required",
    )
    .await;
    refused(
        &http,
        &format!("{versions}?service=&version=v2"),
        400,
        "service is required",
    )
    .await;
    refused(
        &http,
        &format!("{versions}?service=svc-1"),
        400,
        "and/or instance=",
    )
    .await;
    refused(
        &http,
        &format!("{versions}?service=svc-1&instance="),
        400,
        "and/or instance=",
    )
    .await;
    let many: Vec<String> = (0..101).map(|i| format!("instance=i{i}")).collect();
    let url = format!("{versions}?service=svc-1&{}", many.join("&"));
    refused(&http, &url, 400, "at most 100 instance parameters").await;
    for since in ["abc", "-5s", "1e300d"] {
        let url = format!("{versions}?service=svc-1&version=v2&since={since}");
        refused(&http, &url, 400, "since").await;
    }
    let (s, v) = get(
        &http,
        &format!("{versions}?service=svc-1&version=v2&since=10m"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["canary"].is_object() && v["others"].is_object(), "{v}");
    assert!(v["others"]["requests"].as_u64().unwrap() > 0, "{v}");

    let seen = format!("{b}/orrery/api/checks/last-seen");
    refused(
        &http,
        &seen,
        400,
        "give 1 to 1000 service=<name> parameters",
    )
    .await;
    refused(&http, &format!("{seen}?service="), 400, "service=<name>").await;
    for since in ["8d", "0", "0s"] {
        let url = format!("{seen}?service=svc-1&since={since}");
        refused(&http, &url, 400, "since: more than 0, at most 7d").await;
    }
    refused(
        &http,
        &format!("{seen}?service=svc-1&since=abc"),
        400,
        "since",
    )
    .await;
    let (s, v) = get(
        &http,
        &format!("{seen}?service=svc-1&service=svc-2&since=1h"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["last_seen_ms"]["svc-1"].as_i64().unwrap() > 0, "{v}");
    assert!(v["last_seen_ms"]["svc-2"].as_i64().unwrap() > 0, "{v}");

    // Without --graph-rules: the board says so, the history is a 404 naming the flag.
    let (s, v) = get(&http, &format!("{b}/orrery/api/checks")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["configured"], false, "{v}");
    refused(
        &http,
        &format!("{b}/orrery/api/checks/history?limit=0"),
        404,
        "--graph-rules",
    )
    .await;
}
