//! A validated OTLP request → `otel_traces` rows in ClickHouse's RowBinary format, written
//! straight into a byte buffer. The receiver does this once; the spool stores the bytes and the
//! sink sends them as the body of [`INSERT_SQL`] unchanged, so a span is converted exactly once.
//!
//! The stored values are those of [`crate::convert::to_rows`] (the readable reference, which
//! the tests compare this with byte for byte); this path only avoids its owned `String`s.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use orrery_store::span::{kind, status};

use crate::convert::value_to_string;

/// The insert the encoded rows belong to. Columns are named so a later migration that adds a
/// column with a default does not break the positional format.
pub const INSERT_SQL: &str = "INSERT INTO otel_traces (Timestamp, TraceId, SpanId, \
    ParentSpanId, TraceState, SpanName, SpanKind, ServiceName, ResourceAttributes, ScopeName, \
    ScopeVersion, SpanAttributes, Duration, StatusCode, StatusMessage, `Events.Timestamp`, \
    `Events.Name`, `Events.Attributes`, `Links.TraceId`, `Links.SpanId`, `Links.TraceState`, \
    `Links.Attributes`) FORMAT RowBinary";

/// A spool record: `[spans u32 LE][rows]`, ready to be sent as is.
pub fn record(req: &ExportTraceServiceRequest) -> (Vec<u8>, usize) {
    // ~1 KiB a span leaves room for typical spans without regrowing.
    let mut out = Vec::with_capacity(4 + 1024 * span_count(req));
    out.extend_from_slice(&[0; 4]);
    let spans = encode(req, &mut out);
    out[..4].copy_from_slice(&(spans as u32).to_le_bytes());
    (out, spans)
}

/// The span count and the rows of a spool record; `None` if it is too short to be one.
pub fn split_record(record: &bytes::Bytes) -> Option<(usize, bytes::Bytes)> {
    let count = u32::from_le_bytes(record.get(..4)?.try_into().ok()?);
    Some((count as usize, record.slice(4..)))
}

fn span_count(req: &ExportTraceServiceRequest) -> usize {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

/// Appends the rows of every span of a sanitized request to `out`; returns the span count.
pub fn encode(req: &ExportTraceServiceRequest, out: &mut Vec<u8>) -> usize {
    let mut spans = 0;
    // Per resource: ServiceName and ResourceAttributes are the same bytes for each of its spans.
    let mut resource = Vec::new();
    let mut scope = Vec::new();
    for rs in &req.resource_spans {
        resource.clear();
        let attrs = rs
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let service = attrs.iter().find(|kv| kv.key == "service.name");
        match service.and_then(|kv| kv.value.as_ref()) {
            Some(v) => put_value(&mut resource, v),
            None => put_str(&mut resource, ""),
        }
        put_map(&mut resource, attrs);
        for ss in &rs.scope_spans {
            scope.clear();
            let (name, version) = ss
                .scope
                .as_ref()
                .map(|s| (s.name.as_str(), s.version.as_str()))
                .unwrap_or_default();
            put_str(&mut scope, name);
            put_str(&mut scope, version);
            for span in &ss.spans {
                let start = span.start_time_unix_nano;
                out.extend_from_slice(&(start as i64).to_le_bytes());
                put_hex(out, &span.trace_id);
                put_hex(out, &span.span_id);
                put_hex(out, &span.parent_span_id);
                put_str(out, &span.trace_state);
                put_str(out, &span.name);
                put_str(out, kind::from_otlp(span.kind));
                out.extend_from_slice(&resource);
                out.extend_from_slice(&scope);
                put_map(out, &span.attributes);
                let duration = span.end_time_unix_nano.saturating_sub(start);
                out.extend_from_slice(&duration.to_le_bytes());
                let (code, message) = span
                    .status
                    .as_ref()
                    .map(|s| (s.code, s.message.as_str()))
                    .unwrap_or_default();
                put_str(out, status::from_otlp(code));
                put_str(out, message);

                put_len(out, span.events.len());
                for e in &span.events {
                    out.extend_from_slice(&(e.time_unix_nano as i64).to_le_bytes());
                }
                put_len(out, span.events.len());
                for e in &span.events {
                    put_str(out, &e.name);
                }
                put_len(out, span.events.len());
                for e in &span.events {
                    put_map(out, &e.attributes);
                }

                put_len(out, span.links.len());
                for l in &span.links {
                    put_hex(out, &l.trace_id);
                }
                put_len(out, span.links.len());
                for l in &span.links {
                    put_hex(out, &l.span_id);
                }
                put_len(out, span.links.len());
                for l in &span.links {
                    put_str(out, &l.trace_state);
                }
                put_len(out, span.links.len());
                for l in &span.links {
                    put_map(out, &l.attributes);
                }
                spans += 1;
            }
        }
    }
    spans
}

/// LEB128, RowBinary's length prefix.
#[inline(always)]
pub(crate) fn put_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[inline]
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// An id as lowercase hex (empty stays empty).
pub(crate) fn put_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    put_len(out, bytes.len() * 2);
    let start = out.len();
    out.resize(start + bytes.len() * 2, 0);
    for (pair, b) in out[start..].chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[(b >> 4) as usize];
        pair[1] = DIGITS[(b & 15) as usize];
    }
}

fn put_map(out: &mut Vec<u8>, attrs: &[KeyValue]) {
    put_len(out, attrs.len());
    for kv in attrs {
        put_str(out, &kv.key);
        match &kv.value {
            Some(v) => put_value(out, v),
            None => put_str(out, ""),
        }
    }
}

/// The stored string of a value: the common kinds formatted here, the rest (doubles, bytes,
/// arrays, maps) through [`value_to_string`]'s JSON forms.
pub(crate) fn put_value(out: &mut Vec<u8>, v: &AnyValue) {
    match &v.value {
        Some(Value::StringValue(s)) => put_str(out, s),
        None => put_str(out, ""),
        Some(Value::BoolValue(b)) => put_str(out, if *b { "true" } else { "false" }),
        Some(Value::IntValue(i)) => put_str(out, itoa::Buffer::new().format(*i)),
        Some(_) => put_str(out, &value_to_string(v)),
    }
}

/// Where one row sits in a block of RowBinary rows of [`INSERT_SQL`], with the fields the
/// spool tools show (start time, service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowInfo {
    pub range: std::ops::Range<usize>,
    /// `Timestamp`, ns since the Unix epoch.
    pub timestamp: i64,
    pub service: String,
}

/// Splits RowBinary rows of [`INSERT_SQL`] into rows (to bisect a batch that ClickHouse
/// refuses, and to inspect dead letters). `None` if the bytes are not such rows.
pub fn rows(data: &[u8]) -> Option<Vec<RowInfo>> {
    let mut r = Reader { data, pos: 0 };
    let mut out = Vec::new();
    while r.pos < data.len() {
        let start = r.pos;
        let timestamp = i64::from_le_bytes(r.take(8)?.try_into().ok()?);
        for _ in 0..6 {
            r.string()?; // TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind
        }
        let service = String::from_utf8_lossy(r.string()?).into_owned();
        r.map()?; // ResourceAttributes
        r.string()?; // ScopeName
        r.string()?; // ScopeVersion
        r.map()?; // SpanAttributes
        r.take(8)?; // Duration
        r.string()?; // StatusCode
        r.string()?; // StatusMessage
        let n = r.len()?;
        r.take(n.checked_mul(8)?)?; // Events.Timestamp
        r.array(|r| r.string().map(drop))?; // Events.Name
        r.array(|r| r.map())?; // Events.Attributes
        r.array(|r| r.string().map(drop))?; // Links.TraceId
        r.array(|r| r.string().map(drop))?; // Links.SpanId
        r.array(|r| r.string().map(drop))?; // Links.TraceState
        r.array(|r| r.map())?; // Links.Attributes
        out.push(RowInfo {
            range: start..r.pos,
            timestamp,
            service,
        });
    }
    Some(out)
}

/// The `TraceId` and `SpanId` of one row (as [`rows`] split them).
pub fn row_ids(row: &[u8]) -> Option<(String, String)> {
    let mut r = Reader { data: row, pos: 8 };
    let trace = String::from_utf8(r.string()?.to_vec()).ok()?;
    let span = String::from_utf8(r.string()?.to_vec()).ok()?;
    Some((trace, span))
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn len(&mut self) -> Option<usize> {
        let mut n = 0usize;
        for i in 0..10 {
            let b = *self.take(1)?.first()?;
            n |= usize::from(b & 0x7f).checked_shl(7 * i)?;
            if b < 0x80 {
                return Some(n);
            }
        }
        None
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }

    fn map(&mut self) -> Option<()> {
        let n = self.len()?;
        for _ in 0..n {
            self.string()?;
            self.string()?;
        }
        Some(())
    }

    fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        let n = self.len()?;
        for _ in 0..n {
            item(self)?;
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_split_where_they_were_encoded() {
        let mut req = crate::synth::request(3, 7, 1_700_000_000_000_000_000);
        // Events and links on one span, so every column kind is walked.
        let span = &mut req.resource_spans[0].scope_spans[0].spans[0];
        span.events.push(Default::default());
        span.links
            .push(opentelemetry_proto::tonic::trace::v1::span::Link {
                trace_id: vec![1; 16],
                span_id: vec![2; 8],
                ..Default::default()
            });
        let (record, n) = record(&req);
        let split = rows(&record[4..]).expect("rows");
        assert_eq!(split.len(), n);
        assert_eq!(split.last().unwrap().range.end, record.len() - 4);
        assert!(
            split
                .iter()
                .all(|r| r.timestamp >= 1_700_000_000_000_000_000)
        );
        assert!(split.iter().all(|r| !r.service.is_empty()));
        assert_eq!(rows(&record[4..record.len() - 1]), None);
    }

    #[test]
    fn lengths_are_leb128() {
        let mut out = Vec::new();
        put_len(&mut out, 0);
        put_len(&mut out, 127);
        put_len(&mut out, 128);
        put_len(&mut out, 300);
        assert_eq!(out, vec![0, 127, 0x80, 1, 0xac, 2]);
    }

    #[test]
    fn ids_are_lowercase_hex_with_their_length() {
        let mut out = Vec::new();
        put_hex(&mut out, &[0xab, 0x01]);
        put_hex(&mut out, &[]);
        assert_eq!(out, b"\x04ab01\x00");
    }
}
