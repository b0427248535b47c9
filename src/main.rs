//! `orrery`: one binary for every role. Without a subcommand it runs all-in-one: the embedded
//! ClickHouse (unless `--clickhouse-url` is given), the OTLP collector, and the query service
//! with the web UI, in one process.

mod cli;
mod logging;
mod roles;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    logging::init(&cli.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(roles::run(cli))
}
