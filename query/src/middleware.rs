//! What wraps every route (see `api::router`): the token check, the kill-on-drop scope of a
//! request's ClickHouse queries, the request cap and timeout, the security headers, JSON
//! answers for panics and wrong methods, and the limits' metrics.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;
use crate::{limits, metrics};

/// A handler panicked (a bug: every input is validated first): a JSON 500 and an error log
/// line instead of a dropped connection and a backtrace per request.
pub(crate) fn panicked(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("?");
    tracing::error!(panic = what, "query handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error (a bug in the query service; it is logged)",
    )
    .into_response()
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this API route answers GET only",
    )
}

/// Bearer-token check when `--api-token` is set: the `Authorization: Bearer <token>` header
/// only (a token in a URL ends up in logs and browser history), compared in constant time.
pub(crate) async fn auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(token) = state.args.api_token.as_deref().filter(|t| !t.is_empty()) else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(orrery_store::auth::bearer)
        .map(str::trim);
    if let Some(t) = given
        && orrery_store::auth::token_matches(t, token)
    {
        return next.run(req).await;
    }
    metrics::inc(&metrics::AUTH_FAILURES);
    match given {
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong API token: send the token the query service was started with \
             (--api-token) as `Authorization: Bearer <token>`",
        )
        .into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this API needs a token: send `Authorization: Bearer <token>` with the query \
             service's --api-token",
        )
        .into_response(),
    }
}

/// Tags the request's ClickHouse queries and kills them if the request is dropped before it
/// answers (client disconnected, request timeout). See `limits::killed_if_dropped`.
pub(crate) async fn kill_queries_if_dropped(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    limits::killed_if_dropped(state.client.clone(), limits::new_tag(), next.run(req)).await
}

/// At most `--query-max-concurrent-requests` requests at once (more get 503 at once: load
/// shedding rather than a queue that grows), each answered within `--query-request-timeout`
/// (a live stream: until its headers).
pub(crate) async fn bounded(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Ok(_permit) = state.requests.clone().try_acquire_owned() else {
        metrics::inc(&metrics::REQUESTS_SHED);
        return ApiError::limited(
            StatusCode::SERVICE_UNAVAILABLE,
            "max_concurrent_requests",
            "the query service is handling as many requests as it allows \
             (--query-max-concurrent-requests): retry in a moment",
            1,
        )
        .into_response();
    };
    let limit = state.args.limits.query_request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            metrics::inc(&metrics::REQUEST_TIMEOUTS);
            ApiError::limited(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            format!(
                "the request took longer than the query service allows \
                 (--query-request-timeout {}): narrow the time window or add filters, or retry later",
                humantime::format_duration(limit)
            ),
            5,
        )
        .into_response()
        }
    }
}

/// Prometheus metrics of the limits (see `metrics.rs`).
pub(crate) async fn metrics_handler(State(state): State<AppState>) -> Response {
    let l = &state.args.limits;
    let in_flight = l.query_max_concurrent_requests - state.requests.available_permits();
    let streams = l.query_max_streams - state.streams.available_permits();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(in_flight as u64, streams as u64),
    )
        .into_response()
}

/// The Content-Security-Policy of every answer: only this origin's scripts (the UI has no
/// inline script: `index.html` loads `main.js`), WebAssembly compilation, this origin's
/// stylesheets only (the UI sets no inline style attributes: per-element positions go through
/// the CSSOM, which CSP does not restrict — tests/web_auth.rs fails on any violation), fetches
/// to this origin only, no plugins, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
style-src 'self'; img-src 'self' data: blob:; font-src 'self' data:; \
connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Security headers on every answer (UI and API): no framing, no MIME sniffing, no referrer,
/// and a CSP unless the handler set a more specific one.
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::middleware;
    use axum::routing::get;

    #[tokio::test]
    async fn a_panicking_handler_is_a_json_500_with_the_security_headers() {
        let app: Router = Router::new()
            .route(
                "/boom",
                get(|| async {
                    if true {
                        panic!("boom");
                    }
                    ""
                }),
            )
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
            .layer(middleware::from_fn(security_headers));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let r = reqwest::get(format!("http://{addr}/boom")).await.unwrap();
        assert_eq!(r.status(), 500);
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains("internal error"));
    }
}
