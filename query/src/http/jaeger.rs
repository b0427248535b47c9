//! Jaeger's HTTP APIs on the query port (v1 under `/api`, v3 under `/api/v3`); the handlers are
//! in `crate::jaeger` (docs/compatibility.md).

use axum::Router;
use axum::routing::get;

use crate::jaeger;
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/services", get(jaeger::v1::services_handler))
        .route(
            "/api/services/{service}/operations",
            get(jaeger::v1::service_operations_handler),
        )
        .route("/api/operations", get(jaeger::v1::operations_handler))
        .route("/api/traces", get(jaeger::v1::search_handler))
        .route("/api/traces/{id}", get(jaeger::v1::trace_handler))
        .route("/api/dependencies", get(jaeger::v1::dependencies_handler))
        .route("/api/v3/services", get(jaeger::v3::services))
        .route("/api/v3/operations", get(jaeger::v3::operations))
        .route("/api/v3/traces", get(jaeger::v3::find_traces))
        .route("/api/v3/traces/{trace_id}", get(jaeger::v3::get_trace))
        .route("/api/v3/trace-summaries", get(jaeger::v3::trace_summaries))
        .route("/api/v3/{*rest}", get(jaeger::v3::not_found))
}
