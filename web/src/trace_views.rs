//! The trace page's other views of the same trace, switched from its header like Jaeger UI's:
//! the flame graph (`trace_flame.rs`), the service/operation graph (`trace_graph.rs`), the
//! spans table (`span_table.rs`) and the trace statistics (`trace_info::statistics`).

use crate::encoding::fmt_us;
use crate::trace_flame::{self, Flame};
use crate::trace_graph::{self, GAP_X, NODE_H, NODE_W};
use crate::trace_info::{self, service_colour};
use crate::trace_loaded::Loaded;
use leptos::prelude::*;
use std::rc::Rc;

type Shared = send_wrapper::SendWrapper<Rc<Loaded>>;

/// Frames drawn at most, and the narrowest drawn (fraction of the view): a 50,000-span trace
/// draws its widest 2,000 frames, not 50,000 elements.
const FLAME_CAP: usize = 2_000;
const FLAME_MIN_W: f64 = 0.001;
const FRAME_PX: f64 = 22.0;
/// Graph nodes drawn at most (the ones with the most spans).
const GRAPH_CAP: usize = 200;

/// Jaeger's flame graph: frames by path, width = time in the frame and below it; a click
/// zooms to a frame (and shows its first span), "reset" shows the whole trace.
#[component]
pub fn FlameGraph(l: Shared, #[prop(into)] on_pick: Callback<usize>) -> impl IntoView {
    let flame: Rc<Flame> = Rc::new(trace_flame::flame(&l.m));
    let focus = RwSignal::new(None::<usize>);
    let f = send_wrapper::SendWrapper::new(flame.clone());
    let drawn = Memo::new(move |_| f.view(focus.get(), FLAME_MIN_W, FLAME_CAP));
    let f = send_wrapper::SendWrapper::new(flame.clone());
    let total = flame.total_us.max(1);
    view! {
        <div class="wf-stats flame-wrap">
            <p class="muted">
                {format!("{} frames (spans merged by service · operation path); width: time in the frame and below it. Click a frame to zoom. ", flame.frames.len())}
                <button data-testid="flame-reset" disabled=move || focus.get().is_none() on:click=move |_| focus.set(None)>"reset zoom"</button>
            </p>
            <div class="flame" data-testid="flame" data-focus=move || focus.get().map(|x| x.to_string()).unwrap_or_default()
                style:height=move || format!("{}px", f.depth_of(&drawn.get()) as f64 * FRAME_PX)>
                {
                let f = send_wrapper::SendWrapper::new(flame.clone());
                move || drawn.get().into_iter().map(|d| {
                    let fr = &f.frames[d.frame];
                    let id = d.frame;
                    let first = fr.first_span;
                    let label = format!("{} {}", fr.service, fr.operation);
                    let title = format!("{label}: {} in and below ({:.1}% of the trace), self {}, {} span{}{}",
                        fmt_us(fr.total_us), fr.total_us as f64 / total as f64 * 100.0, fmt_us(fr.self_us), fr.spans,
                        if fr.spans == 1 { "" } else { "s" },
                        if fr.errors > 0 { format!(", {} error{}", fr.errors, if fr.errors == 1 { "" } else { "s" }) } else { String::new() });
                    view! {
                        <button class="fl-frame" class:err={fr.errors > 0} data-testid="flame-frame" data-service=fr.service.clone()
                            data-operation=fr.operation.clone() data-depth=fr.depth data-x=format!("{:.4}", d.x) data-w=format!("{:.4}", d.w)
                            data-total-us=fr.total_us data-self-us=fr.self_us title=title.clone() aria-label=title
                            style:left=format!("{:.3}%", d.x * 100.0) style:width=format!("{:.3}%", d.w * 100.0)
                            style:top=format!("{}px", fr.depth as f64 * FRAME_PX) style:background-color=service_colour(&fr.service)
                            on:click=move |_| { focus.set(Some(id)); on_pick.run(first) }>{label}</button>
                    }
                }).collect_view()}
            </div>
        </div>
    }
}

/// Jaeger's trace graph: services (or service · operation pairs) as boxes, calls as arrows
/// with their counts, left to right by call depth; the edges also listed as a table.
#[component]
pub fn TraceGraph(l: Shared) -> impl IntoView {
    let by_op = RwSignal::new(false);
    let lg = l.clone();
    let g = Memo::new(move |_| trace_graph::graph(&lg.m, by_op.get(), GRAPH_CAP));
    let g = move || g.get();
    view! {
        <div class="wf-stats graph-wrap">
            <div role="group" aria-label="graph nodes" class="graph-mode">
                <button data-testid="graph-by-service" aria-pressed=move || (!by_op.get()).to_string() on:click=move |_| by_op.set(false)>"services"</button>
                <button data-testid="graph-by-operation" aria-pressed=move || by_op.get().to_string() on:click=move |_| by_op.set(true)>"operations"</button>
                {move || { let g = g(); (g.left_out > 0).then(|| view! {
                    <span class="muted">{format!(" {} more nodes with fewer spans not drawn", g.left_out)}</span> }) }}
            </div>
            {move || {
                let g = g();
                let pad = 8.0;
                view! {
                    <svg class="trace-graph" data-testid="trace-graph" role="img"
                        aria-label=format!("{} nodes, {} calls; listed in the table below", g.nodes.len(), g.edges.len())
                        viewBox=format!("{} {} {} {}", -pad, -pad, g.width + 2.0 * pad, g.height + 2.0 * pad)
                        style:width=format!("{}px", g.width + 2.0 * pad) style:height=format!("{}px", g.height + 2.0 * pad)>
                        <defs><marker id="tg-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                            <path d="M 0 0 L 10 5 L 0 10 z" class="tg-arrowhead"></path></marker></defs>
                        {g.edges.iter().map(|e| {
                            let (a, b) = (&g.nodes[e.from], &g.nodes[e.to]);
                            let (x1, y1) = (a.x + NODE_W, a.y + NODE_H / 2.0);
                            let (x2, y2) = (b.x, b.y + NODE_H / 2.0);
                            // A call back to an earlier layer loops below the boxes.
                            let d = if x2 > x1 {
                                let mx = (x1 + x2) / 2.0;
                                format!("M {x1} {y1} C {mx} {y1}, {mx} {y2}, {x2} {y2}")
                            } else {
                                let low = a.y.max(b.y) + NODE_H + GAP_X / 3.0;
                                format!("M {x1} {y1} C {} {low}, {} {low}, {x2} {y2}", x1 + GAP_X / 2.0, x2 - GAP_X / 2.0)
                            };
                            let (lx, ly) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0 - 4.0);
                            view! {
                                <g class="tg-edge" data-testid="graph-edge" data-from=a.key() data-to=b.key() data-calls=e.calls>
                                    <path d=d marker-end="url(#tg-arrow)"></path>
                                    <text x=lx y=ly>{e.calls.to_string()}</text>
                                </g>
                            }
                        }).collect_view()}
                        {g.nodes.iter().map(|n| view! {
                            <g class="tg-node" class:err={n.errors > 0} data-testid="graph-node" data-key=n.key() data-layer=n.layer data-spans=n.spans>
                                <rect x=n.x y=n.y width=NODE_W height=NODE_H rx="4" style:stroke=service_colour(&n.service)></rect>
                                <rect x=n.x y=n.y width="6" height=NODE_H style:fill=service_colour(&n.service)></rect>
                                <text x=n.x + 12.0 y=n.y + 17.0 class="tg-name">{short(&n.key(), 28)}</text>
                                <text x=n.x + 12.0 y=n.y + 34.0 class="tg-fig">{format!("{} span{} · {}{}", n.spans, if n.spans == 1 { "" } else { "s" }, fmt_us(n.total_us),
                                    if n.errors > 0 { format!(" · {} err", n.errors) } else { String::new() })}</text>
                                <title>{format!("{}: {} spans, total {}, self {}, {} errors", n.key(), n.spans, fmt_us(n.total_us), fmt_us(n.self_us), n.errors)}</title>
                            </g>
                        }).collect_view()}
                    </svg>
                    <table class="data" data-testid="graph-calls">
                        <caption class="muted">"calls in this trace"</caption>
                        <thead><tr><th>"caller"</th><th>"callee"</th><th class="num">"calls"</th></tr></thead>
                        <tbody>{g.edges.iter().map(|e| view! {
                            <tr><td>{g.nodes[e.from].key()}</td><td>{g.nodes[e.to].key()}</td><td class="num">{e.calls}</td></tr>
                        }).collect_view()}</tbody>
                    </table>
                }
            }}
        </div>
    }
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}

/// Every span (up to `span_table::LIMIT`) in a table sorted by a column; a row opens the span.
#[component]
pub fn SpansTable(l: Shared, #[prop(into)] on_pick: Callback<usize>) -> impl IntoView {
    let by = RwSignal::new("duration".to_string());
    let n = l.m.spans.len();
    let l2 = l.clone();
    view! {
        <div class="wf-stats">
        <p class="muted" data-testid="spans-table-note">{if n > crate::span_table::LIMIT {
            format!("{} of {n} spans (the first by the chosen column)", crate::span_table::LIMIT) } else { format!("{n} spans") }}</p>
        <table class="data" data-testid="spans-table">
            <thead><tr>{crate::span_table::COLUMNS.iter().map(|(k, label)| view! {
                <th><button class="th-sort" data-testid=format!("sort-{k}") aria-pressed=move || (by.get() == *k).to_string()
                    on:click=move |_| by.set(k.to_string())>{*label}</button></th> }).collect_view()}
                <th>"status"</th></tr></thead>
            <tbody>{move || {
                let m = &l2.m;
                crate::span_table::order(m, &by.get(), crate::span_table::LIMIT).into_iter().map(|i| {
                    let s = &m.spans[i];
                    view! {
                        <tr data-span-id=s.span_id.clone() data-duration-us=s.duration_us tabindex="0" class="pick"
                            on:click=move |_| on_pick.run(i)
                            on:keydown=move |ev: web_sys::KeyboardEvent| if ev.key() == "Enter" { on_pick.run(i) }>
                            <td class="num">{fmt_us(s.duration_us)}</td>
                            <td class="num">{format!("+{}", fmt_us(s.start_us - m.start_us))}</td>
                            <td><span class="swatch" style:background-color=service_colour(&s.service)></span>{s.service.clone()}</td>
                            <td>{s.name.clone()}</td>
                            <td class:err=s.is_error()>{if s.is_error() { "error" } else { "" }}</td>
                        </tr>
                    }
                }).collect_view()
            }}</tbody>
        </table>
        </div>
    }
}

/// Jaeger's "trace statistics": per service and operation, count, errors, durations and self
/// time (time not spent in children), biggest total first.
#[component]
pub fn StatsTable(l: Shared) -> impl IntoView {
    let rows = trace_info::statistics(&l.m);
    let total: i64 = l.summary.duration_us.max(1);
    view! {
        <div class="wf-stats">
        <table class="data" data-testid="trace-stats">
            <thead><tr><th>"service"</th><th>"operation"</th><th class="num">"count"</th><th class="num">"errors"</th>
                <th class="num">"total"</th><th class="num">"avg"</th><th class="num">"min"</th><th class="num">"max"</th>
                <th class="num">"self total"</th><th class="num">"self % of trace"</th></tr></thead>
            <tbody>{rows.into_iter().map(|r| view! {
                <tr data-service=r.service.clone() data-operation=r.operation.clone() data-count=r.count data-errors=r.errors
                    data-total-us=r.total_us data-self-us=r.self_us>
                    <td><span class="swatch" style:background-color=service_colour(&r.service)></span>{r.service.clone()}</td>
                    <td>{r.operation.clone()}</td><td class="num">{r.count}</td><td class="num">{r.errors}</td>
                    <td class="num">{fmt_us(r.total_us)}</td><td class="num">{fmt_us(r.avg_us)}</td>
                    <td class="num">{fmt_us(r.min_us)}</td><td class="num">{fmt_us(r.max_us)}</td>
                    <td class="num">{fmt_us(r.self_us)}</td><td class="num">{format!("{:.1}%", r.self_us as f64 / total as f64 * 100.0)}</td>
                </tr>
            }).collect_view()}</tbody>
        </table>
        </div>
    }
}
