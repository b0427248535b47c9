//! OTLP/protobuf request bytes → a spool record (RowBinary rows) in one pass over the wire
//! format, with the validation and truncation of [`crate::convert::sanitize`], but without
//! building the request's tree of owned strings and vectors (decoding that tree was most of the
//! collector's CPU).
//!
//! This is a fast path for the common shape of a request. Anything else — malformed input,
//! array or map attribute values, a singular message field sent twice (which protobuf merges),
//! resource entity references — returns [`Fallback`], and the caller decodes the request with
//! prost and takes the general path (which also words the error for malformed input). The
//! property tests hold the two paths to the same bytes and the same accept/reject outcome.

use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
use orrery_store::span::{kind, status};

use crate::convert::{Limits, Sanitized, TimeWindow, TooManySpans, now_ns, value_to_string};
use crate::rowbinary::{put_hex, put_len, put_str};
use crate::validate::problem;

/// The request needs the general path.
#[derive(Debug, PartialEq, Eq)]
pub struct Fallback;

type R<T> = Result<T, Fallback>;

/// A request converted by [`transcode`].
#[derive(Debug)]
pub struct Transcoded {
    /// `[spans u32 LE][rows]`, as [`crate::rowbinary::record`] makes it.
    pub record: Vec<u8>,
    pub sanitized: Sanitized,
}

/// Converts an `ExportTraceServiceRequest` in protobuf encoding.
pub fn transcode(buf: &[u8], limits: &Limits) -> R<Result<Transcoded, TooManySpans>> {
    let mut t = Transcoder {
        max: limits.max_attribute_len,
        window: limits.window(now_ns()),
        out: Vec::with_capacity(buf.len() * 3 / 2 + 4),
        sanitized: Sanitized::default(),
        resource: Vec::new(),
        scope: Vec::new(),
        attrs: Vec::new(),
        ev_attrs: Vec::new(),
        link_attrs: Vec::new(),
        events: Vec::new(),
        links: Vec::new(),
    };
    t.out.extend_from_slice(&[0; 4]);
    let mut fields = Fields(buf);
    let mut ri = 0;
    while let Some((tag, wire)) = fields.next()? {
        if tag == 1 {
            t.resource_spans(ri, wire.len()?)?;
            ri += 1;
        }
    }
    let total = t.sanitized.accepted + t.sanitized.rejected;
    if total > limits.max_spans_per_request {
        return Ok(Err(TooManySpans {
            spans: total,
            max: limits.max_spans_per_request,
        }));
    }
    t.sanitized.finish();
    let accepted = t.sanitized.accepted as u32;
    t.out[..4].copy_from_slice(&accepted.to_le_bytes());
    Ok(Ok(Transcoded {
        record: t.out,
        sanitized: t.sanitized,
    }))
}

#[derive(Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32,
}

impl<'a> Wire<'a> {
    #[inline(always)]
    fn varint(self) -> R<u64> {
        match self {
            Wire::Varint(v) => Ok(v),
            _ => Err(Fallback),
        }
    }
    #[inline(always)]
    fn fixed64(self) -> R<u64> {
        match self {
            Wire::Fixed64(v) => Ok(v),
            _ => Err(Fallback),
        }
    }
    #[inline(always)]
    fn len(self) -> R<&'a [u8]> {
        match self {
            Wire::Len(b) => Ok(b),
            _ => Err(Fallback),
        }
    }
    #[inline(always)]
    fn str(self) -> R<&'a str> {
        std::str::from_utf8(self.len()?).map_err(|_| Fallback)
    }
    #[inline(always)]
    fn fixed32(self) -> R<()> {
        match self {
            Wire::Fixed32 => Ok(()),
            _ => Err(Fallback),
        }
    }
}

/// The fields of one message, in wire order.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    #[inline(always)]
    fn varint(&mut self) -> R<u64> {
        // Most varints (keys, lengths of short strings) are one byte.
        if let Some((&b, rest)) = self.0.split_first()
            && b < 0x80
        {
            self.0 = rest;
            return Ok(u64::from(b));
        }
        self.varint_slow()
    }

    fn varint_slow(&mut self) -> R<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.0.split_first().ok_or(Fallback)?;
            self.0 = rest;
            // The tenth byte may only hold the top bit (prost refuses more).
            if i == 9 && b > 1 {
                return Err(Fallback);
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Fallback)
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if n > self.0.len() {
            return Err(Fallback);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    #[inline(always)]
    fn next(&mut self) -> R<Option<(u32, Wire<'a>)>> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let tag = key >> 3;
        if key > u64::from(u32::MAX) || tag == 0 {
            return Err(Fallback);
        }
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| Fallback)?;
                Wire::Len(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed32
            }
            // Groups (3, 4) are legal but unused by OTLP; 6 and 7 are invalid.
            _ => return Err(Fallback),
        };
        Ok(Some((tag as u32, wire)))
    }
}

/// A singular message field seen a second time would be merged by protobuf: not handled here.
fn once<'a>(slot: &mut Option<&'a [u8]>, wire: Wire<'a>) -> R<()> {
    if slot.is_some() {
        return Err(Fallback);
    }
    *slot = Some(wire.len()?);
    Ok(())
}

struct Event<'a> {
    time: u64,
    name: &'a str,
    attrs: std::ops::Range<usize>,
    count: usize,
}

struct Link<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    trace_state: &'a str,
    attrs: std::ops::Range<usize>,
    count: usize,
}

struct Transcoder<'a> {
    max: usize,
    window: TimeWindow,
    out: Vec<u8>,
    sanitized: Sanitized,
    /// ServiceName and ResourceAttributes of the current resource.
    resource: Vec<u8>,
    /// ScopeName and ScopeVersion of the current scope.
    scope: Vec<u8>,
    /// Encoded map entries of the current span, its events and its links.
    attrs: Vec<u8>,
    ev_attrs: Vec<u8>,
    link_attrs: Vec<u8>,
    events: Vec<Event<'a>>,
    links: Vec<Link<'a>>,
}

impl<'a> Transcoder<'a> {
    fn resource_spans(&mut self, ri: usize, buf: &'a [u8]) -> R<()> {
        // The resource may follow its spans on the wire: find it first.
        let mut resource = None;
        let mut fields = Fields(buf);
        while let Some((tag, wire)) = fields.next()? {
            match tag {
                1 => once(&mut resource, wire)?,
                2 => {
                    wire.len()?;
                }
                3 => {
                    wire.str()?;
                }
                _ => {}
            }
        }
        let mut map = Vec::new();
        let mut count = 0;
        let mut service = None;
        let mut fields = Fields(resource.unwrap_or_default());
        while let Some((tag, wire)) = fields.next()? {
            match tag {
                1 => {
                    let (key, value) = self.key_value(&mut map, wire.len()?)?;
                    if service.is_none() && key == "service.name" {
                        service = Some(value);
                    }
                    count += 1;
                }
                2 => {
                    wire.varint()?;
                }
                3 => return Err(Fallback),
                _ => {}
            }
        }
        self.resource.clear();
        match service {
            Some(range) => self.resource.extend_from_slice(&map[range]),
            None => put_str(&mut self.resource, ""),
        }
        put_len(&mut self.resource, count);
        self.resource.extend_from_slice(&map);

        let mut fields = Fields(buf);
        let mut si = 0;
        while let Some((tag, wire)) = fields.next()? {
            if tag == 2 {
                self.scope_spans(ri, si, wire.len()?)?;
                si += 1;
            }
        }
        Ok(())
    }

    fn scope_spans(&mut self, ri: usize, si: usize, buf: &'a [u8]) -> R<()> {
        let mut scope = None;
        let mut fields = Fields(buf);
        while let Some((tag, wire)) = fields.next()? {
            match tag {
                1 => once(&mut scope, wire)?,
                2 => {
                    wire.len()?;
                }
                3 => {
                    wire.str()?;
                }
                _ => {}
            }
        }
        let (mut name, mut version) = ("", "");
        let mut fields = Fields(scope.unwrap_or_default());
        let mut ignored = Vec::new();
        while let Some((tag, wire)) = fields.next()? {
            match tag {
                1 => name = wire.str()?,
                2 => version = wire.str()?,
                // Scope attributes are not stored, but must decode.
                3 => {
                    ignored.clear();
                    self.key_value(&mut ignored, wire.len()?)?;
                }
                4 => {
                    wire.varint()?;
                }
                _ => {}
            }
        }
        self.scope.clear();
        put_str(&mut self.scope, name);
        put_str(&mut self.scope, version);

        let mut fields = Fields(buf);
        let mut i = 0;
        while let Some((tag, wire)) = fields.next()? {
            if tag == 2 {
                self.span(ri, si, i, wire.len()?)?;
                i += 1;
            }
        }
        Ok(())
    }

    fn span(&mut self, ri: usize, si: usize, i: usize, buf: &'a [u8]) -> R<()> {
        let (mut trace_id, mut span_id, mut parent): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
        let (mut trace_state, mut name) = ("", "");
        let (mut span_kind, mut start, mut end) = (0i32, 0u64, 0u64);
        let mut status_msg = None;
        let mut attr_count = 0;
        self.attrs.clear();
        self.ev_attrs.clear();
        self.link_attrs.clear();
        self.events.clear();
        self.links.clear();
        let mut fields = Fields(buf);
        while let Some((tag, wire)) = fields.next()? {
            match tag {
                1 => trace_id = wire.len()?,
                2 => span_id = wire.len()?,
                3 => trace_state = wire.str()?,
                4 => parent = wire.len()?,
                5 => name = wire.str()?,
                6 => span_kind = wire.varint()? as i32,
                7 => start = wire.fixed64()?,
                8 => end = wire.fixed64()?,
                9 => {
                    let mut attrs = std::mem::take(&mut self.attrs);
                    let r = self.key_value(&mut attrs, wire.len()?);
                    self.attrs = attrs;
                    r?;
                    attr_count += 1;
                }
                10 | 12 | 14 => {
                    wire.varint()?;
                }
                11 => self.event(wire.len()?)?,
                13 => self.link(wire.len()?)?,
                15 => once(&mut status_msg, wire)?,
                16 => wire.fixed32()?,
                _ => {}
            }
        }
        let (mut code, mut message) = (0i32, "");
        let mut fields = Fields(status_msg.unwrap_or_default());
        while let Some((tag, wire)) = fields.next()? {
            match tag {
                2 => message = wire.str()?,
                3 => code = wire.varint()? as i32,
                _ => {}
            }
        }

        let links = self.links.iter().map(|l| (l.trace_id, l.span_id));
        if let Some((reason, problem)) =
            problem(trace_id, span_id, parent, links, start, end, self.window)
        {
            self.sanitized.reject(ri, si, i, reason, &problem);
            return Ok(());
        }
        self.sanitized.accepted += 1;
        let out = &mut self.out;
        out.extend_from_slice(&(start as i64).to_le_bytes());
        put_hex(out, trace_id);
        put_hex(out, span_id);
        put_hex(out, parent);
        put_str(out, trace_state);
        put_str(out, name);
        put_str(out, kind::from_otlp(span_kind));
        out.extend_from_slice(&self.resource);
        out.extend_from_slice(&self.scope);
        put_len(out, attr_count);
        out.extend_from_slice(&self.attrs);
        out.extend_from_slice(&end.saturating_sub(start).to_le_bytes());
        put_str(out, status::from_otlp(code));
        put_str(out, message);

        put_len(out, self.events.len());
        for e in &self.events {
            out.extend_from_slice(&(e.time as i64).to_le_bytes());
        }
        put_len(out, self.events.len());
        for e in &self.events {
            put_str(out, e.name);
        }
        put_len(out, self.events.len());
        for e in &self.events {
            put_len(out, e.count);
            out.extend_from_slice(&self.ev_attrs[e.attrs.clone()]);
        }
        put_len(out, self.links.len());
        for l in &self.links {
            put_hex(out, l.trace_id);
        }
        put_len(out, self.links.len());
        for l in &self.links {
            put_hex(out, l.span_id);
        }
        put_len(out, self.links.len());
        for l in &self.links {
            put_str(out, l.trace_state);
        }
        put_len(out, self.links.len());
        for l in &self.links {
            put_len(out, l.count);
            out.extend_from_slice(&self.link_attrs[l.attrs.clone()]);
        }
        Ok(())
    }

    fn event(&mut self, buf: &'a [u8]) -> R<()> {
        let mut attrs = std::mem::take(&mut self.ev_attrs);
        let from = attrs.len();
        let mut e = Event {
            time: 0,
            name: "",
            attrs: from..from,
            count: 0,
        };
        let r = (|| {
            let mut fields = Fields(buf);
            while let Some((tag, wire)) = fields.next()? {
                match tag {
                    1 => e.time = wire.fixed64()?,
                    2 => e.name = wire.str()?,
                    3 => {
                        self.key_value(&mut attrs, wire.len()?)?;
                        e.count += 1;
                    }
                    4 => {
                        wire.varint()?;
                    }
                    _ => {}
                }
            }
            Ok(())
        })();
        e.attrs = from..attrs.len();
        self.ev_attrs = attrs;
        r?;
        self.events.push(e);
        Ok(())
    }

    fn link(&mut self, buf: &'a [u8]) -> R<()> {
        let mut attrs = std::mem::take(&mut self.link_attrs);
        let from = attrs.len();
        let mut l = Link {
            trace_id: &[],
            span_id: &[],
            trace_state: "",
            attrs: from..from,
            count: 0,
        };
        let r = (|| {
            let mut fields = Fields(buf);
            while let Some((tag, wire)) = fields.next()? {
                match tag {
                    1 => l.trace_id = wire.len()?,
                    2 => l.span_id = wire.len()?,
                    3 => l.trace_state = wire.str()?,
                    4 => {
                        self.key_value(&mut attrs, wire.len()?)?;
                        l.count += 1;
                    }
                    5 => {
                        wire.varint()?;
                    }
                    6 => wire.fixed32()?,
                    _ => {}
                }
            }
            Ok(())
        })();
        l.attrs = from..attrs.len();
        self.link_attrs = attrs;
        r?;
        self.links.push(l);
        Ok(())
    }

    /// Appends one map entry (key, stored value string) to `out`; returns the key and where
    /// the encoded value sits in `out`.
    fn key_value(&self, out: &mut Vec<u8>, buf: &'a [u8]) -> R<(&'a str, std::ops::Range<usize>)> {
        let mut key = "";
        let mut value = None;
        let mut fields = Fields(buf);
        while let Some((tag, wire)) = fields.next()? {
            match tag {
                1 => key = wire.str()?,
                2 => once(&mut value, wire)?,
                3 => {
                    wire.varint()?;
                }
                _ => {}
            }
        }
        put_str(out, key);
        let from = out.len();
        self.any_value(out, value.unwrap_or_default())?;
        Ok((key, from..out.len()))
    }

    fn any_value(&self, out: &mut Vec<u8>, buf: &'a [u8]) -> R<()> {
        enum V<'a> {
            None,
            Str(&'a str),
            Bool(bool),
            Int(i64),
            Double(f64),
            Bytes(&'a [u8]),
        }
        let mut v = V::None;
        let mut fields = Fields(buf);
        while let Some((tag, wire)) = fields.next()? {
            // A oneof: the last variant on the wire wins.
            v = match tag {
                1 => V::Str(wire.str()?),
                2 => V::Bool(wire.varint()? != 0),
                3 => V::Int(wire.varint()? as i64),
                4 => V::Double(f64::from_bits(wire.fixed64()?)),
                7 => V::Bytes(wire.len()?),
                // Arrays, maps and string-table indexes take the general path.
                5 | 6 | 8 => return Err(Fallback),
                _ => v,
            };
        }
        match v {
            V::None => put_str(out, ""),
            V::Str(s) => {
                let mut cut = s.len().min(self.max);
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                put_str(out, &s[..cut]);
            }
            V::Bool(b) => put_str(out, if b { "true" } else { "false" }),
            V::Int(i) => put_str(out, itoa::Buffer::new().format(i)),
            V::Double(d) => put_str(
                out,
                &value_to_string(&AnyValue {
                    value: Some(Value::DoubleValue(d)),
                }),
            ),
            V::Bytes(b) => put_str(
                out,
                &value_to_string(&AnyValue {
                    value: Some(Value::BytesValue(b[..b.len().min(self.max)].to_vec())),
                }),
            ),
        }
        Ok(())
    }
}
