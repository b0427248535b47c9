//! The SQL that turns spans into calls: the heart of the service graph.
//!
//! A *call row* is one span that crosses a service boundary, classified as
//! - an edge `parent.service -> child.service` (the parent, looked up by a self-join on
//!   `(TraceId, ParentSpanId = SpanId)`, belongs to another service; any span kinds),
//! - an entry `INTERNET -> service` (a root server/consumer span),
//! - a virtual edge `service -> database:x | queue:x | external:x` (a client/producer span that
//!   has no child once it has settled),
//! - an orphan (`CalleeKind = 'orphan'`): a span whose parent never arrived, once settled.
//!
//! The join runs over whatever is in ClickHouse when the query runs, so it does not matter
//! which collector delivered which span, in which batch or order: both halves of a call are
//! matched as soon as both are stored. "Settled" means the span ended before `{settled}` (now
//! minus the grace period): only then is a missing parent or child taken as final.
//!
//! Every value comes in as a bound parameter; the only text spliced in is `minute_filter`, which
//! is one of this crate's constants.

use orrery_store::latency;

/// Quantiles kept in latency digests (p50, p95, p99).
pub const DIGEST: &str = "quantilesTDigest(0.5, 0.95, 0.99)";

/// The rollup columns after the group keys: counts, duration sum/min/max and the latency
/// histogram (`orrery_store::latency`), over rows with `Err`, `Duration` and a bucket column `B`.
fn count_columns() -> String {
    format!(
        "count() AS Requests, sum(Err) AS Errors, sum(Duration) AS DurationSumNs,
    min(Duration) AS DurationMinNs, max(Duration) AS DurationMaxNs,
    {}",
        latency::counts_sql("B")
    )
}

/// The same columns merged from rows that have them (hour rows from minute rows).
pub fn merged_count_columns() -> String {
    format!(
        "sum(Requests) AS Requests, sum(Errors) AS Errors, sum(DurationSumNs) AS DurationSumNs,
    min(DurationMinNs) AS DurationMinNs, max(DurationMaxNs) AS DurationMaxNs,
    {}",
        latency::merge_sql()
    )
}

/// Names of the rollup value columns, in table order.
pub fn value_columns() -> String {
    format!(
        "Requests, Errors, DurationSumNs, DurationMinNs, DurationMaxNs, {}",
        latency::columns_csv()
    )
}

/// Region of a row of `orrery_span_calls`: the first non-empty configured resource attribute
/// (kept in its `Resource` map), else `unknown`.
pub const REGION_EXPR: &str = "arrayFirst(x -> x != '', arrayPushBack(arrayMap(k -> Resource[k], {region_attrs:Array(String)}), 'unknown'))";

/// Kind spellings (current and `SPAN_KIND_*`).
pub const IS_SERVER_OR_CONSUMER: &str =
    "SpanKind IN ('Server', 'Consumer', 'SPAN_KIND_SERVER', 'SPAN_KIND_CONSUMER')";
pub const IS_CLIENT_OR_PRODUCER: &str =
    "SpanKind IN ('Client', 'Producer', 'SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER')";
const IS_SERVER: &str = "SpanKind IN ('Server', 'SPAN_KIND_SERVER')";

/// Error status, or an HTTP 5xx answered by this span (`server_only`: only server spans count
/// their HTTP status, as the callee is the one that failed).
pub fn error_expr(server_only: bool) -> String {
    let http = "toUInt16OrZero(if(SpanAttributes['http.response.status_code'] != '', SpanAttributes['http.response.status_code'], SpanAttributes['http.status_code'])) >= 500";
    if server_only {
        format!("(StatusCode IN ('Error', 'STATUS_CODE_ERROR') OR ({IS_SERVER} AND {http}))")
    } else {
        format!("(StatusCode IN ('Error', 'STATUS_CODE_ERROR') OR {http})")
    }
}

/// `error_expr` over `orrery_span_calls`, whose view keeps the status as `StatusError` and the
/// HTTP status as `HttpStatus`.
pub fn call_error_expr(server_only: bool) -> String {
    if server_only {
        format!("(StatusError = 1 OR ({IS_SERVER} AND HttpStatus >= 500))")
    } else {
        "(StatusError = 1 OR HttpStatus >= 500)".to_string()
    }
}

/// Minute filters the graph code may splice in (constants only).
pub mod minute_filter {
    /// Everything in `[lo, hi)` (the live part of a graph window).
    pub const ALL: &str = "";
    /// Only the minutes listed in `{minutes:Array(UInt32)}` (Unix seconds): a rollup batch.
    pub const LISTED: &str =
        "AND has({minutes:Array(UInt32)}, toUInt32(toStartOfMinute(toDateTime(Timestamp))))";
}

/// Virtual node id from a client/producer span's attributes: `kind:name`.
pub fn virtual_callee() -> &'static str {
    "concat(multiIf(dbs != '', 'database', msg != '', 'queue', 'external'), ':', multiIf(peer != '', peer, dbs != '', dbs, msg != '', msg, addr != '', addr, 'unknown'))"
}

/// A client span's children start after it does, give or take clock skew: the search for them
/// starts this much (ns) before the client spans' range rather than a whole parent lookback
/// before it (at 100k spans/s every minute of lookback is 6M more keys to read).
const CHILD_SKEW_NS: i64 = 60_000_000_000;

/// Call rows for children with `Timestamp` in `[lo, hi)` (ns), read from the time-ordered
/// `orrery_span_calls` (schema v4), where a span is `SpanKey = cityHash64(TraceId, SpanId)` and
/// its parent `ParentKey = cityHash64(TraceId, ParentSpanId)` (0 for a root). Columns: `Minute,
/// Caller, Callee, CallerRegion, CalleeRegion, CalleeKind, Err (UInt8), Duration (UInt64 ns)`.
///
/// Parameters: `lo, hi, plo (parent lookup start), chi (lookup end), settled` (Int64 ns) and
/// `region_attrs` (Array(String)).
pub fn call_rows_sql(minute_filter: &str) -> String {
    let err_server = call_error_expr(true);
    let err_any = call_error_expr(false);
    format!(
        "SELECT
    toStartOfMinute(toDateTime(c.Timestamp)) AS Minute,
    multiIf(c.ParentKey = 0, 'INTERNET', p.SpanKey != 0, p.ServiceName, '') AS Caller,
    c.ServiceName AS Callee,
    if(p.SpanKey != 0, p.Region, '') AS CallerRegion,
    c.Region AS CalleeRegion,
    multiIf(c.ParentKey = 0 OR p.SpanKey != 0, 'service', 'orphan') AS CalleeKind,
    c.Err AS Err,
    c.Duration AS Duration
FROM (
    SELECT ParentKey, ServiceName, Duration, Timestamp,
        {REGION_EXPR} AS Region,
        toUInt8({err_server}) AS Err,
        {IS_SERVER_OR_CONSUMER} AS Entry,
        toInt64(toUnixTimestamp64Nano(Timestamp)) + toInt64(Duration) < {{settled:Int64}} AS Settled
    FROM orrery_span_calls
    WHERE Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})
        {minute_filter}
) AS c
ANY LEFT JOIN (
    SELECT SpanKey, ServiceName, {REGION_EXPR} AS Region
    FROM orrery_span_calls
    WHERE Timestamp >= fromUnixTimestamp64Nano({{plo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{chi:Int64}})
        AND SpanKey IN (
            SELECT ParentKey FROM orrery_span_calls
            WHERE Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})
                AND ParentKey != 0
        )
) AS p ON c.ParentKey = p.SpanKey
WHERE (c.ParentKey = 0 AND c.Entry)
    OR (p.SpanKey != 0 AND p.ServiceName != c.ServiceName)
    OR (c.ParentKey != 0 AND p.SpanKey = 0 AND c.Settled)
UNION ALL
SELECT
    toStartOfMinute(toDateTime(Timestamp)) AS Minute,
    ServiceName AS Caller,
    toString(Virtual) AS Callee,
    {REGION_EXPR} AS CallerRegion,
    '' AS CalleeRegion,
    splitByChar(':', toString(Virtual))[1] AS CalleeKind,
    toUInt8({err_any}) AS Err,
    Duration
FROM orrery_span_calls
WHERE Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})
    {minute_filter}
    AND Virtual != ''
    AND toInt64(toUnixTimestamp64Nano(Timestamp)) + toInt64(Duration) < {{settled:Int64}}
    AND SpanKey NOT IN (
        SELECT ParentKey FROM orrery_span_calls
        WHERE Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}} - {CHILD_SKEW_NS})
            AND Timestamp < fromUnixTimestamp64Nano({{chi:Int64}})
            AND ParentKey != 0
    )",
    )
}

/// Aggregates call rows into edge rows (per minute). Columns: `Minute, Caller, Callee,
/// CallerRegion, CalleeRegion, CalleeKind` and then [`value_columns`].
pub fn edge_rows_sql(minute_filter: &str) -> String {
    format!(
        "SELECT Minute, Caller, Callee, CallerRegion, CalleeRegion, CalleeKind,
    {counts}
FROM (SELECT *, {index} AS B FROM ({calls}))
GROUP BY Minute, Caller, Callee, CallerRegion, CalleeRegion, CalleeKind",
        counts = count_columns(),
        index = latency::index_sql("Duration"),
        calls = call_rows_sql(minute_filter),
    )
}

/// Node rows (per minute): the calls each service served (its server/consumer spans), per
/// region and instance. Columns: `Minute, Service, Region, Instance` and then
/// [`value_columns`]. Parameters: `lo, hi, region_attrs`.
pub fn node_rows_sql(minute_filter: &str) -> String {
    format!(
        "SELECT Minute, Service, Region, Instance,
    {counts}
FROM (
    SELECT toStartOfMinute(toDateTime(Timestamp)) AS Minute, ServiceName AS Service,
        {REGION_EXPR} AS Region, Resource['service.instance.id'] AS Instance,
        toUInt8({err}) AS Err, Duration, {index} AS B
    FROM orrery_span_calls
    WHERE Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})
        {minute_filter}
        AND {IS_SERVER_OR_CONSUMER}
)
GROUP BY Minute, Service, Region, Instance",
        err = call_error_expr(true),
        counts = count_columns(),
        index = latency::index_sql("Duration"),
    )
}

/// Spans per minute in `[lo, hi)` (counted by a view on insert, schema v4): what the rollup
/// compares against its markers to notice late spans, without reading spans.
pub const SPANS_PER_MINUTE_SQL: &str = "SELECT Minute, sum(Spans) AS Spans
FROM orrery_span_minutes
WHERE Minute >= toDateTime(fromUnixTimestamp64Nano({lo:Int64})) AND Minute < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
GROUP BY Minute ORDER BY Minute";
