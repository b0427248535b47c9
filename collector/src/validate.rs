//! Which spans can be stored: the per-request limits and the one rule on ids and times that
//! both conversion paths ([`crate::transcode`] and [`crate::convert::sanitize`]) apply.

use std::time::Duration;

/// Per-request limits applied before a request is accepted.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Attribute string values (and bytes values) longer than this are cut, in bytes.
    pub max_attribute_len: usize,
    /// Requests with more spans are refused as a whole.
    pub max_spans_per_request: usize,
    /// Spans starting more than this after the collector's clock are rejected.
    pub max_span_future: Duration,
    /// Spans starting more than this before the collector's clock are rejected (the retention:
    /// ClickHouse would drop them at once); `None` (retention 0) sets no past bound.
    pub max_span_age: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_attribute_len: 16 * 1024,
            max_spans_per_request: 100_000,
            max_span_future: Duration::from_secs(3600),
            max_span_age: Some(Duration::from_secs(7 * 86_400)),
        }
    }
}

impl Limits {
    /// The start times accepted for a request received at `now_ns` (ns since the Unix epoch).
    pub fn window(&self, now_ns: u64) -> TimeWindow {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        TimeWindow {
            earliest: self
                .max_span_age
                .map_or(1, |age| now_ns.saturating_sub(nanos(age)).max(1)),
            // Never past i64::MAX: the stored DateTime64(9) is signed.
            latest: now_ns
                .saturating_add(nanos(self.max_span_future))
                .min(i64::MAX as u64),
            max_age: self.max_span_age,
            max_future: self.max_span_future,
        }
    }
}

/// The accepted range of span start times (inclusive, ns since the Unix epoch), fixed once per
/// request so that every span of a request is judged against the same clock reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    pub earliest: u64,
    pub latest: u64,
    /// The limits the window was made from, for messages (which must not depend on the
    /// clock reading: both conversion paths word a rejection identically).
    pub max_age: Option<Duration>,
    pub max_future: Duration,
}

/// Why a span was rejected (the `reason` label of `orrery_collector_spans_invalid_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// A trace, span, parent or link id of the wrong length or all zeroes.
    InvalidId,
    /// Start unset (0) or before the retention.
    TooOld,
    /// Start further in the future than `--max-span-future`.
    TooNew,
    /// End before start (a negative duration; an unset end is one).
    EndBeforeStart,
}

impl Reject {
    pub const ALL: [Reject; 4] = [
        Reject::InvalidId,
        Reject::TooOld,
        Reject::TooNew,
        Reject::EndBeforeStart,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reject::InvalidId => "invalid_id",
            Reject::TooOld => "too_old",
            Reject::TooNew => "too_far_in_future",
            Reject::EndBeforeStart => "end_before_start",
        }
    }
}

/// Why a span cannot be stored, if it cannot: the one rule both the fast path
/// ([`crate::transcode`]) and the general path ([`sanitize`]) apply.
///
/// Times: the start must lie in `window` (a start before the retention would be dropped by
/// ClickHouse at once, and one far in the future is a broken clock; both would also spread a
/// batch over arbitrarily many daily partitions). The end must not precede the start (an unset
/// end is 0, so it does): such a span is rejected, not clamped, because its duration is
/// unknown and a made-up 0 would distort latency. A zero duration is a valid instant.
pub(crate) fn problem<'a>(
    trace_id: &[u8],
    span_id: &[u8],
    parent_span_id: &[u8],
    links: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    start: u64,
    end: u64,
    window: TimeWindow,
) -> Option<(Reject, String)> {
    if let Some(p) = ids_problem(trace_id, span_id, parent_span_id, links) {
        return Some((Reject::InvalidId, p));
    }
    if start == 0 {
        return Some((
            Reject::TooOld,
            "start_time_unix_nano is unset (0)".to_string(),
        ));
    }
    if start < window.earliest {
        return Some((
            Reject::TooOld,
            format!(
                "start_time_unix_nano {start} is before the retention ({} before now)",
                humantime::format_duration(window.max_age.unwrap_or_default())
            ),
        ));
    }
    if start > window.latest {
        return Some((
            Reject::TooNew,
            format!(
                "start_time_unix_nano {start} is too far in the future (more than {} after now, --ingest-max-span-future)",
                humantime::format_duration(window.max_future)
            ),
        ));
    }
    if end < start {
        return Some((
            Reject::EndBeforeStart,
            format!("end_time_unix_nano {end} is before start_time_unix_nano {start}"),
        ));
    }
    None
}

/// Nanoseconds since the Unix epoch by the collector's clock.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Why a span's ids (its own, its parent's, its links') make it unstorable, if they do.
fn ids_problem<'a>(
    trace_id: &[u8],
    span_id: &[u8],
    parent_span_id: &[u8],
    links: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Option<String> {
    if let Some(p) = id_problem("trace_id", trace_id, 16) {
        return Some(p);
    }
    if let Some(p) = id_problem("span_id", span_id, 8) {
        return Some(p);
    }
    if !parent_span_id.is_empty() && parent_span_id.len() != 8 {
        return Some(format!(
            "parent_span_id must be empty or 8 bytes, got {} bytes",
            parent_span_id.len()
        ));
    }
    for (li, (trace, span)) in links.enumerate() {
        if let Some(p) =
            id_problem("trace_id", trace, 16).or_else(|| id_problem("span_id", span, 8))
        {
            return Some(format!("links[{li}]: {p}"));
        }
    }
    None
}

fn id_problem(name: &str, id: &[u8], len: usize) -> Option<String> {
    if id.len() != len {
        Some(format!(
            "{name} must be {len} bytes, got {} bytes",
            id.len()
        ))
    } else if id.iter().all(|b| *b == 0) {
        Some(format!("{name} must not be all zeroes"))
    } else {
        None
    }
}
