use super::*;
use crate::schema::{SchemaParams, full_ddl};

/// The call view exactly as schema v4 was released (with `{db}`, `{mv}`, `{oc}`,
/// `{calls}`, `{spans}`, `{keys}` to fill in). Existing installs have this view; a fresh
/// install must create the very same one, so this text never changes.
const RELEASED_V4_CALL_VIEW: &str = "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{mv}{oc} TO {db}.{calls}
AS SELECT
    Timestamp,
    cityHash64(TraceId, SpanId) AS SpanKey,
    if(ParentSpanId = '', 0, cityHash64(TraceId, ParentSpanId)) AS ParentKey,
    ServiceName,
    SpanKind,
    Duration,
    toUInt8(StatusCode IN ('Error', 'STATUS_CODE_ERROR')) AS StatusError,
    toUInt16OrZero(if(SpanAttributes['http.response.status_code'] != '', SpanAttributes['http.response.status_code'], SpanAttributes['http.status_code'])) AS HttpStatus,
    if(SpanKind IN ('Client', 'Producer', 'SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER'),
        concat(multiIf(dbs != '', 'database', msg != '', 'queue', 'external'), ':',
            multiIf(peer != '', peer, dbs != '', dbs, msg != '', msg, addr != '', addr, 'unknown')),
        '') AS Virtual,
    mapFilter((k, v) -> k IN ({keys}), ResourceAttributes) AS Resource
FROM (
    SELECT *,
        SpanAttributes['peer.service'] AS peer,
        if(SpanAttributes['db.system.name'] != '', SpanAttributes['db.system.name'], SpanAttributes['db.system']) AS dbs,
        SpanAttributes['messaging.system'] AS msg,
        multiIf(SpanAttributes['server.address'] != '', SpanAttributes['server.address'],
                SpanAttributes['net.peer.name'] != '', SpanAttributes['net.peer.name'],
                SpanAttributes['http.host']) AS addr
    FROM {db}.{spans}
)";

fn released(db: &str, mv: &str, oc: &str, calls: &str, spans: &str, keys: &str) -> String {
    RELEASED_V4_CALL_VIEW
        .replace("{db}", db)
        .replace("{mv}", mv)
        .replace("{oc}", oc)
        .replace("{calls}", calls)
        .replace("{spans}", spans)
        .replace("{keys}", keys)
}

fn keys() -> String {
    crate::schema::CALL_RESOURCE_KEYS
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn released_call_view_is_byte_identical() {
    let k = keys();
    assert_eq!(
        call_view_ddl(
            "orrery",
            "orrery_span_calls_mv",
            "",
            "orrery_span_calls",
            "otel_traces",
            &k
        ),
        released(
            "orrery",
            "orrery_span_calls_mv",
            "",
            "orrery_span_calls",
            "otel_traces",
            &k
        )
    );
    // And the schema's full DDL (single node and cluster) carries exactly that statement.
    for (cluster, suffix, oc) in [
        (None, "", String::new()),
        (Some("c1"), "_local", " ON CLUSTER c1".to_string()),
    ] {
        let p = SchemaParams {
            database: "orrery".into(),
            retention_days: 7,
            cluster: cluster.map(String::from),
        };
        let want = released(
            "orrery",
            &format!("orrery_span_calls_mv{suffix}"),
            &oc,
            &format!("orrery_span_calls{suffix}"),
            &format!("otel_traces{suffix}"),
            &k,
        );
        let ddl = full_ddl(&p);
        assert_eq!(
            ddl.iter().filter(|s| **s == want).count(),
            1,
            "cluster {cluster:?}: the released call view is not in the DDL verbatim"
        );
    }
}

#[test]
fn spelling_constants_agree_with_the_span_row_spellings() {
    use crate::span::{kind as span_kind, status};
    let list = |xs: &[&str]| {
        xs.iter()
            .map(|x| format!("'{x}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    assert_eq!(
        IS_ERROR_STATUS,
        format!("StatusCode IN ({})", list(&status::ERROR_SPELLINGS))
    );
    assert_eq!(
        IS_SERVER_OR_CONSUMER,
        format!("SpanKind IN ({})", list(&SERVER_OR_CONSUMER_KINDS))
    );
    assert_eq!(
        IS_CLIENT_OR_PRODUCER,
        format!("SpanKind IN ({})", list(&CLIENT_OR_PRODUCER_KINDS))
    );
    for k in SERVER_OR_CONSUMER_KINDS {
        assert!(matches!(span_kind::to_otlp(k), 2 | 5), "{k}");
    }
    for k in CLIENT_OR_PRODUCER_KINDS {
        assert!(matches!(span_kind::to_otlp(k), 3 | 4), "{k}");
    }
    assert_eq!(
        IS_VIRTUAL_ROW,
        format!("CalleeKind IN ({})", list(&kind::VIRTUAL))
    );
    assert_eq!(IS_ORPHAN_ROW, format!("CalleeKind = '{}'", kind::ORPHAN));
}

#[test]
fn fragments_apply_one_rule_each() {
    // The error rule: the callee's (server spans' HTTP status only) and the caller's.
    assert_eq!(
        call_error_expr(true),
        "(StatusError = 1 OR (SpanKind IN ('Server', 'SPAN_KIND_SERVER') AND HttpStatus >= 500))"
    );
    assert!(error_expr(true).contains(IS_ERROR_STATUS) && error_expr(true).contains(IS_SERVER));
    assert!(!error_expr(false).contains(IS_SERVER));
    // Call rows: callee's error rule on edges and entries, the caller's on virtual edges;
    // the settled rule decides both orphans and virtual callees.
    let rows = call_rows_sql(minute_filter::ALL);
    assert!(rows.contains(&call_error_expr(true)) && rows.contains(&call_error_expr(false)));
    assert_eq!(rows.matches(SETTLED).count(), 2);
    assert!(rows.contains("'INTERNET'") && rows.contains("'orphan'"));
    // Node rows aggregate exactly the served rows.
    assert!(node_rows_sql("").contains(&served_rows_sql("")));
    // Edge detail reads otel_traces (kept for the retention; the call copy is not) by the
    // call rows' rules: the callee's error rule on edges and entries, the caller's (any HTTP
    // status) and the settled rule on virtual edges, the same virtual callee naming.
    let entry = edge_spans_sql(EdgeShape::Entry);
    let service = edge_spans_sql(EdgeShape::Service);
    let virt = edge_spans_sql(EdgeShape::Virtual);
    assert!(entry.contains(&error_expr(true)) && entry.contains(IS_SERVER_OR_CONSUMER));
    assert!(service.contains(&error_expr(true)) && service.contains("{plo:Int64}"));
    assert!(virt.contains(&error_expr(false)) && virt.contains(VIRTUAL_CALLEE));
    assert!(virt.contains(SETTLED) && virt.contains(VIRTUAL_ATTRS));
    for sql in [&entry, &service, &virt] {
        assert!(!sql.contains("orrery_span_calls"), "{sql}");
    }
    let ops = edge_operations_sql(EdgeShape::Service);
    let ex = edge_exemplars_sql(EdgeShape::Virtual, 5);
    assert!(ops.contains(&service) && ex.contains(&virt));
    // Every value is a bound parameter: no quotes around braces.
    for sql in [rows, entry, service, virt, ops, ex, node_operations_sql()] {
        assert!(!sql.contains("'{"), "{sql}");
    }
}

#[test]
fn call_rows_without_regions_plan_no_region_expression_and_keep_their_columns() {
    for (read, empty) in [
        (
            call_row_branches(minute_filter::ALL, RegionCols::Read),
            call_row_branches(minute_filter::ALL, RegionCols::Empty),
        ),
        (
            live_call_row_branches(RegionCols::Read),
            live_call_row_branches(RegionCols::Empty),
        ),
    ] {
        for (r, e) in read.iter().zip(&empty) {
            assert!(r.contains("Resource["), "{r}");
            assert!(!e.contains("Resource"), "{e}");
            // The same columns either way: a reader's SQL over them does not change.
            for col in [
                "AS Minute",
                "AS Caller",
                "AS Callee",
                "AS CallerRegion",
                "AS CalleeRegion",
                "AS CalleeKind",
                "AS Err",
            ] {
                assert!(r.contains(col) && e.contains(col), "{col}");
            }
        }
    }
}
