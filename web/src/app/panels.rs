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
