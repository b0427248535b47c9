//! An OTLP/gRPC fan-out in front of several collectors, as a fleet's own SDK exporters behind a
//! load balancer would behave: each service's spans of a request (one `ResourceSpans`) go to the
//! next collector in turn, so the spans of one trace land on different collectors (the mesh
//! generator puts whole traces into each request). A request is acknowledged only when every
//! part was; it records which span ids each collector acknowledged.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

#[derive(Default)]
pub struct Ledger {
    /// Span ids (hex) the splitter received from the generator.
    pub received: HashSet<String>,
    /// Span ids (hex) a collector acknowledged.
    pub acked: HashSet<String>,
    /// Parts per collector that were acknowledged / failed.
    pub parts_ok: Vec<u64>,
    pub parts_failed: Vec<u64>,
}

struct Fanout {
    targets: Vec<TraceServiceClient<Channel>>,
    next: AtomicUsize,
    ledger: Arc<Mutex<Ledger>>,
}

fn ids(part: &ExportTraceServiceRequest) -> Vec<String> {
    part.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.span_id.iter().map(|b| format!("{b:02x}")).collect())
        .collect()
}

#[tonic::async_trait]
impl TraceService for Fanout {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let req = request.into_inner();
        let mut sends = Vec::new();
        for rs in req.resource_spans {
            let part = ExportTraceServiceRequest {
                resource_spans: vec![rs],
            };
            let part_ids = ids(&part);
            self.ledger
                .lock()
                .unwrap()
                .received
                .extend(part_ids.iter().cloned());
            let i = self.next.fetch_add(1, Ordering::Relaxed) % self.targets.len();
            let mut client = self.targets[i].clone();
            let ledger = self.ledger.clone();
            sends.push(async move {
                let ok = match client.export(part).await {
                    Ok(r) => r
                        .into_inner()
                        .partial_success
                        .is_none_or(|p| p.rejected_spans == 0),
                    Err(_) => false,
                };
                let mut l = ledger.lock().unwrap();
                if ok {
                    l.parts_ok[i] += 1;
                    l.acked.extend(part_ids);
                } else {
                    l.parts_failed[i] += 1;
                }
                ok
            });
        }
        let results = futures::future::join_all(sends).await;
        if results.iter().all(|ok| *ok) {
            Ok(Response::new(ExportTraceServiceResponse::default()))
        } else {
            Err(Status::unavailable(
                "a collector did not acknowledge its part",
            ))
        }
    }
}

pub struct Splitter {
    pub addr: SocketAddr,
    pub ledger: Arc<Mutex<Ledger>>,
    _runtime: tokio::runtime::Runtime,
}

impl Splitter {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Starts the fan-out on a free loopback port, in front of these gRPC endpoints.
pub fn start(endpoints: &[String]) -> Splitter {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let ledger = Arc::new(Mutex::new(Ledger {
        parts_ok: vec![0; endpoints.len()],
        parts_failed: vec![0; endpoints.len()],
        ..Default::default()
    }));
    // Lazy channels spawn their connection tasks on the current runtime.
    let _enter = runtime.enter();
    let targets = endpoints
        .iter()
        .map(|e| {
            let channel = tonic::transport::Endpoint::from_shared(e.clone())
                .unwrap()
                .timeout(std::time::Duration::from_secs(30))
                .connect_lazy();
            TraceServiceClient::new(channel).max_encoding_message_size(64 << 20)
        })
        .collect::<Vec<_>>();
    let fanout = Fanout {
        targets,
        next: AtomicUsize::new(0),
        ledger: ledger.clone(),
    };
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(fanout).max_decoding_message_size(64 << 20))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
    });
    Splitter {
        addr,
        ledger,
        _runtime: runtime,
    }
}
