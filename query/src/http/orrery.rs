//! Orrery's own API routes (`/orrery/api/…` but the checks', `checks.rs`): each handler takes
//! its parameters typed (`params.rs`), calls the domain modules with what `AppState` holds, and
//! answers JSON.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use orrery_api::NodeId;
use serde_json::json;

use crate::graph;
use crate::params::{
    BaseParams, EdgeParams, GraphParams, Params, SearchParams, ServiceParams, StreamParams,
    WindowParams,
};
use crate::traces;

pub use crate::error::ApiError;
use crate::state::AppState;

pub type ApiResult<T> = Result<Json<T>, ApiError>;

/// Orrery's API under `/orrery/api` (behind the token; `super::router` adds the layers).
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/orrery/api/config", get(config))
        .route("/orrery/api/graph", get(graph_handler))
        .route("/orrery/api/graph/diff", get(diff_handler))
        .route("/orrery/api/graph/stream", get(stream_handler))
        .route("/orrery/api/nodes/{id}", get(node_handler))
        .route("/orrery/api/edges", get(edge_handler))
        .route("/orrery/api/services", get(services_handler))
        .route("/orrery/api/operations", get(operations_handler))
        .route("/orrery/api/traces", get(search_handler))
        .route("/orrery/api/traces/{id}", get(trace_handler))
}

/// Public (probes): says whether ClickHouse answers, not why not — the error can name internal
/// addresses, so it goes to the log.
pub(super) async fn health_handler(State(state): State<AppState>) -> Response {
    match state.ch().query("SELECT 1").fetch_one::<u8>().await {
        Ok(_) => Json(json!({"status": "ok", "clickhouse": "ok"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health: ClickHouse does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "degraded", "clickhouse": "unreachable"})),
            )
                .into_response()
        }
    }
}

async fn config(State(state): State<AppState>) -> Json<serde_json::Value> {
    let g = state.graph_args();
    Json(json!({
        "thresholds": {
            "error_rate_warning": g.graph_error_warning,
            "error_rate_danger": g.graph_error_danger,
            "p95_ms_warning": g.graph_p95_warning_ms,
            "p95_ms_danger": g.graph_p95_danger_ms,
        },
        "region_attributes": g.graph_region_attributes,
        "default_since": "5m",
        "stream_interval": humantime::format_duration(g.graph_stream_interval).to_string(),
        // What the UI's empty map tells users to point their exporters at (null: unknown).
        "otlp": { "grpc": g.ui_otlp_grpc_endpoint, "http": g.ui_otlp_http_endpoint },
    }))
}

pub use crate::params::{DEFAULT_SINCE, MAX_SEARCH_ATTRIBUTES, graph_request};

// Each handler takes its parameters typed (`params.rs`): a bad one is a 400 before it runs.

async fn graph_handler(
    State(state): State<AppState>,
    Params(g): Params<GraphParams>,
    Params(w): Params<WindowParams>,
) -> ApiResult<crate::model::Graph> {
    let req = g.request(&w, crate::now_ns())?;
    Ok(Json(
        graph::graph(&state.ch(), state.graph_args(), &state.runtime.cache, &req).await?,
    ))
}

async fn diff_handler(
    State(state): State<AppState>,
    Params(g): Params<GraphParams>,
    Params(w): Params<WindowParams>,
    Params(b): Params<BaseParams>,
) -> ApiResult<crate::model::GraphDiff> {
    let now = crate::now_ns();
    let req = g.request(&w, now)?;
    let base = b.span(req.window, now)?;
    Ok(Json(
        graph::diff(
            &state.ch(),
            state.graph_args(),
            &state.runtime.cache,
            req,
            base,
        )
        .await?,
    ))
}

/// Server-sent events of the live graph (`live.rs`).
async fn stream_handler(
    State(state): State<AppState>,
    Params(g): Params<GraphParams>,
    Params(w): Params<WindowParams>,
    Params(p): Params<StreamParams>,
) -> Result<Response, ApiError> {
    crate::live::stream(&state.live, state.live_context(), g, w, p)
}

async fn node_handler(
    State(state): State<AppState>,
    Path(id): Path<NodeId>,
    Params(w): Params<WindowParams>,
) -> ApiResult<crate::model::NodeDetail> {
    let w = w.span(crate::now_ns(), DEFAULT_SINCE)?;
    let id = id.to_string();
    match graph::detail::node(
        &state.ch(),
        state.graph_args(),
        &state.runtime.cache,
        &id,
        w,
    )
    .await?
    {
        Some(d) => Ok(Json(d)),
        None => Err(ApiError::not_found(format!(
            "no node {id:?} in this window"
        ))),
    }
}

async fn edge_handler(
    State(state): State<AppState>,
    Params(e): Params<EdgeParams>,
    Params(w): Params<WindowParams>,
) -> ApiResult<crate::model::EdgeDetail> {
    let w = w.span(crate::now_ns(), DEFAULT_SINCE)?;
    let (source, target) = e.ends()?;
    let (source, target) = (source.to_string(), target.to_string());
    match graph::detail::edge(
        &state.ch(),
        state.graph_args(),
        &state.runtime.cache,
        &source,
        &target,
        w,
    )
    .await?
    {
        Some(d) => Ok(Json(d)),
        None => Err(ApiError::not_found(format!(
            "no edge {source} -> {target} in this window"
        ))),
    }
}

async fn services_handler(
    State(state): State<AppState>,
    Params(w): Params<WindowParams>,
) -> ApiResult<serde_json::Value> {
    let w = w.span(crate::now_ns(), Duration::from_secs(86400))?;
    let services = crate::catalog::services(&state.ch(), w).await?;
    Ok(Json(json!({ "services": services })))
}

async fn operations_handler(
    State(state): State<AppState>,
    Params(p): Params<ServiceParams>,
    Params(w): Params<WindowParams>,
) -> ApiResult<serde_json::Value> {
    let w = w.span(crate::now_ns(), Duration::from_secs(86400))?;
    let Some(service) = p.service else {
        return Err(ApiError::bad_request("service is required"));
    };
    let ops = crate::catalog::operations(&state.ch(), w, &service, None).await?;
    let ops: Vec<_> = ops
        .into_iter()
        .map(|(name, kind)| json!({"name": name, "span_kind": kind}))
        .collect();
    Ok(Json(json!({ "operations": ops })))
}

async fn search_handler(
    State(state): State<AppState>,
    Params(p): Params<SearchParams>,
    Params(w): Params<WindowParams>,
) -> ApiResult<crate::model::TraceSearchResult> {
    let w = w.span(crate::now_ns(), Duration::from_secs(3600))?;
    let search = p.search()?;
    let client = state.ch();
    let ids = traces::search_ids(&client, w, &search).await?;
    let slack = state.graph_args().graph_parent_lookback.as_nanos() as i64;
    let traces = traces::summaries(&client, &ids, w, slack).await?;
    Ok(Json(crate::model::TraceSearchResult {
        traces,
        limit: search.limit,
    }))
}

/// The trace is read in pieces (`traces::trace_pieces`): its tree and first spans within the
/// request, the rest's full rows as the body gets there (still tagged, and killed if the
/// client leaves); the JSON is written out span by span (`trace_stream`), so the first rows
/// reach the page before the rest is even read.
async fn trace_handler(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = traces::normalize_trace_id(&id)?;
    let max = state.args.limits.query_max_trace_spans;
    let first_n = crate::trace_stream::FIRST_ROWS;
    match traces::trace_pieces(&state.ch(), &id, max, first_n).await? {
        Some(mut p) => {
            if let Some(tag) = crate::limits::current_tag() {
                p.rest = Box::pin(crate::limits::killed_if_dropped(
                    state.client.clone(),
                    tag,
                    p.rest,
                ));
            }
            Ok((
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                crate::trace_stream::pieces_body(p),
            )
                .into_response())
        }
        None => Err(ApiError::not_found(format!("trace {id} not found"))),
    }
}
