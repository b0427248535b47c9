//! The SDK's server layer, reqwest wrapper and tonic interceptors, exporting over real OTLP/gRPC
//! to a receiver: parent/child links across HTTP and gRPC hops, semantic-convention attributes,
//! and error status.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use orrery_sdk::grpc::{InjectInterceptor, client_call};
use orrery_sdk::testing::{OtlpRecorder, RecordedSpan};
use orrery_sdk::{Builder, OtelLayer, Telemetry, TracedClient};
use tonic::service::interceptor::InterceptedService;

/// A gRPC service for the backend to serve: fails when asked to export zero spans.
struct Backend;

#[tonic::async_trait]
impl TraceService for Backend {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        if req.get_ref().resource_spans.is_empty() {
            return Err(tonic::Status::internal("nothing to export"));
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn telemetry(name: &str, recorder: &OtlpRecorder) -> Telemetry {
    Builder::new()
        .service_name(name)
        .endpoint(recorder.endpoint())
        .resource_attribute("cloud.region", "test-1")
        .ignore_env_resource()
        .build()
        .unwrap()
}

async fn serve_http(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[derive(Clone)]
struct Frontend {
    http: TracedClient,
    tracer: orrery_sdk::Tracer,
    backend: String,
    grpc_addr: String,
}

async fn frontend_handler(State(s): State<Frontend>) -> Result<String, StatusCode> {
    let item = s
        .http
        .send(s.http.get(format!("{}/items/42", s.backend)))
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    let boom = s
        .http
        .send(s.http.get(format!("{}/boom", s.backend)))
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", s.grpc_addr))
        .unwrap()
        .connect()
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    let mut grpc = TraceServiceClient::new(InterceptedService::new(channel, InjectInterceptor));
    let ok = client_call(
        &s.tracer,
        &s.grpc_addr,
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        grpc.export(ExportTraceServiceRequest {
            resource_spans: vec![Default::default()],
        }),
    )
    .await
    .is_ok();
    let failed = client_call(
        &s.tracer,
        &s.grpc_addr,
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        grpc.export(ExportTraceServiceRequest::default()),
    )
    .await
    .is_err();
    Ok(format!("{} {} {ok} {failed}", item.status(), boom.status()))
}

fn one(spans: &[RecordedSpan], f: impl Fn(&RecordedSpan) -> bool) -> &RecordedSpan {
    let found: Vec<_> = spans.iter().filter(|s| f(s)).collect();
    assert_eq!(found.len(), 1, "expected exactly one match in {spans:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_link_across_http_and_grpc_hops_with_semantic_conventions() {
    let recorder = OtlpRecorder::start().await.unwrap();
    let front_t = telemetry("frontend", &recorder);
    let back_t = telemetry("backend", &recorder);

    // Backend: HTTP routes and a gRPC server, both behind the layer.
    let backend = serve_http(
        Router::new()
            .route("/items/{id}", get(|| async { "item" }))
            .route(
                "/boom",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
            )
            .layer(OtelLayer::new(back_t.tracer().clone())),
    )
    .await;
    let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = grpc_listener.local_addr().unwrap().to_string();
    let grpc_layer = OtelLayer::new(back_t.tracer().clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(grpc_layer)
            .add_service(TraceServiceServer::new(Backend))
            .serve_with_incoming(tokio_stream(grpc_listener))
            .await
            .unwrap()
    });

    let frontend = serve_http(
        Router::new()
            .route("/checkout", get(frontend_handler))
            .with_state(Frontend {
                http: TracedClient::new(front_t.tracer().clone()).peer_service("backend"),
                tracer: front_t.tracer().clone(),
                backend,
                grpc_addr: grpc_addr.clone(),
            })
            .layer(OtelLayer::new(front_t.tracer().clone())),
    )
    .await;

    // An upstream caller with its own trace: the frontend's span must join it.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let body = reqwest::Client::new()
        .get(format!("{frontend}/checkout"))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "200 OK 500 Internal Server Error true true");

    front_t.flush().await;
    back_t.flush().await;
    let spans = recorder
        .wait_for(Duration::from_secs(10), |s| s.len() >= 9)
        .await;
    assert_eq!(spans.len(), 9, "{spans:#?}");
    assert!(spans.iter().all(|s| s.trace_id == trace_id), "{spans:#?}");

    let front = one(&spans, |s| s.service == "frontend" && s.kind == "Server");
    assert_eq!(front.parent_span_id, caller_span);
    assert_eq!(front.name, "GET /checkout");
    assert_eq!(front.attr("http.route"), Some("/checkout"));
    assert_eq!(front.attr("http.response.status_code"), Some("200"));
    assert_eq!(
        front.resource.get("cloud.region").map(String::as_str),
        Some("test-1")
    );
    assert!(!front.error);

    // HTTP hop that succeeds.
    let get_item = one(&spans, |s| {
        s.service == "frontend"
            && s.kind == "Client"
            && s.attr("url.full").is_some_and(|u| u.ends_with("/items/42"))
    });
    assert_eq!(get_item.parent_span_id, front.span_id);
    assert_eq!(get_item.attr("server.address"), Some("127.0.0.1"));
    assert_eq!(get_item.attr("peer.service"), Some("backend"));
    assert_eq!(get_item.attr("http.request.method"), Some("GET"));
    let item = one(&spans, |s| {
        s.service == "backend" && s.name == "GET /items/{id}"
    });
    assert_eq!(item.kind, "Server");
    assert_eq!(item.parent_span_id, get_item.span_id);
    assert_eq!(item.attr("url.path"), Some("/items/42"));
    assert_eq!(item.attr("server.address"), Some("127.0.0.1"));
    assert!(!item.error && !get_item.error);
    assert!(item.start_unix_nano >= get_item.start_unix_nano);
    assert!(item.end_unix_nano <= get_item.end_unix_nano);

    // HTTP hop that fails with a 5xx: both sides marked Error.
    let get_boom = one(&spans, |s| {
        s.kind == "Client" && s.attr("url.full").is_some_and(|u| u.ends_with("/boom"))
    });
    let boom = one(&spans, |s| s.name == "GET /boom");
    assert_eq!(boom.parent_span_id, get_boom.span_id);
    assert_eq!(boom.attr("http.response.status_code"), Some("500"));
    assert!(boom.error && get_boom.error);

    // gRPC hops: one OK, one INTERNAL.
    let grpc_clients: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == "Client" && s.attr("rpc.system") == Some("grpc"))
        .collect();
    assert_eq!(grpc_clients.len(), 2);
    for client in grpc_clients {
        assert_eq!(client.parent_span_id, front.span_id);
        assert_eq!(
            client.attr("rpc.service"),
            Some("opentelemetry.proto.collector.trace.v1.TraceService")
        );
        assert_eq!(client.attr("rpc.method"), Some("Export"));
        let server = one(&spans, |s| s.parent_span_id == client.span_id);
        assert_eq!(server.service, "backend");
        assert_eq!(server.kind, "Server");
        assert_eq!(server.attr("rpc.system"), Some("grpc"));
        assert_eq!(
            server.attr("rpc.grpc.status_code"),
            client.attr("rpc.grpc.status_code")
        );
        let failed = client.attr("rpc.grpc.status_code") == Some("13");
        assert_eq!(client.error, failed);
        assert_eq!(server.error, failed);
    }
}

fn tokio_stream(
    listener: tokio::net::TcpListener,
) -> impl futures_core::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |l| async move {
        Some((l.accept().await.map(|(s, _)| s), l))
    })
}
