//! OTLP/gRPC receiver (tonic, gzip accepted).

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::ingest::{Ingest, IngestError};

pub struct Receiver {
    pub ingest: Arc<Ingest>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let auth = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if let Err(e) = self.ingest.authorize(auth) {
            self.ingest.refused("grpc", &e);
            return Err(to_status(e));
        }
        self.ingest
            .export("grpc", request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }
}

fn to_status(e: IngestError) -> Status {
    match e {
        IngestError::Invalid(m) => Status::invalid_argument(m),
        IngestError::TooLarge(m) => Status::resource_exhausted(m),
        IngestError::Unauthenticated => Status::unauthenticated(e.message()),
        IngestError::Internal(m) => Status::internal(m),
        IngestError::Busy {
            message,
            retry_after,
        } => Status::with_error_details(
            Code::Unavailable,
            message,
            ErrorDetails::with_retry_info(Some(retry_after)),
        ),
    }
}
