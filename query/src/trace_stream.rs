//! The trace-by-id answer written out progressively.
//!
//! A 50,000-span trace is 18 MB of JSON. Serialised whole, the client waited for the last
//! span's bytes before it got the first; the page draws its first rows from the first 64 KB
//! (web/src/trace_prefix.rs), so the head (the trace's figures) and the first spans are sent as
//! soon as the tree is built, and the rest follows chunk by chunk, each serialised only when
//! the client has taken the previous one (a body stream is polled on demand: a client that goes
//! away drops it, and no further span is serialised).
//!
//! The trace page's answer is read in pieces too (`traces::trace_pieces`): the head and the
//! first [`FIRST_ROWS`] spans are ready when the body starts, the other spans' full rows are
//! read only when the body gets to them ([`pieces_chunks`]).
//!
//! The bytes are exactly `serde_json::to_vec(&trace)` (the field order of `model::Trace`,
//! compact): `streams_the_same_bytes_as_one_serialisation` checks it.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use futures::stream;

use futures::StreamExt;
use futures::future::BoxFuture;

use crate::model::{Span, Trace};
use crate::traces::Pieces;

/// Spans in the first chunk: the head and these go out at once (about 20 KB for the usual
/// span), enough for the page's first screen of rows.
pub const FIRST_CHUNK_SPANS: usize = 64;
/// Spans per later chunk (about 100 KB): large enough that per-chunk overhead is negligible,
/// small enough that the socket, not a big buffer, paces the serialisation.
pub const CHUNK_SPANS: usize = 256;

/// The answer's chunks, serialised lazily, in order.
pub fn chunks(trace: Trace) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send {
    stream_of(trace, None).map(|c| Ok(c.expect("no rest to read")))
}

/// The answer as an HTTP body.
pub fn body(trace: Trace) -> Body {
    Body::from_stream(chunks(trace))
}

/// Spans the trace page draws from the head (its first screen and more): the piecewise read
/// (`traces::trace_pieces`) reads these in full before the first byte; they make more than
/// the page's first 64 KB (web/src/trace_load.rs), so its first rows never wait for the rest.
pub const FIRST_ROWS: usize = 400;

/// A trace read in pieces as chunks: the head and `first`'s spans at once, then the rest's,
/// read when the body gets there. Same bytes as [`chunks`] of the whole trace; if reading the
/// rest fails, the stream ends with the error (the client sees a cut answer, not bad JSON).
pub fn pieces_chunks(
    p: Pieces,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    stream_of(p.first, Some(p.rest))
}

fn stream_of(
    first: Trace,
    rest: Option<BoxFuture<'static, anyhow::Result<Vec<Span>>>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let Trace {
        trace_id,
        start_us,
        duration_us,
        span_count,
        error_count,
        services,
        spans,
        truncated,
    } = first;
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"{\"trace_id\":");
    serde_json::to_writer(&mut head, &trace_id).expect("a string serialises");
    head.extend_from_slice(
        format!(
            ",\"start_us\":{start_us},\"duration_us\":{duration_us},\
             \"span_count\":{span_count},\"error_count\":{error_count},\"services\":"
        )
        .as_bytes(),
    );
    serde_json::to_writer(&mut head, &services).expect("strings serialise");
    head.extend_from_slice(b",\"spans\":[");
    let state = State {
        head: Some(head),
        spans: spans.into_iter(),
        rest,
        first: true,
        tail: Some(format!("],\"truncated\":{truncated}}}")),
    };
    stream::unfold(state, |mut s| async move {
        match s.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(Bytes::from(chunk)), s)),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "trace answer cut: reading the rest of the trace failed");
                // Nothing more after the error.
                s.tail = None;
                s.rest = None;
                s.spans = Vec::new().into_iter();
                Some((Err(std::io::Error::other(format!("{e:#}"))), s))
            }
        }
    })
}

/// A trace read in pieces as an HTTP body.
pub fn pieces_body(p: Pieces) -> Body {
    Body::from_stream(pieces_chunks(p))
}

struct State {
    head: Option<Vec<u8>>,
    spans: std::vec::IntoIter<Span>,
    /// The spans after `spans`, not read yet.
    rest: Option<BoxFuture<'static, anyhow::Result<Vec<Span>>>>,
    /// No span written yet (no comma before the next).
    first: bool,
    tail: Option<String>,
}

impl State {
    /// The next chunk: the head with the first spans, then groups of spans, then the tail;
    /// `None` at the end. Spans ready are sent before the rest is awaited.
    async fn next_chunk(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        let (mut out, n) = match self.head.take() {
            Some(head) => (head, FIRST_CHUNK_SPANS),
            None => (Vec::new(), CHUNK_SPANS),
        };
        let mut written = 0;
        loop {
            for span in self.spans.by_ref().take(n - written) {
                if !std::mem::replace(&mut self.first, false) {
                    out.push(b',');
                }
                serde_json::to_writer(&mut out, &span).expect("a span serialises");
                written += 1;
            }
            // Full, or something ready to send (the head, spans): send it before the rest is
            // awaited; else read the rest, if any.
            if self.spans.len() > 0 || written == n || !out.is_empty() {
                break;
            }
            match self.rest.take() {
                Some(rest) => self.spans = rest.await?.into_iter(),
                None => break,
            }
        }
        if self.spans.len() == 0
            && self.rest.is_none()
            && let Some(tail) = self.tail.take()
        {
            out.extend_from_slice(tail.as_bytes());
        }
        Ok(if out.is_empty() { None } else { Some(out) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn span(i: usize) -> Span {
        Span {
            span_id: format!("{i:016x}"),
            name: format!("op \"{i}\" ✓"),
            service: "svc".into(),
            depth: (i % 7) as u32,
            start_us: i as i64,
            ..Default::default()
        }
    }

    async fn streamed(t: Trace) -> (Vec<u8>, usize) {
        let parts: Vec<Bytes> = chunks(t).map(|c| c.unwrap()).collect().await;
        (parts.concat(), parts.len())
    }

    #[tokio::test]
    async fn streams_the_same_bytes_as_one_serialisation() {
        for n in [
            0,
            1,
            FIRST_CHUNK_SPANS,
            FIRST_CHUNK_SPANS + 1,
            FIRST_CHUNK_SPANS + CHUNK_SPANS,
            1000,
        ] {
            for truncated in [false, true] {
                let t = Trace {
                    trace_id: "ab\"c".into(),
                    start_us: -5,
                    duration_us: 12,
                    span_count: n as u64,
                    error_count: 3,
                    services: vec!["a".into(), "b\\".into()],
                    spans: (0..n).map(span).collect(),
                    truncated,
                };
                let whole = serde_json::to_vec(&t).unwrap();
                let (bytes, count) = streamed(t).await;
                assert_eq!(
                    String::from_utf8(bytes).unwrap(),
                    String::from_utf8(whole).unwrap(),
                    "{n} spans"
                );
                let expect = 1 + n.saturating_sub(FIRST_CHUNK_SPANS).div_ceil(CHUNK_SPANS);
                assert_eq!(count, expect, "{n} spans: chunks");
            }
        }
    }

    #[tokio::test]
    async fn the_first_chunk_is_the_head_and_the_first_spans_only() {
        let t = Trace {
            spans: (0..50_000).map(span).collect(),
            span_count: 50_000,
            ..Default::default()
        };
        let mut s = Box::pin(chunks(t));
        let first = s.next().await.unwrap().unwrap();
        assert!(first.len() < 64 * 1024, "{}", first.len());
        let text = std::str::from_utf8(&first).unwrap();
        assert!(
            text.starts_with("{\"trace_id\":\"\",\"start_us\":0,"),
            "{text}"
        );
        assert_eq!(text.matches("\"span_id\":").count(), FIRST_CHUNK_SPANS);
        assert!(!text.contains("truncated"));
    }

    /// A client that reads the head and goes away: the server drops the body stream, so the
    /// rest of a 50,000-span trace is never serialised.
    #[tokio::test]
    async fn a_client_that_disconnects_stops_the_serialisation() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        struct Dropped(Arc<AtomicBool>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let t = Trace {
            spans: (0..50_000).map(span).collect(),
            span_count: 50_000,
            ..Default::default()
        };
        let (polled, dropped) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (p, guard) = (polled.clone(), Dropped(dropped.clone()));
        let stream = chunks(t).map(move |c| {
            let _ = &guard;
            p.fetch_add(1, Ordering::SeqCst);
            c
        });
        let body = Arc::new(std::sync::Mutex::new(Some(Body::from_stream(stream))));
        let app = axum::Router::new().route(
            "/t",
            axum::routing::get(move || {
                let b = body.lock().unwrap().take().unwrap();
                async move { b }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /t HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 16 * 1024];
        let n = c.read(&mut buf).await.unwrap();
        assert!(n > 0);
        drop(c);
        let total = 1 + (50_000 - FIRST_CHUNK_SPANS).div_ceil(CHUNK_SPANS);
        for _ in 0..100 {
            if dropped.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(
            dropped.load(Ordering::SeqCst),
            "the body stream outlived its client"
        );
        let done = polled.load(Ordering::SeqCst);
        assert!(
            done < total / 2,
            "{done} of {total} chunks serialised for a gone client"
        );
    }
}
