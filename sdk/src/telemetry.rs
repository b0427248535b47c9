//! Tracer provider set-up from `OTEL_*` settings, and the guard that flushes it.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{KeyValue, global};
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, filter};

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The OTLP exporter rejected its settings (endpoint, headers…).
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// A header given to [`Builder::header`] is not a valid gRPC metadata entry.
    #[error("invalid OTLP header {0:?}")]
    Header(String),
}

/// Sets up tracing export from the `OTEL_*` environment and installs it globally: the global
/// tracer provider and propagator, and a `tracing` subscriber (filtered by `RUST_LOG`, default
/// `info`) that logs to stderr and exports spans. Keep the returned guard alive until exit.
///
/// Equivalent to `Builder::new().install()`. Must be called inside a Tokio runtime.
pub fn init() -> Result<Telemetry, Error> {
    Builder::new().install()
}

/// Configures a [`Telemetry`]. Values set here win over `OTEL_*` environment variables, except
/// `service_name`, which is only the fallback when `OTEL_SERVICE_NAME` is unset.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), orrery_sdk::Error> {
/// let telemetry = orrery_sdk::Builder::new()
///     .service_name("checkout")
///     .endpoint("http://127.0.0.1:4317")
///     .resource_attribute("cloud.region", "eu-west-1")
///     .build()?; // not installed globally: several services can share a process
/// assert_eq!(telemetry.service_name(), "checkout");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    service_name: Option<String>,
    endpoint: Option<String>,
    headers: Vec<(String, String)>,
    resource: Vec<KeyValue>,
    ignore_env_resource: bool,
}

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }

    /// `service.name` when `OTEL_SERVICE_NAME` is unset (default: the executable's name).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// OTLP/gRPC endpoint, e.g. `http://collector:4317`; overrides `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// An extra gRPC metadata entry sent with every export (e.g. an API key), in addition to
    /// `OTEL_EXPORTER_OTLP_HEADERS`.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((key.into(), value.into()));
        self
    }

    /// A resource attribute such as `cloud.region` or `service.instance.id`.
    pub fn resource_attribute(
        mut self,
        key: impl Into<String>,
        value: impl Into<opentelemetry::Value>,
    ) -> Self {
        self.resource.push(KeyValue::new(key.into(), value.into()));
        self
    }

    /// Ignore `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`: the resource is exactly what
    /// this builder says. For processes that host several services (the demo fleet).
    pub fn ignore_env_resource(mut self) -> Self {
        self.ignore_env_resource = true;
        self
    }

    /// Builds the provider without touching global state.
    pub fn build(self) -> Result<Telemetry, Error> {
        let mut metadata = tonic::metadata::MetadataMap::new();
        for (k, v) in &self.headers {
            let key = tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                .map_err(|_| Error::Header(k.clone()))?;
            let value = v.parse().map_err(|_| Error::Header(k.clone()))?;
            metadata.insert(key, value);
        }
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_metadata(metadata)
            .with_timeout(Duration::from_secs(10));
        if let Some(endpoint) = &self.endpoint {
            exporter = exporter.with_endpoint(endpoint.clone());
        }
        let exporter = exporter.build()?;

        let resource = self.resource();
        let service_name = resource
            .get(&opentelemetry::Key::from_static_str("service.name"))
            .map(|v| v.to_string())
            .unwrap_or_default();
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_batch_exporter(exporter)
            .build();
        let tracer = provider.tracer("orrery-sdk");
        Ok(Telemetry {
            provider,
            tracer,
            service_name,
        })
    }

    /// Builds the provider and installs it globally (provider, W3C propagators, `tracing`
    /// subscriber). A subscriber installed earlier is kept; the rest still applies.
    pub fn install(self) -> Result<Telemetry, Error> {
        let telemetry = self.build()?;
        global::set_tracer_provider(telemetry.provider.clone());
        global::set_text_map_propagator(crate::propagation::w3c());
        // The exporter's own transport must not be traced, or every export makes more spans.
        let quiet = filter::Targets::new()
            .with_default(tracing::Level::TRACE)
            .with_target("opentelemetry", tracing::Level::WARN)
            .with_target("tonic", tracing::Level::WARN)
            .with_target("h2", tracing::Level::WARN)
            .with_target("hyper", tracing::Level::WARN)
            .with_target("tower", tracing::Level::WARN)
            .with_target("reqwest", tracing::Level::WARN);
        let otel = tracing_opentelemetry::layer()
            .with_tracer(telemetry.tracer.clone())
            .with_filter(quiet);
        let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let _ = tracing_subscriber::registry()
            .with(env)
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .with(otel)
            .try_init();
        Ok(telemetry)
    }

    fn resource(&self) -> Resource {
        let mut builder = if self.ignore_env_resource {
            Resource::builder_empty()
        } else {
            Resource::builder()
        };
        let env_name = !self.ignore_env_resource
            && std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty());
        let env_attr_name = !self.ignore_env_resource
            && std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| {
                v.split(',')
                    .any(|kv| kv.trim().starts_with("service.name="))
            });
        if !env_name && !env_attr_name {
            let name = self
                .service_name
                .clone()
                .unwrap_or_else(default_service_name);
            builder = builder.with_service_name(name);
        }
        builder
            .with_attributes(self.resource.iter().cloned())
            .with_attribute(KeyValue::new("telemetry.sdk.name", "opentelemetry"))
            .with_attribute(KeyValue::new("telemetry.sdk.language", "rust"))
            .build()
    }
}

fn default_service_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown_service".into())
}

/// A configured tracer provider. Flushes and shuts the exporter down when dropped; call
/// [`Telemetry::shutdown`] from async code to do that without blocking a runtime thread.
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    service_name: String,
}

impl Telemetry {
    /// The tracer to hand to [`crate::OtelLayer`], [`crate::TracedClient`] and friends.
    pub fn tracer(&self) -> &SdkTracer {
        &self.tracer
    }

    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// The resource's `service.name`.
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// Exports every finished span now.
    pub async fn flush(&self) {
        let provider = self.provider.clone();
        let _ = tokio::task::spawn_blocking(move || provider.force_flush()).await;
    }

    /// Flushes and stops the exporter.
    pub async fn shutdown(self) {
        let provider = self.provider.clone();
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        // A no-op (an "already shut down" error) after `shutdown`.
        let _ = self.provider.shutdown();
    }
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("service_name", &self.service_name)
            .finish()
    }
}

/// Resolves on SIGTERM or Ctrl-C: pass it to `axum::serve(..).with_graceful_shutdown(..)` and
/// let the [`Telemetry`] guard drop afterwards, so in-flight spans are exported before exit.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
