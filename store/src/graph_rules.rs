//! The service graph's rules, written once: what a call, an entry, a virtual callee, an error
//! and an orphan or late span are, and every SQL fragment that applies them — the call view's
//! DDL (schema v4), the call rows the rollups and the live reads aggregate, the node rows, and
//! the rows edge and node detail read. The map, the detail panels, "what's wrong" and the
//! checks all read numbers made by these fragments, so they cannot disagree about a rule.
//!
//! A *call row* is one span that crosses a service boundary, classified as
//! - an edge `parent.service -> child.service` (the parent, looked up by a self-join on
//!   `(TraceId, ParentSpanId = SpanId)`, belongs to another service; any span kinds),
//! - an entry `INTERNET -> service` (a root server/consumer span),
//! - a virtual edge `service -> database:x | queue:x | external:x` (a client/producer span that
//!   has no child once it has settled; the callee is named from its attributes,
//!   [`VIRTUAL_CALLEE`]),
//! - an orphan (`CalleeKind = 'orphan'`): a span whose parent never arrived, once settled.
//!
//! An *error* is an error status in either stored spelling, or an HTTP status ≥ 500; on a
//! callee's row only a server span's HTTP status counts (the callee is the one that failed),
//! on a virtual edge the client span's does (nothing else saw the answer).
//!
//! A span is *settled* once it ended before `{settled}` (now minus the grace period): only then
//! is a missing parent (orphan) or child (virtual callee) taken as final. A *late* span is one
//! stored after the rollup computed its minute; the rollup notices it from the per-minute span
//! counts ([`SPANS_PER_MINUTE_SQL`]) and recomputes the minute.
//!
//! The join runs over whatever is in ClickHouse when the query runs, so it does not matter
//! which collector delivered which span, in which batch or order: both halves of a call are
//! matched as soon as both are stored.
//!
//! Every value comes in as a bound parameter; the only text spliced into these fragments is
//! this module's constants (minute filters) and, in the DDL, names the schema has validated.

use crate::latency;

/// The caller of entry calls: the world outside the traced services.
pub const INTERNET: &str = "INTERNET";

/// The `CalleeKind` of call rows and rollup rows (and node kinds of the same spelling).
pub mod kind {
    pub const SERVICE: &str = "service";
    pub const DATABASE: &str = "database";
    pub const QUEUE: &str = "queue";
    pub const EXTERNAL: &str = "external";
    /// A span whose parent never arrived: counted for data quality, never drawn.
    pub const ORPHAN: &str = "orphan";
    /// Kinds of virtual callees, in the order [`super::VIRTUAL_CALLEE`] tries them.
    pub const VIRTUAL: [&str; 3] = [DATABASE, QUEUE, EXTERNAL];
}

/// Rollup-row filters over `CalleeKind`.
pub const IS_ORPHAN_ROW: &str = "CalleeKind = 'orphan'";
pub const IS_VIRTUAL_ROW: &str = "CalleeKind IN ('database', 'queue', 'external')";

/// Span kinds that serve a call (both spellings: current and `SPAN_KIND_*`).
pub const SERVER_OR_CONSUMER_KINDS: [&str; 4] = [
    "Server",
    "Consumer",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CONSUMER",
];
/// Span kinds that make a call.
pub const CLIENT_OR_PRODUCER_KINDS: [&str; 4] = [
    "Client",
    "Producer",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
];
/// `SpanKind IN` [`SERVER_OR_CONSUMER_KINDS`].
pub const IS_SERVER_OR_CONSUMER: &str =
    "SpanKind IN ('Server', 'Consumer', 'SPAN_KIND_SERVER', 'SPAN_KIND_CONSUMER')";
/// `SpanKind IN` [`CLIENT_OR_PRODUCER_KINDS`].
pub const IS_CLIENT_OR_PRODUCER: &str =
    "SpanKind IN ('Client', 'Producer', 'SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER')";
/// Only server spans count their HTTP status as their own failure.
pub const IS_SERVER: &str = "SpanKind IN ('Server', 'SPAN_KIND_SERVER')";

/// The error status, in every stored spelling (`crate::span::status::ERROR_SPELLINGS`).
pub const IS_ERROR_STATUS: &str = "StatusCode IN ('Error', 'STATUS_CODE_ERROR')";
/// The HTTP status a span answered with (the current attribute, else the old one), 0 if none.
pub const HTTP_STATUS: &str = "toUInt16OrZero(if(SpanAttributes['http.response.status_code'] != '', SpanAttributes['http.response.status_code'], SpanAttributes['http.status_code']))";
/// HTTP statuses from this one on are errors.
pub const HTTP_ERROR_MIN: u16 = 500;

/// Error rule over `otel_traces` rows (`server_only`: only server spans count their HTTP
/// status, as on a callee's row).
pub fn error_expr(server_only: bool) -> String {
    let http = format!("{HTTP_STATUS} >= {HTTP_ERROR_MIN}");
    if server_only {
        format!("({IS_ERROR_STATUS} OR ({IS_SERVER} AND {http}))")
    } else {
        format!("({IS_ERROR_STATUS} OR {http})")
    }
}

/// [`error_expr`] over `orrery_span_calls`, whose view keeps the status as `StatusError` and
/// the HTTP status as `HttpStatus`.
pub fn call_error_expr(server_only: bool) -> String {
    if server_only {
        format!("(StatusError = 1 OR ({IS_SERVER} AND HttpStatus >= {HTTP_ERROR_MIN}))")
    } else {
        format!("(StatusError = 1 OR HttpStatus >= {HTTP_ERROR_MIN})")
    }
}

/// The span attributes a virtual callee is named from, as aliases `peer, dbs, msg, addr` (a
/// select list over `otel_traces`; the whitespace is the call view's).
pub const VIRTUAL_ATTRS: &str = "SpanAttributes['peer.service'] AS peer,
        if(SpanAttributes['db.system.name'] != '', SpanAttributes['db.system.name'], SpanAttributes['db.system']) AS dbs,
        SpanAttributes['messaging.system'] AS msg,
        multiIf(SpanAttributes['server.address'] != '', SpanAttributes['server.address'],
                SpanAttributes['net.peer.name'] != '', SpanAttributes['net.peer.name'],
                SpanAttributes['http.host']) AS addr";

/// A client/producer span's virtual callee `kind:name` over [`VIRTUAL_ATTRS`]: a database
/// (`db.system`), else a queue (`messaging.system`), else external; named by `peer.service`,
/// else the system, else the server address, else `unknown`.
pub const VIRTUAL_CALLEE: &str = "concat(multiIf(dbs != '', 'database', msg != '', 'queue', 'external'), ':',
            multiIf(peer != '', peer, dbs != '', dbs, msg != '', msg, addr != '', addr, 'unknown'))";

/// The `orrery_span_calls` materialized view (schema v4): `mv` reads `spans` and writes
/// `calls` (all already qualified or local names as the schema resolved them), `oc` the
/// `ON CLUSTER` clause or empty, `keys` the quoted resource keys kept. Released DDL: the text
/// must stay byte-identical (`released_call_view_is_byte_identical`).
pub fn call_view_ddl(db: &str, mv: &str, oc: &str, calls: &str, spans: &str, keys: &str) -> String {
    format!(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{mv}{oc} TO {db}.{calls}
AS SELECT
    Timestamp,
    cityHash64(TraceId, SpanId) AS SpanKey,
    if(ParentSpanId = '', 0, cityHash64(TraceId, ParentSpanId)) AS ParentKey,
    ServiceName,
    SpanKind,
    Duration,
    toUInt8({IS_ERROR_STATUS}) AS StatusError,
    {HTTP_STATUS} AS HttpStatus,
    if({IS_CLIENT_OR_PRODUCER},
        {VIRTUAL_CALLEE},
        '') AS Virtual,
    mapFilter((k, v) -> k IN ({keys}), ResourceAttributes) AS Resource
FROM (
    SELECT *,
        {VIRTUAL_ATTRS}
    FROM {db}.{spans}
)"
    )
}

/// Region of a row of `orrery_span_calls`: the first non-empty configured resource attribute
/// (kept in its `Resource` map), else `unknown`. Parameter: `region_attrs`.
pub const REGION_EXPR: &str = "arrayFirst(x -> x != '', arrayPushBack(arrayMap(k -> Resource[k], {region_attrs:Array(String)}), 'unknown'))";

/// A service's namespace on a row of `orrery_span_calls`: `k8s.namespace.name`, else
/// `service.namespace` (both kept in `Resource`), else empty.
pub const NAMESPACE_EXPR: &str = "if(Resource['k8s.namespace.name'] != '', Resource['k8s.namespace.name'], Resource['service.namespace'])";

/// The span ended before `{settled:Int64}` (ns): a missing parent or child is final.
pub const SETTLED: &str =
    "toInt64(toUnixTimestamp64Nano(Timestamp)) + toInt64(Duration) < {settled:Int64}";

/// Rows of `orrery_span_calls` with `Timestamp` in `[{lo}, {hi})` (ns).
const IN_WINDOW: &str = "Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp < fromUnixTimestamp64Nano({hi:Int64})";

/// Minute filters the graph code may splice in (constants only).
pub mod minute_filter {
    /// Everything in `[lo, hi)` (the live part of a graph window).
    pub const ALL: &str = "";
    /// Only the minutes listed in `{minutes:Array(UInt32)}` (Unix seconds): a rollup batch.
    pub const LISTED: &str =
        "AND has({minutes:Array(UInt32)}, toUInt32(toStartOfMinute(toDateTime(Timestamp))))";
}

/// A client span's children start after it does, give or take clock skew: the search for them
/// starts this much (ns) before the client spans' range rather than a whole parent lookback
/// before it (at 100k spans/s every minute of lookback is 6M more keys to read). Of the keys
/// read there only those naming one of the range's own client spans are kept (a small set,
/// the same answer): hashing every parent key of the search (~2M per read at 30k spans/s)
/// into the `NOT IN` set cost more than reading them.
pub const CHILD_SKEW_NS: i64 = 60_000_000_000;

/// Call rows for children with `Timestamp` in `[lo, hi)` (ns), read from the time-ordered
/// `orrery_span_calls` (schema v4), where a span is `SpanKey = cityHash64(TraceId, SpanId)` and
/// its parent `ParentKey = cityHash64(TraceId, ParentSpanId)` (0 for a root). Columns: `Minute,
/// Caller, Callee, CallerRegion, CalleeRegion, CalleeKind, Err (UInt8), Duration (UInt64 ns)`.
///
/// Parameters: `lo, hi, plo (parent lookup start), chi (lookup end), settled` (Int64 ns) and
/// `region_attrs` (Array(String)).
pub fn call_rows_sql(minute_filter: &str) -> String {
    call_rows(minute_filter, CallSource::Copy, Parents::Lookback)
}

/// How far before a live range's start a parent is looked up at the live edge
/// ([`live_call_rows_sql`]): a child whose parent started earlier than this is left to the
/// slot rollup (seconds later), which looks it up over the whole `--graph-parent-lookback`.
/// The live edge is the last 5–20 s (the slots close `--graph-grace` after they end), so 15 s
/// before it still finds the parent of every call of a request shorter than ~15 s, and reads
/// a quarter of the keys a minute did (every key of the range is read: the copy is ordered by
/// time, keys are hashes).
pub const LIVE_PARENT_NEAR_NS: i64 = 15_000_000_000;

/// Where a child's parent is looked up, and what an unresolved child is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parents {
    /// Over `[plo, chi)` (the parent lookback both sides); a settled child without a parent
    /// there is an orphan. What the rollups use: exact.
    Lookback,
    /// Over `[lo - LIVE_PARENT_NEAR_NS, chi)` only; a child without a parent there is not
    /// counted at all (no edge, no orphan), since its parent may be older or still running.
    Near,
}

/// [`call_rows_sql`] for the live tail of a window (spans the 10-second slots have not rolled
/// up yet), with the parent looked up only [`LIVE_PARENT_NEAR_NS`] before the range. The
/// parent lookup reads every span key of its range (`orrery_span_calls` is ordered by time,
/// keys are hashes), so the whole lookback cost ~20 minutes of keys per live read under
/// continuous ingest (18M at 30k spans/s); this reads ~1 minute. A found parent is the
/// parent (same key), so no call ever gets a wrong caller; calls whose parent is older than
/// the near range, or not stored yet, and orphans are left out of the live tail and counted
/// by the slot rollup a few seconds later (full lookback, exact). Same columns and parameters
/// as [`call_rows_sql`] (`plo` is not used).
pub fn live_call_rows_sql() -> String {
    call_rows(minute_filter::ALL, CallSource::Copy, Parents::Near)
}

/// Where call rows are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallSource {
    /// The call copy `orrery_span_calls` (time-ordered, narrow): what the rollups and the live
    /// part read. It expires after 49 hours (schema v11).
    Copy,
    /// `otel_traces` through [`spans_as_calls_sql`]: the same rows for any time in the
    /// retention, at the cost of reading the spans' wide columns (for an hourly backfill older
    /// than the copy).
    Spans,
}

impl CallSource {
    fn table(self) -> String {
        match self {
            CallSource::Copy => "orrery_span_calls".into(),
            CallSource::Spans => format!("(\n{}\n)", spans_as_calls_sql()),
        }
    }
}

/// `otel_traces` as rows of `orrery_span_calls`: the columns the call view (v4) writes, made by
/// the same expressions, so rules over either give the same rows. Every use filters on
/// `Timestamp`, which ClickHouse pushes down into this subquery.
pub fn spans_as_calls_sql() -> String {
    let keys = crate::schema::CALL_RESOURCE_KEYS
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT Timestamp,
        cityHash64(TraceId, SpanId) AS SpanKey,
        if(ParentSpanId = '', 0, cityHash64(TraceId, ParentSpanId)) AS ParentKey,
        ServiceName, SpanKind, Duration,
        toUInt8({IS_ERROR_STATUS}) AS StatusError,
        {HTTP_STATUS} AS HttpStatus,
        if({IS_CLIENT_OR_PRODUCER}, {VIRTUAL_CALLEE}, '') AS Virtual,
        mapFilter((k, v) -> k IN ({keys}), ResourceAttributes) AS Resource
    FROM (
        SELECT Timestamp, TraceId, SpanId, ParentSpanId, ServiceName, SpanKind, Duration,
            StatusCode, SpanAttributes, ResourceAttributes,
            {VIRTUAL_ATTRS}
        FROM otel_traces
    )"
    )
}

fn call_rows(minute_filter: &str, source: CallSource, parents: Parents) -> String {
    call_branches(minute_filter, source, parents, RegionCols::Read).join("\nUNION ALL\n")
}

/// Whether call rows carry the caller's and callee's regions (`CallerRegion`, `CalleeRegion`)
/// or leave them empty: a reader that does not group or filter by region (the service-level
/// map's live part) takes the empty form, whose SQL has no region expression to plan (each a
/// lambda over the `Resource` map: ~5 ms of engine planning per live read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionCols {
    Read,
    Empty,
}

/// The two branches of [`call_rows_sql`] apart — calls found by the parent join (entries,
/// cross-service calls, orphans) and virtual edges — with the same columns, so a reader can
/// aggregate each where it is read instead of over their `UNION ALL` (one nesting level less
/// to plan: a live read's cost is mostly its planning, docs/decisions.md).
pub fn call_row_branches(minute_filter: &str, regions: RegionCols) -> [String; 2] {
    call_branches(minute_filter, CallSource::Copy, Parents::Lookback, regions)
}

/// [`live_call_rows_sql`]'s two branches apart (see [`call_row_branches`]).
pub fn live_call_row_branches(regions: RegionCols) -> [String; 2] {
    call_branches(minute_filter::ALL, CallSource::Copy, Parents::Near, regions)
}

fn call_branches(
    minute_filter: &str,
    source: CallSource,
    parents: Parents,
    regions: RegionCols,
) -> [String; 2] {
    let calls = source.table();
    let (parent_lo, orphans) = match parents {
        Parents::Lookback => (
            "{plo:Int64}".to_string(),
            "\n    OR (c.ParentKey != 0 AND p.SpanKey = 0 AND c.Settled)",
        ),
        Parents::Near => (format!("{{lo:Int64}} - {LIVE_PARENT_NEAR_NS}"), ""),
    };
    // Only a settled client can be a virtual edge, so the child search needs only settled
    // clients' keys (the same verdict for every candidate). At the live edge the last grace of
    // the tail is unsettled: a smaller set to build and probe (~125 → ~110 ms of engine CPU
    // for the virtual branch of an 11 s tail at 30k spans/s). The rollups' ranges are all but
    // settled when computed, so their SQL is left as it was.
    let settled_clients = match parents {
        Parents::Lookback => String::new(),
        Parents::Near => format!("\n                    AND {SETTLED}"),
    };
    let err_server = call_error_expr(true);
    let err_any = call_error_expr(false);
    let (service, orphan) = (kind::SERVICE, kind::ORPHAN);
    // The callee's region only for the rows kept (entries and calls from another service,
    // about half a range's spans): a map lookup per row is most of what reading a row costs.
    let (callee_region, c_resource, parent_region, caller_region, virtual_caller_region) =
        match regions {
            RegionCols::Read => (
                REGION_EXPR.replace("Resource[", "c.Resource["),
                ", Resource",
                format!(", {REGION_EXPR} AS Region"),
                "if(p.SpanKey != 0, p.Region, '')",
                REGION_EXPR.to_string(),
            ),
            RegionCols::Empty => ("''".to_string(), "", String::new(), "''", "''".to_string()),
        };
    let joined = format!(
        "SELECT
    toStartOfMinute(toDateTime(c.Timestamp)) AS Minute,
    multiIf(c.ParentKey = 0, '{INTERNET}', p.SpanKey != 0, p.ServiceName, '') AS Caller,
    c.ServiceName AS Callee,
    {caller_region} AS CallerRegion,
    {callee_region} AS CalleeRegion,
    multiIf(c.ParentKey = 0 OR p.SpanKey != 0, '{service}', '{orphan}') AS CalleeKind,
    c.Err AS Err,
    c.Duration AS Duration
FROM (
    SELECT ParentKey, ServiceName, Duration, Timestamp{c_resource},
        toUInt8({err_server}) AS Err,
        {IS_SERVER_OR_CONSUMER} AS Entry,
        {SETTLED} AS Settled
    FROM {calls}
    WHERE {IN_WINDOW}
        {minute_filter}
) AS c
ANY LEFT JOIN (
    SELECT SpanKey, ServiceName{parent_region}
    FROM {calls}
    WHERE Timestamp >= fromUnixTimestamp64Nano({parent_lo}) AND Timestamp < fromUnixTimestamp64Nano({{chi:Int64}})
        AND SpanKey IN (
            SELECT ParentKey FROM {calls}
            WHERE {IN_WINDOW}
                AND ParentKey != 0
        )
) AS p ON c.ParentKey = p.SpanKey
WHERE (c.ParentKey = 0 AND c.Entry)
    OR (p.SpanKey != 0 AND p.ServiceName != c.ServiceName){orphans}"
    );
    let virtuals = format!(
        "SELECT
    toStartOfMinute(toDateTime(Timestamp)) AS Minute,
    ServiceName AS Caller,
    toString(Virtual) AS Callee,
    {virtual_caller_region} AS CallerRegion,
    '' AS CalleeRegion,
    splitByChar(':', toString(Virtual))[1] AS CalleeKind,
    toUInt8({err_any}) AS Err,
    Duration
FROM {calls}
WHERE {IN_WINDOW}
    {minute_filter}
    AND Virtual != ''
    AND {SETTLED}
    AND SpanKey NOT IN (
        SELECT ParentKey FROM {calls}
        WHERE Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}} - {CHILD_SKEW_NS})
            AND Timestamp < fromUnixTimestamp64Nano({{chi:Int64}})
            AND ParentKey != 0
            AND ParentKey IN (
                SELECT SpanKey FROM {calls}
                WHERE {IN_WINDOW}
                    {minute_filter}
                    AND {IS_CLIENT_OR_PRODUCER}{settled_clients}
            )
    )",
    );
    [joined, virtuals]
}

/// The rollup columns after the group keys: counts, duration sum/min/max and the latency
/// histogram (`crate::latency`), over rows with `Err`, `Duration` and a bucket column `B`.
pub fn count_columns() -> String {
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

/// Aggregates call rows into edge rows (per minute). Columns: `Minute, Caller, Callee,
/// CallerRegion, CalleeRegion, CalleeKind` and then [`value_columns`].
pub fn edge_rows_sql(minute_filter: &str) -> String {
    edge_rows_from(minute_filter, CallSource::Copy)
}

/// [`edge_rows_sql`] over the given call source.
pub fn edge_rows_from(minute_filter: &str, source: CallSource) -> String {
    format!(
        "SELECT Minute, Caller, Callee, CallerRegion, CalleeRegion, CalleeKind,
    {counts}
FROM (SELECT *, {index} AS B FROM ({calls}))
GROUP BY Minute, Caller, Callee, CallerRegion, CalleeRegion, CalleeKind",
        counts = count_columns(),
        index = latency::index_sql("Duration"),
        calls = call_rows(minute_filter, source, Parents::Lookback),
    )
}

/// The calls a service served (its server/consumer spans) with `Timestamp` in `[lo, hi)`, one
/// row each: `Minute, Service, Region, Instance, Err, Duration, B` (B: latency bucket) and the
/// span's kept `Resource` (a reader keyed by service can take one region per group from it
/// instead of a map lookup per row). What node rows aggregate, rolled up or live. Parameters:
/// `lo, hi, region_attrs`.
pub fn served_rows_sql(minute_filter: &str) -> String {
    served_rows_from(minute_filter, CallSource::Copy)
}

/// [`served_rows_sql`] over the given call source.
pub fn served_rows_from(minute_filter: &str, source: CallSource) -> String {
    format!(
        "SELECT toStartOfMinute(toDateTime(Timestamp)) AS Minute, ServiceName AS Service,
        {REGION_EXPR} AS Region, Resource['service.instance.id'] AS Instance,
        toUInt8({err}) AS Err, Duration, {index} AS B, Resource
    FROM {calls}
    WHERE {IN_WINDOW}
        {minute_filter}
        AND {IS_SERVER_OR_CONSUMER}",
        err = call_error_expr(true),
        index = latency::index_sql("Duration"),
        calls = source.table(),
    )
}

/// Node rows (per minute): [`served_rows_sql`] per service, region and instance. Columns:
/// `Minute, Service, Region, Instance` and then [`value_columns`].
pub fn node_rows_sql(minute_filter: &str) -> String {
    node_rows_from(minute_filter, CallSource::Copy)
}

/// [`node_rows_sql`] over the given call source.
pub fn node_rows_from(minute_filter: &str, source: CallSource) -> String {
    format!(
        "SELECT Minute, Service, Region, Instance,
    {counts}
FROM (
    {served}
)
GROUP BY Minute, Service, Region, Instance",
        counts = count_columns(),
        served = served_rows_from(minute_filter, source),
    )
}

/// Grouping expressions `(source, target)` that turn service-level edge rows (rolled up or
/// call rows) into region-level ones: services become `region:<name>`, INTERNET and virtual
/// callees stay, an orphan's caller is unknown (empty).
pub const REGION_EDGE_ENDS: (&str, &str) = (
    "multiIf(Caller = 'INTERNET', 'INTERNET', CalleeKind = 'orphan', '', concat('region:', CallerRegion))",
    "if(CalleeKind IN ('service', 'orphan'), concat('region:', CalleeRegion), Callee)",
);

/// Spans per minute in `[lo, hi)` (counted by a view on insert, schema v4): what the rollup
/// compares against its markers to notice late spans, without reading spans.
pub const SPANS_PER_MINUTE_SQL: &str = "SELECT Minute, sum(Spans) AS Spans
FROM orrery_span_minutes
WHERE Minute >= toDateTime(fromUnixTimestamp64Nano({lo:Int64})) AND Minute < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
GROUP BY Minute ORDER BY Minute";

/// The three shapes of an edge, each with its own rule for which spans are its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeShape {
    /// `INTERNET -> service`: the service's root server/consumer spans.
    Entry,
    /// `service -> service`: the callee's spans whose parent is a span of the caller.
    Service,
    /// `service -> database:x | queue:x | external:x`: the caller's settled client/producer
    /// spans naming that callee ([`VIRTUAL_CALLEE`]) that have no child.
    Virtual,
}

/// The spans that are the calls of one edge `{source:String} -> {target:String}`, read from
/// `otel_traces` by the same rules as [`call_rows_sql`] (so they are exactly the calls the
/// rollups counted), one row each: `TraceId, SpanId, SpanName, SpanKind, Timestamp,
/// Duration, Err`. `otel_traces` is ordered by `ServiceName` first, so both sides of the
/// join read only the edge's two services; and it keeps spans for the whole retention, while
/// `orrery_span_calls` keeps its copy only as long as the rollup can still need it
/// (schema v11), so edge detail of any window in the retention has its operations and
/// exemplars. Parameters as [`call_rows_sql`] (`lo, hi, plo, chi, settled`) plus `source,
/// target`.
pub fn edge_spans_sql(shape: EdgeShape) -> String {
    let cols = "TraceId, SpanId, SpanName, SpanKind, Timestamp, Duration";
    match shape {
        EdgeShape::Entry => format!(
            "SELECT {cols}, toUInt8({err}) AS Err
FROM otel_traces
WHERE ServiceName = {{target:String}} AND {IN_WINDOW}
    AND ParentSpanId = '' AND {IS_SERVER_OR_CONSUMER}",
            err = error_expr(true),
        ),
        EdgeShape::Service => format!(
            "SELECT c.TraceId AS TraceId, c.SpanId AS SpanId, c.SpanName AS SpanName,
    c.SpanKind AS SpanKind, c.Timestamp AS Timestamp, c.Duration AS Duration, c.Err AS Err
FROM (
    SELECT {cols}, ParentSpanId, toUInt8({err}) AS Err
    FROM otel_traces
    WHERE ServiceName = {{target:String}} AND {IN_WINDOW} AND ParentSpanId != ''
) AS c
ANY INNER JOIN (
    SELECT TraceId, SpanId
    FROM otel_traces
    WHERE ServiceName = {{source:String}}
        AND Timestamp >= fromUnixTimestamp64Nano({{plo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{chi:Int64}})
) AS p ON c.TraceId = p.TraceId AND c.ParentSpanId = p.SpanId
WHERE {{source:String}} != {{target:String}}",
            err = error_expr(true),
        ),
        EdgeShape::Virtual => format!(
            "SELECT {cols}, toUInt8({err}) AS Err
FROM (
    SELECT {cols}, StatusCode, SpanAttributes,
        {VIRTUAL_ATTRS}
    FROM otel_traces
    WHERE ServiceName = {{source:String}} AND {IN_WINDOW} AND {IS_CLIENT_OR_PRODUCER}
)
WHERE {VIRTUAL_CALLEE} = {{target:String}}
    AND {SETTLED}
    AND cityHash64(TraceId, SpanId) NOT IN (
        SELECT cityHash64(TraceId, ParentSpanId) FROM otel_traces
        WHERE Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}} - {CHILD_SKEW_NS})
            AND Timestamp < fromUnixTimestamp64Nano({{chi:Int64}})
            AND ParentSpanId != ''
    )",
            err = error_expr(false),
        ),
    }
}

/// Operations of one edge: its calls ([`edge_spans_sql`]) per operation and latency bucket
/// (`name, kind, bucket, requests, errors, duration_sum_ns, min_ns, max_ns`), so an
/// operation's quantiles come from the same histogram arithmetic as the edge's.
pub fn edge_operations_sql(shape: EdgeShape) -> String {
    format!(
        "SELECT toString(SpanName) AS name, toString(any(SpanKind)) AS kind, {index} AS bucket,
    count() AS requests, sum(Err) AS errors, sum(Duration) AS duration_sum_ns,
    min(Duration) AS min_ns, max(Duration) AS max_ns
FROM ({spans})
GROUP BY name, bucket",
        index = latency::index_sql("Duration"),
        spans = edge_spans_sql(shape),
    )
}

/// Operations of a service (all its spans, any kind) per operation and latency bucket, the
/// same columns as [`edge_operations_sql`]; errors by the callee's rule. Parameters: `service,
/// lo, hi`.
pub fn node_operations_sql() -> String {
    format!(
        "SELECT toString(SpanName) AS name, toString(any(SpanKind)) AS kind, {index} AS bucket,
    count() AS requests, sum(toUInt8({err})) AS errors, sum(Duration) AS duration_sum_ns,
    min(Duration) AS min_ns, max(Duration) AS max_ns
FROM otel_traces
WHERE ServiceName = {{service:String}}
    AND Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})
GROUP BY name, bucket",
        index = latency::index_sql("Duration"),
        err = error_expr(true),
    )
}

/// Exemplar calls of one edge: up to `n` slowest, latest failed and closest to
/// `{median:Int64}` (ns), each as `(trace id, span id, operation, start ns, duration ns, err)`
/// tuples, in one pass over the edge's calls ([`edge_spans_sql`]). Parameters as
/// [`edge_spans_sql`] plus `median`.
pub fn edge_exemplars_sql(shape: EdgeShape, n: usize) -> String {
    let call = "(TraceId, SpanId, toString(SpanName), toInt64(toUnixTimestamp64Nano(Timestamp)), Duration, Err)";
    format!(
        "SELECT
    arrayMap(x -> x.2, groupArraySorted({n})((-toInt64(Duration), {call}))) AS slowest,
    arrayMap(x -> x.2, groupArraySortedIf({n})((-toInt64(toUnixTimestamp64Nano(Timestamp)), {call}), Err = 1)) AS failed,
    arrayMap(x -> x.2, groupArraySorted({n})((abs(toInt64(Duration) - {{median:Int64}}), {call}))) AS typical
FROM ({spans})",
        spans = edge_spans_sql(shape),
    )
}

#[cfg(test)]
mod tests;
