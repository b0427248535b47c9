//! Checks (issue 16): SLO, regression, canary and conformity rules over the live service graph, for
//! deploy gates (`orrery check`). `rules` reads and validates a rules file (docs/checks.md);
//! `eval` turns the graph API's graphs into verdicts.

pub mod alerts;
pub mod board;
pub mod canary;
pub mod eval;
pub mod history;
pub mod outcome;
pub mod rules;
pub mod selector;
pub mod server;
pub mod stale;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_history;
#[cfg(test)]
mod tests_kinds;
