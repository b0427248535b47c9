//! The big-mesh generator's report matches exactly what OTLP receivers got: span and trace
//! counts, and every caller → callee edge with its call and error counts; requests alternate
//! over several endpoints.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use orrery_demo::mesh::{MeshArgs, generate};
use orrery_sdk::testing::OtlpRecorder;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_matches_what_the_receivers_recorded() {
    let a = OtlpRecorder::start().await.unwrap();
    let b = OtlpRecorder::start().await.unwrap();
    let ledger = std::env::temp_dir().join(format!("orrery-mesh-ledger-{}", std::process::id()));
    let args = MeshArgs {
        services: 120,
        rate: 20_000,
        endpoints: vec![a.endpoint(), b.endpoint()],
        duration: Duration::ZERO,
        traces: Some(400),
        regions: 3,
        namespaces: 4,
        batch: 500,
        concurrency: 4,
        seed: 7,
        report: None,
        ledger: Some(ledger.clone()),
    };
    let report = generate(&args, CancellationToken::new()).await.unwrap();
    assert_eq!(report.traces, 400);
    assert_eq!(report.failed_exports, 0);
    assert!(report.exports >= 2);
    let (sa, sb) = (a.export_headers().len(), b.export_headers().len());
    assert!(sa.abs_diff(sb) <= 1, "round robin: {sa} vs {sb}");

    let mut spans = a.spans();
    spans.extend(b.spans());
    assert_eq!(spans.len() as u64, report.spans);
    let traces: HashSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(traces.len() as u64, report.traces);

    // The ledger: every trace once, acknowledged, with its exact span count.
    let mut per_trace: HashMap<&str, u64> = HashMap::new();
    for s in &spans {
        *per_trace.entry(s.trace_id.as_str()).or_default() += 1;
    }
    let text = std::fs::read_to_string(&ledger).unwrap();
    let _ = std::fs::remove_file(&ledger);
    let mut listed = HashSet::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 3, "{line}");
        assert_eq!(f[0], "ok", "{line}");
        assert!(listed.insert(f[1]), "trace listed twice: {line}");
        assert_eq!(
            per_trace.get(f[1]).copied(),
            Some(f[2].parse().unwrap()),
            "{line}"
        );
    }
    assert_eq!(listed.len() as u64, report.traces);

    // Rebuild the edges from the spans themselves: a client span and its server child.
    let by_parent: HashMap<(&str, &str), &orrery_sdk::testing::RecordedSpan> = spans
        .iter()
        .filter(|s| s.kind == "Server" && !s.parent_span_id.is_empty())
        .map(|s| ((s.trace_id.as_str(), s.parent_span_id.as_str()), s))
        .collect();
    let mut edges: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for c in spans.iter().filter(|s| s.kind == "Client") {
        let server = by_parent[&(c.trace_id.as_str(), c.span_id.as_str())];
        assert_eq!(c.attr("peer.service"), Some(server.service.as_str()));
        let e = edges
            .entry((c.service.clone(), server.service.clone()))
            .or_default();
        e.0 += 1;
        e.1 += c.error as u64;
    }
    let reported: BTreeMap<(String, String), (u64, u64)> = report
        .edges
        .iter()
        .map(|e| ((e.client.clone(), e.server.clone()), (e.calls, e.errors)))
        .collect();
    assert_eq!(edges, reported);
    assert!(
        reported.values().any(|(_, errors)| *errors > 0),
        "some edges carry errors"
    );

    // Realistic shape: regions, ~10 attributes, events on some spans.
    let regions: HashSet<&str> = spans
        .iter()
        .map(|s| s.resource["cloud.region"].as_str())
        .collect();
    assert_eq!(regions.len(), 3);
    assert!(spans.iter().all(|s| s.attributes.len() >= 9));
    let services: HashSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    assert!(services.len() > 60, "{} services seen", services.len());

    // --namespaces 4: every service sits in one of four namespaces, its `team` the same.
    let mut ns_of: HashMap<&str, &str> = HashMap::new();
    for s in &spans {
        let ns = s.resource["service.namespace"].as_str();
        assert_eq!(s.resource["team"].as_str(), ns, "{}", s.service);
        assert_eq!(*ns_of.entry(s.service.as_str()).or_insert(ns), ns);
    }
    let namespaces: HashSet<&str> = ns_of.values().copied().collect();
    assert_eq!(namespaces.len(), 4, "{namespaces:?}");
}
