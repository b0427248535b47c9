//! Prometheus metrics of the query service's limits (`GET /metrics` on the query port, behind
//! `--api-token` like the APIs): what an operator watches to see whether the limits bite —
//! requests shed, streams refused, queries stopped by the engine or killed, connections held.
//!
//! Counters are per process (one query service per process; tests that run several servers
//! in one process see their sum).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

pub static REQUESTS_SHED: AtomicU64 = AtomicU64::new(0);
pub static REQUEST_TIMEOUTS: AtomicU64 = AtomicU64::new(0);
pub static STREAMS_REFUSED: AtomicU64 = AtomicU64::new(0);
pub static QUERIES_KILLED: AtomicU64 = AtomicU64::new(0);
pub static AUTH_FAILURES: AtomicU64 = AtomicU64::new(0);
pub static CONNECTIONS_REFUSED: AtomicU64 = AtomicU64::new(0);
pub static CONNECTIONS_OPEN: AtomicU64 = AtomicU64::new(0);
pub static LIMIT_TIME: AtomicU64 = AtomicU64::new(0);
pub static LIMIT_MEMORY: AtomicU64 = AtomicU64::new(0);
pub static LIMIT_BUSY: AtomicU64 = AtomicU64::new(0);
// Live graph streams (`live.rs`): shapes being computed and their subscribers (gauges), one
// count per graph computation, events by kind, bytes handed to the connections, resyncs.
pub static LIVE_SHAPES: AtomicU64 = AtomicU64::new(0);
pub static LIVE_SUBSCRIBERS: AtomicU64 = AtomicU64::new(0);
pub static LIVE_SHAPES_REFUSED: AtomicU64 = AtomicU64::new(0);
pub static LIVE_COMPUTATIONS: AtomicU64 = AtomicU64::new(0);
pub static LIVE_EVENTS_GRAPH: AtomicU64 = AtomicU64::new(0);
pub static LIVE_EVENTS_DELTA: AtomicU64 = AtomicU64::new(0);
pub static LIVE_EVENTS_ERROR: AtomicU64 = AtomicU64::new(0);
pub static LIVE_BYTES_SENT: AtomicU64 = AtomicU64::new(0);
pub static LIVE_RESYNCS: AtomicU64 = AtomicU64::new(0);
pub static LIVE_DROPPED: AtomicU64 = AtomicU64::new(0);
// Graph reads (query/src/graph/fetch/tail_guess.rs): live tails read on a guess, kept (the
// markers said the guessed range) and dropped.
pub static TAIL_GUESSES_KEPT: AtomicU64 = AtomicU64::new(0);
pub static TAIL_GUESSES_DROPPED: AtomicU64 = AtomicU64::new(0);
// Rollup job (query/src/rollup.rs).
pub static ROLLUP_MINUTES: AtomicU64 = AtomicU64::new(0);
pub static ROLLUP_SLOTS: AtomicU64 = AtomicU64::new(0);
pub static ROLLUP_LATE_SPANS: AtomicU64 = AtomicU64::new(0);
pub static ROLLUP_FAILURES: AtomicU64 = AtomicU64::new(0);
// Hourly backfill (query/src/rollup/backfill.rs): hours of the retention older than the
// minute rollup's horizon, done and still to do (gauges), and hours it computed.
pub static BACKFILL_HOURS_DONE: AtomicU64 = AtomicU64::new(0);
pub static BACKFILL_HOURS_PENDING: AtomicU64 = AtomicU64::new(0);
pub static ROLLUP_BACKFILL_HOURS: AtomicU64 = AtomicU64::new(0);
/// Day rollups (schema v13): days merged, closed days current / waiting for a merge, and the
/// age of the newest current day's end.
pub static ROLLUP_DAYS: AtomicU64 = AtomicU64::new(0);
pub static DAYS_DONE: AtomicU64 = AtomicU64::new(0);
pub static DAYS_PENDING: AtomicU64 = AtomicU64::new(0);
pub static DAYS_LAG_S: AtomicU64 = AtomicU64::new(0);

pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Counts a query stopped by one of the engine's limits.
pub fn limit_hit(limit: &str) {
    match limit {
        "max_execution_time" => inc(&LIMIT_TIME),
        "max_memory_usage" => inc(&LIMIT_MEMORY),
        _ => inc(&LIMIT_BUSY),
    }
}

/// The exposition text; `in_flight` and `streams_open` come from the server's semaphores.
pub fn render(in_flight: u64, streams_open: u64) -> String {
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    metric(
        "orrery_query_requests_in_flight",
        "gauge",
        "Requests being handled (cap: --query-max-concurrent-requests).",
        &[("", in_flight)],
    );
    metric(
        "orrery_query_requests_shed_total",
        "counter",
        "Requests answered 503 at once because --query-max-concurrent-requests were in flight.",
        &[("", get(&REQUESTS_SHED))],
    );
    metric(
        "orrery_query_request_timeouts_total",
        "counter",
        "Requests answered 503 after --query-request-timeout.",
        &[("", get(&REQUEST_TIMEOUTS))],
    );
    metric(
        "orrery_query_streams_open",
        "gauge",
        "Live graph streams open (cap: --query-max-streams).",
        &[("", streams_open)],
    );
    metric(
        "orrery_query_streams_refused_total",
        "counter",
        "Live graph streams answered 429 because --query-max-streams were open.",
        &[("", get(&STREAMS_REFUSED))],
    );
    metric(
        "orrery_query_live_shapes",
        "gauge",
        "Distinct live maps computed, one computation per tick each (cap: --query-max-stream-shapes).",
        &[("", get(&LIVE_SHAPES))],
    );
    metric(
        "orrery_query_live_subscribers",
        "gauge",
        "Live streams subscribed to a shape (cap: --query-max-streams).",
        &[("", get(&LIVE_SUBSCRIBERS))],
    );
    metric(
        "orrery_query_live_shapes_refused_total",
        "counter",
        "Live streams answered 429 because --query-max-stream-shapes distinct maps were computed.",
        &[("", get(&LIVE_SHAPES_REFUSED))],
    );
    metric(
        "orrery_query_rollup_computed_total",
        "counter",
        "Service-graph rollup units computed from spans, by grain (minute; 10-second slot).",
        &[
            ("{grain=\"minute\"}", get(&ROLLUP_MINUTES)),
            ("{grain=\"slot\"}", get(&ROLLUP_SLOTS)),
        ],
    );
    metric(
        "orrery_query_rollup_backfill_hours_done",
        "gauge",
        "Hours between the first stored span and --graph-rollup-backfill that are rolled up (the hourly backfill's progress).",
        &[("", get(&BACKFILL_HOURS_DONE))],
    );
    metric(
        "orrery_query_rollup_backfill_hours_pending",
        "gauge",
        "Hours the hourly backfill still has to roll up (graphs leave them out past --graph-max-unrolled).",
        &[("", get(&BACKFILL_HOURS_PENDING))],
    );
    metric(
        "orrery_query_rollup_backfill_hours_total",
        "counter",
        "Hours the hourly backfill computed from spans (new, or recomputed after late spans).",
        &[("", get(&ROLLUP_BACKFILL_HOURS))],
    );
    metric(
        "orrery_query_rollup_days_done",
        "gauge",
        "Closed UTC days whose day rows are current (a long window reads each as one row per edge).",
        &[("", get(&DAYS_DONE))],
    );
    metric(
        "orrery_query_rollup_days_pending",
        "gauge",
        "Closed UTC days whose hours are all rolled up but whose day rows are missing or stale (read from hours until merged).",
        &[("", get(&DAYS_PENDING))],
    );
    metric(
        "orrery_query_rollup_days_lag_seconds",
        "gauge",
        "Seconds since the end of the newest UTC day with current day rows (normally under ~1.1 days; 0 before any).",
        &[("", get(&DAYS_LAG_S))],
    );
    metric(
        "orrery_query_rollup_days_total",
        "counter",
        "Day rollups merged from hour rows (new days, or days re-merged after late spans).",
        &[("", get(&ROLLUP_DAYS))],
    );
    metric(
        "orrery_query_rollup_late_spans_total",
        "counter",
        "Spans stored into minutes already rolled up (read from spans until recomputed).",
        &[("", get(&ROLLUP_LATE_SPANS))],
    );
    metric(
        "orrery_query_rollup_failures_total",
        "counter",
        "Rollup runs (minutes or slots) that failed; graphs then read more from spans.",
        &[("", get(&ROLLUP_FAILURES))],
    );
    metric(
        "orrery_query_live_computations_total",
        "counter",
        "Graph computations of live maps (one per shape and tick, however many subscribers).",
        &[("", get(&LIVE_COMPUTATIONS))],
    );
    metric(
        "orrery_query_live_events_total",
        "counter",
        "Live stream events sent, by kind (graph = full graph, delta = changes only).",
        &[
            ("{kind=\"graph\"}", get(&LIVE_EVENTS_GRAPH)),
            ("{kind=\"delta\"}", get(&LIVE_EVENTS_DELTA)),
            ("{kind=\"error\"}", get(&LIVE_EVENTS_ERROR)),
        ],
    );
    metric(
        "orrery_query_live_bytes_sent_total",
        "counter",
        "Bytes of live stream events handed to client connections.",
        &[("", get(&LIVE_BYTES_SENT))],
    );
    metric(
        "orrery_query_live_resyncs_total",
        "counter",
        "Full graphs sent to a subscriber that fell behind (missed a tick) instead of a delta.",
        &[("", get(&LIVE_RESYNCS))],
    );
    metric(
        "orrery_query_live_dropped_total",
        "counter",
        "Live streams dropped because their client took no event for --query-stream-stall.",
        &[("", get(&LIVE_DROPPED))],
    );
    metric(
        "orrery_query_graph_tail_guesses_total",
        "counter",
        "Graph live tails read beside the rollup markers on the last read's guess, by whether the markers confirmed the guess (kept) or not (dropped: read again after them).",
        &[
            ("{outcome=\"kept\"}", get(&TAIL_GUESSES_KEPT)),
            ("{outcome=\"dropped\"}", get(&TAIL_GUESSES_DROPPED)),
        ],
    );
    metric(
        "orrery_query_limit_hits_total",
        "counter",
        "ClickHouse queries stopped by a per-query limit, by limit.",
        &[
            ("{limit=\"max_execution_time\"}", get(&LIMIT_TIME)),
            ("{limit=\"max_memory_usage\"}", get(&LIMIT_MEMORY)),
            ("{limit=\"too_many_queries\"}", get(&LIMIT_BUSY)),
        ],
    );
    metric(
        "orrery_query_queries_killed_total",
        "counter",
        "Requests whose ClickHouse queries were killed because the request was dropped \
         (client gone, request timeout).",
        &[("", get(&QUERIES_KILLED))],
    );
    metric(
        "orrery_query_auth_failures_total",
        "counter",
        "API requests answered 401 (missing or wrong token).",
        &[("", get(&AUTH_FAILURES))],
    );
    metric(
        "orrery_query_connections_open",
        "gauge",
        "Client connections open (cap: --query-max-connections).",
        &[("", get(&CONNECTIONS_OPEN))],
    );
    metric(
        "orrery_query_connections_refused_total",
        "counter",
        "Client connections closed at once because --query-max-connections were open.",
        &[("", get(&CONNECTIONS_REFUSED))],
    );
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn exposition_has_help_type_and_labels() {
        super::limit_hit("max_memory_usage");
        let text = super::render(3, 2);
        assert!(text.contains(
            "# TYPE orrery_query_requests_in_flight gauge\norrery_query_requests_in_flight 3\n"
        ));
        assert!(text.contains("orrery_query_streams_open 2\n"));
        let line = text
            .lines()
            .find(|l| l.starts_with("orrery_query_limit_hits_total{limit=\"max_memory_usage\"}"))
            .unwrap();
        assert!(line.split(' ').nth(1).unwrap().parse::<u64>().unwrap() >= 1);
    }
}
