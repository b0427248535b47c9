//! Spool records of RowBinary rows, and reading them back: the general path's encoding of a
//! decoded (prost) request into rows through the one row writer ([`crate::row`]), and the
//! row splitter the sink's bisection and the dead-letter tools use.
//!
//! The receiver writes each request's rows once (usually on the fast path,
//! [`crate::transcode`]); the spool stores the bytes and the sink sends them as the body of
//! [`crate::row::insert_sql`] unchanged.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;

use crate::row::{self, ColumnType, SpanValues};

/// A spool record: `[spans u32 LE][rows]`, ready to be sent as is. Attribute values longer
/// than `max_attribute_len` bytes are cut.
pub fn record(req: &ExportTraceServiceRequest, max_attribute_len: usize) -> (Vec<u8>, usize) {
    // ~1 KiB a span leaves room for typical spans without regrowing.
    let mut out = Vec::with_capacity(4 + 1024 * span_count(req));
    out.extend_from_slice(&[0; 4]);
    let spans = encode(req, max_attribute_len, &mut out);
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

/// Appends the rows of every span of a validated request ([`crate::convert::sanitize`]) to
/// `out`; returns the span count.
pub fn encode(
    req: &ExportTraceServiceRequest,
    max_attribute_len: usize,
    out: &mut Vec<u8>,
) -> usize {
    let max = max_attribute_len;
    let mut spans = 0;
    // Per resource: ServiceName and ResourceAttributes are the same bytes for each of its spans.
    let mut resource = Vec::new();
    let mut entries = Vec::new();
    let mut scope = Vec::new();
    for rs in &req.resource_spans {
        resource.clear();
        entries.clear();
        let attrs = rs
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let mut service = None;
        for kv in attrs {
            let value = row::put_entry(
                &mut entries,
                &kv.key,
                row::AttrValue::of(kv.value.as_ref()),
                max,
            );
            if service.is_none() && kv.key == "service.name" {
                service = Some(value);
            }
        }
        row::put_resource(&mut resource, service, attrs.len(), &entries);
        for ss in &rs.scope_spans {
            scope.clear();
            let (name, version) = ss
                .scope
                .as_ref()
                .map(|s| (s.name.as_str(), s.version.as_str()))
                .unwrap_or_default();
            row::put_scope(&mut scope, name, version);
            for span in &ss.spans {
                row::write_row(out, &resource, &scope, &Decoded { span, max });
                spans += 1;
            }
        }
    }
    spans
}

/// A span decoded by prost, as the row writer reads it.
struct Decoded<'a> {
    span: &'a Span,
    max: usize,
}

impl SpanValues for Decoded<'_> {
    fn start(&self) -> u64 {
        self.span.start_time_unix_nano
    }
    fn end(&self) -> u64 {
        self.span.end_time_unix_nano
    }
    fn trace_id(&self) -> &[u8] {
        &self.span.trace_id
    }
    fn span_id(&self) -> &[u8] {
        &self.span.span_id
    }
    fn parent_span_id(&self) -> &[u8] {
        &self.span.parent_span_id
    }
    fn trace_state(&self) -> &str {
        &self.span.trace_state
    }
    fn name(&self) -> &str {
        &self.span.name
    }
    fn kind(&self) -> i32 {
        self.span.kind
    }
    fn status(&self) -> (i32, &str) {
        self.span
            .status
            .as_ref()
            .map(|s| (s.code, s.message.as_str()))
            .unwrap_or_default()
    }
    fn put_attributes(&self, out: &mut Vec<u8>) {
        row::put_map(out, &self.span.attributes, self.max);
    }
    fn events(&self) -> usize {
        self.span.events.len()
    }
    fn event_time(&self, i: usize) -> u64 {
        self.span.events[i].time_unix_nano
    }
    fn event_name(&self, i: usize) -> &str {
        &self.span.events[i].name
    }
    fn put_event_attributes(&self, i: usize, out: &mut Vec<u8>) {
        row::put_map(out, &self.span.events[i].attributes, self.max);
    }
    fn links(&self) -> usize {
        self.span.links.len()
    }
    fn link_trace_id(&self, i: usize) -> &[u8] {
        &self.span.links[i].trace_id
    }
    fn link_span_id(&self, i: usize) -> &[u8] {
        &self.span.links[i].span_id
    }
    fn link_trace_state(&self, i: usize) -> &str {
        &self.span.links[i].trace_state
    }
    fn put_link_attributes(&self, i: usize, out: &mut Vec<u8>) {
        row::put_map(out, &self.span.links[i].attributes, self.max);
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

/// Splits RowBinary rows of [`crate::row::insert_sql`] into rows (to bisect a batch that
/// ClickHouse refuses, and to inspect dead letters), walking [`row::COLUMNS`]. `None` if the
/// bytes are not such rows.
pub fn rows(data: &[u8]) -> Option<Vec<RowInfo>> {
    let mut r = Reader::new(data);
    let mut out = Vec::new();
    while r.pos < data.len() {
        let start = r.pos;
        let (mut timestamp, mut service) = (0, String::new());
        for (name, ty) in row::COLUMNS {
            match name {
                "Timestamp" => timestamp = i64::from_le_bytes(r.take(8)?.try_into().ok()?),
                "ServiceName" => service = String::from_utf8_lossy(r.string()?).into_owned(),
                _ => r.skip(ty)?,
            }
        }
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
    // Timestamp (8 bytes), then TraceId and SpanId.
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
    fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    /// Skips one value of a column.
    fn skip(&mut self, ty: ColumnType) -> Option<()> {
        match ty {
            ColumnType::Fixed64 => self.take(8).map(drop),
            ColumnType::Str => self.string().map(drop),
            ColumnType::Map => self.map(),
            ColumnType::Fixed64s => {
                let n = self.len()?;
                self.take(n.checked_mul(8)?).map(drop)
            }
            ColumnType::Strs => self.array(|r| r.string().map(drop)),
            ColumnType::Maps => self.array(|r| r.map()),
        }
    }

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
        let (record, n) = record(&req, usize::MAX);
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
}
