//! What one request may cost the query service and ClickHouse (issue 13): per-query
//! `max_execution_time` / `max_memory_usage` on every ClickHouse query, ClickHouse queries
//! killed when the HTTP client goes away, a cap on spans per trace, live streams and
//! concurrent requests, and the answers a client gets when it hits one of them.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use clap::Args;
use clickhouse::Client;

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

/// `2GiB`, `512MiB`, `100MB`, `1000000` (bytes).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 2GiB, 512MiB or 1000000"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "ki" | "kib" => 1024.0,
        "mi" | "mib" => 1024.0 * 1024.0,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "ti" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?} (use B, KiB, MiB, GiB)"
            ));
        }
    };
    let v = n * mult;
    if !v.is_finite() || v < 1.0 || v > u64::MAX as f64 {
        return Err(format!("{s:?} is not a positive size"));
    }
    Ok(v as u64)
}

/// Limits of the query service. Every one has a flag and an `ORRERY_*` twin (docs/security.md).
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Longest a single ClickHouse query of the API may run (ClickHouse's
    /// `max_execution_time`); a request hitting it gets 503 naming the limit.
    #[arg(long, env = "ORRERY_QUERY_MAX_EXECUTION_TIME", default_value = "30s", value_parser = parse_duration)]
    pub query_max_execution_time: Duration,

    /// Most memory a single ClickHouse query of the API may use (ClickHouse's
    /// `max_memory_usage`), e.g. `2GiB`; a request hitting it gets 503 naming the limit.
    #[arg(long, env = "ORRERY_QUERY_MAX_MEMORY", default_value = "2GiB", value_parser = parse_bytes)]
    pub query_max_memory: u64,

    /// Most spans a trace by id returns; a bigger trace comes back with its earliest spans
    /// and `"truncated": true`.
    #[arg(long, env = "ORRERY_QUERY_MAX_TRACE_SPANS", default_value_t = 100_000)]
    pub query_max_trace_spans: u64,

    /// Most live graph streams (SSE) open at once in this replica; beyond it 429 with
    /// `Retry-After`.
    #[arg(long, env = "ORRERY_QUERY_MAX_STREAMS", default_value_t = 64)]
    pub query_max_streams: usize,

    /// Most distinct live maps (stream shapes: level, region, focus, window, interval)
    /// computed at once in this replica; streams of the same shape share one computation per
    /// tick. A stream of one more shape gets 429 with `Retry-After`.
    #[arg(long, env = "ORRERY_QUERY_MAX_STREAM_SHAPES", default_value_t = 16)]
    pub query_max_stream_shapes: usize,

    /// A live stream whose client has taken no event for this long (it stopped reading) is
    /// dropped: it no longer holds a stream slot or keeps its map being computed.
    #[arg(long, env = "ORRERY_QUERY_STREAM_STALL", default_value = "60s", value_parser = parse_duration)]
    pub query_stream_stall: Duration,

    /// Most requests handled at once; beyond it 503 with `Retry-After` (load shedding
    /// instead of an unbounded queue).
    #[arg(
        long,
        env = "ORRERY_QUERY_MAX_CONCURRENT_REQUESTS",
        default_value_t = 128
    )]
    pub query_max_concurrent_requests: usize,

    /// Most open client connections; further connections are closed at once.
    #[arg(long, env = "ORRERY_QUERY_MAX_CONNECTIONS", default_value_t = 1024)]
    pub query_max_connections: usize,

    /// Longest a request may take to answer (live streams: until their headers). Beyond it
    /// 503; its ClickHouse queries are killed.
    #[arg(long, env = "ORRERY_QUERY_REQUEST_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub query_request_timeout: Duration,

    /// Longest a client may take to send a request's headers (and to start one on an idle
    /// connection); the connection is closed after it (slow clients cannot hold connections).
    #[arg(long, env = "ORRERY_QUERY_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub query_header_read_timeout: Duration,

    /// On shutdown, how long open requests are waited for before the listener is dropped.
    #[arg(long, env = "ORRERY_QUERY_SHUTDOWN_GRACE", default_value = "3s", value_parser = parse_duration)]
    pub query_shutdown_grace: Duration,
}

impl Default for LimitArgs {
    fn default() -> Self {
        Self {
            query_max_execution_time: Duration::from_secs(30),
            query_max_memory: 2 << 30,
            query_max_trace_spans: 100_000,
            query_max_streams: 64,
            query_max_stream_shapes: 16,
            query_stream_stall: Duration::from_secs(60),
            query_max_concurrent_requests: 128,
            query_max_connections: 1024,
            query_request_timeout: Duration::from_secs(60),
            query_header_read_timeout: Duration::from_secs(10),
            query_shutdown_grace: Duration::from_secs(3),
        }
    }
}

impl LimitArgs {
    pub fn check(&self) -> anyhow::Result<()> {
        let positive = [
            ("--query-max-execution-time", self.query_max_execution_time),
            ("--query-request-timeout", self.query_request_timeout),
            ("--query-stream-stall", self.query_stream_stall),
            (
                "--query-header-read-timeout",
                self.query_header_read_timeout,
            ),
        ];
        for (name, d) in positive {
            if d.is_zero() {
                anyhow::bail!("{name} must be more than 0");
            }
        }
        for (name, n) in [
            (
                "--query-max-trace-spans",
                self.query_max_trace_spans as usize,
            ),
            (
                "--query-max-concurrent-requests",
                self.query_max_concurrent_requests,
            ),
            ("--query-max-connections", self.query_max_connections),
            ("--query-max-stream-shapes", self.query_max_stream_shapes),
        ] {
            if n == 0 {
                anyhow::bail!("{name} must be at least 1");
            }
        }
        Ok(())
    }

    /// `client` with the per-query limits as ClickHouse settings: every query sent through it
    /// carries them, so the engine itself stops a query that runs too long or uses too much.
    pub fn bound(&self, client: Client) -> Client {
        client
            .with_setting(
                "max_execution_time",
                format!("{:.3}", self.query_max_execution_time.as_secs_f64()),
            )
            .with_setting("timeout_overflow_mode", "throw")
            .with_setting("max_memory_usage", self.query_max_memory.to_string())
            // A real ClickHouse server cancels a read query whose HTTP connection closed
            // (ours closes when the request's future is dropped).
            .with_setting("cancel_http_readonly_queries_on_client_close", "1")
    }

    /// The rollup job's client: the same memory limit, and a time limit of at least 5 minutes
    /// (a backfill run rolls up many minutes in one query; it is not waited for by anyone).
    pub fn bound_background(&self, client: Client) -> Client {
        let time = self.query_max_execution_time.max(Duration::from_secs(300));
        client
            .with_setting("max_execution_time", format!("{:.3}", time.as_secs_f64()))
            .with_setting("timeout_overflow_mode", "throw")
            .with_setting("max_memory_usage", self.query_max_memory.to_string())
    }
}

/// A limit the engine enforced on a query, as the client is told about it.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitHit {
    pub status: StatusCode,
    /// The limit's name: `max_execution_time`, `max_memory_usage`, `too_many_queries`.
    pub limit: &'static str,
    pub message: String,
    /// Seconds a client should wait before retrying.
    pub retry_after: u64,
}

/// The ClickHouse exception code in an error chain, if the engine answered with one.
pub fn clickhouse_code(err: &anyhow::Error) -> Option<u32> {
    err.chain().find_map(|e| {
        let ch = e.downcast_ref::<clickhouse::error::Error>()?;
        let text = ch.to_string();
        let at = text.find("Code: ")? + "Code: ".len();
        let digits: String = text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    })
}

/// What a client is told when a query failed on one of the engine's limits; `None` for other
/// failures. Both limits answer 503 (`Retry-After`): the same request may pass when the
/// engine is less busy, and a narrower window or more filters make it cheaper. The engine's
/// own words (elapsed, maximum) are kept: they say how far over the limit the query was.
pub fn limit_hit(err: &anyhow::Error) -> Option<LimitHit> {
    let code = clickhouse_code(err)?;
    let detail = engine_detail(err);
    let (limit, message) = match code {
        // TIMEOUT_EXCEEDED, TOO_SLOW (the engine estimates it would exceed the limit)
        159 | 160 => (
            "max_execution_time",
            format!(
                "the query ran into the query service's time limit per query \
                 (--query-max-execution-time; {detail}): narrow the time window or add filters \
                 (service, operation), or retry later"
            ),
        ),
        // MEMORY_LIMIT_EXCEEDED
        241 => (
            "max_memory_usage",
            format!(
                "the query ran into the query service's memory limit per query \
                 (--query-max-memory; {detail}): narrow the time window or add filters \
                 (service, operation), or retry later"
            ),
        ),
        // TOO_MANY_SIMULTANEOUS_QUERIES, QUERY_WAS_CANCELLED (e.g. by an operator's KILL)
        202 | 394 => (
            "too_many_queries",
            format!("the storage engine is busy or cancelled the query ({detail}): retry later"),
        ),
        _ => return None,
    };
    Some(LimitHit {
        status: StatusCode::SERVICE_UNAVAILABLE,
        limit,
        message,
        retry_after: 5,
    })
}

/// The engine's message without its code and stack: `Timeout exceeded: elapsed 1007 ms, maximum: 1000 ms`.
fn engine_detail(err: &anyhow::Error) -> String {
    let text = err
        .chain()
        .find_map(|e| e.downcast_ref::<clickhouse::error::Error>())
        .map(|e| e.to_string())
        .unwrap_or_default();
    let from = text
        .find("DB::Exception: ")
        .map_or(0, |i| i + "DB::Exception: ".len());
    let rest = &text[from..];
    let to = [". (", ": While", "\n"]
        .iter()
        .filter_map(|end| rest.find(end))
        .min()
        .unwrap_or(rest.len())
        .min(300);
    let mut end = to;
    while !rest.is_char_boundary(end) {
        end -= 1;
    }
    rest[..end].trim().to_string()
}

tokio::task_local! {
    /// The tag (`log_comment`) of the ClickHouse queries of the request being handled.
    static QUERY_TAG: Arc<str>;
}

/// A fresh tag for one request's ClickHouse queries.
pub fn new_tag() -> Arc<str> {
    Arc::from(format!("orrery-query:{:032x}", rand::random::<u128>()))
}

/// The tag of the request this task is handling, if any.
pub fn current_tag() -> Option<Arc<str>> {
    QUERY_TAG.try_with(|t| t.clone()).ok()
}

/// `client` tagged with the current request's tag (ClickHouse's `log_comment`, which also
/// shows in `system.query_log`), so the request's queries can be found and killed.
pub fn tagged(client: &Client) -> Client {
    match current_tag() {
        Some(tag) => client.clone().with_setting("log_comment", tag.to_string()),
        None => client.clone(),
    }
}

/// Runs `fut` with its ClickHouse queries tagged; if it is dropped before it completes (the
/// client went away, or the request timed out), the queries still running are killed. A real
/// ClickHouse also cancels them when their HTTP connection closes; the embedded engine only
/// notices when it next writes, so the explicit kill is what stops a long aggregation there.
pub async fn killed_if_dropped<F: std::future::Future>(
    killer: Client,
    tag: Arc<str>,
    fut: F,
) -> F::Output {
    let mut guard = KillOnDrop {
        client: Some(killer),
        tag: tag.clone(),
    };
    let out = QUERY_TAG.scope(tag, fut).await;
    guard.client = None;
    out
}

struct KillOnDrop {
    client: Option<Client>,
    tag: Arc<str>,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let tag = self.tag.to_string();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            // ASYNC: do not wait for the queries to wind down. The tag is ours (random), and
            // it is bound as a parameter anyway.
            let r = client
                .query("KILL QUERY WHERE Settings['log_comment'] = {tag:String} ASYNC")
                .param("tag", &tag)
                .execute()
                .await;
            match r {
                Ok(()) => {
                    crate::metrics::inc(&crate::metrics::QUERIES_KILLED);
                    tracing::debug!(tag, "request dropped: its queries were killed")
                }
                Err(e) => tracing::warn!(tag, error = %e, "could not kill an abandoned query"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("512 MiB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1000").unwrap(), 1000);
        assert_eq!(parse_bytes("1.5k").unwrap(), 1500);
        for bad in ["", "x", "-1", "0", "1e400", "3 parsecs"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn engine_limits_are_named_and_others_are_not() {
        let err = |text: &str| {
            anyhow::Error::new(clickhouse::error::Error::BadResponse(text.into()))
                .context("building the graph")
        };
        let t = limit_hit(&err(
            "Code: 159. DB::Exception: Timeout exceeded: elapsed 1007.048 ms, maximum: 1000.000 ms. (TIMEOUT_EXCEEDED)",
        ))
        .unwrap();
        assert_eq!(t.limit, "max_execution_time");
        assert_eq!(t.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            t.message.contains(
                "(--query-max-execution-time; Timeout exceeded: elapsed 1007.048 ms, maximum: 1000.000 ms)"
            ),
            "{}",
            t.message
        );
        let m = limit_hit(&err("Code: 241. DB::Exception: Query memory limit exceeded: would use 128.60 MiB, maximum: 95.37 MiB: While executing AggregatingTransform. (MEMORY_LIMIT_EXCEEDED)"))
            .unwrap();
        assert_eq!(m.limit, "max_memory_usage");
        assert!(m.message.contains("maximum: 95.37 MiB)"), "{}", m.message);
        assert!(m.message.contains("narrow the time window"));
        assert!(limit_hit(&err("Code: 60. DB::Exception: Unknown table")).is_none());
        assert!(limit_hit(&anyhow::anyhow!("Code: 159 but not from ClickHouse")).is_none());
    }

    #[test]
    fn flags_must_be_positive() {
        assert!(LimitArgs::default().check().is_ok());
        let zero = LimitArgs {
            query_max_trace_spans: 0,
            ..LimitArgs::default()
        };
        assert!(
            zero.check()
                .unwrap_err()
                .to_string()
                .contains("trace-spans")
        );
    }
}
