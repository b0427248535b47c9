//! The running fleet: one axum server (HTTP/1 + h2c gRPC) per service on a loopback port, each
//! with its own tracer provider and resource, a queue between checkout and orders, and calls to
//! uninstrumented peers recorded as client spans. Services in [`CANARIES`] also run a canary
//! instance of a newer version that takes a share of their HTTP calls, so canary checks
//! (docs/checks.md) have two versions to compare and chaos can hurt only the canary
//! (`payments@1.5.0`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::{MethodFilter, on};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{Link, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use orrery_sdk::opentelemetry;
use orrery_sdk::{Builder, OtelLayer, Telemetry, TracedClient, Tracer};
use rand::Rng;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::chaos::{Chaos, Verdict};
use crate::grpc;
use crate::topology::{self, Peer, PeerKind, Route, ServiceSpec, Step};

/// The version every service runs.
pub const VERSION: &str = "1.4.2";

/// Services that also run a canary: (service, the canary's version, share of the service's
/// HTTP calls it takes).
pub const CANARIES: &[(&str, &str, f64)] = &[("payments", "1.5.0", 0.3)];

/// How to run the fleet.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// OTLP/gRPC endpoint every service exports to.
    pub otlp_endpoint: String,
}

/// One running service.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceInfo {
    pub name: String,
    pub version: String,
    pub region: String,
    pub instance_id: String,
    pub url: String,
}

pub struct Fleet {
    services: Vec<ServiceInfo>,
    chaos: Arc<Chaos>,
    telemetry: Vec<Telemetry>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// A message on the in-process queue: body plus propagation headers.
struct Message {
    headers: HashMap<String, String>,
}

/// What one service needs to handle calls.
struct Svc {
    name: &'static str,
    region: &'static str,
    /// `name@version`: the chaos target that hits only this version's instances.
    versioned: String,
    /// Canary instances of other services and the share of HTTP calls each takes.
    canaries: Arc<HashMap<&'static str, (String, f64)>>,
    tracer: Tracer,
    http: TracedClient,
    urls: Arc<HashMap<&'static str, String>>,
    channels: Arc<HashMap<&'static str, (String, tonic::transport::Channel)>>,
    queues: Arc<HashMap<&'static str, mpsc::Sender<Message>>>,
    chaos: Arc<Chaos>,
}

#[derive(Debug)]
enum Failure {
    Unavailable,
    Internal(String),
}

impl Fleet {
    /// Starts every service, the queue consumers, nothing else (see [`crate::loadgen`]).
    pub async fn start(config: &FleetConfig) -> Result<Fleet> {
        let specs = topology::services();
        let mut listeners = Vec::new();
        let mut urls = HashMap::new();
        for spec in &specs {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            urls.insert(spec.name, format!("http://{}", l.local_addr()?));
            listeners.push(l);
        }
        let mut canary_listeners = Vec::new();
        let mut canaries = HashMap::new();
        for (name, version, share) in CANARIES {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            canaries.insert(*name, (format!("http://{}", l.local_addr()?), *share));
            canary_listeners.push((*name, *version, l));
        }
        let canaries = Arc::new(canaries);
        let mut channels = HashMap::new();
        for (name, url) in &urls {
            let channel = tonic::transport::Endpoint::from_shared(url.clone())?
                .timeout(Duration::from_secs(10))
                .connect_lazy();
            let authority = url.trim_start_matches("http://").to_string();
            channels.insert(*name, (authority, channel));
        }
        let targets = specs
            .iter()
            .map(|s| (s.name.to_string(), s.region.to_string()))
            .chain(
                topology::peers(&specs)
                    .into_iter()
                    .map(|p| (p.name.to_string(), p.region.to_string())),
            )
            .chain([(topology::QUEUE_PEER.to_string(), "us-east-1".to_string())])
            .chain(CANARIES.iter().flat_map(|(name, version, _)| {
                let region = specs
                    .iter()
                    .find(|s| s.name == *name)
                    .map_or("", |s| s.region);
                [
                    (format!("{name}@{VERSION}"), region.to_string()),
                    (format!("{name}@{version}"), region.to_string()),
                ]
            }));
        let services: Vec<String> = specs.iter().map(|s| s.name.to_string()).collect();
        let chaos = Arc::new(Chaos::new(targets).with_services(services));
        let mut queue_rx = HashMap::new();
        let mut queues = HashMap::new();
        for spec in &specs {
            if let Some((topic, _)) = &spec.consumes {
                let (tx, rx) = mpsc::channel(10_000);
                queues.insert(*topic, tx);
                queue_rx.insert(*topic, rx);
            }
        }
        let (urls, channels, queues) = (Arc::new(urls), Arc::new(channels), Arc::new(queues));

        let stop = CancellationToken::new();
        let mut fleet = Fleet {
            services: Vec::new(),
            chaos: chaos.clone(),
            telemetry: Vec::new(),
            stop: stop.clone(),
            tasks: Vec::new(),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()?;
        // The fleet's own instances, then each canary: the same spec under a newer version.
        let mut instances: Vec<(ServiceSpec, tokio::net::TcpListener, &'static str, bool)> = specs
            .iter()
            .cloned()
            .zip(listeners)
            .map(|(spec, l)| (spec, l, VERSION, false))
            .collect();
        for (name, version, l) in canary_listeners {
            let spec = specs
                .iter()
                .find(|s| s.name == name)
                .expect("canary of a fleet service");
            instances.push((spec.clone(), l, version, true));
        }
        for (spec, listener, version, canary) in instances {
            let instance_id = if canary {
                format!("{}-canary-{:04x}", spec.name, rand::rng().random::<u16>())
            } else {
                format!("{}-{:04x}", spec.name, rand::rng().random::<u16>())
            };
            let url = format!("http://{}", listener.local_addr()?);
            let builder = Builder::new()
                .service_name(spec.name)
                .endpoint(config.otlp_endpoint.clone())
                .ignore_env_resource()
                .resource_attribute("service.namespace", "orrery-demo")
                .resource_attribute("service.version", version)
                .resource_attribute("service.instance.id", instance_id.clone())
                .resource_attribute("cloud.provider", "aws")
                .resource_attribute("cloud.region", spec.region)
                .resource_attribute("deployment.environment.name", "demo");
            let telemetry = builder.build().context("tracer provider")?;
            let svc = Arc::new(Svc {
                name: spec.name,
                region: spec.region,
                versioned: format!("{}@{version}", spec.name),
                canaries: canaries.clone(),
                tracer: telemetry.tracer().clone(),
                http: TracedClient::with_client(http.clone(), telemetry.tracer().clone()),
                urls: urls.clone(),
                channels: channels.clone(),
                queues: queues.clone(),
                chaos: chaos.clone(),
            });
            fleet.services.push(ServiceInfo {
                name: spec.name.to_string(),
                version: version.to_string(),
                region: spec.region.to_string(),
                instance_id,
                url,
            });
            // A canary shares the service's queue consumer role with nobody: only HTTP/gRPC.
            if let Some((topic, route)) = spec.consumes.as_ref().filter(|_| !canary) {
                let rx = queue_rx.remove(topic).expect("one consumer per topic");
                let task = consume(svc.clone(), topic, route.clone(), rx, stop.clone());
                fleet.tasks.push(tokio::spawn(task));
            }
            let chaos = chaos.clone();
            let app = router(&spec, svc)
                .layer(OtelLayer::new(telemetry.tracer().clone()))
                .layer(axum::middleware::from_fn(
                    move |req: axum::extract::Request, next: axum::middleware::Next| {
                        silence(chaos.clone(), spec.name, req, next)
                    },
                ));
            let stop = stop.clone();
            fleet.tasks.push(tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
            }));
            fleet.telemetry.push(telemetry);
        }
        Ok(fleet)
    }

    pub fn services(&self) -> &[ServiceInfo] {
        &self.services
    }

    pub fn chaos(&self) -> &Arc<Chaos> {
        &self.chaos
    }

    /// The edge gateway's base URL, where user traffic enters.
    pub fn gateway_url(&self) -> &str {
        &self
            .services
            .iter()
            .find(|s| s.name == "edge-gateway")
            .expect("gateway")
            .url
    }

    /// Exports every finished span now.
    pub async fn flush(&self) {
        futures::future::join_all(self.telemetry.iter().map(|t| t.flush())).await;
    }

    /// Stops the servers and consumers, then flushes and shuts down every exporter.
    pub async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        futures::future::join_all(self.telemetry.into_iter().map(|t| t.shutdown())).await;
    }
}

fn router(spec: &ServiceSpec, svc: Arc<Svc>) -> Router {
    let mut app = Router::new();
    for route in &spec.routes {
        let (svc, r) = (svc.clone(), route.clone());
        if grpc::is_grpc(route.path) {
            app = app.route(
                route.path,
                axum::routing::post(move |req: http::Request<Body>| {
                    let (svc, r) = (svc.clone(), r.clone());
                    grpc::serve(req, move || async move {
                        handle(&svc, &r).await.map_err(|f| match f {
                            Failure::Unavailable => tonic::Status::unavailable("region down"),
                            Failure::Internal(m) => tonic::Status::internal(m),
                        })
                    })
                }),
            );
        } else {
            let filter =
                MethodFilter::try_from(http::Method::from_bytes(route.method.as_bytes()).unwrap())
                    .unwrap();
            app = app.route(
                route.path,
                on(filter, move || {
                    let (svc, r) = (svc.clone(), r.clone());
                    async move {
                        match handle(&svc, &r).await {
                            Ok(()) => (StatusCode::OK, "ok".to_string()),
                            Err(Failure::Unavailable) => {
                                (StatusCode::SERVICE_UNAVAILABLE, "region down".to_string())
                            }
                            Err(Failure::Internal(m)) => (StatusCode::INTERNAL_SERVER_ERROR, m),
                        }
                    }
                }),
            );
        }
    }
    app
}

/// Silence (chaos): the request reaches the service with its `traceparent` marked not sampled,
/// so the service's spans (and those it causes downstream) are not recorded — the service
/// answers as before but reports nothing, like one whose telemetry broke. Its callers' client
/// spans stay, now without a server child.
async fn silence(
    chaos: Arc<Chaos>,
    name: &'static str,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if chaos.silenced(name) {
        let unsampled = req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.get(..52))
            .map(|head| format!("{head}-00"))
            .unwrap_or_else(|| {
                let (t, s): (u128, u64) = (rand::rng().random(), rand::rng().random());
                format!("00-{:032x}-{:016x}-00", t.max(1), s.max(1))
            });
        if let Ok(v) = http::HeaderValue::from_str(&unsampled) {
            req.headers_mut().insert("traceparent", v);
        }
    }
    next.run(req).await
}

/// One call into a service: chaos first, then its own work, then its downstream steps.
async fn handle(svc: &Svc, route: &Route) -> Result<(), Failure> {
    match svc
        .chaos
        .apply_as(&[svc.name, svc.versioned.as_str()], svc.region)
        .await
    {
        Verdict::Unavailable => return Err(Failure::Unavailable),
        Verdict::Fail => return Err(Failure::Internal("chaos monkey".into())),
        Verdict::Healthy => {}
    }
    let work = rand::rng().random_range(route.work_ms.0..=route.work_ms.1);
    tokio::time::sleep(Duration::from_millis(work)).await;
    for step in &route.steps {
        run_step(svc, step).await?;
    }
    Ok(())
}

fn run_step<'a>(
    svc: &'a Svc,
    step: &'a Step,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Failure>> + Send + 'a>> {
    Box::pin(async move {
        match step {
            Step::Http {
                service,
                method,
                path,
                optional,
            } => {
                // A service with a canary: a share of its calls goes to the canary instance.
                let base = match svc.canaries.get(service) {
                    Some((url, share)) if rand::rng().random_bool(*share) => url,
                    _ => &svc.urls[service],
                };
                let url = format!("{base}{path}");
                let method = http::Method::from_bytes(method.as_bytes()).expect("method");
                let client = svc.http.clone().peer_service(*service);
                let result = client.send(client.inner().request(method, url)).await;
                match result {
                    Ok(r) if r.status().is_success() => Ok(()),
                    _ if *optional => Ok(()),
                    Ok(r) => Err(Failure::Internal(format!(
                        "{service} answered {}",
                        r.status()
                    ))),
                    Err(e) => Err(Failure::Internal(format!("{service}: {e}"))),
                }
            }
            Step::Grpc { service, method } => {
                let (authority, channel) = &svc.channels[service];
                let call = grpc::call(grpc::client(channel.clone()), method, svc.name);
                orrery_sdk::grpc::client_call(&svc.tracer, authority, method, call)
                    .await
                    .map(|_| ())
                    .map_err(|s| Failure::Internal(format!("{service}: {}", s.message())))
            }
            Step::Peer(peer) => call_peer(svc, peer).await,
            Step::Publish { topic } => publish(svc, topic).await,
            Step::Parallel(steps) => {
                let results = futures::future::join_all(
                    steps
                        .iter()
                        .map(|s| run_step(svc, s).with_current_context()),
                )
                .await;
                results
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()
                    .map(|_| ())
            }
        }
    })
}

/// A client span for a dependency that exports nothing itself.
async fn call_peer(svc: &Svc, peer: &Peer) -> Result<(), Failure> {
    let host = match peer.kind {
        PeerKind::Database(..) => format!("{}.{}.internal", peer.name, peer.region),
        PeerKind::External(host, _) => host.to_string(),
    };
    let mut attrs = vec![
        KeyValue::new("peer.service", peer.name),
        KeyValue::new("server.address", host.clone()),
    ];
    let name = match peer.kind {
        PeerKind::Database(system, op, table) => {
            let port = match system {
                "postgresql" => 5432,
                "redis" => 6379,
                "mongodb" => 27017,
                "cassandra" => 9042,
                _ => 9200,
            };
            attrs.extend([
                KeyValue::new("db.system.name", system),
                KeyValue::new("db.operation.name", op),
                KeyValue::new("db.collection.name", table),
                KeyValue::new("db.namespace", "shop"),
                KeyValue::new("server.port", port),
            ]);
            format!("{op} {table}")
        }
        PeerKind::External(_, path) => {
            attrs.extend([
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("url.full", format!("https://{host}{path}")),
                KeyValue::new("server.port", 443),
            ]);
            "POST".to_string()
        }
    };
    let parent = Context::current();
    let span = svc
        .tracer
        .span_builder(name)
        .with_kind(SpanKind::Client)
        .with_attributes(attrs)
        .start_with_context(&svc.tracer, &parent);
    let cx = parent.with_span(span);
    let verdict = svc.chaos.apply(peer.name, peer.region).await;
    let latency = rand::rng().random_range(peer.latency_ms.0..=peer.latency_ms.1);
    if verdict != Verdict::Unavailable {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let span = cx.span();
    let result = match verdict {
        Verdict::Healthy => Ok(()),
        Verdict::Unavailable => Err(Failure::Internal(format!(
            "{}: connection refused",
            peer.name
        ))),
        Verdict::Fail => Err(Failure::Internal(format!("{}: error", peer.name))),
    };
    if let PeerKind::External(..) = peer.kind {
        let status = match verdict {
            Verdict::Healthy => 200,
            Verdict::Unavailable => 503,
            Verdict::Fail => 500,
        };
        span.set_attribute(KeyValue::new("http.response.status_code", status));
    }
    if let Err(Failure::Internal(m)) = &result {
        span.set_attribute(KeyValue::new("error.type", "chaos"));
        span.set_status(Status::error(m.clone()));
    }
    span.end();
    result
}

fn messaging_attrs(topic: &str, operation: &'static str) -> Vec<KeyValue> {
    vec![
        KeyValue::new("messaging.system", topology::QUEUE_SYSTEM),
        KeyValue::new("messaging.destination.name", topic.to_string()),
        KeyValue::new("messaging.operation.type", operation),
        KeyValue::new(
            "server.address",
            format!("{}.us-east-1.internal", topology::QUEUE_PEER),
        ),
        KeyValue::new("peer.service", topology::QUEUE_PEER),
    ]
}

/// Producer span + message carrying its context.
async fn publish(svc: &Svc, topic: &str) -> Result<(), Failure> {
    let parent = Context::current();
    let span = svc
        .tracer
        .span_builder(format!("send {topic}"))
        .with_kind(SpanKind::Producer)
        .with_attributes(messaging_attrs(topic, "send"))
        .start_with_context(&svc.tracer, &parent);
    let cx = parent.with_span(span);
    let verdict = svc.chaos.apply(topology::QUEUE_PEER, "us-east-1").await;
    let mut headers = HashMap::new();
    orrery_sdk::propagation::inject(&cx, &mut headers);
    let result = match verdict {
        Verdict::Healthy => svc.queues[topic]
            .try_send(Message { headers })
            .map_err(|e| Failure::Internal(format!("queue {topic}: {e}"))),
        _ => Err(Failure::Internal(format!("queue {topic} unavailable"))),
    };
    if let Err(Failure::Internal(m)) = &result {
        cx.span().set_status(Status::error(m.clone()));
    }
    cx.span().end();
    result
}

/// Consumes a topic: one consumer span per message, child of (and linked to) the producer span.
async fn consume(
    svc: Arc<Svc>,
    topic: &'static str,
    route: Route,
    mut rx: mpsc::Receiver<Message>,
    stop: CancellationToken,
) {
    loop {
        let msg = tokio::select! {
            m = rx.recv() => match m { Some(m) => m, None => return },
            _ = stop.cancelled() => return,
        };
        let producer = orrery_sdk::propagation::extract(&msg.headers);
        let link = Link::with_context(producer.span().span_context().clone());
        let span = svc
            .tracer
            .span_builder(format!("process {topic}"))
            .with_kind(SpanKind::Consumer)
            .with_attributes(messaging_attrs(topic, "process"))
            .with_links(vec![link])
            .start_with_context(&svc.tracer, &producer);
        let cx = producer.with_span(span);
        let svc = svc.clone();
        let route = route.clone();
        // Messages are handled concurrently, like a consumer with prefetch.
        tokio::spawn(async move {
            let result = handle(&svc, &route).with_context(cx.clone()).await;
            if let Err(e) = result {
                cx.span().set_status(Status::error(format!("{e:?}")));
            }
            cx.span().end();
        });
    }
}

/// Where the control API listens; used by `orrery demo`.
pub fn fleet_json(fleet: &Fleet, control: SocketAddr) -> serde_json::Value {
    serde_json::json!({ "services": fleet.services, "control": format!("http://{control}") })
}
