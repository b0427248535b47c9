//! The big-mesh generator: synthetic but realistic OTLP traffic from hundreds of services
//! (client/server span pairs, regions, instances, ~10 attributes, events, errors), sent over
//! OTLP/gRPC to one or more collectors at a set rate, with an exact report of what was accepted.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, status};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// `orrery mesh`: send synthetic traces from a large service mesh to OTLP/gRPC collectors.
#[derive(Args, Debug, Clone)]
pub struct MeshArgs {
    /// Number of services in the mesh.
    #[arg(long, env = "ORRERY_MESH_SERVICES", default_value_t = 300)]
    pub services: usize,
    /// Target rate, spans per second.
    #[arg(long, env = "ORRERY_MESH_RATE", default_value_t = 10_000)]
    pub rate: u64,
    /// OTLP/gRPC endpoint(s); several (repeat or comma-separate) get requests round-robin,
    /// with no trace affinity.
    #[arg(
        long = "endpoint",
        env = "ORRERY_MESH_ENDPOINT",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:4317"
    )]
    pub endpoints: Vec<String>,
    /// How long to send for (e.g. `30s`, `5m`); until Ctrl-C if 0.
    #[arg(long, env = "ORRERY_MESH_DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Stop after this many traces (overrides --duration).
    #[arg(long, env = "ORRERY_MESH_TRACES")]
    pub traces: Option<u64>,
    /// Number of regions services are spread over.
    #[arg(long, env = "ORRERY_MESH_REGIONS", default_value_t = 3)]
    pub regions: usize,
    /// Number of namespaces (teams) services are spread over: 1 puts every service in the
    /// `mesh` namespace; more sets `service.namespace` and the `team` resource attribute to a
    /// team name per service (each team owns services in every tier, as real teams do).
    #[arg(long, env = "ORRERY_MESH_NAMESPACES", default_value_t = 1)]
    pub namespaces: usize,
    /// Spans per export request.
    #[arg(long, env = "ORRERY_MESH_BATCH", default_value_t = 1000)]
    pub batch: usize,
    /// Export requests in flight at once.
    #[arg(long, env = "ORRERY_MESH_CONCURRENCY", default_value_t = 8)]
    pub concurrency: usize,
    /// Random seed (same seed, same mesh).
    #[arg(long, env = "ORRERY_MESH_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Also write the JSON report to this file.
    #[arg(long, env = "ORRERY_MESH_REPORT")]
    pub report: Option<std::path::PathBuf>,
    /// Also write one line per trace to this file, `ok|failed <trace id hex> <spans>`: which
    /// traces the collectors acknowledged (a trace is always sent whole in one request), so a
    /// test can check every acknowledged span by id (the soak test does).
    #[arg(long, env = "ORRERY_MESH_LEDGER")]
    pub ledger: Option<std::path::PathBuf>,
}

/// Exactly what the collectors accepted (exports that failed are counted apart, not here).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MeshReport {
    pub spans: u64,
    pub traces: u64,
    pub exports: u64,
    pub failed_exports: u64,
    pub failed_spans: u64,
    pub elapsed_secs: f64,
    pub spans_per_sec: f64,
    /// One entry per caller → callee service pair.
    pub edges: Vec<EdgeCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeCount {
    pub client: String,
    pub server: String,
    pub calls: u64,
    pub errors: u64,
}

const NOUNS: [&str; 24] = [
    "accounts",
    "billing",
    "cart",
    "catalog",
    "checkout",
    "delivery",
    "email",
    "fraud",
    "gateway",
    "inventory",
    "ledger",
    "login",
    "media",
    "orders",
    "payments",
    "pricing",
    "profile",
    "quotes",
    "ratings",
    "search",
    "shipping",
    "tax",
    "users",
    "wallet",
];
/// Team names for `--namespaces` above 1 (a suffix keeps them distinct past the list's end).
const TEAMS: [&str; 8] = [
    "storefront",
    "payments",
    "logistics",
    "identity",
    "platform",
    "data",
    "growth",
    "support",
];
const REGIONS: [&str; 6] = [
    "us-east-1",
    "eu-west-1",
    "ap-southeast-1",
    "us-west-2",
    "eu-central-1",
    "sa-east-1",
];

/// The generated mesh: services in tiers, each calling a few services in deeper tiers.
struct Mesh {
    names: Vec<String>,
    regions: Vec<&'static str>,
    /// Namespace (= team) of each service.
    teams: Vec<String>,
    tier_of: Vec<usize>,
    callees: Vec<Vec<u32>>,
    error_rate: Vec<f64>,
    entry: Vec<u32>,
}

impl Mesh {
    fn new(n: usize, regions: usize, namespaces: usize, rng: &mut StdRng) -> Mesh {
        let n = n.max(2);
        let regions = regions.clamp(1, REGIONS.len());
        let tiers = 6usize;
        // A few entry services (gateways), then equal-sized deeper tiers.
        let entries = (n / 20).max(1);
        let tier_of: Vec<usize> = (0..n)
            .map(|i| {
                if i < entries {
                    0
                } else {
                    1 + ((i - entries) * (tiers - 1)) / (n - entries).max(1)
                }
            })
            .collect();
        let names = (0..n)
            .map(|i| format!("{}-{i:03}", NOUNS[i % NOUNS.len()]))
            .collect();
        let in_tier = |t: usize| -> Vec<u32> {
            (0..n as u32)
                .filter(|&j| tier_of[j as usize] == t)
                .collect()
        };
        let mut callees: Vec<Vec<u32>> = vec![Vec::new(); n];
        // Everyone below the entry tier has at least one caller one tier up ...
        for (j, tier) in tier_of.iter().enumerate().skip(entries) {
            let up = in_tier(tier - 1);
            let caller = up[rng.random_range(0..up.len())];
            callees[caller as usize].push(j as u32);
        }
        // ... and callers get a few more callees one (sometimes two) tiers down.
        for i in 0..n {
            let skip = if rng.random_bool(0.2) { 2 } else { 1 };
            let down = in_tier(tier_of[i] + skip);
            if down.is_empty() {
                continue;
            }
            let extra = rng.random_range(1..=3usize);
            for _ in 0..extra {
                let c = down[rng.random_range(0..down.len())];
                if !callees[i].contains(&c) {
                    callees[i].push(c);
                }
            }
        }
        let error_rate = (0..n)
            .map(|_| if rng.random_bool(0.05) { 0.05 } else { 0.002 })
            .collect();
        Mesh {
            names,
            regions: (0..n).map(|i| REGIONS[i % regions]).collect(),
            teams: (0..n).map(|i| team_name(i, namespaces)).collect(),
            entry: (0..n as u32)
                .filter(|&i| tier_of[i as usize] == 0)
                .collect(),
            tier_of,
            callees,
            error_rate,
        }
    }
}

/// The namespace (and team) of service `i` when there are `namespaces` of them: `mesh` for one,
/// else team names dealt round-robin, so every team has services in every tier.
pub fn team_name(i: usize, namespaces: usize) -> String {
    if namespaces <= 1 {
        return "mesh".into();
    }
    let k = i % namespaces;
    match k / TEAMS.len() {
        0 => TEAMS[k].into(),
        round => format!("{}-{}", TEAMS[k % TEAMS.len()], round + 1),
    }
}

/// Calls and errors per (caller, callee) service index.
type EdgeMap = HashMap<(u32, u32), (u64, u64)>;
/// Trace ids of a request with their span counts.
type TraceSpans = Vec<([u8; 16], u32)>;

/// Spans of one export request, grouped by service, plus the edges they contain.
#[derive(Default)]
struct Batch {
    by_service: BTreeMap<u32, Vec<Span>>,
    spans: u64,
    traces: u64,
    edges: EdgeMap,
    /// Trace id and span count of every trace in the batch (for --ledger).
    trace_spans: Vec<([u8; 16], u32)>,
}

struct Generator {
    mesh: Mesh,
    rng: StdRng,
}

impl Generator {
    fn trace(&mut self, batch: &mut Batch) {
        let trace_id: [u8; 16] = self.rng.random();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let entry = self.mesh.entry[self.rng.random_range(0..self.mesh.entry.len())];
        let mut budget = 60usize;
        let before = batch.spans;
        self.server(batch, &trace_id, &[], entry, now, &mut budget);
        batch.traces += 1;
        batch
            .trace_spans
            .push((trace_id, (batch.spans - before) as u32));
    }

    /// A server span in `svc` (child of `parent`), its calls, and returns (end time, error).
    fn server(
        &mut self,
        batch: &mut Batch,
        trace_id: &[u8; 16],
        parent: &[u8],
        svc: u32,
        start: u64,
        budget: &mut usize,
    ) -> (u64, bool) {
        let span_id: [u8; 8] = self.rng.random();
        let s = svc as usize;
        let mut t = start + self.rng.random_range(50_000..2_000_000);
        let mut failed = false;
        let callees = self.mesh.callees[s].clone();
        for callee in callees {
            if *budget < 2 || !self.rng.random_bool(0.5) {
                continue;
            }
            *budget -= 2;
            let client_id: [u8; 8] = self.rng.random();
            let c_start = t;
            let (c_end, err) = self.server(
                batch,
                trace_id,
                &client_id,
                callee,
                c_start + 200_000,
                budget,
            );
            let c_end = c_end + 200_000;
            let client = self.span(
                trace_id,
                &client_id,
                &span_id,
                callee as usize,
                SpanKind::Client,
                c_start,
                c_end,
                err,
            );
            batch.by_service.entry(svc).or_default().push(client);
            batch.spans += 1;
            let e = batch.edges.entry((svc, callee)).or_default();
            e.0 += 1;
            e.1 += err as u64;
            failed |= err && self.rng.random_bool(0.5);
            t = c_end;
        }
        failed |= self.rng.random_bool(self.mesh.error_rate[s]);
        let end = t + self.rng.random_range(50_000..1_000_000);
        let server = self.span(
            trace_id,
            &span_id,
            parent,
            s,
            SpanKind::Server,
            start,
            end,
            failed,
        );
        batch.by_service.entry(svc).or_default().push(server);
        batch.spans += 1;
        (end, failed)
    }

    #[allow(clippy::too_many_arguments)]
    fn span(
        &mut self,
        trace_id: &[u8; 16],
        span_id: &[u8; 8],
        parent: &[u8],
        target: usize,
        kind: SpanKind,
        start: u64,
        end: u64,
        error: bool,
    ) -> Span {
        let m = &self.mesh;
        let route = format!("/api/v1/{}/{{id}}", NOUNS[target % NOUNS.len()]);
        let method = if target.is_multiple_of(3) {
            "POST"
        } else {
            "GET"
        };
        let code: i64 = if error { 500 } else { 200 };
        let host = format!("{}.{}.svc", m.names[target], m.regions[target]);
        let mut attrs = vec![
            kv_s("http.request.method", method),
            kv_s("http.route", &route),
            kv_i("http.response.status_code", code),
            kv_s("server.address", &host),
            kv_i("server.port", 8080),
            kv_s("network.protocol.version", "1.1"),
            kv_s(
                "tenant.id",
                &format!("tenant-{}", self.rng.random_range(0..50)),
            ),
        ];
        let name = if kind == SpanKind::Client {
            attrs.push(kv_s("peer.service", &m.names[target]));
            attrs.push(kv_s("url.full", &format!("http://{host}:8080{route}")));
            attrs.push(kv_s("network.peer.address", "10.0.0.1"));
            format!("{method} {route}")
        } else {
            attrs.push(kv_s("url.path", &route.replace("{id}", "42")));
            attrs.push(kv_s("user_agent.original", "mesh-client/1.0"));
            attrs.push(kv_s("client.address", "10.0.0.2"));
            format!("{method} {route}")
        };
        let mut events = Vec::new();
        if error {
            events.push(Event {
                time_unix_nano: end,
                name: "exception".into(),
                attributes: vec![
                    kv_s("exception.type", "UpstreamError"),
                    kv_s("exception.message", "upstream returned 500"),
                ],
                dropped_attributes_count: 0,
            });
        } else if self.rng.random_bool(0.2) {
            events.push(Event {
                time_unix_nano: start + (end - start) / 2,
                name: "cache.miss".into(),
                attributes: vec![kv_s("cache.key", "item:42")],
                dropped_attributes_count: 0,
            });
        }
        Span {
            trace_id: trace_id.to_vec(),
            span_id: span_id.to_vec(),
            parent_span_id: parent.to_vec(),
            name,
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes: attrs,
            events,
            status: Some(Status {
                code: if error {
                    status::StatusCode::Error
                } else {
                    status::StatusCode::Unset
                } as i32,
                message: String::new(),
            }),
            ..Default::default()
        }
    }

    fn request(&self, batch: Batch) -> (ExportTraceServiceRequest, u64, u64, EdgeMap, TraceSpans) {
        let m = &self.mesh;
        let resource_spans = batch
            .by_service
            .into_iter()
            .map(|(svc, spans)| {
                let s = svc as usize;
                ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![
                            kv_s("service.name", &m.names[s]),
                            kv_s("service.namespace", &m.teams[s]),
                            kv_s("team", &m.teams[s]),
                            kv_s("service.instance.id", &format!("{}-{}", m.names[s], s % 3)),
                            kv_s("cloud.region", m.regions[s]),
                            kv_s("host.name", &format!("node-{}", s % 17)),
                            kv_i("mesh.tier", m.tier_of[s] as i64),
                        ],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "orrery-mesh".into(),
                            ..Default::default()
                        }),
                        spans,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }
            })
            .collect();
        (
            ExportTraceServiceRequest { resource_spans },
            batch.spans,
            batch.traces,
            batch.edges,
            batch.trace_spans,
        )
    }
}

fn kv_s(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn kv_i(k: &str, v: i64) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
        ..Default::default()
    }
}

/// Generates and sends until the duration, trace count or `shutdown` ends it.
pub async fn generate(args: &MeshArgs, shutdown: CancellationToken) -> Result<MeshReport> {
    if args.endpoints.is_empty() {
        bail!("give at least one --endpoint");
    }
    if args.rate == 0 {
        bail!("--rate must be above 0");
    }
    let mut clients = Vec::new();
    for e in &args.endpoints {
        let channel = tonic::transport::Endpoint::from_shared(e.clone())
            .with_context(|| format!("bad endpoint {e:?}"))?
            .timeout(Duration::from_secs(30))
            .connect_lazy();
        clients.push(TraceServiceClient::new(channel).max_encoding_message_size(64 << 20));
    }
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mesh = Mesh::new(args.services, args.regions, args.namespaces, &mut rng);
    let names = mesh.names.clone();
    let mut generator = Generator { mesh, rng };

    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, u64, EdgeMap, TraceSpans, bool)>(1024);
    let mut ledger = match &args.ledger {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let started = Instant::now();
    let deadline =
        (args.traces.is_none() && !args.duration.is_zero()).then(|| started + args.duration);
    let mut generated_spans = 0u64;
    let mut generated_traces = 0u64;
    let mut next_client = 0usize;
    let collect = tokio::spawn(async move {
        let mut report = MeshReport::default();
        let mut edges: EdgeMap = HashMap::new();
        let mut ledger_error: Option<std::io::Error> = None;
        while let Some((spans, traces, batch_edges, trace_spans, ok)) = rx.recv().await {
            if let Some(w) = ledger.as_mut() {
                use std::io::Write as _;
                let status = if ok { "ok" } else { "failed" };
                for (id, n) in &trace_spans {
                    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
                    if let Err(e) = writeln!(w, "{status} {hex} {n}") {
                        ledger_error.get_or_insert(e);
                    }
                }
            }
            if ok {
                report.exports += 1;
                report.spans += spans;
                report.traces += traces;
                for (k, (c, e)) in batch_edges {
                    let entry = edges.entry(k).or_default();
                    entry.0 += c;
                    entry.1 += e;
                }
            } else {
                report.failed_exports += 1;
                report.failed_spans += spans;
            }
        }
        if let Some(w) = ledger.as_mut() {
            use std::io::Write as _;
            if let Err(e) = w.flush() {
                ledger_error.get_or_insert(e);
            }
        }
        (report, edges, ledger_error)
    });
    loop {
        if shutdown.is_cancelled()
            || deadline.is_some_and(|d| Instant::now() >= d)
            || args.traces.is_some_and(|n| generated_traces >= n)
        {
            break;
        }
        let mut batch = Batch::default();
        while (batch.spans as usize) < args.batch
            && args
                .traces
                .is_none_or(|n| generated_traces + batch.traces < n)
        {
            generator.trace(&mut batch);
        }
        generated_spans += batch.spans;
        generated_traces += batch.traces;
        let (req, spans, traces, edges, trace_spans) = generator.request(batch);
        let mut client = clients[next_client % clients.len()].clone();
        next_client += 1;
        let permit = sem.clone().acquire_owned().await?;
        let tx = tx.clone();
        tokio::spawn(async move {
            let ok = match client.export(req).await {
                Ok(resp) => resp
                    .into_inner()
                    .partial_success
                    .is_none_or(|p| p.rejected_spans == 0),
                Err(status) => {
                    tracing::warn!(%status, "export failed");
                    false
                }
            };
            let _ = tx.send((spans, traces, edges, trace_spans, ok)).await;
            drop(permit);
        });
        // Pace to the target rate.
        let due = started + Duration::from_secs_f64(generated_spans as f64 / args.rate as f64);
        tokio::select! {
            _ = tokio::time::sleep_until(due.into()) => {}
            _ = shutdown.cancelled() => {}
        }
    }
    drop(tx);
    let (mut report, edges, ledger_error) = collect.await?;
    if let Some(e) = ledger_error {
        return Err(e).context("writing the --ledger file");
    }
    report.elapsed_secs = started.elapsed().as_secs_f64();
    report.spans_per_sec = report.spans as f64 / report.elapsed_secs.max(1e-9);
    let mut edges: Vec<EdgeCount> = edges
        .into_iter()
        .map(|((c, s), (calls, errors))| EdgeCount {
            client: names[c as usize].clone(),
            server: names[s as usize].clone(),
            calls,
            errors,
        })
        .collect();
    edges.sort_by(|a, b| (&a.client, &a.server).cmp(&(&b.client, &b.server)));
    report.edges = edges;
    Ok(report)
}

/// `orrery mesh`: generates, then prints the report as JSON (and writes it to --report).
pub async fn run(args: MeshArgs, shutdown: CancellationToken) -> Result<()> {
    eprintln!(
        "orrery mesh: {} services, {} spans/s to {}",
        args.services,
        args.rate,
        args.endpoints.join(", ")
    );
    let report = generate(&args, shutdown).await?;
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &args.report {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{json}");
    eprintln!(
        "sent {} spans in {} traces ({:.0} spans/s); {} exports failed ({} spans)",
        report.spans,
        report.traces,
        report.spans_per_sec,
        report.failed_exports,
        report.failed_spans
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_names_are_distinct_and_one_namespace_is_mesh() {
        assert_eq!(team_name(17, 1), "mesh");
        assert_eq!(team_name(17, 0), "mesh");
        let names: std::collections::HashSet<String> = (0..100).map(|i| team_name(i, 20)).collect();
        assert_eq!(names.len(), 20);
        assert_eq!(team_name(0, 3), team_name(3, 3));
    }
}
