//! The trace page (`?view=trace&trace=<id>`): header, service legend, time ruler, the
//! virtualised waterfall (only the rows in view plus a margin are in the DOM), span search,
//! keyboard navigation, collapse by depth, the trace statistics table and the span detail.

use crate::encoding::fmt_us;
use crate::net::enc;
use crate::route::{UrlState, now_s};
use crate::trace_info::{self, service_colour};
use crate::trace_loaded::Loaded;
use crate::trace_views::{FlameGraph, SpansTable, StatsTable, TraceGraph};
use crate::waterfall::TraceModel;
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::collections::HashSet;
use std::rc::Rc;
use wasm_bindgen::JsCast;

const ROW_PX: f64 = 24.0;
/// The sticky time ruler above the rows (inside the scroller, so it shares the scrollbar).
const RULER_PX: f64 = 24.0;

/// Rebuilt when the URL's trace changes (a span link opens another trace in place).
#[component]
pub fn TraceView(state: RwSignal<UrlState>) -> impl IntoView {
    let id = Memo::new(move |_| state.with(|s| s.trace.clone()));
    move || view! { <TracePage id=id.get() state=state /> }
}

#[component]
fn TracePage(id: String, state: RwSignal<UrlState>) -> impl IntoView {
    let loaded: RwSignal<Option<Result<Rc<Loaded>, String>>, LocalStorage> =
        RwSignal::new_local(None);
    let url = format!("orrery/api/traces/{}", enc(&id));
    // Phase timings for the big-trace bench: start (ms since navigation), fetch, JSON parse,
    // tree + critical path (+ header figures) — of what was drawn first (the first rows of a
    // big trace, else the whole trace); and when the whole trace was in, if that came later.
    let timings = RwSignal::new(String::new());
    let complete = RwSignal::new(String::new());
    spawn_local(async move {
        let t0 = now_s();
        let on_prefix = |buf: &[u8]| {
            let t1 = now_s();
            if let Some(p) = Loaded::from_prefix(buf) {
                let t2 = now_s();
                let _ = timings.try_set(format!(
                    "start {:.0} ms · fetch {:.0} ms · parse {:.0} ms · model {:.0} ms · first {} rows",
                    t0 * 1e3,
                    (t1 - t0) * 1e3,
                    (t2 - t1) * 1e3,
                    0.0,
                    p.m.spans.len()
                ));
                let _ = loaded.try_set(Some(Ok(Rc::new(p))));
            }
        };
        // When the first rows are on screen (ms since navigation), for the bench.
        let on_painted = move || {
            let _ = timings.try_update(|t| {
                if t.contains("first ") {
                    t.push_str(&format!(" · painted {:.0} ms", now_s() * 1e3));
                }
            });
        };
        let result = match crate::trace_load::get_streamed(&url, on_prefix, on_painted).await {
            Err(e) => Err(e),
            Ok(body) => {
                let t1 = now_s();
                TraceModel::parse_rows(&body).map(|rows| {
                    let t2 = now_s();
                    let m = TraceModel::from_rows(rows, body);
                    let summary = trace_info::summary(&m);
                    let descendants = trace_info::descendants(&m);
                    let t3 = now_s();
                    let phases = format!(
                        "start {:.0} ms · fetch {:.0} ms · parse {:.0} ms · model {:.0} ms",
                        t0 * 1e3,
                        (t1 - t0) * 1e3,
                        (t2 - t1) * 1e3,
                        (t3 - t2) * 1e3
                    );
                    if timings.try_get_untracked().is_some_and(|t| t.is_empty()) {
                        let _ = timings.try_set(phases.clone());
                    }
                    let _ = complete.try_set(phases);
                    Rc::new(Loaded {
                        m,
                        summary,
                        descendants,
                        partial: false,
                    })
                })
            }
        };
        let _ = loaded.try_set(Some(result));
    });
    view! {
        <div class="waterfall" data-testid="waterfall" data-timings=move || timings.get()
            data-complete=move || { let c = complete.get(); (!c.is_empty()).then_some(c) }>
            {move || match loaded.get() {
                None => view! { <p class="msg muted">"loading the trace…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="msg error">{e}</p> }.into_any(),
                Some(Ok(l)) => view! { <Waterfall l=send_wrapper::SendWrapper::new(l) id=id.clone() state=state /> }.into_any(),
            }}
        </div>
    }
}

/// True when a key press belongs to a form control (typing there is not a shortcut).
fn in_control(ev: &web_sys::KeyboardEvent) -> bool {
    ev.target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        .is_some_and(|e| matches!(e.tag_name().as_str(), "INPUT" | "SELECT" | "TEXTAREA"))
}

#[component]
fn Waterfall(
    l: send_wrapper::SendWrapper<Rc<Loaded>>,
    id: String,
    state: RwSignal<UrlState>,
) -> impl IntoView {
    let l: Rc<Loaded> = (*l).clone();
    let collapsed = RwSignal::new(HashSet::<usize>::new());
    let scroll = RwSignal::new(0.0f64);
    let height = RwSignal::new(800.0f64);
    let selected = RwSignal::new(None::<usize>);
    let query = RwSignal::new(String::new());
    // The match Enter last went to (`None`: none yet since the query changed).
    let current = RwSignal::new(None::<usize>);
    // The chosen view is kept in the URL (`tab=`): a reload, a link and back/forward keep it.
    let tab = RwSignal::new(trace_info::view_tab(&state.get_untracked().tab));
    Effect::new(move |_| {
        let t = tab.get();
        if state.with_untracked(|s| s.tab != t) {
            state.update(|s| s.tab = t.to_string());
        }
    });
    Effect::new(move |_| {
        let t = trace_info::view_tab(&state.with(|s| s.tab.clone()));
        if tab.get_untracked() != t {
            tab.set(t);
        }
    });
    let levels = RwSignal::new(String::from("all"));
    // The shown time range, as fractions of the trace (the minimap's drag sets it).
    let zoom = RwSignal::new((0.0f64, 1.0f64));
    let lm = send_wrapper::SendWrapper::new(l.clone());
    let rows = Memo::new(move |_| collapsed.with(|c| lm.m.visible_rows(c)));
    let lm = send_wrapper::SendWrapper::new(l.clone());
    let matches = Memo::new(move |_| query.with(|q| trace_info::search(&lm.m, q)));
    let match_set = Memo::new(move |_| matches.with(|v| v.iter().copied().collect::<HashSet<_>>()));
    let scroller = NodeRef::<leptos::html::Div>::new();
    let search_box = NodeRef::<leptos::html::Input>::new();

    // Scrolls row `i` into view when it is not (rows below the sticky ruler).
    let scroll_to = move |i: usize| {
        let Some(pos) = rows.with_untracked(|r| r.iter().position(|&x| x == i)) else {
            return;
        };
        let Some(el) = scroller.get_untracked() else {
            return;
        };
        let top = pos as f64 * ROW_PX;
        let (st, h) = (el.scroll_top() as f64, el.client_height() as f64 - RULER_PX);
        if top < st || top + ROW_PX > st + h {
            el.set_scroll_top((top - h / 2.0).max(0.0) as i32);
        }
    };
    // A Copy handle on the trace for the closures that several handlers share.
    let store = StoredValue::new_local(l.clone());
    // Selects span `i`, expanding its collapsed ancestors first.
    let reveal = move |i: usize| {
        let up = store.with_value(|l| trace_info::ancestors(&l.m, i));
        if collapsed.with_untracked(|c| up.iter().any(|a| c.contains(a))) {
            collapsed.update(|c| {
                up.iter().for_each(|a| {
                    c.remove(a);
                })
            });
        }
        selected.set(Some(i));
        scroll_to(i);
    };
    let step_match = move |by: isize| {
        let n = matches.with_untracked(|m| m.len());
        if n == 0 {
            return;
        }
        let k = match current.get_untracked() {
            None if by < 0 => n - 1,
            None => 0,
            Some(c) => (c as isize + by).rem_euclid(n as isize) as usize,
        };
        current.set(Some(k));
        if let Some(i) = matches.with_untracked(|m| m.get(k).copied()) {
            reveal(i);
        }
    };
    let toggle = move |i: usize| {
        collapsed.update(|c| {
            if !c.remove(&i) {
                c.insert(i);
            }
        })
    };
    let has_kids = move |i: usize| store.with_value(|l| !l.m.children[i].is_empty());
    // j/k (or ↓/↑) move through the rows, Enter expands/collapses, / focuses the span search.
    let keys = window_event_listener(leptos::ev::keydown, move |ev| {
        if ev.ctrl_key() || ev.meta_key() || ev.alt_key() || in_control(&ev) {
            return;
        }
        let key = ev.key();
        match key.as_str() {
            "/" => {
                ev.prevent_default();
                if let Some(el) = search_box.get_untracked() {
                    let _ = el.focus();
                }
            }
            "j" | "k" | "ArrowDown" | "ArrowUp" => {
                ev.prevent_default();
                let down = key == "j" || key == "ArrowDown";
                let next = rows.with_untracked(|r| {
                    let at = selected
                        .get_untracked()
                        .and_then(|s| r.iter().position(|&x| x == s));
                    let p = match at {
                        None => 0,
                        Some(p) if down => (p + 1).min(r.len().saturating_sub(1)),
                        Some(p) => p.saturating_sub(1),
                    };
                    r.get(p).copied()
                });
                if let Some(i) = next {
                    selected.set(Some(i));
                    scroll_to(i);
                }
            }
            "Enter" => {
                if let Some(i) = selected.get_untracked().filter(|&i| has_kids(i)) {
                    ev.prevent_default();
                    toggle(i);
                }
            }
            _ => {}
        }
    });
    on_cleanup(move || keys.remove());

    let s = l.summary.clone();
    let m = &l.m;
    let all_parents: Rc<HashSet<usize>> = Rc::new(trace_info::collapse_below(m, 0));
    let lm = send_wrapper::SendWrapper::new(l.clone());
    let set_levels = move |v: String| {
        levels.set(v.clone());
        match v.parse::<u32>() {
            Ok(n) => collapsed.set(trace_info::collapse_below(&lm.m, n)),
            Err(_) => collapsed.set(HashSet::new()),
        }
    };
    let ap = send_wrapper::SendWrapper::new(all_parents);
    let dur = s.duration_us.max(1) as f64;
    let ticks = Memo::new(move |_| {
        let (a, b) = zoom.get();
        trace_info::ticks_between(a * dur, b * dur, 6)
    });
    let lmini = send_wrapper::SendWrapper::new(l.clone());
    let lm = send_wrapper::SendWrapper::new(l.clone());
    let ld = send_wrapper::SendWrapper::new(l.clone());
    let lstats = send_wrapper::SendWrapper::new(l.clone());
    let start_abs = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(m.start_us as f64 / 1e3))
        .to_iso_string()
        .as_string()
        .unwrap_or_default();
    view! {
        <div class="wf-head" data-testid="trace-header" data-duration-us=s.duration_us data-services=s.services.len()
            data-depth=s.depth data-spans=s.span_count data-errors=s.error_count>
            <strong>{format!("Trace {id}")}</strong>
            <span class="fig"><span class="muted">"started "</span>{start_abs}</span>
            <span class="fig"><span class="muted">"duration "</span>{fmt_us(s.duration_us)}</span>
            <span class="fig"><span class="muted">"services "</span>{s.services.len()}</span>
            <span class="fig"><span class="muted">"depth "</span>{if l.partial { "…".to_string() } else { s.depth.to_string() }}</span>
            <span class="fig"><span class="muted">"spans "</span>{s.span_count}</span>
            {(s.error_count > 0).then(|| view! { <span class="fig err">{format!("{} error{}", s.error_count, if s.error_count == 1 { "" } else { "s" })}</span> })}
        </div>
        <ul class="svc-legend" data-testid="service-legend" aria-label="services (colour in the waterfall)">
            {s.services.iter().map(|(name, n)| view! {
                <li data-service=name.clone() data-colour=service_colour(name)>
                    <span class="swatch" style:background-color=service_colour(name)></span>{if *n > 0 { format!("{name} ({n})") } else { name.clone() }}</li>
            }).collect_view()}
        </ul>
        {l.partial.then(|| view! { <p class="msg muted" role="status" data-testid="trace-loading">
            {format!("loading the rest of the trace: showing its first {} of {} spans", m.spans.len(), s.span_count)}</p> })}
        {m.truncated.then(|| view! { <p class="msg warn" role="status" data-testid="trace-truncated">
            {format!("truncated: showing the first {} spans of a bigger trace (the server's --query-max-trace-spans)", m.spans.len())}</p> })}
        <div class="wf-tools">
            <div role="group" aria-label="trace views">
                <button data-testid="tab-timeline" aria-pressed=move || (tab.get() == "timeline").to_string() on:click=move |_| tab.set("timeline")>"Timeline"</button>
                <button data-testid="tab-stats" aria-pressed=move || (tab.get() == "stats").to_string() on:click=move |_| tab.set("stats")>"Statistics"</button>
                <button data-testid="tab-spans" aria-pressed=move || (tab.get() == "spans").to_string() on:click=move |_| tab.set("spans")>"Spans table"</button>
                <button data-testid="tab-flame" aria-pressed=move || (tab.get() == "flame").to_string() on:click=move |_| tab.set("flame")>"Flame graph"</button>
                <button data-testid="tab-graph" aria-pressed=move || (tab.get() == "graph").to_string() on:click=move |_| tab.set("graph")>"Graph"</button>
            </div>
            <button data-testid="expand-all" on:click=move |_| { levels.set("all".into()); collapsed.set(HashSet::new()) }>"expand all"</button>
            <button data-testid="collapse-all" on:click=move |_| { levels.set("1".into()); collapsed.set((*ap).as_ref().clone()) }>"collapse all"</button>
            <label>"levels "<select data-testid="levels" prop:value=move || levels.get() on:change=move |ev| set_levels(event_target_value(&ev))>
                <option value="all">"all"</option>
                {(1..s.depth.min(12)).map(|d| view! { <option value=d.to_string()>{d.to_string()}</option> }).collect_view()}
            </select></label>
            <label class="span-search">"find "
                <input data-testid="span-search" node_ref=search_box type="search" placeholder="service, operation, span id or attribute  ( / )"
                    title="matches the service, operation, span id, and the keys and values of the span's and its resource's attributes and of its events"
                    aria-keyshortcuts="/" prop:value=move || query.get()
                    on:input=move |ev| { query.set(event_target_value(&ev)); current.set(None); }
                    on:keydown=move |ev: web_sys::KeyboardEvent| match ev.key().as_str() {
                        "Enter" => { ev.prevent_default(); step_match(if ev.shift_key() { -1 } else { 1 }) }
                        "Escape" => { if let Some(el) = search_box.get_untracked() { let _ = el.blur(); } }
                        _ => {}
                    } /></label>
            <span data-testid="span-search-count" role="status" data-matches=move || matches.with(|m| m.len())>
                {move || { let n = matches.with(|m| m.len()); if query.with(|q| q.trim().is_empty()) { String::new() }
                    else if n == 0 { "no match".into() } else { match current.get() {
                        None => format!("{n} matches"), Some(k) => format!("{} of {n} matches", k + 1) } } }}</span>
            <button aria-label="previous match" on:click=move |_| step_match(-1)>"↑"</button>
            <button aria-label="next match" on:click=move |_| step_match(1)>"↓"</button>
            <span class="muted keys">"j/k move · Enter expand · / find"</span>
        </div>
        // Drawn for the whole trace only (the first rows of a big one are soon replaced).
        // The timeline's overview: not over the other views (they have their own scales).
        {(!l.partial).then_some(move || (tab.get() == "timeline").then(|| view! { <Minimap l=lmini.clone() zoom=zoom /> }))}
        <div class="wf-body">
            {move || if tab.get() == "stats" {
                view! { <StatsTable l=lstats.clone() /> }.into_any()
            } else if tab.get() == "spans" {
                // A row opens its span in the timeline.
                view! { <SpansTable l=lstats.clone() on_pick=move |i: usize| { tab.set("timeline"); reveal(i) } /> }.into_any()
            } else if tab.get() == "flame" {
                // A frame shows its first span's detail beside the graph.
                view! { <FlameGraph l=lstats.clone() on_pick=move |i: usize| selected.set(Some(i)) /> }.into_any()
            } else if tab.get() == "graph" {
                view! { <TraceGraph l=lstats.clone() /> }.into_any()
            } else {
            let lm = lm.clone();
            view! {
            <div class="wf-scroll" node_ref=scroller data-row-count=move || rows.get().len()
                on:scroll=move |_| if let Some(el) = scroller.get() { scroll.set(el.scroll_top() as f64); height.set(el.client_height() as f64) }>
                <div class="wf-ruler" data-testid="time-ruler">
                    <div class="label muted">"service · operation"</div>
                    <div class="track">{move || ticks.get().into_iter().map(|t| view! {
                        <span class="tick" data-label=t.label.clone() style:left=format!("{:.3}%", t.pct)>{t.label.clone()}</span>
                    }).collect_view()}</div>
                </div>
                <div class="wf-rows" style:height=move || format!("{}px", rows.get().len() as f64 * ROW_PX)>
                {move || ticks.get().into_iter().map(|t| view! { <div class="grid-line" style:left=format!("calc(40% + {:.3}%)", t.pct * 0.6)></div> }).collect_view()}
                {move || {
                    let rows = rows.get();
                    let first = ((scroll.get() / ROW_PX) as usize).saturating_sub(10);
                    let last = (first + (height.get() / ROW_PX) as usize + 30).min(rows.len());
                    let l: Rc<Loaded> = (*lm).clone();
                    let m = &l.m;
                    let (za, zb) = zoom.get();
                    let zw = (zb - za).max(1e-6);
                    rows[first.min(last)..last].iter().enumerate().map(|(k, &i)| {
                        let s = &m.spans[i];
                        // In % of the zoomed range (bars outside it are clipped by the track).
                        let left = ((s.start_us - m.start_us) as f64 / m.duration_us() as f64 - za) / zw * 100.0;
                        let width = s.duration_us as f64 / m.duration_us() as f64 / zw * 100.0;
                        let kids = if l.partial { 0 } else { m.children[i].len() };
                        let below = l.descendants[i];
                        let open = !collapsed.with(|c| c.contains(&i));
                        let after = trace_info::label_after(left, width);
                        let colour = service_colour(&s.service);
                        view! {
                            <div class="wf-row" class:critical=m.critical[i] class:error=s.is_error()
                                class:selected=move || selected.get() == Some(i) class:match=move || match_set.with(|x| x.contains(&i))
                                data-span-id=s.span_id.clone() data-service=s.service.clone() data-depth=m.depth[i]
                                style:top=format!("{}px", (first + k) as f64 * ROW_PX)
                                on:click=move |_| selected.set(Some(i))>
                                <div class="label" style:padding-left=format!("{}px", m.depth[i].min(60) * 12)>
                                    <span class="toggle" on:click=move |ev| { ev.stop_propagation(); toggle(i) }>
                                        {if kids > 0 { if open { "▾" } else { "▸" } } else { "" }}</span>
                                    <span class="swatch" style:background-color=colour></span>
                                    {s.is_error().then(|| view! { <span class="err-mark" title="error">"!"</span> })}
                                    <strong>{s.service.clone()}</strong>" "{s.name.clone()}
                                    {(kids > 0).then(|| view! { <span class="kids" data-testid="child-count" data-children=kids data-below=below
                                        title=format!("{kids} children, {below} spans below")>{kids.to_string()}</span> })}
                                </div>
                                <div class="track">
                                    <div class="span-bar" style:left=format!("{left:.3}%") style:width=format!("{width:.3}%") style:background-color=colour></div>
                                    {s.events.iter().map(|e| {
                                        let at = ((e.time_us - m.start_us) as f64 / m.duration_us() as f64 - za) / zw * 100.0;
                                        let title = format!("{} at +{}", e.name, fmt_us(e.time_us - s.start_us));
                                        view! { <span class="ev-mark" data-testid="event-mark" data-name=e.name.clone() title=title
                                            style:left=format!("{at:.3}%")></span> }
                                    }).collect_view()}
                                    <span class="dur" class:before=!after style:left=format!("{:.3}%", if after { left + width } else { left })>{fmt_us(s.duration_us)}</span>
                                </div>
                            </div>
                        }
                    }).collect_view()
                }}
                </div>
            </div> }.into_any() }}
            {move || selected.get().map(|i| view! { <SpanDetail l=ld.clone() i=i state=state /> })}
        </div>
    }
}

#[component]
fn SpanDetail(
    l: send_wrapper::SendWrapper<Rc<Loaded>>,
    i: usize,
    state: RwSignal<UrlState>,
) -> impl IntoView {
    let s = l.m.detail(i);
    let svc = s.service.clone();
    let call = l.m.call_edge(i);
    view! {
        <aside class="side" data-testid="span-detail">
            <h3><span class="swatch" style:background-color=service_colour(&s.service)></span>{format!("{}: {}", s.service, s.name)}</h3>
            <p>{format!("{} · {} · status {} {}", s.kind, fmt_us(s.duration_us), s.status.code, s.status.message)}</p>
            <p class="muted">{format!("span {} · starts at +{}", s.span_id, fmt_us(s.start_us - l.m.start_us))}</p>
            <button on:click={ let svc = svc.clone(); move |_| state.update(|st| { st.view = "map".into(); st.level = "focused".into(); st.focus = svc.clone(); st.edge.clear(); }) }>"Show service on the map"</button>
            {call.map(|(from, to)| { let label = format!("Show the call {from} → {to} on the map"); view! {
                " "<button data-testid="span-edge-link" on:click=move |_| state.update(|st| {
                    // Focused on the callee: the edge is drawn whatever the filters.
                    st.view = "map".into(); st.level = "focused".into(); st.focus = to.clone();
                    st.edge = format!("{from}->{to}"); st.errors_only = false; st.min_rate = 0.0; st.hide_virtual = false;
                })>{label}</button> }})}
            <h4>"Attributes"</h4>
            <table class="data"><tbody>{s.attributes.iter().chain(s.resource.iter()).map(|(k, v)| view! { <tr><td>{k.clone()}</td><td>{v.clone()}</td></tr> }).collect_view()}</tbody></table>
            <h4>{format!("Events ({})", s.events.len())}</h4>
            <ul class="events" data-testid="span-events">{s.events.iter().map(|e| view! {
                <li data-name=e.name.clone()><strong>{e.name.clone()}</strong>{format!(" at +{}", fmt_us(e.time_us - s.start_us))}
                    {(!e.attributes.is_empty()).then(|| view! { <table class="data"><tbody>{e.attributes.iter().map(|(k, v)| view! {
                        <tr><td>{k.clone()}</td><td>{v.clone()}</td></tr> }).collect_view()}</tbody></table> })}
                </li> }).collect_view()}</ul>
            <h4>{format!("Links ({})", s.links.len())}</h4>
            <ul class="links">{s.links.iter().map(|lk| { let t = lk.trace_id.clone(); let same = state.with_untracked(|st| st.trace.eq_ignore_ascii_case(&t)); view! {
                <li><a href=format!("?view=trace&trace={}", lk.trace_id) data-testid="span-link" data-trace-id=lk.trace_id.clone()
                    on:click=move |ev| { ev.prevent_default(); state.update(|st| { st.view = "trace".into(); st.trace = t.clone(); }) }>
                    {format!("{}trace {} span {}", if same { "this " } else { "" }, lk.trace_id, lk.span_id)}</a>
                    {(!lk.attributes.is_empty()).then(|| view! { <table class="data"><tbody>{lk.attributes.iter().map(|(k, v)| view! {
                        <tr><td>{k.clone()}</td><td>{v.clone()}</td></tr> }).collect_view()}</tbody></table> })}
                </li> }}).collect_view()}</ul>
        </aside>
    }
}

/// The trace overview: every span as a thin line in its service's colour (row order top to
/// bottom, time left to right), drawn on a canvas once, after the first rows are on screen.
/// Dragging across it zooms the timeline to that range; "reset zoom" shows the whole trace.
#[component]
fn Minimap(l: send_wrapper::SendWrapper<Rc<Loaded>>, zoom: RwSignal<(f64, f64)>) -> impl IntoView {
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    let track = NodeRef::<leptos::html::Div>::new();
    // (where the drag started, where the pointer is), fractions of the track.
    let drag = RwSignal::new(None::<(f64, f64)>);
    // Dragging the selected range pans it: (where the drag started, the range then).
    let pan = RwSignal::new(None::<(f64, (f64, f64))>);
    let frac = move |x: i32| {
        track.get_untracked().map(|t| {
            let r = t.get_bounding_client_rect();
            ((x as f64 - r.left()) / r.width().max(1.0)).clamp(0.0, 1.0)
        })
    };
    let drawn = std::cell::Cell::new(false);
    Effect::new(move |_| {
        let Some(c) = canvas.get() else { return };
        if drawn.replace(true) {
            return;
        }
        let l = l.clone();
        // Not in the task that puts the first rows on screen: on 50,000 spans drawing takes tens
        // of ms, which would delay them.
        set_timeout(
            move || draw_minimap(&c, &l.m),
            std::time::Duration::from_millis(150),
        );
    });
    let moving = window_event_listener(leptos::ev::mousemove, move |ev| {
        if let (Some((x0, z0)), Some(x)) = (pan.get_untracked(), frac(ev.client_x())) {
            zoom.set(trace_info::pan_range(z0, x - x0));
        } else if let (Some((x0, _)), Some(x)) = (drag.get_untracked(), frac(ev.client_x())) {
            drag.set(Some((x0, x)));
        }
    });
    let up = window_event_listener(leptos::ev::mouseup, move |ev| {
        pan.set(None);
        if let Some((x0, _)) = drag.get_untracked() {
            drag.set(None);
            if let Some(x) = frac(ev.client_x()) {
                // The overview always shows the whole trace: the drag is the new range.
                if let Some(r) = trace_info::drag_range(x0, x) {
                    zoom.set(r);
                }
            }
        }
    });
    on_cleanup(move || {
        moving.remove();
        up.remove();
    });
    let pct = |f: f64| format!("{:.3}%", f * 100.0);
    view! {
        <div class="minimap" data-testid="minimap" data-zoom=move || { let (a, b) = zoom.get(); format!("{a:.4},{b:.4}") }>
            <div class="label">
                <span class="muted">"overview: drag to zoom, drag the shown range to pan "</span>
                <button data-testid="zoom-reset" disabled=move || zoom.get() == (0.0, 1.0) on:click=move |_| zoom.set((0.0, 1.0))>"reset zoom"</button>
            </div>
            <div class="mm-track" node_ref=track
                on:mousedown=move |ev| { ev.prevent_default(); if let Some(x) = frac(ev.client_x()) {
                    let z = zoom.get_untracked();
                    // Inside a zoomed range: pan it; elsewhere: select a new one.
                    if z != (0.0, 1.0) && (z.0..=z.1).contains(&x) { pan.set(Some((x, z))) } else { drag.set(Some((x, x))) }
                } }>
                <canvas node_ref=canvas aria-hidden="true"></canvas>
                <div class="mm-shade" style:left="0%" style:width=move || pct(zoom.get().0)></div>
                <div class="mm-shade" style:left=move || pct(zoom.get().1) style:width=move || pct(1.0 - zoom.get().1)></div>
                {move || (zoom.get() != (0.0, 1.0)).then(|| view! { <div class="mm-window" data-testid="minimap-window"
                    style:position="absolute" style:top="0" style:bottom="0" style:cursor=move || if pan.get().is_some() { "grabbing" } else { "grab" }
                    style:left=move || pct(zoom.get().0) style:width=move || pct(zoom.get().1 - zoom.get().0)></div> })}
                {move || drag.get().map(|(x0, x)| view! {
                    <div class="mm-sel" style:left=pct(x0.min(x)) style:width=pct((x - x0).abs())></div> })}
            </div>
        </div>
    }
}

fn draw_minimap(c: &web_sys::HtmlCanvasElement, m: &TraceModel) {
    let (w, h) = (
        c.client_width().max(1) as f64,
        c.client_height().max(1) as f64,
    );
    c.set_width(w as u32);
    c.set_height(h as u32);
    let Some(ctx) = c
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|x| x.dyn_into::<web_sys::CanvasRenderingContext2d>().ok())
    else {
        return;
    };
    let order = m.visible_rows(&HashSet::new());
    let n = order.len().max(1) as f64;
    let d = m.duration_us() as f64;
    let line = (h / n).max(1.0);
    // Grouped by colour: one fill-style change per colour, not per span.
    let mut by_colour: Vec<(&str, usize, usize)> = order
        .iter()
        .enumerate()
        .map(|(k, &i)| (service_colour(&m.spans[i].service), k, i))
        .collect();
    by_colour.sort_unstable_by_key(|x| x.0);
    let mut current = "";
    for (colour, k, i) in by_colour {
        let s = &m.spans[i];
        if colour != current {
            ctx.set_fill_style_str(colour);
            current = colour;
        }
        ctx.fill_rect(
            (s.start_us - m.start_us) as f64 / d * w,
            k as f64 / n * h,
            (s.duration_us as f64 / d * w).max(1.0),
            line,
        );
    }
}
