//! Helpers of the checks' integration tests: `orrery check` run as the real binary, a rules
//! file, and a recording HTTP receiver standing in for Alertmanager and a plain webhook (a fake
//! is the point here: the test reads what was sent).
#![allow(dead_code)]

use std::io::Write as _;
use std::sync::{Arc, Mutex};

/// Every `(path, JSON body)` posted to the receiver.
pub type Posts = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// An Alertmanager stand-in: records every `(path, JSON body)` posted to it.
pub async fn receiver() -> (String, Posts) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = got.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head_end, len) = loop {
                    let n = s.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "connection closed mid-request");
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map(|v| v.trim().parse::<usize>().unwrap())
                            .unwrap_or(0);
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = s.read(&mut chunk).await.unwrap();
                    assert!(n > 0);
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let body = serde_json::from_slice(&buf[head_end..head_end + len]).unwrap();
                seen.lock().unwrap().push((path, body));
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (url, got)
}

/// `orrery check <args>` → (exit code, stdout, stderr).
pub async fn check(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_orrery"))
        .arg("check")
        .args(args)
        .env_remove("ORRERY_API_TOKEN")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A temporary rules file holding `text`.
pub fn rules_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

/// Graph settings of a query service that reads spans only (no rollup loop: the tests insert
/// spans and read them back at once) with no grace or rollup delay.
pub fn spans_only() -> orrery_query::GraphArgs {
    orrery_query::GraphArgs {
        graph_no_rollup: true,
        graph_grace: std::time::Duration::from_millis(1),
        graph_rollup_delay: std::time::Duration::from_secs(0),
        ..Default::default()
    }
}

/// A query service on a free loopback port reading `ch` with `graph` until `shutdown`: its
/// base URL and its task. No token, default limits and no UI unless `tweak` sets them.
pub async fn serve_query(
    ch: &orrery_store::ClickHouseArgs,
    graph: orrery_query::GraphArgs,
    shutdown: &tokio_util::sync::CancellationToken,
    tweak: impl FnOnce(&mut orrery_query::QueryArgs),
) -> (String, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut args = orrery_query::QueryArgs {
        query_addr: addr,
        api_token: None,
        ui_dir: "/nonexistent".into(),
        graph,
        limits: Default::default(),
    };
    tweak(&mut args);
    let task = tokio::spawn(orrery_query::serve(
        listener,
        args,
        ch.clone(),
        shutdown.clone(),
    ));
    (format!("http://{addr}"), task)
}
