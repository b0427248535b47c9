//! The one writer of `otel_traces` rows in ClickHouse's RowBinary format: the column order
//! ([`COLUMNS`], next to [`insert_sql`], the insert the rows belong to), how a span's values
//! become those columns ([`write_row`]), how an attribute value becomes the stored string and
//! where a long one is cut ([`put_value`]).
//!
//! Both decoders feed it: the receiver's one-pass fast path ([`crate::transcode`], borrowed
//! slices of the protobuf bytes) and the general path ([`crate::rowbinary::encode`], a request
//! decoded by prost). Each implements [`SpanValues`]; nothing else writes a row.

use std::ops::Range;
use std::sync::OnceLock;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use orrery_store::SPANS_TABLE;
use orrery_store::span::{kind, status};

/// How a column is laid out in RowBinary (what [`crate::rowbinary::rows`] skips).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `DateTime64(9)` / `UInt64`: 8 bytes little-endian.
    Fixed64,
    /// `String` / `LowCardinality(String)`: LEB128 length and bytes.
    Str,
    /// `Map(String, String)`: LEB128 count and key/value strings.
    Map,
    /// `Array(DateTime64(9))`.
    Fixed64s,
    /// `Array(String)`.
    Strs,
    /// `Array(Map(String, String))`.
    Maps,
}

/// The columns of a row, in the order [`write_row`] writes them and [`insert_sql`] names them.
/// A test holds the names to `SpanRow`'s (the table as the store defines it).
pub const COLUMNS: [(&str, ColumnType); 22] = {
    use ColumnType::*;
    [
        ("Timestamp", Fixed64),
        ("TraceId", Str),
        ("SpanId", Str),
        ("ParentSpanId", Str),
        ("TraceState", Str),
        ("SpanName", Str),
        ("SpanKind", Str),
        ("ServiceName", Str),
        ("ResourceAttributes", Map),
        ("ScopeName", Str),
        ("ScopeVersion", Str),
        ("SpanAttributes", Map),
        ("Duration", Fixed64),
        ("StatusCode", Str),
        ("StatusMessage", Str),
        ("Events.Timestamp", Fixed64s),
        ("Events.Name", Strs),
        ("Events.Attributes", Maps),
        ("Links.TraceId", Strs),
        ("Links.SpanId", Strs),
        ("Links.TraceState", Strs),
        ("Links.Attributes", Maps),
    ]
};

/// The insert the rows belong to. Columns are named so a later migration that adds a column
/// with a default does not break the positional format.
pub fn insert_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        // Dotted (nested) names quoted, the others bare: the statement's text as it always was.
        let columns: Vec<String> = COLUMNS
            .iter()
            .map(|(n, _)| match n.contains('.') {
                true => format!("`{n}`"),
                false => n.to_string(),
            })
            .collect();
        format!(
            "INSERT INTO {SPANS_TABLE} ({}) FORMAT RowBinary",
            columns.join(", ")
        )
    })
}

/// One span's values as a decoder has them. [`write_row`] asks for them in column order.
/// Attribute maps are written by the source itself (each decoder holds them differently), with
/// [`put_entry`], so their values are stringified and cut in one place.
pub trait SpanValues {
    fn start(&self) -> u64;
    fn end(&self) -> u64;
    fn trace_id(&self) -> &[u8];
    fn span_id(&self) -> &[u8];
    fn parent_span_id(&self) -> &[u8];
    fn trace_state(&self) -> &str;
    fn name(&self) -> &str;
    /// The OTLP `SpanKind` enum value.
    fn kind(&self) -> i32;
    /// The OTLP `StatusCode` enum value and the status message.
    fn status(&self) -> (i32, &str);
    /// `SpanAttributes`: count and entries.
    fn put_attributes(&self, out: &mut Vec<u8>);
    fn events(&self) -> usize;
    fn event_time(&self, i: usize) -> u64;
    fn event_name(&self, i: usize) -> &str;
    fn put_event_attributes(&self, i: usize, out: &mut Vec<u8>);
    fn links(&self) -> usize;
    fn link_trace_id(&self, i: usize) -> &[u8];
    fn link_span_id(&self, i: usize) -> &[u8];
    fn link_trace_state(&self, i: usize) -> &str;
    fn put_link_attributes(&self, i: usize, out: &mut Vec<u8>);
}

/// Appends one row. `resource` holds `ServiceName` and `ResourceAttributes` ([`put_resource`]),
/// `scope` `ScopeName` and `ScopeVersion` ([`put_scope`]): the same bytes for every span of a
/// resource or scope, so they are encoded once and copied.
#[inline]
pub fn write_row(out: &mut Vec<u8>, resource: &[u8], scope: &[u8], s: &impl SpanValues) {
    let start = s.start();
    out.extend_from_slice(&(start as i64).to_le_bytes()); // Timestamp
    put_hex(out, s.trace_id());
    put_hex(out, s.span_id());
    put_hex(out, s.parent_span_id());
    put_str(out, s.trace_state());
    put_str(out, s.name()); // SpanName
    put_str(out, kind::from_otlp(s.kind()));
    out.extend_from_slice(resource); // ServiceName, ResourceAttributes
    out.extend_from_slice(scope); // ScopeName, ScopeVersion
    s.put_attributes(out); // SpanAttributes
    out.extend_from_slice(&s.end().saturating_sub(start).to_le_bytes()); // Duration
    let (code, message) = s.status();
    put_str(out, status::from_otlp(code));
    put_str(out, message);

    let events = s.events();
    put_len(out, events);
    for i in 0..events {
        out.extend_from_slice(&(s.event_time(i) as i64).to_le_bytes());
    }
    put_len(out, events);
    for i in 0..events {
        put_str(out, s.event_name(i));
    }
    put_len(out, events);
    for i in 0..events {
        s.put_event_attributes(i, out);
    }

    let links = s.links();
    put_len(out, links);
    for i in 0..links {
        put_hex(out, s.link_trace_id(i));
    }
    put_len(out, links);
    for i in 0..links {
        put_hex(out, s.link_span_id(i));
    }
    put_len(out, links);
    for i in 0..links {
        put_str(out, s.link_trace_state(i));
    }
    put_len(out, links);
    for i in 0..links {
        s.put_link_attributes(i, out);
    }
}

/// `ServiceName` (the stored value of the resource's `service.name`, `service` being where
/// [`put_entry`] wrote it in `entries`; empty without one) and `ResourceAttributes` (`count`
/// entries written by [`put_entry`]).
pub fn put_resource(
    out: &mut Vec<u8>,
    service: Option<Range<usize>>,
    count: usize,
    entries: &[u8],
) {
    match service {
        Some(range) => out.extend_from_slice(&entries[range]),
        None => put_str(out, ""),
    }
    put_len(out, count);
    out.extend_from_slice(entries);
}

/// `ScopeName` and `ScopeVersion`.
pub fn put_scope(out: &mut Vec<u8>, name: &str, version: &str) {
    put_str(out, name);
    put_str(out, version);
}

/// An attribute value as either decoder has it.
#[derive(Debug, Clone, Copy)]
pub enum AttrValue<'a> {
    Empty,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    /// Arrays, key/value lists, string-table indexes: stored as JSON.
    Other(&'a Value),
}

impl<'a> AttrValue<'a> {
    pub fn of(v: Option<&'a AnyValue>) -> Self {
        match v.and_then(|v| v.value.as_ref()) {
            None => AttrValue::Empty,
            Some(Value::StringValue(s)) => AttrValue::Str(s),
            Some(Value::BoolValue(b)) => AttrValue::Bool(*b),
            Some(Value::IntValue(i)) => AttrValue::Int(*i),
            Some(Value::DoubleValue(d)) => AttrValue::Double(*d),
            Some(Value::BytesValue(b)) => AttrValue::Bytes(b),
            Some(other) => AttrValue::Other(other),
        }
    }
}

/// One map entry: the key, then the stored value ([`put_value`]). Returns where the value
/// sits in `out` (the resource's `service.name` is also its `ServiceName`).
#[inline]
pub fn put_entry(out: &mut Vec<u8>, key: &str, value: AttrValue<'_>, max: usize) -> Range<usize> {
    put_str(out, key);
    let from = out.len();
    put_value(out, value, max);
    from..out.len()
}

/// A map of OTLP key/values: count and entries.
pub fn put_map(out: &mut Vec<u8>, attrs: &[KeyValue], max: usize) {
    put_len(out, attrs.len());
    for kv in attrs {
        put_entry(out, &kv.key, AttrValue::of(kv.value.as_ref()), max);
    }
}

/// The stored string of an attribute value, as the OpenTelemetry ClickHouse exporter stores
/// it: strings as they are, everything else in its JSON form (bytes as base64). Strings and
/// bytes longer than `max` bytes are cut (strings on a char boundary), also inside arrays and
/// key/value lists — the one place values are truncated.
#[inline]
pub fn put_value(out: &mut Vec<u8>, v: AttrValue<'_>, max: usize) {
    match v {
        AttrValue::Empty => put_str(out, ""),
        AttrValue::Str(s) => put_str(out, cut(s, max)),
        AttrValue::Bool(b) => put_str(out, if b { "true" } else { "false" }),
        AttrValue::Int(i) => put_str(out, itoa::Buffer::new().format(i)),
        AttrValue::Double(d) => put_str(out, &double_json(d).to_string()),
        AttrValue::Bytes(b) => put_str(out, &base64(&b[..b.len().min(max)])),
        AttrValue::Other(v) => put_str(out, &to_json(Some(v), max).to_string()),
    }
}

/// The stored string of a value ([`put_value`]), for the readable reference rows of the tests
/// ([`crate::convert::to_rows`]).
#[cfg(any(test, feature = "testing"))]
pub fn stored_string(v: Option<&AnyValue>, max: usize) -> String {
    let mut out = Vec::new();
    put_value(&mut out, AttrValue::of(v), max);
    // Past the LEB128 length: its last byte is the first without the top bit.
    let len_bytes = out.iter().position(|b| b & 0x80 == 0).map_or(0, |i| i + 1);
    String::from_utf8(out.split_off(len_bytes)).expect("values are UTF-8")
}

/// `s` cut to at most `max` bytes, on a char boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn base64(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn double_json(d: f64) -> serde_json::Value {
    serde_json::Number::from_f64(d)
        .map(serde_json::Value::Number)
        .unwrap_or_else(|| serde_json::Value::String(d.to_string()))
}

fn to_json(v: Option<&Value>, max: usize) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        None => J::Null,
        Some(Value::StringValue(s)) => J::String(cut(s, max).to_owned()),
        Some(Value::BoolValue(b)) => J::Bool(*b),
        Some(Value::IntValue(i)) => J::from(*i),
        Some(Value::DoubleValue(d)) => double_json(*d),
        Some(Value::BytesValue(b)) => J::String(base64(&b[..b.len().min(max)])),
        // An index into a profiles string table; meaningless for traces, kept as the number.
        Some(Value::StringValueStrindex(i)) => J::from(*i),
        Some(Value::ArrayValue(a)) => J::Array(
            a.values
                .iter()
                .map(|v| to_json(v.value.as_ref(), max))
                .collect(),
        ),
        Some(Value::KvlistValue(kv)) => J::Object(
            kv.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        to_json(kv.value.as_ref().and_then(|v| v.value.as_ref()), max),
                    )
                })
                .collect(),
        ),
    }
}

/// LEB128, RowBinary's length prefix.
#[inline(always)]
pub fn put_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[inline]
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// An id as lowercase hex (empty stays empty).
#[inline]
pub fn put_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    put_len(out, bytes.len() * 2);
    let start = out.len();
    out.resize(start + bytes.len() * 2, 0);
    for (pair, b) in out[start..].chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[(b >> 4) as usize];
        pair[1] = DIGITS[(b & 15) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickhouse::Row as _;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use orrery_store::SpanRow;

    #[test]
    fn the_columns_are_the_stored_rows_columns_in_order() {
        let names: Vec<&str> = COLUMNS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, SpanRow::COLUMN_NAMES);
        // The statement the collector has always sent.
        assert_eq!(
            insert_sql(),
            "INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, TraceState, \
             SpanName, SpanKind, ServiceName, ResourceAttributes, ScopeName, ScopeVersion, \
             SpanAttributes, Duration, StatusCode, StatusMessage, `Events.Timestamp`, \
             `Events.Name`, `Events.Attributes`, `Links.TraceId`, `Links.SpanId`, \
             `Links.TraceState`, `Links.Attributes`) FORMAT RowBinary"
        );
    }

    fn stored(v: Value, max: usize) -> String {
        stored_string(Some(&AnyValue { value: Some(v) }), max)
    }

    #[test]
    fn non_string_values_are_stored_as_json_text() {
        assert_eq!(stored(Value::IntValue(-7), 99), "-7");
        assert_eq!(stored(Value::BoolValue(true), 99), "true");
        assert_eq!(stored(Value::DoubleValue(1.5), 99), "1.5");
        assert_eq!(stored(Value::DoubleValue(f64::NAN), 99), "\"NaN\"");
        assert_eq!(stored(Value::BytesValue(vec![1, 2]), 99), "AQI=");
        let arr = Value::ArrayValue(ArrayValue {
            values: vec![
                AnyValue {
                    value: Some(Value::StringValue("a".into())),
                },
                AnyValue {
                    value: Some(Value::IntValue(2)),
                },
            ],
        });
        assert_eq!(stored(arr, 99), r#"["a",2]"#);
        assert_eq!(stored_string(Some(&AnyValue { value: None }), 99), "");
        assert_eq!(stored_string(None, 99), "");
    }

    #[test]
    fn long_values_are_cut_on_a_char_boundary_also_inside_arrays_and_lists() {
        assert_eq!(stored(Value::StringValue("é".repeat(10)), 5), "éé");
        assert_eq!(stored(Value::StringValue("abc".into()), 3), "abc");
        assert_eq!(stored(Value::BytesValue(vec![1, 2, 3, 4]), 2), "AQI=");
        let s = |v: &str| AnyValue {
            value: Some(Value::StringValue(v.into())),
        };
        let list = Value::KvlistValue(KeyValueList {
            values: vec![KeyValue {
                key: "long-key-stays".into(),
                value: Some(AnyValue {
                    value: Some(Value::ArrayValue(ArrayValue {
                        values: vec![s("abcdef"), s("ab")],
                    })),
                }),
                ..Default::default()
            }],
        });
        assert_eq!(stored(list, 3), r#"{"long-key-stays":["abc","ab"]}"#);
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
