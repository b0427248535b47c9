//! The one shape of an error answer of the Orrery API (the Jaeger APIs wrap it in their own
//! envelopes), and the one place a hit query limit becomes an answer.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::{limits, metrics};

/// An error answer: status plus `{"error": message}` (and `"limit"` naming the limit hit,
/// with a `Retry-After` header, when a limit refused the request).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub limit: Option<&'static str>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            limit: None,
            retry_after: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    /// A limit refused the request: `status` (429 or 503), the limit's name, when to retry.
    pub fn limited(
        status: StatusCode,
        limit: &'static str,
        message: impl Into<String>,
        retry_after: u64,
    ) -> Self {
        Self {
            status,
            message: message.into(),
            limit: Some(limit),
            retry_after: Some(retry_after),
        }
    }
}

impl From<String> for ApiError {
    fn from(message: String) -> Self {
        Self::bad_request(message)
    }
}

impl ApiError {
    /// The answer to a storage failure that was one of the query limits (time, memory, a busy
    /// engine) — counted and logged once here — or `None` for any other failure. The Jaeger
    /// APIs wrap it in their own envelopes.
    pub fn limit_hit(err: &anyhow::Error) -> Option<Self> {
        let hit = limits::limit_hit(err)?;
        metrics::limit_hit(hit.limit);
        tracing::info!(limit = hit.limit, error = %format!("{err:#}"), "query stopped by a limit");
        Some(Self::limited(
            hit.status,
            hit.limit,
            hit.message,
            hit.retry_after,
        ))
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        if let Some(limited) = Self::limit_hit(&err) {
            return limited;
        }
        tracing::warn!(error = %format!("{err:#}"), "query failed");
        Self::new(
            StatusCode::BAD_GATEWAY,
            format!("storage query failed: {err:#}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.limit {
            Some(limit) => json!({ "error": self.message, "limit": limit }),
            None => json!({ "error": self.message }),
        };
        let mut r = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}
