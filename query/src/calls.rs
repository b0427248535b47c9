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

/// Quantiles kept in latency digests (p50, p95, p99).
pub const DIGEST: &str = "quantilesTDigest(0.5, 0.95, 0.99)";

/// Latency histogram upper bounds in milliseconds; one extra bucket holds the overflow.
pub const BUCKET_BOUNDS_MS: [f64; 14] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 30000.0,
];

/// `bucket bounds` as a ClickHouse array literal of nanoseconds.
fn bounds_ns_literal() -> String {
    let items: Vec<String> = BUCKET_BOUNDS_MS
        .iter()
        .map(|ms| format!("{}", (*ms * 1e6) as u64))
        .collect();
    format!("[{}]::Array(UInt64)", items.join(","))
}

/// The per-row histogram contribution: a one-hot array over the buckets.
pub fn bucket_expr(duration: &str) -> String {
    let n = BUCKET_BOUNDS_MS.len() + 1;
    format!(
        "arrayMap(i -> toUInt64(i = if(arrayFirstIndex(b -> {duration} <= b, {bounds}) = 0, {n}, arrayFirstIndex(b -> {duration} <= b, {bounds}))), range(1, {n1}))",
        bounds = bounds_ns_literal(),
        n1 = n + 1,
    )
}

/// Region of a span: the first non-empty configured resource attribute, else `unknown`.
pub const REGION_EXPR: &str = "if(arrayFirst(x -> x != '', arrayMap(k -> ResourceAttributes[k], {region_attrs:Array(String)})) = '', 'unknown', arrayFirst(x -> x != '', arrayMap(k -> ResourceAttributes[k], {region_attrs:Array(String)})))";

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

/// Minute filters the graph code may splice in (constants only).
pub mod minute_filter {
    /// Everything in `[lo, hi)` (the rollup job computes exactly one minute).
    pub const ALL: &str = "";
    /// Only the minutes listed in `{minutes:Array(UInt32)}` (Unix seconds): a rollup batch.
    pub const LISTED: &str =
        "AND has({minutes:Array(UInt32)}, toUInt32(toStartOfMinute(toDateTime(Timestamp))))";
    /// Only minutes the rollup has not covered (the live part of a graph query).
    pub const NOT_ROLLED: &str = "AND toStartOfMinute(toDateTime(Timestamp)) NOT IN (SELECT Minute FROM orrery_rollup_minutes WHERE Minute >= toStartOfMinute(toDateTime(fromUnixTimestamp64Nano({lo:Int64}))) AND Minute < toDateTime(fromUnixTimestamp64Nano({hi:Int64})))";
}

/// Virtual node id from a client/producer span's attributes: `kind:name`.
pub fn virtual_callee() -> &'static str {
    "concat(multiIf(dbs != '', 'database', msg != '', 'queue', 'external'), ':', multiIf(peer != '', peer, dbs != '', dbs, msg != '', msg, addr != '', addr, 'unknown'))"
}

/// Call rows for children with `Timestamp` in `[lo, hi)` (ns). Columns: `Minute, Caller, Callee,
/// CallerRegion, CalleeRegion, CalleeKind, Err (UInt8), Duration (UInt64 ns)`.
///
/// Parameters: `lo, hi, plo (parent lookup start), chi (lookup end), settled` (Int64 ns) and
/// `region_attrs` (Array(String)).
pub fn call_rows_sql(minute_filter: &str) -> String {
    let err_server = error_expr(true);
    let err_any = error_expr(false);
    format!(
        "SELECT
    toStartOfMinute(toDateTime(c.Timestamp)) AS Minute,
    multiIf(c.ParentSpanId = '', 'INTERNET', p.SpanId != '', p.ServiceName, '') AS Caller,
    c.ServiceName AS Callee,
    if(p.SpanId != '', p.Region, '') AS CallerRegion,
    c.Region AS CalleeRegion,
    multiIf(c.ParentSpanId = '' OR p.SpanId != '', 'service', 'orphan') AS CalleeKind,
    c.Err AS Err,
    c.Duration AS Duration
FROM (
    SELECT TraceId, SpanId, ParentSpanId, ServiceName, SpanKind, Duration, Timestamp,
        {REGION_EXPR} AS Region,
        toUInt8({err_server}) AS Err,
        {IS_SERVER_OR_CONSUMER} AS Entry,
        toInt64(toUnixTimestamp64Nano(Timestamp)) + toInt64(Duration) < {{settled:Int64}} AS Settled
    FROM otel_traces
    WHERE Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})
        {minute_filter}
) AS c
ANY LEFT JOIN (
    SELECT TraceId, SpanId, ServiceName, {REGION_EXPR} AS Region
    FROM otel_traces
    WHERE Timestamp >= fromUnixTimestamp64Nano({{plo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{chi:Int64}})
        AND SpanId IN (
            SELECT ParentSpanId FROM otel_traces
            WHERE Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})
                AND ParentSpanId != ''
        )
) AS p ON c.TraceId = p.TraceId AND c.ParentSpanId = p.SpanId
WHERE (c.ParentSpanId = '' AND c.Entry)
    OR (p.SpanId != '' AND p.ServiceName != c.ServiceName)
    OR (c.ParentSpanId != '' AND p.SpanId = '' AND c.Settled)
UNION ALL
SELECT
    toStartOfMinute(toDateTime(Timestamp)) AS Minute,
    ServiceName AS Caller,
    {callee} AS Callee,
    {REGION_EXPR} AS CallerRegion,
    '' AS CalleeRegion,
    multiIf(dbs != '', 'database', msg != '', 'queue', 'external') AS CalleeKind,
    toUInt8({err_any}) AS Err,
    Duration
FROM (
    SELECT Timestamp, TraceId, SpanId, ServiceName, SpanKind, Duration, StatusCode,
        SpanAttributes, ResourceAttributes,
        SpanAttributes['peer.service'] AS peer,
        if(SpanAttributes['db.system.name'] != '', SpanAttributes['db.system.name'], SpanAttributes['db.system']) AS dbs,
        SpanAttributes['messaging.system'] AS msg,
        multiIf(SpanAttributes['server.address'] != '', SpanAttributes['server.address'],
                SpanAttributes['net.peer.name'] != '', SpanAttributes['net.peer.name'],
                SpanAttributes['http.host']) AS addr
    FROM otel_traces
    WHERE Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})
        {minute_filter}
        AND {IS_CLIENT_OR_PRODUCER}
        AND toInt64(toUnixTimestamp64Nano(Timestamp)) + toInt64(Duration) < {{settled:Int64}}
        AND (TraceId, SpanId) NOT IN (
            SELECT TraceId, ParentSpanId FROM otel_traces
            WHERE Timestamp >= fromUnixTimestamp64Nano({{plo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{chi:Int64}})
                AND ParentSpanId != ''
        )
)",
        callee = virtual_callee(),
    )
}

/// Aggregates call rows into edge rows (per minute). Columns: `Minute, Caller, Callee,
/// CallerRegion, CalleeRegion, CalleeKind, Requests, Errors, DurationSumNs, LatencyDigest,
/// LatencyBuckets`.
pub fn edge_rows_sql(minute_filter: &str) -> String {
    format!(
        "SELECT Minute, Caller, Callee, CallerRegion, CalleeRegion, CalleeKind,
    count() AS Requests, sum(Err) AS Errors, sum(Duration) AS DurationSumNs,
    quantilesTDigestState(0.5, 0.95, 0.99)(Duration) AS LatencyDigest,
    sumForEach({buckets}) AS LatencyBuckets
FROM ({calls})
GROUP BY Minute, Caller, Callee, CallerRegion, CalleeRegion, CalleeKind",
        buckets = bucket_expr("Duration"),
        calls = call_rows_sql(minute_filter),
    )
}

/// Node rows (per minute): the calls each service served (its server/consumer spans), per
/// region and instance. Parameters: `lo, hi, region_attrs`.
pub fn node_rows_sql(minute_filter: &str) -> String {
    format!(
        "SELECT toStartOfMinute(toDateTime(Timestamp)) AS Minute, ServiceName AS Service,
    {REGION_EXPR} AS Region, ResourceAttributes['service.instance.id'] AS Instance,
    count() AS Requests, sum(toUInt8({err})) AS Errors, sum(Duration) AS DurationSumNs,
    quantilesTDigestState(0.5, 0.95, 0.99)(Duration) AS LatencyDigest,
    sumForEach({buckets}) AS LatencyBuckets
FROM otel_traces
WHERE Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})
    {minute_filter}
    AND {IS_SERVER_OR_CONSUMER}
GROUP BY Minute, Service, Region, Instance",
        err = error_expr(true),
        buckets = bucket_expr("Duration"),
    )
}

/// Spans per minute in `[lo, hi)`: what the rollup compares against its markers to notice late
/// spans.
pub const SPANS_PER_MINUTE_SQL: &str = "SELECT toStartOfMinute(toDateTime(Timestamp)) AS Minute, count() AS Spans
FROM otel_traces
WHERE Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp < fromUnixTimestamp64Nano({hi:Int64})
GROUP BY Minute ORDER BY Minute";
