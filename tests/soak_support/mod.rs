//! The ingest soak, shared by `cargo bench --bench soak` (minutes, every fault) and
//! tests/ingest_soak.rs (under a minute, fewer faults): the real binaries — one
//! `orrery embedded-clickhouse`, two `orrery collector`s in front of it, the `orrery mesh`
//! generator at a sustained rate through both — while a chaos schedule kills a collector with
//! SIGKILL (restarted on the same spool, as a container restart would), kills the engine, fills a
//! collector's spool disk (a small tmpfs, where `mount` is allowed), and a second client sends
//! poison requests. At the end every span the generator was told was accepted is looked up by
//! trace id in ClickHouse, duplicates counted, the graph API compared with the generator's
//! per-edge calls, and every poison span accounted for: refused to its client, stored once, or in
//! dead letters.
#![allow(dead_code)]

pub mod engine;
pub mod poison;
mod report;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::deploy_support::*;
use engine::{SoakEngine, Tmpfs, fill_disk};
use report::uptime;

pub const DB: &str = "soak";

#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// SIGKILL a collector, restart it on the same spool and ports a second later.
    KillCollector(usize),
    /// SIGKILL the engine's server process; its supervisor (`orrery embedded-clickhouse`)
    /// restarts it.
    KillEngineServer,
    /// SIGKILL the supervisor (its server exits with it), keep the engine down this long, start
    /// it again on the same data directory and port.
    RestartEngine(Duration),
    /// Fill the filesystem of a collector's spool (a tmpfs) for this long, then free it.
    FillSpoolDisk(usize, Duration),
}

impl Fault {
    fn name(&self) -> String {
        match self {
            Fault::KillCollector(i) => format!("kill -9 collector {i}, restart on its spool"),
            Fault::KillEngineServer => {
                "kill -9 the engine's server (supervisor restarts it)".into()
            }
            Fault::RestartEngine(d) => {
                format!(
                    "kill -9 the engine and its supervisor, down {} s",
                    d.as_secs()
                )
            }
            Fault::FillSpoolDisk(i, d) => {
                format!("spool disk of collector {i} full for {} s", d.as_secs())
            }
        }
    }
}

pub struct Plan {
    pub duration: Duration,
    /// Spans per second the generator offers.
    pub rate: u64,
    pub services: usize,
    /// (seconds after the start, fault)
    pub faults: Vec<(u64, Fault)>,
    pub poison_every: Duration,
    /// Size of the tmpfs under each collector's spool (MiB); None: plain directories.
    pub tmpfs_mib: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct FaultResult {
    pub what: String,
    pub at_secs: f64,
    pub survived: bool,
    /// Seconds from the fault (or, for a full disk, from freeing it) until every process
    /// answered ready again.
    pub recovery_secs: f64,
    pub note: String,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub seconds: f64,
    pub accepted_spans: u64,
    pub accepted_traces: u64,
    pub failed_exports: u64,
    pub unacknowledged_spans: u64,
    /// Accepted spans per second over the run (what the two collectors held under the faults).
    pub held_per_sec: f64,
    /// Rows in ClickHouse for the generator's traces, and distinct span ids among them.
    pub stored_rows: u64,
    pub stored_distinct: u64,
    /// Acknowledged spans not in ClickHouse.
    pub lost: u64,
    /// Rows beyond the first of a span id (all traces, the poison's too).
    pub duplicates: u64,
    /// Spans of exports the generator saw fail that are stored anyway (the collector had spooled
    /// them before the connection broke): allowed — from the client's side never acknowledged.
    pub unacked_stored: u64,
    pub faults: Vec<FaultResult>,
    pub poison: Vec<poison::Sent>,
    pub poison_accepted: u64,
    pub poison_stored: u64,
    pub poison_dead_lettered: Option<u64>,
    /// Accepted poison spans neither stored nor in dead letters.
    pub poison_unaccounted: u64,
    pub dead_letter_note: String,
    /// Batches still in the collectors' spools (not delivered) after the final graceful stop.
    pub batches_left_in_spools: u64,
    /// Per (client, server) edge: calls the generator had acknowledged, calls the graph shows.
    pub edges_checked: usize,
    pub edge_calls_missing: u64,
    pub edge_calls_extra: u64,
    /// Client spans per edge in ClickHouse beyond the generator's acknowledged calls (spans of
    /// unacknowledged exports), and edges where the graph's count differs from ClickHouse's.
    pub stored_calls_extra: u64,
    pub graph_vs_stored_edges_differing: usize,
    pub graph_vs_stored_calls: i64,
    /// The same difference, summed, in the graph read right after the replica started.
    pub fresh_graph_vs_stored_calls: i64,
    /// Rows beyond the first of a span in `orrery_span_calls`, the materialized view the graph
    /// reads (filled at every insert into the spans table: a retried insert that the spans
    /// table deduplicates must not reach it twice either).
    pub view_duplicates: u64,
    pub graph_note: String,
    pub load_before: String,
    pub load_after: String,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// ---- the run -----------------------------------------------------------------------------------

fn collector_ready(c: &Collector) -> bool {
    matches!(get(&format!("http://{}/readyz", c.http)), Some((200, _)))
}

fn restart_collector(url: &str, spool: &Path, grpc: SocketAddr, http: SocketAddr) -> Collector {
    // The ports may linger briefly after a SIGKILL; start_collector_at waits for /readyz.
    start_collector_at(url, DB, spool, grpc, http)
}

struct Run {
    engine: SoakEngine,
    collectors: Vec<Collector>,
    spools: Vec<PathBuf>,
    started: Instant,
}

impl Run {
    fn all_ready(&mut self) -> bool {
        self.engine.wait_ready(Duration::from_millis(1))
            && self.collectors.iter().all(collector_ready)
    }

    fn wait_all_ready(&mut self, within: Duration) -> Option<Instant> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.all_ready() {
                return Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    fn inject(&mut self, fault: Fault) -> FaultResult {
        let at = Instant::now();
        let at_secs = (at - self.started).as_secs_f64();
        let mut note = String::new();
        let recovered_from = match fault {
            Fault::KillCollector(i) => {
                let (grpc, http) = (self.collectors[i].grpc, self.collectors[i].http);
                self.collectors[i].proc.kill_hard();
                std::thread::sleep(Duration::from_secs(1));
                self.collectors[i] =
                    restart_collector(&self.engine.url, &self.spools[i], grpc, http);
                at
            }
            Fault::KillEngineServer => {
                match self.engine.server_pid() {
                    Some(pid) => {
                        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                        // Wait until it is really gone before timing the way back.
                        let gone = Instant::now() + Duration::from_secs(10);
                        while Instant::now() < gone
                            && matches!(get(&format!("{}/ping", self.engine.url)), Some((200, _)))
                        {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                    None => note = "no server process found".into(),
                }
                at
            }
            Fault::RestartEngine(down) => {
                self.engine.kill_all();
                std::thread::sleep(down);
                self.engine.spawn();
                // A new engine start means a new secret, which the roles in front read only at
                // their start: restart them (SIGKILL — they could not flush with the old secret
                // anyway; each replays its spool).
                for i in 0..self.collectors.len() {
                    let (grpc, http) = (self.collectors[i].grpc, self.collectors[i].http);
                    self.collectors[i].proc.kill_hard();
                    self.collectors[i] =
                        restart_collector(&self.engine.url, &self.spools[i], grpc, http);
                }
                note = "collectors restarted for the engine's new secret".into();
                at
            }
            Fault::FillSpoolDisk(i, hold) => {
                let filler = fill_disk(&self.spools[i]);
                // While full: the collector must say so (not ready) rather than acknowledge
                // what it cannot write.
                let until = Instant::now() + hold;
                let mut saw_not_ready = false;
                while Instant::now() < until {
                    if let Some((code, _)) =
                        get(&format!("http://{}/readyz", self.collectors[i].http))
                        && code != 200
                    {
                        saw_not_ready = true;
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
                let alive = self.collectors[i].proc.child.try_wait().unwrap().is_none();
                note = format!(
                    "/readyz {} while full; process {}",
                    if saw_not_ready {
                        "turned 503"
                    } else {
                        "stayed 200"
                    },
                    if alive { "alive" } else { "DIED" }
                );
                std::fs::remove_file(&filler).unwrap();
                if !alive {
                    let (grpc, http) = (self.collectors[i].grpc, self.collectors[i].http);
                    self.collectors[i] =
                        restart_collector(&self.engine.url, &self.spools[i], grpc, http);
                }
                Instant::now()
            }
        };
        let ready = self.wait_all_ready(Duration::from_secs(120));
        FaultResult {
            what: fault.name(),
            at_secs,
            survived: ready.is_some(),
            recovery_secs: ready.map_or(f64::NAN, |r| (r - recovered_from).as_secs_f64()),
            note,
        }
    }
}

/// Rows of one column-pair query: `key \t a \t b`.
fn per_trace(url: &str, query: &str) -> HashMap<String, (u64, u64)> {
    sql(url, query)
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let k = f.next()?.to_string();
            let a = f.next()?.parse().ok()?;
            let b = f.next()?.parse().ok()?;
            Some((k, (a, b)))
        })
        .collect()
}

/// Dead-letter spans and batches still waiting in a spool, from `orrery spool list` (its totals
/// lines: `<n> dead letters, <s> spans` and `<w> batches waiting …`).
fn spool_totals(spool: &Path) -> Result<(u64, u64), String> {
    let out = orrery()
        .args(["spool", "list", "--spool-dir"])
        .arg(spool)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "`orrery spool list` failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let number_before = |line: &str, word: &str| -> Option<u64> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let i = words.iter().position(|w| w.trim_end_matches(',') == word)?;
        words.get(i.checked_sub(1)?)?.parse().ok()
    };
    let dead = text
        .lines()
        .find(|l| l.contains("dead letters,"))
        .and_then(|l| number_before(l, "spans"))
        .ok_or_else(|| format!("no totals in `orrery spool list`: {text}"))?;
    let waiting = text
        .lines()
        .find(|l| l.contains("batches waiting"))
        .and_then(|l| number_before(l, "batches"))
        .unwrap_or(0);
    Ok((dead, waiting))
}

pub fn run(plan: &Plan) -> Outcome {
    let mut outcome = Outcome {
        load_before: uptime(),
        ..Outcome::default()
    };
    let work = tempfile::tempdir().unwrap();
    let port = free_addr().port();
    let engine = SoakEngine::start(&work.path().join("engine"), port);
    migrate(&engine.url, DB);

    // Spools: each on its own small tmpfs where the machine allows mounting one.
    let mut mounts = Vec::new();
    let mut tmpfs_note = None;
    let spools: Vec<PathBuf> = (0..2)
        .map(|i| work.path().join(format!("spool{i}")))
        .collect();
    if let Some(mib) = plan.tmpfs_mib {
        for s in &spools {
            match Tmpfs::mount(s, mib) {
                Ok(m) => mounts.push(m),
                Err(e) => {
                    tmpfs_note = Some(format!("tmpfs not mountable here ({e})"));
                    mounts.clear();
                    break;
                }
            }
        }
    }
    let collectors: Vec<Collector> = spools
        .iter()
        .map(|s| start_collector(&engine.url, DB, s))
        .collect();
    let endpoints: Vec<String> = collectors.iter().map(Collector::grpc_endpoint).collect();
    let http_targets: Vec<SocketAddr> = collectors.iter().map(|c| c.http).collect();
    let mut run = Run {
        engine,
        collectors,
        spools: spools.clone(),
        started: Instant::now(),
    };

    let start_ms = now_ms();
    let report_file = work.path().join("mesh.json");
    let ledger_file = work.path().join("mesh.ledger");
    let mut mesh = orrery()
        .arg("mesh")
        .args(["--endpoint", &endpoints.join(",")])
        .args(["--services", &plan.services.to_string(), "--regions", "3"])
        .args(["--batch", "200", "--concurrency", "4"])
        .args(["--rate", &plan.rate.to_string()])
        .args(["--duration", &format!("{}s", plan.duration.as_secs())])
        .arg("--report")
        .arg(&report_file)
        .arg("--ledger")
        .arg(&ledger_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    run.started = Instant::now();
    let mut poisoner = poison::Poisoner::start(http_targets, plan.poison_every);

    // The chaos schedule.
    for (at, fault) in &plan.faults {
        let due = run.started + Duration::from_secs(*at);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if matches!(fault, Fault::FillSpoolDisk(..)) && mounts.is_empty() {
            outcome.faults.push(FaultResult {
                what: fault.name(),
                at_secs: run.started.elapsed().as_secs_f64(),
                survived: false,
                recovery_secs: f64::NAN,
                note: format!(
                    "SKIPPED: {}",
                    tmpfs_note
                        .clone()
                        .unwrap_or_else(|| "no tmpfs requested".into())
                ),
            });
            continue;
        }
        let r = run.inject(*fault);
        eprintln!(
            "soak: {:>6.1} s  {}  → recovered in {:.2} s {}",
            r.at_secs, r.what, r.recovery_secs, r.note
        );
        outcome.faults.push(r);
    }
    let status = mesh.wait().unwrap();
    assert!(status.success(), "orrery mesh failed: {status}");
    outcome.poison = poisoner.stop();
    outcome.seconds = run.started.elapsed().as_secs_f64();

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_file).unwrap()).expect("mesh report");
    outcome.accepted_spans = report["spans"].as_u64().unwrap();
    outcome.accepted_traces = report["traces"].as_u64().unwrap();
    outcome.failed_exports = report["failed_exports"].as_u64().unwrap();
    outcome.unacknowledged_spans = report["failed_spans"].as_u64().unwrap();
    outcome.held_per_sec = outcome.accepted_spans as f64 / report["elapsed_secs"].as_f64().unwrap();
    let mut accepted: HashMap<String, u64> = HashMap::new();
    let mut failed: HashMap<String, u64> = HashMap::new();
    for line in std::fs::read_to_string(&ledger_file).unwrap().lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let n: u64 = f[2].parse().unwrap();
        match f[0] {
            "ok" => accepted.insert(f[1].to_string(), n),
            _ => failed.insert(f[1].to_string(), n),
        };
    }
    assert_eq!(
        accepted.values().sum::<u64>(),
        outcome.accepted_spans,
        "the ledger agrees with the report"
    );

    // Drain: every collector ready, then until the accepted spans are all in (or 3 minutes).
    run.wait_all_ready(Duration::from_secs(120));
    let count = |url: &str| -> u64 {
        sql(
            url,
            &format!(
                "SELECT count() FROM {DB}.otel_traces WHERE NOT startsWith(TraceId, '{}') FORMAT TSV",
                poison::TRACE_PREFIX
            ),
        )
        .parse()
        .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = (0, Instant::now());
    while Instant::now() < deadline {
        let c = count(&run.engine.url);
        if c >= outcome.accepted_spans && last.1.elapsed() > Duration::from_secs(3) {
            break;
        }
        if c != last.0 {
            last = (c, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // Stop the collectors gracefully: whatever they still hold is flushed.
    for c in &mut run.collectors {
        c.proc.terminate(Duration::from_secs(60));
    }

    // Every acknowledged span, by trace.
    let stored = per_trace(
        &run.engine.url,
        &format!(
            "SELECT TraceId, count(), uniqExact(SpanId) FROM {DB}.otel_traces GROUP BY TraceId FORMAT TSV"
        ),
    );
    for (trace, (rows, distinct)) in &stored {
        outcome.duplicates += rows - distinct;
        if trace.starts_with(poison::TRACE_PREFIX) {
            continue;
        }
        outcome.stored_rows += rows;
        outcome.stored_distinct += distinct;
        if let Some(n) = failed.get(trace) {
            outcome.unacked_stored += (*distinct).min(*n);
        }
    }
    for (trace, n) in &accepted {
        let have = stored.get(trace).map_or(0, |s| s.1);
        outcome.lost += n.saturating_sub(have);
    }

    outcome.view_duplicates = sql(
        &run.engine.url,
        &format!("SELECT count() - uniqExact(SpanKey) FROM {DB}.orrery_span_calls FORMAT TSV"),
    )
    .parse()
    .unwrap();

    // Poison: accepted spans are stored once or in dead letters.
    outcome.poison_accepted = outcome.poison.iter().map(poison::Sent::accepted).sum();
    outcome.poison_stored = outcome
        .poison
        .iter()
        .filter_map(|p| p.trace.as_ref())
        .map(|t| stored.get(t).map_or(0, |s| s.1))
        .sum();
    let mut dead = Some(0);
    for s in &spools {
        match spool_totals(s) {
            Ok((n, waiting)) => {
                dead = dead.map(|d| d + n);
                outcome.batches_left_in_spools += waiting;
            }
            Err(e) => {
                outcome.dead_letter_note = format!("dead-letter check skipped: {e}");
                dead = None;
                break;
            }
        }
    }
    outcome.poison_dead_lettered = dead;
    outcome.poison_unaccounted = outcome
        .poison_accepted
        .saturating_sub(outcome.poison_stored + dead.unwrap_or(0));

    // The graph: a query replica over the whole run, per (client, server) edge.
    let query = start_query(&run.engine.url, DB);
    let end_ms = now_ms() + 60_000;
    let read_graph = || -> Result<BTreeMap<(String, String), u64>, String> {
        let (code, body) = query.get(&format!(
            "/orrery/api/graph?level=region&start={}&end={end_ms}",
            start_ms - 120_000
        ));
        if code != 200 {
            return Err(format!("graph API answered {code}: {body}"));
        }
        let g: serde_json::Value = serde_json::from_str(&body).unwrap();
        Ok(g["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    (
                        e["source"].as_str().unwrap().to_string(),
                        e["target"].as_str().unwrap().to_string(),
                    ),
                    e["metrics"]["requests"].as_u64().unwrap(),
                )
            })
            .collect())
    };
    // Once from the fresh replica (its rollup has just started), once after it settled: the
    // second is the one checked; a difference in the first is reported.
    let loaded_ms = now_ms();
    let fresh = read_graph();
    std::thread::sleep(Duration::from_secs(5));
    // A live graph ends at the newest slot the rollup closed: read once it holds the run.
    query.wait_settled(start_ms - 120_000, end_ms, loaded_ms);
    let settled = read_graph();
    if let Ok(graph) = settled {
        // The same per edge straight from the stored client spans (the mesh names the callee
        // in peer.service), to tell extra spans from a graph that counts differently.
        let stored_edges: HashMap<String, (u64, u64)> = per_trace(
            &run.engine.url,
            &format!(
                "SELECT concat(ServiceName, ' ', SpanAttributes['peer.service']), count(), 0 \
                 FROM {DB}.otel_traces WHERE SpanKind IN ('Client', 'SPAN_KIND_CLIENT') \
                 AND SpanAttributes['peer.service'] != '' GROUP BY 1 FORMAT TSV"
            ),
        );
        for e in report["edges"].as_array().unwrap() {
            let key = (
                e["client"].as_str().unwrap().to_string(),
                e["server"].as_str().unwrap().to_string(),
            );
            let want = e["calls"].as_u64().unwrap();
            let have = graph.get(&key).copied().unwrap_or(0);
            let stored = stored_edges
                .get(&format!("{} {}", key.0, key.1))
                .map_or(0, |s| s.0);
            outcome.edges_checked += 1;
            outcome.edge_calls_missing += want.saturating_sub(have);
            outcome.edge_calls_extra += have.saturating_sub(want);
            outcome.stored_calls_extra += stored.saturating_sub(want);
            if have != stored {
                outcome.graph_vs_stored_edges_differing += 1;
                outcome.graph_vs_stored_calls += have as i64 - stored as i64;
            }
            if let Ok(f) = &fresh {
                let first = f.get(&key).copied().unwrap_or(0);
                outcome.fresh_graph_vs_stored_calls += first as i64 - stored as i64;
            }
        }
    } else if let Err(e) = settled {
        outcome.graph_note = e;
    }
    drop(query);
    outcome.load_after = uptime();
    drop(run);
    drop(mounts);
    outcome
}
