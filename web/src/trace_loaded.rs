//! A trace as the trace page holds it once loaded (`Loaded`), whole or only its first rows
//! while a big answer downloads. Its own module so that the page (`trace_view.rs`) and its other
//! views (`trace_views.rs`) both take it from below instead of from each other.

use crate::trace_info::Summary;
use crate::waterfall::TraceModel;

/// A loaded trace and what the header needs of it (computed once, O(n)).
pub struct Loaded {
    pub m: TraceModel,
    pub summary: Summary,
    /// Spans below each span (what collapsing it hides).
    pub descendants: Vec<usize>,
    /// Only the first rows, drawn from the first bytes of a big answer while the rest
    /// downloads (`trace_prefix.rs`); replaced by the whole trace when it is in.
    pub partial: bool,
}

/// Rows drawn from the first bytes of a big answer (a screen or two).
const PREFIX_ROWS: usize = 400;

impl Loaded {
    /// The first rows of a big trace from the first bytes of its answer, at their final positions
    /// (the answer's start and duration are the whole trace's); figures not known yet are 0.
    pub fn from_prefix(buf: &[u8]) -> Option<Loaded> {
        let (head, rows) = crate::trace_prefix::parse_prefix(buf, PREFIX_ROWS)?;
        if rows.is_empty() {
            return None;
        }
        let rows = crate::waterfall::TraceRows {
            spans: rows,
            truncated: false,
        };
        let mut m = TraceModel::from_rows(rows, Vec::new());
        m.start_us = head.start_us;
        m.end_us = head.start_us + head.duration_us;
        // The critical path needs the whole tree.
        m.critical = vec![false; m.spans.len()];
        let summary = Summary {
            duration_us: head.duration_us,
            span_count: head.span_count as usize,
            error_count: head.error_count as usize,
            depth: 0,
            services: head.services.into_iter().map(|s| (s, 0)).collect(),
        };
        let descendants = vec![0; m.spans.len()];
        Some(Loaded {
            m,
            summary,
            descendants,
            partial: true,
        })
    }
}
