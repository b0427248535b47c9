//! The HTTP layer: every route and its handler, over the shared state (`state.rs`). Orrery's API
//! (`orrery`, the checks' part in `checks`), Jaeger's (`jaeger`; the handlers' bodies are in
//! `crate::jaeger`), the web UI's files (`ui`). The domain modules below (graph, checks, traces,
//! live, params) know nothing of HTTP state: handlers hand them the client, settings and caches.

pub mod checks;
pub mod jaeger;
pub mod orrery;
pub mod ui;

use axum::routing::get;
use axum::{Router, middleware};
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::compression::{CompressionLayer, CompressionLevel};

use crate::error::ApiError;
use crate::middleware as mw;
pub use crate::state::AppState;

/// Every route. Orrery's and Jaeger's APIs (add new API routers to `api`) require the token
/// and have their ClickHouse queries killed when the request is dropped; health and the UI's
/// static files are public (the UI must load to show its sign-in form). Every answer carries
/// the security headers, and every request is bounded in time and in number.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(orrery::routes())
        .merge(checks::routes())
        .merge(jaeger::routes())
        .route("/metrics", get(mw::metrics_handler))
        .route("/orrery/api/{*rest}", get(api_not_found))
        .route("/api/{*rest}", get(api_not_found))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            mw::kill_queries_if_dropped,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), mw::auth));
    Router::new()
        .route("/orrery/api/health", get(orrery::health_handler))
        .merge(api)
        .method_not_allowed_fallback(mw::method_not_allowed)
        .fallback(ui::serve)
        .layer(middleware::from_fn_with_state(state.clone(), mw::bounded))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            mw::panicked,
        ))
        .layer(middleware::from_fn(mw::security_headers))
        .layer(compression())
        .with_state(state)
}

/// gzip for whole answers when the client asks for it: a 2,000-service graph is 2.25 MB of
/// JSON and 0.56 MB gzipped at the fastest level (~17 ms of CPU), ~0.3 s less at 50 Mbit/s.
/// Streamed answers go out as they are: the encoder holds a streamed body until it ends
/// (tower-http#292), which would undo the trace stream's early first rows, and the live
/// stream (SSE) is excluded by the default predicate for the same reason.
fn compression() -> CompressionLayer<impl Predicate> {
    CompressionLayer::new()
        .no_br()
        .no_deflate()
        .no_zstd()
        .quality(CompressionLevel::Fastest)
        .compress_when(DefaultPredicate::new().and(WholeBody))
}

/// Only bodies whose length is known, i.e. answers computed in full before they are sent.
#[derive(Clone, Copy)]
struct WholeBody;

impl Predicate for WholeBody {
    fn should_compress<B: axum::body::HttpBody>(&self, response: &axum::http::Response<B>) -> bool {
        response.body().size_hint().exact().is_some()
    }
}

async fn api_not_found() -> ApiError {
    ApiError::not_found("no such API route")
}
