//! What every handler shares (the bounded ClickHouse client, the settings, the permits of
//! the request and stream limits), apart from the routes so that route modules depend on it
//! and not on each other.

use std::sync::Arc;

use clickhouse::Client;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::{GraphArgs, QueryArgs, limits};

/// Shared state of the handlers: the ClickHouse client, the settings and the limits' semaphores.
#[derive(Clone)]
pub struct AppState {
    /// Carries the per-query limits (`--query-max-execution-time`, `--query-max-memory`).
    /// Handlers use [`AppState::ch`], which also tags the request's queries so they are
    /// killed when the client goes away.
    pub client: Client,
    pub args: Arc<QueryArgs>,
    /// One permit per open live stream (`--query-max-streams`).
    pub streams: Arc<Semaphore>,
    /// One permit per request being handled (`--query-max-concurrent-requests`).
    pub requests: Arc<Semaphore>,
    /// Cancelled on shutdown: live streams end.
    pub shutdown: CancellationToken,
    /// The live maps computed for the streams (`live.rs`), one per shape.
    pub live: Arc<crate::live::Registry>,
    /// The graph's runtime state (rolled-up part cache, checks board), apart from the parsed
    /// flags in `args`.
    pub runtime: GraphRuntime,
}

impl AppState {
    pub fn new(client: Client, args: QueryArgs) -> Self {
        Self {
            client: args.limits.bound(client),
            streams: Arc::new(Semaphore::new(args.limits.query_max_streams)),
            live: crate::live::Registry::new(args.limits.query_max_stream_shapes),
            requests: Arc::new(Semaphore::new(args.limits.query_max_concurrent_requests)),
            args: Arc::new(args),
            shutdown: CancellationToken::new(),
            runtime: Default::default(),
        }
    }
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }
    /// Shares `runtime` with what runs beside the handlers (the checks' evaluation loop).
    pub fn with_runtime(mut self, runtime: GraphRuntime) -> Self {
        self.runtime = runtime;
        self
    }
    /// What a live stream takes from here (`live::stream`).
    pub fn live_context(&self) -> crate::live::LiveContext {
        let l = &self.args.limits;
        crate::live::LiveContext {
            client: self.client.clone(),
            graph: Arc::new(self.args.graph.clone()),
            cache: self.runtime.cache.clone(),
            streams: self.streams.clone(),
            max_streams: l.query_max_streams,
            max_shapes: l.query_max_stream_shapes,
            stall: l.query_stream_stall,
            shutdown: self.shutdown.clone(),
        }
    }
    pub fn graph_args(&self) -> &GraphArgs {
        &self.args.graph
    }
    /// The client for this request's ClickHouse queries: bounded, and tagged so that they are
    /// killed if the request is dropped (client gone, request timeout).
    pub fn ch(&self) -> Client {
        limits::tagged(&self.client)
    }
}

/// The graph's runtime state, apart from its parsed flags ([`GraphArgs`]): made once at start
/// (`lib::serve`), owned by the handlers' `AppState`; its parts are shared (by clone) with the
/// checks' evaluation loop.
#[derive(Clone, Default)]
pub struct GraphRuntime {
    /// Rolled-up parts of graph windows (`--graph-cache-entries`).
    pub cache: crate::graph::cache::RolledCache,
    /// The checks board the evaluation loop writes and `/orrery/api/checks` reads.
    pub checks: crate::checks::board::Checks,
}
