//! OTLP/HTTP receiver (`POST /v1/traces`, protobuf or JSON, optionally gzip) plus `/metrics`,
//! `/healthz` and `/readyz`.

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use crate::budget::Held;
use crate::ingest::{Ingest, IngestError};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

pub fn router(ingest: Arc<Ingest>) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(ingest)
}

async fn metrics(State(ingest): State<Arc<Ingest>>, headers: HeaderMap) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !ingest.authorize_metrics(auth) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing or invalid bearer token (--collector-metrics-token)\n",
        )
            .into_response();
    }
    ingest.metrics.spool_bytes.set(ingest.spool.bytes());
    let dir = ingest.spool.dead_dir();
    let metrics = ingest.metrics.clone();
    let _ = tokio::task::spawn_blocking(move || {
        crate::sink::refresh_dead_letters(&metrics, &dir);
    })
    .await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ingest.metrics.encode(),
    )
        .into_response()
}

/// 503 while the collector cannot accept (stopping, spool full, spool disk failing); 200
/// otherwise. Dead letters do not make it unready (they are not a reason to stop traffic: new
/// spans still land), but the body names them so a probe log or a human sees them.
async fn readyz(State(ingest): State<Arc<Ingest>>) -> Response {
    let (spool, dir) = (ingest.spool.clone(), ingest.spool.dead_dir());
    let dead = tokio::task::spawn_blocking(move || {
        // While writes fail, try one: ready again as soon as the disk has room.
        spool.probe();
        crate::deadletter::summary(&dir)
    })
    .await
    .unwrap_or_default();
    let why = ingest.not_ready();
    let mut body = if why.is_empty() {
        "ready\n".to_string()
    } else {
        format!("not ready: {}\n", why.join("; "))
    };
    if dead.segments > 0 {
        body.push_str(&format!(
            "dead letters: {} spans in {} segments under {:?} (orrery spool list)\n",
            dead.spans,
            dead.segments,
            ingest.spool.dead_dir()
        ));
    }
    let status = if why.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body).into_response()
}

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

/// The `google.rpc.Status` message OTLP/HTTP uses for error bodies.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

async fn export(State(ingest): State<Arc<Ingest>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let encoding = match content_type(&parts.headers) {
        Some(e) => e,
        None => {
            let e = IngestError::Invalid(format!(
                "unsupported Content-Type {:?}: use {PROTOBUF} or {JSON}",
                parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .map(|v| v.to_str().unwrap_or("?"))
                    .unwrap_or("")
            ));
            ingest.refused("http", &e);
            return error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, Encoding::Json, &e);
        }
    };
    let mut held = Held::default();
    let decoded = decode(&ingest, &parts.headers, encoding, body, &mut held).await;
    if let Err(e) = &decoded {
        ingest.refused("http", e);
    }
    let result = match decoded {
        Ok(Decoded::Protobuf(body)) => ingest.export_protobuf("http", body, held).await,
        Ok(Decoded::Json(req)) => ingest.export("http", req, held).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(resp) => {
            let body = match encoding {
                Encoding::Protobuf => resp.encode_to_vec(),
                Encoding::Json => serde_json::to_vec(&resp).unwrap_or_default(),
            };
            let ct = if encoding == Encoding::Protobuf {
                PROTOBUF
            } else {
                JSON
            };
            ([(header::CONTENT_TYPE, ct)], body).into_response()
        }
        Err(e) => {
            let status = match &e {
                IngestError::Invalid(_) => StatusCode::BAD_REQUEST,
                IngestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                IngestError::Busy { .. } | IngestError::Overloaded { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                IngestError::Unauthenticated => StatusCode::UNAUTHORIZED,
                IngestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let mut resp = error_response(status, encoding, &e);
            if let IngestError::Busy { retry_after, .. }
            | IngestError::Overloaded { retry_after, .. } = &e
            {
                resp.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after.as_secs().max(1)),
                );
            }
            resp
        }
    }
}

enum Decoded {
    Protobuf(Bytes),
    Json(ExportTraceServiceRequest),
}

/// Authenticates, reads (bounded in size, time and the in-flight budget), inflates (bounded,
/// off the async workers) and decodes a JSON body (off the async workers).
async fn decode(
    ingest: &Ingest,
    headers: &HeaderMap,
    encoding: Encoding,
    body: Body,
    held: &mut Held,
) -> Result<Decoded, IngestError> {
    ingest.authorize(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )?;
    let limit = ingest.max_request_bytes;
    let too_large = move || {
        IngestError::TooLarge(format!(
            "request body over {limit} bytes (--ingest-max-request-bytes)"
        ))
    };
    // A declared length is refused or reserved before anything is read.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    if let Some(n) = declared {
        ingest.reserve(held, n)?;
    }
    let timeout = ingest.body_timeout;
    let read = async {
        let mut body = body;
        let mut raw = Vec::with_capacity(declared.unwrap_or(0));
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| IngestError::Invalid(format!("reading the body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                if raw.len() + data.len() > limit {
                    return Err(too_large());
                }
                // Past the declared length (or without one): reserve as it comes.
                let beyond =
                    (raw.len() + data.len()).saturating_sub(declared.unwrap_or(0).max(raw.len()));
                ingest.reserve(held, beyond)?;
                raw.extend_from_slice(&data);
            }
        }
        Ok(Bytes::from(raw))
    };
    let raw = tokio::time::timeout(timeout, read).await.map_err(|_| {
        IngestError::Invalid(format!(
            "request body not received within {timeout:?} (--otlp-http-body-timeout)"
        ))
    })??;
    let body = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("identity") | Some("") => raw,
        Some("gzip") => {
            // Bounded: a small gzip body must not inflate past the limit, nor past the
            // in-flight budget (reserved as it inflates).
            let budget = ingest.budget.clone();
            let mut inflated = Held::default();
            let (out, inflated) = tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                let mut gz = flate2::read::GzDecoder::new(&raw[..]).take(limit as u64 + 1);
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    let n = gz
                        .read(&mut chunk)
                        .map_err(|e| IngestError::Invalid(format!("invalid gzip body: {e}")))?;
                    if n == 0 {
                        break;
                    }
                    budget
                        .reserve(&mut inflated, n)
                        .map_err(crate::ingest::overloaded)?;
                    out.extend_from_slice(&chunk[..n]);
                    if out.len() > limit {
                        return Err(too_large());
                    }
                }
                Ok((out, inflated))
            })
            .await
            .map_err(|e| IngestError::Internal(format!("gzip: {e}")))??;
            held.merge(inflated);
            Bytes::from(out)
        }
        Some(other) => {
            return Err(IngestError::Invalid(format!(
                "unsupported Content-Encoding {other:?}: use gzip or none"
            )));
        }
    };
    Ok(match encoding {
        // Protobuf is decoded by the ingest path itself (straight from the wire).
        Encoding::Protobuf => Decoded::Protobuf(body),
        Encoding::Json => {
            // The decoded tree is a few times the JSON text.
            ingest.reserve(held, body.len() * 2)?;
            let req = tokio::task::spawn_blocking(move || {
                serde_json::from_slice(&body)
                    .map_err(|e| IngestError::Invalid(format!("invalid OTLP JSON: {e}")))
            })
            .await
            .map_err(|e| IngestError::Internal(format!("JSON: {e}")))??;
            Decoded::Json(req)
        }
    })
}

fn content_type(headers: &HeaderMap) -> Option<Encoding> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = ct.split(';').next()?.trim().to_ascii_lowercase();
    match essence.as_str() {
        PROTOBUF | "application/protobuf" => Some(Encoding::Protobuf),
        JSON => Some(Encoding::Json),
        _ => None,
    }
}

fn error_response(status: StatusCode, encoding: Encoding, e: &IngestError) -> Response {
    let grpc_code = match status {
        StatusCode::BAD_REQUEST
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNSUPPORTED_MEDIA_TYPE => 3,
        StatusCode::UNAUTHORIZED => 16,
        StatusCode::SERVICE_UNAVAILABLE => 14,
        _ => 13,
    };
    let message = e.message();
    match encoding {
        Encoding::Protobuf => {
            let body = RpcStatus {
                code: grpc_code,
                message,
            }
            .encode_to_vec();
            (status, [(header::CONTENT_TYPE, PROTOBUF)], body).into_response()
        }
        Encoding::Json => {
            let body = serde_json::json!({ "code": grpc_code, "message": message }).to_string();
            (status, [(header::CONTENT_TYPE, JSON)], body).into_response()
        }
    }
}
