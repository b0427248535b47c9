//! How Orrery reaches ClickHouse. One set of flags (each with an `ORRERY_*` environment twin)
//! shared by every subcommand that talks to storage.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// Connection and schema settings for ClickHouse.
#[derive(Args, Debug, Clone)]
pub struct ClickHouseArgs {
    /// ClickHouse HTTP URL of a real server or cluster (e.g. http://clickhouse:8123).
    /// Unset in `all-in-one`: Orrery starts its embedded ClickHouse (chDB) instead.
    /// Credentials in the URL (`http://user:password@host:8123`) are sent as the user and
    /// password unless --clickhouse-user / --clickhouse-password are given.
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

    /// File holding the ClickHouse password (first line), e.g. `<data-dir>/clickhouse.secret`
    /// written by `orrery embedded-clickhouse`, or a mounted Kubernetes secret. Read at start;
    /// --clickhouse-password wins if both are set.
    #[arg(long, env = "ORRERY_CLICKHOUSE_PASSWORD_FILE", global = true)]
    pub clickhouse_password_file: Option<PathBuf>,

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
            clickhouse_password_file: None,
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

    /// Reads --clickhouse-password-file into the password (unless one is given directly).
    /// Every role calls it once at start.
    pub fn load_password_file(&mut self) -> anyhow::Result<()> {
        if let Some(path) = &self.clickhouse_password_file
            && self.clickhouse_password.is_none()
        {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "reading the ClickHouse password from {} (--clickhouse-password-file)",
                    path.display()
                )
            })?;
            self.clickhouse_password = Some(text.lines().next().unwrap_or("").trim().to_string());
        }
        Ok(())
    }

    /// A client without a default database (for `CREATE DATABASE`).
    pub fn server_client(&self, url: &str) -> clickhouse::Client {
        let (url, url_user, url_password) = split_credentials(url);
        let mut client = clickhouse::Client::default()
            .with_url(url)
            .with_compression(if self.clickhouse_compression {
                clickhouse::Compression::Lz4
            } else {
                clickhouse::Compression::None
            });
        if let Some(user) = self.clickhouse_user.clone().or(url_user) {
            client = client.with_user(user);
        }
        if let Some(password) = self.clickhouse_password.clone().or(url_password) {
            client = client.with_password(password);
        }
        client
    }
}

/// `http://user:pass@host:port/…` → (`http://host:port/…`, user, pass), percent-decoded; a URL
/// without credentials comes back as it is. (The `clickhouse` crate ignores credentials in its
/// URL: they must become its user and password.)
pub fn split_credentials(url: &str) -> (String, Option<String>, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None, None);
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return (url.to_string(), None, None);
    };
    let (userinfo, host) = (&rest[..at], &rest[at + 1..]);
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (percent_decode(u), Some(percent_decode(p))),
        None => (percent_decode(userinfo), None),
    };
    let user = (!user.is_empty()).then_some(user);
    (format!("{scheme}://{host}"), user, password)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 3 <= bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::split_credentials;

    #[test]
    fn credentials_in_the_url_become_user_and_password() {
        assert_eq!(
            split_credentials("http://default:s3cr%40t@127.0.0.1:8123/x?y=1"),
            (
                "http://127.0.0.1:8123/x?y=1".to_string(),
                Some("default".into()),
                Some("s3cr@t".into())
            )
        );
        assert_eq!(
            split_credentials("http://u@h:1"),
            ("http://h:1".to_string(), Some("u".into()), None)
        );
        // An @ after the authority is not userinfo; no credentials leaves the URL alone.
        assert_eq!(
            split_credentials("http://h:1/a@b"),
            ("http://h:1/a@b".to_string(), None, None)
        );
        assert_eq!(
            split_credentials("http://h:1"),
            ("http://h:1".to_string(), None, None)
        );
        // A stray % stays as it is.
        assert_eq!(
            split_credentials("http://:a%zz%4@h").2,
            Some("a%zz%4".into())
        );
    }
}
