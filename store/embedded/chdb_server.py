#!/usr/bin/env python3
"""The ClickHouse HTTP interface in front of chDB, the embedded ClickHouse engine.

Orrery's collector and query service speak to ClickHouse only through the official `clickhouse`
Rust crate over HTTP. This server lets that same code run against chDB (PyPI `chdb-core`), which
is ClickHouse packaged as a Python extension, with the data on local disk.

What it implements, following https://clickhouse.com/docs/interfaces/http :
- `GET /ping` and `GET /replicas_status` answer `Ok.`;
- the query in the `query` URL parameter, in the POST body, or as the `query` field of a
  `multipart/form-data` body (that is how the Rust crate sends queries that carry `param_*`);
- typed query parameters `param_<name>` (URL or multipart fields), substituted by the engine;
- `database`, `default_format`, and every other URL parameter applied as a setting for the one
  request (`SET k = v` before, `SET k = DEFAULT` after, on a per-thread connection);
- `INSERT ... FORMAT <fmt>` whose data is the request body (or follows the query in the body),
  streamed chunk by chunk into chDB's streaming insert, so memory stays flat for large inserts;
  `Content-Encoding: gzip` request bodies are inflated on the fly;
- SELECT results streamed back in the requested format with chunked transfer encoding;
- errors as non-2xx with `X-ClickHouse-Exception-Code` and ClickHouse's message text, with the
  HTTP status ClickHouse itself gives each code; an error after a streamed result has begun
  (a time limit hit between blocks) in the body, framed by `X-ClickHouse-Exception-Tag` as
  ClickHouse 25.11+ does, and the stream cut short.

Closed by default (see docs/security.md, "Embedded engine"):
- every query needs the secret (`--secret-file`) as `X-ClickHouse-Key` (how the `clickhouse`
  crate sends a password) or HTTP basic auth, user `default`: none → 401, wrong → 403;
- a request with an `Origin` or `Sec-Fetch-*` header (a browser) or a `Host` other than this
  server's loopback address:port (DNS rebinding) → 403, before anything else is looked at;
- the engine runs as a ClickHouse user whose grants leave out every source (`file`, `url`,
  `remote`, `s3`, …), dictionaries, functions, backups and SYSTEM, with the settings that name
  files pinned; what grants cannot express (`INTO OUTFILE`, `FROM INFILE`, `ATTACH … FROM`, the
  `file()` function, chDB's `python()`, every table function not on an allowlist, several
  statements in one request) is refused by a tokenizer before the engine sees the query
  (those rules, the access config and the error codes live in chdb_guard.py, beside this file);
- GET runs with `readonly = 2`, as ClickHouse does.

Inserts go through `INSERT … FROM INFILE` of the staged body, never chDB's streaming insert:
that one reports success while silently storing nothing when the table refuses the rows (too
many partitions, a CHECK constraint, a failing materialized view). Every successful insert
answers `X-ClickHouse-Summary` with the rows read from the body and written.

Not implemented: ClickHouse's native block compression (`decompress=1` / `compress=1`), sessions,
users and quotas. The server binds to loopback only; run a real ClickHouse for anything shared.
"""

import argparse
import base64
import hmac
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
import zlib
from email.parser import BytesParser
from email.policy import HTTP as HTTP_POLICY
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import chdb

# The errors, the SQL guard and the access config: beside this file (sys.path[0]).
from chdb_guard import (
    ACCESS_DENIED, AUTHENTICATION_FAILED, REQUIRED_PASSWORD, ClickHouseError, check_sql,
    chdb_error, learn_engine, write_access_config,
)

# URL parameters of the HTTP interface that are not settings.
NON_SETTINGS = {
    "query", "database", "default_format", "user", "password", "query_id", "session_id",
    "session_timeout", "session_check", "compress", "decompress", "buffer_size",
    "wait_end_of_query", "role", "quota_key", "enable_http_compression",
    "http_zlib_compression_level", "add_http_cors_header", "http_response_buffer_size",
    "send_progress_in_http_headers", "client_protocol_version",
}
SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
INSERT_WITH_FORMAT = re.compile(
    r"^\s*INSERT\s+INTO\s+(?P<target>.*?)\s+FORMAT\s+(?P<format>[A-Za-z0-9_]+)[ \t]*\r?\n?",
    re.IGNORECASE | re.DOTALL,
)
# SELECT results are streamed block by block from chDB's streaming API; `--buffer-results`
# uses the buffered API instead (a fallback should a chDB release misbehave).
STREAM_RESULTS = True
# chDB streams only SELECTs; DESCRIBE, SHOW and friends go through the buffered API.
STREAMABLE_STATEMENT = re.compile(r"^\s*\(*\s*(SELECT|WITH)\b", re.IGNORECASE)
# Formats whose per-block outputs concatenate into one valid result once the repeated header
# (chDB formats every streamed block as a whole result) is cut from all blocks but the first.
STREAMABLE_FORMAT = re.compile(
    r"^(RowBinary\w*|TabSeparated\w*|TSV\w*|CSV\w*|JSONEachRow|JSONStringsEachRow|"
    r"JSONCompactEachRow\w*|JSONCompactStringsEachRow\w*|Native)$", re.IGNORECASE)
FORMAT_CLAUSE = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.IGNORECASE)



VERSION = "unknown"
BINARY_OUTPUT = ("rowbinary", "native", "parquet", "arrow", "orc", "avro", "msgpack", "protobuf")
CHUNK = 1 << 20


class Engine:
    """Per server thread, one chDB connection for writes and one for reads with `readonly = 2`
    (what ClickHouse applies to GET): chDB settings and `USE` are per connection, and `readonly`
    cannot be lowered again on a connection once raised."""

    def __init__(self, path, config):
        self.path = path
        self.local = threading.local()
        # Opens (or creates) the data directory once; the config applies to the whole engine.
        self.first = chdb.connect(f"{path}?config-file={config}")
        self.all = [self.first]
        self.lock = threading.Lock()

    def conn(self, readonly=False):
        name = "ro" if readonly else "rw"
        conn = getattr(self.local, name, None)
        if conn is None:
            conn = chdb.connect(self.path + ("?readonly=2" if readonly else ""))
            setattr(self.local, name, conn)
            with self.lock:
                self.all.append(conn)
        return conn

    def release_thread(self):
        """Closes this thread's connections (a server thread serves one client connection)."""
        for name in ("rw", "ro"):
            conn = getattr(self.local, name, None)
            if conn is None:
                continue
            setattr(self.local, name, None)
            with self.lock:
                if conn in self.all:
                    self.all.remove(conn)
            try:
                conn.close()
            except Exception:
                pass

    def close(self):
        with self.lock:
            conns, self.all = self.all, []
        for conn in reversed(conns):
            try:
                conn.close()
            except Exception:
                pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: a response is written in pieces (headers, chunks, the last chunk); with
    # Nagle on, a keep-alive client's delayed ACK held each reply back ~40 ms.
    disable_nagle_algorithm = True
    server_version = "orrery-chdb"
    engine = None  # set in main()
    staging = None  # set in main(): where insert bodies are staged
    secret = b""  # set in main(): the contents of --secret-file
    allowed_hosts = set()  # set in main(): "127.0.0.1:<port>", "localhost:<port>"
    quiet = True
    # Socket timeout (--idle-timeout): a connection that sends nothing (an idle keep-alive, a
    # client stuck mid-header or mid-body) for this long is closed. Longer than hyper's 90 s
    # pool idle time, so the crate never reuses a connection the server is closing.
    timeout = 300

    def log_message(self, fmt, *args):
        if not self.quiet:
            sys.stderr.write("chdb-server: " + (fmt % args) + "\n")

    # ---- request plumbing -------------------------------------------------------------------

    def body_chunks(self):
        """Yields the request body in pieces: Content-Length or chunked, gzip inflated."""
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        inflater = None
        if encoding in ("gzip", "deflate"):
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
        elif encoding not in ("", "identity"):
            raise ClickHouseError(
                166, f"Unsupported Content-Encoding {encoding!r} (embedded server: gzip or none)", 415)

        def raw():
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                while True:
                    line = self.rfile.readline(65537)
                    if not line:
                        raise ClickHouseError(33, "Unexpected end of chunked request body")
                    size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                            pass
                        return
                    remaining = size
                    while remaining:
                        piece = self.rfile.read(min(remaining, CHUNK))
                        if not piece:
                            raise ClickHouseError(33, "Unexpected end of chunked request body")
                        remaining -= len(piece)
                        yield piece
                    self.rfile.readline(3)
            else:
                remaining = int(self.headers.get("Content-Length") or 0)
                while remaining:
                    piece = self.rfile.read(min(remaining, CHUNK))
                    if not piece:
                        raise ClickHouseError(33, "Unexpected end of request body")
                    remaining -= len(piece)
                    yield piece

        for piece in raw():
            yield inflater.decompress(piece) if inflater else piece
        if inflater:
            tail = inflater.flush()
            if tail:
                yield tail

    def drain(self, chunks):
        for _ in chunks:
            pass

    def send_error_response(self, err):
        body = err.message
        if "(version" not in body:
            body += f" (version {VERSION})"
        body = (body + "\n").encode()
        try:
            self.send_response(err.status)
            self.send_header("Content-Type", "text/plain; charset=UTF-8")
            self.send_header("X-ClickHouse-Exception-Code", str(err.code))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def common_headers(self, fmt, query_id):
        self.send_header("X-ClickHouse-Query-Id", query_id)
        self.send_header("X-ClickHouse-Server-Display-Name", "orrery-embedded")
        self.send_header("X-ClickHouse-Timezone", "UTC")
        if fmt:
            self.send_header("X-ClickHouse-Format", fmt)
            binary = fmt.lower().startswith(BINARY_OUTPUT)
            self.send_header("Content-Type", "application/octet-stream" if binary
                             else "text/plain; charset=UTF-8")

    def send_ok(self, payload, fmt, query_id, summary):
        self.send_response(200)
        self.common_headers(fmt, query_id)
        self.send_header("X-ClickHouse-Summary", json.dumps(summary, separators=(",", ":")))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    # ---- routes ---------------------------------------------------------------------------

    def finish(self):
        try:
            super().finish()
        finally:
            if self.engine is not None:
                self.engine.release_thread()

    def refuse_early(self, err):
        """Answers without reading the body, and closes the connection (the unread body)."""
        self.close_connection = True
        self.send_error_response(err)

    def browser_or_foreign_host(self):
        """A ClickHouseError for a request a browser sent, or one addressed to another host
        name (DNS rebinding), else None. Browsers add `Origin` to cross-origin POSTs and
        `Sec-Fetch-*` to every request; no ClickHouse client sends either."""
        for header in ("Origin", "Sec-Fetch-Site", "Sec-Fetch-Mode"):
            if self.headers.get(header) is not None:
                return ClickHouseError(ACCESS_DENIED, f"default: requests with a {header} header "
                                       "(from a web browser) are refused by the embedded engine", 403)
        host = (self.headers.get("Host") or "").strip().lower()
        if host not in self.allowed_hosts:
            return ClickHouseError(ACCESS_DENIED, f"default: Host {host!r} refused: the embedded "
                                   f"engine answers only to {sorted(self.allowed_hosts)}", 403)
        return None

    def authentication_error(self):
        """A ClickHouseError unless the request carries the secret, else None: as the
        `clickhouse` crate sends a password (X-ClickHouse-User / X-ClickHouse-Key) or HTTP basic
        auth. User `default` or none. Status and codes as ClickHouse's for the same cases."""
        user = self.headers.get("X-ClickHouse-User")
        key = self.headers.get("X-ClickHouse-Key")
        auth = self.headers.get("Authorization") or ""
        if auth[:6].lower() == "basic " and key is None:
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
            except Exception:
                decoded = ""
            basic_user, _, key = decoded.partition(":")
            user = user or basic_user
        if not key:
            return ClickHouseError(REQUIRED_PASSWORD, "default: Authentication failed: the embedded "
                                   "engine requires its secret (X-ClickHouse-Key or basic auth; "
                                   "the secret is in <data-dir>/clickhouse.secret)", 401)
        if user not in (None, "", "default") or not hmac.compare_digest(
                key.encode("utf-8"), self.secret):
            return ClickHouseError(AUTHENTICATION_FAILED, f"{user or 'default'}: Authentication "
                                   "failed: password is incorrect, or there is no user with such "
                                   "name.", 403)
        return None

    def do_GET(self):
        err = self.browser_or_foreign_host()
        if err:
            return self.refuse_early(err)
        url = urlsplit(self.path)
        if url.path in ("/ping", "/replicas_status"):
            payload = b"Ok.\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        if url.path == "/" and not url.query:
            payload = b"Ok.\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        err = self.authentication_error()
        if err:
            return self.refuse_early(err)
        self.handle_query(url, readonly=True)

    def do_POST(self):
        err = self.browser_or_foreign_host() or self.authentication_error()
        if err:
            return self.refuse_early(err)
        self.handle_query(urlsplit(self.path), readonly=False)

    def handle_query(self, url, readonly):
        if url.path not in ("/", "/query"):
            chunks = self.body_chunks()
            self.drain(chunks)
            self.send_error_response(ClickHouseError(
                1000, f"There is no handle {url.path}. Use / or /ping.", 404))
            return
        params = parse_qsl(url.query, keep_blank_values=True)
        chunks = self.body_chunks()
        try:
            self.execute(params, chunks, readonly)
        except ClickHouseError as err:
            self.drain_quietly(chunks)
            self.send_error_response(err)
        except Exception as exc:  # a chDB error not raised as ClickHouseError
            self.drain_quietly(chunks)
            self.send_error_response(chdb_error(exc))

    def drain_quietly(self, chunks):
        try:
            self.drain(chunks)
        except Exception:
            self.close_connection = True

    def execute(self, params, chunks, readonly):
        url_query = None
        query_params = {}
        settings = []
        database = None
        default_format = "TabSeparated"
        query_id = str(uuid.uuid4())
        for key, value in params:
            if key == "query":
                url_query = value
            elif key.startswith("param_"):
                query_params[key[6:]] = value
            elif key == "database":
                database = value
            elif key == "default_format":
                default_format = value
            elif key == "query_id":
                query_id = value or query_id
            elif key == "decompress" and value not in ("", "0"):
                raise ClickHouseError(
                    115, "decompress=1 (native block compression) is not supported by the "
                    "embedded server; turn compression off in the client", 400)
            elif key in NON_SETTINGS:
                continue
            else:
                if not SETTING_NAME.match(key):
                    raise ClickHouseError(115, f"Unknown setting {key!r}", 400)
                settings.append((key, value))

        content_type = self.headers.get("Content-Type") or ""
        data = chunks
        if content_type.lower().startswith("multipart/form-data"):
            body = b"".join(chunks)
            fields = parse_multipart(content_type, body)
            for name, value in fields.items():
                if name == "query":
                    url_query = (url_query + " " + value) if url_query else value
                elif name.startswith("param_"):
                    query_params[name[6:]] = value
            data = iter(())

        first = b""
        if url_query is None:
            # The whole body is the query, possibly followed by inline INSERT data.
            body = b"".join(data)
            text = body.decode("utf-8", errors="replace")
            insert = INSERT_WITH_FORMAT.match(text)
            if insert:
                head_len = len(text[: insert.end()].encode("utf-8"))
                sql, first = text[: insert.end()], body[head_len:]
            else:
                sql = text
            data = iter(())
        else:
            sql = url_query
            insert = INSERT_WITH_FORMAT.match(sql)
            if insert and sql[insert.end():].strip():
                # Inline data after FORMAT inside the query parameter itself.
                first = sql[insert.end():].encode()
                sql = sql[: insert.end()]
        if not sql.strip():
            raise ClickHouseError(62, "Empty query", 400)
        insert = INSERT_WITH_FORMAT.match(sql)
        if not insert:
            body_rest = b"".join(data)
            if body_rest.strip():
                sql = sql + " " + body_rest.decode("utf-8", errors="replace")
        # For an INSERT … FORMAT only the statement is SQL; the rest is data.
        first_word = check_sql(sql)
        readonly = readonly or any(k == "readonly" and v not in ("", "0") for k, v in settings)
        settings = [(k, v) for k, v in settings if k != "readonly"]
        if first_word == "set":
            # Without a session, ClickHouse applies a SET to nothing after it; here it would
            # stick to this thread's connection, so it is acknowledged and not run.
            self.send_ok(b"", None, query_id, summary_of(0, 0, 0, 0, 0, 0, time.monotonic()))
            return

        conn = self.engine.conn(readonly=readonly)
        started = time.monotonic()
        applied = []
        try:
            conn.query("USE " + quote_identifier(database or "default"))
            for key, value in settings:
                conn.query(f"SET {key} = {quote_literal(value)}")
                applied.append(key)
            if insert:
                check = not any(k.startswith("input_format_allow_errors") for k, _ in settings)
                self.run_insert(conn, insert, first, data, query_id, started, check)
            else:
                self.run_query(conn, sql, query_params, default_format, query_id, started)
        finally:
            for key in applied:
                try:
                    conn.query(f"SET {key} = DEFAULT")
                except Exception:
                    pass

    def run_insert(self, conn, insert, first, data, query_id, started, check_rows):
        """Stages the body in a file, then `INSERT … FROM INFILE` it through chDB's ordinary
        query path, which raises every error of the insert. (chDB's streaming insert swallows
        errors raised while writing — too many partitions, CHECK constraints, materialized
        views — and reports the rows as written while storing none.)"""
        fmt = insert.group("format")
        staged = os.path.join(self.staging, uuid.uuid4().hex)
        try:
            with open(os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                if first:
                    f.write(first)
                for piece in data:
                    f.write(piece)
            try:
                result = conn.query(f"INSERT INTO {insert.group('target')} FROM INFILE "
                                    f"{quote_literal(staged)} FORMAT {fmt}")
            except Exception as exc:
                raise chdb_error(exc)
        except OSError as exc:  # the staging file: disk full, …
            raise ClickHouseError(243, f"Cannot stage the insert's data: {exc}")
        finally:
            try:
                os.remove(staged)
            except OSError:
                pass
        received, written = result.rows_read(), result.rows_written()
        # written counts the rows materialized views wrote too, so it is at least the rows
        # received when everything was stored (a deduplicated retry also counts as written).
        if check_rows and written < received:
            raise ClickHouseError(1002, f"The insert stored {written} of the {received} rows it "
                                  "received (embedded engine check)")
        if not self.quiet:
            sys.stderr.write(f"chdb-server: insert {fmt}: {received} rows in, {written} written\n")
        summary = summary_of(received, result.bytes_read(), written, result.bytes_written(),
                             written, result.bytes_written(), started)
        self.send_ok(b"", None, query_id, summary)

    def run_query(self, conn, sql, query_params, default_format, query_id, started):
        match = FORMAT_CLAUSE.search(sql)
        fmt = match.group(1) if match else default_format
        if not self.quiet:
            sys.stderr.write(f"chdb-server: query [{fmt}] {sql[:300]!r} params={query_params}\n")
        if not (STREAM_RESULTS and STREAMABLE_STATEMENT.match(sql) and STREAMABLE_FORMAT.match(fmt)):
            try:
                result = conn.query(sql, fmt, params=query_params)
            except Exception as exc:
                raise chdb_error(exc)
            payload = result.bytes() if result is not None else b""
            if result is None:
                summary = summary_of(0, 0, 0, 0, 0, len(payload), started)
            else:  # an INSERT … VALUES / SELECT lands here: its written rows count too
                summary = summary_of(result.rows_read(), result.bytes_read(), result.rows_written(),
                                     result.bytes_written(), result.rows_written(), len(payload),
                                     started)
            self.send_ok(payload, fmt, query_id, summary)
            return
        try:
            stream = conn.send_query(sql, fmt, params=query_params)
            first = stream.fetch()
        except Exception as exc:
            raise chdb_error(exc)
        if first is None:
            # An empty stream carries no header, and formats with one must still get it. Once,
            # an early chDB stream also came back empty for a non-empty result: an empty stream
            # is cheap to recompute, so always confirm it with the buffered API.
            try:
                payload = conn.query(sql, fmt, params=query_params).bytes()
            except Exception as exc:
                raise chdb_error(exc)
            self.send_ok(payload, fmt, query_id, summary_of(0, 0, 0, 0, 0, len(payload), started))
            return
        # A failure after the first block (a time limit hit mid-result) can only be told in the
        # body. ClickHouse (25.11+) frames it between two `__exception__` markers carrying a
        # random tag announced in this header, which is how the `clickhouse` crate tells an
        # exception from row data; without it the crate would read the message as rows and
        # report a parse error instead of the engine's code.
        tag = uuid.uuid4().hex[:16]
        self.send_response(200)
        self.common_headers(fmt, query_id)
        self.send_header("X-ClickHouse-Exception-Tag", tag)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = first
        header = None
        try:
            while chunk is not None:
                payload = chunk.bytes()
                if header is None:
                    header = payload[: header_length(fmt, payload)]
                elif header and payload.startswith(header):
                    payload = payload[len(header):]
                if payload:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
                chunk = stream.fetch()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            stream.cancel()
            self.close_connection = True
        except Exception as exc:
            # Headers are gone; like ClickHouse, put the exception in the body (framed as above)
            # and cut the stream short so no client can mistake a partial result for a whole one.
            message = exception_block(chdb_error(exc).message, tag)
            try:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(message), message))
            except Exception:
                pass
            self.close_connection = True


def exception_block(message, tag):
    r"""An exception after the result has begun, as ClickHouse 25.11+ writes it:
    `\r\n__exception__\r\n<tag>\r\n<message>\n<length of message and newline> <tag>\r\n__exception__\r\n`
    (one HTTP chunk, so a client sees it whole)."""
    text = f"{message.strip()}\n".encode()
    return (b"\r\n__exception__\r\n" + tag.encode() + b"\r\n" + text
            + b"%d " % len(text) + tag.encode() + b"\r\n__exception__\r\n")


def header_length(fmt, data):
    """Bytes of the result header (column names/types) at the start of `data`, 0 if none."""
    f = fmt.lower()
    if f.startswith("rowbinarywithnames"):
        pos = 0

        def varint():
            nonlocal pos
            value, shift = 0, 0
            while True:
                b = data[pos]
                pos += 1
                value |= (b & 0x7F) << shift
                if b < 0x80:
                    return value
                shift += 7

        try:
            n = varint()
            for _ in range(n * (2 if f.endswith("andtypes") else 1)):
                length = varint()  # read first: `pos += varint()` would use the stale pos
                pos += length
        except IndexError:
            return 0
        return pos
    lines = 2 if "withnamesandtypes" in f else 1 if "withnames" in f else 0
    pos = 0
    for _ in range(lines):
        nl = data.find(b"\n", pos)
        if nl < 0:
            return 0
        pos = nl + 1
    return pos


def summary_of(read_rows, read_bytes, written_rows, written_bytes, result_rows, result_bytes, started):
    return {
        "read_rows": str(read_rows), "read_bytes": str(read_bytes),
        "written_rows": str(written_rows), "written_bytes": str(written_bytes),
        "total_rows_to_read": "0", "result_rows": str(result_rows),
        "result_bytes": str(result_bytes),
        "elapsed_ns": str(int((time.monotonic() - started) * 1e9)),
    }


class Server(ThreadingHTTPServer):
    """One thread per connection (chDB connections are per thread), at most `max_connections`
    at once: beyond it a connection gets an immediate 503 and is closed, so a flood of idle or
    slow local connections cannot pile up threads without bound."""

    daemon_threads = True
    max_connections = 256  # --max-connections

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.active = 0
        self.active_lock = threading.Lock()

    def process_request(self, request, client_address):
        with self.active_lock:
            full = self.active >= self.max_connections
            if not full:
                self.active += 1
        if full:
            body = (f"Code: 202. DB::Exception: Too many simultaneous connections to the embedded "
                    f"engine (more than {self.max_connections}, --max-connections). "
                    "(TOO_MANY_SIMULTANEOUS_QUERIES)\n").encode()
            try:
                request.settimeout(1)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nX-ClickHouse-Exception-Code: 202"
                                b"\r\nContent-Type: text/plain; charset=UTF-8\r\nConnection: close"
                                b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.active_lock:
                self.active -= 1

    def handle_error(self, request, client_address):
        # A client that goes away mid-request (a cancelled query, a closed keep-alive
        # connection) is routine, not a traceback on stderr.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def parse_multipart(content_type, body):
    message = BytesParser(policy=HTTP_POLICY).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise ClickHouseError(27, "Malformed multipart/form-data body", 400)
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is None:
            continue
        fields[name] = part.get_payload(decode=True).decode("utf-8")
    return fields


def quote_identifier(name):
    if IDENTIFIER.match(name):
        return name
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_literal(value):
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def say(message):
    """Logs a line to stdout; never fails (the reader may have died with the parent)."""
    try:
        print(message, flush=True)
    except (OSError, ValueError):
        pass


def main():
    global VERSION
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--path", required=True, help="data directory of the embedded engine")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (loopback)")
    parser.add_argument("--port", type=int, default=8123, help="listen port; 0 picks a free one")
    parser.add_argument("--port-file", help="write the bound port here once listening")
    parser.add_argument("--secret-file", required=True,
                        help="file holding the secret every query must carry (the password of "
                             "user default); the supervisor writes it, mode 0600")
    parser.add_argument("--access-dir",
                        help="where the engine's access config and staged inserts live "
                             "(default: <path>.access, mode 0700)")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.add_argument("--idle-timeout", type=float, default=300,
                        help="seconds a connection may send nothing before it is closed")
    parser.add_argument("--max-connections", type=int, default=256,
                        help="connections served at once; more get 503 at once")
    parser.add_argument("--remove-on-exit", metavar="DIR",
                        help="delete DIR (e.g. a test's temporary data directory) after stopping")
    parser.add_argument("--buffer-results", action="store_true",
                        help="compute SELECT results with chDB's buffered API instead of streaming")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="shut down when the parent process dies (even by kill -9), so an "
                             "orphan never keeps the data directory or the port")
    args = parser.parse_args()

    global STREAM_RESULTS
    STREAM_RESULTS = not args.buffer_results
    # The server changes directory below: every path given becomes absolute first.
    for name in ("path", "port_file", "secret_file", "access_dir", "remove_on_exit"):
        if getattr(args, name):
            setattr(args, name, os.path.abspath(getattr(args, name)))
    with open(args.secret_file, "rb") as f:
        secret = f.read().strip()
    if len(secret) < 16:
        sys.exit(f"chdb-server: the secret in {args.secret_file} is too short (16 bytes at least)")
    os.makedirs(args.path, exist_ok=True)
    access_dir = args.access_dir or args.path.rstrip("/") + ".access"
    config, staging = write_access_config(access_dir)
    # clickhouse-local also reads a config.xml from the working directory: be where ours is.
    os.chdir(access_dir)
    engine = Engine(args.path, config)
    first = engine.first
    VERSION = first.query("SELECT version()", "TabSeparated").bytes().decode().strip()
    learn_engine(first)
    Handler.engine = engine
    Handler.staging = staging
    Handler.secret = secret
    Handler.quiet = not args.verbose

    Handler.timeout = args.idle_timeout
    Server.max_connections = args.max_connections
    server = Server((args.host, args.port), Handler)
    port = server.server_address[1]
    # A name an attacker's page can make a browser send (DNS rebinding) is never one of these.
    Handler.allowed_hosts = {f"{args.host}:{port}", f"localhost:{port}", args.host, "localhost"}
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.replace(tmp, args.port_file)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.exit_with_parent:
        parent = os.getppid()

        def watch_parent():
            while os.getppid() == parent:
                time.sleep(0.5)
            # Stop first: the parent's end of our stdout may be gone, so logging can fail.
            threading.Thread(target=server.shutdown, daemon=True).start()
            say("chdb-server: parent exited; stopping")

        threading.Thread(target=watch_parent, daemon=True).start()
    say(f"chdb-server: ClickHouse {VERSION} (chDB) on http://{args.host}:{port}, data in {args.path}")
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    # Close every connection (chDB finishes its writes), then leave without the interpreter's
    # finalizers: chDB's global shutdown at interpreter exit has been seen to hang, which would
    # leave an orphan holding the data directory.
    closer = threading.Thread(target=engine.close, daemon=True)
    closer.start()
    closer.join(timeout=10)
    say("chdb-server: stopped")
    if args.remove_on_exit:
        import shutil
        shutil.rmtree(args.remove_on_exit, ignore_errors=True)
    os._exit(0)


if __name__ == "__main__":
    main()
