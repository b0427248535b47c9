//! The ingest soak: `cargo bench --bench soak` (release build). The real binaries — one
//! `orrery embedded-clickhouse`, two `orrery collector`s, `orrery mesh` at a sustained rate
//! through both — for several minutes under a chaos schedule: SIGKILL of a collector (three
//! times, restarted on its spool), SIGKILL of the engine's server (its supervisor restarts it),
//! the engine and its supervisor killed and restarted after 5 s down, a collector's spool disk
//! (a tmpfs) filled for 15 s, and poison requests from a second client throughout. Prints spans/s
//! held, faults injected and survived with the recovery time of each, bad inputs tried and what
//! became of them, spans lost, duplicates, and the graph's per-edge calls against the
//! generator's (the harness: tests/soak_support/).
//!
//! Optional: ORRERY_SOAK_SECONDS (default 180), ORRERY_SOAK_RATE (spans/s, default 3000),
//! ORRERY_SOAK_TMPFS_MIB (each spool's tmpfs, default 128; 0 = no tmpfs, the disk fault skipped),
//! ORRERY_SOAK_FAULTS (a comma-separated subset of kill-collector, kill-engine-server,
//! restart-engine, disk-full, to find which fault a finding comes from; default all).

#[path = "../tests/deploy_support/mod.rs"]
mod deploy_support;
#[path = "../tests/soak_support/mod.rs"]
mod soak_support;

use std::time::Duration;

use soak_support::{Fault, Plan};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let seconds = env("ORRERY_SOAK_SECONDS", 180).max(60);
    let rate = env("ORRERY_SOAK_RATE", 3000);
    let tmpfs = env("ORRERY_SOAK_TMPFS_MIB", 128);
    let at = |fraction: f64| (seconds as f64 * fraction) as u64;
    let only = std::env::var("ORRERY_SOAK_FAULTS").unwrap_or_default();
    let wanted = |f: &Fault| {
        let name = match f {
            Fault::KillCollector(_) => "kill-collector",
            Fault::KillEngineServer => "kill-engine-server",
            Fault::RestartEngine(_) => "restart-engine",
            Fault::FillSpoolDisk(..) => "disk-full",
        };
        only.is_empty() || only.split(',').any(|o| o.trim() == name)
    };
    let mut plan = Plan {
        duration: Duration::from_secs(seconds),
        rate,
        services: 100,
        faults: vec![
            (at(0.10), Fault::KillCollector(0)),
            (at(0.22), Fault::KillEngineServer),
            (at(0.35), Fault::FillSpoolDisk(1, Duration::from_secs(15))),
            (at(0.55), Fault::RestartEngine(Duration::from_secs(5))),
            (at(0.70), Fault::KillCollector(1)),
            (at(0.85), Fault::KillCollector(0)),
        ],
        poison_every: Duration::from_millis(500),
        tmpfs_mib: (tmpfs > 0).then_some(tmpfs),
    };
    plan.faults.retain(|(_, f)| wanted(f));
    println!(
        "soak: orrery mesh (100 services, {rate} spans/s offered) → 2 collectors → one embedded ClickHouse, {seconds} s, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let out = soak_support::run(&plan);
    out.print();
}
