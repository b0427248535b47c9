//! # orrery-sdk: export traces from a Rust service in three lines
//!
//! Works with any OTLP/gRPC backend (Orrery, the OpenTelemetry Collector, Jaeger, …). Settings
//! come from the standard `OTEL_*` environment variables, as the OpenTelemetry specification
//! says: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (default `http://localhost:4317`), `OTEL_EXPORTER_OTLP_HEADERS` (and their `_TRACES_` twins).
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), orrery_sdk::Error> {
//! let _telemetry = orrery_sdk::init()?; // flushes when dropped
//! tracing::info_span!("work").in_scope(|| tracing::info!("exported as a span event"));
//! # Ok(()) }
//! ```
//!
//! The pieces:
//! - [`init`] / [`Builder`]: a tracer provider exporting OTLP over gRPC, W3C `traceparent` +
//!   `baggage` propagation, and a `tracing` subscriber bridged to OpenTelemetry. [`Telemetry`]
//!   is the guard that flushes on drop; [`shutdown_signal`] resolves on SIGTERM / Ctrl-C.
//! - [`OtelLayer`]: a tower layer (axum, tonic, hyper) that extracts the caller's context and
//!   records a server span with the HTTP (or gRPC) semantic conventions.
//! - [`TracedClient`]: a `reqwest` wrapper that injects the context and records client spans
//!   with `server.address` and `peer.service`.
//! - [`grpc`]: tonic interceptors that inject / extract context, and [`grpc::client_call`] for
//!   gRPC client spans.
//! - [`propagation`]: inject / extract context into any string map (message headers).

mod client;
pub mod grpc;
pub mod propagation;
mod semconv;
mod server;
mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use client::TracedClient;
pub use server::{OtelLayer, OtelService};
pub use telemetry::{Builder, Error, Telemetry, init, shutdown_signal};

/// Re-exported so users name the same versions the SDK was built with.
pub use opentelemetry;
pub use opentelemetry_sdk;
/// The tracer type every layer in this crate takes (see [`Telemetry::tracer`]).
pub use opentelemetry_sdk::trace::SdkTracer as Tracer;
