//! Start-up time and idle memory of `orrery all-in-one` on the embedded ClickHouse.
//!
//! `cargo bench --bench startup` (release build). Cold = empty data directory (the engine
//! creates its files and the schema); warm = the same directory again. "Ready" = the OTLP/HTTP,
//! OTLP/gRPC and UI ports accept connections and the embedded ClickHouse answers /ping. Idle RSS
//! is read from /proc for `orrery` and its chDB child after 5 s of idleness.

use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use orrery_store::testing::process::{children, free_port, orrery_command, rss_kib};

struct Run {
    ready: Duration,
    rss_orrery_kib: u64,
    rss_engine_kib: u64,
}

fn run_once(data: &std::path::Path) -> Run {
    let (grpc, http, ui, ch) = (free_port(), free_port(), free_port(), free_port());
    let started = Instant::now();
    let mut child: Child = orrery_command(env!("CARGO_BIN_EXE_orrery"))
        .arg("--data-dir")
        .arg(data)
        .args(["--embedded-port", &ch.to_string()])
        .args(["--otlp-grpc-addr", &format!("127.0.0.1:{grpc}")])
        .args(["--otlp-http-addr", &format!("127.0.0.1:{http}")])
        .args(["--query-addr", &format!("127.0.0.1:{ui}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start orrery");
    let deadline = started + Duration::from_secs(120);
    loop {
        let up = [grpc, http, ui, ch]
            .iter()
            .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok());
        if up {
            break;
        }
        assert!(Instant::now() < deadline, "not ready in 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    let ready = started.elapsed();
    std::thread::sleep(Duration::from_secs(5));
    let pid = child.id();
    let rss_orrery_kib = rss_kib(pid).0;
    let rss_engine_kib = children(pid).into_iter().map(|c| rss_kib(c).0).sum();
    unsafe { kill(pid as i32, 15) };
    let _ = child.wait();
    Run {
        ready,
        rss_orrery_kib,
        rss_engine_kib,
    }
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        cold.push(run_once(dir.path()));
        warm.push(run_once(dir.path()));
    }
    let report = |name: &str, runs: &[Run]| {
        let mut t: Vec<f64> = runs
            .iter()
            .map(|r| r.ready.as_secs_f64() * 1000.0)
            .collect();
        t.sort_by(f64::total_cmp);
        let last = runs.last().unwrap();
        println!(
            "{name}: ready in {:.0} ms (median of {}, min {:.0}, max {:.0}); idle RSS orrery {:.1} MiB + embedded ClickHouse {:.1} MiB",
            t[t.len() / 2],
            t.len(),
            t[0],
            t[t.len() - 1],
            last.rss_orrery_kib as f64 / 1024.0,
            last.rss_engine_kib as f64 / 1024.0,
        );
    };
    report("cold start (empty data dir)", &cold);
    report("warm start (existing data)", &warm);
}
