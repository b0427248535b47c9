//! The map's side panels (node, edge, collapsed namespace and namespace edge), the legend and
//! data-quality line, the diff list, and the latency histogram they share.

use super::{Panel, UrlState};
use crate::api::{EdgeDetail, GraphDiff, Histogram, NodeDetail};
use crate::encoding::{self, fmt_rate, fmt_us};
use crate::namespaces;
use crate::net::{enc, get_json};
use leptos::prelude::*;
use leptos::task::spawn_local;

/// A collapsed namespace's panel: what it stands for and the way in (the node detail API
/// knows services only).
#[component]
pub(crate) fn NamespacePanel(id: String, state: RwSignal<UrlState>) -> impl IntoView {
    let ns = group_of(&id).unwrap_or_default().to_string();
    let ns2 = ns.clone();
    let what = if namespaces::of_id(&id).is_some() {
        "namespace"
    } else {
        "group"
    };
    view! {
        <aside class="side" data-testid="namespace-panel">
            <h3>{format!("{what} {ns}")}</h3>
            <p>"Its services are drawn as this one node (summed traffic; calls inside it are not drawn)."</p>
            <button data-testid="namespace-expand" on:click=move |_| state.update(|s| {
                let mut set = namespaces::parse_expanded(&s.ns);
                set.insert(ns2.clone());
                s.ns = namespaces::format_expanded(&set);
            })>"Show its services"</button>
        </aside>
    }
}

/// An edge drawn between collapsed namespaces stands for several service-to-service calls; the
/// edge detail API knows single calls, so the way to their traces is to open the namespaces.
#[component]
pub(crate) fn NamespaceEdgePanel(
    source: String,
    target: String,
    state: RwSignal<UrlState>,
    panel: RwSignal<Panel>,
) -> impl IntoView {
    let groups: Vec<String> = [&source, &target]
        .into_iter()
        .filter_map(|id| group_of(id).map(String::from))
        .collect();
    let label = groups.join(" and ");
    view! {
        <aside class="side" data-testid="namespace-edge-panel">
            <h3>{format!("{source} → {target}")}</h3>
            <p>{format!("The calls between the services of {label}, summed. Open the namespaces to see each call, its latency and its traces.")}</p>
            <button data-testid="namespace-edge-expand" on:click=move |_| {
                state.update(|s| {
                    let mut set = namespaces::parse_expanded(&s.ns);
                    set.extend(groups.iter().cloned());
                    s.ns = namespaces::format_expanded(&set);
                });
                panel.set(Panel::None);
            }>"Show the calls"</button>
        </aside>
    }
}

pub(crate) fn metrics_line(m: &crate::api::Metrics) -> String {
    format!(
        "{} · {:.2}% errors · p50 {:.1}ms · p95 {:.1}ms · p99 {:.1}ms",
        fmt_rate(m.rps),
        m.error_rate * 100.0,
        m.p50_ms,
        m.p95_ms,
        m.p99_ms
    )
}

#[component]
pub(crate) fn Legend(meta: RwSignal<(f64, crate::api::DataQuality, String)>) -> impl IntoView {
    view! {
        <div class="panel legend" data-testid="legend">
            <strong>"Particles (log scale)"</strong>
            <table><tbody>
                {move || encoding::legend(meta.get().0).into_iter().map(|(rps, pps)| view! {
                    <tr><td>{fmt_rate(rps)}</td><td>"→"</td><td>{format!("{pps:.1} particles/s")}</td></tr>
                }).collect_view()}
            </tbody></table>
            <div><span class="err">"● red"</span>" = error share · ring = node error share"</div>
        </div>
        <div class="panel quality" data-testid="data-quality">
            {move || { let q = meta.get().1; format!(
                "{} spans · {} orphan · {} unmatched client · {} late",
                q.spans, q.orphan_spans, q.unmatched_client_spans, q.late_spans) }}
            {move || encoding::coverage_note(&meta.get().1, iso_minute).map(|note| view! {
                <div class="warn" role="status" data-testid="rollup-coverage">{note}</div>
            })}
        </div>
    }
}

/// `YYYY-MM-DDTHH:MM` (UTC) of a Unix-ms time.
fn iso_minute(ms: i64) -> String {
    let iso = crate::app::fmt_ms(&ms.to_string());
    iso.get(..16).unwrap_or(&iso).to_string()
}

#[component]
pub(crate) fn NodePanel(id: String, state: RwSignal<UrlState>) -> impl IntoView {
    let detail = RwSignal::new(None::<Result<NodeDetail, String>>);
    let url = format!(
        "orrery/api/nodes/{}?{}",
        enc(&id),
        state.get_untracked().data_window_query()
    );
    spawn_local(async move { detail.set(Some(get_json(&url).await)) });
    let id2 = id.clone();
    view! {
        <aside class="side" data-testid="node-panel">
            <h3>{id.clone()}</h3>
            <button on:click=move |_| state.update(|s| { s.level = "focused".into(); s.focus = id2.clone(); })>"Focus this service"</button>
            " "
            <button on:click={ let id = id.clone(); move |_| state.update(|s| { s.view = "traces".into(); s.service = id.clone(); }) }>"Find traces"</button>
            {move || match detail.get() {
                None => view! { <p class="muted">"loading…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="error">{e}</p> }.into_any(),
                Some(Ok(d)) => view! {
                    <p>{metrics_line(&d.node.metrics)}</p>
                    <h4>"Latency"</h4>
                    <HistogramChart h=d.histogram.clone() testid="node-histogram" />
                    <h4>"Operations"</h4>
                    <table class="data" data-testid="operations"><thead><tr><th>"operation"</th><th>"kind"</th><th>"rate"</th><th>"err %"</th><th>"p95"</th></tr></thead>
                    <tbody>{d.operations.iter().map(|o| view! {
                        <tr><td>{o.name.clone()}</td><td>{o.span_kind.clone()}</td><td class="num">{fmt_rate(o.metrics.rps)}</td>
                        <td class="num">{format!("{:.2}", o.metrics.error_rate * 100.0)}</td><td class="num">{format!("{:.1}ms", o.metrics.p95_ms)}</td></tr>
                    }).collect_view()}</tbody></table>
                    <h4>"Instances"</h4>
                    <ul>{d.instances.iter().map(|i| view! { <li>{format!("{} · {}", if i.id.is_empty() { "(no instance id)" } else { &i.id }, metrics_line(&i.metrics))}</li> }).collect_view()}</ul>
                }.into_any(),
            }}
        </aside>
    }
}

#[component]
pub(crate) fn EdgePanel(
    source: String,
    target: String,
    state: RwSignal<UrlState>,
) -> impl IntoView {
    let detail = RwSignal::new(None::<Result<EdgeDetail, String>>);
    let url = format!(
        "orrery/api/edges?source={}&target={}&{}",
        enc(&source),
        enc(&target),
        state.get_untracked().data_window_query()
    );
    spawn_local(async move { detail.set(Some(get_json(&url).await)) });
    let open = move |id: String| {
        state.update(|s| {
            s.view = "trace".into();
            s.trace = id;
        })
    };
    view! {
        <aside class="side" data-testid="edge-panel">
            <h3>{format!("{source} → {target}")}</h3>
            {move || match detail.get() {
                None => view! { <p class="muted">"loading…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="error">{e}</p> }.into_any(),
                Some(Ok(d)) => view! {
                    <p>{metrics_line(&d.edge.metrics)}</p>
                    <h4>"Latency"</h4>
                    <HistogramChart h=d.histogram.clone() testid="histogram" />
                    <h4>"Recent error traces"</h4>
                    {if d.exemplars.failed.is_empty() { Some(view! { <p class="muted">"No failed calls in this window."</p> }) } else { None }}
                    <ul data-testid="error-traces">{d.exemplars.failed.iter().map(|t| { let id = t.trace_id.clone(); view! {
                        <li><a href="#" data-trace-id=t.trace_id.clone() on:click=move |ev| { ev.prevent_default(); open(id.clone()) }>
                            {format!("{} · {} · {}", &t.trace_id[..t.trace_id.len().min(12)], t.operation, fmt_us(t.duration_us))}</a></li>
                    }}).collect_view()}</ul>
                    <h4>"Slowest"</h4>
                    <ul>{d.exemplars.slowest.iter().map(|t| { let id = t.trace_id.clone(); view! {
                        <li><a href="#" on:click=move |ev| { ev.prevent_default(); open(id.clone()) }>{format!("{} · {}", t.operation, fmt_us(t.duration_us))}</a></li>
                    }}).collect_view()}</ul>
                }.into_any(),
            }}
        </aside>
    }
}

#[component]
pub(crate) fn DiffPanel(diff: Result<GraphDiff, String>) -> impl IntoView {
    let d = match diff {
        Err(e) => {
            return view! { <div class="panel diff error" data-testid="diff">{e}</div> }.into_any();
        }
        Ok(d) => d,
    };
    view! {
        <div class="panel diff" data-testid="diff">
            <strong>"Diff vs the previous window"</strong>
            <div class="muted">"new edges green · vanished dashed grey"</div>
            <div class="muted">{format!("{} new, {} vanished edges · {} new, {} vanished nodes",
                d.added_edges.len(), d.removed_edges.len(), d.added_nodes.len(), d.removed_nodes.len())}</div>
            <ul>
                {d.added_edges.iter().map(|e| view! { <li class="added" data-edge-id=e.id.clone()>{format!("+ {} → {}", e.source, e.target)}</li> }).collect_view()}
                {d.removed_edges.iter().map(|e| view! { <li class="vanished" data-edge-id=e.id.clone()>{format!("− {} → {}", e.source, e.target)}</li> }).collect_view()}
                {d.changed_edges.iter().filter(|c| c.error_rate_delta.abs() >= 0.001).take(10).map(|c| view! {
                    <li class={if c.error_rate_delta > 0.0 { "err" } else { "added" }}>
                        {format!("{} → {}: errors {:.1}% → {:.1}%", c.source, c.target, c.base.error_rate * 100.0, c.current.error_rate * 100.0)}</li>
                }).collect_view()}
            </ul>
        </div>
    }
    .into_any()
}

/// A latency histogram as bars (edge and node panels); `data-count` on each bar for tools.
#[component]
pub(crate) fn HistogramChart(h: Histogram, testid: &'static str) -> impl IntoView {
    let max = h.counts.iter().copied().max().unwrap_or(0).max(1);
    let total: u64 = h.counts.iter().sum();
    let (lo, hi) = (
        h.bounds_ms
            .first()
            .map(|b| format!("≤{b}ms"))
            .unwrap_or_default(),
        h.bounds_ms
            .last()
            .map(|b| format!(">{b}ms"))
            .unwrap_or_default(),
    );
    view! {
        <div class="histogram" data-testid=testid data-total=total>{
            h.counts.iter().enumerate().map(|(i, c)| {
                let label = h.bounds_ms.get(i).map(|b| format!("≤{b}ms")).unwrap_or_else(|| "more".into());
                view! { <div class="hbar" title=format!("{label}: {c}") data-le=label.clone() data-count=*c>
                    <div style:height=format!("{:.0}%", *c as f64 / max as f64 * 100.0)></div></div> }
            }).collect_view()
        }</div>
        <div class="hist-axis muted">{if total == 0 {
            view! { <span>"No calls measured in this window."</span> }.into_any()
        } else {
            view! { <span>{lo}</span><span>{format!("{total} calls")}</span><span>{hi}</span> }.into_any()
        }}</div>
    }
}

/// The group a collapsed node stands for: a namespace (`namespace:<name>`) or another
/// grouping's value (`group:<value>`); the node and edge detail APIs know services only.
fn group_of(id: &str) -> Option<&str> {
    namespaces::of_id(id).or_else(|| crate::grouping::of_id(id))
}

/// The side panel the map has open: a node's, an edge's, or a collapsed namespace's.
#[component]
pub(crate) fn SidePanel(panel: RwSignal<Panel>, state: RwSignal<UrlState>) -> impl IntoView {
    move || match panel.get() {
        Panel::None => None,
        Panel::Node(id) if group_of(&id).is_some() => {
            Some(view! { <NamespacePanel id=id state=state /> }.into_any())
        }
        Panel::Node(id) => Some(view! { <NodePanel id=id state=state /> }.into_any()),
        Panel::Edge(s, t) if group_of(&s).is_some() || group_of(&t).is_some() => Some(
            view! { <NamespaceEdgePanel source=s target=t state=state panel=panel /> }.into_any(),
        ),
        Panel::Edge(s, t) => Some(view! { <EdgePanel source=s target=t state=state /> }.into_any()),
    }
}
