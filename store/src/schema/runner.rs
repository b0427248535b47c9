//! Runs the migrations against a server: the ledger, which versions are applied, scratch
//! tables per run, and verification of migrations that a concurrent run could undo.

use anyhow::{Context, Result, bail};

use super::SchemaParams;
use super::migrations::{ledger, migrations};

/// What `migrate` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MigrateReport {
    pub applied: Vec<u32>,
    pub already: Vec<u32>,
}

/// Brings the schema to the latest version. `client` must not be bound to a database that
/// may not exist yet.
pub async fn migrate(client: &clickhouse::Client, p: &SchemaParams) -> Result<MigrateReport> {
    p.validate()?;
    for stmt in ledger(p) {
        exec(client, &stmt).await?;
    }
    let done: Vec<u32> = client
        .query(&format!(
            "SELECT DISTINCT Version FROM {}.orrery_schema_migrations ORDER BY Version",
            p.database
        ))
        .fetch_all()
        .await
        .context("reading applied schema versions")?;
    let mut report = MigrateReport::default();
    for m in migrations() {
        if done.contains(&m.version) {
            report.already.push(m.version);
            continue;
        }
        tracing::info!(
            version = m.version,
            name = m.name,
            "applying schema migration"
        );
        let mut attempt = 1;
        loop {
            let run = scratch_suffix();
            for stmt in (m.statements)(p) {
                let stmt = match m.scratch {
                    Some(name) => stmt.replace(name, &format!("{name}_{run}")),
                    None => stmt,
                };
                exec(client, &stmt).await?;
            }
            let Some(verify) = m.verify else { break };
            let ok: u8 = client
                .query(&verify(p))
                .fetch_one()
                .await
                .with_context(|| format!("verifying schema version {}", m.version))?;
            if ok == 1 {
                break;
            }
            if attempt == 3 {
                bail!(
                    "schema version {} did not take effect after {attempt} attempts (another \
                     process migrating at the same time?): start again",
                    m.version
                );
            }
            tracing::warn!(
                version = m.version,
                attempt,
                "schema migration undone by a concurrent migrator: running it again"
            );
            attempt += 1;
        }
        client
            .query(&format!(
                "INSERT INTO {}.orrery_schema_migrations (Version, Name) VALUES (?, ?)",
                p.database
            ))
            .bind(m.version)
            .bind(m.name)
            .execute()
            .await
            .with_context(|| format!("recording schema version {}", m.version))?;
        report.applied.push(m.version);
    }
    Ok(report)
}

/// Unique per migration run in this and any other process: pid, time, a counter.
pub(crate) fn scratch_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}_{nanos}_{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    )
}

pub(crate) async fn exec(client: &clickhouse::Client, stmt: &str) -> Result<()> {
    client
        .query(stmt)
        .execute()
        .await
        .with_context(|| format!("executing DDL: {}", first_line(stmt)))
}

pub(crate) fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}
