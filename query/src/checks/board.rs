//! The checks board: every rule's current state, which the evaluation loop (`server`) writes and
//! `/orrery/api/checks` reads; apart from `server` so that `history` and `alerts`, which it
//! calls, depend on it and not on `server`.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::outcome::{Outcome, Verdict};

/// One rule's current state.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct RuleState {
    pub rule: String,
    pub kind: &'static str,
    pub description: String,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    pub verdict: Verdict,
    /// Violated for at least the rule's `for:` (at once without one): what notices and alerts
    /// act on.
    pub firing: bool,
    /// When the verdict last changed (Unix ms).
    pub since_ms: i64,
    pub evaluated_at_ms: i64,
    pub outcome: Option<Outcome>,
    /// The last evaluation failed (the verdict is the one before it).
    pub error: Option<String>,
}

#[derive(Serialize, Debug, Clone, Default)]
pub struct Board {
    /// Whether this service evaluates rules (`--graph-rules`); false: an empty board.
    pub configured: bool,
    pub interval_ms: u64,
    pub evaluated_at_ms: i64,
    pub rules: Vec<RuleState>,
}

/// Shared by clones (the evaluation task writes, the API reads); `None` without `--graph-rules`.
#[derive(Clone, Default)]
pub struct Checks {
    inner: Arc<Mutex<Option<Board>>>,
}

impl std::fmt::Debug for Checks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Checks")
    }
}

impl Checks {
    pub fn snapshot(&self) -> Option<Board> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub(super) fn set(&self, b: Board) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = Some(b);
    }
}
