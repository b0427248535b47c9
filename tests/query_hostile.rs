//! The query service as a real process (issue 13): SIGTERM with open live streams exits within
//! seconds, the stream cap answers 429, and a listener on a non-loopback address without a
//! token says so at start. (The in-process hostile tests are in query/tests/hostile.rs.)

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use orrery_store::testing::process::{free_port, orrery_command};

struct Running(Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// `orrery all-in-one` on free ports with its own data dir; the query base URL once healthy.
fn all_in_one(data: &std::path::Path, query_ip: &str, extra: &[&str]) -> (Running, String, u16) {
    let port = free_port();
    let child = orrery_command(env!("CARGO_BIN_EXE_orrery"))
        .arg("--data-dir")
        .arg(data)
        .args(["--embedded-port", "0"])
        .args(["--otlp-grpc-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--otlp-http-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--query-addr", &format!("{query_ip}:{port}")])
        .args(["--ui-dir", "/nonexistent"])
        .args(extra)
        .env("ORRERY_LOG", "info,orrery_query=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    (Running(child), format!("http://127.0.0.1:{port}"), port)
}

/// Waits until `base` answers health; `false` when the process exited first.
async fn wait_healthy(running: &mut Running, base: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/orrery/api/health")).await
            && r.status() == 200
        {
            return true;
        }
        if running.0.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(Instant::now() < deadline, "orrery did not become healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// [`all_in_one`] until healthy, with its log: a port `free_port` found free can be taken by
/// another process before the all-in-one binds it (seen in CI: "Address already in use", the
/// process exits at once), so an exit before health is retried on new ports, twice at most.
async fn started(data: &std::path::Path, query_ip: &str, extra: &[&str]) -> (Running, String, Log) {
    for attempt in 1.. {
        let (mut running, base, _) = all_in_one(data, query_ip, extra);
        let log = log_lines(&mut running.0);
        if wait_healthy(&mut running, &base).await {
            return (running, base, log);
        }
        assert!(
            attempt < 3,
            "orrery exited before it was healthy, {attempt} times"
        );
        eprintln!("orrery exited before it was healthy (a port taken meanwhile?): retrying");
    }
    unreachable!()
}

/// Collects the process's log lines (on stdout) in the background.
fn log_lines(child: &mut Child) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stdout = child.stdout.take().unwrap();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("orrery: {line}");
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

#[tokio::test]
async fn sigterm_with_open_streams_exits_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let (mut running, base, log) =
        started(dir.path(), "127.0.0.1", &["--query-max-streams", "3"]).await;
    let http = reqwest::Client::new();
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut r = http
            .get(format!(
                "{base}/orrery/api/graph/stream?since=5m&interval=1s"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        // The first graph event arrived: the stream is live.
        tokio::time::timeout(Duration::from_secs(20), r.chunk())
            .await
            .unwrap()
            .unwrap();
        streams.push(r);
    }
    let r = http
        .get(format!("{base}/orrery/api/graph/stream?since=5m"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        429,
        "a fourth stream over --query-max-streams 3"
    );
    assert!(r.headers().contains_key("retry-after"));

    let started = Instant::now();
    unsafe { kill(running.0.id() as i32, 15) };
    let status = loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "orrery did not exit within 5 s of SIGTERM with open streams"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = started.elapsed();
    eprintln!("exited {took:?} after SIGTERM with 3 open streams");
    assert!(status.success(), "exit status {status}");
    // The clients saw their streams end, not hang.
    for r in &mut streams {
        loop {
            match tokio::time::timeout(Duration::from_secs(2), r.chunk()).await {
                Ok(Ok(Some(_))) => continue,
                Ok(_) => break,
                Err(_) => panic!("a stream is still open after the process exited"),
            }
        }
    }
    let log = log.lock().unwrap();
    assert!(
        !log.iter().any(|l| l.contains("without --api-token")),
        "no warning on loopback"
    );
}

#[tokio::test]
async fn non_loopback_without_token_warns() {
    let dir = tempfile::tempdir().unwrap();
    let (_running, _base, log) = started(dir.path(), "0.0.0.0", &[]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        {
            let log = log.lock().unwrap();
            if let Some(line) = log.iter().find(|l| l.contains("without --api-token")) {
                assert!(line.contains("WARN"), "{line}");
                assert!(line.contains("0.0.0.0"), "{line}");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no warning about the open listener"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
