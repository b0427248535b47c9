//! Logs go to stdout, as text for people or JSON for log shippers.

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Log filter in `RUST_LOG` syntax, e.g. `info,orrery_collector=debug`.
    #[arg(long, env = "ORRERY_LOG", default_value = "info", global = true)]
    pub log: String,
    /// Log line format on stdout.
    #[arg(long, env = "ORRERY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

pub fn init(args: &LogArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&args.log)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}
