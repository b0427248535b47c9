//! Checks against the living demo (`orrery demo`): the shipped demo rules file passes on a
//! healthy demo — from `orrery check` and from the service's own `--graph-rules` —, the latency
//! monkey on payments makes the checkout → payments SLO fire, and restoring clears it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orrery_store::testing::process::{free_port, orrery_command};
use serde_json::Value;

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/demo-rules.yaml");

fn orrery() -> Command {
    let mut cmd = orrery_command(env!("CARGO_BIN_EXE_orrery"));
    cmd.env("RUST_BACKTRACE", "0")
        .env_remove("ORRERY_API_TOKEN");
    cmd
}

struct Running(Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `orrery check <args>` → (exit code, stdout, stderr).
async fn check(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = orrery().arg("check").args(&args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

async fn board(api: &str) -> Value {
    let r = reqwest::get(format!("{api}/orrery/api/checks"))
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

fn state<'a>(b: &'a Value, rule: &str) -> &'a Value {
    b["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == rule)
        .unwrap_or_else(|| panic!("{rule} not in {b}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_rules_pass_on_a_healthy_demo_and_the_latency_monkey_fires_the_slo() {
    let dir = tempfile::tempdir().unwrap();
    let api = format!("http://127.0.0.1:{}", free_port());
    let control = format!("http://127.0.0.1:{}", free_port());
    let child = orrery()
        .arg("demo")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--spool-dir")
        .arg(dir.path().join("spool"))
        .args(["--embedded-port", "0"])
        .args(["--otlp-grpc-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--otlp-http-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--query-addr", api.trim_start_matches("http://")])
        .args(["--demo-control-addr", control.trim_start_matches("http://")])
        .args(["--demo-rate", "25"])
        .args(["--graph-rules", RULES, "--graph-rules-interval", "3s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _running = Running(child);

    // Healthy: the CLI gate passes once there is enough traffic (--wait covers the start).
    let (code, out, err) = check(args(&[
        "--query-url",
        &api,
        "--rules",
        RULES,
        "--wait",
        "150s",
        "--wait-interval",
        "3s",
    ]))
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("6 rule(s): 6 pass"), "{out}");

    // …and so does the service's own evaluation of the same file.
    let started = Instant::now();
    loop {
        let b = board(&api).await;
        let all = b["rules"].as_array().unwrap();
        if all.len() == 6 && all.iter().all(|r| r["verdict"] == "pass") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{b}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // Latency monkey on payments: checkout -> payments p95 crosses 2 s (the rule) and 1 s.
    let chaos = |a: &'static [&'static str]| {
        let control = control.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let out = orrery()
                    .args(["demo", "chaos", "--control-url", &control])
                    .args(a)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "chaos {a:?}");
            })
            .await
            .unwrap()
        }
    };
    chaos(&["latency", "payments", "3000"]).await;
    let inline = |wait: Option<&str>| {
        let mut v = args(&[
            "--query-url",
            &api,
            "--edge",
            "checkout->payments",
            "--max-p95",
            "1s",
            "--since",
            "1m",
            "--min-requests",
            "5",
        ]);
        if let Some(w) = wait {
            v.extend(args(&["--wait", w, "--wait-interval", "5s"]));
        }
        v
    };
    let started = Instant::now();
    loop {
        let (code, out, err) = check(inline(None)).await;
        if code == 1 {
            assert!(out.contains("VIOLATED") && out.contains("p95"), "{out}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "still {code}: {out}{err}"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let started = Instant::now();
    loop {
        let b = board(&api).await;
        let s = state(&b, "checkout-payments-slo");
        if s["verdict"] == "violated" {
            assert_eq!(s["firing"], true, "{s}");
            assert!(
                s["outcome"]["reason"].as_str().unwrap().contains("p95"),
                "{s}"
            );
            assert_eq!(state(&b, "databases-fast")["verdict"], "pass", "{b}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "{b}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // Restored: the gate passes again once its window has left the slow calls behind.
    chaos(&["restore"]).await;
    let (code, out, err) = check(inline(Some("200s"))).await;
    assert_eq!(code, 0, "{out}{err}");
}
