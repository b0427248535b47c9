//! The SQL that turns spans into calls now lives in one place, `orrery_store::graph_rules`
//! (the call view's DDL, call/edge/node rows, the error and virtual-callee rules, detail
//! reads). These names stay here so callers keep their imports while they move over.

pub use orrery_store::graph_rules::{
    CHILD_SKEW_NS, IS_CLIENT_OR_PRODUCER, IS_SERVER_OR_CONSUMER, REGION_EXPR, SPANS_PER_MINUTE_SQL,
    call_error_expr, call_rows_sql, edge_rows_sql, error_expr, merged_count_columns, minute_filter,
    node_rows_sql, value_columns,
};

#[cfg(test)]
mod tests {
    /// The call rows as they were before the rules moved to `graph_rules` (a copy of the old
    /// generator's output for the live filter), so the move changed no query; since then a
    /// pin, so any change is deliberate (session 5: the callee's region computed after the
    /// join, the virtual edges' `NOT IN` set only the range's client keys — same rows).
    #[test]
    fn call_rows_are_unchanged_by_the_move() {
        let sql = super::call_rows_sql(super::minute_filter::ALL);
        let old = include_str!("../tests/data/call_rows_before_graph_rules.sql");
        assert_eq!(sql, old.strip_suffix('\n').unwrap_or(old));
    }
}
