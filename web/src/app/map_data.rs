//! The map view's data: one graph fetch, then the live stream (re-opened when the view or
//! window changes), each graph applied through the filters and the namespace zoom to the
//! layout, the scene and the GPU; and the URL following the open edge panel.

use super::map_state::{EdgeItem, Map, Shared, node_items, pins_key, storage};
use super::{Panel, flag, now_s};
use crate::api::{Graph, GraphDiff};
use crate::diff::{self, Marks};
use crate::layout::{Input, Layout};
use crate::map::perf;
use crate::net::get_json;
use crate::stream::{LiveStream, StreamState};
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;

/// The most particles a map is drawn with (a crowded one thins further: `scene`).
const PARTICLE_BUDGET: u32 = 100_000;

/// Applies a graph: filters, namespace zoom, incremental layout, scene + GPU upload.
fn applier(m: Map, sh: &Shared) -> impl Fn(Graph) + 'static + use<> {
    let Map {
        state,
        nodes,
        edges,
        meta,
        status,
        empty,
        grouping,
        ..
    } = m;
    let Shared {
        ms,
        alive,
        added_edges,
        upload_gen,
        ..
    } = sh.clone();
    move |mut g: Graph| {
        if !alive.get() {
            return;
        }
        let t_apply = perf::now();
        let s = state.get_untracked();
        if s.hide_virtual {
            g.nodes.retain(|n| !n.is_virtual());
        }
        if s.errors_only {
            g.edges.retain(|e| e.metrics.error_rate > 0.0);
        }
        if s.min_rate > 0.0 {
            g.edges.retain(|e| e.metrics.rps >= s.min_rate);
        }
        if s.hide_virtual || s.errors_only || s.min_rate > 0.0 {
            let keep: HashSet<&str> = g
                .edges
                .iter()
                .flat_map(|e| [e.source.as_str(), e.target.as_str()])
                .collect();
            let keep: HashSet<String> = keep.into_iter().map(String::from).collect();
            g.nodes
                .retain(|n| keep.contains(&n.id) || n.focused || n.kind == "entry");
            let ids: HashSet<String> = g.nodes.iter().map(|n| n.id.clone()).collect();
            g.edges
                .retain(|e| ids.contains(&e.source) && ids.contains(&e.target));
        }
        // Grouping (region level): the graph API collapsed the unexpanded groups (`group=auto`:
        // namespaces, only in a crowded region of several; `group=namespace|region|prefix|
        // attr:<key>`: always; see `namespaces::server_group`, `grouping::server_param`) and
        // says what it did.
        let _ = grouping.try_set(g.grouping.clone());
        let marks = match (s.diff, added_edges.borrow().as_ref()) {
            (true, Some(d)) => diff::merge(&mut g, d),
            _ => Marks::default(),
        };
        let mut guard = ms.borrow_mut();
        let Some(m) = guard.as_mut() else { return };
        perf::measure("orrery:prepare", t_apply);
        let t = perf::now();
        let key = pins_key(&s);
        if m.layout_key != key {
            m.layout = Layout::new();
            if let Some(p) = storage().and_then(|st| st.get_item(&key).ok().flatten()) {
                m.layout.set_pins(Layout::pins_from_string(&p));
            }
            m.layout_key = key;
            m.fitted = false;
        }
        let input = Input::of(&g);
        if g.level == "global" {
            m.layout.update_ring(&input, "INTERNET");
        } else {
            // Tall ranks wrap into sub-columns to the shape of the area the fit uses.
            let (w, h) = m.renderer.size_css();
            m.layout
                .set_aspect((w * 0.85 - 100.0).max(100.0) / (h * 0.75 - 100.0).max(100.0));
            m.layout.update_layered(&input);
        }
        perf::measure("orrery:layout", t);
        let t_lists = perf::now();
        let edge_items: Vec<_> = g
            .edges
            .iter()
            .map(|e| EdgeItem {
                source: e.source.clone(),
                target: e.target.clone(),
                state: marks.edge_state(e).to_string(),
                error_rate: e.metrics.error_rate,
                rps: e.metrics.rps,
            })
            .collect();
        meta.set((g.max_volume, g.data_quality.clone(), g.level.clone()));
        // An empty live window shows the onboarding (how to send spans); an empty replayed
        // minute just says so.
        let replaying = s.replaying().is_some();
        empty.set(g.nodes.is_empty() && !replaying);
        status.set(if g.nodes.is_empty() && replaying {
            "No traffic in this minute.".into()
        } else {
            String::new()
        });
        perf::measure("orrery:lists", t_lists);
        let t = perf::now();
        m.scene.marks = marks;
        // The first graph is drawn whole at once (nothing to keep smooth yet); a later one in
        // two tasks: its geometry and labels now, its particles and GPU upload in the next
        // task. At 2,000 services the two together took ~50 ms, one long task per update.
        let first = m.scene.graph.nodes.is_empty();
        m.scene.set_geometry(g, &m.layout, now_s(), true);
        m.renderer.take_graph(&m.scene);
        perf::measure("orrery:scene", t);
        let this = upload_gen.get() + 1;
        upload_gen.set(this);
        let upload = {
            let (ms, upload_gen, alive) = (ms.clone(), upload_gen.clone(), alive.clone());
            move || {
                // A newer update's own upload follows; an unmounted view uploads nothing.
                if upload_gen.get() != this || !alive.get() {
                    return;
                }
                let mut guard = ms.borrow_mut();
                let Some(m) = guard.as_mut() else { return };
                let t = perf::now();
                m.scene.build_particles(None, PARTICLE_BUDGET);
                m.renderer.upload_graph(&m.scene);
                perf::measure("orrery:upload", t);
            }
        };
        // Kiosk mode (wall displays) re-fits on every update: nobody is there to pan.
        if !m.fitted || flag("kiosk") {
            m.fit();
        }
        let node_list = node_items(m);
        perf::measure("orrery:apply", t_apply);
        drop(guard);
        if first {
            upload();
        } else {
            next_task(upload);
        }
        // The lists beside the map take the graph after the next frame is drawn: the map shows
        // first. Their rows then follow it a bounded step per task (`map_rows`), the first in
        // this task, so a big mesh's update is several short tasks, never one long one.
        after_next_frame(move || {
            let t = perf::now();
            let _ = edges.try_set(edge_items);
            let _ = nodes.try_set(node_list);
            perf::measure("orrery:list-nodes", t);
        });
    }
}

/// Runs `f` in a task of its own, as soon as the browser gets to it.
fn next_task(f: impl FnOnce() + 'static) {
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;
    let Some(w) = web_sys::window() else { return };
    let task = Closure::once_into_js(f);
    let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(task.unchecked_ref(), 0);
}

/// Runs `f` in a task after the next animation frame (the frame loop's callback, registered
/// earlier, draws first).
fn after_next_frame(f: impl FnOnce() + 'static) {
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;
    let Some(w) = web_sys::window() else { return };
    let later = Closure::once_into_js(move || next_task(f));
    let _ = w.request_animation_frame(later.unchecked_ref());
}

/// Fetches the graph whenever what it depends on changes, then follows the live stream.
pub(crate) fn install(m: Map, sh: &Shared) {
    let Map {
        state,
        canvas,
        nodes,
        edges,
        status,
        stream_state,
        panel,
        diff,
        ..
    } = m;
    let apply = Rc::new(applier(m, sh));
    {
        let Shared {
            ms,
            added_edges,
            fetch_gen,
            busy,
            ..
        } = sh.clone();
        // Only what changes the data refetches: the selected edge and the panel do not.
        let fetch_key = Memo::new(move |_| {
            let s = state.get();
            (
                s.graph_query(),
                s.diff,
                s.errors_only,
                s.hide_virtual,
                s.min_rate,
                s.live(),
                s.ns.clone(),
                s.group.clone(),
            )
        });
        let shown_view = Rc::new(RefCell::new(None::<String>));
        Effect::new(move |_| {
            // Read, not just tracked: a memo only follows its sources once it has been computed.
            let _ = fetch_key.get();
            let s = state.get_untracked();
            if canvas.get().is_none() {
                return;
            }
            // A new view (level/region/focus) closes the panel; the first one opens the edge the
            // URL selects (a link from a trace span).
            let view_key = pins_key(&s);
            let first = shown_view.borrow().is_none();
            if shown_view.borrow().as_deref() != Some(view_key.as_str()) {
                panel.set(match crate::api::EdgeId::parse(&s.edge) {
                    Some(e) if first => Panel::Edge(e.source, e.target),
                    _ => Panel::None,
                });
                *shown_view.borrow_mut() = Some(view_key);
            }
            // A different view starts empty, so nothing stale is shown (or asserted on).
            if ms
                .borrow()
                .as_ref()
                .is_some_and(|m| m.layout_key != pins_key(&s))
            {
                nodes.set(Vec::new());
                edges.set(Vec::new());
                status.set("loading the map…".into());
            }
            let q = s.graph_query();
            let apply2 = apply.clone();
            let added = added_edges.clone();
            let want_diff = s.diff;
            if !want_diff {
                *added.borrow_mut() = None;
                diff.set(None);
            }
            let generation = fetch_gen.get() + 1;
            fetch_gen.set(generation);
            let (fetch_gen, busy) = (fetch_gen.clone(), busy.clone());
            // In diff mode the stream's graphs wait for the diff: one applied before it would be
            // drawn unmarked (red edges flashing before they turn green). The fetch below brings
            // the diff and a graph together; the stream's graphs after it are drawn marked.
            let diff_known = Rc::new(Cell::new(!want_diff));
            let fetch_diff_known = diff_known.clone();
            // The one-shot graph request.
            let fetch: Rc<dyn Fn()> = Rc::new(move || {
                busy.set(true);
                let (q, apply2, added) = (q.clone(), apply2.clone(), added.clone());
                let (fetch_gen, busy) = (fetch_gen.clone(), busy.clone());
                let diff_known = fetch_diff_known.clone();
                spawn_local(async move {
                    // The diff first, so the graph that follows is drawn with its changes marked.
                    let d = if want_diff {
                        Some(get_json::<GraphDiff>(&format!("orrery/api/graph/diff?{q}")).await)
                    } else {
                        None
                    };
                    let t = perf::now();
                    let g = match crate::net::get_bytes(&format!("orrery/api/graph?{q}")).await {
                        Ok(body) => {
                            perf::measure("orrery:fetch", t);
                            let t = perf::now();
                            let g = serde_json::from_slice::<Graph>(&body)
                                .map_err(|e| format!("unexpected response: {e}"));
                            perf::measure("orrery:parse", t);
                            g
                        }
                        Err(e) => Err(e),
                    };
                    if fetch_gen.get() != generation {
                        return;
                    }
                    if let Some(d) = d {
                        *added.borrow_mut() = d.as_ref().ok().cloned();
                        let _ = diff.try_set(Some(d));
                        diff_known.set(true);
                    }
                    match g {
                        Ok(g) => apply2(g),
                        Err(e) => {
                            let _ = status.try_set(format!("Could not load the graph: {e}"));
                        }
                    }
                    // Not busy once the frame is whole: the applier sets the lists beside the
                    // map after the next animation frame, and this is queued after it, so a
                    // replay (which steps only when not busy) never leaves a minute before its
                    // nodes are listed — under load an animation frame can outlast a step.
                    // (A list of more than `LIST_CHUNK` changed rows finishes in the tasks
                    // after; the small maps replay is tested on are listed whole by then.)
                    after_next_frame(move || busy.set(false));
                });
            });
            // A live map takes its first graph from the stream, which starts with the whole
            // graph: fetching it as well would have the server compute the same 2,000-service
            // graph twice at the moment the page opens. The plain fetch stays for replay and
            // diff, and as the fallback when the stream is refused (e.g. the server's cap on
            // streams) or fails before its first graph, so the map is drawn while live updates
            // wait.
            let stream_first = s.live() && !want_diff;
            perf::mark("orrery:graph-requested");
            if !stream_first {
                fetch();
            }
            let mut b = ms.borrow_mut();
            if let Some(m) = b.as_mut() {
                // Dropping the old stream aborts its connection and its reconnects.
                m.source = None;
                if !s.live() {
                    let _ = stream_state.try_set(StreamState::Connecting);
                    return;
                }
                let apply3 = apply.clone();
                let got_graph = Rc::new(Cell::new(false));
                let got = got_graph.clone();
                let pending: Rc<RefCell<Option<Graph>>> = Rc::default();
                // The whole graph of each tick as `live.rs` keeps it (no re-serialising),
                // applied in a task of its own: decoding and applying a 2,000-service update
                // are two shorter tasks (a frame can run between them), and graphs that come
                // faster than they are applied are coalesced to the latest.
                let on_update: crate::stream::OnUpdate =
                    Rc::new(move |u: crate::live::Update| match u {
                        crate::live::Update::Graph(g) => {
                            got.set(true);
                            if !diff_known.get() {
                                return;
                            }
                            if pending.borrow_mut().replace(*g).is_none() {
                                let (pending, apply3) = (pending.clone(), apply3.clone());
                                set_timeout(
                                    move || {
                                        let g = pending.borrow_mut().take();
                                        if let Some(g) = g {
                                            apply3(g);
                                        }
                                    },
                                    std::time::Duration::ZERO,
                                );
                            }
                        }
                        // A refresh that failed (e.g. hit a query limit); the stream goes on
                        // and the next graph clears the message.
                        crate::live::Update::Error(msg) => {
                            let _ = status.try_set(format!("Live update failed: {msg}"));
                        }
                        _ => {}
                    });
                let fetched = Cell::new(!stream_first);
                let fetch = fetch.clone();
                let on_state: Rc<dyn Fn(StreamState)> = Rc::new(move |st: StreamState| {
                    let failed =
                        matches!(st, StreamState::Retrying { .. } | StreamState::Unauthorized);
                    if failed && !got_graph.get() && !fetched.replace(true) {
                        fetch();
                    }
                    let _ = stream_state.try_set(st);
                });
                m.source = Some(LiveStream::open_graphs(
                    format!("orrery/api/graph/stream?{}", s.graph_query()),
                    on_update,
                    on_state,
                ));
            } else if stream_first {
                fetch();
            }
        });
    }
    // The URL and the drawing follow the open edge panel.
    {
        let ms = sh.ms.clone();
        Effect::new(move |prev: Option<String>| {
            let id = match panel.get() {
                Panel::Edge(a, b) => crate::api::EdgeId::new(a, b).to_string(),
                _ => String::new(),
            };
            // Before any panel was opened, the URL's edge is still to be shown: keep it.
            if (prev.is_some() || !id.is_empty()) && state.with_untracked(|s| s.edge != id) {
                state.update(|s| s.edge = id.clone());
            }
            if let Ok(mut b) = ms.try_borrow_mut()
                && let Some(m) = b.as_mut()
            {
                m.scene.selected_edge = (!id.is_empty()).then(|| id.clone());
                m.renderer.upload(&m.scene);
            }
            id
        });
    }
}
