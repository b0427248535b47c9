//! Builders the web crate's unit tests share.

use crate::api::Span;

/// A span of `svc`/`name` under `parent` ("" = a root), starting at `start` µs for `dur` µs.
pub fn span(id: &str, parent: &str, svc: &str, name: &str, start: i64, dur: i64) -> Span {
    Span {
        span_id: id.into(),
        parent_span_id: parent.into(),
        service: svc.into(),
        name: name.into(),
        start_us: start,
        duration_us: dur,
        ..Default::default()
    }
}
