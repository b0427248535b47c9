//! Server spans for tower services (axum routers, tonic servers).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;

use crate::propagation::{HeaderExtractor, extract};
use crate::semconv::{is_server_error, split_host_port};

/// A tower layer recording one server span per request, as a child of the caller's
/// `traceparent`. HTTP requests get the HTTP semantic conventions (`http.request.method`,
/// `url.path`, `http.route` from axum's `MatchedPath`, `http.response.status_code`,
/// `server.address`…; status Error for 5xx); gRPC requests (`content-type: application/grpc`)
/// get the RPC ones (`rpc.system`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code`).
/// The span is the current context while the inner service runs, so outgoing calls made with
/// [`crate::TracedClient`] or [`crate::grpc`] become its children.
///
/// ```
/// use axum::{Router, routing::get};
/// # #[tokio::main] async fn main() -> Result<(), orrery_sdk::Error> {
/// let telemetry = orrery_sdk::Builder::new().service_name("hello").build()?;
/// let app: Router = Router::new()
///     .route("/hello/{name}", get(|| async { "hi" }))
///     .layer(orrery_sdk::OtelLayer::new(telemetry.tracer().clone()));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OtelLayer {
    tracer: SdkTracer,
}

impl OtelLayer {
    pub fn new(tracer: SdkTracer) -> Self {
        Self { tracer }
    }
}

impl<S> tower::Layer<S> for OtelLayer {
    type Service = OtelService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OtelService {
            inner,
            tracer: self.tracer.clone(),
        }
    }
}

/// The service made by [`OtelLayer`].
#[derive(Clone)]
pub struct OtelService<S> {
    inner: S,
    tracer: SdkTracer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqB, ResB> tower::Service<http::Request<ReqB>> for OtelService<S>
where
    S: tower::Service<http::Request<ReqB>, Response = http::Response<ResB>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
    ReqB: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqB>) -> Self::Future {
        // The clone that was polled ready handles this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let parent = extract(&HeaderExtractor(req.headers()));
        let request = RequestInfo::of(&req);
        let span = self
            .tracer
            .span_builder(request.span_name())
            .with_kind(SpanKind::Server)
            .with_attributes(request.attributes())
            .start_with_context(&self.tracer, &parent);
        let cx = parent.with_span(span);
        Box::pin(async move {
            let result = inner.call(req).with_context(cx.clone()).await;
            let span = cx.span();
            match &result {
                Ok(resp) => request.record_response(&cx, resp),
                Err(e) => {
                    span.set_attribute(KeyValue::new("error.type", "internal"));
                    span.set_status(Status::error(e.to_string()));
                }
            }
            span.end();
            result
        })
    }
}

struct RequestInfo {
    method: String,
    path: String,
    route: Option<String>,
    grpc: bool,
    host: Option<(String, Option<i64>)>,
    user_agent: Option<String>,
    version: &'static str,
}

impl RequestInfo {
    fn of<B>(req: &http::Request<B>) -> Self {
        let headers = req.headers();
        let grpc = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/grpc"));
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                headers
                    .get(http::header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            })
            .map(|h| split_host_port(&h));
        Self {
            method: req.method().as_str().to_string(),
            path: req.uri().path().to_string(),
            route: req
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map(|m| m.as_str().to_string()),
            grpc,
            host,
            user_agent: headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            version: match req.version() {
                http::Version::HTTP_10 => "1.0",
                http::Version::HTTP_2 => "2",
                http::Version::HTTP_3 => "3",
                _ => "1.1",
            },
        }
    }

    fn span_name(&self) -> String {
        if self.grpc {
            return self.path.trim_start_matches('/').to_string();
        }
        match &self.route {
            Some(route) => format!("{} {route}", self.method),
            None => self.method.clone(),
        }
    }

    fn attributes(&self) -> Vec<KeyValue> {
        let mut attrs = Vec::with_capacity(10);
        if self.grpc {
            let (service, method) = self
                .path
                .trim_start_matches('/')
                .split_once('/')
                .unwrap_or((&self.path, ""));
            attrs.push(KeyValue::new("rpc.system", "grpc"));
            attrs.push(KeyValue::new("rpc.service", service.to_string()));
            attrs.push(KeyValue::new("rpc.method", method.to_string()));
        } else {
            attrs.push(KeyValue::new("http.request.method", self.method.clone()));
            attrs.push(KeyValue::new("url.path", self.path.clone()));
            attrs.push(KeyValue::new("url.scheme", "http"));
            if let Some(route) = &self.route {
                attrs.push(KeyValue::new("http.route", route.clone()));
            }
            if let Some(ua) = &self.user_agent {
                attrs.push(KeyValue::new("user_agent.original", ua.clone()));
            }
        }
        attrs.push(KeyValue::new("network.protocol.version", self.version));
        if let Some((host, port)) = &self.host {
            attrs.push(KeyValue::new("server.address", host.clone()));
            if let Some(port) = port {
                attrs.push(KeyValue::new("server.port", *port));
            }
        }
        attrs
    }

    fn record_response<B>(&self, cx: &Context, resp: &http::Response<B>) {
        let span = cx.span();
        let status = resp.status().as_u16();
        if self.grpc {
            // Errors come back "trailers-only", i.e. with grpc-status in the headers.
            let code = resp
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0);
            span.set_attribute(KeyValue::new("rpc.grpc.status_code", code));
            if is_server_error(code) {
                let message = resp
                    .headers()
                    .get("grpc-message")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                span.set_attribute(KeyValue::new("error.type", code.to_string()));
                span.set_status(Status::error(message));
            }
        } else {
            span.set_attribute(KeyValue::new("http.response.status_code", status as i64));
            if status >= 500 {
                span.set_attribute(KeyValue::new("error.type", status.to_string()));
                span.set_status(Status::error(""));
            }
        }
    }
}
