//! One ClickHouse insert over HTTP, done here rather than through the `clickhouse` crate because
//! the crate drops the response headers of an insert, and an insert only counts as delivered
//! once ClickHouse's `X-ClickHouse-Summary` confirms the rows (see [`crate::sink`]). The same
//! client stack as the crate (hyper-util's pooled client over plain HTTP, the same
//! `X-ClickHouse-User` / `X-ClickHouse-Key` headers), plus a connect timeout and a timeout on
//! the whole insert, so that a hung server cannot hold an insert slot.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use orrery_store::ClickHouseArgs;
use tokio::sync::mpsc;

/// How a failed insert is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Worth retrying as is: the network, a timeout, an overloaded or restarting server,
    /// credentials being fixed, anything unknown.
    Retryable,
    /// ClickHouse refuses this data and will refuse it again. `bisect`: the error depends on
    /// the rows (bad values, the partition count), so smaller inserts can still land the good
    /// rows; otherwise (schema mismatch) every row fails alike.
    Permanent { bisect: bool },
}

/// A failed insert.
#[derive(Debug, Clone)]
pub struct InsertError {
    pub kind: Kind,
    /// `X-ClickHouse-Exception-Code`, when ClickHouse sent one.
    pub code: Option<u32>,
    pub message: String,
    /// The request may have been applied although no success came back (a timeout or a
    /// connection lost after the body was sent): a retry may be deduplicated.
    pub may_have_landed: bool,
    /// For the `insert_failures` metric.
    pub label: &'static str,
}

impl std::fmt::Display for InsertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(c) => write!(f, "ClickHouse code {c}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Error codes whose cause is in the rows: the same rows fail again, other rows may not.
/// (Parse and type errors, values out of range, oversized strings and arrays.)
const DATA_ERRORS: &[u32] = &[
    6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 128, 131, 190, 321, 349, 395, 407,
];
/// Error codes of a schema that does not match the rows: every row fails alike until an
/// operator migrates; the segment is set aside whole and replayed after the fix.
const SCHEMA_ERRORS: &[u32] = &[8, 10, 16, 44, 47, 60, 62, 81, 115];

/// Sorts a ClickHouse error into retryable or permanent. Code 252 (TOO_MANY_PARTS) is both:
/// "too many parts" means merges are behind (retry later); "too many partitions for a single
/// INSERT block" is a property of the rows (permanent, split the batch).
pub fn classify(code: Option<u32>, message: &str, status: u16) -> Kind {
    match code {
        Some(252) if message.contains("partitions for single INSERT block") => {
            Kind::Permanent { bisect: true }
        }
        Some(c) if DATA_ERRORS.contains(&c) => Kind::Permanent { bisect: true },
        Some(c) if SCHEMA_ERRORS.contains(&c) => Kind::Permanent { bisect: false },
        Some(_) => Kind::Retryable,
        // A proxy in front of ClickHouse refusing the body's size: smaller inserts pass.
        None if status == 413 => Kind::Permanent { bisect: true },
        None => Kind::Retryable,
    }
}

/// The rows ClickHouse reports as written (`X-ClickHouse-Summary: {"written_rows":"N",…}`).
/// On a real server this counts the rows materialized views wrote too, so it is at least the
/// rows inserted when they all landed.
pub fn written_rows(summary: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(summary).ok()?;
    match &v["written_rows"] {
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// Sends inserts to one ClickHouse server.
#[derive(Clone)]
pub struct InsertClient {
    client: Client<HttpConnector, ChannelBody>,
    base: String,
    database: String,
    user: Option<String>,
    password: Option<String>,
    timeout: Duration,
}

impl InsertClient {
    /// `connect_timeout` bounds the TCP connect; `timeout` the whole insert (sending the body
    /// and waiting for ClickHouse's answer).
    pub fn new(ch: &ClickHouseArgs, connect_timeout: Duration, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_keepalive(Some(Duration::from_secs(60)));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            // ClickHouse closes idle connections after 3 s: never reuse one it may close.
            .pool_idle_timeout(Duration::from_secs(2))
            .build(connector);
        let url = ch
            .clickhouse_url
            .as_deref()
            .unwrap_or("http://127.0.0.1:8123");
        // Credentials in the URL are the user and password, as for the query client.
        let (base, url_user, url_password) = split_credentials(url);
        Self {
            client,
            base,
            database: ch.clickhouse_database.clone(),
            user: ch.clickhouse_user.clone().or(url_user),
            password: ch.clickhouse_password.clone().or(url_password),
            timeout,
        }
    }

    /// The bound on one insert (`--batch-insert-timeout`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `sql` (an `INSERT … FORMAT …`) with `settings`, its body produced by `produce`
    /// into the sender it is given (returning an error aborts the request, so nothing is
    /// committed). Returns the rows ClickHouse reports as written.
    pub async fn insert<F, Fut>(
        &self,
        sql: &str,
        settings: &[(&str, String)],
        produce: F,
    ) -> Result<u64, InsertError>
    where
        F: FnOnce(BodySender) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let mut uri = self.base.trim_end_matches('/').to_string();
        uri.push_str(if uri.contains('?') { "&" } else { "/?" });
        push_param(&mut uri, "database", &self.database);
        uri.push('&');
        push_param(&mut uri, "query", sql);
        for (k, v) in settings {
            uri.push('&');
            push_param(&mut uri, k, v);
        }
        let (tx, rx) = mpsc::channel(2);
        let mut req = http::Request::post(&uri).header("content-type", "application/octet-stream");
        if let Some(u) = &self.user {
            req = req.header("X-ClickHouse-User", u);
        }
        if let Some(p) = &self.password {
            req = req.header("X-ClickHouse-Key", p);
        }
        let req = match req.body(ChannelBody(rx)) {
            Ok(r) => r,
            Err(e) => return Err(local(format!("building the insert request: {e}"))),
        };
        let exchange = async {
            let (produced, response) =
                tokio::join!(produce(BodySender(tx)), self.client.request(req));
            let response = match response {
                Ok(r) => r,
                Err(e) => {
                    let connect = e.is_connect();
                    return Err(InsertError {
                        kind: Kind::Retryable,
                        code: None,
                        message: format!("ClickHouse request failed: {}", error_chain(&e)),
                        // A connect error sent nothing; anything later may have been applied.
                        may_have_landed: !connect && produced.is_ok(),
                        label: "retryable",
                    });
                }
            };
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if let Err(e) = produced {
                // The body was aborted: ClickHouse cannot have committed it.
                return Err(local(format!("reading the batch: {e:#}")));
            }
            let code = parts
                .headers
                .get("X-ClickHouse-Exception-Code")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u32>().ok());
            let status = parts.status.as_u16();
            let text = String::from_utf8_lossy(&body[..body.len().min(4096)]).to_string();
            if status != 200 || code.is_some() || text.contains("DB::Exception") {
                let message = text.trim().to_string();
                let kind = classify(code, &message, status);
                return Err(InsertError {
                    kind,
                    code,
                    message: if message.is_empty() {
                        format!("HTTP {status}")
                    } else {
                        message
                    },
                    // ClickHouse answered with an error: the insert did not complete. (Blocks
                    // of a multi-block insert may have landed; the deduplication token makes
                    // a retry of the same rows drop them.)
                    may_have_landed: false,
                    label: match kind {
                        Kind::Retryable => "retryable",
                        Kind::Permanent { .. } => "permanent",
                    },
                });
            }
            let summary = parts
                .headers
                .get("X-ClickHouse-Summary")
                .and_then(|v| v.to_str().ok());
            match summary.and_then(written_rows) {
                Some(n) => Ok(n),
                None => Err(InsertError {
                    kind: Kind::Retryable,
                    code: None,
                    message: format!(
                        "ClickHouse answered 200 without a readable X-ClickHouse-Summary ({summary:?}): the rows cannot be confirmed"
                    ),
                    may_have_landed: true,
                    label: "unconfirmed",
                }),
            }
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(InsertError {
                kind: Kind::Retryable,
                code: None,
                message: format!(
                    "no answer from ClickHouse within {:?} (--batch-insert-timeout)",
                    self.timeout
                ),
                may_have_landed: true,
                label: "timeout",
            }),
        }
    }
}

/// `http://user:pass@host/…` → (`http://host/…`, user, pass), percent-decoded.
fn split_credentials(url: &str) -> (String, Option<String>, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None, None);
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..end].rfind('@') else {
        return (url.to_string(), None, None);
    };
    let (user, password) = match rest[..at].split_once(':') {
        Some((u, p)) => (decode(u), Some(decode(p))),
        None => (decode(&rest[..at]), None),
    };
    (
        format!("{scheme}://{}", &rest[at + 1..]),
        (!user.is_empty()).then_some(user),
        password,
    )
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn local(message: String) -> InsertError {
    InsertError {
        kind: Kind::Retryable,
        code: None,
        message,
        may_have_landed: false,
        label: "retryable",
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// Appends `key=value`, percent-encoded for a URL query.
fn push_param(out: &mut String, key: &str, value: &str) {
    encode(out, key);
    out.push('=');
    encode(out, value);
}

fn encode(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Where an insert's body is written.
pub struct BodySender(mpsc::Sender<Result<Bytes, std::io::Error>>);

impl BodySender {
    /// Sends a chunk; an error means the request is gone (ClickHouse answered or the
    /// connection failed), and producing more is pointless.
    pub async fn send(&self, chunk: Bytes) -> anyhow::Result<()> {
        self.0
            .send(Ok(chunk))
            .await
            .map_err(|_| anyhow::anyhow!("the insert request ended before its body was sent"))
    }
}

/// A request body fed through a channel, so a segment is streamed from disk.
pub struct ChannelBody(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|c| c.map(|r| r.map(Frame::data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_sorted_by_code_and_message() {
        let partitions = "Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100).";
        assert_eq!(
            classify(Some(252), partitions, 500),
            Kind::Permanent { bisect: true }
        );
        assert_eq!(
            classify(
                Some(252),
                "Code: 252. DB::Exception: Too many parts (300).",
                500
            ),
            Kind::Retryable
        );
        assert_eq!(
            classify(Some(27), "Cannot parse input", 400),
            Kind::Permanent { bisect: true }
        );
        assert_eq!(
            classify(Some(16), "No such column", 400),
            Kind::Permanent { bisect: false }
        );
        assert_eq!(classify(Some(241), "Memory limit", 500), Kind::Retryable);
        assert_eq!(
            classify(Some(516), "Authentication failed", 403),
            Kind::Retryable
        );
        assert_eq!(classify(None, "", 502), Kind::Retryable);
        assert_eq!(classify(None, "", 413), Kind::Permanent { bisect: true });
    }

    #[test]
    fn the_summary_header_is_read_as_clickhouse_sends_it() {
        let real = r#"{"read_rows":"0","read_bytes":"0","written_rows":"12","written_bytes":"480","total_rows_to_read":"0","result_rows":"12","result_bytes":"480","elapsed_ns":"2104000"}"#;
        assert_eq!(written_rows(real), Some(12));
        assert_eq!(written_rows(r#"{"written_rows":3}"#), Some(3));
        assert_eq!(written_rows(r#"{"read_rows":"1"}"#), None);
        assert_eq!(written_rows("garbage"), None);
    }

    #[test]
    fn credentials_in_the_url_are_taken_out() {
        assert_eq!(
            split_credentials("http://default:s%40t@h:8123/?x=1"),
            (
                "http://h:8123/?x=1".to_string(),
                Some("default".into()),
                Some("s@t".into())
            )
        );
        assert_eq!(
            split_credentials("http://h:8123"),
            ("http://h:8123".to_string(), None, None)
        );
    }

    #[test]
    fn query_parameters_are_percent_encoded() {
        let mut s = String::new();
        push_param(&mut s, "query", "INSERT INTO t (a, `b.c`) FORMAT RowBinary");
        assert_eq!(
            s,
            "query=INSERT%20INTO%20t%20%28a%2C%20%60b.c%60%29%20FORMAT%20RowBinary"
        );
    }
}
