//! One rollup grain merged into the next coarser one: the three `INSERT … SELECT`s that sum
//! the latest rows of the finer grain (edges, service-to-service edges, nodes) into rows of the
//! coarser one. Hours from minutes (`hours.rs`) and days from hours (`days.rs`) differ only in
//! the tables, the time columns and the bucket expression written here once per grain; the
//! markers each writes after (and how it chooses the source rows' versions) stay with them.

use anyhow::{Context, Result};

use super::Rollup;
use orrery_store::graph_rules as rules;

/// A coarser grain and the finer one it is merged from. Table names are literals (the deploy
/// test reads the `edges:`/`services:`/`nodes:` fields for the grants).
pub(super) struct Merge {
    /// Target tables.
    pub edges: &'static str,
    pub services: &'static str,
    pub nodes: &'static str,
    /// Their sources, one grain finer (service-to-service hours come from the region-split
    /// minute edges: there is no minute table without the split).
    pub edges_from: &'static str,
    pub services_from: &'static str,
    pub nodes_from: &'static str,
    /// The target's time column and the source's.
    pub col: &'static str,
    pub from_col: &'static str,
    /// The target unit (Unix seconds) of a source row: arithmetic on the Unix time, whole UTC
    /// units whatever the server's time zone (not `toStartOfHour`/`toStartOfDay`).
    pub unit_of: &'static str,
    /// "hours" or "days", for errors.
    pub what: &'static str,
}

pub(super) const HOURS: Merge = Merge {
    edges: "orrery_graph_edges_1h",
    services: "orrery_graph_services_1h",
    nodes: "orrery_graph_nodes_1h",
    edges_from: "orrery_graph_edges_1m",
    services_from: "orrery_graph_edges_1m",
    nodes_from: "orrery_graph_nodes_1m",
    col: "Hour",
    from_col: "Minute",
    unit_of: "intDiv(toUInt32(Minute), 3600) * 3600",
    what: "hours",
};

pub(super) const DAYS: Merge = Merge {
    edges: "orrery_graph_edges_1d",
    services: "orrery_graph_services_1d",
    nodes: "orrery_graph_nodes_1d",
    edges_from: "orrery_graph_edges_1h",
    services_from: "orrery_graph_services_1h",
    nodes_from: "orrery_graph_nodes_1h",
    col: "Day",
    from_col: "Hour",
    unit_of: "intDiv(toUInt32(Hour), 86400) * 86400",
    what: "days",
};

impl Merge {
    /// The three statements with what each fills. Source rows: `{from_col}` in
    /// `[{lo}, {hi})` (Unix seconds) whose `(unit, ComputedAt)` is one of `{pairs}` — the
    /// latest computation of each, chosen by the caller with the versions it records.
    fn statements(&self) -> [(String, &'static str); 3] {
        let (col, from) = (self.col, self.from_col);
        let filter = format!(
            "{from} >= toDateTime({{lo:UInt32}}) AND {from} < toDateTime({{hi:UInt32}})
    AND (toUInt32({from}), ComputedAt) IN {{pairs:Array(Tuple(UInt32, UInt64))}}"
        );
        let (values, merged) = (rules::value_columns(), rules::merged_count_columns());
        let at = format!("toDateTime({}) AS T, {{computed:UInt64}}", self.unit_of);
        [
            (
                format!(
                    "INSERT INTO {} ({col}, ComputedAt, Caller, Callee,
                        CallerRegion, CalleeRegion, CalleeKind, {values})
                     SELECT {at}, Caller, Callee, CallerRegion, CalleeRegion, CalleeKind, {merged}
                     FROM {} WHERE {filter}
                     GROUP BY T, Caller, Callee, CallerRegion, CalleeRegion, CalleeKind",
                    self.edges, self.edges_from
                ),
                "edges",
            ),
            (
                format!(
                    "INSERT INTO {} ({col}, ComputedAt, Caller, Callee,
                        CallerRegion, CalleeRegion, CalleeKind, {values})
                     SELECT {at}, Caller, Callee, any(CallerRegion), any(CalleeRegion),
                        CalleeKind, {merged}
                     FROM {} WHERE {filter}
                     GROUP BY T, Caller, Callee, CalleeKind",
                    self.services, self.services_from
                ),
                "service-to-service edges",
            ),
            (
                format!(
                    "INSERT INTO {} ({col}, ComputedAt, Service, Region, Instance, {values})
                     SELECT {at}, Service, Region, Instance, {merged}
                     FROM {} WHERE {filter}
                     GROUP BY T, Service, Region, Instance",
                    self.nodes, self.nodes_from
                ),
                "nodes",
            ),
        ]
    }
}

impl Rollup {
    /// Writes the coarser rows of `m` from the source rows `pairs` (unit, computation) within
    /// `[lo, hi)`, each statement stamped `computed`. The caller writes its markers after.
    pub(super) async fn merge_rows(
        &self,
        m: &Merge,
        (lo, hi): (u32, u32),
        pairs: &[(u32, u64)],
        computed: u64,
    ) -> Result<()> {
        for (sql, what) in m.statements() {
            self.client
                .query(&sql)
                .param("lo", lo)
                .param("hi", hi)
                .param("pairs", pairs)
                .param("computed", computed)
                .execute()
                .await
                .with_context(|| format!("rolling up {} of {what}", m.what))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_grain_fills_its_three_tables_from_the_finer_ones() {
        for (m, unit) in [(&HOURS, "Minute"), (&DAYS, "Hour")] {
            let sql = m.statements();
            for ((s, _), (to, from)) in sql.iter().zip([
                (m.edges, m.edges_from),
                (m.services, m.services_from),
                (m.nodes, m.nodes_from),
            ]) {
                assert!(s.contains(&format!("INSERT INTO {to} ({}, ", m.col)));
                assert!(s.contains(&format!("FROM {from} WHERE {unit} >= ")));
            }
        }
    }
}
