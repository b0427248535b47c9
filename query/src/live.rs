//! Live graph streams (`GET /orrery/api/graph/stream`, server-sent events): one computation
//! per live map per tick, however many viewers (issue 14 item 4).
//!
//! - **Fan-out.** Streams with the same *shape* (the graph request — level, region, focus,
//!   window — and the interval) share one [`Shape`]: one task that computes the graph every
//!   interval and publishes it on a `watch` channel. The task starts with the first subscriber
//!   and is cancelled (its running ClickHouse queries killed) when the last one leaves.
//! - **Deltas.** A subscriber gets the full graph first (`event: graph`), then per tick only
//!   what changed (`event: delta`, [`orrery_api::live::GraphDelta`]). Each tick's delta and
//!   (when somebody needs it) full graph are serialised once; subscribers share the bytes.
//! - **Lag.** `watch` holds only the latest tick, so the task never waits for anybody: a
//!   subscriber that was still sending an older tick skips the ones it missed and gets the full
//!   graph again (a resync). A subscriber whose client takes no event for
//!   `--query-stream-stall` (it stopped reading) is dropped: it no longer holds a stream slot
//!   or keeps its shape alive, and if the client ever reads again it finds an `error` event
//!   saying why, then the end of the stream.
//! - **Bounds.** `--query-max-streams` subscribers and `--query-max-stream-shapes` shapes per
//!   replica (429 beyond either); per subscriber at most one event is queued.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orrery_api::live::delta;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::graph::cache::RolledCache;
use crate::metrics::{self, inc};
use crate::model::Graph;
use crate::params::{self, GraphParams, StreamParams, WindowParams};
use crate::{GraphArgs, graph, limits};

/// A fixed instant (minute-aligned, 2027-01-15) at which requests without their window are
/// compared: two streams share a shape when these are equal and their window parameters and
/// interval are.
const KEY_NOW_NS: i64 = 1_800_000_000_000 * 1_000_000;
/// Keep-alive comment period (the UI takes 45 s of silence as a dead connection).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What live streams need from the service, handed over by the route (`http/orrery.rs`) from
/// its state.
#[derive(Clone)]
pub struct LiveContext {
    /// The bounded client; each tick's queries are tagged so that they can be killed.
    pub client: clickhouse::Client,
    pub graph: Arc<GraphArgs>,
    pub cache: RolledCache,
    /// One permit per open stream (`--query-max-streams`).
    pub streams: Arc<Semaphore>,
    pub max_streams: usize,
    pub max_shapes: usize,
    /// `--query-stream-stall`.
    pub stall: Duration,
    /// Cancelled on shutdown: streams end.
    pub shutdown: CancellationToken,
}

/// The shapes being computed in this replica.
pub struct Registry {
    shapes: Mutex<HashMap<String, Entry>>,
    max_shapes: usize,
}

struct Entry {
    shape: Arc<Shape>,
    subscribers: usize,
}

/// One live map: its ticks, and the token that stops its task.
pub struct Shape {
    key: String,
    ticks: watch::Sender<Option<Arc<Tick>>>,
    stop: CancellationToken,
}

/// One tick of a shape: the graph (with its delta from the previous graph) or an error.
pub struct Tick {
    seq: u64,
    body: TickBody,
}

enum TickBody {
    Graph {
        graph: Arc<Graph>,
        /// The full-graph event, serialised on first need (new and resyncing subscribers).
        full: OnceLock<Bytes>,
        /// `(base, event)`: the delta event from graph `base`; `None` on the first tick or
        /// when no delta reproduces the graph exactly.
        delta: Option<(u64, Bytes)>,
    },
    Error(Bytes),
}

/// A subscription to a shape; dropping it unsubscribes (the last one stops the shape).
pub struct Subscription {
    registry: Arc<Registry>,
    shape: Arc<Shape>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut shapes = self
            .registry
            .shapes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        metrics::LIVE_SUBSCRIBERS.fetch_sub(1, Ordering::Relaxed);
        let Some(e) = shapes.get_mut(&self.shape.key) else {
            return;
        };
        e.subscribers -= 1;
        if e.subscribers == 0 {
            shapes.remove(&self.shape.key);
            self.shape.stop.cancel();
            metrics::LIVE_SHAPES.fetch_sub(1, Ordering::Relaxed);
            tracing::info!(shape = %self.shape.key, live_shapes = shapes.len(), "live map stopped: no subscriber left");
        }
    }
}

impl Registry {
    pub fn new(max_shapes: usize) -> Arc<Self> {
        Arc::new(Self {
            shapes: Mutex::new(HashMap::new()),
            max_shapes,
        })
    }

    /// Subscribes to the shape `key`, starting it with `start` when nobody computes it yet;
    /// `None` when that would exceed the cap on shapes.
    pub fn subscribe(
        self: &Arc<Self>,
        key: String,
        start: impl FnOnce(Arc<Shape>),
    ) -> Option<Subscription> {
        let mut shapes = self.shapes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = shapes.get_mut(&key) {
            e.subscribers += 1;
            inc(&metrics::LIVE_SUBSCRIBERS);
            return Some(Subscription {
                registry: self.clone(),
                shape: e.shape.clone(),
            });
        }
        if shapes.len() >= self.max_shapes {
            return None;
        }
        let shape = Arc::new(Shape {
            key: key.clone(),
            ticks: watch::Sender::new(None),
            stop: CancellationToken::new(),
        });
        shapes.insert(
            key.clone(),
            Entry {
                shape: shape.clone(),
                subscribers: 1,
            },
        );
        inc(&metrics::LIVE_SHAPES);
        inc(&metrics::LIVE_SUBSCRIBERS);
        tracing::info!(shape = %key, live_shapes = shapes.len(), "live map started");
        start(shape.clone());
        Some(Subscription {
            registry: self.clone(),
            shape,
        })
    }

    /// Shapes computed now.
    pub fn shapes(&self) -> usize {
        self.shapes.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The shape of a stream request: its graph request at a fixed instant (so every parameter
/// that changes the graph is in it), the window parameters as given, and the interval.
/// Validates the request (a 400 up front rather than an error event).
pub fn shape_key(
    g: &GraphParams,
    w: &WindowParams,
    interval: Duration,
) -> Result<String, ApiError> {
    g.request(w, crate::now_ns())?;
    // Everything but the window, compared at a fixed instant; the window as given, below.
    let req = g.request(&WindowParams::default(), KEY_NOW_NS)?;
    let start = w.start.map(|t| t.0);
    let end = w.end.map(|t| t.0);
    let since = match (start, w.since) {
        (None, Some(s)) => Some(s.0),
        (None, None) => Some(params::DEFAULT_SINCE),
        (Some(_), _) => None,
    };
    Ok(format!(
        "{req:?} start={start:?} end={end:?} since={since:?} interval={}ms",
        interval.as_millis()
    ))
}

fn event(kind: &str, seq: Option<u64>, data: &str) -> Bytes {
    let mut s = String::with_capacity(data.len() + 40);
    s.push_str("event: ");
    s.push_str(kind);
    s.push('\n');
    if let Some(seq) = seq {
        s.push_str(&format!("id: {seq}\n"));
    }
    // Compact JSON has no newline; any other data is split into lines as SSE requires.
    for line in data.split('\n') {
        s.push_str("data: ");
        s.push_str(line);
        s.push('\n');
    }
    s.push('\n');
    Bytes::from(s)
}

fn error_event(message: &str, limit: Option<&str>) -> Bytes {
    event(
        "error",
        None,
        &json!({"error": message, "limit": limit}).to_string(),
    )
}

/// The task of one shape: a graph every `interval` until nobody subscribes.
async fn run_shape(
    cx: LiveContext,
    shape: Arc<Shape>,
    (g, w): (GraphParams, WindowParams),
    interval: Duration,
) {
    let mut prev: Option<(u64, Arc<Graph>)> = None;
    let mut ticker = tokio::time::interval(interval);
    // A computation longer than the interval delays the next tick; ticks never pile up.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = shape.stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        seq += 1;
        // The same request as a one-off graph read made now, so a stream tick and a fresh
        // `GET /orrery/api/graph` of the same instant agree.
        let req = match g.request(&w, crate::now_ns()) {
            Ok(r) => r,
            Err(e) => {
                publish(&shape, seq, TickBody::Error(error_event(&e.message, None)));
                continue;
            }
        };
        let tag: Arc<str> = Arc::from(format!("orrery-live:{:032x}", rand::random::<u128>()));
        let compute = limits::killed_if_dropped(cx.client.clone(), tag, async {
            graph::graph(&limits::tagged(&cx.client), &cx.graph, &cx.cache, &req).await
        });
        // Cancelled when the last subscriber leaves: dropping the computation kills its queries.
        let result = tokio::select! {
            _ = shape.stop.cancelled() => return,
            r = compute => r,
        };
        inc(&metrics::LIVE_COMPUTATIONS);
        let body = match result {
            Ok(g) => {
                let g = Arc::new(g);
                let d = prev.as_ref().and_then(|(base, p)| {
                    let d = delta(p, &g, *base, seq)?;
                    let json = serde_json::to_string(&d).ok()?;
                    Some((*base, event("delta", Some(seq), &json)))
                });
                prev = Some((seq, g.clone()));
                TickBody::Graph {
                    graph: g,
                    full: OnceLock::new(),
                    delta: d,
                }
            }
            Err(e) => {
                // The previous graph stays the base of the next delta.
                let e = ApiError::from(e);
                TickBody::Error(error_event(&e.message, e.limit))
            }
        };
        publish(&shape, seq, body);
    }
}

fn publish(shape: &Shape, seq: u64, body: TickBody) {
    shape.ticks.send_replace(Some(Arc::new(Tick { seq, body })));
}

/// What one subscriber sends for `tick`, given the graph it last sent (`have`).
fn event_for(tick: &Tick, have: &mut Option<u64>) -> Bytes {
    match &tick.body {
        TickBody::Error(b) => {
            inc(&metrics::LIVE_EVENTS_ERROR);
            b.clone()
        }
        TickBody::Graph { delta, .. } if matches!((delta, *have), (Some((base, _)), Some(h)) if *base == h) =>
        {
            *have = Some(tick.seq);
            inc(&metrics::LIVE_EVENTS_DELTA);
            delta.as_ref().map(|(_, b)| b.clone()).unwrap_or_default()
        }
        TickBody::Graph { graph, full, .. } => {
            if have.is_some() {
                // It missed a tick (or the delta could not be exact): the whole graph again.
                inc(&metrics::LIVE_RESYNCS);
            }
            *have = Some(tick.seq);
            inc(&metrics::LIVE_EVENTS_GRAPH);
            full.get_or_init(|| {
                let json = serde_json::to_string(graph.as_ref()).unwrap_or_else(|_| "{}".into());
                event("graph", Some(tick.seq), &json)
            })
            .clone()
        }
    }
}

/// Moves one subscriber's events from its shape to its connection's queue (of one event).
/// Ends on shutdown, when the shape ends, or when the client took nothing for `stall`.
async fn forward(
    sub: Subscription,
    out: mpsc::Sender<Bytes>,
    stall: Duration,
    shutdown: CancellationToken,
    dropped: Arc<AtomicBool>,
    permit: OwnedSemaphorePermit,
) {
    let mut ticks = sub.shape.ticks.subscribe();
    // The latest tick (if any) is this subscriber's first event: a full graph at once.
    ticks.mark_changed();
    let mut have: Option<u64> = None;
    let mut keep_alive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = ticks.changed() => match r {
                Err(_) => break,
                Ok(()) => match ticks.borrow_and_update().clone() {
                    Some(t) => t,
                    None => continue,
                },
            },
            _ = keep_alive.tick() => {
                // Only when the queue is empty: a client that is behind needs no keep-alive.
                let _ = out.try_send(Bytes::from_static(b": keep-alive\n\n"));
                continue;
            }
        };
        let bytes = event_for(&next, &mut have);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            r = tokio::time::timeout(stall, out.send(bytes)) => match r {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break, // the connection is gone
                Err(_) => {
                    inc(&metrics::LIVE_DROPPED);
                    dropped.store(true, Ordering::Relaxed);
                    tracing::info!(shape = %sub.shape.key, stall = ?stall, "live stream dropped: its client took no event");
                    break;
                }
            },
        }
    }
    drop(permit);
    drop(sub);
}

/// `GET /orrery/api/graph/stream`: subscribes to the request's shape (starting its task if it is
/// the first) and answers the event stream.
pub fn stream(
    live: &Arc<Registry>,
    cx: LiveContext,
    g: GraphParams,
    w: WindowParams,
    p: StreamParams,
) -> Result<Response, ApiError> {
    let interval = p.interval(cx.graph.graph_stream_interval)?;
    let key = shape_key(&g, &w, interval)?;
    let Ok(permit) = cx.streams.clone().try_acquire_owned() else {
        inc(&metrics::STREAMS_REFUSED);
        return Err(ApiError::limited(
            StatusCode::TOO_MANY_REQUESTS,
            "max_streams",
            format!(
                "this query service replica has as many live streams open as it allows \
                 (--query-max-streams {}): close another map or retry later",
                cx.max_streams
            ),
            30,
        ));
    };
    let (stall, shutdown, max_shapes) = (cx.stall, cx.shutdown.clone(), cx.max_shapes);
    let sub = live.subscribe(key, move |shape| {
        tokio::spawn(run_shape(cx, shape, (g, w), interval));
    });
    let Some(sub) = sub else {
        inc(&metrics::LIVE_SHAPES_REFUSED);
        return Err(ApiError::limited(
            StatusCode::TOO_MANY_REQUESTS,
            "max_stream_shapes",
            format!(
                "this query service replica computes as many distinct live maps as it allows \
                 (--query-max-stream-shapes {}): open a map that is already watched (same \
                 level, region, focus, window and interval), or retry later",
                max_shapes
            ),
            30,
        ));
    };
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let dropped = Arc::new(AtomicBool::new(false));
    tokio::spawn(forward(sub, tx, stall, shutdown, dropped.clone(), permit));
    let body =
        futures::stream::unfold((rx, dropped, false), |(mut rx, dropped, done)| async move {
            if done {
                return None;
            }
            let chunk = match rx.recv().await {
                Some(b) => b,
                None if dropped.load(Ordering::Relaxed) => {
                    let b = error_event(
                        "this client took no live update for longer than the server waits \
                     (--query-stream-stall): the stream is closed; reconnect to get the whole \
                     graph again",
                        Some("stream_stall"),
                    );
                    return Some((Ok::<_, Infallible>(count(b)), (rx, dropped, true)));
                }
                None => return None,
            };
            Some((Ok(count(chunk)), (rx, dropped, false)))
        });
    let mut r = Body::from_stream(body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies (nginx) must pass events on at once, not buffer them.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(r)
}

fn count(b: Bytes) -> Bytes {
    metrics::LIVE_BYTES_SENT.fetch_add(b.len() as u64, Ordering::Relaxed);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream's graph and window parameters from its query pairs.
    fn q(pairs: &[(&str, &str)]) -> (GraphParams, WindowParams) {
        let pairs = || pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        (
            params::from_pairs(pairs()).unwrap(),
            params::from_pairs(pairs()).unwrap(),
        )
    }
    fn shape_key(q: &(GraphParams, WindowParams), i: Duration) -> Result<String, ApiError> {
        super::shape_key(&q.0, &q.1, i)
    }

    #[test]
    fn equal_maps_share_a_shape_and_different_ones_do_not() {
        let i = Duration::from_secs(5);
        let k = |p: &[(&str, &str)]| shape_key(&q(p), i).unwrap();
        // Spellings of the same map.
        assert_eq!(
            k(&[("since", "5m")]),
            k(&[("since", "300s"), ("level", "region")])
        );
        assert_eq!(k(&[]), k(&[("since", "5m"), ("region", "")]));
        // Anything that changes the graph is another shape.
        let hour_ago = (crate::now_ns() / 1_000_000 - 3_600_000).to_string();
        let base = k(&[("since", "5m")]);
        for other in [
            k(&[("since", "4m30s")]),
            k(&[("since", "15m")]),
            k(&[("since", "5m"), ("level", "global")]),
            k(&[("since", "5m"), ("region", "eu")]),
            k(&[("since", "5m"), ("level", "focused"), ("service", "a")]),
            k(&[("since", "5m"), ("end", &hour_ago)]),
            k(&[("start", &hour_ago)]),
        ] {
            assert_ne!(base, other);
        }
        assert_ne!(
            shape_key(&q(&[]), Duration::from_secs(5)).unwrap(),
            shape_key(&q(&[]), Duration::from_secs(6)).unwrap()
        );
        assert!(shape_key(&q(&[("level", "focused")]), i).is_err());
        // A bad value is refused as the parameters are read, before any shape.
        let bad = [("since".to_string(), "1e300".to_string())];
        assert!(params::from_pairs::<WindowParams>(bad).is_err());
    }

    #[test]
    fn the_last_subscriber_leaving_stops_the_shape_and_the_cap_holds() {
        let r = Registry::new(2);
        let mut started = 0;
        let a1 = r.subscribe("a".into(), |_| started += 1).unwrap();
        let a2 = r.subscribe("a".into(), |_| started += 1).unwrap();
        assert_eq!(started, 1, "a second subscriber joins the running shape");
        let b = r.subscribe("b".into(), |_| started += 1).unwrap();
        assert!(
            r.subscribe("c".into(), |_| {}).is_none(),
            "two shapes at most"
        );
        let stop = a1.shape.stop.clone();
        drop(a1);
        assert!(!stop.is_cancelled(), "a2 still listens");
        drop(a2);
        assert!(stop.is_cancelled());
        assert_eq!(r.shapes(), 1);
        assert!(
            r.subscribe("c".into(), |_| {}).is_some(),
            "a's place is free again"
        );
        drop(b);
    }

    fn graph_tick(seq: u64, base: Option<u64>) -> Tick {
        Tick {
            seq,
            body: TickBody::Graph {
                graph: Arc::new(Graph::default()),
                full: OnceLock::new(),
                delta: base.map(|b| (b, event("delta", Some(seq), "{}"))),
            },
        }
    }

    #[test]
    fn a_subscriber_gets_deltas_in_step_and_the_full_graph_after_a_gap() {
        let mut have = None;
        let first = event_for(&graph_tick(1, None), &mut have);
        assert!(first.starts_with(b"event: graph\nid: 1\n"));
        assert!(event_for(&graph_tick(2, Some(1)), &mut have).starts_with(b"event: delta\n"));
        // An error tick changes nothing the subscriber holds.
        let err = Tick {
            seq: 3,
            body: TickBody::Error(error_event("boom", None)),
        };
        assert!(event_for(&err, &mut have).starts_with(b"event: error\n"));
        assert!(event_for(&graph_tick(4, Some(2)), &mut have).starts_with(b"event: delta\n"));
        // Tick 5 missed: tick 6's delta (from 5) does not fit, the full graph is sent.
        let resyncs = metrics::LIVE_RESYNCS.load(Ordering::Relaxed);
        assert!(
            event_for(&graph_tick(6, Some(5)), &mut have).starts_with(b"event: graph\nid: 6\n")
        );
        assert!(metrics::LIVE_RESYNCS.load(Ordering::Relaxed) > resyncs);
        assert_eq!(have, Some(6));
    }

    #[test]
    fn data_with_newlines_is_split_into_data_lines() {
        assert_eq!(
            &event("error", None, "a\nb")[..],
            b"event: error\ndata: a\ndata: b\n\n"
        );
    }
}
