//! The trace search page (`?view=traces`): service and operation pickers filled from the API
//! (operations with their span kind), attribute filters in logfmt, durations, errors, limit and
//! the server's order; results with start time (relative and absolute), trace id, root service
//! and operation, a chip per service with its span count (the waterfall's colours), error
//! count and a duration bar, sorted on the client.

use crate::api::TraceList;
use crate::app::UrlState;
use crate::encoding::fmt_us;
use crate::net::{enc, get_json};
use crate::trace_info::{self, service_colour};
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Deserialize;

#[derive(Deserialize, Default, Clone, PartialEq)]
#[serde(default)]
struct Services {
    services: Vec<String>,
}

#[derive(Deserialize, Default, Clone, PartialEq)]
#[serde(default)]
struct Operations {
    operations: Vec<OperationName>,
}

#[derive(Deserialize, Default, Clone, PartialEq)]
#[serde(default)]
struct OperationName {
    name: String,
    span_kind: String,
}

fn iso(us: i64) -> String {
    js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(us as f64 / 1e3))
        .to_iso_string()
        .as_string()
        .unwrap_or_default()
}

#[component]
pub fn SearchView(state: RwSignal<UrlState>) -> impl IntoView {
    let service = RwSignal::new(state.get_untracked().service);
    let operation = RwSignal::new(String::new());
    let attr = RwSignal::new(String::new());
    let min_d = RwSignal::new(String::new());
    let max_d = RwSignal::new(String::new());
    let errors = RwSignal::new(false);
    let order = RwSignal::new("newest".to_string());
    let limit = RwSignal::new("50".to_string());
    let sort = RwSignal::new("recent".to_string());
    let results = RwSignal::new(None::<Result<TraceList, String>>);
    let services = RwSignal::new(None::<Result<Services, String>>);
    let operations = RwSignal::new(None::<Result<Operations, String>>);
    // The pickers: services of the window; the chosen service's operations.
    let window = state.get_untracked().window_query();
    {
        let window = window.clone();
        spawn_local(async move {
            let _ = services.try_set(Some(
                get_json(&format!("orrery/api/services?{window}")).await,
            ));
        });
    }
    Effect::new(move |_| {
        let svc = service.get();
        operations.set(None);
        if svc.is_empty() {
            return;
        }
        let window = window.clone();
        spawn_local(async move {
            let r = get_json(&format!(
                "orrery/api/operations?service={}&{window}",
                enc(&svc)
            ))
            .await;
            // A late answer for a service no longer chosen is dropped.
            if service.try_get_untracked().as_deref() == Some(svc.as_str()) {
                let _ = operations.try_set(Some(r));
            }
        });
    });
    let search = move || {
        let s = state.get_untracked();
        let mut q = format!(
            "{}&limit={}&order={}",
            s.window_query(),
            enc(&limit.get_untracked()),
            enc(&order.get_untracked())
        );
        for (k, v) in [
            ("service", service.get_untracked()),
            ("operation", operation.get_untracked()),
            ("min_duration", min_d.get_untracked()),
            ("max_duration", max_d.get_untracked()),
        ] {
            if !v.trim().is_empty() {
                q += &format!("&{k}={}", enc(v.trim()));
            }
        }
        for a in attr.get_untracked().split_whitespace() {
            q += &format!("&attr={}", enc(a));
        }
        if errors.get_untracked() {
            q += "&errors=true";
        }
        state.update(|s| s.service = service.get_untracked());
        results.set(None);
        spawn_local(async move {
            let _ = results.try_set(Some(get_json(&format!("orrery/api/traces?{q}")).await));
        });
    };
    search();
    let open = move |id: String| {
        state.update(|s| {
            s.view = "trace".into();
            s.trace = id;
        })
    };
    view! {
        <div class="traces">
            <form class="search-form" on:submit=move |ev| { ev.prevent_default(); search() }>
                <label>"service"<select data-testid="service-picker" prop:value=move || service.get()
                    on:change=move |ev| { service.set(event_target_value(&ev)); operation.set(String::new()) }>
                    <option value="">"any service"</option>
                    {move || {
                        let mut names = match services.get() { Some(Ok(s)) => s.services, _ => Vec::new() };
                        // The URL's service is an option even before (or without) the list.
                        let cur = service.get_untracked();
                        if !cur.is_empty() && !names.contains(&cur) { names.insert(0, cur.clone()); }
                        // `selected` too: an option that arrives after the value was set selects itself.
                        names.into_iter().map(|n| view! { <option value=n.clone() selected=n == cur>{n.clone()}</option> }).collect_view()
                    }}
                </select></label>
                <label>"operation"<select data-testid="operation-picker" prop:value=move || operation.get()
                    on:change=move |ev| operation.set(event_target_value(&ev))>
                    <option value="">"all operations"</option>
                    {move || match operations.get() { Some(Ok(o)) => o.operations, _ => Vec::new() }.into_iter().map(|o| {
                        let label = if o.span_kind.is_empty() { o.name.clone() } else { format!("{} ({})", o.name, o.span_kind.to_lowercase()) };
                        let chosen = o.name == operation.get_untracked();
                        view! { <option value=o.name.clone() data-kind=o.span_kind.clone() selected=chosen>{label}</option> }
                    }).collect_view()}
                </select></label>
                <label>"attributes (logfmt: k=v …)"<input data-testid="attr-filter" placeholder="http.status_code=500 error=true"
                    on:input=move |ev| attr.set(event_target_value(&ev)) /></label>
                <label>"min duration"<input placeholder="250ms" class="w-80" on:input=move |ev| min_d.set(event_target_value(&ev)) /></label>
                <label>"max duration"<input placeholder="2s" class="w-80" on:input=move |ev| max_d.set(event_target_value(&ev)) /></label>
                <label>"limit"<select prop:value=move || limit.get() on:change=move |ev| limit.set(event_target_value(&ev))>
                    {["20", "50", "100", "200", "500", "1000"].into_iter().map(|n| view! { <option value=n>{n}</option> }).collect_view()}</select></label>
                <label>"fetch"<select on:change=move |ev| order.set(event_target_value(&ev))>
                    <option value="newest">"newest"</option><option value="oldest">"oldest"</option>
                    <option value="slowest">"slowest"</option><option value="fastest">"fastest"</option></select></label>
                <label><span>"errors only"</span><input type="checkbox" on:change=move |ev| errors.set(event_target_checked(&ev)) /></label>
                <button type="submit">"Search"</button>
                {move || matches!(services.get(), Some(Err(_))).then(|| view! {
                    <span class="error" data-testid="picker-error">"service list unavailable"</span> })}
            </form>
            {move || match results.get() {
                None => view! { <p class="muted">"searching…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="error">{e}</p> }.into_any(),
                Some(Ok(list)) if list.traces.is_empty() => view! { <p class="muted">"No traces match in this window."</p> }.into_any(),
                Some(Ok(list)) => {
                    let longest = list.traces.iter().map(|t| t.duration_us).max().unwrap_or(1).max(1);
                    let n = list.traces.len();
                    let traces = list.traces;
                    view! {
                        <div class="results-head">
                            <span data-testid="result-count">{format!("{n} trace{}", if n == 1 { "" } else { "s" })}</span>
                            <label>"sort "<select data-testid="sort" prop:value=move || sort.get() on:change=move |ev| sort.set(event_target_value(&ev))>
                                {trace_info::SORTS.iter().map(|(k, label)| view! { <option value=*k>{*label}</option> }).collect_view()}
                            </select></label>
                        </div>
                        <div data-testid="trace-results">{move || {
                            let mut traces = traces.clone();
                            trace_info::sort_traces(&mut traces, &sort.get());
                            let now_us = (js_sys::Date::now() * 1e3) as i64;
                            traces.into_iter().map(|t| {
                                let id = t.trace_id.clone();
                                let pct = t.duration_us as f64 / longest as f64 * 100.0;
                                view! {
                                    <div class="result" class:has-error={t.error_count > 0} data-trace-id=t.trace_id.clone()
                                        data-start-us=t.start_us data-duration-us=t.duration_us data-spans=t.span_count data-errors=t.error_count
                                        tabindex="0" role="link"
                                        on:click={ let id = id.clone(); move |_| open(id.clone()) }
                                        on:keydown=move |ev: web_sys::KeyboardEvent| if ev.key() == "Enter" { open(id.clone()) }>
                                        <div class="r-title"><strong>{format!("{}: {}", t.root_service, t.root_operation)}</strong>
                                            " "<code class="muted tid" data-testid="trace-id">{t.trace_id.clone()}</code></div>
                                        <div class="r-time">
                                            <span data-testid="ago">{trace_info::ago(now_us, t.start_us)}</span>
                                            <span class="muted" data-testid="started">{iso(t.start_us)}</span></div>
                                        <div class="chips">
                                            {t.services.iter().map(|s| view! {
                                                <span class="chip" data-service=s.name.clone() data-spans=s.span_count data-colour=service_colour(&s.name)>
                                                    <span class="swatch" style:background-color=service_colour(&s.name)></span>
                                                    {format!("{} {}", s.name, s.span_count)}</span>
                                            }).collect_view()}
                                            <span class="muted">{format!("{} spans", t.span_count)}</span>
                                            {(t.error_count > 0).then(|| view! { <span class="err" data-testid="error-count">
                                                {format!("{} error{}", t.error_count, if t.error_count == 1 { "" } else { "s" })}</span> })}
                                        </div>
                                        <div class="r-dur">{fmt_us(t.duration_us)}<div class="bar" style:width=format!("{pct:.1}%")></div></div>
                                    </div>
                                }
                            }).collect_view()
                        }}</div>
                    }.into_any()
                }
            }}
        </div>
    }
}
