//! How fast the big-mesh generator can produce and send OTLP: unlimited rate into an in-process
//! OTLP/gRPC sink that decodes and counts. Prints spans/s.
//!
//! `cargo bench -p orrery-demo --bench mesh`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use orrery_demo::mesh::{MeshArgs, generate};
use tokio_util::sync::CancellationToken;

struct Sink(Arc<AtomicU64>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let n: usize = req
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(AtomicU64::new(0));
        let sink = TraceServiceServer::new(Sink(received.clone())).max_decoding_message_size(64 << 20);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(sink)
                .serve_with_incoming(futures::stream::unfold(listener, |l| async move {
                    Some((l.accept().await.map(|(s, _)| s), l))
                })),
        );
        for services in [300, 1000] {
            received.store(0, Ordering::Relaxed);
            let args = MeshArgs {
                services,
                rate: 10_000_000,
                endpoints: vec![format!("http://{addr}")],
                duration: Duration::from_secs(10),
                traces: None,
                regions: 3,
                namespaces: 1,
                batch: 1000,
                concurrency: 8,
                seed: 1,
                report: None,
                ledger: None,
            };
            let report = generate(&args, CancellationToken::new()).await.unwrap();
            assert_eq!(report.spans, received.load(Ordering::Relaxed));
            println!(
                "mesh generator, {services} services: {} spans in {:.1} s = {:.0} spans/s ({} traces, {} edges, {} failed exports)",
                report.spans,
                report.elapsed_secs,
                report.spans_per_sec,
                report.traces,
                report.edges.len(),
                report.failed_exports
            );
        }
    });
}
