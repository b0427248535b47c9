//! The demo fleet, exporting over real OTLP/gRPC to a receiver: every HTTP hop, gRPC hop and
//! queue hand-off is a correct parent/child link, every service carries its own resource, and
//! uninstrumented peers appear as client spans only.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use orrery_demo::topology::{self, JOURNEYS};
use orrery_demo::{Fleet, FleetConfig};
use orrery_sdk::testing::{OtlpRecorder, RecordedSpan};

async fn collect(
    fleet: &Fleet,
    recorder: &OtlpRecorder,
    done: impl Fn(&[RecordedSpan]) -> bool,
) -> Vec<RecordedSpan> {
    for _ in 0..100 {
        fleet.flush().await;
        let spans = recorder.spans();
        if done(&spans) {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    recorder.spans()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hop_links_parent_and_child_and_every_service_reports() {
    let recorder = OtlpRecorder::start().await.unwrap();
    let fleet = Fleet::start(&FleetConfig {
        otlp_endpoint: recorder.endpoint(),
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    for (method, path, _) in JOURNEYS {
        let resp = http
            .request(
                method.parse().unwrap(),
                format!("{}{path}", fleet.gateway_url()),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    // The order goes on asynchronously: wait for the consumer's downstream calls.
    let spans = collect(&fleet, &recorder, |s| {
        ["shipping", "notifications"]
            .iter()
            .all(|svc| s.iter().any(|x| x.service == *svc && x.kind == "Server"))
            && s.iter()
                .filter(|x| x.service == "orders" && x.kind == "Client")
                .count()
                >= 3
    })
    .await;
    fleet.flush().await;
    let spans = {
        let more = recorder.spans();
        if more.len() > spans.len() {
            more
        } else {
            spans
        }
    };

    let specs = topology::services();
    let names: HashSet<&str> = specs.iter().map(|s| s.name).collect();
    let seen: HashSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(
        seen, names,
        "every service exports under its own service.name"
    );

    // One trace per user request, rooted at the gateway.
    let traces: HashSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(traces.len(), JOURNEYS.len());
    let by_id: HashMap<&str, &RecordedSpan> =
        spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let mut children: HashMap<&str, Vec<&RecordedSpan>> = HashMap::new();
    for s in &spans {
        if s.parent_span_id.is_empty() {
            assert_eq!(
                (s.service.as_str(), s.kind),
                ("edge-gateway", "Server"),
                "{s:#?}"
            );
            continue;
        }
        let parent = by_id
            .get(s.parent_span_id.as_str())
            .unwrap_or_else(|| panic!("orphan {s:#?}"));
        assert_eq!(parent.trace_id, s.trace_id);
        children.entry(parent.span_id.as_str()).or_default().push(s);
    }

    let (mut http_hops, mut grpc_hops, mut peer_calls) = (0, 0, 0);
    for s in spans.iter().filter(|s| s.kind == "Client") {
        let peer = s.attr("peer.service");
        let kids = children
            .get(s.span_id.as_str())
            .cloned()
            .unwrap_or_default();
        let target = if s.attr("rpc.system") == Some("grpc") {
            grpc_hops += 1;
            let authority = format!(
                "{}:{}",
                s.attr("server.address").unwrap(),
                s.attr("server.port").unwrap()
            );
            fleet
                .services()
                .iter()
                .find(|x| x.url.ends_with(&authority))
                .map(|x| x.name.clone())
        } else {
            peer.filter(|p| names.contains(p)).map(str::to_string)
        };
        match target {
            Some(target) => {
                // An instrumented callee: exactly one server span there, child of this client span.
                assert_eq!(kids.len(), 1, "{s:#?} -> {kids:#?}");
                assert_eq!(kids[0].kind, "Server");
                assert_eq!(kids[0].service, target);
                assert!(kids[0].start_unix_nano >= s.start_unix_nano);
                if s.attr("rpc.system").is_none() {
                    http_hops += 1;
                    assert_eq!(s.attr("server.address"), Some("127.0.0.1"));
                    assert_eq!(kids[0].attr("http.response.status_code"), Some("200"));
                }
            }
            None => {
                // An uninstrumented peer: a leaf client span that names it.
                peer_calls += 1;
                assert!(kids.is_empty(), "{s:#?}");
                assert!(s.attr("server.address").is_some());
                assert!(
                    s.attr("db.system.name").is_some()
                        || s.attr("url.full")
                            .is_some_and(|u| u.starts_with("https://"))
                );
            }
        }
        assert!(!s.error, "{s:#?}");
    }
    assert!(
        http_hops >= 20 && grpc_hops >= 3 && peer_calls >= 20,
        "{http_hops} {grpc_hops} {peer_calls}"
    );

    // The queue: producer in checkout, consumer in orders as its child and linked to it.
    let producer = spans
        .iter()
        .find(|s| s.kind == "Producer")
        .expect("producer span");
    assert_eq!(producer.service, "checkout");
    assert_eq!(
        producer.attr("messaging.system"),
        Some(topology::QUEUE_SYSTEM)
    );
    let consumer = spans
        .iter()
        .find(|s| s.kind == "Consumer")
        .expect("consumer span");
    assert_eq!(consumer.service, "orders");
    assert_eq!(consumer.parent_span_id, producer.span_id);
    assert_eq!(
        consumer.links,
        vec![(producer.trace_id.clone(), producer.span_id.clone())]
    );
    let after_queue: HashSet<&str> = children[consumer.span_id.as_str()]
        .iter()
        .map(|s| s.service.as_str())
        .collect();
    assert_eq!(after_queue, HashSet::from(["orders"]));

    // Resources: own region and instance per service, three regions in all.
    let mut regions = HashSet::new();
    for s in &spans {
        let spec = specs.iter().find(|x| x.name == s.service).unwrap();
        assert_eq!(
            s.resource.get("cloud.region").map(String::as_str),
            Some(spec.region)
        );
        assert!(s.resource["service.instance.id"].starts_with(&s.service));
        regions.insert(spec.region);
    }
    assert_eq!(regions.len(), 3);
    fleet.stop().await;
}
