//! A spool left by an older version (format 1: protobuf records, no header) is replayed by this
//! one: its spans land exactly as the readable reference conversion says, and the segment is
//! removed once delivered.

mod support;

use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value::Value};
use orrery_collector::{convert, synth};
use prost::Message;
use support::*;

#[tokio::test]
async fn an_older_versions_spool_is_replayed_into_clickhouse() {
    let ch = orrery_store::testing::fresh_database().await;
    let spool = tempfile::tempdir().unwrap();
    let mut req = synth::request(77, 40, synth::now_ns());
    // A value kind the newer fast path hands to the general one.
    req.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .push(KeyValue {
            key: "list".into(),
            value: Some(AnyValue {
                value: Some(Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::DoubleValue(0.5)),
                    }],
                })),
            }),
            ..Default::default()
        });
    let payload = req.encode_to_vec();
    let mut segment = (payload.len() as u32).to_le_bytes().to_vec();
    segment.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    segment.extend_from_slice(&payload);
    let path = spool
        .path()
        .join("00000000000000000003-00000000000000ab.seg");
    std::fs::write(&path, &segment).unwrap();

    let collector = Collector::start(&ch, spool.path(), &[]).await;
    assert_eq!(wait_count(&ch, "1", 40, Duration::from_secs(30)).await, 40);
    let mut expected = Vec::new();
    // An older version cut the values before spooling them: they are sent as they are.
    convert::to_rows(req, usize::MAX, &mut expected);
    for service in synth::SERVICES {
        let mut want: Vec<_> = expected
            .iter()
            .filter(|r| r.service_name == service)
            .cloned()
            .collect();
        want.iter_mut().for_each(normalize);
        want.sort_by(|a, b| a.span_id.cmp(&b.span_id));
        assert_eq!(rows(&ch, service).await, want, "service {service}");
    }
    assert!(
        expected
            .iter()
            .any(|r| r.span_attributes.contains(&("list".into(), "[0.5]".into())))
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while path.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!path.exists(), "delivered segment removed");
    collector.stop().await;
}
