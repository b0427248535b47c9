//! A batch ClickHouse refuses never costs the good spans in it, nor an insert slot: span times
//! are validated at the receiver, a refused batch is bisected so its good rows land, only rows
//! that fail on their own go to `<spool>/dead/`, and `orrery spool` replays or drops them.

mod support;

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
use orrery_collector::spool_cli::{SpoolAction, SpoolCmd};
use orrery_collector::{deadletter, rowbinary, spool, synth};
use orrery_store::ClickHouseArgs;
use prost::Message;
use support::*;

const DAY: u64 = 86_400_000_000_000;

fn set_service(req: &mut ExportTraceServiceRequest, name: &str) {
    for rs in &mut req.resource_spans {
        for kv in &mut rs.resource.as_mut().unwrap().attributes {
            if kv.key == "service.name" {
                kv.value = Some(AnyValue {
                    value: Some(Value::StringValue(name.into())),
                });
            }
        }
    }
}

fn spans_mut(
    req: &mut ExportTraceServiceRequest,
) -> impl Iterator<Item = &mut opentelemetry_proto::tonic::trace::v1::Span> {
    req.resource_spans
        .iter_mut()
        .flat_map(|r| &mut r.scope_spans)
        .flat_map(|s| &mut s.spans)
}

async fn export(
    http: &reqwest::Client,
    base: &str,
    req: &ExportTraceServiceRequest,
) -> ExportTraceServiceResponse {
    let r = http
        .post(format!("{base}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    ExportTraceServiceResponse::decode(r.bytes().await.unwrap()).unwrap()
}

async fn metrics(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn wait_for(what: &str, within: Duration, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The embedded engine's endpoint, without the credentials (the proxy forwards the headers).
fn endpoint(ch: &ClickHouseArgs) -> String {
    let url = ch.clickhouse_url.clone().unwrap();
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{host}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn far_past_far_future_and_backwards_spans_are_rejected_one_by_one_with_reasons() {
    let ch = orrery_store::testing::fresh_database().await;
    let spool = tempfile::tempdir().unwrap();
    let c = Collector::start(&ch, spool.path(), &["--max-span-future=30m"]).await;
    let http = reqwest::Client::new();
    let now = synth::now_ns();
    let mut req = synth::request(11, 10, now);
    set_service(&mut req, "times");
    for (i, s) in spans_mut(&mut req).enumerate() {
        let start = match i {
            0 => now - 8 * DAY,  // before the 7-day retention
            1 => now + DAY / 24, // an hour ahead: past the 30 min slack
            2 => 0,              // unset
            _ => s.start_time_unix_nano,
        };
        s.start_time_unix_nano = start;
        s.end_time_unix_nano = match i {
            3 => start - 1, // ends before it starts
            4 => start,     // an instant: kept
            _ => start + 1_000,
        };
    }
    let resp = export(&http, &c.http, &req).await;
    let partial = resp.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 4, "{}", partial.error_message);
    // The message names the first three; the metrics count every reason.
    for needle in [
        "spans[0]: start_time_unix_nano",
        "before the retention (7days before now)",
        "too far in the future (more than 30m after now",
        "start_time_unix_nano is unset (0)",
        "and 1 more",
    ] {
        assert!(
            partial.error_message.contains(needle),
            "{needle}: {}",
            partial.error_message
        );
    }
    assert_eq!(
        wait_count(&ch, "ServiceName = 'times'", 6, Duration::from_secs(30)).await,
        6
    );
    let m = metrics(&http, &c.http).await;
    for line in [
        "orrery_collector_spans_invalid_total{reason=\"too_old\"} 2",
        "orrery_collector_spans_invalid_total{reason=\"too_far_in_future\"} 1",
        "orrery_collector_spans_invalid_total{reason=\"end_before_start\"} 1",
    ] {
        assert!(m.contains(line), "{line} missing:\n{m}");
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_row_answered_with_code_252_is_set_aside_alone_and_replayed_after_the_fix() {
    let ch = orrery_store::testing::fresh_database().await;
    let fake = fake::start(fake::Mode::Poison {
        upstream: endpoint(&ch),
        poison: b"poison-service".to_vec(),
    })
    .await;
    let mut via_fake = ch.clone();
    let url = ch.clickhouse_url.clone().unwrap();
    let creds = url
        .split_once("://")
        .unwrap()
        .1
        .rsplit_once('@')
        .map(|(c, _)| c.to_string());
    via_fake.clickhouse_url = Some(match creds {
        Some(c) => fake.url.replacen("://", &format!("://{c}@"), 1),
        None => fake.url.clone(),
    });
    let spool = tempfile::tempdir().unwrap();
    // One insert slot and a long batch window: the three clients' requests share one batch.
    let c = Collector::start(
        &via_fake,
        spool.path(),
        &["--batch-timeout=1500ms", "--batch-concurrency=1"],
    )
    .await;
    let http = reqwest::Client::new();
    let now = synth::now_ns();
    let mut a = synth::request(21, 40, now);
    set_service(&mut a, "client-a");
    let mut bad = synth::request(22, 1, now);
    set_service(&mut bad, "poison-service");
    let mut b = synth::request(23, 40, now);
    set_service(&mut b, "client-b");
    for r in [&a, &bad, &b] {
        assert!(export(&http, &c.http, r).await.partial_success.is_none());
    }
    // Every good span lands although its batch was refused; the slot is free at once (no
    // wait for the 30 min batch TTL) and nothing is parked.
    assert_eq!(
        wait_count(
            &ch,
            "ServiceName IN ('client-a', 'client-b')",
            80,
            Duration::from_secs(60)
        )
        .await,
        80
    );
    let dead_dir = spool.path().join(spool::DEAD);
    wait_for("the dead letter", Duration::from_secs(30), async || {
        deadletter::summary(&dead_dir).segments == 1
    })
    .await;
    assert_eq!(count(&ch, "ServiceName = 'poison-service'").await, 0);
    assert!(
        fake.refused.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "whole batch, then the bisected half"
    );
    let dead = deadletter::list(&dead_dir).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].spans(), 1);
    assert!(
        dead[0].error().contains("Too many partitions"),
        "{}",
        dead[0].error()
    );
    assert_eq!(dead[0].meta["code"], 252);
    let seen = deadletter::inspect(&dead[0].path).unwrap();
    assert_eq!(seen.spans, 1);
    assert_eq!(
        seen.services.keys().collect::<Vec<_>>(),
        vec!["poison-service"]
    );
    assert!(
        std::fs::read_dir(spool.path().join("parked"))
            .unwrap()
            .next()
            .is_none()
    );
    let m = metrics(&http, &c.http).await;
    for line in [
        "orrery_collector_dead_letter_spans_total 1",
        "orrery_collector_dead_letter_spans_stored 1",
        "orrery_collector_dead_letter_segments 1",
        "orrery_collector_batches_bisected_total 1",
        "orrery_collector_batches_parked_total 0",
    ] {
        assert!(m.contains(line), "{line} missing:\n{m}");
    }
    // Dead letters do not stop traffic, but /readyz says they are there.
    let ready = http.get(format!("{}/readyz", c.http)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body = ready.text().await.unwrap();
    assert!(
        body.contains("dead letters: 1 spans in 1 segments"),
        "{body}"
    );
    // A later, good batch goes through the same collector normally.
    let mut later = synth::request(24, 10, synth::now_ns());
    set_service(&mut later, "client-c");
    export(&http, &c.http, &later).await;
    assert_eq!(
        wait_count(&ch, "ServiceName = 'client-c'", 10, Duration::from_secs(30)).await,
        10
    );

    // "The cause is fixed": replay straight into the real engine.
    let cmd = |action| SpoolCmd {
        action,
        spool_dir: spool.path().to_path_buf(),
    };
    orrery_collector::spool_cli::run(
        cmd(SpoolAction::Replay {
            names: vec![],
            all: false,
            timeout: Duration::from_secs(30),
        }),
        ch.clone(),
    )
    .await
    .expect("replay");
    assert_eq!(count(&ch, "ServiceName = 'poison-service'").await, 1);
    assert_eq!(deadletter::summary(&dead_dir).segments, 0);
    // Replaying again stores nothing twice (nothing is left to replay).
    orrery_collector::spool_cli::run(
        cmd(SpoolAction::Replay {
            names: vec![],
            all: false,
            timeout: Duration::from_secs(30),
        }),
        ch.clone(),
    )
    .await
    .unwrap();
    assert_eq!(count(&ch, "ServiceName = 'poison-service'").await, 1);
    assert_eq!(
        count(&ch, "ServiceName IN ('client-a', 'client-b')").await,
        80
    );
    // Draining the whole spool is refused while its collector runs.
    let all = orrery_collector::spool_cli::run(
        cmd(SpoolAction::Replay {
            names: vec![],
            all: true,
            timeout: Duration::from_secs(5),
        }),
        ch.clone(),
    )
    .await
    .unwrap_err();
    assert!(
        format!("{all:#}").contains("in use by another collector"),
        "{all:#}"
    );
    // Dropping names what it drops; an unknown name is an error.
    let unknown = orrery_collector::spool_cli::run(
        cmd(SpoolAction::Drop {
            names: vec!["nope".into()],
            all: false,
        }),
        ch.clone(),
    )
    .await
    .unwrap_err();
    assert!(
        format!("{unknown:#}").contains("no dead letter \"nope\""),
        "{unknown:#}"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_101_days_lands_whole_on_the_embedded_engine() {
    // A batch that was never validated (an older version's spool) spans 101 dates: over
    // ClickHouse's partition limit for one insert block. The embedded engine refuses it, the
    // sink splits it, and every span — the 101 and the 20 ordinary ones beside them — lands.
    let ch = orrery_store::testing::fresh_database().await;
    let spool = tempfile::tempdir().unwrap();
    let now = synth::now_ns();
    let mut req = synth::request(31, 121, now);
    set_service(&mut req, "many-days");
    for (i, s) in spans_mut(&mut req).enumerate().take(101) {
        // Future dates: the table's TTL cannot drop them while the test reads them back.
        s.start_time_unix_nano = now + (i as u64 + 1) * DAY;
        s.end_time_unix_nano = s.start_time_unix_nano + 1_000;
    }
    let (record, n) = rowbinary::record(&req, usize::MAX);
    assert_eq!(n, 121);
    spool::write_segment_file(
        &spool
            .path()
            .join("00000000000000000001-00000000000000aa.seg"),
        &[&record],
    )
    .unwrap();
    let c = Collector::start(&ch, spool.path(), &[]).await;
    assert_eq!(
        wait_count(
            &ch,
            "ServiceName = 'many-days'",
            121,
            Duration::from_secs(120)
        )
        .await,
        121
    );
    let days: u64 = ch
        .client()
        .query(&format!(
            "SELECT uniqExact(toDate(Timestamp)) FROM {} WHERE ServiceName = 'many-days'",
            orrery_store::SPANS_TABLE
        ))
        .fetch_one()
        .await
        .unwrap();
    assert!(days >= 101, "{days}");
    assert_eq!(
        deadletter::summary(&spool.path().join(spool::DEAD)).segments,
        0
    );
    let m = metrics(&reqwest::Client::new(), &c.http).await;
    assert!(
        m.contains("orrery_collector_batches_bisected_total 1"),
        "{m}"
    );
    assert_eq!(
        count(&ch, "ServiceName = 'many-days'").await,
        121,
        "no duplicates"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_retention_zero_a_request_over_101_past_days_is_accepted_and_stored_whole() {
    // A database migrated with retention 0: no TTL drops the old spans on insert.
    let shared = orrery_store::testing::fresh_database().await;
    let url = shared.clickhouse_url.clone().unwrap();
    let mut ch = ClickHouseArgs::for_url(&url, format!("{}_forever", shared.clickhouse_database));
    ch.retention_days = 0;
    let params = orrery_store::schema::SchemaParams::from_args(&ch).unwrap();
    orrery_store::schema::migrate(&ch.server_client(&url), &params)
        .await
        .unwrap();
    let spool = tempfile::tempdir().unwrap();
    let c = Collector::start(&ch, spool.path(), &[]).await;
    let now = synth::now_ns();
    let mut req = synth::request(41, 150, now);
    set_service(&mut req, "forever");
    for (i, s) in spans_mut(&mut req).enumerate().take(120) {
        s.start_time_unix_nano = now - (i as u64 + 1) * 3 * DAY;
        s.end_time_unix_nano = s.start_time_unix_nano + 1_000;
    }
    let resp = export(&reqwest::Client::new(), &c.http, &req).await;
    assert!(resp.partial_success.is_none());
    assert_eq!(
        wait_count(&ch, "ServiceName = 'forever'", 150, Duration::from_secs(60)).await,
        150
    );
    // One insert: the partition limit is off for retention 0, nothing had to be split.
    let http = reqwest::Client::new();
    wait_for(
        "the insert's metrics",
        Duration::from_secs(10),
        async || {
            metrics(&http, &c.http)
                .await
                .contains("orrery_collector_batches_inserted_total 1")
        },
    )
    .await;
    let m = metrics(&http, &c.http).await;
    assert!(
        m.contains("orrery_collector_batches_bisected_total 0"),
        "{m}"
    );
    assert!(
        m.contains("orrery_collector_spans_inserted_total 150"),
        "{m}"
    );
    c.stop().await;
}

/// The fake's URL with the engine's credentials in it.
fn via(fake: &fake::Fake, ch: &ClickHouseArgs) -> ClickHouseArgs {
    let mut out = ch.clone();
    let url = ch.clickhouse_url.clone().unwrap();
    let creds = url
        .split_once("://")
        .unwrap()
        .1
        .rsplit_once('@')
        .map(|(c, _)| c.to_string());
    out.clickhouse_url = Some(match creds {
        Some(c) => fake.url.replacen("://", &format!("://{c}@"), 1),
        None => fake.url.clone(),
    });
    out
}

fn spooled_batch(
    dir: &std::path::Path,
    seed: u64,
    spans: usize,
    service: &str,
) -> std::path::PathBuf {
    let mut req = synth::request(seed, spans, synth::now_ns());
    set_service(&mut req, service);
    let (record, n) = rowbinary::record(&req, usize::MAX);
    assert_eq!(n, spans);
    let path = dir.join(format!("{seed:020}-00000000000000ab.seg"));
    spool::write_segment_file(&path, &[&record]).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_batch_reported_as_0_rows_written_is_read_back_and_never_deleted_unseen() {
    // A batch left in the spool by a previous process may have landed: a retry reporting 0
    // rows is normally ClickHouse deduplicating it. Here the server stored nothing (answers 200,
    // written_rows 0): the sink reads a sample back, finds it missing, and keeps the rows.
    let ch = orrery_store::testing::fresh_database().await;
    let fake = fake::start(fake::Mode::SilentDrop {
        upstream: endpoint(&ch),
    })
    .await;
    let spool = tempfile::tempdir().unwrap();
    spooled_batch(spool.path(), 51, 30, "silently-dropped");
    let c = Collector::start(&via(&fake, &ch), spool.path(), &[]).await;
    let dead_dir = spool.path().join(spool::DEAD);
    wait_for("the rows set aside", Duration::from_secs(60), async || {
        deadletter::summary(&dead_dir).spans == 30
    })
    .await;
    assert_eq!(count(&ch, "ServiceName = 'silently-dropped'").await, 0);
    let m = metrics(&reqwest::Client::new(), &c.http).await;
    assert!(
        m.contains("orrery_collector_insert_failures_total{reason=\"unconfirmed\"}"),
        "{m}"
    );
    c.stop().await;
    // Against the real engine they land, once.
    orrery_collector::spool_cli::run(
        SpoolCmd {
            action: SpoolAction::Replay {
                names: vec![],
                all: false,
                timeout: Duration::from_secs(30),
            },
            spool_dir: spool.path().to_path_buf(),
        },
        ch.clone(),
    )
    .await
    .unwrap();
    assert_eq!(count(&ch, "ServiceName = 'silently-dropped'").await, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_batch_that_had_landed_is_deduplicated_and_not_stored_twice() {
    let ch = orrery_store::testing::fresh_database().await;
    let first = tempfile::tempdir().unwrap();
    let seg = spooled_batch(first.path(), 61, 25, "landed-twice");
    let copy = std::fs::read(&seg).unwrap();
    let c = Collector::start(&ch, first.path(), &[]).await;
    assert_eq!(
        wait_count(
            &ch,
            "ServiceName = 'landed-twice'",
            25,
            Duration::from_secs(60)
        )
        .await,
        25
    );
    c.stop().await;
    // The same batch again (as if the process died between the insert and the delete).
    let second = tempfile::tempdir().unwrap();
    std::fs::write(second.path().join(seg.file_name().unwrap()), copy).unwrap();
    let c = Collector::start(&ch, second.path(), &[]).await;
    let http = reqwest::Client::new();
    wait_for("the replay", Duration::from_secs(60), async || {
        metrics(&http, &c.http)
            .await
            .contains("orrery_collector_batches_inserted_total 1")
    })
    .await;
    assert_eq!(count(&ch, "ServiceName = 'landed-twice'").await, 25);
    assert_eq!(
        deadletter::summary(&second.path().join(spool::DEAD)).segments,
        0
    );
    c.stop().await;
}
