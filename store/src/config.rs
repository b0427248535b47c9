//! How Orrery reaches ClickHouse. One set of flags (each with an `ORRERY_*` environment twin)
//! shared by every subcommand that talks to storage.

use clap::Args;

/// Connection and schema settings for ClickHouse.
#[derive(Args, Debug, Clone)]
pub struct ClickHouseArgs {
    /// ClickHouse HTTP URL of a real server or cluster (e.g. http://clickhouse:8123).
    /// Unset in `all-in-one`: Orrery starts its embedded ClickHouse (chDB) instead.
    #[arg(long, env = "ORRERY_CLICKHOUSE_URL", global = true)]
    pub clickhouse_url: Option<String>,

    /// Database holding Orrery's tables; created if missing.
    #[arg(
        long,
        env = "ORRERY_CLICKHOUSE_DATABASE",
        default_value = "orrery",
        global = true
    )]
    pub clickhouse_database: String,

    /// ClickHouse user.
    #[arg(long, env = "ORRERY_CLICKHOUSE_USER", global = true)]
    pub clickhouse_user: Option<String>,

    /// ClickHouse password.
    #[arg(
        long,
        env = "ORRERY_CLICKHOUSE_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub clickhouse_password: Option<String>,

    /// Compress request and response bodies with LZ4 (worth it across a network; the embedded
    /// engine does not support it and it is always off there).
    #[arg(long, env = "ORRERY_CLICKHOUSE_COMPRESSION", global = true)]
    pub clickhouse_compression: bool,

    /// Days spans are kept; older partitions are dropped by ClickHouse's TTL. 0 keeps forever.
    #[arg(
        long,
        env = "ORRERY_RETENTION_DAYS",
        default_value_t = 7,
        global = true
    )]
    pub retention_days: u32,

    /// Name of a ClickHouse cluster: `migrate` then creates ReplicatedMergeTree tables with
    /// `ON CLUSTER` and Distributed tables sharded by trace id in front of them.
    #[arg(long, env = "ORRERY_CLICKHOUSE_CLUSTER", global = true)]
    pub clickhouse_cluster: Option<String>,
}

impl ClickHouseArgs {
    /// Settings for a known URL, e.g. the embedded engine's, in tests and tools.
    pub fn for_url(url: impl Into<String>, database: impl Into<String>) -> Self {
        Self {
            clickhouse_url: Some(url.into()),
            clickhouse_database: database.into(),
            clickhouse_user: None,
            clickhouse_password: None,
            clickhouse_compression: false,
            retention_days: 7,
            clickhouse_cluster: None,
        }
    }

    /// A client bound to Orrery's database. Panics only if the URL is unset, which callers
    /// resolve first (the embedded engine fills it in).
    pub fn client(&self) -> clickhouse::Client {
        let url = self
            .clickhouse_url
            .as_deref()
            .expect("ClickHouse URL resolved before building a client");
        self.server_client(url)
            .with_database(&self.clickhouse_database)
    }

    /// A client without a default database (for `CREATE DATABASE`).
    pub fn server_client(&self, url: &str) -> clickhouse::Client {
        let mut client = clickhouse::Client::default()
            .with_url(url)
            .with_compression(if self.clickhouse_compression {
                clickhouse::Compression::Lz4
            } else {
                clickhouse::Compression::None
            });
        if let Some(user) = &self.clickhouse_user {
            client = client.with_user(user);
        }
        if let Some(password) = &self.clickhouse_password {
            client = client.with_password(password);
        }
        client
    }
}
