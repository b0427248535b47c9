//! An incremental `text/event-stream` parser (the WHATWG "server-sent events" format) for the
//! live graph stream. The browser's `EventSource` cannot send an `Authorization` header, so the
//! UI reads the stream with `fetch()` and feeds the body's chunks here (see `stream.rs`).
//!
//! Chunks may split anywhere — inside a line, between `\r` and `\n`, inside a UTF-8 sequence —
//! so the parser works on bytes and decodes a line only once it is complete. Bounded: a line or
//! an event's data longer than `max_event` bytes is an error (the caller drops the connection
//! and reconnects) instead of growing without limit.

/// One dispatched event: its `event:` type (`"message"` when absent) and its `data:` lines
/// joined with `\n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
    pub id: Option<String>,
}

#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous chunk ended with `\r`: a `\n` starting the next chunk belongs to it.
    after_cr: bool,
    started: bool,
    event: String,
    data: String,
    has_data: bool,
    id: Option<String>,
    /// The server's `retry:` (ms), for the reconnect delay.
    pub retry_ms: Option<u32>,
    max_event: usize,
}

/// The largest event accepted by default: a graph of thousands of nodes is a few MB of JSON.
pub const MAX_EVENT_BYTES: usize = 64 << 20;

impl SseParser {
    pub fn new(max_event: usize) -> Self {
        Self {
            line: Vec::new(),
            after_cr: false,
            started: false,
            event: String::new(),
            data: String::new(),
            has_data: false,
            id: None,
            retry_ms: None,
            max_event,
        }
    }

    /// Feeds a chunk of the body; returns the events it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, String> {
        if chunk.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut rest = chunk;
        if self.after_cr && rest.first() == Some(&b'\n') {
            rest = &rest[1..];
        }
        self.after_cr = false;
        while let Some(i) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..i]);
            self.check_size()?;
            let line = std::mem::take(&mut self.line);
            self.on_line(&line, &mut out)?;
            if rest[i] == b'\r' {
                if rest.get(i + 1) == Some(&b'\n') {
                    rest = &rest[i + 2..];
                } else {
                    self.after_cr = i + 1 == rest.len();
                    rest = &rest[i + 1..];
                }
            } else {
                rest = &rest[i + 1..];
            }
        }
        self.line.extend_from_slice(rest);
        self.check_size()?;
        Ok(out)
    }

    fn check_size(&self) -> Result<(), String> {
        if self.line.len() + self.data.len() > self.max_event {
            return Err(format!(
                "event stream: an event of more than {} bytes",
                self.max_event
            ));
        }
        Ok(())
    }

    fn on_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), String> {
        let mut line = line;
        // A byte-order mark may start the stream; it is not part of the first field.
        if !self.started {
            self.started = true;
            if let Some(l) = line.strip_prefix(b"\xEF\xBB\xBF".as_slice()) {
                line = l;
            }
        }
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent {
                    event: if self.event.is_empty() {
                        "message".into()
                    } else {
                        std::mem::take(&mut self.event)
                    },
                    data: std::mem::take(&mut self.data),
                    id: self.id.clone(),
                });
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(()); // comment (the server's keep-alive)
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
                self.check_size()?;
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            "retry" => {
                if let Ok(ms) = value.parse::<u32>() {
                    self.retry_ms = Some(ms);
                }
            }
            _ => {} // unknown fields are ignored, as the format requires
        }
        Ok(())
    }
}

/// Reconnect delay after `failures` consecutive failed attempts: 1 s doubling to 30 s, then a
/// jitter of up to a quarter (`jitter` in [0, 1)) so that many tabs do not reconnect in step
/// after a restart of the query service.
pub fn backoff_ms(failures: u32, jitter: f64) -> u32 {
    let base = 1000u32.saturating_mul(1 << failures.min(5)).min(30_000);
    base + (f64::from(base) * 0.25 * jitter.clamp(0.0, 1.0)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = ": keep-alive\n\nevent: graph\nid: 17\ndata: {\"a\":1,\n\
                          data: \"b\":\"é\"}\n\nevent: error\r\ndata: boom\r\n\r\ndata: plain\r\r";

    fn all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new(MAX_EVENT_BYTES);
        chunks.iter().flat_map(|c| p.push(c).unwrap()).collect()
    }

    fn expected() -> Vec<SseEvent> {
        vec![
            SseEvent {
                event: "graph".into(),
                data: "{\"a\":1,\n\"b\":\"é\"}".into(),
                id: Some("17".into()),
            },
            SseEvent {
                event: "error".into(),
                data: "boom".into(),
                id: Some("17".into()),
            },
            SseEvent {
                event: "message".into(),
                data: "plain".into(),
                id: Some("17".into()),
            },
        ]
    }

    #[test]
    fn parses_events_comments_and_every_line_ending() {
        assert_eq!(all(&[STREAM.as_bytes()]), expected());
    }

    #[test]
    fn a_chunk_boundary_anywhere_gives_the_same_events() {
        // Every split point, including inside "\r\n" and inside the two bytes of "é".
        let b = STREAM.as_bytes();
        for i in 0..=b.len() {
            assert_eq!(all(&[&b[..i], &b[i..]]), expected(), "split at {i}");
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = b.chunks(1).collect();
        assert_eq!(all(&bytes), expected());
    }

    #[test]
    fn an_unfinished_event_is_not_dispatched() {
        assert_eq!(all(&[b"event: graph\ndata: {\"half\""]), vec![]);
        // Data-less events (an `event:` line alone) dispatch nothing either.
        assert_eq!(all(&[b"event: graph\n\n"]), vec![]);
    }

    #[test]
    fn a_bom_and_unknown_fields_are_ignored_and_retry_is_kept() {
        let mut p = SseParser::new(MAX_EVENT_BYTES);
        let ev = p
            .push(b"\xEF\xBB\xBFretry: 2500\nfoo: bar\nnovalue\ndata:x\n\n")
            .unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].data, "x");
        assert_eq!(p.retry_ms, Some(2500));
    }

    #[test]
    fn an_event_over_the_limit_is_an_error_not_unbounded_memory() {
        let mut p = SseParser::new(1000);
        // A line that never ends.
        let e = p.push(&[b'a'; 600]).and_then(|_| p.push(&[b'a'; 600]));
        assert!(e.unwrap_err().contains("more than 1000 bytes"));
        // Many short data lines adding up.
        let mut p = SseParser::new(1000);
        let mut r = Ok(vec![]);
        for _ in 0..200 {
            r = p.push(b"data: 0123456789\n");
            if r.is_err() {
                break;
            }
        }
        assert!(r.is_err());
    }

    #[test]
    fn backoff_doubles_to_a_cap_with_bounded_jitter() {
        assert_eq!(backoff_ms(0, 0.0), 1000);
        assert_eq!(backoff_ms(1, 0.0), 2000);
        assert_eq!(backoff_ms(4, 0.0), 16_000);
        assert_eq!(backoff_ms(5, 0.0), 30_000);
        assert_eq!(backoff_ms(u32::MAX, 0.0), 30_000);
        assert_eq!(backoff_ms(u32::MAX, 0.999_999), 37_499);
        assert_eq!(backoff_ms(0, 5.0), 1250);
    }
}
