//! What both receivers do with a decoded request: check limits, drop invalid spans, write the
//! rest to the spool, and answer with the OTLP response (partial success included).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use crate::convert::{self, Limits, Reject, TooManySpans};
use crate::rowbinary;
use crate::transcode::{self, Fallback};

/// A request as a receiver hands it over.
enum Request {
    Decoded(ExportTraceServiceRequest),
    /// Not decoded yet.
    Protobuf(Bytes),
}
use crate::budget::{Budget, Exhausted, Held};
use crate::metrics::{Metrics, Outcome, Reason, Transport};
use crate::spool::{AppendError, Spool};

/// Why a request was not accepted. Each maps to an HTTP status and a gRPC code.
#[derive(Debug)]
pub enum IngestError {
    /// Malformed or over a limit: the client must not retry it as is.
    Invalid(String),
    /// Body over the size limit.
    TooLarge(String),
    /// The spool is full or the collector is stopping: retry later.
    Busy {
        message: String,
        retry_after: Duration,
    },
    /// Too many request bytes in memory (--ingest-max-inflight-bytes): retry shortly.
    Overloaded {
        message: String,
        retry_after: Duration,
    },
    /// Authentication missing or wrong.
    Unauthenticated,
    /// Anything else that is the collector's fault (not retryable by the client as is).
    Internal(String),
}

impl IngestError {
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid",
            Self::TooLarge(_) => "too_large",
            Self::Busy { .. } => "pushed_back",
            Self::Overloaded { .. } => "overloaded",
            Self::Unauthenticated => "unauthenticated",
            Self::Internal(_) => "error",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::Invalid(m) | Self::TooLarge(m) | Self::Internal(m) => m.clone(),
            Self::Busy { message, .. } | Self::Overloaded { message, .. } => message.clone(),
            Self::Unauthenticated => "missing or invalid bearer token".into(),
        }
    }
}

pub struct Ingest {
    pub spool: Spool,
    pub budget: Budget,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    pub max_request_bytes: usize,
    /// How long a client may take to send a request body (OTLP/HTTP).
    pub body_timeout: Duration,
    /// The embedded engine next to this collector (all-in-one), if any: a restarting engine
    /// makes the collector unready (spans would only pile up in the spool).
    pub engine_health: Option<orrery_store::embedded::EngineHealth>,
    pub auth_token: Option<String>,
    pub metrics_token: Option<String>,
    pub retry_after: Duration,
    stopping: AtomicBool,
}

impl Ingest {
    pub fn new(
        spool: Spool,
        limits: Limits,
        metrics: Arc<Metrics>,
        max_request_bytes: usize,
        auth_token: Option<String>,
        metrics_token: Option<String>,
        budget: Budget,
    ) -> Self {
        Self {
            spool,
            budget,
            limits,
            metrics,
            max_request_bytes,
            body_timeout: Duration::from_secs(30),
            engine_health: None,
            auth_token,
            metrics_token,
            retry_after: Duration::from_secs(5),
            stopping: AtomicBool::new(false),
        }
    }

    pub fn stop_accepting(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    pub fn ready(&self) -> bool {
        self.not_ready().is_empty()
    }

    /// Why the collector should get no traffic now (empty: ready).
    pub fn not_ready(&self) -> Vec<String> {
        let mut why = Vec::new();
        if self.stopping.load(Ordering::SeqCst) {
            why.push("stopping".to_string());
        }
        if self.spool.is_full() {
            why.push(format!(
                "spool full ({} of {} bytes): ClickHouse is behind or unreachable",
                self.spool.bytes(),
                self.spool.max_bytes()
            ));
        }
        why.extend(self.spool.health_problems());
        why.extend(
            self.engine_health
                .as_ref()
                .and_then(|h| h.not_ready_reason()),
        );
        why
    }

    /// Checks an `Authorization` header value against the configured token.
    pub fn authorize(&self, header: Option<&str>) -> Result<(), IngestError> {
        let Some(token) = &self.auth_token else {
            return Ok(());
        };
        match header.and_then(|h| h.strip_prefix("Bearer ")) {
            Some(given) if orrery_store::auth::token_matches(given, token) => Ok(()),
            _ => Err(IngestError::Unauthenticated),
        }
    }

    /// Checks an `Authorization` header value against the `/metrics` token, if one is set.
    pub fn authorize_metrics(&self, header: Option<&str>) -> bool {
        match &self.metrics_token {
            None => true,
            Some(token) => header
                .and_then(orrery_store::auth::bearer)
                .is_some_and(|given| orrery_store::auth::token_matches(given, token)),
        }
    }

    /// Reserves `bytes` of the in-flight budget for a request.
    pub fn reserve(&self, held: &mut Held, bytes: usize) -> Result<(), IngestError> {
        let r = self.budget.reserve(held, bytes).map_err(overloaded);
        self.metrics
            .inflight_request_bytes
            .set(self.budget.in_use());
        r
    }

    /// Records a refused request in the metrics.
    pub fn refused(&self, transport: &'static str, e: &IngestError) {
        self.metrics
            .requests
            .get_or_create(&Outcome {
                transport,
                outcome: e.outcome(),
            })
            .inc();
        tracing::debug!(transport, outcome = e.outcome(), message = %e.message(), "request refused");
    }

    /// Accepts a decoded request (`held`: the budget its bytes hold, kept until answered).
    pub async fn export(
        &self,
        transport: &'static str,
        req: ExportTraceServiceRequest,
        held: Held,
    ) -> Result<ExportTraceServiceResponse, IngestError> {
        self.counted(
            transport,
            self.export_inner(transport, Request::Decoded(req), held),
        )
        .await
    }

    /// Accepts a request in protobuf encoding, converted straight from the wire when it can be
    /// ([`transcode`]), decoded otherwise.
    pub async fn export_protobuf(
        &self,
        transport: &'static str,
        body: Bytes,
        held: Held,
    ) -> Result<ExportTraceServiceResponse, IngestError> {
        self.counted(
            transport,
            self.export_inner(transport, Request::Protobuf(body), held),
        )
        .await
    }

    async fn counted(
        &self,
        transport: &'static str,
        export: impl Future<Output = Result<ExportTraceServiceResponse, IngestError>>,
    ) -> Result<ExportTraceServiceResponse, IngestError> {
        let started = std::time::Instant::now();
        let result = export.await;
        if let Err(e) = &result {
            self.refused(transport, e);
        } else {
            self.metrics
                .requests
                .get_or_create(&Outcome {
                    transport,
                    outcome: "accepted",
                })
                .inc();
            self.metrics
                .accept_seconds
                .get_or_create(&Transport { transport })
                .observe(started.elapsed().as_secs_f64());
        }
        result
    }

    async fn export_inner(
        &self,
        transport: &'static str,
        req: Request,
        mut held: Held,
    ) -> Result<ExportTraceServiceResponse, IngestError> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(IngestError::Busy {
                message: "collector is shutting down".into(),
                retry_after: self.retry_after,
            });
        }
        let label = Transport { transport };
        // The converted rows are about as large as the protobuf they come from.
        if let Request::Protobuf(body) = &req {
            self.reserve(&mut held, body.len())?;
        }
        // Converted once, here, off the async workers (a 16 MiB request is tens of
        // milliseconds of CPU): the spool holds the rows as they will be inserted.
        let limits = self.limits;
        let (s, record) = tokio::task::spawn_blocking(move || convert_request(req, &limits))
            .await
            .map_err(|e| IngestError::Internal(format!("conversion failed: {e}")))??;
        self.metrics
            .spans_received
            .get_or_create(&label)
            .inc_by((s.accepted + s.rejected) as u64);
        if s.accepted > 0 {
            self.spool
                .append(Bytes::from(record), s.accepted)
                .await
                .map_err(|e| match e {
                    AppendError::Full { bytes, max } => IngestError::Busy {
                        message: format!(
                            "spool full ({bytes} of {max} bytes): ClickHouse is behind or unreachable; retry later"
                        ),
                        retry_after: self.retry_after,
                    },
                    AppendError::Closed => IngestError::Busy {
                        message: "collector is shutting down".into(),
                        retry_after: self.retry_after,
                    },
                    // Disk full or any other write error: nothing was acknowledged, and the
                    // client should retry (here once the disk has room, or at another
                    // collector): 503 / UNAVAILABLE, never 500 / INTERNAL, which OTLP
                    // clients drop. The writer logs the state change once.
                    AppendError::Io(e) => {
                        self.metrics.spool_write_errors.inc();
                        IngestError::Busy {
                            message: format!("spool write failed ({e}); retry later"),
                            retry_after: self.retry_after,
                        }
                    }
                })?;
            self.metrics.spool_bytes.set(self.spool.bytes());
            self.metrics
                .spans_accepted
                .get_or_create(&label)
                .inc_by(s.accepted as u64);
        }
        self.metrics
            .spans_rejected
            .get_or_create(&label)
            .inc_by(s.rejected as u64);
        for (reason, n) in Reject::ALL.iter().zip(s.by_reason) {
            if n > 0 {
                self.metrics
                    .spans_invalid
                    .get_or_create(&Reason {
                        reason: reason.label(),
                    })
                    .inc_by(n as u64);
            }
        }
        drop(held);
        self.metrics
            .inflight_request_bytes
            .set(self.budget.in_use());
        Ok(ExportTraceServiceResponse {
            partial_success: (s.rejected > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: s.rejected as i64,
                error_message: s.message,
            }),
        })
    }
}

pub fn overloaded(e: Exhausted) -> IngestError {
    IngestError::Overloaded {
        message: e.message(),
        retry_after: Exhausted::RETRY_AFTER,
    }
}

/// A request → its validation outcome and its spool record.
fn convert_request(
    req: Request,
    limits: &Limits,
) -> Result<(convert::Sanitized, Vec<u8>), IngestError> {
    let too_many = |e: TooManySpans| {
        IngestError::Invalid(format!(
            "request has {} spans, more than the limit of {} (--ingest-max-spans-per-request)",
            e.spans, e.max
        ))
    };
    Ok(match req {
        Request::Protobuf(body) => match transcode::transcode(&body, limits) {
            Ok(t) => {
                let t = t.map_err(too_many)?;
                (t.sanitized, t.record)
            }
            Err(Fallback) => {
                let mut req = ExportTraceServiceRequest::decode(body)
                    .map_err(|e| IngestError::Invalid(format!("invalid protobuf: {e}")))?;
                let s = convert::sanitize(&mut req, limits).map_err(too_many)?;
                (s, rowbinary::record(&req, limits.max_attribute_len).0)
            }
        },
        Request::Decoded(mut req) => {
            let s = convert::sanitize(&mut req, limits).map_err(too_many)?;
            (s, rowbinary::record(&req, limits.max_attribute_len).0)
        }
    })
}
