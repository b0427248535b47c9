//! The web UI: static files from `--ui-dir`, falling back to `index.html` for client-side
//! routes; a small page when the UI has not been built.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::state::AppState;

const NOT_BUILT: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Orrery</title></head>\
<body style=\"font-family: sans-serif; max-width: 40em; margin: 4em auto\"><h1>Orrery</h1>\
<p>The web UI is not built. Run <code>scripts/build-web.sh</code> (or point <code>--ui-dir</code> / \
<code>ORRERY_UI_DIR</code> at a built <code>web/dist</code>).</p>\
<p>The API is up: <a href=\"/orrery/api/graph\">/orrery/api/graph</a>, \
<a href=\"/api/services\">/api/services</a> (Jaeger-compatible).</p></body></html>";

fn mime(path: &std::path::Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        "yaml" | "yml" => "application/yaml",
        _ => "application/octet-stream",
    }
}

/// Serves `path` under the UI directory; unknown paths get `index.html` (SPA routing).
pub async fn serve(State(state): State<AppState>, req: Request) -> Response {
    let dir = &state.args.ui_dir;
    let rel = req.uri().path().trim_start_matches('/');
    // Never leave the UI directory.
    if rel.split('/').any(|c| c == ".." || c.contains('\\')) {
        return (StatusCode::BAD_REQUEST, "bad path").into_response();
    }
    let index = dir.join("index.html");
    if !index.is_file() {
        return Html(NOT_BUILT).into_response();
    }
    let candidate = dir.join(rel);
    let file = if !rel.is_empty() && candidate.is_file() {
        candidate
    } else {
        index
    };
    match tokio::fs::read(&file).await {
        Ok(bytes) => {
            let cache = if file.ends_with("index.html") {
                "no-cache"
            } else {
                "public, max-age=300"
            };
            (
                [
                    (header::CONTENT_TYPE, mime(&file)),
                    (header::CACHE_CONTROL, cache),
                ],
                bytes,
            )
                .into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading {}: {e}", file.display()),
        )
            .into_response(),
    }
}
