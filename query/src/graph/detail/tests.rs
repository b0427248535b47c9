use super::*;
use orrery_store::SpanRow;
use std::time::Duration;

const MS: i64 = 1_000_000;

fn span(
    trace: u32,
    id: u32,
    parent: u32,
    service: &str,
    kind: &str,
    ts: i64,
    dur_ms: i64,
) -> SpanRow {
    let mut s =
        orrery_store::testing::span(trace.into(), id.into(), parent.into(), service, kind, ts);
    s.resource_attributes.push((
        "service.instance.id".into(),
        format!("{service}-{}", trace % 2),
    ));
    s.duration = (dur_ms * MS) as u64;
    s
}

fn settings() -> GraphArgs {
    GraphArgs {
        graph_grace: Duration::from_millis(1),
        graph_rollup_delay: Duration::from_secs(0),
        ..GraphArgs::default()
    }
}

/// `(upper bound, count)` of the non-empty buckets (`None` = overflow).
fn filled(h: &Histogram) -> Vec<(Option<f64>, u64)> {
    h.counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(i, c)| (h.bounds_ms.get(i).copied(), *c))
        .collect()
}

#[tokio::test]
async fn node_detail_has_the_latency_histogram_of_the_calls_it_served() {
    let ch = orrery_store::testing::fresh_database().await;
    let client = ch.client();
    let s = settings();
    let now = crate::now_ns();
    let t0 = now - 3 * 60_000 * MS;
    // api (root) → shop (3 fast calls, 1 at 40 ms, 1 over 30 s) → postgres (client spans).
    let mut rows = Vec::new();
    for (i, dur) in [3, 4, 3, 40, 31_000].into_iter().enumerate() {
        let t = i as u32 + 1;
        let ts = t0 + i as i64 * MS;
        rows.push(span(t, 1, 0, "api", "Server", ts, dur + 2));
        rows.push(span(t, 2, 1, "api", "Client", ts, dur + 1));
        rows.push(span(t, 3, 2, "shop", "Server", ts, dur));
        let mut db = span(t, 4, 3, "shop", "Client", ts, 7);
        db.span_attributes = vec![("db.system".into(), "postgresql".into())];
        rows.push(db);
    }
    let mut insert = client.insert::<SpanRow>("otel_traces").await.unwrap();
    for r in &rows {
        insert.write(r).await.unwrap();
    }
    insert.end().await.unwrap();
    let w = crate::params::span(t0 - 60_000 * MS, now, now).unwrap();

    let check = |d: &NodeDetail, want: Vec<(Option<f64>, u64)>| {
        assert_eq!(d.histogram.counts.len(), d.histogram.bounds_ms.len() + 1);
        assert_eq!(filled(&d.histogram), want, "{}", d.node.id);
        assert_eq!(
            d.histogram.counts.iter().sum::<u64>(),
            d.node.metrics.requests
        );
    };
    // One bar per doubling: 3, 4, 3 ms ≤ 4.19 ms; 40 ms ≤ 67.1 ms; 31 s beyond the last
    // bucket's start (21.6 s). The same as the histogram of the exact durations.
    let shop_want = vec![(Some(4.19), 3), (Some(67.1), 1), (None, 1)];
    let exact =
        orrery_store::latency::Histogram::of(&[3, 4, 3, 40, 31_000].map(|ms: u64| ms * MS as u64))
            .display();
    assert_eq!(
        filled(&Histogram {
            bounds_ms: exact.0,
            counts: exact.1
        }),
        shop_want
    );
    let shop = node(&client, &s, &Default::default(), "shop", w)
        .await
        .unwrap()
        .expect("shop has traffic");
    check(&shop, shop_want.clone());
    let db = node(&client, &s, &Default::default(), "database:postgresql", w)
        .await
        .unwrap()
        .expect("the database has calls");
    check(&db, vec![(Some(8.39), 5)]);

    // Once the minutes are rolled up, the histogram comes from the rollup and is the same.
    let report = crate::rollup::Rollup::new(client.clone(), s.clone())
        .run_once(now, Duration::from_secs(600))
        .await
        .unwrap();
    assert!(!report.computed.is_empty());
    let shop = node(&client, &s, &Default::default(), "shop", w)
        .await
        .unwrap()
        .unwrap();
    check(&shop, shop_want);

    // A window without the calls has no detail at all.
    let empty = crate::params::span(now - 60 * 60_000 * MS, now - 50 * 60_000 * MS, now).unwrap();
    assert!(
        node(&client, &s, &Default::default(), "shop", empty)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn edge_detail_operations_use_the_edges_histogram_estimator() {
    let ch = orrery_store::testing::fresh_database().await;
    let client = ch.client();
    let s = settings();
    let now = crate::now_ns();
    let t0 = now - 3 * 60_000 * MS;
    // api → shop over two operations; shop → postgres (client spans, one failing).
    let a_ms = [3u64, 4, 3, 40, 900];
    let b_ms = [31_000u64, 5];
    let mut rows = Vec::new();
    let mut t = 0;
    for (name, durs) in [("GET /a", &a_ms[..]), ("GET /b", &b_ms[..])] {
        for &dur in durs {
            t += 1;
            let ts = t0 + t as i64 * MS;
            rows.push(span(t, 1, 0, "api", "Server", ts, dur as i64 + 2));
            rows.push(span(t, 2, 1, "api", "Client", ts, dur as i64 + 1));
            let mut callee = span(t, 3, 2, "shop", "Server", ts, dur as i64);
            callee.span_name = name.into();
            if dur == 900 {
                callee.status_code = "Error".into();
            }
            rows.push(callee);
            let mut db = span(t, 4, 3, "shop", "Client", ts, 7);
            db.span_attributes = vec![("db.system".into(), "postgresql".into())];
            db.span_name = "SELECT".into();
            rows.push(db);
        }
    }
    let mut insert = client.insert::<SpanRow>("otel_traces").await.unwrap();
    for r in &rows {
        insert.write(r).await.unwrap();
    }
    insert.end().await.unwrap();
    let w = crate::params::span(t0 - 60_000 * MS, now, now).unwrap();
    let ns = |ms: &[u64]| ms.iter().map(|m| m * MS as u64).collect::<Vec<_>>();
    let ms = |q: f64| q / 1e6;

    for rolled_up in [false, true] {
        if rolled_up {
            crate::rollup::Rollup::new(client.clone(), s.clone())
                .run_once(now, Duration::from_secs(600))
                .await
                .unwrap();
        }
        let d = edge(&client, &s, &Default::default(), "api", "shop", w)
            .await
            .unwrap()
            .unwrap();
        let all: Vec<u64> = ns(&a_ms).into_iter().chain(ns(&b_ms)).collect();
        let edge_q = Latency::of(&all).p50_p95_p99();
        assert_eq!(
            d.edge.metrics.p95_ms,
            ms(edge_q[1]),
            "rolled up: {rolled_up}"
        );
        assert_eq!(d.edge.metrics.requests, 7);
        let names: Vec<&str> = d.operations.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["GET /a", "GET /b"], "busiest first");
        for (op, durs) in d.operations.iter().zip([&a_ms[..], &b_ms[..]]) {
            let q = Latency::of(&ns(durs)).p50_p95_p99();
            assert_eq!(
                (op.metrics.p50_ms, op.metrics.p95_ms, op.metrics.p99_ms),
                (ms(q[0]), ms(q[1]), ms(q[2])),
                "{}: the histogram estimate, as for the edge",
                op.name
            );
            assert_eq!(op.span_kind, "Server");
        }
        assert_eq!(d.operations[0].metrics.errors, 1);
        // Exemplars are the edge's calls with their trace ids: the 31 s call is the
        // slowest, the failed one is the 900 ms call.
        let slowest = &d.exemplars.slowest[0];
        assert_eq!(
            (slowest.operation.as_str(), slowest.duration_us),
            ("GET /b", 31_000_000)
        );
        assert_eq!(slowest.trace_id, format!("{:032x}", 6));
        assert_eq!(slowest.span_id, format!("{:016x}", 3));
        assert_eq!(d.exemplars.slowest.len(), 5);
        assert_eq!(d.exemplars.failed.len(), 1);
        assert_eq!(d.exemplars.failed[0].duration_us, 900_000);
        assert!(d.exemplars.failed[0].error);
        assert_eq!(d.exemplars.typical.len(), 5);

        // A virtual edge: the client spans' operations and exemplars.
        let db = edge(
            &client,
            &s,
            &Default::default(),
            "shop",
            "database:postgresql",
            w,
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(db.operations.len(), 1);
        assert_eq!(db.operations[0].name, "SELECT");
        assert_eq!(db.operations[0].span_kind, "Client");
        assert_eq!(db.operations[0].metrics.requests, 7);
        assert_eq!(db.operations[0].metrics.p95_ms, db.edge.metrics.p95_ms);
        assert_eq!(db.exemplars.slowest.len(), 5);
        assert!(db.exemplars.failed.is_empty());
        // An entry edge: the roots.
        let entry = edge(&client, &s, &Default::default(), "INTERNET", "api", w)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(entry.operations[0].metrics.requests, 7);
        assert_eq!(entry.exemplars.slowest[0].span_id, format!("{:016x}", 1));
    }
    // No edge, no detail.
    assert!(
        edge(&client, &s, &Default::default(), "shop", "api", w)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        edge(&client, &s, &Default::default(), "api", "shop", w)
            .await
            .unwrap()
            .unwrap()
            .notice
            .is_none()
    );

    // The call copy expires after 49 hours (schema v11) while rollups and spans stay for the
    // retention: with every call row gone, edge detail of the rolled-up window is exactly
    // what it was — operations, their quantiles, exemplar traces — and says nothing is missing.
    let before = edge(&client, &s, &Default::default(), "api", "shop", w)
        .await
        .unwrap()
        .unwrap();
    let db_before = edge(
        &client,
        &s,
        &Default::default(),
        "shop",
        "database:postgresql",
        w,
    )
    .await
    .unwrap()
    .unwrap();
    client
        .query("TRUNCATE TABLE orrery_span_calls")
        .execute()
        .await
        .unwrap();
    let calls: u64 = client
        .query("SELECT count() FROM orrery_span_calls")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(calls, 0);
    for (source, target, was) in [
        ("api", "shop", &before),
        ("shop", "database:postgresql", &db_before),
    ] {
        let d = edge(&client, &s, &Default::default(), source, target, w)
            .await
            .unwrap()
            .unwrap();
        let json = |d: &EdgeDetail| serde_json::to_value(d).unwrap();
        assert_eq!(json(&d), json(was), "{source}->{target} without call rows");
        assert!(d.notice.is_none());
    }

    // Spans gone too (an emptied otel_traces) while the rollups still count the edge: the
    // detail says so instead of showing empty tables as if nothing had been called.
    client
        .query("TRUNCATE TABLE otel_traces")
        .execute()
        .await
        .unwrap();
    let d = edge(&client, &s, &Default::default(), "api", "shop", w)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        d.edge.metrics.requests, 7,
        "counts still come from the rollups"
    );
    assert!(d.operations.is_empty() && d.exemplars.slowest.is_empty());
    let notice = d.notice.expect("a notice, not silent empty tables");
    assert!(notice.contains("otel_traces"), "{notice}");
}
