SELECT
    toStartOfMinute(toDateTime(c.Timestamp)) AS Minute,
    multiIf(c.ParentKey = 0, 'INTERNET', p.SpanKey != 0, p.ServiceName, '') AS Caller,
    c.ServiceName AS Callee,
    if(p.SpanKey != 0, p.Region, '') AS CallerRegion,
    arrayFirst(x -> x != '', arrayPushBack(arrayMap(k -> c.Resource[k], {region_attrs:Array(String)}), 'unknown')) AS CalleeRegion,
    multiIf(c.ParentKey = 0 OR p.SpanKey != 0, 'service', 'orphan') AS CalleeKind,
    c.Err AS Err,
    c.Duration AS Duration
FROM (
    SELECT ParentKey, ServiceName, Duration, Timestamp, Resource,
        toUInt8((StatusError = 1 OR (SpanKind IN ('Server', 'SPAN_KIND_SERVER') AND HttpStatus >= 500))) AS Err,
        SpanKind IN ('Server', 'Consumer', 'SPAN_KIND_SERVER', 'SPAN_KIND_CONSUMER') AS Entry,
        toInt64(toUnixTimestamp64Nano(Timestamp)) + toInt64(Duration) < {settled:Int64} AS Settled
    FROM orrery_span_calls
    WHERE Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp < fromUnixTimestamp64Nano({hi:Int64})
        
) AS c
ANY LEFT JOIN (
    SELECT SpanKey, ServiceName, arrayFirst(x -> x != '', arrayPushBack(arrayMap(k -> Resource[k], {region_attrs:Array(String)}), 'unknown')) AS Region
    FROM orrery_span_calls
    WHERE Timestamp >= fromUnixTimestamp64Nano({plo:Int64}) AND Timestamp < fromUnixTimestamp64Nano({chi:Int64})
        AND SpanKey IN (
            SELECT ParentKey FROM orrery_span_calls
            WHERE Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp < fromUnixTimestamp64Nano({hi:Int64})
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
    arrayFirst(x -> x != '', arrayPushBack(arrayMap(k -> Resource[k], {region_attrs:Array(String)}), 'unknown')) AS CallerRegion,
    '' AS CalleeRegion,
    splitByChar(':', toString(Virtual))[1] AS CalleeKind,
    toUInt8((StatusError = 1 OR HttpStatus >= 500)) AS Err,
    Duration
FROM orrery_span_calls
WHERE Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp < fromUnixTimestamp64Nano({hi:Int64})
    
    AND Virtual != ''
    AND toInt64(toUnixTimestamp64Nano(Timestamp)) + toInt64(Duration) < {settled:Int64}
    AND SpanKey NOT IN (
        SELECT ParentKey FROM orrery_span_calls
        WHERE Timestamp >= fromUnixTimestamp64Nano({lo:Int64} - 60000000000)
            AND Timestamp < fromUnixTimestamp64Nano({chi:Int64})
            AND ParentKey != 0
            AND ParentKey IN (
                SELECT SpanKey FROM orrery_span_calls
                WHERE Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp < fromUnixTimestamp64Nano({hi:Int64})
                    
                    AND SpanKind IN ('Client', 'Producer', 'SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER')
            )
    )
