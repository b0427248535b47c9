//! The demo's gRPC calls, without generated code: one message type over tonic's prost codec,
//! served from the same port as HTTP (axum speaks h2c).

use std::future::Future;
use std::pin::Pin;

use axum::body::Body;
use http::uri::PathAndQuery;
use orrery_sdk::grpc::InjectInterceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_prost::ProstCodec;

/// Request and reply of every demo RPC.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Call {
    #[prost(string, tag = "1")]
    pub caller: String,
}

/// True for routes that are gRPC methods (`/pkg.Service/Method`).
pub fn is_grpc(path: &str) -> bool {
    path.split('/').nth(1).is_some_and(|s| s.contains('.'))
}

pub type Client = tonic::client::Grpc<InterceptedService<Channel, InjectInterceptor>>;

pub fn client(channel: Channel) -> Client {
    tonic::client::Grpc::new(InterceptedService::new(channel, InjectInterceptor))
}

/// Makes one unary call (the caller wraps it in `orrery_sdk::grpc::client_call`).
pub async fn call(
    mut client: Client,
    method: &'static str,
    caller: &str,
) -> Result<Call, tonic::Status> {
    client
        .ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let reply = client
        .unary(
            tonic::Request::new(Call {
                caller: caller.to_string(),
            }),
            PathAndQuery::from_static(method),
            ProstCodec::<Call, Call>::default(),
        )
        .await?;
    Ok(reply.into_inner())
}

type Handler =
    Box<dyn FnMut() -> Pin<Box<dyn Future<Output = Result<(), tonic::Status>> + Send>> + Send>;

struct Unary(Handler);

impl tonic::server::UnaryService<Call> for Unary {
    type Response = Call;
    type Future =
        Pin<Box<dyn Future<Output = Result<tonic::Response<Call>, tonic::Status>> + Send>>;

    fn call(&mut self, _request: tonic::Request<Call>) -> Self::Future {
        let work = (self.0)();
        Box::pin(async move {
            work.await?;
            Ok(tonic::Response::new(Call::default()))
        })
    }
}

/// Serves one unary method by running `handler`.
pub async fn serve<F, Fut>(request: http::Request<Body>, handler: F) -> http::Response<Body>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
{
    let mut handler = Some(handler);
    let unary = Unary(Box::new(move || match handler.take() {
        Some(h) => Box::pin(h()),
        None => Box::pin(async { Err(tonic::Status::internal("called twice")) }),
    }));
    let mut grpc = tonic::server::Grpc::new(ProstCodec::<Call, Call>::default());
    grpc.unary(unary, request).await.map(Body::new)
}
