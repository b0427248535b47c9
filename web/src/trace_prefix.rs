//! The first rows of a trace from the first bytes of the API's answer, browser-free.
//!
//! `GET /orrery/api/traces/{id}` writes the trace's figures (start, duration, span and error
//! counts, services) before its spans, and the spans depth-first with children by start — the
//! waterfall's own row order. So the first few tens of kilobytes of an 18 MB answer already
//! hold the header and the first screen of rows, at their final positions: the trace page
//! draws them while the rest downloads (then replaces them with the whole trace).

use crate::waterfall::SpanRow;
use serde::Deserialize;

/// The trace's figures, written before its spans.
#[derive(Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(default)]
pub struct Head {
    pub trace_id: String,
    pub start_us: i64,
    pub duration_us: i64,
    pub span_count: u64,
    pub error_count: u64,
    pub services: Vec<String>,
}

/// The head and the complete span objects (at most `max_rows`) in `buf`, a prefix of the
/// answer; `None` while the head is not complete. A span cut by the end of `buf` is left out.
pub fn parse_prefix(buf: &[u8], max_rows: usize) -> Option<(Head, Vec<SpanRow>)> {
    const KEY: &[u8] = b"\"spans\":[";
    // A `"` inside a JSON string is escaped, so these bytes only occur as the key itself.
    let at = buf.windows(KEY.len()).position(|w| w == KEY)?;
    let mut head_json = buf[..at].to_vec();
    head_json.extend_from_slice(b"\"spans\":[]}");
    let head: Head = serde_json::from_slice(&head_json).ok()?;
    let mut rows = Vec::new();
    let mut pos = at + KEY.len();
    while rows.len() < max_rows {
        let mut it = serde_json::Deserializer::from_slice(&buf[pos..]).into_iter::<SpanRow>();
        match it.next() {
            Some(Ok(row)) => {
                rows.push(row);
                pos += it.byte_offset();
            }
            _ => break,
        }
        while pos < buf.len() && buf[pos].is_ascii_whitespace() {
            pos += 1;
        }
        match buf.get(pos) {
            Some(b',') => pos += 1,
            _ => break,
        }
    }
    Some((head, rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Trace;

    fn answer() -> (Trace, Vec<u8>) {
        let mut t = crate::waterfall::synthetic_trace(300, 7);
        t.start_us = 1_000;
        t.duration_us = 10_000_000;
        t.services = (0..7).map(|i| format!("svc-{i}")).collect();
        t.spans[3]
            .attributes
            .insert("k".into(), "a \"spans\":[ b".into());
        let body = serde_json::to_vec(&t).unwrap();
        (t, body)
    }

    #[test]
    fn every_cut_gives_the_head_and_the_complete_spans_before_it() {
        let (t, body) = answer();
        let at = body.windows(9).position(|w| w == b"\"spans\":[").unwrap();
        assert!(
            parse_prefix(&body[..at], 100).is_none(),
            "head not complete"
        );
        let mut last = 0;
        for cut in (at + 9..body.len()).step_by(97).chain([body.len()]) {
            let (head, rows) = parse_prefix(&body[..cut], usize::MAX).unwrap();
            assert_eq!(head.duration_us, 10_000_000);
            assert_eq!(head.span_count, 300);
            assert_eq!(head.services.len(), 7);
            assert!(rows.len() >= last, "grows with the prefix");
            last = rows.len();
            for (r, s) in rows.iter().zip(&t.spans) {
                assert_eq!(r, &SpanRow::from(s));
            }
        }
        assert_eq!(last, 300, "the whole answer has every span");
        // A cap on the rows; an attribute value that looks like the key does not confuse it.
        let (_, rows) = parse_prefix(&body, 10).unwrap();
        assert_eq!(rows.len(), 10);
        assert!(parse_prefix(b"not json", 5).is_none());
        assert!(parse_prefix(b"{\"spans\":[", 5).is_some_and(|(_, r)| r.is_empty()));
    }

    #[test]
    fn the_first_rows_are_the_first_spans_of_the_answer() {
        let (t, body) = answer();
        let (_, rows) = parse_prefix(&body[..body.len() / 3], 50).unwrap();
        let ids: Vec<&str> = rows.iter().map(|r| r.span_id.as_str()).collect();
        let want: Vec<&str> = t.spans[..50].iter().map(|s| s.span_id.as_str()).collect();
        assert_eq!(ids, want);
    }
}
