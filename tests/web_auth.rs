//! The web UI with `--api-token` (issue 13, item 4), in headless Chromium against the real
//! `orrery all-in-one` (collector with its own `--otlp-auth-token`). The browser goes through a
//! recording proxy of web/tests/auth.mjs, so the assertions are about what crossed the wire:
//! the sign-in form opens on the first 401, a wrong token is refused and not kept, the right one
//! loads the map; every API request after that carries `Authorization: Bearer` — the live
//! stream too — and no URL carries the token; the stream survives a network cut (reconnects
//! with the token, updates flow again); the node panel, trace search and a trace (cut by
//! `--query-max-trace-spans`: the view says it is truncated) load; a reload stays signed in, a
//! new tab does not; sign-out and a rotated token bring the form back; no
//! Content-Security-Policy violation under the policy the server sends (read from its response,
//! not restated here), with any `'unsafe-inline'`/`'unsafe-eval'` in it removed by the proxy.
//! Without a token the UI shows no form (tests/web_e2e.rs). Screenshots: artifacts/web/auth-*.png.

mod web_support;

use web_support::*;

const TOKEN: &str = "s3cret-ui-token";
const INGEST: &str = "ingest-only-token";

/// One all-in-one and one Chromium at a time (2 cores): the tests of this file take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_ui_signs_in_with_the_api_token_and_sends_it_on_every_request_and_the_stream() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    let (_orrery, base, otlp) = start_orrery_with(
        data.path(),
        // A span cap under the test traces' 5 spans: the trace view says it is truncated.
        &[
            "--api-token",
            TOKEN,
            "--otlp-auth-token",
            INGEST,
            "--query-max-trace-spans",
            "4",
        ],
    );
    // The API refuses requests without the token, and the ingest token is not the API token.
    assert!(curl(&[&format!("{base}/orrery/api/config")]).is_none());
    let ingest_bearer = format!("authorization: Bearer {INGEST}");
    assert!(curl(&["-H", &ingest_bearer, &format!("{base}/orrery/api/config")]).is_none());
    post_otlp_with(&otlp, &topology(30, 0xa0e000, "payments"), Some(INGEST));
    wait_for_graph(&base, Some(TOKEN), &["checkout->payments"]);

    // The policy the server sends with the UI (the browser enforces it).
    let headers = std::process::Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", &format!("{base}/")])
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&headers.stdout).to_string();
    let csp = headers
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-security-policy")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| {
            panic!("the UI is served without a Content-Security-Policy:\n{headers}")
        });

    let opts = serde_json::json!({
        "token": TOKEN,
        "wrong": "not-the-token",
        "otlp": otlp,
        "otlp_token": INGEST,
        "nodes": ["INTERNET", "checkout", "frontend", "payments"],
        "live_body": topology(10, 0xa0f000, "fraud"),
        "live_node": "fraud",
        "after_cut_body": topology(10, 0xa10000, "refunds"),
        "after_cut_node": "refunds",
    });
    let v = browser("auth", &base, &opts);
    println!("{}", serde_json::to_string_pretty(&v).unwrap());
    let s = |x: &serde_json::Value| x.as_str().unwrap_or_default().to_string();

    // The browser got the server's policy, tightened by the proxy to allow no 'unsafe-inline'
    // or 'unsafe-eval' at all (the UI needs neither).
    assert_eq!(s(&v["csp_served"]), csp);
    let enforced = s(&v["csp_enforced"]);
    assert!(enforced.contains("script-src 'self'"), "{enforced}");
    assert!(!enforced.contains("'unsafe-inline'") && !enforced.contains("'unsafe-eval'"));
    // 1. The form: opened by the 401, accessible, focused.
    assert!(
        s(&v["prompt"]).contains("requires an API token"),
        "{}",
        v["prompt"]
    );
    let f = &v["form"];
    assert_eq!(f["role"], "dialog");
    assert_eq!(f["modal"], "true");
    assert_eq!(f["title"], "Sign in");
    assert_eq!(f["label"], "API token");
    assert_eq!(f["type"], "password");
    assert_eq!(f["focused"], true);
    assert_eq!(f["behind_inert"], true);
    assert!(
        s(&v["map_status_401"]).contains("HTTP 401"),
        "{}",
        v["map_status_401"]
    );
    // 2. Wrong token: refused, form still open, nothing kept.
    assert!(s(&v["refused"]).to_lowercase().contains("token refused"));
    assert_eq!(v["open_after_wrong"], true);
    assert!(v["stored_after_wrong"].is_null());
    assert_eq!(
        v["unsendable"],
        "the token has characters an HTTP header cannot carry"
    );
    // 3. Right token: the map with its data; the token is in sessionStorage only.
    let mut nodes: Vec<String> = v["map_nodes"].as_array().unwrap().iter().map(s).collect();
    nodes.sort();
    assert_eq!(nodes, ["INTERNET", "checkout", "frontend", "payments"]);
    assert_eq!(v["storage"]["session"], TOKEN);
    for k in ["local", "cookie", "url"] {
        assert!(
            !s(&v["storage"][k]).contains(TOKEN),
            "token in {k}: {}",
            v["storage"][k]
        );
    }
    assert_eq!(v["sign_out_shown"], true);
    assert_eq!(v["inert_after"], false);
    // 4.-5. The stream delivered a new service; after a cut it said so, reconnected with the
    // token and delivered another.
    assert!(
        v["live_nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "fraud")
    );
    assert!(
        v["cut_streams"].as_u64().unwrap() >= 1,
        "{}",
        v["cut_streams"]
    );
    assert!(
        s(&v["retry_status"]).contains("reconnecting"),
        "{}",
        v["retry_status"]
    );
    let reconnects = v["reconnects"].as_array().unwrap();
    assert!(!reconnects.is_empty());
    for r in reconnects {
        assert_eq!(r["auth"], format!("Bearer {TOKEN}"), "{r}");
        assert_eq!(r["status"], 200, "{r}");
    }
    // 6.-7. Every API request after sign-in carried the token; the stream's URL has none; a
    // reload stays signed in.
    // Every kind of request the UI makes was seen after sign-in (and all carried the token).
    // A live map takes its first graph from the stream, so the plain `/orrery/api/graph` is not
    // among them (it is the replay/diff path and the fallback when the stream is refused).
    assert_eq!(
        v["signed_paths"],
        serde_json::json!([
            "/orrery/api/checks",
            "/orrery/api/config",
            "/orrery/api/graph/stream",
            "/orrery/api/nodes/:id",
            // The trace search page's service and operation pickers.
            "/orrery/api/operations",
            "/orrery/api/services",
            "/orrery/api/traces",
            "/orrery/api/traces/:id"
        ])
    );
    assert_eq!(v["signed_without_token"], serde_json::json!([]));
    let streams = v["stream_requests"].as_array().unwrap();
    assert!(streams.len() >= 2, "{streams:?}");
    for r in streams {
        assert_eq!(r["auth"], format!("Bearer {TOKEN}"));
    }
    assert_eq!(v["urls_with_token"], serde_json::json!([]));
    assert!(v["search_results"].as_u64().unwrap() >= 10);
    assert_eq!(v["trace_rows"], 4);
    assert_eq!(
        s(&v["trace_truncated"]),
        "truncated: showing the first 4 spans of a bigger trace (the server's --query-max-trace-spans)"
    );
    assert_eq!(v["reload_sign_in"], false);
    assert_eq!(v["reload_401"], 0);
    // 8. A new tab asks again.
    assert!(s(&v["new_tab_prompt"]).contains("requires an API token"));
    // 9. Sign-out forgets the token.
    let out = &v["after_sign_out"];
    assert!(s(&out["prompt"]).contains("requires an API token"));
    assert!(out["stored"].is_null());
    assert_eq!(out["sign_out_shown"], false);
    // 10. A kept token the server refuses: said so, dropped.
    assert!(
        s(&v["stale"]["prompt"]).contains("refused"),
        "{}",
        v["stale"]
    );
    assert!(v["stale"]["stored"].is_null());

    assert_eq!(
        v["csp_violations"],
        serde_json::json!([]),
        "under {enforced}"
    );
    let log: Vec<String> = v["log"].as_array().unwrap().iter().map(s).collect();
    // Chromium logs the 401s of the unauthenticated phases and the stream the proxy cut as
    // failed resources; any other error (a panic, a page error) fails the test.
    let bad: Vec<&String> = log
        .iter()
        .filter(|l| {
            !l.contains("401 (Unauthorized)") && !l.contains("ERR_INCOMPLETE_CHUNKED_ENCODING")
        })
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
}

/// Many viewers: a replica allowing one live stream (`--query-max-streams 1`). The second tab
/// still draws the map (the graph fetch is no stream), says why its live updates wait, and waits
/// the 429's `Retry-After` (30 s) instead of retrying every second; once the first tab closes it
/// goes live.
#[test]
fn a_refused_stream_waits_for_retry_after_and_connects_when_a_slot_frees() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    let (_orrery, base, otlp) = start_orrery_with(data.path(), &["--query-max-streams", "1"]);
    post_otlp(&otlp, &topology(10, 0xa20000, "payments"));
    wait_for_graph(&base, None, &["checkout->payments"]);
    let v = browser("streamcap", &base, &serde_json::json!({}));
    println!("{}", serde_json::to_string_pretty(&v).unwrap());

    let status = v["status"].as_str().unwrap();
    assert!(status.contains("HTTP 429"), "{status}");
    assert!(status.contains("--query-max-streams 1"), "{status}");
    assert!(status.contains("reconnecting in 30 s"), "{status}");
    let mut nodes: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["INTERNET", "checkout", "frontend", "payments"]);
    // One refused attempt, then (after Retry-After, not before) the accepted one.
    assert_eq!(v["b_streams"], serde_json::json!([429, 200]));
    let waited = v["live_after_ms"].as_u64().unwrap();
    assert!((29_000..60_000).contains(&waited), "live after {waited} ms");
    assert_eq!(v["log"], serde_json::json!([]));
}
