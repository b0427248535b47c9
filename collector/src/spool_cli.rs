//! `orrery spool`: list, inspect, replay and drop what a collector's spool holds, above all its
//! dead letters (docs/collector.md, "Dead letters").

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use orrery_store::ClickHouseArgs;
use tokio_util::sync::CancellationToken;

use crate::deadletter;
use crate::metrics::Metrics;
use crate::sink::{Placed, Placer, SinkConfig, partitions_setting};
use crate::spool::{self, Segment};

#[derive(Args, Debug, Clone)]
pub struct SpoolCmd {
    #[command(subcommand)]
    pub action: SpoolAction,
    /// The collector's spool directory (its --spool-dir).
    #[arg(
        long,
        env = "ORRERY_SPOOL_DIR",
        default_value = "./data/spool",
        global = true
    )]
    pub spool_dir: PathBuf,
}

#[derive(Subcommand, Debug, Clone)]
pub enum SpoolAction {
    /// List the dead letters (name, spans, bytes, error), then a count of the batches waiting
    /// (queued or parked).
    List,
    /// Show a dead letter (or any segment file): spans, spans per service, time range, error.
    Inspect {
        /// A name from `orrery spool list`, or a path to a segment file.
        name: String,
    },
    /// Insert dead letters into ClickHouse (--clickhouse-url) once the cause is fixed: rows
    /// ClickHouse now accepts land and the dead letter is removed; rows still refused stay.
    /// With --all (only while no collector uses the spool): every batch of the spool, queued,
    /// open and parked too, e.g. to drain the spool of a collector that will not come back.
    Replay {
        /// Dead letters to replay (default: all of them).
        names: Vec<String>,
        /// The whole spool, not only the dead letters.
        #[arg(long)]
        all: bool,
        /// Give up on a batch after this long (retries with backoff until then).
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Delete dead letters: the named ones, or all with --all.
    Drop {
        names: Vec<String>,
        #[arg(long)]
        all: bool,
    },
}

pub async fn run(cmd: SpoolCmd, ch: ClickHouseArgs) -> Result<()> {
    let dead_dir = cmd.spool_dir.join(spool::DEAD);
    match cmd.action {
        SpoolAction::List => list(&cmd.spool_dir, &dead_dir),
        SpoolAction::Inspect { name } => inspect(&dead_dir, &name),
        SpoolAction::Replay {
            names,
            all,
            timeout,
        } => replay(&cmd.spool_dir, &dead_dir, names, all, timeout, ch).await,
        SpoolAction::Drop { names, all } => {
            if names.is_empty() && !all {
                bail!("name the dead letters to drop, or pass --all");
            }
            let targets = if all {
                deadletter::list(&dead_dir)?
            } else {
                names
                    .iter()
                    .map(|n| deadletter::find(&dead_dir, n))
                    .collect::<Result<_>>()?
            };
            for d in targets {
                deadletter::remove(&d).with_context(|| format!("removing {:?}", d.path))?;
                println!("dropped {} ({} spans)", d.name, d.spans());
            }
            Ok(())
        }
    }
}

fn list(spool_dir: &Path, dead_dir: &Path) -> Result<()> {
    let dead = deadletter::list(dead_dir)?;
    println!(
        "{:<48} {:>8} {:>12}  error",
        "dead letter", "spans", "bytes"
    );
    for d in &dead {
        let error = d.error().lines().next().unwrap_or_default();
        let error: String = error.chars().take(120).collect();
        println!("{:<48} {:>8} {:>12}  {error}", d.name, d.spans(), d.bytes);
    }
    let spans: u64 = dead.iter().map(|d| d.spans()).sum();
    println!("{} dead letters, {spans} spans", dead.len());
    let waiting = batches(spool_dir)?.len();
    println!("{waiting} batches waiting for ClickHouse (queued or parked)");
    Ok(())
}

/// Queued, open and parked segments of a spool.
fn batches(spool_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for dir in [spool_dir.to_path_buf(), spool_dir.join("parked")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let p = e?.path();
            if matches!(p.extension().and_then(|e| e.to_str()), Some("seg" | "open")) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn inspect(dead_dir: &Path, name: &str) -> Result<()> {
    let (path, meta) = if Path::new(name).is_file() {
        (PathBuf::from(name), serde_json::Value::Null)
    } else {
        let d = deadletter::find(dead_dir, name)?;
        (d.path, d.meta)
    };
    let i = deadletter::inspect(&path)?;
    println!("segment:    {}", path.display());
    println!("spans:      {}", i.spans);
    if let Some((lo, hi)) = i.time_range {
        println!("time range: {} .. {}", rfc3339(lo), rfc3339(hi));
    }
    println!("services:");
    for (service, n) in &i.services {
        println!("  {service:<40} {n:>8}");
    }
    if !meta.is_null() {
        println!("batch:      {}", meta["batch"].as_str().unwrap_or("?"));
        if let Some(code) = meta["code"].as_u64() {
            println!("code:       {code}");
        }
        println!(
            "isolated:   {}",
            if meta["isolated"].as_bool() == Some(true) {
                "yes (each of these rows failed on its own)"
            } else {
                "no (the batch was set aside whole)"
            }
        );
        println!("errors:");
        for e in meta["errors"].as_array().into_iter().flatten() {
            println!("  {}", e.as_str().unwrap_or_default());
        }
    }
    Ok(())
}

fn rfc3339(ns: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64);
    humantime::format_rfc3339_nanos(t).to_string()
}

async fn replay(
    spool_dir: &Path,
    dead_dir: &Path,
    names: Vec<String>,
    all: bool,
    timeout: Duration,
    ch: ClickHouseArgs,
) -> Result<()> {
    if ch.clickhouse_url.is_none() {
        bail!("--clickhouse-url is required to replay");
    }
    // Batches other than dead letters belong to a running collector, if there is one.
    let _lock = if all {
        Some(spool::lock(spool_dir).context(
            "--all replays the whole spool, which only works while no collector uses it",
        )?)
    } else {
        None
    };
    let mut targets: Vec<PathBuf> = if names.is_empty() {
        deadletter::list(dead_dir)?
            .into_iter()
            .map(|d| d.path)
            .collect()
    } else {
        names
            .iter()
            .map(|n| deadletter::find(dead_dir, n).map(|d| d.path))
            .collect::<Result<_>>()?
    };
    if all {
        targets.extend(batches(spool_dir)?);
    }
    let placer = Placer::new(
        SinkConfig {
            concurrency: 1,
            ttl: timeout,
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            max_partitions_per_insert: partitions_setting(ch.retention_days),
            bisect_budget: 256,
        },
        crate::chhttp::InsertClient::new(&ch, Duration::from_secs(10), timeout),
        ch.client(),
        Arc::new(Metrics::new()),
        dead_dir.to_path_buf(),
    );
    let stop = CancellationToken::new();
    let mut failed = 0;
    for path in targets {
        // Left by a collector that stopped (we hold the spool's lock, so it is gone): its
        // torn tail, never acknowledged, is cut and it is sealed, as a collector's start does.
        let path = if path.extension().is_some_and(|e| e == "open") {
            match spool::recover_open(&path)? {
                Some(sealed) => sealed,
                None => continue,
            }
        } else {
            path
        };
        let seg = Segment::from_path(path.clone())?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        match placer.place(&seg, &stop).await {
            Placed::Inserted { spans } => {
                remove_replayed(&path)?;
                println!("{name}: {spans} spans inserted");
            }
            Placed::SetAside {
                landed,
                dead,
                dead_path,
            } => {
                if dead_path != path {
                    remove_replayed(&path)?;
                }
                println!(
                    "{name}: {landed} spans inserted, {dead} still refused (in {})",
                    dead_path.display()
                );
                failed += 1;
            }
            Placed::NotDelivered { error } => {
                println!("{name}: not delivered, left in place: {error}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} segments not (fully) replayed");
    }
    Ok(())
}

fn remove_replayed(path: &Path) -> Result<()> {
    std::fs::remove_file(path).with_context(|| format!("removing {path:?}"))?;
    let _ = std::fs::remove_file(path.with_extension("json"));
    if let Some(dir) = path.parent() {
        let _ = spool::health::sync_dir(dir);
    }
    Ok(())
}
