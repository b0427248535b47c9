//! The checks' routes (`/orrery/api/checks…`, docs/checks.md): the board the evaluation loop
//! keeps, and the reads `orrery check` makes (a canary's version split, when services last
//! reported, the state-change history). The judging is in `crate::checks`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::checks::board::Board;
use crate::checks::canary::{self, MAX_INSTANCES, VersionSplit};
use crate::checks::history::{self, History, MAX_HISTORY};
use crate::checks::stale::{self, LastSeen, MAX_KNOWN_WITHIN, MAX_NAMES};
use crate::error::ApiError;
use crate::params::{HistoryParams, LastSeenParams, Params, VersionsParams, WindowParams};
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/orrery/api/checks", get(board_handler))
        .route("/orrery/api/checks/versions", get(versions_handler))
        .route("/orrery/api/checks/last-seen", get(last_seen_handler))
        .route("/orrery/api/checks/history", get(history_handler))
}

/// `GET /orrery/api/checks`: the board; an empty one (200, `configured: false`, with a hint)
/// without `--graph-rules` — the UI polls it on every page, so "no rules" is an answer, not an
/// error — and an empty `configured: true` one until the first evaluation is done.
async fn board_handler(State(state): State<AppState>) -> Response {
    let g = state.graph_args();
    match state.runtime.checks.snapshot() {
        Some(board) => Json(board).into_response(),
        None => {
            let configured = g.graph_rules.is_some();
            let mut v = serde_json::to_value(Board {
                configured,
                ..Board::default()
            })
            .unwrap_or_default();
            if !configured {
                v["hint"] = "no rules are evaluated here: start the query service with \
                             --graph-rules <file> (docs/checks.md)"
                    .into();
            }
            (StatusCode::OK, Json(v)).into_response()
        }
    }
}

/// `GET /orrery/api/checks/versions?service=&version=&instance=…&start=&end=` (or `since=`):
/// the split a canary rule judges, for `orrery check`.
async fn versions_handler(
    State(state): State<AppState>,
    Params(p): Params<VersionsParams>,
    Params(w): Params<WindowParams>,
) -> Result<Json<VersionSplit>, ApiError> {
    let service = p
        .service
        .ok_or_else(|| ApiError::bad_request("service is required"))?;
    let instances: Vec<String> = p.instance.into_iter().filter(|v| !v.is_empty()).collect();
    if p.version.is_none() && instances.is_empty() {
        return Err(ApiError::bad_request(
            "give the canary's version=<service.version> and/or instance=<service.instance.id>",
        ));
    }
    if instances.len() > MAX_INSTANCES {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_INSTANCES} instance parameters"
        )));
    }
    let w = w.span(crate::now_ns(), std::time::Duration::from_secs(300))?;
    let split = canary::read(
        &state.ch(),
        &service,
        p.version.as_deref(),
        &instances,
        w.lo,
        w.hi,
    )
    .await?;
    Ok(Json(split))
}

/// `GET /orrery/api/checks/last-seen?service=a&service=b&since=24h`: when each named service
/// last reported a span (absent: not within `since`, at most 7 days).
async fn last_seen_handler(
    State(state): State<AppState>,
    Params(p): Params<LastSeenParams>,
) -> Result<Json<LastSeen>, ApiError> {
    let since = p
        .since
        .map_or(std::time::Duration::from_secs(86400), |s| s.0);
    if since > MAX_KNOWN_WITHIN || since.is_zero() {
        return Err(ApiError::bad_request("since: more than 0, at most 7d"));
    }
    let names: Vec<String> = p.service.into_iter().filter(|v| !v.is_empty()).collect();
    if names.is_empty() || names.len() > MAX_NAMES {
        return Err(ApiError::bad_request(format!(
            "give 1 to {MAX_NAMES} service=<name> parameters"
        )));
    }
    let since_ns = crate::now_ns() - since.as_nanos() as i64;
    Ok(Json(stale::read(&state.ch(), &names, since_ns).await?))
}

/// `GET /orrery/api/checks/history[?rule=a&rule=b][&limit=50]`: each rule's state changes,
/// newest first (default every rule this replica evaluates, 50 each, at most 500).
async fn history_handler(
    State(state): State<AppState>,
    Params(p): Params<HistoryParams>,
) -> Result<Json<History>, ApiError> {
    let Some(board) = state.runtime.checks.snapshot() else {
        return Err(ApiError::not_found(
            "no rules are evaluated here: start the query service with --graph-rules <file> \
             (docs/checks.md)",
        ));
    };
    let limit = match p.limit {
        None => 50,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|l| (1..=MAX_HISTORY).contains(l))
            .ok_or_else(|| ApiError::bad_request(format!("limit: 1 to {MAX_HISTORY}")))?,
    };
    let mut rules = p.rule;
    if rules.is_empty() {
        rules = board.rules.iter().map(|r| r.rule.clone()).collect();
    } else if let Some(r) = rules
        .iter()
        .find(|r| !board.rules.iter().any(|b| &&b.rule == r))
    {
        return Err(ApiError::not_found(format!(
            "no rule {r:?} is evaluated here"
        )));
    }
    let mut out = History::default();
    for e in history::read(&state.ch(), &rules, limit).await? {
        out.rules.entry(e.rule.clone()).or_default().push(e);
    }
    Ok(Json(out))
}
