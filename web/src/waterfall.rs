//! The trace waterfall model: span tree, collapsible rows and the critical path. Built once per
//! trace in O(n log n); the visible-row list is what the virtualised view slices.
//!
//! Opening a trace parses only what a row shows ([`SpanRow`]) from the API's bytes; the rest of
//! a span (attributes, events, links, resource, scope) is parsed from those bytes when the span
//! is selected. On 50,000 spans that skips most of the allocations of a full parse.

use crate::api::{Span, Status, Trace};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

/// What a waterfall row needs of a span.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
pub struct SpanRow {
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub service: String,
    pub start_us: i64,
    pub duration_us: i64,
    pub status: Status,
    /// When the span's events (logs) happened, drawn as marks on its bar. Only the time and
    /// name: the attributes are the detail panel's (parsed when the span is selected).
    pub events: Vec<EventMark>,
}

/// An event of a span as its bar shows it.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
pub struct EventMark {
    pub time_us: i64,
    pub name: String,
}

impl SpanRow {
    pub fn is_error(&self) -> bool {
        self.status.code.eq_ignore_ascii_case("error") || self.status.code == "STATUS_CODE_ERROR"
    }
}

impl From<&Span> for SpanRow {
    fn from(s: &Span) -> Self {
        SpanRow {
            span_id: s.span_id.clone(),
            parent_span_id: s.parent_span_id.clone(),
            name: s.name.clone(),
            service: s.service.clone(),
            start_us: s.start_us,
            duration_us: s.duration_us,
            status: s.status.clone(),
            events: s
                .events
                .iter()
                .map(|e| EventMark {
                    time_us: e.time_us,
                    name: e.name.clone(),
                })
                .collect(),
        }
    }
}

/// `GET /orrery/api/traces/{id}` read for the rows only (unknown fields are skipped).
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct TraceRows {
    pub spans: Vec<SpanRow>,
    /// The server returned only the first spans of a bigger trace (`--query-max-trace-spans`).
    pub truncated: bool,
}

/// Where the full spans come from when one is selected.
enum Detail {
    /// The API answer, parsed again per selected span.
    Body(Vec<u8>),
    Spans(Vec<Span>),
}

pub struct TraceModel {
    pub spans: Vec<SpanRow>,
    pub children: Vec<Vec<usize>>,
    /// Parent span index (`None` for roots and spans whose parent is missing).
    pub parent: Vec<Option<usize>>,
    pub roots: Vec<usize>,
    pub depth: Vec<u32>,
    pub start_us: i64,
    pub end_us: i64,
    pub critical: Vec<bool>,
    /// Only the first spans of a bigger trace (the server's cap): the UI says so.
    pub truncated: bool,
    detail: Detail,
}

impl TraceModel {
    pub fn new(trace: Trace) -> Self {
        let rows = trace.spans.iter().map(SpanRow::from).collect();
        let mut m = Self::build(rows, Detail::Spans(trace.spans));
        m.truncated = trace.truncated;
        m
    }

    /// From the bytes of the API's trace answer.
    pub fn from_json(body: Vec<u8>) -> Result<Self, String> {
        let rows = Self::parse_rows(&body)?;
        Ok(Self::from_rows(rows, body))
    }

    /// The rows of the API's trace answer (the parse step of [`Self::from_json`]).
    pub fn parse_rows(body: &[u8]) -> Result<TraceRows, String> {
        serde_json::from_slice::<TraceRows>(body).map_err(|e| format!("unexpected response: {e}"))
    }

    /// The model of rows parsed from `body` (the build step of [`Self::from_json`]).
    pub fn from_rows(rows: TraceRows, body: Vec<u8>) -> Self {
        let mut m = Self::build(rows.spans, Detail::Body(body));
        m.truncated = rows.truncated;
        m
    }

    /// The whole of span `i` (for the detail panel). From the API's bytes: the span object that
    /// starts with its id (the server writes `span_id` first), checked, else a full parse.
    pub fn detail(&self, i: usize) -> Span {
        let row = &self.spans[i];
        let body = match &self.detail {
            Detail::Spans(s) => return s[i].clone(),
            Detail::Body(b) => b,
        };
        let needle = format!("{{\"span_id\":\"{}\"", row.span_id);
        let quick = find(body, needle.as_bytes()).and_then(|at| {
            let mut de = serde_json::Deserializer::from_slice(&body[at..]);
            Span::deserialize(&mut de).ok()
        });
        quick
            .filter(|s| s.span_id == row.span_id)
            .or_else(|| {
                let t: Trace = serde_json::from_slice(body).ok()?;
                t.spans.into_iter().nth(i)
            })
            .unwrap_or_else(|| Span {
                span_id: row.span_id.clone(),
                parent_span_id: row.parent_span_id.clone(),
                name: row.name.clone(),
                service: row.service.clone(),
                start_us: row.start_us,
                duration_us: row.duration_us,
                status: row.status.clone(),
                ..Default::default()
            })
    }

    /// Per span: one of its attributes (span, resource or event attributes; key, value or
    /// `key=value`) contains `q` (lowercase). Spans already matched (`skip`) are not looked at.
    /// The rows hold no attributes, so this reads the answer's bytes: a span's object is parsed
    /// only when its bytes contain the (JSON-escaped) text, so a find that matches nothing costs
    /// one pass over the bytes.
    pub fn attribute_hits(&self, q: &str, skip: &[bool]) -> Vec<bool> {
        let n = self.spans.len();
        let mut out = vec![false; n];
        if q.is_empty() {
            return out;
        }
        let matches = |s: &Span| {
            let pair = |(k, v): (&String, &String)| {
                let (k, v) = (k.to_lowercase(), v.to_lowercase());
                k.contains(q) || v.contains(q) || format!("{k}={v}").contains(q)
            };
            s.attributes.iter().any(pair)
                || s.resource.iter().any(pair)
                || s.events.iter().any(|e| e.attributes.iter().any(pair))
        };
        let skipped = |i: usize| skip.get(i).copied().unwrap_or(false);
        match &self.detail {
            Detail::Spans(spans) => {
                for (i, s) in spans.iter().enumerate().take(n) {
                    out[i] = !skipped(i) && matches(s);
                }
            }
            Detail::Body(body) => {
                let starts = span_starts(body);
                if starts.len() != n {
                    return out;
                }
                // The text as JSON writes it; a `key=value` query by its pieces (in the bytes a
                // key and its value are apart). Every piece is in a matching span's bytes.
                let pieces: Vec<Vec<u8>> = q
                    .split('=')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let esc = serde_json::to_string(p).unwrap_or_default();
                        esc.as_bytes()[1..esc.len() - 1].to_vec()
                    })
                    .collect();
                for i in 0..n {
                    let end = starts.get(i + 1).copied().unwrap_or(body.len());
                    let bytes = &body[starts[i]..end];
                    if skipped(i) || !pieces.iter().all(|p| contains_ci(bytes, p)) {
                        continue;
                    }
                    let mut de = serde_json::Deserializer::from_slice(bytes);
                    out[i] = Span::deserialize(&mut de).is_ok_and(|s| matches(&s));
                }
            }
        }
        out
    }

    fn build(spans: Vec<SpanRow>, detail: Detail) -> Self {
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(spans.len());
        for (i, s) in spans.iter().enumerate() {
            index.insert(s.span_id.as_str(), i);
        }
        let mut children = vec![Vec::new(); spans.len()];
        let mut roots = Vec::new();
        let mut parent = vec![None; spans.len()];
        for (i, s) in spans.iter().enumerate() {
            match index.get(s.parent_span_id.as_str()) {
                Some(&p) if !s.parent_span_id.is_empty() && p != i => {
                    children[p].push(i);
                    parent[i] = Some(p);
                }
                _ => roots.push(i),
            }
        }
        drop(index);
        // Compares borrowed ids (a key function would clone one per comparison).
        let by_start = |v: &mut Vec<usize>| {
            v.sort_by(|&a, &b| {
                (spans[a].start_us, &spans[a].span_id).cmp(&(spans[b].start_us, &spans[b].span_id))
            });
        };
        for c in children.iter_mut() {
            by_start(c);
        }
        by_start(&mut roots);
        let start_us = spans.iter().map(|s| s.start_us).min().unwrap_or(0);
        let end_us = spans
            .iter()
            .map(|s| s.start_us + s.duration_us)
            .max()
            .unwrap_or(0);
        let mut depth = vec![0u32; spans.len()];
        let mut stack: Vec<usize> = roots.clone();
        let mut seen = vec![false; spans.len()];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            for &c in &children[i] {
                depth[c] = depth[i] + 1;
                stack.push(c);
            }
        }
        let mut m = TraceModel {
            spans,
            children,
            parent,
            roots,
            depth,
            start_us,
            end_us,
            critical: Vec::new(),
            truncated: false,
            detail,
        };
        m.critical = m.critical_path();
        m
    }

    fn end(&self, i: usize) -> i64 {
        self.spans[i].start_us + self.spans[i].duration_us
    }

    /// Spans on the critical path: from the root (the longest one), walk back from its end,
    /// taking at each step the child that finished last before the cursor, then continue before
    /// that child's start. Iterative, so 50,000-deep chains do not overflow the stack.
    fn critical_path(&self) -> Vec<bool> {
        let mut on = vec![false; self.spans.len()];
        let Some(&root) = self
            .roots
            .iter()
            .max_by_key(|&&i| self.spans[i].duration_us)
        else {
            return on;
        };
        let mut stack = vec![(root, self.end(root))];
        while let Some((i, cursor)) = stack.pop() {
            if std::mem::replace(&mut on[i], true) {
                continue;
            }
            let mut kids: Vec<usize> = self.children[i].clone();
            kids.sort_by_key(|&c| std::cmp::Reverse(self.end(c)));
            let mut cur = cursor;
            let span_start = self.spans[i].start_us;
            for c in kids {
                let c_start = self.spans[c].start_us;
                if c_start >= cur || c_start < span_start {
                    continue;
                }
                stack.push((c, self.end(c).min(cur)));
                cur = c_start;
            }
        }
        on
    }

    /// Rows in display order, skipping the descendants of collapsed spans.
    pub fn visible_rows(&self, collapsed: &HashSet<usize>) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.spans.len());
        let mut stack: Vec<usize> = self.roots.iter().rev().copied().collect();
        let mut seen = vec![false; self.spans.len()];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            out.push(i);
            if !collapsed.contains(&i) {
                stack.extend(self.children[i].iter().rev().copied());
            }
        }
        out
    }

    /// The map edge of the call that brought span `i`'s service into the trace: the nearest
    /// ancestor in another service → this service, or `INTERNET` → it when the service is the
    /// root. `None` when the chain breaks at a missing parent (the map has no such edge).
    pub fn call_edge(&self, i: usize) -> Option<(String, String)> {
        let service = &self.spans[i].service;
        let mut at = i;
        // Bounded by the span count: a corrupt parent cycle cannot loop forever.
        for _ in 0..self.spans.len() {
            match self.parent[at] {
                Some(p) if &self.spans[p].service != service => {
                    return Some((self.spans[p].service.clone(), service.clone()));
                }
                Some(p) => at = p,
                None if self.spans[at].parent_span_id.is_empty() => {
                    return Some(("INTERNET".into(), service.clone()));
                }
                None => return None,
            }
        }
        None
    }

    pub fn duration_us(&self) -> i64 {
        (self.end_us - self.start_us).max(1)
    }
}

/// First position of `needle` in `hay`.
/// Where each span object starts in the API's answer: the server writes `span_id` first, and
/// these bytes cannot occur inside a JSON string (its quotes would be escaped).
fn span_starts(body: &[u8]) -> Vec<usize> {
    const KEY: &[u8] = b"{\"span_id\":\"";
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = find(&body[from..], KEY) {
        out.push(from + at);
        from += at + KEY.len();
    }
    out
}

/// `hay` contains `needle`, ASCII case-insensitively (`needle` lowercase); a non-ASCII needle
/// compares the lowercased text.
fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    if needle.is_ascii() {
        hay.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    } else {
        String::from_utf8_lossy(hay)
            .to_lowercase()
            .contains(&*String::from_utf8_lossy(needle))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while let Some(k) = hay[from..].iter().position(|&b| b == first) {
        let at = from + k;
        if hay[at + 1..].starts_with(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// A synthetic trace of `n` spans over `services` services (for the big-trace bench).
pub fn synthetic_trace(n: usize, services: usize) -> Trace {
    let mut spans = Vec::with_capacity(n);
    let mut rng = crate::synth::Rng(7);
    for i in 0..n {
        let parent = if i == 0 {
            None
        } else {
            Some(rng.below(i as u64) as usize)
        };
        let (start, depth) = match parent {
            None => (0, 0),
            Some(p) => {
                let ps: &Span = &spans[p];
                (
                    ps.start_us + rng.below((ps.duration_us as u64 / 2).max(1)) as i64,
                    ps.depth + 1,
                )
            }
        };
        let dur = match parent {
            None => 10_000_000,
            Some(p) => {
                let ps: &Span = &spans[p];
                let left = ps.start_us + ps.duration_us - start;
                1 + rng.below(left.max(2) as u64) as i64
            }
        };
        spans.push(Span {
            span_id: format!("{i:016x}"),
            parent_span_id: parent.map(|p| format!("{p:016x}")).unwrap_or_default(),
            name: format!("op-{}", i % 37),
            kind: "Server".into(),
            service: format!("svc-{}", i % services.max(1)),
            start_us: start,
            duration_us: dur,
            depth,
            status: crate::api::Status {
                code: if i % 97 == 0 { "Error" } else { "Ok" }.into(),
                message: String::new(),
            },
            ..Default::default()
        });
    }
    Trace {
        trace_id: "0000000000000000000000000000beef".into(),
        span_count: n as u64,
        spans,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Span;

    fn span(id: &str, parent: &str, start: i64, dur: i64) -> Span {
        Span {
            span_id: id.into(),
            parent_span_id: parent.into(),
            start_us: start,
            duration_us: dur,
            ..Default::default()
        }
    }

    fn model(spans: Vec<Span>) -> TraceModel {
        TraceModel::new(Trace {
            spans,
            ..Default::default()
        })
    }

    /// Find also matches attribute keys and values (span, resource, event), from the answer's
    /// bytes as from parsed spans; text that JSON escapes, a value spelled like a span start
    /// and a span whose id or name already matched do not confuse it.
    #[test]
    fn find_matches_attribute_keys_and_values() {
        let mut spans = vec![
            span("a", "", 0, 10),
            span("b", "a", 1, 5),
            span("c", "a", 2, 5),
            span("d", "a", 3, 5),
        ];
        spans[1]
            .attributes
            .insert("http.route".into(), "/Orders/{id} \"v2\"".into());
        spans[2].resource.insert("host.name".into(), "box-7".into());
        spans[3].events.push(crate::api::Event {
            name: "retry".into(),
            attributes: [("why".into(), r#"{"span_id":"zz"} Ümlaut"#.into())].into(),
            ..Default::default()
        });
        let t = Trace {
            spans,
            ..Default::default()
        };
        let body = serde_json::to_vec(&t).unwrap();
        for m in [TraceModel::new(t), TraceModel::from_json(body).unwrap()] {
            let find = |q: &str| -> Vec<&str> {
                crate::trace_info::search(&m, q)
                    .into_iter()
                    .map(|i| m.spans[i].span_id.as_str())
                    .collect()
            };
            assert_eq!(find("orders/{ID}"), ["b"], "value, any case");
            assert_eq!(find("\"v2\""), ["b"], "escaped quotes");
            assert_eq!(find("http.route=/orders"), ["b"], "key=value");
            assert_eq!(find("host.name"), ["c"], "resource key");
            assert_eq!(find("ümlaut"), ["d"], "event attribute, not ASCII");
            assert_eq!(find("zz"), ["d"], "a value that looks like a span start");
            assert!(find("nowhere").is_empty());
            assert!(
                find("retry").is_empty(),
                "an event's name is not an attribute"
            );
        }
    }

    #[test]
    fn the_truncated_flag_is_read_from_the_answer_and_absent_means_complete() {
        let body = br#"{"trace_id":"t","spans":[{"span_id":"a","start_us":1,"duration_us":2}],"truncated":true}"#;
        let m = TraceModel::from_json(body.to_vec()).unwrap();
        assert!(m.truncated);
        assert_eq!(m.spans.len(), 1);
        let old = br#"{"trace_id":"t","spans":[{"span_id":"a","start_us":1,"duration_us":2}]}"#;
        assert!(!TraceModel::from_json(old.to_vec()).unwrap().truncated);
        let t = Trace {
            truncated: true,
            ..Default::default()
        };
        assert!(TraceModel::new(t).truncated);
    }

    #[test]
    fn tree_rows_and_collapse() {
        let m = model(vec![
            span("r", "", 0, 100),
            span("b", "r", 50, 40),
            span("a", "r", 10, 30),
            span("a1", "a", 12, 5),
            span("orphan", "gone", 5, 5),
        ]);
        let ids = |rows: Vec<usize>| -> Vec<String> {
            rows.into_iter()
                .map(|i| m.spans[i].span_id.clone())
                .collect()
        };
        assert_eq!(
            ids(m.visible_rows(&HashSet::new())),
            ["r", "a", "a1", "b", "orphan"]
        );
        let a = m.spans.iter().position(|s| s.span_id == "a").unwrap();
        assert_eq!(
            ids(m.visible_rows(&HashSet::from([a]))),
            ["r", "a", "b", "orphan"]
        );
        assert_eq!(
            m.depth[m.spans.iter().position(|s| s.span_id == "a1").unwrap()],
            2
        );
    }

    #[test]
    fn call_edge_is_the_nearest_caller_in_another_service() {
        let svc = |mut s: Span, name: &str| {
            s.service = name.into();
            s
        };
        let m = model(vec![
            svc(span("r", "", 0, 100), "frontend"),
            svc(span("c", "r", 1, 90), "frontend"),
            svc(span("s", "c", 2, 80), "checkout"),
            svc(span("i", "s", 3, 10), "checkout"),
            svc(span("o", "gone", 5, 5), "payments"),
        ]);
        let at = |id: &str| m.spans.iter().position(|s| s.span_id == id).unwrap();
        let edge = |a: &str, b: &str| Some((a.to_string(), b.to_string()));
        assert_eq!(m.call_edge(at("s")), edge("frontend", "checkout"));
        // An internal span belongs to the call that entered its service.
        assert_eq!(m.call_edge(at("i")), edge("frontend", "checkout"));
        assert_eq!(m.call_edge(at("c")), edge("INTERNET", "frontend"));
        assert_eq!(m.call_edge(at("r")), edge("INTERNET", "frontend"));
        assert_eq!(m.call_edge(at("o")), None);
    }

    #[test]
    fn critical_path_follows_the_last_finishing_children() {
        // r [0,100]: a [10,40] then b [50,90]; c [55,60] overlaps b but finishes earlier.
        let m = model(vec![
            span("r", "", 0, 100),
            span("a", "r", 10, 30),
            span("b", "r", 50, 40),
            span("c", "r", 55, 5),
            span("b1", "b", 60, 20),
        ]);
        let on: Vec<&str> = m
            .spans
            .iter()
            .zip(&m.critical)
            .filter(|(_, c)| **c)
            .map(|(s, _)| s.span_id.as_str())
            .collect();
        assert_eq!(on, ["r", "a", "b", "b1"]);
    }

    #[test]
    fn fifty_thousand_spans_build_without_overflow() {
        let t = synthetic_trace(50_000, 40);
        let m = TraceModel::new(t);
        assert_eq!(m.visible_rows(&HashSet::new()).len(), 50_000);
        assert!(m.critical[m.roots[0]]);
        // A pure chain (deepest possible tree) too.
        let chain: Vec<Span> = (0..50_000)
            .map(|i| {
                span(
                    &format!("{i}"),
                    &if i == 0 {
                        String::new()
                    } else {
                        format!("{}", i - 1)
                    },
                    i,
                    100_000 - 2 * i,
                )
            })
            .collect();
        let m = model(chain);
        assert_eq!(m.critical.iter().filter(|c| **c).count(), 50_000);
    }

    #[test]
    fn from_the_api_bytes_rows_match_and_detail_has_everything() {
        let mut t = synthetic_trace(300, 5);
        t.spans[42]
            .attributes
            .insert("http.route".into(), "/cart".into());
        t.spans[42].resource.insert("host.name".into(), "h1".into());
        let at = t.spans[42].start_us + 5;
        t.spans[42].events.push(crate::api::Event {
            name: "retry".into(),
            time_us: at,
            ..Default::default()
        });
        t.spans[42].links.push(crate::api::Link {
            trace_id: "t2".into(),
            span_id: "s2".into(),
            ..Default::default()
        });
        let body = serde_json::to_vec(&t).unwrap();
        let m = TraceModel::from_json(body).unwrap();
        let full = TraceModel::new(t.clone());
        assert_eq!(m.spans, full.spans);
        assert_eq!(m.critical, full.critical);
        assert_eq!(
            m.visible_rows(&HashSet::new()),
            full.visible_rows(&HashSet::new())
        );
        assert_eq!(m.detail(42), t.spans[42]);
        // The row carries the event's time and name for the mark on the bar.
        assert_eq!(
            m.spans[42].events,
            [EventMark {
                time_us: t.spans[42].start_us + 5,
                name: "retry".into()
            }]
        );
        assert_eq!(m.detail(299), t.spans[299]);
    }

    #[test]
    fn detail_falls_back_when_span_id_is_not_written_first() {
        let body = br#"{"trace_id":"t","spans":[
            {"name":"a","span_id":"1","attributes":{"k":"v"}},
            {"status":{"code":"Error"},"span_id":"2","parent_span_id":"1","events":[{"name":"e"}]}]}"#;
        let m = TraceModel::from_json(body.to_vec()).unwrap();
        assert!(m.spans[1].is_error());
        assert_eq!(m.detail(0).attributes["k"], "v");
        assert_eq!(m.detail(1).events[0].name, "e");
        assert!(TraceModel::from_json(b"not json".to_vec()).is_err());
    }
}
