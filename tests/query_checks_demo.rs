//! Checks against the living demo (`orrery demo`): the shipped demo rules file passes on a
//! healthy demo — from `orrery check` and from the service's own `--graph-rules` —; then, all at
//! once, the latency monkey on payments fires the checkout → payments SLO, chaos on the payments
//! canary only (`payments@1.5.0`) fails the canary rule, and silencing fraud (still called by
//! payments) violates the stale-callee conformity rule; Alertmanager and a plain webhook (one
//! recording receiver) get the exact alerts; restoring clears all of it. One fleet for all.

mod query_checks_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orrery_store::testing::process::{free_port, orrery_command};
use serde_json::Value;

fn rules() -> String {
    let dir = orrery_store::testing::manifest_dir(env!("CARGO_MANIFEST_DIR"));
    dir.join("docs/examples/demo-rules.yaml")
        .display()
        .to_string()
}

fn orrery() -> Command {
    let mut cmd = orrery_command(env!("CARGO_BIN_EXE_orrery"));
    cmd.env("RUST_BACKTRACE", "0")
        .env_remove("ORRERY_API_TOKEN");
    cmd
}

/// The demo process and its log; a failing test prints the log's tail (the demo's own account
/// of why it did not answer or did not fire), since the assertion alone cannot say.
struct Running(Child, std::path::PathBuf);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.1).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!(
                "--- the demo's last {} log lines ---\n{}",
                tail.len(),
                tail.join("\n")
            );
        }
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
async fn the_demo_rules_pass_on_a_healthy_demo_and_chaos_fires_and_clears_each_rule_kind() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, got) = query_checks_support::receiver().await;
    let api = format!("http://127.0.0.1:{}", free_port());
    let control = format!("http://127.0.0.1:{}", free_port());
    // stdout (the log lines) and stderr (a panic) into one file.
    let log = dir.path().join("orrery.log");
    let out = std::fs::File::create(&log).unwrap();
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
        .args(["--graph-rules", &rules(), "--graph-rules-interval", "3s"])
        .args(["--graph-alertmanager-url", &receiver])
        .args(["--graph-webhook-url", &format!("{receiver}/hook")])
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap();
    let _running = Running(child, log);

    // Healthy: the CLI gate passes once there is enough traffic (--wait covers the start).
    let (code, out, err) = check(args(&[
        "--query-url",
        &api,
        "--rules",
        &rules(),
        "--wait",
        "150s",
        "--wait-interval",
        "3s",
    ]))
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("8 rule(s): 8 pass"), "{out}");

    // …and so does the service's own evaluation of the same file.
    let started = Instant::now();
    loop {
        let b = board(&api).await;
        let all = b["rules"].as_array().unwrap();
        if all.len() == 8 && all.iter().all(|r| r["verdict"] == "pass") {
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
    chaos(&["error", "payments@1.5.0", "0.5"]).await;
    chaos(&["silence", "fraud"]).await;
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
    // The canary alone fails (both versions are equally slow, only 1.5.0 errs), and payments
    // still calls fraud, which stopped reporting more than a minute ago.
    let started = Instant::now();
    loop {
        let b = board(&api).await;
        let (canary, stale) = (state(&b, "payments-canary"), state(&b, "no-silent-callees"));
        if canary["firing"] == true && stale["firing"] == true {
            let reason = canary["outcome"]["reason"].as_str().unwrap();
            assert!(
                reason.starts_with("canary payments@1.5.0: error rate"),
                "{canary}"
            );
            assert_eq!(canary["outcome"]["measured"]["subject"], "payments@1.5.0");
            assert_eq!(canary["outcome"]["baseline"]["subject"], "payments@1.4.2");
            let reason = stale["outcome"]["reason"].as_str().unwrap();
            assert!(
                reason.starts_with("payments->external:fraud:")
                    && reason.contains("to fraud, which has not reported for"),
                "{stale}"
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(150), "{b}");
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    // The gate says so too: exit 1.
    let (code, out, err) = check(args(&["--query-url", &api, "--rules", &rules()])).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("payments-canary") && out.contains("VIOLATED"),
        "{out}"
    );
    // Alertmanager: the canary's alert with its exact identity and annotations.
    let canary_alerts: Vec<Value> = got
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == "/api/v2/alerts")
        .flat_map(|(_, b)| b.as_array().unwrap().clone())
        .filter(|a| a["labels"]["rule"] == "payments-canary")
        .collect();
    assert!(!canary_alerts.is_empty());
    for a in &canary_alerts {
        assert_eq!(
            a["labels"],
            serde_json::json!({"alertname": "OrreryCheckViolated", "rule": "payments-canary",
                               "kind": "canary", "severity": "ticket"})
        );
        assert_eq!(a["annotations"]["subject"], "payments@1.5.0");
        assert_eq!(
            a["annotations"]["description"],
            "the payments 1.5.0 canary is no worse than 1.4.2"
        );
        assert_eq!(a["startsAt"], canary_alerts[0]["startsAt"], "one startsAt");
    }

    // Restored: the gate passes again once its window has left the slow calls behind, and the
    // service clears the canary and the stale callee.
    chaos(&["restore"]).await;
    let (code, out, err) = check(inline(Some("200s"))).await;
    assert_eq!(code, 0, "{out}{err}");
    let started = Instant::now();
    loop {
        let b = board(&api).await;
        let cleared = ["payments-canary", "no-silent-callees"]
            .iter()
            .all(|r| state(&b, r)["verdict"] == "pass");
        if cleared {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(180), "{b}");
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The plain webhook heard each firing and each clearing exactly once.
    let hooks: Vec<(String, String)> = got
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == "/hook")
        .map(|(_, b)| {
            assert_eq!(b["source"], "orrery");
            (
                b["rule"].as_str().unwrap().to_string(),
                b["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for rule in ["payments-canary", "no-silent-callees"] {
        for status in ["firing", "resolved"] {
            let n = hooks
                .iter()
                .filter(|(r, s)| r == rule && s == status)
                .count();
            assert_eq!(n, 1, "{rule} {status}: {hooks:?}");
        }
    }
}
