//! What each subcommand runs, and the shutdown wiring they share.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use orrery_store::ClickHouseArgs;
use orrery_store::embedded::{EmbeddedArgs, EmbeddedClickHouse};
use orrery_store::schema::{self, SchemaParams};
use tokio_util::sync::CancellationToken;

use crate::cli::{AllInOneArgs, Cli, Command, DemoCmd};

pub async fn run(cli: Cli) -> Result<()> {
    let shutdown = shutdown_on_signal();
    let mut ch = cli.clickhouse;
    ch.load_password_file()?;
    match cli.command {
        None => all_in_one(cli.all_in_one, ch, shutdown).await,
        Some(Command::AllInOne(args)) => all_in_one(args, ch, shutdown).await,
        Some(Command::Collector(cmd)) => {
            require_url(&ch, "collector")?;
            if !cmd.no_migrate {
                migrate(&ch).await?;
            }
            orrery_collector::run(cmd.collector, ch, shutdown).await
        }
        Some(Command::Query(cmd)) => {
            require_url(&ch, "query")?;
            if !cmd.no_migrate {
                migrate(&ch).await?;
            }
            orrery_query::run(cmd.query, ch, shutdown).await
        }
        Some(Command::Migrate(cmd)) => {
            if cmd.print {
                for stmt in schema::full_ddl(&SchemaParams::from_args(&ch)?) {
                    println!("{stmt};\n");
                }
                return Ok(());
            }
            let (ch, embedded) = resolve(ch, &cmd.embedded).await?;
            let result = migrate(&ch).await;
            if let Some(e) = embedded {
                e.stop().await;
            }
            result
        }
        Some(Command::Traces(cmd)) => crate::cli::oncall::traces(cmd).await,
        Some(Command::Trace(cmd)) => crate::cli::oncall::trace(cmd).await,
        Some(Command::Graph(cmd)) => crate::cli::oncall::graph(cmd).await,
        // The exit code is the verdict (0 pass, 1 violated, 2 no data / error).
        Some(Command::Check(cmd)) => std::process::exit(crate::cli::check::run(cmd).await),
        Some(Command::EmbeddedClickhouse(args)) => {
            let embedded = EmbeddedClickHouse::start(&args).await?;
            println!(
                "embedded ClickHouse listening on {}; point other roles at it with \
                 --clickhouse-url {} --clickhouse-password-file {} (a new secret at every start)",
                embedded.endpoint(),
                embedded.endpoint(),
                embedded.secret_file().display()
            );
            shutdown.cancelled().await;
            embedded.stop().await;
            Ok(())
        }
        Some(Command::Demo(cmd)) => demo(cmd, ch, shutdown).await,
        Some(Command::Mesh(args)) => orrery_demo::mesh::run(args, shutdown).await,
        Some(Command::Spool(cmd)) => orrery_collector::spool_cli::run(cmd, ch).await,
    }
}

/// `orrery demo`: the all-in-one plus the fleet exporting to it (or a chaos command, or the
/// fleet alone with --demo-fleet-only).
async fn demo(cmd: DemoCmd, ch: ClickHouseArgs, shutdown: CancellationToken) -> Result<()> {
    if let Some(action) = cmd.action {
        return orrery_demo::control(action).await;
    }
    if cmd.demo.demo_fleet_only {
        return orrery_demo::run(cmd.demo, None, shutdown).await;
    }
    let loopback = |a: std::net::SocketAddr| {
        let ip = if a.ip().is_unspecified() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            a.ip()
        };
        std::net::SocketAddr::new(ip, a.port())
    };
    let otlp = format!(
        "http://{}",
        loopback(cmd.all_in_one.collector.otlp_grpc_addr)
    );
    let ui = format!("http://{}/", loopback(cmd.all_in_one.query.query_addr));
    let backend = tokio::spawn(all_in_one(cmd.all_in_one, ch, shutdown.clone()));
    let fleet = tokio::spawn(orrery_demo::run(cmd.demo, Some(otlp), shutdown.clone()));
    println!("Orrery demo: open {ui}");
    let (b, f) = tokio::join!(
        async {
            let r = backend.await;
            shutdown.cancel();
            r
        },
        async {
            let r = fleet.await;
            shutdown.cancel();
            r
        }
    );
    b.context("all-in-one task")??;
    f.context("demo fleet task")??;
    Ok(())
}

async fn all_in_one(
    args: AllInOneArgs,
    ch: ClickHouseArgs,
    shutdown: CancellationToken,
) -> Result<()> {
    let (ch, embedded) = resolve(ch, &args.embedded).await?;
    let result = async {
        if !args.no_migrate {
            migrate(&ch).await?;
        }
        tracing::info!(
            otlp_grpc = %args.collector.otlp_grpc_addr,
            otlp_http = %args.collector.otlp_http_addr,
            ui = %args.query.query_addr,
            "orrery all-in-one starting"
        );
        let mut collector_args = args.collector;
        collector_args.engine_health = embedded.as_ref().map(|e| e.health());
        // The spool lives with the rest of this instance's data.
        collector_args
            .spool_dir
            .get_or_insert_with(|| args.embedded.data_dir.join("spool"));
        // The collector binds first, so the UI's empty map can show where to send spans: this
        // instance's own collector as bound (`--otlp-grpc-addr 127.0.0.1:0` shows its real
        // port, not 0; an unspecified host is replaced by the page's host in the UI).
        let collector =
            orrery_collector::start(collector_args, ch.clone(), shutdown.clone()).await?;
        let mut query_args = args.query;
        let graph = &mut query_args.graph;
        graph
            .ui_otlp_grpc_endpoint
            .get_or_insert_with(|| format!("http://{}", collector.grpc_addr));
        graph
            .ui_otlp_http_endpoint
            .get_or_insert_with(|| format!("http://{}", collector.http_addr));
        let collector = tokio::spawn(collector.wait());
        let query = tokio::spawn(orrery_query::run(query_args, ch.clone(), shutdown.clone()));
        // If either half stops, stop the other too, then report the first error.
        let (c, q) = tokio::join!(
            async {
                let r = collector.await;
                shutdown.cancel();
                r
            },
            async {
                let r = query.await;
                shutdown.cancel();
                r
            }
        );
        c.context("collector task")??;
        q.context("query task")??;
        Ok(())
    }
    .await;
    // The collector has flushed its spool by now; only then stop the engine.
    if let Some(e) = embedded {
        e.stop().await;
    }
    result
}

/// Uses the configured URL, or starts the embedded engine and points the settings at it.
async fn resolve(
    mut ch: ClickHouseArgs,
    embedded: &EmbeddedArgs,
) -> Result<(ClickHouseArgs, Option<EmbeddedClickHouse>)> {
    if ch.clickhouse_url.is_some() {
        return Ok((ch, None));
    }
    let engine = EmbeddedClickHouse::start(embedded).await?;
    // The engine's secret, in-process (any configured user/password is for a real server).
    ch.clickhouse_url = Some(engine.endpoint().to_string());
    ch.clickhouse_user = None;
    ch.clickhouse_password = Some(engine.secret().to_string());
    // The embedded engine has no native block compression.
    ch.clickhouse_compression = false;
    Ok((ch, Some(engine)))
}

fn require_url(ch: &ClickHouseArgs, role: &str) -> Result<()> {
    if ch.clickhouse_url.is_none() {
        bail!(
            "`orrery {role}` needs --clickhouse-url (or ORRERY_CLICKHOUSE_URL); only all-in-one \
             starts an embedded ClickHouse (or run `orrery embedded-clickhouse` and point at it)"
        );
    }
    Ok(())
}

async fn migrate(ch: &ClickHouseArgs) -> Result<()> {
    let params = SchemaParams::from_args(ch)?;
    let url = ch.clickhouse_url.as_deref().context("ClickHouse URL")?;
    let client = ch.server_client(url);
    let report = retry_startup(|| schema::migrate(&client, &params)).await?;
    tracing::info!(
        database = %params.database,
        applied = ?report.applied,
        version = schema::latest_version(),
        "schema up to date"
    );
    Ok(())
}

/// ClickHouse may still be starting when a collector starts (compose, Kubernetes): retry for a
/// while with backoff rather than crash-looping.
async fn retry_startup<T, F, Fut>(mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut delay = Duration::from_millis(250);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(err) if Instant::now() < deadline && is_connect_error(&err) => {
                tracing::warn!(error = %err, ?delay, "ClickHouse not reachable yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(err) => return Err(err),
        }
    }
}

fn is_connect_error(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        matches!(
            e.downcast_ref::<clickhouse::error::Error>(),
            Some(clickhouse::error::Error::Network(_))
        )
    })
}

/// Cancels the token on SIGTERM or Ctrl-C; a second signal exits at once.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutdown requested; finishing in-flight work (signal again to exit now)");
        t.cancel();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        std::process::exit(130);
    });
    token
}
