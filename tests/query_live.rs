//! Live graph streams at many viewers (issue 14 item 4), on the real embedded engine and a real
//! query server: 100 subscribers of one map cost the engine what one does (counted by the
//! engine itself: `system.events` SelectQuery), deltas applied to the first graph are exactly
//! the graph a fresh read gives, a reconnect gets the full graph, a client that stops reading
//! does not stall the others and is dropped, distinct maps do not share, a map nobody watches
//! is no longer computed, and the cap on distinct maps answers 429.
//!
//! The tests read process-wide counters (the engine's and /metrics), so they run one at a time.

mod query_support;

use std::net::SocketAddr;
use std::time::Duration;

use orrery_query::limits::LimitArgs;
use orrery_query::model::Graph;
use orrery_query::model::live::{GraphDelta, apply};
use orrery_query::{GraphArgs, QueryArgs};
use orrery_store::ClickHouseArgs;
use orrery_store::testing::fresh_database;
use query_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Server {
    base: String,
    addr: SocketAddr,
    shutdown: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start(ch: &ClickHouseArgs, limits: LimitArgs) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let args = QueryArgs {
        query_addr: addr,
        api_token: None,
        ui_dir: "/nonexistent".into(),
        graph: GraphArgs {
            graph_no_rollup: true,
            ..settings()
        },
        limits,
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(orrery_query::serve(
        listener,
        args,
        ch.clone(),
        shutdown.clone(),
    ));
    let base = format!("http://{addr}");
    for _ in 0..100 {
        if reqwest::get(format!("{base}/orrery/api/health"))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server {
        base,
        addr,
        shutdown,
    }
}

fn limits() -> LimitArgs {
    LimitArgs {
        query_max_streams: 200,
        query_max_concurrent_requests: 400,
        ..LimitArgs::default()
    }
}

/// `n` services in a chain `s0 -> s1 -> … -> s{n-1}`, `calls` calls on every edge, at `ts`.
fn chain(tag: &str, n: usize, calls: usize, ts: i64) -> Vec<orrery_store::SpanRow> {
    static TRACES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let mut rows = Vec::new();
    for i in 0..n.saturating_sub(1) {
        for c in 0..calls {
            let trace = format!(
                "{:x}",
                TRACES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            let (a, b) = (format!("{tag}s{i}"), format!("{tag}s{}", i + 1));
            rows.push(span(&trace, "1", "", &a, "Server", ts, 10));
            rows.push(span(&trace, "2", "1", &a, "Client", ts + MS, 8));
            let callee = span(&trace, "3", "2", &b, "Server", ts + 2 * MS, 5);
            rows.push(if c.is_multiple_of(4) {
                callee.error()
            } else {
                callee
            });
        }
    }
    rows
}

/// The engine's own count of SELECT queries (all databases: the tests run one at a time).
async fn engine_selects(ch: &ClickHouseArgs) -> u64 {
    ch.client()
        .query("SELECT toUInt64(value) FROM system.events WHERE event = 'SelectQuery'")
        .fetch_one::<u64>()
        .await
        .unwrap()
}

async fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

/// One SSE event.
#[derive(Debug, Clone)]
struct Ev {
    kind: String,
    id: Option<u64>,
    data: String,
}

/// A stream reader: the events of one open stream, in order.
struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    async fn open(url: &str) -> Sse {
        let resp = reqwest::get(url).await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        Sse {
            resp,
            buf: String::new(),
        }
    }

    async fn next(&mut self) -> Ev {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let mut ev = Ev {
                    kind: "message".into(),
                    id: None,
                    data: String::new(),
                };
                let mut data = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        ev.kind = v.into();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        ev.id = v.parse().ok();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        if data {
                            ev.data.push('\n');
                        }
                        ev.data.push_str(v);
                        data = true;
                    }
                }
                if data {
                    return ev;
                }
                continue; // a keep-alive comment
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.resp.chunk())
                .await
                .expect("no event within 30 s")
                .unwrap()
                .expect("the stream ended");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// What a UI holds: the graph, kept current from the events.
struct Held {
    graph: Graph,
    seq: u64,
    deltas: usize,
}

impl Held {
    async fn first(s: &mut Sse) -> Held {
        let ev = s.next().await;
        assert_eq!(
            ev.kind, "graph",
            "the first event is the full graph: {ev:?}"
        );
        Held {
            graph: serde_json::from_str(&ev.data).unwrap(),
            seq: ev.id.expect("a graph event has an id"),
            deltas: 0,
        }
    }

    /// Applies the next graph or delta event; returns its kind.
    async fn step(&mut self, s: &mut Sse) -> String {
        let ev = s.next().await;
        match ev.kind.as_str() {
            "graph" => {
                self.graph = serde_json::from_str(&ev.data).unwrap();
                self.seq = ev.id.unwrap();
            }
            "delta" => {
                let d: GraphDelta = serde_json::from_str(&ev.data).unwrap();
                assert_eq!(d.base, self.seq, "a delta from the graph held");
                assert_eq!(ev.id, Some(d.seq));
                apply(&mut self.graph, &d).unwrap();
                self.seq = d.seq;
                self.deltas += 1;
            }
            other => panic!("unexpected {other} event: {}", ev.data),
        }
        ev.kind
    }
}

#[tokio::test]
async fn a_hundred_viewers_cost_the_engine_what_one_does() {
    let _serial = SERIAL.lock().await;
    let ch = fresh_database().await;
    insert(&ch, &chain("a", 6, 3, now_ns() - 30_000 * MS)).await;
    let s = start(&ch, limits()).await;
    let url = format!("{}/orrery/api/graph/stream?since=15m&interval=1s", s.base);
    let overhead = {
        let a = engine_selects(&ch).await;
        engine_selects(&ch).await - a
    };
    // Queries per tick with one viewer, over ticks the viewer saw.
    let per_tick = |q: u64, ticks: u64| (q as f64 - 2.0 * overhead as f64) / ticks as f64;
    let mut one = Sse::open(&url).await;
    let mut held = Held::first(&mut one).await;
    held.step(&mut one).await;
    let (q0, seq0) = (engine_selects(&ch).await, held.seq);
    for _ in 0..4 {
        held.step(&mut one).await;
    }
    let (q1, seq1) = (engine_selects(&ch).await, held.seq);
    let alone = per_tick(q1 - q0, seq1 - seq0);
    assert!(alone >= 1.0, "a graph reads the engine: {alone}");
    // 99 more viewers of the same map.
    let mut others = Vec::new();
    for _ in 0..99 {
        others.push(Sse::open(&url).await);
    }
    let computed0 = metric(&s.base, "orrery_query_live_computations_total").await;
    assert_eq!(
        metric(&s.base, "orrery_query_live_subscribers").await,
        100.0
    );
    assert_eq!(metric(&s.base, "orrery_query_live_shapes").await, 1.0);
    let mut firsts = Vec::new();
    for o in &mut others {
        firsts.push(Held::first(o).await);
    }
    held.step(&mut one).await;
    let (q2, seq2) = (engine_selects(&ch).await, held.seq);
    for _ in 0..4 {
        held.step(&mut one).await;
    }
    let (q3, seq3) = (engine_selects(&ch).await, held.seq);
    let hundred = per_tick(q3 - q2, seq3 - seq2);
    eprintln!("engine SELECTs per tick: 1 viewer {alone:.2}, 100 viewers {hundred:.2}");
    assert!(
        hundred <= alone + 1.0,
        "100 viewers: {hundred:.2} queries per tick, 1 viewer: {alone:.2}"
    );
    // The service's own count agrees: one computation per tick, not one per viewer.
    let computed = metric(&s.base, "orrery_query_live_computations_total").await - computed0;
    assert!(
        computed <= (seq3 - seq2 + 3) as f64,
        "{computed} computations over {} ticks",
        seq3 - seq2
    );
    // Every viewer is in step: each of them got deltas, on the same sequence.
    for (o, h) in others.iter_mut().zip(firsts.iter_mut()) {
        assert_eq!(h.step(o).await, "delta");
    }
    drop(others);
    drop(one);
    // Nobody watches: the map is no longer computed (the engine sees no more queries).
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if metric(&s.base, "orrery_query_live_shapes").await == 0.0 {
            gone = true;
            break;
        }
    }
    assert!(gone, "the shape outlived its last subscriber");
    assert_eq!(metric(&s.base, "orrery_query_live_subscribers").await, 0.0);
    let quiet0 = engine_selects(&ch).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let quiet = engine_selects(&ch).await - quiet0;
    assert!(quiet <= overhead, "{quiet} queries in 3 s with no viewer");
}

#[tokio::test]
async fn deltas_rebuild_the_graph_a_fresh_read_gives_and_a_reconnect_gets_it_whole() {
    let _serial = SERIAL.lock().await;
    let ch = fresh_database().await;
    // A fixed past window: the graph is a function of the data alone, so the graph the
    // deltas build can be compared with a fresh read exactly.
    let lo = (now_ns() / MINUTE - 30) * MINUTE;
    let (start, end) = (lo / 1_000_000, (lo + 20 * MINUTE) / 1_000_000);
    let params = format!("start={start}&end={end}");
    insert(&ch, &chain("a", 5, 2, lo + MINUTE)).await;
    let s = start_server(&ch).await;
    let url = format!("{}/orrery/api/graph/stream?{params}&interval=1s", s.base);
    let fresh = || async {
        let mut g: Graph = reqwest::get(format!("{}/orrery/api/graph?{params}", s.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        g.generated_at_ms = 0;
        g
    };
    let mut stream = Sse::open(&url).await;
    let mut held = Held::first(&mut stream).await;
    let spans = |g: &Graph| g.data_quality.spans;
    // Changes the engine sees between ticks: more calls (metrics), new services (added),
    // then a different mesh altogether (removed + added).
    let rounds: Vec<Box<dyn Fn() -> Vec<orrery_store::SpanRow>>> = vec![
        Box::new(move || chain("a", 5, 3, lo + 2 * MINUTE)),
        Box::new(move || chain("b", 4, 1, lo + 3 * MINUTE)),
        Box::new(move || chain("c", 7, 2, lo + 4 * MINUTE)),
    ];
    for (i, rows) in rounds.iter().enumerate() {
        if i == 2 {
            truncate_all(&ch).await;
        }
        let rows = rows();
        insert(&ch, &rows).await;
        let want = fresh().await;
        // The stream catches up within a few ticks; then what the deltas built is the graph.
        let mut ok = false;
        for _ in 0..10 {
            held.step(&mut stream).await;
            let mut g = held.graph.clone();
            g.generated_at_ms = 0;
            if spans(&g) == spans(&want) {
                assert_eq!(g, want, "round {i}: the deltas' graph is the fresh graph");
                ok = true;
                break;
            }
        }
        assert!(ok, "round {i}: the stream never showed the new spans");
    }
    assert!(held.deltas >= 3, "the changes came as deltas");
    assert!(held.graph.nodes.iter().all(|n| !n.id.starts_with("as")));
    // A reconnect starts with the full graph again.
    drop(stream);
    let mut again = Sse::open(&url).await;
    let first = Held::first(&mut again).await;
    let mut g = first.graph.clone();
    g.generated_at_ms = 0;
    assert_eq!(g, fresh().await);
}

async fn start_server(ch: &ClickHouseArgs) -> Server {
    start(ch, limits()).await
}

/// Empties every table of the test database (spans and everything derived from them).
async fn truncate_all(ch: &ClickHouseArgs) {
    let c = ch.client();
    let tables: Vec<String> = c
        .query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() \
             AND engine NOT LIKE '%View%' AND name NOT LIKE '%schema%'",
        )
        .fetch_all()
        .await
        .unwrap();
    for t in tables {
        c.query(&format!("TRUNCATE TABLE `{t}`"))
            .execute()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_stalls_nobody_and_is_dropped() {
    let _serial = SERIAL.lock().await;
    let ch = fresh_database().await;
    // A map big enough that ticks fill a connection's buffers (the kernel's send buffer grows to
    // 4 MB on loopback) in tens of seconds: 1,000 services, ~200 KB of metrics per tick.
    insert(&ch, &chain("m", 1000, 1, now_ns() - 20_000 * MS)).await;
    let s = start(
        &ch,
        LimitArgs {
            query_stream_stall: Duration::from_secs(2),
            ..limits()
        },
    )
    .await;
    let path = "/orrery/api/graph/stream?since=15m&interval=1s";
    let dropped0 = metric(&s.base, "orrery_query_live_dropped_total").await;
    // The stuck client: a tiny receive buffer, a request, then it never reads.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stuck = sock.connect(s.addr).await.unwrap();
    stuck
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let url = format!("{}{path}", s.base);
    let mut readers = Vec::new();
    for _ in 0..5 {
        let mut r = Sse::open(&url).await;
        let h = Held::first(&mut r).await;
        readers.push((r, h));
    }
    // The readers get every tick on time while the stuck client's buffers fill up.
    let t0 = tokio::time::Instant::now();
    let mut ticks = 0;
    while t0.elapsed() < Duration::from_secs(10) {
        for (r, h) in &mut readers {
            h.step(r).await;
        }
        ticks += 1;
    }
    assert!(ticks >= 6, "{ticks} ticks in 10 s for the readers");
    assert!(
        readers.iter().all(|(_, h)| h.deltas > 0),
        "readers in step get deltas"
    );
    // The stuck client was dropped: it no longer holds a slot.
    let mut dropped = false;
    for _ in 0..240 {
        if metric(&s.base, "orrery_query_live_dropped_total").await > dropped0 {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(dropped, "a client that stopped reading was not dropped");
    assert_eq!(metric(&s.base, "orrery_query_live_subscribers").await, 5.0);
    // If it ever reads again, what it finds ends with the reason.
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stuck.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => panic!("{e}"),
        }
        if seen.windows(12).any(|w| w == b"stream_stall") {
            break;
        }
    }
    assert!(
        seen.windows(12).any(|w| w == b"stream_stall"),
        "the stuck client finds why it was dropped ({} bytes read)",
        seen.len()
    );
}

#[tokio::test]
async fn distinct_maps_do_not_share_and_their_number_is_capped() {
    let _serial = SERIAL.lock().await;
    let ch = fresh_database().await;
    insert(&ch, &chain("a", 4, 2, now_ns() - 20_000 * MS)).await;
    let s = start(
        &ch,
        LimitArgs {
            query_max_stream_shapes: 2,
            ..limits()
        },
    )
    .await;
    let stream = |q: &str| {
        format!(
            "{}/orrery/api/graph/stream?{q}&since=15m&interval=1s",
            s.base
        )
    };
    let mut region = Sse::open(&stream("level=region")).await;
    let mut global = Sse::open(&stream("level=global")).await;
    let r = Held::first(&mut region).await;
    let g = Held::first(&mut global).await;
    assert_eq!(r.graph.level, "region");
    assert_eq!(g.graph.level, "global");
    assert_ne!(r.graph.nodes, g.graph.nodes);
    assert_eq!(metric(&s.base, "orrery_query_live_shapes").await, 2.0);
    // Two computations per tick: one per map.
    let c0 = metric(&s.base, "orrery_query_live_computations_total").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c = metric(&s.base, "orrery_query_live_computations_total").await - c0;
    assert!(
        (4.0..=8.0).contains(&c),
        "{c} computations in 3 s of 2 maps"
    );
    // A third map is refused while two are computed, with what to do.
    let third = reqwest::get(stream("level=region&region=eu"))
        .await
        .unwrap();
    assert_eq!(third.status(), 429);
    assert!(third.headers().contains_key("retry-after"));
    let v: serde_json::Value = third.json().await.unwrap();
    assert_eq!(v["limit"], "max_stream_shapes");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("--query-max-stream-shapes")
    );
    // A viewer of a map already computed is not refused.
    let mut also = Sse::open(&stream("level=global")).await;
    Held::first(&mut also).await;
    // Closing the region map frees its place.
    drop(region);
    let mut freed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if metric(&s.base, "orrery_query_live_shapes").await == 1.0 {
            freed = true;
            break;
        }
    }
    assert!(freed);
    let mut eu = Sse::open(&stream("level=region&region=eu")).await;
    Held::first(&mut eu).await;
}
