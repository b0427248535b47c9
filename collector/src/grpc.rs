//! OTLP/gRPC receiver (tonic, gzip accepted). The service is written out by hand rather than
//! generated so the request reaches the ingest path as protobuf bytes: it is converted straight
//! from the wire ([`crate::transcode`]) like an OTLP/HTTP body, not decoded into a tree first.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::codegen::{BoxFuture, Service, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::budget::{Budget, Held};
use crate::ingest::{Ingest, IngestError};

const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The `TraceService` server.
#[derive(Clone)]
pub struct TraceServer {
    ingest: Arc<Ingest>,
    max_request_bytes: usize,
}

impl TraceServer {
    pub fn new(ingest: Arc<Ingest>, max_request_bytes: usize) -> Self {
        Self {
            ingest,
            max_request_bytes,
        }
    }
}

impl NamedService for TraceServer {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<B> Service<http::Request<B>> for TraceServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != EXPORT {
            return Box::pin(async {
                Ok(Status::unimplemented("only TraceService/Export is served").into_http())
            });
        }
        let (ingest, max) = (self.ingest.clone(), self.max_request_bytes);
        // The message's bytes count against the in-flight budget as they arrive.
        let req = req.map(|b| Budgeted {
            inner: Box::pin(b),
            budget: ingest.budget.clone(),
            held: Held::default(),
        });
        Box::pin(async move {
            let mut gzip = EnabledCompressionEncodings::default();
            gzip.enable(CompressionEncoding::Gzip);
            let mut grpc = Grpc::new(RawCodec)
                .apply_compression_config(gzip, gzip)
                .apply_max_message_size_config(Some(max), None);
            let mut resp = grpc.unary(Export(ingest), req).await;
            // tonic answers a message over the size limit with OUT_OF_RANGE, which OTLP
            // clients retry; RESOURCE_EXHAUSTED without retry info tells them not to.
            let status = resp.headers().get(Status::GRPC_STATUS);
            if status.is_some_and(|s| s.as_bytes() == b"11") {
                resp.headers_mut()
                    .insert(Status::GRPC_STATUS, (Code::ResourceExhausted as i32).into());
            }
            Ok(resp)
        })
    }
}

struct Export(Arc<Ingest>);

impl UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let ingest = self.0.clone();
        Box::pin(async move {
            let auth = request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if let Err(e) = ingest.authorize(auth) {
                ingest.refused("grpc", &e);
                return Err(to_status(e));
            }
            // The message (possibly inflated from gzip) and its conversion, while converted.
            let body = request.into_inner();
            let mut held = Held::default();
            if let Err(e) = ingest.reserve(&mut held, body.len()) {
                ingest.refused("grpc", &e);
                return Err(to_status(e));
            }
            ingest
                .export_protobuf("grpc", body, held)
                .await
                .map(Response::new)
                .map_err(to_status)
        })
    }
}

/// Requests as their protobuf bytes, responses encoded with prost.
struct RawCodec;

impl Codec for RawCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ResponseEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

struct ResponseEncoder;

impl Encoder for ResponseEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}

struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
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
        // RESOURCE_EXHAUSTED with RetryInfo: OTLP clients retry it after the delay.
        IngestError::Overloaded {
            message,
            retry_after,
        } => Status::with_error_details(
            Code::ResourceExhausted,
            message,
            ErrorDetails::with_retry_info(Some(retry_after)),
        ),
    }
}

/// A request body whose bytes are reserved in the in-flight budget as they arrive; past the
/// budget it fails with RESOURCE_EXHAUSTED (+ RetryInfo), which tonic passes on as the status.
struct Budgeted<B> {
    inner: std::pin::Pin<Box<B>>,
    budget: Budget,
    held: Held,
}

impl<B> http_body::Body for Budgeted<B>
where
    B: http_body::Body,
    B::Error: Into<StdError>,
{
    type Data = B::Data;
    type Error = StdError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && let Err(e) = this.budget.reserve(&mut this.held, data.remaining())
                {
                    let status = to_status(crate::ingest::overloaded(e));
                    return Poll::Ready(Some(Err(Box::new(status))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
