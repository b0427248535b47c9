//! The map view's markup — breadcrumb and filters, the stage with the canvases, the node list
//! that mirrors them, the legend, and the side panel — on top of its parts (`map_data`,
//! `map_input`, `map_frame`), which share the state in `map_state`.

use super::map_input::{self, drill};
use super::map_rows::{self, EdgeRow, NodeRow, Shown};
use super::map_state::{EdgeItem, Map, NodeItem, Shared};
use super::onboarding::EmptyState;
use super::panels::{DiffPanel, Legend, SidePanel};
use super::replay_bar::{self, ReplayBar};
use super::{Panel, UrlState};
use crate::encoding::fmt_rate;
use crate::map_lists;
use crate::stream::StreamState;
use leptos::prelude::*;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

#[component]
pub(crate) fn MapView(
    state: RwSignal<UrlState>,
    board: RwSignal<Option<Result<crate::checks::Board, String>>>,
) -> impl IntoView {
    let m = Map {
        state,
        canvas: NodeRef::new(),
        overlay: NodeRef::new(),
        status: RwSignal::new(String::from("loading the map…")),
        stream_state: RwSignal::new(StreamState::Connecting),
        nodes: RwSignal::new(Vec::new()),
        edges: RwSignal::new(Vec::new()),
        list_filter: RwSignal::new(String::new()),
        meta: RwSignal::new((0.0, crate::api::DataQuality::default(), String::new())),
        hover: RwSignal::new(None),
        panel: RwSignal::new(Panel::None),
        locate: RwSignal::new(String::new()),
        backend: RwSignal::new(String::new()),
        diff: RwSignal::new(None),
        playing: RwSignal::new(false),
        speed: RwSignal::new(4.0),
        empty: RwSignal::new(false),
        sidebar: RwSignal::new(true),
        grouping: RwSignal::new(None),
    };
    let sh = Shared {
        ms: Rc::new(RefCell::new(None)),
        added_edges: Rc::default(),
        fetch_gen: Rc::new(Cell::new(0)),
        upload_gen: Rc::default(),
        busy: Rc::new(Cell::new(false)),
        alive: Rc::new(Cell::new(true)),
        pending_click: Rc::default(),
    };
    super::map_frame::install(m, &sh);
    super::map_data::install(m, &sh);
    replay_bar::step_while_playing(state, m.playing, m.speed, sh.busy.clone());
    map_input::install_keys(m);
    let Map {
        canvas,
        overlay,
        status,
        stream_state,
        nodes,
        edges,
        meta,
        hover,
        panel,
        locate,
        backend,
        diff,
        playing,
        speed,
        empty,
        sidebar,
        list_filter,
        ..
    } = m;
    let (on_move, on_down, on_up, on_dbl, on_wheel) = (
        map_input::on_move(m, &sh),
        map_input::on_down(m, &sh),
        map_input::on_up(m, &sh),
        map_input::on_dbl(m, &sh),
        map_input::on_wheel(m, &sh),
    );
    // The lists beside the map show a bounded part of the graph (`map_lists`): the entry, the
    // failing, then the busiest, at most `LIST_CAP` rows each, of those the filter matches —
    // as the rows should show them; the rows on screen follow that a chunk per task
    // (`map_rows`), never all of a big map's rows in one task.
    let filter = Memo::new(move |_| map_lists::normalise(&list_filter.get()));
    let picked_nodes = Memo::new(move |_| {
        let f = filter.get();
        nodes.with(|ns| {
            let s = map_lists::pick(
                ns.len(),
                map_lists::LIST_CAP,
                |i| map_lists::matches(&f, [ns[i].id.as_str(), ns[i].name.as_str()]),
                |i| match &ns[i] {
                    n if n.kind == "entry" => map_lists::Rank {
                        urgency: 0,
                        rps: f64::INFINITY,
                    },
                    n => map_lists::Rank::of_health(&n.health, n.rps),
                },
            );
            let rows: Vec<(String, NodeRow)> = s
                .rows
                .iter()
                .map(|&i| (ns[i].id.clone(), node_row(&ns[i])))
                .collect();
            (rows, s.more())
        })
    });
    let picked_edges = Memo::new(move |_| {
        let f = filter.get();
        edges.with(|es| {
            let s = map_lists::pick(
                es.len(),
                map_lists::LIST_CAP,
                |i| {
                    let e = &es[i];
                    map_lists::matches(&f, [e.source.as_str(), e.target.as_str()])
                        || (f.contains("->")
                            && map_lists::matches(
                                &f,
                                [format!("{}->{}", e.source, e.target).as_str()],
                            ))
                },
                |i| map_lists::Rank::of_health(&es[i].state, es[i].rps),
            );
            let rows: Vec<((String, String), EdgeRow)> = s
                .rows
                .iter()
                .map(|&i| {
                    (
                        (es[i].source.clone(), es[i].target.clone()),
                        edge_row(&es[i]),
                    )
                })
                .collect();
            (rows, s.more())
        })
    });
    let shown_nodes: Shown<String, NodeRow> = RwSignal::new(Vec::new());
    let shown_edges: Shown<(String, String), EdgeRow> = RwSignal::new(Vec::new());
    let lists_busy = RwSignal::new(false);
    map_rows::follow(
        vec![
            map_rows::list(
                Memo::new(move |_| picked_nodes.with(|p| p.0.clone())),
                shown_nodes,
            ),
            map_rows::list(
                Memo::new(move |_| picked_edges.with(|p| p.0.clone())),
                shown_edges,
            ),
        ],
        lists_busy,
    );
    // The checks' notices on the map: after every graph applied (`nodes` changes) and every
    // board polled, the scene marks the targets; the same list is the marks' text alternative.
    let notice_text = RwSignal::new(Vec::<String>::new());
    {
        let ms = sh.ms.clone();
        Effect::new(move || {
            nodes.track();
            let b = board.with(|b| b.as_ref().and_then(|r| r.as_ref().ok()).cloned());
            if let Ok(mut guard) = ms.try_borrow_mut()
                && let Some(m) = guard.as_mut()
            {
                if m.scene.set_board(b) {
                    m.renderer.upload(&m.scene);
                }
                let (nv, ev) = (&m.scene.notices.nodes, &m.scene.notices.edges);
                let rules = |v: &Vec<crate::checks::Notice>| {
                    v.iter()
                        .map(|n| n.rule.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let lines: Vec<String> = (nv.iter().map(|(id, v)| format!("{id}: {}", rules(v))))
                    .chain(ev.iter().map(|(id, v)| format!("{id}: {}", rules(v))))
                    .collect();
                // Unchanged (every live update): the list is not rebuilt.
                if notice_text.with_untracked(|t| *t != lines) {
                    notice_text.set(lines);
                }
            }
        });
    }
    let do_locate = map_input::do_locate(m, &sh);
    let unpin = map_input::unpin(m, &sh);

    view! {
        // One line from 1280 px up: the breadcrumb on the left, the filters on the right;
        // below that width the filters wrap under it as a whole.
        <div class="breadcrumb map-bar" data-testid="map-bar">
            <nav class="crumbs" aria-label="breadcrumb">
                <button on:click=move |_| state.update(|s| { s.level = "global".into(); s.region.clear(); s.focus.clear(); })>"Global"</button>
                {move || { let s = state.get(); (s.level != "global").then(|| view! {
                    <span aria-hidden="true">"›"</span>
                    <button on:click=move |_| state.update(|s| { s.level = "region".into(); s.focus.clear(); })>
                        {if s.region.is_empty() { "All regions".to_string() } else { s.region.clone() }}
                    </button>
                })}}
                {move || { let s = state.get(); (s.level == "focused").then(|| view! { <span aria-hidden="true">"›"</span><strong data-testid="focused">{s.focus.clone()}</strong> })}}
                {move || { let s = state.get(); (s.level == "region" && !s.ns.is_empty()).then(|| view! {
                    <span aria-hidden="true">"›"</span><button data-testid="collapse-namespaces" title="collapse the opened namespaces" on:click=move |_| state.update(|s| s.ns.clear())>
                        {format!("{} ×", s.ns)}</button> })}}
            </nav>
            <div class="filters">
                <input type="search" class="locate" placeholder="locate a service" aria-label="locate a service" prop:value=move || locate.get()
                    on:input=move |ev| locate.set(event_target_value(&ev))
                    on:keydown={ let do_locate = do_locate.clone(); move |ev: web_sys::KeyboardEvent| if ev.key() == "Enter" { do_locate() } } />
                <label title="only edges with errors"><input type="checkbox" prop:checked=move || state.get().errors_only on:change=move |ev| { let c = event_target_checked(&ev); state.update(|s| s.errors_only = c) } />" errors only"</label>
                <label title="hide databases, caches and external peers"><input type="checkbox" prop:checked=move || state.get().hide_virtual on:change=move |ev| { let c = event_target_checked(&ev); state.update(|s| s.hide_virtual = c) } />" hide virtual"</label>
                <label>"min rate "<input type="number" min="0" step="0.1" class="w-70" prop:value=move || state.get().min_rate.to_string()
                    on:change=move |ev| { let v = event_target_value(&ev).parse().unwrap_or(0.0); state.update(|s| s.min_rate = v) } /></label>
                <label title="compare with the previous window of the same length"><input type="checkbox" data-testid="diff-toggle" prop:checked=move || state.get().diff on:change=move |ev| { let c = event_target_checked(&ev); state.update(|s| s.diff = c) } />" diff"</label>
                <crate::grouping::GroupingControl value=Signal::derive(move || state.get().group)
                    grouping=m.grouping
                    on_change=move |v: String| state.update(|s| { s.group = v; s.ns.clear(); }) />
                <button on:click=unpin title="forget the nodes dragged into place in this view">"unpin all"</button>
            </div>
        </div>
        <ReplayBar state=state playing=playing speed=speed />
        <div class="main">
            // The left column and the side panel sit beside the map, never over it: the canvas
            // takes the free area and the map is fitted into it.
            <div class="map-side" class:collapsed=move || !sidebar.get() data-testid="map-sidebar">
                <button class="side-toggle" data-testid="sidebar-toggle" aria-controls="map-side-body"
                    aria-expanded=move || sidebar.get().to_string()
                    title=move || if sidebar.get() { "hide the service list" } else { "show the service list" }
                    on:click=move |_| sidebar.update(|o| *o = !*o)>
                    {move || if sidebar.get() { "◀ services" } else { "▶" }}</button>
                <div id="map-side-body" class="map-side-body" hidden=move || !sidebar.get()>
                    // The checks that fire (H6's notices; nothing when none does).
                    <crate::checks::NoticesPanel state=state board=board />
                    <input type="search" class="list-filter" data-testid="map-list-filter" placeholder="filter services and edges"
                        aria-label="filter the services and edges listed" prop:value=move || list_filter.get()
                        on:input=move |ev| list_filter.set(event_target_value(&ev)) />
                    <ul class="node-list" data-testid="map-nodes" aria-label="services on the map" aria-busy=move || lists_busy.get().to_string()>
                        // Keyed by id, the figures and position reactive: a live update never
                        // replaces the row, so keyboard focus stays on it.
                        <For each=move || shown_nodes.get() key=|(id, _)| id.clone() children=move |(id, r): (String, ArcRwSignal<NodeRow>)| {
                            let at = { let r = r.clone(); move |f: fn(&NodeRow) -> String| { let r = r.clone(); move || r.with(f) } };
                            let kind = { let r = r.clone(); move || r.with_untracked(|n| n.kind.clone()) };
                            let (id2, kind2) = (id.clone(), kind.clone());
                            view! {
                                <li tabindex="0" class=at(|n| n.health.clone()) data-node-id=id.clone() data-x=at(|n| n.x.to_string()) data-y=at(|n| n.y.to_string())
                                    data-kind=at(|n| n.kind.clone()) data-health=at(|n| n.health.clone()) data-namespace=at(|n| n.namespace.clone())
                                    on:click={ let id = id.clone(); move |_| panel.set(Panel::Node(id.clone())) }
                                    on:keydown={ let id = id.clone(); move |ev: web_sys::KeyboardEvent| match ev.key().as_str() {
                                        // Keyboard: Enter opens the panel, Shift+Enter drills down.
                                        "Enter" if ev.shift_key() => drill(state, id.clone(), kind()),
                                        "Enter" => panel.set(Panel::Node(id.clone())),
                                        _ => {}
                                    } }
                                    on:dblclick=move |_| drill(state, id2.clone(), kind2())>
                                    {at(|n| n.text.clone())}
                                </li>
                            }
                        } />
                    </ul>
                    {move || { let more = picked_nodes.with(|s| s.1); (more > 0).then(|| view! {
                        <p class="list-more" data-testid="map-nodes-more">{map_lists::more_line(more, "services")}</p> }) }}
                    // The edges as text (the keyboard's and screen readers' way to them), closed
                    // by default so Tab does not walk through them on the way to the map.
                    <details class="edge-list" data-testid="map-edges-box">
                        <summary>{move || format!("edges ({})", edges.with(Vec::len))}</summary>
                        <ul class="node-list" data-testid="map-edges" aria-label="edges on the map" aria-busy=move || lists_busy.get().to_string()>
                            <For each=move || shown_edges.get() key=|(k, _)| k.clone() children=move |((s, t), r): ((String, String), ArcRwSignal<EdgeRow>)| {
                                let at = move |f: fn(&EdgeRow) -> String| { let r = r.clone(); move || r.with(f) };
                                let (s2, t2) = (s.clone(), t.clone());
                                let id = crate::api::EdgeId::new(s.clone(), t.clone()).to_string();
                                let id2 = id.clone();
                                view! { <li tabindex="0" class=at(|e| e.state.clone()) data-edge-id=id data-health=at(|e| e.state.clone()) data-error-rate=at(|e| e.error_rate.clone())
                                    data-selected=move || state.with(|s| (s.edge == id2).to_string())
                                    on:click=move |_| panel.set(Panel::Edge(s.clone(), t.clone()))
                                    on:keydown=move |ev: web_sys::KeyboardEvent| if ev.key() == "Enter" { panel.set(Panel::Edge(s2.clone(), t2.clone())) }>
                                    {at(|e| e.text.clone())}</li> }
                            } />
                        </ul>
                        {move || { let more = picked_edges.with(|s| s.1); (more > 0).then(|| view! {
                            <p class="list-more" data-testid="map-edges-more">{map_lists::more_line(more, "edges")}</p> }) }}
                    </details>
                    <Legend meta=meta />
                    {move || diff.get().map(|d| view! { <DiffPanel diff=d /> })}
                </div>
            </div>
            <div class="stage" data-testid="map" data-renderer=move || backend.get() data-level=move || state.get().level
                data-node-count=move || nodes.with(Vec::len) data-edge-count=move || edges.with(Vec::len)
                data-expanded=move || state.get().ns
                data-grouped=move || nodes.with(|n| n.iter().any(|n| n.kind == "namespace" || n.kind == "group")).to_string()
                data-stream=move || match stream_state.get() { StreamState::Connecting => "connecting", StreamState::Live => "live", StreamState::Retrying { .. } => "retrying", StreamState::Unauthorized => "unauthorized" }>
                <canvas node_ref=canvas tabindex="0" aria-label="service map (the list of services beside it has the same nodes)"
                    on:mousemove=on_move on:mousedown=on_down on:mouseup=on_up on:dblclick=on_dbl on:wheel=on_wheel
                    on:mouseleave=move |_| hover.set(None)></canvas>
                <canvas node_ref=overlay class="overlay" aria-hidden="true"></canvas>
                // The text alternative of the notice marks drawn on the map.
                // (Visually hidden through CSSOM: the CSP forbids inline style attributes.)
                <ul style:position="absolute" style:width="1px" style:height="1px" style:overflow="hidden"
                    style:clip="rect(0 0 0 0)" style:white-space="nowrap" style:margin="0" style:padding="0" data-testid="map-notice-marks" aria-label="checks notices on the map">
                    {move || notice_text.get().into_iter().map(|l| view! { <li>{l}</li> }).collect_view()}
                </ul>
                {move || (!status.get().is_empty()).then(|| view! { <div class="panel msg map-status" data-testid="map-status">{status.get()}</div> })}
                {move || empty.get().then(|| view! { <EmptyState /> })}
                {move || match stream_state.get() {
                    StreamState::Retrying { ms, error } => Some(view! { <div class="panel msg stream-status" role="status" data-testid="stream-status">
                        {format!("Live updates interrupted ({error}); reconnecting in {:.0} s…", f64::from(ms) / 1000.0)}</div> }.into_any()),
                    // Unauthorized: the graph fetch's status already says so and the form is open.
                    _ => None,
                }}
                {move || hover.get().map(|(x, y, title, line)| view! {
                    <div class="panel hover" data-testid="hover" style:left=format!("{}px", x + 14.0) style:top=format!("{}px", y + 14.0)>
                        <strong>{title}</strong><div>{line}</div>
                    </div>
                })}
            </div>
            <SidePanel panel=panel state=state />
        </div>
    }
}

/// A service's row as the list shows it.
fn node_row(n: &NodeItem) -> NodeRow {
    NodeRow {
        kind: n.kind.clone(),
        namespace: n.namespace.clone(),
        health: n.health.clone(),
        x: n.x,
        y: n.y,
        text: format!(
            "{} · {} · {:.1}% err",
            n.name,
            fmt_rate(n.rps),
            n.error_rate * 100.0
        ),
    }
}

/// An edge's row as the list shows it.
fn edge_row(e: &EdgeItem) -> EdgeRow {
    EdgeRow {
        state: e.state.clone(),
        error_rate: e.error_rate.to_string(),
        text: format!(
            "{} → {} · {} · {:.1}% err",
            e.source,
            e.target,
            fmt_rate(e.rps),
            e.error_rate * 100.0
        ),
    }
}
