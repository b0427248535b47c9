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

use crate::convert::{Limits, Sanitized, TimeWindow, TooManySpans, now_ns};
use crate::row::{self, AttrValue, SpanValues};
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
        row::put_resource(&mut self.resource, service, count, &map);

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
        row::put_scope(&mut self.scope, name, version);

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
        let span = Parsed {
            trace_id,
            span_id,
            parent,
            trace_state,
            name,
            kind: span_kind,
            start,
            end,
            code,
            message,
            attr_count,
            attrs: &self.attrs,
            events: &self.events,
            ev_attrs: &self.ev_attrs,
            links: &self.links,
            link_attrs: &self.link_attrs,
        };
        row::write_row(&mut self.out, &self.resource, &self.scope, &span);
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
        let value = any_value(value.unwrap_or_default())?;
        Ok((key, row::put_entry(out, key, value, self.max)))
    }
}

/// An `AnyValue` message's value.
fn any_value(buf: &[u8]) -> R<AttrValue<'_>> {
    let mut v = AttrValue::Empty;
    let mut fields = Fields(buf);
    while let Some((tag, wire)) = fields.next()? {
        // A oneof: the last variant on the wire wins.
        v = match tag {
            1 => AttrValue::Str(wire.str()?),
            2 => AttrValue::Bool(wire.varint()? != 0),
            3 => AttrValue::Int(wire.varint()? as i64),
            4 => AttrValue::Double(f64::from_bits(wire.fixed64()?)),
            7 => AttrValue::Bytes(wire.len()?),
            // Arrays, maps and string-table indexes take the general path.
            5 | 6 | 8 => return Err(Fallback),
            _ => v,
        };
    }
    Ok(v)
}

/// One span read from the wire (borrowed from the request and the transcoder's buffers), as
/// the row writer reads it.
struct Parsed<'a, 't> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    parent: &'a [u8],
    trace_state: &'a str,
    name: &'a str,
    kind: i32,
    start: u64,
    end: u64,
    code: i32,
    message: &'a str,
    /// `attrs` holds `attr_count` encoded map entries.
    attr_count: usize,
    attrs: &'t [u8],
    events: &'t [Event<'a>],
    ev_attrs: &'t [u8],
    links: &'t [Link<'a>],
    link_attrs: &'t [u8],
}

impl SpanValues for Parsed<'_, '_> {
    #[inline]
    fn start(&self) -> u64 {
        self.start
    }
    #[inline]
    fn end(&self) -> u64 {
        self.end
    }
    #[inline]
    fn trace_id(&self) -> &[u8] {
        self.trace_id
    }
    #[inline]
    fn span_id(&self) -> &[u8] {
        self.span_id
    }
    #[inline]
    fn parent_span_id(&self) -> &[u8] {
        self.parent
    }
    #[inline]
    fn trace_state(&self) -> &str {
        self.trace_state
    }
    #[inline]
    fn name(&self) -> &str {
        self.name
    }
    #[inline]
    fn kind(&self) -> i32 {
        self.kind
    }
    #[inline]
    fn status(&self) -> (i32, &str) {
        (self.code, self.message)
    }
    #[inline]
    fn put_attributes(&self, out: &mut Vec<u8>) {
        row::put_len(out, self.attr_count);
        out.extend_from_slice(self.attrs);
    }
    #[inline]
    fn events(&self) -> usize {
        self.events.len()
    }
    #[inline]
    fn event_time(&self, i: usize) -> u64 {
        self.events[i].time
    }
    #[inline]
    fn event_name(&self, i: usize) -> &str {
        self.events[i].name
    }
    #[inline]
    fn put_event_attributes(&self, i: usize, out: &mut Vec<u8>) {
        let e = &self.events[i];
        row::put_len(out, e.count);
        out.extend_from_slice(&self.ev_attrs[e.attrs.clone()]);
    }
    #[inline]
    fn links(&self) -> usize {
        self.links.len()
    }
    #[inline]
    fn link_trace_id(&self, i: usize) -> &[u8] {
        self.links[i].trace_id
    }
    #[inline]
    fn link_span_id(&self, i: usize) -> &[u8] {
        self.links[i].span_id
    }
    #[inline]
    fn link_trace_state(&self, i: usize) -> &str {
        self.links[i].trace_state
    }
    #[inline]
    fn put_link_attributes(&self, i: usize, out: &mut Vec<u8>) {
        let l = &self.links[i];
        row::put_len(out, l.count);
        out.extend_from_slice(&self.link_attrs[l.attrs.clone()]);
    }
}
