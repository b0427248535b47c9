//! `orrery_sdk::init()` configured only by `OTEL_*` variables: service name, resource
//! attributes, endpoint and headers reach a real OTLP/gRPC receiver, and `tracing` spans export
//! with their parent/child structure when the guard is dropped.

use std::time::Duration;

use orrery_sdk::testing::OtlpRecorder;

#[test]
fn init_reads_otel_env_and_the_guard_flushes_tracing_spans_on_drop() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let recorder = rt.block_on(OtlpRecorder::start()).unwrap();
    // SAFETY: set before any other thread of this test binary reads the environment.
    unsafe {
        std::env::set_var("OTEL_SERVICE_NAME", "billing");
        std::env::set_var(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=test,cloud.region=eu-west-1",
        );
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", recorder.endpoint());
        std::env::set_var("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cret");
    }
    rt.block_on(async {
        let telemetry = orrery_sdk::init().unwrap();
        assert_eq!(telemetry.service_name(), "billing");
        {
            let outer = tracing::info_span!("invoice", invoice.id = 7);
            let _o = outer.enter();
            tracing::info_span!("render").in_scope(|| tracing::info!("rendered"));
        }
        // Dropping the guard (off the async threads: it blocks) must export what was buffered.
        tokio::task::spawn_blocking(move || drop(telemetry))
            .await
            .unwrap();
        let spans = recorder
            .wait_for(Duration::from_secs(5), |s| s.len() >= 2)
            .await;
        assert_eq!(spans.len(), 2, "{spans:#?}");
        let invoice = spans.iter().find(|s| s.name == "invoice").unwrap();
        let render = spans.iter().find(|s| s.name == "render").unwrap();
        assert_eq!(render.parent_span_id, invoice.span_id);
        assert_eq!(render.trace_id, invoice.trace_id);
        assert!(invoice.parent_span_id.is_empty());
        assert_eq!(invoice.attr("invoice.id"), Some("7"));
        assert_eq!(invoice.service, "billing");
        assert_eq!(invoice.resource["cloud.region"], "eu-west-1");
        assert_eq!(invoice.resource["deployment.environment.name"], "test");
        assert_eq!(invoice.resource["telemetry.sdk.language"], "rust");
        let headers = recorder.export_headers();
        assert!(
            headers
                .iter()
                .all(|h| h.get("x-api-key").map(String::as_str) == Some("s3cret"))
        );

        // The global propagator speaks W3C.
        let mut carrier = std::collections::HashMap::new();
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&opentelemetry::Context::new(), &mut carrier)
        });
        let fields: Vec<String> = opentelemetry::global::get_text_map_propagator(|p| {
            p.fields().map(str::to_string).collect()
        });
        assert!(
            fields.contains(&"traceparent".to_string()) && fields.contains(&"baggage".to_string())
        );
    });
}
