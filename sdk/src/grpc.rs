//! gRPC (tonic) both ways: context into and out of request metadata, and client spans.
//!
//! Server side, put [`crate::OtelLayer`] on the tonic server (`Server::builder().layer(..)`):
//! it records the server span with the RPC conventions. Where only the remote context is
//! wanted, [`ExtractInterceptor`] stores it in the request's extensions.
//!
//! Client side, wrap the channel with [`InjectInterceptor`] and make calls inside
//! [`client_call`], which opens the client span the interceptor then propagates:
//!
//! ```no_run
//! # async fn demo(tracer: orrery_sdk::Tracer, channel: tonic::transport::Channel) {
//! use orrery_sdk::grpc::{InjectInterceptor, client_call};
//! let channel = tonic::service::interceptor::InterceptedService::new(channel, InjectInterceptor);
//! let mut grpc = tonic::client::Grpc::new(channel);
//! // let reply = client_call(&tracer, "inventory:50051", "/shop.Inventory/Reserve", async {
//! //     grpc.ready().await?; grpc.unary(request, path, codec).await
//! // }).await;
//! # }
//! ```

use std::future::Future;

use opentelemetry::context::FutureExt as _;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use tonic::metadata::{KeyRef, MetadataKey, MetadataMap, MetadataValue};

use crate::propagation::{extract, inject};
pub use crate::semconv::is_server_error;
use crate::semconv::split_host_port;

/// Client interceptor: writes the current context (`traceparent`, `baggage`) into the request
/// metadata.
#[derive(Clone, Copy, Debug, Default)]
pub struct InjectInterceptor;

impl tonic::service::Interceptor for InjectInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        inject(
            &Context::current(),
            &mut MetadataInjector(req.metadata_mut()),
        );
        Ok(req)
    }
}

/// Server interceptor: reads the caller's context from the metadata into a [`RemoteContext`]
/// request extension.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExtractInterceptor;

/// The caller's context, as found by [`ExtractInterceptor`].
#[derive(Clone, Debug)]
pub struct RemoteContext(pub Context);

impl tonic::service::Interceptor for ExtractInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let cx = extract(&MetadataExtractor(req.metadata()));
        req.extensions_mut().insert(RemoteContext(cx));
        Ok(req)
    }
}

/// Runs a gRPC call inside a client span named after `full_method` (`/pkg.Service/Method`),
/// with `rpc.*`, `server.address` and `rpc.grpc.status_code`; status Error for any non-OK code.
pub async fn client_call<T, F>(
    tracer: &SdkTracer,
    server_address: &str,
    full_method: &str,
    call: F,
) -> Result<T, tonic::Status>
where
    F: Future<Output = Result<T, tonic::Status>>,
{
    let path = full_method.trim_start_matches('/');
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    let (host, port) = split_host_port(server_address);
    let mut attrs = vec![
        KeyValue::new("rpc.system", "grpc"),
        KeyValue::new("rpc.service", service.to_string()),
        KeyValue::new("rpc.method", method.to_string()),
        KeyValue::new("server.address", host),
    ];
    if let Some(port) = port {
        attrs.push(KeyValue::new("server.port", port));
    }
    let parent = Context::current();
    let span = tracer
        .span_builder(path.to_string())
        .with_kind(SpanKind::Client)
        .with_attributes(attrs)
        .start_with_context(tracer, &parent);
    let cx = parent.with_span(span);
    let result = call.with_context(cx.clone()).await;
    let span = cx.span();
    let code = match &result {
        Ok(_) => 0,
        Err(status) => status.code() as i64,
    };
    span.set_attribute(KeyValue::new("rpc.grpc.status_code", code));
    if let Err(status) = &result {
        span.set_attribute(KeyValue::new("error.type", code.to_string()));
        span.set_status(Status::error(status.message().to_string()));
    }
    span.end();
    result
}

/// Lets [`crate::propagation::inject`] write gRPC metadata.
pub struct MetadataInjector<'a>(pub &'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// Lets [`crate::propagation::extract`] read gRPC metadata.
pub struct MetadataExtractor<'a>(pub &'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                KeyRef::Ascii(k) => Some(k.as_str()),
                KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{TraceContextExt, Tracer as _, TracerProvider as _};
    use tonic::service::Interceptor;

    use super::*;

    #[test]
    fn context_round_trips_through_metadata_both_ways() {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let tracer = provider.tracer("t");
        let cx = Context::current_with_span(tracer.start("call"));
        let sent = {
            let _guard = cx.clone().attach();
            InjectInterceptor.call(tonic::Request::new(())).unwrap()
        };
        assert!(sent.metadata().get("traceparent").is_some());
        let received = ExtractInterceptor.call(sent).unwrap();
        let remote = received.extensions().get::<RemoteContext>().unwrap();
        let (a, b) = (
            remote.0.span().span_context().clone(),
            cx.span().span_context().clone(),
        );
        assert_eq!(a.trace_id(), b.trace_id());
        assert_eq!(a.span_id(), b.span_id());
        assert!(a.is_remote());
    }
}
