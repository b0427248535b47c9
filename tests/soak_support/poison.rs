//! The hostile second client of the soak: OTLP/HTTP requests that must never hurt anyone else's
//! spans — spans far in the past and far in the future, one request over 101 dates, zero ids, an
//! end before the start, a body over the size limit, a gzip bomb, malformed protobuf, broken
//! JSON. Each request's fate is recorded: refused (4xx), partly rejected through OTLP
//! `partial_success`, pushed back (503: the client would retry), or accepted; the spans of the
//! accepted ones are looked up by trace id at the end.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// Every poison trace id starts with this, so the mesh's (random) traces never collide with it.
pub const TRACE_PREFIX: &str = "bad0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    FarPast,
    FarFuture,
    HundredOneDates,
    ZeroIds,
    EndBeforeStart,
    Oversized,
    GzipBomb,
    MalformedProtobuf,
    BadJson,
}

pub const KINDS: [Kind; 9] = [
    Kind::FarPast,
    Kind::FarFuture,
    Kind::HundredOneDates,
    Kind::ZeroIds,
    Kind::EndBeforeStart,
    Kind::Oversized,
    Kind::GzipBomb,
    Kind::MalformedProtobuf,
    Kind::BadJson,
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::FarPast => "span 400 days old",
            Kind::FarFuture => "span 30 days ahead",
            Kind::HundredOneDates => "101 spans on 101 dates",
            Kind::ZeroIds => "all-zero trace id",
            Kind::EndBeforeStart => "end before start",
            Kind::Oversized => "17 MiB body",
            Kind::GzipBomb => "gzip bomb (64 MiB inflated)",
            Kind::MalformedProtobuf => "malformed protobuf",
            Kind::BadJson => "broken JSON",
        }
    }
}

/// What happened to one poison request.
#[derive(Debug, Clone)]
pub struct Sent {
    pub kind: Kind,
    /// Trace id (hex) of its spans, when it had well-formed ones.
    pub trace: Option<String>,
    pub spans: u64,
    /// HTTP status, or 0 when the collector could not be reached (killed, restarting).
    pub status: u16,
    /// Spans the collector rejected to the client: `partial_success.rejectedSpans`, or all of
    /// them on a 4xx.
    pub rejected: u64,
    pub body: String,
}

impl Sent {
    /// Spans the collector acknowledged (200 minus what it rejected).
    pub fn accepted(&self) -> u64 {
        if self.status == 200 {
            self.spans - self.rejected.min(self.spans)
        } else {
            0
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

const DAY_NS: u64 = 86_400 * 1_000_000_000;

fn span(trace: &str, span_id: &str, start: u64, end: u64) -> Value {
    json!({
        "traceId": trace, "spanId": span_id, "name": "poison", "kind": 2,
        "startTimeUnixNano": start.to_string(), "endTimeUnixNano": end.to_string(),
        "attributes": [{"key": "soak.poison", "value": {"boolValue": true}}]
    })
}

fn request(spans: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "soak-poison"}}]},
        "scopeSpans": [{"scope": {"name": "soak"}, "spans": spans}]
    }]}))
    .unwrap()
}

/// A body of `kind`: (bytes, content type, gzip?, trace id, spans in it).
fn build(kind: Kind, n: u64, bomb: &[u8]) -> (Vec<u8>, &'static str, bool, Option<String>, u64) {
    let trace = format!("{TRACE_PREFIX}{n:028x}");
    let sid = |i: u64| format!("{:016x}", (n << 12) + i + 1);
    let now = now_ns();
    let json_ct = "application/json";
    let pb = "application/x-protobuf";
    match kind {
        Kind::FarPast => {
            let t = now - 400 * DAY_NS;
            let body = request(vec![span(&trace, &sid(0), t, t + 1_000_000)]);
            (body, json_ct, false, Some(trace), 1)
        }
        Kind::FarFuture => {
            let t = now + 30 * DAY_NS;
            let body = request(vec![span(&trace, &sid(0), t, t + 1_000_000)]);
            (body, json_ct, false, Some(trace), 1)
        }
        Kind::HundredOneDates => {
            let spans = (0..101)
                .map(|d| {
                    let t = now - d * DAY_NS - 60_000_000_000;
                    span(&trace, &sid(d), t, t + 1_000_000)
                })
                .collect();
            (request(spans), json_ct, false, Some(trace), 101)
        }
        Kind::ZeroIds => {
            let body = request(vec![span(&"0".repeat(32), &sid(0), now, now + 1_000_000)]);
            (body, json_ct, false, None, 1)
        }
        Kind::EndBeforeStart => {
            let body = request(vec![span(&trace, &sid(0), now, now - 5_000_000)]);
            (body, json_ct, false, Some(trace), 1)
        }
        Kind::Oversized => {
            // Over the default --ingest-max-request-bytes (16 MiB).
            let mut body = vec![0x0a; 17 << 20];
            for (i, b) in body.iter_mut().enumerate().step_by(97) {
                *b = (i % 251) as u8;
            }
            (body, pb, false, None, 0)
        }
        Kind::GzipBomb => (bomb.to_vec(), pb, true, None, 0),
        Kind::MalformedProtobuf => {
            // A field 1 (resource_spans) that claims more bytes than follow, then garbage.
            let mut body = vec![0x0a, 0xff, 0xff, 0x03];
            body.extend((0..2048u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
            (body, pb, false, None, 0)
        }
        Kind::BadJson => {
            let mut body = request(vec![span(&trace, &sid(0), now, now + 1)]);
            body.truncate(body.len() / 2);
            (body, json_ct, false, None, 0)
        }
    }
}

/// 64 MiB of zeros, gzipped (~64 KiB): inflates far past the request limit.
fn gzip_bomb() -> Vec<u8> {
    let out = std::process::Command::new("sh")
        .args(["-c", "head -c 67108864 /dev/zero | gzip -c"])
        .output()
        .expect("gzip");
    assert!(out.status.success() && out.stdout.len() < 1 << 20);
    out.stdout
}

fn rejected_in(body: &str) -> u64 {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let r = &v["partialSuccess"]["rejectedSpans"];
    r.as_u64()
        .or_else(|| r.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

pub struct Poisoner {
    pub sent: Arc<Mutex<Vec<Sent>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Poisoner {
    /// Sends one poison request every `every`, cycling through the kinds and the collectors.
    pub fn start(targets: Vec<SocketAddr>, every: Duration) -> Poisoner {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (sent.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                let bomb = gzip_bomb();
                let counter = AtomicU64::new(1);
                while !st.load(Ordering::Relaxed) {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let kind = KINDS[(n as usize) % KINDS.len()];
                    let target = targets[(n as usize / KINDS.len()) % targets.len()];
                    let (body, ct, gz, trace, spans) = build(kind, n, &bomb);
                    let mut req = client
                        .post(format!("http://{target}/v1/traces"))
                        .header("content-type", ct)
                        .body(body);
                    if gz {
                        req = req.header("content-encoding", "gzip");
                    }
                    let (status, text) = match req.send().await {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            (status, r.text().await.unwrap_or_default())
                        }
                        Err(e) => {
                            // The innermost cause says what happened (refused, reset, timeout).
                            let mut cause: &dyn std::error::Error = &e;
                            while let Some(next) = cause.source() {
                                cause = next;
                            }
                            (0, cause.to_string())
                        }
                    };
                    let rejected = match status {
                        200 => rejected_in(&text),
                        400..=499 => spans,
                        _ => 0,
                    };
                    s.lock().unwrap().push(Sent {
                        kind,
                        trace,
                        spans,
                        status,
                        rejected,
                        body: text.chars().take(300).collect(),
                    });
                    tokio::time::sleep(every).await;
                }
            });
        });
        Poisoner {
            sent,
            stop,
            thread: Some(thread),
        }
    }

    pub fn stop(&mut self) -> Vec<Sent> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.sent.lock().unwrap().clone()
    }
}
