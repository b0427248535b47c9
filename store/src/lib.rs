//! Everything Orrery's processes share about ClickHouse: how to reach it ([`ClickHouseArgs`]),
//! the schema and its migrations ([`schema`]), the span row as stored ([`SpanRow`]), and the
//! embedded engine (chDB behind the ClickHouse HTTP interface) that `orrery all-in-one` runs
//! as a supervised child ([`embedded`]).
//!
//! Nothing here, nor in the collector or the query service, knows whether the URL points at
//! the embedded engine or at a real ClickHouse server or cluster.

pub mod auth;
pub mod computed_at;
pub mod config;
pub mod embedded;
pub mod graph_rules;
pub mod latency;
pub mod schema;
pub mod span;
pub mod testing;

pub use config::ClickHouseArgs;
pub use span::{SPANS_TABLE, SpanRow, TRACE_ID_TS_TABLE};
