//! The trace-by-id answer written out progressively.
//!
//! A 50,000-span trace is 18 MB of JSON. Serialised whole, the client waited for the last
//! span's bytes before it got the first; the page draws its first rows from the first 64 KB
//! (web/src/trace_prefix.rs), so the head (the trace's figures) and the first spans are sent as
//! soon as the tree is built, and the rest follows chunk by chunk, each serialised only when
//! the client has taken the previous one (a body stream is polled on demand: a client that goes
//! away drops it, and no further span is serialised).
//!
//! The bytes are exactly `serde_json::to_vec(&trace)` (the field order of `model::Trace`,
//! compact): `streams_the_same_bytes_as_one_serialisation` checks it.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use futures::stream;

use crate::model::{Span, Trace};

/// Spans in the first chunk: the head and these go out at once (about 20 KB for the usual
/// span), enough for the page's first screen of rows.
pub const FIRST_CHUNK_SPANS: usize = 64;
/// Spans per later chunk (about 100 KB): large enough that per-chunk overhead is negligible,
/// small enough that the socket, not a big buffer, paces the serialisation.
pub const CHUNK_SPANS: usize = 256;

/// The answer's chunks, serialised lazily, in order.
pub fn chunks(trace: Trace) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send {
    let Trace {
        trace_id,
        start_us,
        duration_us,
        span_count,
        error_count,
        services,
        spans,
        truncated,
    } = trace;
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
        first: true,
        tail: Some(format!("],\"truncated\":{truncated}}}")),
    };
    stream::unfold(state, |mut s| async move {
        let chunk = s.next_chunk()?;
        Some((Ok(Bytes::from(chunk)), s))
    })
}

/// The answer as an HTTP body.
pub fn body(trace: Trace) -> Body {
    Body::from_stream(chunks(trace))
}

struct State {
    head: Option<Vec<u8>>,
    spans: std::vec::IntoIter<Span>,
    /// No span written yet (no comma before the next).
    first: bool,
    tail: Option<String>,
}

impl State {
    /// The next chunk: the head with the first spans, then groups of spans, then the tail;
    /// `None` at the end.
    fn next_chunk(&mut self) -> Option<Vec<u8>> {
        let (mut out, n) = match self.head.take() {
            Some(head) => (head, FIRST_CHUNK_SPANS),
            None => (Vec::new(), CHUNK_SPANS),
        };
        for span in self.spans.by_ref().take(n) {
            if !std::mem::replace(&mut self.first, false) {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, &span).expect("a span serialises");
        }
        if self.spans.len() == 0
            && let Some(tail) = self.tail.take()
        {
            out.extend_from_slice(tail.as_bytes());
        }
        if out.is_empty() { None } else { Some(out) }
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
