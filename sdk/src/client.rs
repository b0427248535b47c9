//! Client spans for outgoing HTTP calls made with `reqwest`.

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;

use crate::propagation::{HeaderInjector, inject};

/// A `reqwest::Client` that records a client span per request (`http.request.method`,
/// `server.address`, `server.port`, `url.full`, `peer.service`, `http.response.status_code`;
/// status Error for 4xx/5xx and transport failures) as a child of the current context, and
/// sends `traceparent`/`baggage` so the server's span becomes its child.
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let telemetry = orrery_sdk::init()?;
/// let http = orrery_sdk::TracedClient::new(telemetry.tracer().clone()).peer_service("pricing");
/// let price = http.send(http.get("http://pricing:8080/price/42")).await?.text().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TracedClient {
    client: reqwest::Client,
    tracer: SdkTracer,
    peer_service: Option<String>,
}

impl TracedClient {
    pub fn new(tracer: SdkTracer) -> Self {
        Self::with_client(reqwest::Client::new(), tracer)
    }

    pub fn with_client(client: reqwest::Client, tracer: SdkTracer) -> Self {
        Self {
            client,
            tracer,
            peer_service: None,
        }
    }

    /// Names the called service (`peer.service`), for callees that export no spans themselves.
    pub fn peer_service(mut self, name: impl Into<String>) -> Self {
        self.peer_service = Some(name.into());
        self
    }

    /// The wrapped client, for building requests.
    pub fn inner(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn get(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.client.get(url)
    }

    pub fn post(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.client.post(url)
    }

    /// Builds and sends a request made with [`Self::get`], [`Self::post`] or [`Self::inner`].
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> reqwest::Result<reqwest::Response> {
        self.execute(request.build()?).await
    }

    /// Sends a request inside a client span.
    pub async fn execute(
        &self,
        mut request: reqwest::Request,
    ) -> reqwest::Result<reqwest::Response> {
        let method = request.method().as_str().to_string();
        let url = request.url();
        let mut attrs = vec![
            KeyValue::new("http.request.method", method.clone()),
            KeyValue::new("url.full", redact(url)),
        ];
        if let Some(host) = url.host_str() {
            attrs.push(KeyValue::new("server.address", host.to_string()));
        }
        if let Some(port) = url.port_or_known_default() {
            attrs.push(KeyValue::new("server.port", port as i64));
        }
        if let Some(peer) = &self.peer_service {
            attrs.push(KeyValue::new("peer.service", peer.clone()));
        }
        let parent = Context::current();
        let span = self
            .tracer
            .span_builder(method)
            .with_kind(SpanKind::Client)
            .with_attributes(attrs)
            .start_with_context(&self.tracer, &parent);
        let cx = parent.with_span(span);
        inject(&cx, &mut HeaderInjector(request.headers_mut()));
        let result = self.client.execute(request).with_context(cx.clone()).await;
        let span = cx.span();
        match &result {
            Ok(resp) => {
                let status = resp.status().as_u16();
                span.set_attribute(KeyValue::new("http.response.status_code", status as i64));
                if status >= 400 {
                    span.set_attribute(KeyValue::new("error.type", status.to_string()));
                    span.set_status(Status::error(""));
                }
            }
            Err(e) => {
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "transport"
                };
                span.set_attribute(KeyValue::new("error.type", kind));
                span.set_status(Status::error(e.to_string()));
            }
        }
        span.end();
        result
    }
}

/// `url.full` without credentials, per the semantic conventions.
fn redact(url: &reqwest::Url) -> String {
    if url.password().is_none() && url.username().is_empty() {
        return url.to_string();
    }
    let mut u = url.clone();
    let _ = u.set_username("REDACTED");
    let _ = u.set_password(Some("REDACTED"));
    u.to_string()
}
