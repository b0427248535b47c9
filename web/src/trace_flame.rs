//! The trace page's flame graph (Jaeger UI's "Flamegraph" view), browser-free: spans merged by
//! path — the chain of (service, operation) from the root, as the comparison does — into frames
//! whose width is the time spent in that frame and below it. A frame's own time is its spans'
//! self time (children subtracted, `trace_info::self_time`), and a frame's width is its own
//! time plus its children's widths, so children always fit under their parent — also a late
//! consumer that runs long after its producer ended (it is drawn under the producer, as a
//! profiler would). Clicking a frame zooms to it: it fills the width, its ancestors stay above.

use crate::trace_info::self_time;
use crate::waterfall::TraceModel;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub depth: u32,
    pub service: String,
    pub operation: String,
    pub parent: Option<usize>,
    /// Own time (the self time of its spans) and own + children's.
    pub self_us: i64,
    pub total_us: i64,
    pub spans: usize,
    pub errors: usize,
    /// Where it starts and how wide it is, in fractions of the whole graph.
    pub x: f64,
    pub w: f64,
    /// The first span of the frame (a click shows it).
    pub first_span: usize,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Flame {
    /// Frames in preorder (a parent before its children).
    pub frames: Vec<Frame>,
    /// The width of the whole graph: the sum of every span's self time.
    pub total_us: i64,
}

/// One frame as drawn: `x` and `w` in fractions of the view (zoomed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drawn {
    pub frame: usize,
    pub x: f64,
    pub w: f64,
}

/// The flame graph of a trace. O(n log n) (the self times sort children).
pub fn flame(m: &TraceModel) -> Flame {
    // Frame ids per (parent frame, service, operation); usize::MAX is the virtual top.
    let mut ids: HashMap<(usize, &str, &str), usize> = HashMap::new();
    let mut frames: Vec<Frame> = Vec::new();
    let mut kids: Vec<Vec<usize>> = Vec::new();
    let mut top: Vec<usize> = Vec::new();
    let mut frame_of = vec![usize::MAX; m.spans.len()];
    for i in m.visible_rows(&HashSet::new()) {
        let s = &m.spans[i];
        let parent = m.parent[i].map(|p| frame_of[p]).unwrap_or(usize::MAX);
        let id = *ids
            .entry((parent, s.service.as_str(), s.name.as_str()))
            .or_insert_with(|| {
                let depth = if parent == usize::MAX {
                    0
                } else {
                    frames[parent].depth + 1
                };
                frames.push(Frame {
                    depth,
                    service: s.service.clone(),
                    operation: s.name.clone(),
                    parent: (parent != usize::MAX).then_some(parent),
                    self_us: 0,
                    total_us: 0,
                    spans: 0,
                    errors: 0,
                    x: 0.0,
                    w: 0.0,
                    first_span: i,
                });
                kids.push(Vec::new());
                let id = frames.len() - 1;
                if parent == usize::MAX {
                    top.push(id);
                } else {
                    kids[parent].push(id);
                }
                id
            });
        frame_of[i] = id;
        let f = &mut frames[id];
        f.spans += 1;
        f.errors += s.is_error() as usize;
        f.self_us += self_time(m, i);
    }
    // Frames are created parent first, so a reverse pass sums children before their parent.
    for id in (0..frames.len()).rev() {
        frames[id].total_us += frames[id].self_us;
        if let Some(p) = frames[id].parent {
            frames[p].total_us += frames[id].total_us;
        }
    }
    let total_us: i64 = top.iter().map(|&t| frames[t].total_us).sum();
    let scale = total_us.max(1) as f64;
    // Lay out left to right in creation order (first appearance), preorder.
    let mut out_order = Vec::with_capacity(frames.len());
    let mut stack: Vec<(usize, f64)> = Vec::new();
    let mut x = 0.0;
    for &t in &top {
        stack.push((t, x));
        x += frames[t].total_us as f64 / scale;
    }
    stack.reverse();
    while let Some((id, x)) = stack.pop() {
        frames[id].x = x;
        frames[id].w = frames[id].total_us as f64 / scale;
        out_order.push(id);
        let mut cx = x;
        let mut next = Vec::with_capacity(kids[id].len());
        for &c in &kids[id] {
            next.push((c, cx));
            cx += frames[c].total_us as f64 / scale;
        }
        stack.extend(next.into_iter().rev());
    }
    // Renumber in preorder so that callers can rely on parents coming first.
    let mut new_id = vec![0usize; frames.len()];
    for (k, &id) in out_order.iter().enumerate() {
        new_id[id] = k;
    }
    let mut sorted: Vec<Option<Frame>> = frames.into_iter().map(Some).collect();
    let frames = out_order
        .iter()
        .map(|&id| {
            let mut f = sorted[id].take().expect("each frame once");
            f.parent = f.parent.map(|p| new_id[p]);
            f
        })
        .collect();
    Flame { frames, total_us }
}

impl Flame {
    /// The frames to draw when zoomed to `focus` (`None`: the whole graph): the focus fills
    /// the width, its ancestors span it above, the frames of its subtree are scaled to it;
    /// frames narrower than `min_w` of the view are left out, and at most `cap` frames are
    /// returned (the widest; a frame is never narrower than its children, so parents stay).
    pub fn view(&self, focus: Option<usize>, min_w: f64, cap: usize) -> Vec<Drawn> {
        let (x0, w0) = focus
            .and_then(|f| self.frames.get(f))
            .map(|f| (f.x, f.w.max(1e-12)))
            .unwrap_or((0.0, 1.0));
        let mut out: Vec<Drawn> = Vec::new();
        if let Some(f) = focus.filter(|&f| f < self.frames.len()) {
            let mut at = self.frames[f].parent;
            while let Some(p) = at {
                out.push(Drawn {
                    frame: p,
                    x: 0.0,
                    w: 1.0,
                });
                at = self.frames[p].parent;
            }
        }
        let in_focus = |id: usize| match focus {
            None => true,
            Some(f) => {
                let mut at = Some(id);
                while let Some(a) = at {
                    if a == f {
                        return true;
                    }
                    if a < f {
                        return false; // preorder: an ancestor of id has a smaller index
                    }
                    at = self.frames[a].parent;
                }
                false
            }
        };
        let mut sub: Vec<Drawn> = self
            .frames
            .iter()
            .enumerate()
            .filter(|(id, fr)| fr.w / w0 >= min_w && in_focus(*id))
            .map(|(id, fr)| Drawn {
                frame: id,
                x: (fr.x - x0) / w0,
                w: fr.w / w0,
            })
            .collect();
        if sub.len() + out.len() > cap {
            sub.sort_by(|a, b| {
                b.w.total_cmp(&a.w)
                    .then(self.frames[a.frame].depth.cmp(&self.frames[b.frame].depth))
            });
            sub.truncate(cap.saturating_sub(out.len()));
            sub.sort_by_key(|d| d.frame);
        }
        out.reverse();
        out.extend(sub);
        out
    }

    /// How deep the drawn frames go (rows of the graph).
    pub fn depth_of(&self, drawn: &[Drawn]) -> u32 {
        drawn
            .iter()
            .map(|d| self.frames[d.frame].depth + 1)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Trace;
    use crate::test_support::span;

    /// web 0–100: two SELECTs (10 each, same path → one frame), cart 40–70 with a quote
    /// 45–55, a late consumer under the cart running 80–200 (after cart ended).
    fn model() -> TraceModel {
        TraceModel::new(Trace {
            spans: vec![
                span("r", "", "web", "GET /", 0, 100),
                span("q1", "r", "db", "SELECT", 5, 10),
                span("q2", "r", "db", "SELECT", 20, 10),
                span("c", "r", "cart", "load", 40, 30),
                span("p", "c", "pricing", "quote", 45, 10),
                span("late", "c", "mailer", "consume", 80, 120),
            ],
            ..Default::default()
        })
    }

    #[test]
    fn frames_merge_paths_and_widths_hold_their_children() {
        let f = flame(&model());
        let names: Vec<(&str, u32)> = f
            .frames
            .iter()
            .map(|x| (x.service.as_str(), x.depth))
            .collect();
        assert_eq!(
            names,
            [
                ("web", 0),
                ("db", 1),
                ("cart", 1),
                ("pricing", 2),
                ("mailer", 2)
            ]
        );
        let by = |s: &str| f.frames.iter().find(|x| x.service == s).unwrap();
        // web self: 100 - (5–15, 20–30, 40–70) = 50; db 20 (two spans); cart self 20;
        // pricing 10; mailer 120 (all its own).
        assert_eq!(by("web").self_us, 50);
        assert_eq!((by("db").spans, by("db").self_us), (2, 20));
        assert_eq!(by("cart").total_us, 20 + 10 + 120);
        assert_eq!(f.total_us, 50 + 20 + 20 + 10 + 120);
        assert_eq!(by("web").w, 1.0);
        // Children sit side by side under their parent, never wider than it.
        for fr in &f.frames {
            if let Some(p) = fr.parent {
                let p = &f.frames[p];
                assert!(
                    fr.x >= p.x - 1e-12 && fr.x + fr.w <= p.x + p.w + 1e-12,
                    "{fr:?}"
                );
                assert_eq!(fr.depth, p.depth + 1);
            }
        }
        assert!((by("cart").x - by("db").w - by("db").x).abs() < 1e-12);
        assert_eq!(by("mailer").first_span, 5, "the span a click shows");
    }

    #[test]
    fn zooming_fills_the_width_with_the_frame_and_keeps_its_ancestors() {
        let f = flame(&model());
        let cart = f.frames.iter().position(|x| x.service == "cart").unwrap();
        let v = f.view(Some(cart), 0.0, 100);
        let got: Vec<(&str, f64)> = v
            .iter()
            .map(|d| (f.frames[d.frame].service.as_str(), d.w))
            .collect();
        assert_eq!(got[0], ("web", 1.0), "the ancestor spans the view");
        assert_eq!(got[1], ("cart", 1.0));
        assert_eq!(got.len(), 4, "db is not under cart: {got:?}");
        let mailer = v
            .iter()
            .find(|d| f.frames[d.frame].service == "mailer")
            .unwrap();
        assert!((mailer.w - 120.0 / 150.0).abs() < 1e-9);
        // Children start at the parent's left edge: pricing (10) then the mailer.
        assert!((mailer.x - 10.0 / 150.0).abs() < 1e-9);
        // Whole graph; narrow frames left out; the cap keeps the widest (parents first).
        assert_eq!(f.view(None, 0.0, 100).len(), 5);
        assert_eq!(f.view(None, 0.09, 100).len(), 4, "pricing is 10/220 wide");
        let capped = f.view(None, 0.0, 2);
        let kept: Vec<&str> = capped
            .iter()
            .map(|d| f.frames[d.frame].service.as_str())
            .collect();
        assert_eq!(kept, ["web", "cart"]);
        assert_eq!(f.depth_of(&f.view(None, 0.0, 100)), 3);
    }

    #[test]
    fn orphans_are_top_frames_side_by_side_and_big_traces_are_bounded() {
        let m = TraceModel::new(Trace {
            spans: vec![
                span("a", "", "web", "GET /", 0, 10),
                span("b", "missing", "batch", "run", 0, 30),
            ],
            ..Default::default()
        });
        let f = flame(&m);
        assert_eq!(f.frames.len(), 2);
        assert_eq!((f.frames[0].x, f.frames[0].w), (0.0, 0.25));
        assert_eq!((f.frames[1].x, f.frames[1].w), (0.25, 0.75));
        assert!(flame(&TraceModel::new(Trace::default())).frames.is_empty());
        let big = TraceModel::new(crate::waterfall::synthetic_trace(50_000, 40));
        let f = flame(&big);
        assert_eq!(f.frames.iter().map(|x| x.spans).sum::<usize>(), 50_000);
        let v = f.view(None, 0.001, 2_000);
        assert!(!v.is_empty() && v.len() <= 2_000);
        assert_eq!(v[0].w, 1.0);
    }
}
