//! W3C trace-context + baggage propagation into HTTP headers, gRPC metadata and message headers.
//!
//! ```
//! use std::collections::HashMap;
//! use opentelemetry::trace::{TraceContextExt, Tracer as _, TracerProvider as _};
//!
//! let provider = orrery_sdk::opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
//! let tracer = provider.tracer("doc");
//! let span = tracer.start("produce");
//! let cx = opentelemetry::Context::current_with_span(span);
//!
//! let mut headers = HashMap::new();
//! orrery_sdk::propagation::inject(&cx, &mut headers);
//! assert!(headers["traceparent"].starts_with("00-"));
//!
//! let remote = orrery_sdk::propagation::extract(&headers);
//! assert_eq!(remote.span().span_context().trace_id(), cx.span().span_context().trace_id());
//! ```

use std::sync::OnceLock;

use opentelemetry::Context;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapCompositePropagator, TextMapPropagator,
};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

/// The W3C `traceparent`/`tracestate` + `baggage` propagator.
pub fn w3c() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
}

fn propagator() -> &'static TextMapCompositePropagator {
    static P: OnceLock<TextMapCompositePropagator> = OnceLock::new();
    P.get_or_init(w3c)
}

/// Writes `cx` into a carrier (`HashMap<String, String>`, [`HeaderInjector`], …).
pub fn inject(cx: &Context, carrier: &mut dyn Injector) {
    propagator().inject_context(cx, carrier);
}

/// Reads a remote parent (and baggage) from a carrier; an empty context if there is none.
pub fn extract(carrier: &dyn Extractor) -> Context {
    propagator().extract_with_context(&Context::new(), carrier)
}

/// Lets [`inject`] write into HTTP headers.
pub struct HeaderInjector<'a>(pub &'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            http::header::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// Lets [`extract`] read HTTP headers.
pub struct HeaderExtractor<'a>(pub &'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
