//! The embedded engine is closed: no secret, no query; no browser, no foreign Host name; nothing
//! that reaches outside the database, even with the secret; GET never writes. And an insert the
//! engine did not store is an error, never a 200 (chDB's streaming insert said 200 and stored
//! nothing for a batch on more than 100 days).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use orrery_store::SpanRow;
use orrery_store::testing::{TestServer, fresh_database};

/// One raw HTTP/1.1 request (exact headers, no client library adding or fixing any);
/// returns the status, the headers (lower-case names) and the body.
fn raw(port: u16, request: &str) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    let body = if header(&headers, "transfer-encoding") == Some("chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, headers, body)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || tail.len() < size {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    out
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A POST of `sql` as `text/plain` (what a web page can send cross-site without a preflight).
fn post(port: u16, extra_headers: &str, sql: &str) -> (u16, Vec<(String, String)>, String) {
    raw(
        port,
        &format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/plain\r\n\
             Content-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n{sql}",
            sql.len()
        ),
    )
}

fn key(server: &TestServer) -> String {
    format!("X-ClickHouse-Key: {}\r\n", server.secret)
}

async fn tables(db: &str) -> Vec<String> {
    TestServer::shared()
        .client()
        .query("SELECT name FROM system.tables WHERE database = ? ORDER BY name")
        .bind(db)
        .fetch_all()
        .await
        .unwrap()
}

#[tokio::test]
async fn no_secret_is_401_a_wrong_one_403_and_the_crate_with_it_works() {
    let server = TestServer::shared();
    let port = server.port;
    let (status, headers, body) = post(port, "", "SELECT 1");
    assert_eq!(status, 401, "{body}");
    assert_eq!(header(&headers, "x-clickhouse-exception-code"), Some("194"));
    let (status, headers, _) = post(port, "X-ClickHouse-Key: not-the-secret\r\n", "SELECT 1");
    assert_eq!(status, 403);
    assert_eq!(header(&headers, "x-clickhouse-exception-code"), Some("516"));
    // Another user name with the right secret is refused too.
    let (status, _, _) = post(
        port,
        &format!("X-ClickHouse-User: admin\r\n{}", key(server)),
        "SELECT 1",
    );
    assert_eq!(status, 403);
    // GET with the query in the URL, no secret: refused before anything runs.
    let (status, _, _) = raw(
        port,
        &format!(
            "GET /?query=SELECT%201 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, 401);
    // The secret as X-ClickHouse-Key (the crate's way) and as basic auth.
    let (status, _, body) = post(port, &key(server), "SELECT 41 + 1");
    assert_eq!((status, body.trim()), (200, "42"));
    use std::fmt::Write as _;
    let mut basic = String::new();
    let creds = format!("default:{}", server.secret);
    // Base64 by hand: no extra dependency for one header.
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in creds.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                basic.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                basic.push('=');
            }
        }
    }
    let mut h = String::new();
    write!(h, "Authorization: Basic {basic}\r\n").unwrap();
    let (status, _, body) = post(port, &h, "SELECT 'basic'");
    assert_eq!((status, body.trim()), (200, "basic"));
    // /ping stays open (health checks), like ClickHouse's.
    let (status, _, body) = raw(
        port,
        &format!("GET /ping HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!((status, body.as_str()), (200, "Ok.\n"));
    // And the normal path: ClickHouseArgs with the secret, through the crate.
    let ch = fresh_database().await;
    let n: u64 = ch
        .client()
        .query("SELECT count() FROM otel_traces")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(n, 0);
    // Without it, the crate gets the same refusal.
    let err = clickhouse::Client::default()
        .with_url(&server.endpoint)
        .query("SELECT 1")
        .fetch_one::<u8>()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("194") || err.to_string().contains("secret"),
        "{err}"
    );
}

#[tokio::test]
async fn browsers_and_foreign_host_names_are_refused_even_with_the_secret() {
    let server = TestServer::shared();
    let port = server.port;
    let ch = fresh_database().await;
    let db = &ch.clickhouse_database;
    let create = format!("CREATE TABLE {db}.evil (a UInt8) ENGINE = MergeTree ORDER BY a");
    // A cross-origin `text/plain` POST (a "simple" request: no preflight), with and without
    // the secret: 403, and nothing created.
    for auth in [String::new(), key(server)] {
        let (status, headers, body) = post(
            port,
            &format!("Origin: http://evil.example\r\n{auth}"),
            &create,
        );
        assert_eq!(status, 403, "{body}");
        assert_eq!(header(&headers, "x-clickhouse-exception-code"), Some("497"));
    }
    // Any browser request (Sec-Fetch-*), even a same-origin navigation.
    let (status, _, _) = post(
        port,
        &format!(
            "Sec-Fetch-Site: none\r\nSec-Fetch-Mode: navigate\r\n{}",
            key(server)
        ),
        &create,
    );
    assert_eq!(status, 403);
    // DNS rebinding: the right address under another name.
    for host in ["evil.example", "evil.example:18123", "127.0.0.1.nip.io", ""] {
        let (status, _, body) = raw(
            port,
            &format!(
                "POST / HTTP/1.1\r\nHost: {host}\r\n{}Content-Length: {}\r\nConnection: close\r\n\r\n{create}",
                key(server),
                create.len()
            ),
        );
        assert_eq!(status, 403, "Host {host:?}: {body}");
    }
    assert!(tables(db).await.iter().all(|t| t != "evil"));
    // localhost:<port> is this server.
    let (status, _, body) = raw(
        port,
        &format!(
            "GET /?query=SELECT%207 HTTP/1.1\r\nHost: localhost:{port}\r\n{}Connection: close\r\n\r\n",
            key(server)
        ),
    );
    assert_eq!((status, body.trim()), (200, "7"));
}

#[tokio::test]
async fn nothing_reaches_outside_the_database_even_with_the_secret() {
    let server = TestServer::shared();
    let port = server.port;
    let ch = fresh_database().await;
    let db = &ch.clickhouse_database;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("written");
    let out = out.display();
    let attach = dir.path().join("attach");
    let attach = attach.display();
    let hostile = [
        "SELECT * FROM file('/etc/passwd')".to_string(),
        "SELECT * FROM file('/etc/passwd', 'LineAsString')".into(),
        "select * from FILE('/etc/passwd', 'LineAsString')".into(),
        "SELECT file('/etc/passwd')".into(),
        "SELECT `file`('/etc/passwd')".into(),
        "SELECT \"file\"('/etc/passwd')".into(),
        "SELECT \"fi\\x6ce\"('/etc/passwd')".into(),
        "SELECT file/* a comment */('/etc/passwd')".into(),
        "SELECT file -- a comment\n('/etc/passwd')".into(),
        "SELECT 1 /* /* nested */ */, file('/etc/passwd')".into(),
        "SELECT '\\'', file('/etc/passwd'), '\\''".into(),
        "SELECT $$'$$, file('/etc/passwd'), $$'$$".into(),
        format!("INSERT INTO FUNCTION file('{out}', 'TSV', 'a String') VALUES ('x')"),
        format!("INSERT INTO FUNCTION file('{out}', 'TSV', 'a String') FORMAT TSV\nx\n"),
        "SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')".into(),
        "SELECT * FROM s3('http://127.0.0.1:1/b/k', 'LineAsString')".into(),
        "SELECT * FROM remote('127.0.0.1:9000', system.one)".into(),
        "SELECT * FROM remoteSecure('127.0.0.1:9440', system.one)".into(),
        "SELECT * FROM cluster('default', system.one)".into(),
        "SELECT * FROM hdfs('hdfs://127.0.0.1:1/x', 'TSV', 'a String')".into(),
        "SELECT * FROM executable('x.sh', 'TSV', 'a String')".into(),
        "SELECT * FROM mysql('127.0.0.1:1', 'a', 'b', 'c', 'd')".into(),
        "SELECT * FROM postgresql('127.0.0.1:1', 'a', 'b', 'c', 'd')".into(),
        "SELECT * FROM sqlite('/tmp/x.db', 't')".into(),
        "SELECT * FROM filesystem('/etc')".into(),
        "SELECT * FROM python('Handler')".into(),
        "SELECT * FROM azureBlobStorage('http://127.0.0.1:1', 'c', 'b')".into(),
        format!("SELECT 1 INTO OUTFILE '{out}'"),
        format!("INSERT INTO {db}.otel_traces FROM INFILE '/etc/passwd' FORMAT TSV"),
        format!("ATTACH TABLE {db}.a FROM '{attach}' (a String) ENGINE = MergeTree ORDER BY a"),
        format!("CREATE TABLE {db}.f (a String) ENGINE = File(TSV, '/etc/passwd')"),
        format!("CREATE TABLE {db}.u (a String) ENGINE = URL('http://127.0.0.1:1/', TSV)"),
        // What passes the tokenizer is still refused by the engine's grants.
        "SELECT * FROM '/etc/passwd'".into(),
        "SELECT * FROM default.`/etc/passwd`".into(),
        format!("BACKUP TABLE {db}.otel_traces TO Disk('default', 'b')"),
        "SYSTEM FLUSH LOGS".into(),
        format!(
            "CREATE DICTIONARY {db}.d (a String) PRIMARY KEY a \
             SOURCE(CLICKHOUSE(TABLE 'otel_traces')) LAYOUT(FLAT()) LIFETIME(0)"
        ),
        "CREATE FUNCTION f AS x -> x".into(),
        "CREATE USER evil IDENTIFIED WITH no_password".into(),
        format!("ALTER TABLE {db}.otel_traces FREEZE"),
        "SELECT 1 FORMAT Protobuf SETTINGS output_format_schema = '/tmp/x.proto'".into(),
        // Two statements in one request (ClickHouse's HTTP interface refuses them too).
        "SELECT 1; SELECT 2".into(),
    ];
    for sql in &hostile {
        let (status, headers, body) = post(port, &key(server), sql);
        assert!(
            (400..600).contains(&status)
                && header(&headers, "x-clickhouse-exception-code").is_some(),
            "not refused: {sql}\n→ {status} {body}"
        );
        assert!(!body.contains("root:"), "{sql} leaked /etc/passwd: {body}");
    }
    // Refused for the right reason, not by accident (a typo would be a syntax error).
    for sql in [&hostile[0], &hostile[3], &hostile[32], &hostile[35]] {
        let (_, headers, body) = post(port, &key(server), sql);
        assert_eq!(
            header(&headers, "x-clickhouse-exception-code"),
            Some("497"),
            "{sql}: {body}"
        );
    }
    // The same through a GET, in the URL.
    let (status, _, body) = raw(
        port,
        &format!(
            "GET /?query=SELECT%20*%20FROM%20file('/etc/passwd','LineAsString') HTTP/1.1\r\n\
             Host: 127.0.0.1:{port}\r\n{}Connection: close\r\n\r\n",
            key(server)
        ),
    );
    assert_eq!(status, 403, "{body}");
    // A path as a query parameter, which the engine substitutes after any check of the text:
    // the grants refuse it.
    let sql = "SELECT * FROM {t:Identifier}";
    let (status, headers, body) = raw(
        port,
        &format!(
            "POST /?param_t=%2Fetc%2Fpasswd HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{}\
             Content-Length: {}\r\nConnection: close\r\n\r\n{sql}",
            key(server),
            sql.len()
        ),
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(header(&headers, "x-clickhouse-exception-code"), Some("497"));
    assert!(!dir.path().join("written").exists());
    assert!(!dir.path().join("attach").exists());
    // Legitimate queries with the same words in literals and names still run.
    let (status, _, body) = post(
        port,
        &key(server),
        "SELECT 'file(/etc/passwd) INTO OUTFILE' AS `url`, count() FROM numbers(3) -- file(",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "file(/etc/passwd) INTO OUTFILE\t3\n");
}

#[tokio::test]
async fn get_is_read_only_and_a_set_does_not_outlive_its_request() {
    let server = TestServer::shared();
    let port = server.port;
    let ch = fresh_database().await;
    let db = ch.clickhouse_database.clone();
    let get = |query: &str| {
        let q: String = query
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        raw(
            port,
            &format!(
                "GET /?database={db}&query={q} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{}\
                 Connection: close\r\n\r\n",
                key(server)
            ),
        )
    };
    for ddl in [
        "CREATE TABLE g (a UInt8) ENGINE = MergeTree ORDER BY a",
        "DROP TABLE otel_traces",
        "INSERT INTO otel_traces (TraceId) VALUES ('x')",
        "SELECT 1 SETTINGS readonly = 0",
    ] {
        let (status, headers, body) = get(ddl);
        assert!(status >= 400, "{ddl}: {status} {body}");
        assert_eq!(
            header(&headers, "x-clickhouse-exception-code"),
            Some("164"),
            "{ddl}: {body}"
        );
    }
    // ?readonly=0 cannot lift it either.
    let (status, _, _) = raw(
        port,
        &format!(
            "GET /?database={db}&readonly=0&query=DROP%20TABLE%20otel_traces HTTP/1.1\r\n\
             Host: 127.0.0.1:{port}\r\n{}Connection: close\r\n\r\n",
            key(server)
        ),
    );
    assert!(status >= 400);
    assert!(tables(&db).await.contains(&"otel_traces".to_string()));
    let (status, _, body) = get("SELECT count() FROM otel_traces");
    assert_eq!((status, body.trim()), (200, "0"));
    // A POSTed `SET` is acknowledged but, as without a session in ClickHouse, affects nothing
    // after it: every later request (on any server thread) still writes.
    for _ in 0..4 {
        let (status, _, _) = post(port, &key(server), "SET readonly = 1");
        assert_eq!(status, 200);
    }
    for i in 0..8 {
        let (status, _, body) = post(
            port,
            &key(server),
            &format!("CREATE TABLE {db}.w{i} (a UInt8) ENGINE = MergeTree ORDER BY a"),
        );
        assert_eq!(status, 200, "{body}");
    }
}

/// Span rows, one per day from tomorrow on (future days: no retention TTL applies).
fn rows_on_days(days: i64, trace: u64) -> Vec<SpanRow> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    (0..days)
        .map(|d| SpanRow {
            timestamp: now + (d + 1) * 86_400_000_000_000,
            trace_id: format!("{trace:032x}"),
            span_id: format!("{:016x}", d + 1),
            service_name: "svc".into(),
            span_name: "op".into(),
            ..SpanRow::default()
        })
        .collect()
}

#[tokio::test]
async fn an_insert_the_engine_did_not_store_is_an_error_never_a_200() {
    let ch = fresh_database().await;
    let client = ch.client();
    // 101 days in one batch: more partitions than one insert may create. chDB's streaming
    // insert used to answer 200 and store nothing.
    let mut insert = client.insert::<SpanRow>("otel_traces").await.unwrap();
    for row in rows_on_days(101, 1) {
        insert.write(&row).await.unwrap();
    }
    let err = insert.end().await.unwrap_err().to_string();
    assert!(
        err.contains("252") || err.contains("TOO_MANY_PARTS"),
        "{err}"
    );
    let stored: u64 = client
        .query("SELECT count() FROM otel_traces")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(stored, 0);
    // The same batch split so no insert spans more than 100 days: every row lands.
    let rows = rows_on_days(101, 1);
    for part in rows.chunks(60) {
        let mut insert = client.insert::<SpanRow>("otel_traces").await.unwrap();
        for row in part {
            insert.write(row).await.unwrap();
        }
        insert.end().await.unwrap();
    }
    let stored: u64 = client
        .query("SELECT count() FROM otel_traces")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(stored, 101);

    // Raw: the status and code a real ClickHouse sends (500, 252), and a CHECK constraint —
    // the other error chDB's streaming insert swallowed.
    let server = TestServer::shared();
    let port = server.port;
    let db = &ch.clickhouse_database;
    let tsv: String = (0..101)
        .map(|d| {
            format!(
                "{:032x}\t{d:016x}\tsvc\t{}\n",
                7,
                1_900_000_000 + d * 86_400
            )
        })
        .collect();
    let (status, headers, body) = post(
        port,
        &key(server),
        &format!(
            "INSERT INTO {db}.otel_traces (TraceId, SpanId, ServiceName, Timestamp) FORMAT TSV\n{tsv}"
        ),
    );
    assert_eq!(status, 500, "{body}");
    assert_eq!(header(&headers, "x-clickhouse-exception-code"), Some("252"));
    assert!(body.contains("TOO_MANY_PARTS"), "{body}");
    let (status, _, body) = post(
        port,
        &key(server),
        &format!(
            "CREATE TABLE {db}.checked (a UInt32, CONSTRAINT small CHECK a < 50) \
             ENGINE = MergeTree ORDER BY a"
        ),
    );
    assert_eq!(status, 200, "{body}");
    let numbers: String = (0..100).map(|i| format!("{i}\n")).collect();
    let (status, headers, body) = post(
        port,
        &key(server),
        &format!("INSERT INTO {db}.checked FORMAT TSV\n{numbers}"),
    );
    assert!(status >= 400, "{body}");
    assert_eq!(header(&headers, "x-clickhouse-exception-code"), Some("469"));
    let (_, _, body) = post(
        port,
        &key(server),
        &format!("SELECT count() FROM {db}.checked"),
    );
    assert_eq!(body.trim(), "0");
}

#[tokio::test]
async fn a_successful_insert_reports_clickhouse_summary_with_written_rows() {
    let server = TestServer::shared();
    let port = server.port;
    let ch = fresh_database().await;
    let db = &ch.clickhouse_database;
    let (status, _, body) = post(
        port,
        &key(server),
        &format!(
            "CREATE TABLE {db}.d (a UInt32) ENGINE = MergeTree ORDER BY a \
             SETTINGS non_replicated_deduplication_window = 100"
        ),
    );
    assert_eq!(status, 200, "{body}");
    let numbers: String = (0..250).map(|i| format!("{i}\n")).collect();
    let insert = |token: &str| {
        raw(
            port,
            &format!(
                "POST /?database={db}&insert_deduplication_token={token}&query=INSERT%20INTO%20d%20FORMAT%20TSV HTTP/1.1\r\n\
                 Host: 127.0.0.1:{port}\r\n{}Content-Length: {}\r\nConnection: close\r\n\r\n{numbers}",
                key(server),
                numbers.len()
            ),
        )
    };
    let summary = |headers: &[(String, String)]| -> serde_json::Value {
        let text = header(headers, "x-clickhouse-summary").expect("X-ClickHouse-Summary");
        // ClickHouse's exact shape: compact JSON, every value a string.
        assert!(text.starts_with("{\"read_rows\":\""), "{text}");
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        for k in [
            "read_rows",
            "read_bytes",
            "written_rows",
            "written_bytes",
            "total_rows_to_read",
            "result_rows",
            "result_bytes",
            "elapsed_ns",
        ] {
            assert!(v[k].is_string(), "{k} in {text}");
        }
        v
    };
    let (status, headers, body) = insert("t1");
    assert_eq!(status, 200, "{body}");
    let first = summary(&headers);
    assert_eq!(first["written_rows"], "250");
    assert_eq!(first["read_rows"], "250");
    // A retry with the same deduplication token: stored once, and reported as ClickHouse
    // reports it (written, not an error) — what a sink verifying written_rows must expect.
    let (status, headers, body) = insert("t1");
    assert_eq!(status, 200, "{body}");
    assert_eq!(summary(&headers)["written_rows"], "250");
    let (_, _, body) = post(port, &key(server), &format!("SELECT count() FROM {db}.d"));
    assert_eq!(body.trim(), "250");
    // An INSERT … VALUES and an INSERT … SELECT report their rows the same way.
    let (status, headers, body) = post(
        port,
        &key(server),
        &format!("INSERT INTO {db}.d VALUES (1000), (1001), (1002)"),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(summary(&headers)["written_rows"], "3");
    let (status, headers, body) = post(
        port,
        &key(server),
        &format!("INSERT INTO {db}.d SELECT number + 2000 FROM numbers(7)"),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(summary(&headers)["written_rows"], "7");
}

/// Every spelling of a file read a tokenizer might miss — separators (spaces, tabs, comments of
/// each kind), the name bare, quoted, in other cases, and the call in every position a query can
/// hold one — is refused, and the file's content never comes back.
#[tokio::test]
async fn no_spelling_of_a_file_read_gets_through() {
    let server = TestServer::shared();
    let port = server.port;
    let dir = tempfile::tempdir().unwrap();
    let marker = "ORRERY-MARKER-7f3a";
    let path = dir.path().join("secret.txt");
    std::fs::write(&path, format!("{marker}\n")).unwrap();
    let path = path.display().to_string();
    // With Unicode characters the engine reads as whitespace and Python does not (zero-width
    // space, word joiner, BOM, Mongolian vowel separator), and some both do.
    let separators = [
        "", " ", "\n", "\t", "/**/", "/* ( */", "-- c\n", "# c\n", "\r\n", "\u{200B}", "\u{2060}",
        "\u{FEFF}", "\u{180E}", "\u{00A0}", "\u{3000}", "\u{0085}", "\u{000B}",
    ];
    let names = ["file", "`file`", "\"file\"", "FILE", "File", "fIlE"];
    let mut tried = 0;
    for name in names {
        for sep in separators {
            let call = format!("{name}{sep}({sep}'{path}'{sep})");
            let table = format!("{name}{sep}({sep}'{path}', 'LineAsString'{sep})");
            for sql in [
                format!("SELECT{sep} {call}"),
                format!("SELECT * FROM {table}"),
                format!("SELECT * FROM{sep}{table}"),
                format!("WITH {call} AS a SELECT a"),
                format!("SELECT (SELECT {call})"),
                format!("SELECT * FROM numbers(1) WHERE {call} != ''"),
                format!("SELECT * FROM system.one AS o JOIN {table} AS f ON 1"),
                format!("SELECT 1 UNION ALL SELECT length({call})"),
            ] {
                let (status, _, body) = post(port, &key(server), &sql);
                assert!(
                    !body.contains(marker),
                    "read the file: {sql:?} → {status} {body}"
                );
                assert_ne!(status, 200, "not refused: {sql:?} → {body}");
                tried += 1;
            }
        }
    }
    assert_eq!(tried, names.len() * separators.len() * 8);
}

/// Local clients that connect and send nothing cannot pile up: beyond --max-connections a
/// connection gets 503 at once, an idle one is closed after --idle-timeout, and the engine
/// serves again as soon as they are gone.
#[tokio::test]
async fn idle_and_excess_connections_are_bounded() {
    let server = tokio::task::spawn_blocking(|| {
        TestServer::start_with(&["--max-connections", "8", "--idle-timeout", "2"])
    })
    .await
    .unwrap();
    let port = server.port;
    // Eight connections that send nothing (or half a request line) hold every slot.
    let mut idle: Vec<TcpStream> = (0..8)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            if i % 2 == 1 {
                s.write_all(b"GET /pi").unwrap();
            }
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (status, headers, body) = post(port, &key(&server), "SELECT 1");
    assert_eq!(status, 503, "{body}");
    assert_eq!(header(&headers, "x-clickhouse-exception-code"), Some("202"));
    // After the idle timeout the server has closed them: reads end.
    let started = std::time::Instant::now();
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
    }
    assert!(started.elapsed() < Duration::from_secs(15));
    // Slots are free again.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, body) = post(port, &key(&server), "SELECT 1");
        if status == 200 {
            assert_eq!(body.trim(), "1");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status} {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
