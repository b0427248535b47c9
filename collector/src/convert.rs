//! Validation of a decoded OTLP trace request (the general path; the fast path,
//! [`crate::transcode`], validates as it reads): spans that cannot be stored are removed and
//! counted by reason. Long attribute values are cut when the row is written
//! ([`crate::row::put_value`]), so turning a validated request into rows cannot fail.

use std::fmt::Write as _;

use crate::validate::problem;
pub use crate::validate::{Limits, Reject, TimeWindow, now_ns};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

/// What [`sanitize`] did to a request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sanitized {
    pub accepted: usize,
    pub rejected: usize,
    /// Why spans were rejected (the first few reasons), for `partial_success.error_message`.
    pub message: String,
    /// Rejected spans by reason, indexed like [`Reject::ALL`].
    pub by_reason: [usize; 4],
}

/// Too many spans in one request.
#[derive(Debug)]
pub struct TooManySpans {
    pub spans: usize,
    pub max: usize,
}

/// Removes the spans that cannot be stored (invalid ids, times outside the accepted window),
/// in place.
pub fn sanitize(
    req: &mut ExportTraceServiceRequest,
    limits: &Limits,
) -> Result<Sanitized, TooManySpans> {
    let total: usize = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    if total > limits.max_spans_per_request {
        return Err(TooManySpans {
            spans: total,
            max: limits.max_spans_per_request,
        });
    }
    let mut out = Sanitized::default();
    let window = limits.window(now_ns());
    for (ri, rs) in req.resource_spans.iter_mut().enumerate() {
        for (si, ss) in rs.scope_spans.iter_mut().enumerate() {
            let mut index = 0usize;
            ss.spans.retain_mut(|span| {
                let i = index;
                index += 1;
                if let Some((reason, problem)) = span_problem(span, window) {
                    out.reject(ri, si, i, reason, &problem);
                    return false;
                }
                out.accepted += 1;
                true
            });
        }
    }
    out.finish();
    Ok(out)
}

impl Sanitized {
    /// Counts a rejected span; the first three are named in the message.
    pub(crate) fn reject(&mut self, ri: usize, si: usize, i: usize, reason: Reject, problem: &str) {
        self.rejected += 1;
        self.by_reason[reason as usize] += 1;
        if self.rejected <= 3 {
            if !self.message.is_empty() {
                self.message.push_str("; ");
            }
            let _ = write!(
                self.message,
                "resourceSpans[{ri}].scopeSpans[{si}].spans[{i}]: {problem}"
            );
        }
    }

    pub(crate) fn finish(&mut self) {
        if self.rejected > 3 {
            let _ = write!(self.message, "; and {} more", self.rejected - 3);
        }
        if self.rejected > 0 {
            self.message = format!("{} spans rejected: {}", self.rejected, self.message);
        }
    }
}

fn span_problem(
    span: &opentelemetry_proto::tonic::trace::v1::Span,
    window: TimeWindow,
) -> Option<(Reject, String)> {
    problem(
        &span.trace_id,
        &span.span_id,
        &span.parent_span_id,
        span.links.iter().map(|l| (&l.trace_id[..], &l.span_id[..])),
        span.start_time_unix_nano,
        span.end_time_unix_nano,
        window,
    )
}

/// Rows for every span of a (sanitized) request, in request order, attribute values cut at
/// `max` bytes: the readable reference the tests hold the row writer ([`crate::row`]) to.
#[cfg(any(test, feature = "testing"))]
pub fn to_rows(req: ExportTraceServiceRequest, max: usize, out: &mut Vec<orrery_store::SpanRow>) {
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use orrery_store::span::{kind, status};

    let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
    let map = |attrs: Vec<KeyValue>| -> Vec<(String, String)> {
        attrs
            .into_iter()
            .map(|kv| {
                let v = crate::row::stored_string(kv.value.as_ref(), max);
                (kv.key, v)
            })
            .collect()
    };
    for rs in req.resource_spans {
        let resource_attributes = rs.resource.map(|r| map(r.attributes)).unwrap_or_default();
        let service_name = resource_attributes
            .iter()
            .find(|(k, _)| k == "service.name")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        for ss in rs.scope_spans {
            let (scope_name, scope_version) =
                ss.scope.map(|s| (s.name, s.version)).unwrap_or_default();
            for span in ss.spans {
                let status = span.status.unwrap_or_default();
                let mut row = orrery_store::SpanRow {
                    timestamp: span.start_time_unix_nano as i64,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    trace_state: span.trace_state,
                    span_name: span.name,
                    span_kind: kind::from_otlp(span.kind).to_string(),
                    service_name: service_name.clone(),
                    resource_attributes: resource_attributes.clone(),
                    scope_name: scope_name.clone(),
                    scope_version: scope_version.clone(),
                    span_attributes: map(span.attributes),
                    duration: span
                        .end_time_unix_nano
                        .saturating_sub(span.start_time_unix_nano),
                    status_code: status::from_otlp(status.code).to_string(),
                    status_message: status.message,
                    ..Default::default()
                };
                for e in span.events {
                    row.events_timestamp.push(e.time_unix_nano as i64);
                    row.events_name.push(e.name);
                    row.events_attributes.push(map(e.attributes));
                }
                for l in span.links {
                    row.links_trace_id.push(hex(&l.trace_id));
                    row.links_span_id.push(hex(&l.span_id));
                    row.links_trace_state.push(l.trace_state);
                    row.links_attributes.push(map(l.attributes));
                }
                out.push(row);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn span(trace: Vec<u8>, id: Vec<u8>) -> Span {
        let start = now_ns() - 60_000_000_000;
        Span {
            trace_id: trace,
            span_id: id,
            start_time_unix_nano: start,
            end_time_unix_nano: start + 15,
            ..Default::default()
        }
    }

    const HOUR: u64 = 3_600_000_000_000;

    #[test]
    fn span_times_outside_the_window_or_ending_before_they_start_are_rejected_by_reason() {
        let now = now_ns();
        let at = |start: u64, end: u64| Span {
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            ..span(vec![1; 16], vec![2; 8])
        };
        let mut req = request(vec![
            at(now - HOUR, now - HOUR), // zero duration: an instant, kept
            at(now - 6 * 24 * HOUR, now - 6 * 24 * HOUR + 5), // inside the 7-day retention
            at(now - 8 * 24 * HOUR, now - 8 * 24 * HOUR + 5), // before it
            at(0, 5),                   // unset start
            at(now + 2 * HOUR, now + 2 * HOUR + 5), // past the 1 h future slack
            at(now + HOUR / 2, now + HOUR / 2 + 5), // within it
            at(now - HOUR, now - HOUR - 1), // ends before it starts
            at(now - HOUR, 0),          // unset end
            at(u64::MAX, u64::MAX),     // would be negative as DateTime64
        ]);
        let s = sanitize(&mut req, &Limits::default()).unwrap();
        assert_eq!((s.accepted, s.rejected), (3, 6), "{}", s.message);
        assert_eq!(s.by_reason, [0, 2, 2, 2]);
        assert!(
            s.message.contains("spans[2]: start_time_unix_nano"),
            "{}",
            s.message
        );
        assert!(s.message.contains("before the retention"), "{}", s.message);
        assert!(
            s.message
                .contains("spans[3]: start_time_unix_nano is unset"),
            "{}",
            s.message
        );
        assert!(s.message.contains("too far in the future"), "{}", s.message);
        let mut rows = Vec::new();
        to_rows(req, Limits::default().max_attribute_len, &mut rows);
        assert_eq!(
            rows.iter().map(|r| r.duration).collect::<Vec<_>>(),
            vec![0, 5, 5]
        );
    }

    #[test]
    fn retention_zero_sets_no_past_bound_but_unset_starts_stay_rejected() {
        let limits = Limits {
            max_span_age: None,
            ..Limits::default()
        };
        let w = limits.window(1_000 * HOUR);
        assert_eq!((w.earliest, w.latest), (1, 1_001 * HOUR));
        let old = Span {
            start_time_unix_nano: 1_000_000_000,
            end_time_unix_nano: 2_000_000_000,
            ..span(vec![1; 16], vec![2; 8])
        };
        let unset = Span {
            start_time_unix_nano: 0,
            ..old.clone()
        };
        let mut req = request(vec![old, unset]);
        let s = sanitize(&mut req, &limits).unwrap();
        assert_eq!((s.accepted, s.rejected), (1, 1));
    }

    #[test]
    fn bad_ids_are_rejected_individually_with_reasons() {
        let mut req = request(vec![
            span(vec![1; 16], vec![2; 8]),
            span(vec![0; 16], vec![2; 8]),
            span(vec![1; 16], vec![2; 3]),
        ]);
        let s = sanitize(&mut req, &Limits::default()).unwrap();
        assert_eq!((s.accepted, s.rejected), (1, 2));
        assert!(
            s.message
                .contains("spans[1]: trace_id must not be all zeroes"),
            "{}",
            s.message
        );
        assert!(
            s.message
                .contains("spans[2]: span_id must be 8 bytes, got 3"),
            "{}",
            s.message
        );
        let mut rows = Vec::new();
        to_rows(req, Limits::default().max_attribute_len, &mut rows);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].trace_id, "01".repeat(16));
        assert_eq!(rows[0].duration, 15);
    }

    #[test]
    fn long_values_are_cut_on_a_char_boundary() {
        let mut s = span(vec![1; 16], vec![2; 8]);
        s.attributes = vec![kv("k", Value::StringValue("é".repeat(10)))];
        let mut req = request(vec![s]);
        let limits = Limits {
            max_attribute_len: 5,
            max_spans_per_request: 10,
            ..Limits::default()
        };
        let out = sanitize(&mut req, &limits).unwrap();
        assert_eq!((out.accepted, out.rejected), (1, 0));
        // Cut where the row is written, by both encoders.
        let (record, _) = crate::rowbinary::record(&req, limits.max_attribute_len);
        let mut rows = Vec::new();
        to_rows(req, limits.max_attribute_len, &mut rows);
        assert_eq!(rows[0].span_attributes, vec![("k".into(), "éé".into())]);
        let cut = "k\x04éé".as_bytes();
        assert!(record.windows(cut.len()).any(|w| w == cut));
    }

    #[test]
    fn too_many_spans_refuses_the_request() {
        let mut req = request(vec![span(vec![1; 16], vec![2; 8]); 3]);
        let err = sanitize(
            &mut req,
            &Limits {
                max_attribute_len: 5,
                max_spans_per_request: 2,
                ..Limits::default()
            },
        )
        .unwrap_err();
        assert_eq!((err.spans, err.max), (3, 2));
    }
}
