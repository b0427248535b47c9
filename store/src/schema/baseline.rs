//! The squashed baseline: what a fresh install runs. Replaying every migration from version 1
//! would create the v2/v5 rollup tables only for v6 to drop them, build the trace-id lookup in
//! the exporter's first shape only for v7 to rebuild it, and then alter settings (v3, v8). The
//! baseline instead runs, for each migration in order, its [`Fresh`] statements: the current
//! shape of its tables, from the same DDL builders the migrations use (no second copy of any
//! CREATE), or nothing when a later migration drops or rebuilds what it made. Migrations since
//! the squash are `Fresh::Same`, so a new migration is written once and fresh installs run it
//! as is. `store/tests/schema_upgrade.rs` checks that the baseline and the full replay end in
//! the same tables, column for column and setting for setting.
//!
//! The runner takes the baseline only into an empty database (no table but the ledger): a
//! database holding tables made by the OpenTelemetry exporter, or by a run that stopped half
//! way, is brought up by replaying the migrations, whose statements are written for that.

use super::SchemaParams;
use super::migrations::{Fresh, Migration, ledger, migrations};

/// The statements a fresh install runs for migration `m`.
pub(super) fn fresh_statements(m: &Migration, p: &SchemaParams) -> Vec<String> {
    match m.fresh {
        Fresh::Same => (m.statements)(p),
        Fresh::Instead(statements) => statements(p),
        Fresh::Folded => Vec::new(),
    }
}

/// The whole baseline: the ledger, then every migration's fresh statements in order.
pub fn baseline_ddl(p: &SchemaParams) -> Vec<String> {
    let mut out = ledger(p);
    for m in migrations() {
        out.extend(fresh_statements(m, p));
    }
    out
}

/// The full DDL of a fresh install (the baseline: the ledger and the current schema created
/// directly), as `orrery migrate --print` shows it and `deploy/clickhouse/cluster-schema.sql`
/// ships it for the cluster variant.
pub fn full_ddl(p: &SchemaParams) -> Vec<String> {
    baseline_ddl(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn params(cluster: Option<&str>) -> SchemaParams {
        SchemaParams {
            database: "orrery".into(),
            retention_days: 7,
            cluster: cluster.map(String::from),
        }
    }

    /// `db.name` of every `CREATE`/`DROP` in `ddl`, as (created, dropped) in order.
    fn objects(ddl: &[String]) -> (Vec<String>, Vec<String>) {
        let (mut created, mut dropped) = (Vec::new(), Vec::new());
        for s in ddl {
            let words: Vec<&str> = s.split_whitespace().collect();
            let name = |at: usize| words[at].trim_end_matches('(').to_string();
            match words.as_slice() {
                ["CREATE", "TABLE", "IF", "NOT", "EXISTS", ..] => created.push(name(5)),
                ["CREATE", "MATERIALIZED", "VIEW", "IF", "NOT", "EXISTS", ..] => {
                    created.push(name(6))
                }
                ["DROP", "TABLE", "IF", "EXISTS", ..] => dropped.push(name(4)),
                _ => {}
            }
        }
        (created, dropped)
    }

    /// On a cluster (which the embedded engine cannot run, so the upgrade tests cannot
    /// either), the baseline creates exactly the objects a full replay leaves, drops nothing
    /// and copies nothing; each is created once.
    #[test]
    fn cluster_baseline_creates_what_the_replay_leaves() {
        for cluster in [Some("orrery"), None] {
            let p = params(cluster);
            let replay = super::super::migrations::replay_ddl(&p);
            let (created, dropped) = objects(&replay);
            let mut left: BTreeSet<String> = BTreeSet::new();
            for s in &replay {
                let (c, d) = objects(std::slice::from_ref(s));
                left.extend(c);
                for t in d {
                    left.remove(&t);
                }
            }
            // v7's scratch table is dropped again after the exchange.
            assert!(created.len() > left.len() && !dropped.is_empty());
            let base = baseline_ddl(&p);
            let (base_created, base_dropped) = objects(&base);
            assert!(base_dropped.is_empty(), "{base_dropped:?}");
            assert!(!base.iter().any(|s| s.starts_with("INSERT")));
            assert!(!base.iter().any(|s| s.starts_with("EXCHANGE")));
            let once: BTreeSet<String> = base_created.iter().cloned().collect();
            assert_eq!(once.len(), base_created.len(), "{base_created:?}");
            assert_eq!(once, left, "cluster {cluster:?}");
        }
    }

    /// The baseline's statements are the builders' output: a fresh install's CREATE of a table
    /// whose shape never changed is the released migration's text verbatim.
    #[test]
    fn unchanged_tables_are_created_by_the_released_text() {
        let p = params(Some("orrery"));
        let base = baseline_ddl(&p);
        for m in migrations().iter().filter(|m| m.version >= 6) {
            for s in (m.statements)(&p)
                .into_iter()
                .filter(|s| s.starts_with("CREATE") && !s.contains("_v7"))
            {
                assert!(base.contains(&s), "v{}: {s}", m.version);
            }
        }
    }
}
