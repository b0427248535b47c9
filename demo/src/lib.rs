//! Orrery's demo fleet and big-mesh generator.
//!
//! - [`fleet`]: 18 services of a web shop in three regions that really call each other over HTTP
//!   and gRPC using `orrery-sdk`, each exporting with its own resource; databases, caches and
//!   external APIs as uninstrumented peers; a queue between checkout and orders.
//! - [`chaos`]: latency monkey, chaos monkey and chaos kong, switchable at runtime.
//! - [`loadgen`]: user traffic through the edge gateway.
//! - [`mesh`]: synthetic OTLP from hundreds of services for load and scale tests.

pub mod chaos;
pub mod fleet;
pub mod grpc;
pub mod loadgen;
pub mod mesh;
pub mod topology;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

pub use fleet::{Fleet, FleetConfig};

/// Demo fleet settings (flags start with `--demo-`; they sit next to the all-in-one's).
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// User requests per second the load generator sends through the edge gateway.
    #[arg(long, env = "ORRERY_DEMO_RATE", default_value_t = 20.0)]
    pub demo_rate: f64,
    /// OTLP/gRPC endpoint the fleet exports to (default: the all-in-one's collector).
    #[arg(long, env = "ORRERY_DEMO_OTLP_ENDPOINT")]
    pub demo_otlp_endpoint: Option<String>,
    /// Listen address of the chaos control API.
    #[arg(
        long,
        env = "ORRERY_DEMO_CONTROL_ADDR",
        default_value = "127.0.0.1:7070"
    )]
    pub demo_control_addr: SocketAddr,
    /// Run only the fleet and load generator (no all-in-one); export to --demo-otlp-endpoint.
    #[arg(long, env = "ORRERY_DEMO_FLEET_ONLY")]
    pub demo_fleet_only: bool,
}

/// `orrery demo <action>`: control a running demo.
#[derive(Subcommand, Debug, Clone)]
pub enum DemoAction {
    /// Switch chaos on or off in a running `orrery demo`.
    Chaos(ChaosCmd),
}

#[derive(Args, Debug, Clone)]
pub struct ChaosCmd {
    #[command(subcommand)]
    pub what: ChaosWhat,
    /// The running demo's control API.
    #[arg(
        long,
        env = "ORRERY_DEMO_CONTROL_URL",
        default_value = "http://127.0.0.1:7070"
    )]
    pub control_url: String,
}

#[derive(Subcommand, Debug, Clone)]
pub enum ChaosWhat {
    /// Latency monkey: add <MS> milliseconds to every call into a service or peer (0 clears).
    Latency { target: String, ms: u64 },
    /// Chaos monkey: make a service or peer fail a <SHARE> (0–1) of its calls (0 clears).
    Error { target: String, share: f64 },
    /// Chaos kong: take a whole region down (us-east-1, eu-west-1, ap-southeast-1).
    Kong { region: String },
    /// Silence: a service keeps answering but stops reporting spans (lost telemetry).
    Silence { service: String },
    /// Undo all chaos.
    Restore,
    /// Show what is currently broken.
    Status,
}

/// Sends a chaos command to a running demo and prints the resulting state.
pub async fn control(action: DemoAction) -> Result<()> {
    let DemoAction::Chaos(cmd) = action;
    let base = cmd.control_url.trim_end_matches('/');
    let client = reqwest::Client::new();
    let req = match &cmd.what {
        ChaosWhat::Latency { target, ms } => {
            client.post(format!("{base}/chaos/latency/{target}/{ms}"))
        }
        ChaosWhat::Error { target, share } => {
            client.post(format!("{base}/chaos/error/{target}/{share}"))
        }
        ChaosWhat::Kong { region } => client.post(format!("{base}/chaos/kong/{region}")),
        ChaosWhat::Silence { service } => client.post(format!("{base}/chaos/silence/{service}")),
        ChaosWhat::Restore => client.post(format!("{base}/chaos/restore")),
        ChaosWhat::Status => client.get(format!("{base}/chaos")),
    };
    let resp = req
        .send()
        .await
        .with_context(|| format!("no demo control API at {base} (is `orrery demo` running?)"))?;
    let status = resp.status();
    let body = resp.text().await?;
    if !status.is_success() {
        bail!("{body}");
    }
    println!("{body}");
    Ok(())
}

/// Runs the fleet, its control API and the load generator until `shutdown`.
/// `default_endpoint` is the all-in-one's collector when `orrery demo` started one.
pub async fn run(
    args: DemoArgs,
    default_endpoint: Option<String>,
    shutdown: CancellationToken,
) -> Result<()> {
    let endpoint = args
        .demo_otlp_endpoint
        .clone()
        .or(default_endpoint)
        .unwrap_or_else(|| "http://127.0.0.1:4317".into());
    let fleet = Fleet::start(&FleetConfig {
        otlp_endpoint: endpoint.clone(),
    })
    .await?;
    let listener = tokio::net::TcpListener::bind(args.demo_control_addr)
        .await
        .with_context(|| format!("chaos control API on {}", args.demo_control_addr))?;
    let control_addr = listener.local_addr()?;
    let app = chaos::router(
        Arc::clone(fleet.chaos()),
        fleet::fleet_json(&fleet, control_addr),
    );
    let control = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future(),
    );
    let load = tokio::spawn(loadgen::drive(
        fleet.gateway_url().to_string(),
        args.demo_rate,
        shutdown.clone(),
    ));
    println!(
        "demo fleet: {} services exporting to {endpoint}; {} user requests/s into {}",
        fleet.services().len(),
        args.demo_rate,
        fleet.gateway_url()
    );
    println!(
        "chaos control: http://{control_addr}/chaos  (or `orrery demo chaos latency|error|kong|restore ...`)"
    );
    shutdown.cancelled().await;
    let _ = load.await;
    let _ = control.await;
    fleet.stop().await;
    Ok(())
}
