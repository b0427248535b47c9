//! Runs the migrations against a server: the ledger, which versions are applied, scratch
//! tables per run, and verification of migrations that a concurrent run could undo.

use anyhow::{Context, Result, bail};

use super::SchemaParams;
use super::baseline::fresh_statements;
use super::migrations::{Migration, latest_version, ledger, migrations};

/// What `migrate` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MigrateReport {
    pub applied: Vec<u32>,
    pub already: Vec<u32>,
    /// The database was empty and got the current schema directly (the baseline), not by
    /// replaying history; `applied` then lists every version.
    pub baseline: bool,
}

/// Brings the schema to the latest version: an empty database by the baseline (the current
/// schema created directly), any other by running the migrations it has not had yet. Refuses
/// a database at a version newer than this build knows. `client` must not be bound to a
/// database that may not exist yet.
pub async fn migrate(client: &clickhouse::Client, p: &SchemaParams) -> Result<MigrateReport> {
    run(client, p, latest_version(), true).await
}

/// Replays migrations 1..=`target` one by one, never the baseline: the schema a release whose
/// latest version was `target` made, which the upgrade tests start from.
pub async fn replay_to(
    client: &clickhouse::Client,
    p: &SchemaParams,
    target: u32,
) -> Result<MigrateReport> {
    run(client, p, target, false).await
}

async fn run(
    client: &clickhouse::Client,
    p: &SchemaParams,
    target: u32,
    baseline: bool,
) -> Result<MigrateReport> {
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
    let latest = latest_version();
    if let Some(&newest) = done.last()
        && newest > latest
    {
        bail!(
            "database {} is at schema version {newest}, newer than this build of Orrery knows              (its latest is {latest}): a newer Orrery release migrated it. Run that release or a              later one (schemas are never migrated down), or point this one at another database",
            p.database
        );
    }
    if baseline && done.is_empty() && only_ledger(client, p).await? {
        return apply_baseline(client, p).await;
    }
    let mut report = MigrateReport::default();
    for m in migrations().iter().filter(|m| m.version <= target) {
        if done.contains(&m.version) {
            report.already.push(m.version);
            continue;
        }
        tracing::info!(
            version = m.version,
            name = m.name,
            "applying schema migration"
        );
        apply(client, p, m).await?;
        record(client, p, &[m]).await?;
        report.applied.push(m.version);
    }
    Ok(report)
}

/// True when the database holds no table but the ledger: nothing made by an exporter, an
/// older release or a run that stopped half way, whose tables the migrations must bring up.
async fn only_ledger(client: &clickhouse::Client, p: &SchemaParams) -> Result<bool> {
    let others: u64 = client
        .query(
            "SELECT count() FROM system.tables WHERE database = ? \
             AND name != 'orrery_schema_migrations'",
        )
        .bind(&p.database)
        .fetch_one()
        .await
        .context("listing the database's tables")?;
    Ok(others == 0)
}

/// The baseline: every migration's fresh statements, then every version recorded at once.
/// A migration that has a check runs it here too: a migrator replaying history at the same
/// time (it found this run's first tables and took the database for a partial one) may have
/// created a table in an old shape first, which the migration itself then brings up.
async fn apply_baseline(client: &clickhouse::Client, p: &SchemaParams) -> Result<MigrateReport> {
    tracing::info!(
        database = %p.database,
        version = latest_version(),
        "empty database: creating the current schema directly (baseline)"
    );
    for m in migrations() {
        for stmt in fresh_statements(m, p) {
            exec(client, &stmt).await?;
        }
        if m.verify.is_some() && !verified(client, p, m).await? {
            tracing::warn!(
                version = m.version,
                "schema migration's result missing after the baseline (a concurrent migrator \
                 replaying history?): running the migration itself"
            );
            apply(client, p, m).await?;
        }
    }
    let all: Vec<&Migration> = migrations().iter().collect();
    record(client, p, &all).await?;
    Ok(MigrateReport {
        applied: all.iter().map(|m| m.version).collect(),
        already: Vec::new(),
        baseline: true,
    })
}

/// Runs migration `m`'s statements, again while its check says a concurrent run undid them.
async fn apply(client: &clickhouse::Client, p: &SchemaParams, m: &Migration) -> Result<()> {
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
        if verified(client, p, m).await? {
            return Ok(());
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
}

/// Whether `m` took effect, by its check (true when it has none).
async fn verified(client: &clickhouse::Client, p: &SchemaParams, m: &Migration) -> Result<bool> {
    let Some(verify) = m.verify else {
        return Ok(true);
    };
    let ok: u8 = client
        .query(&verify(p))
        .fetch_one()
        .await
        .with_context(|| format!("verifying schema version {}", m.version))?;
    Ok(ok == 1)
}

/// Records versions in the ledger (one insert).
async fn record(client: &clickhouse::Client, p: &SchemaParams, ms: &[&Migration]) -> Result<()> {
    let values = vec!["(?, ?)"; ms.len()].join(", ");
    let mut q = client.query(&format!(
        "INSERT INTO {}.orrery_schema_migrations (Version, Name) VALUES {values}",
        p.database
    ));
    for m in ms {
        q = q.bind(m.version).bind(m.name);
    }
    q.execute().await.with_context(|| {
        let versions: Vec<u32> = ms.iter().map(|m| m.version).collect();
        format!("recording schema versions {versions:?}")
    })
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
