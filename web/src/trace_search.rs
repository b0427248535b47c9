//! The trace search page (`?view=traces`): service and operation pickers filled from the API
//! (operations with their span kind), attribute filters in logfmt, durations, errors, limit and
//! the server's order; results with start time (relative and absolute), trace id, root service
//! and operation, a chip per service with its span count (the waterfall's colours), error
//! count and a duration bar, sorted on the client.

use crate::api::TraceList;
use crate::encoding::fmt_us;
use crate::net::{enc, get_json};
use crate::route::UrlState;
use crate::trace_info::{self, service_colour};
use crate::trace_logfmt::parse_logfmt;
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

/// Unix ms → the value of a `datetime-local` input (local time, to the second).
fn local_input(ms: i64) -> String {
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        d.get_full_year(),
        d.get_month() + 1,
        d.get_date(),
        d.get_hours(),
        d.get_minutes(),
        d.get_seconds()
    )
}

/// A `datetime-local` value (local time) → Unix ms; `None` when empty or not a time.
fn parse_local(v: &str) -> Option<i64> {
    let t = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(v.trim())).get_time();
    (!v.trim().is_empty() && t.is_finite()).then_some(t as i64)
}

/// The lookbacks the form offers (Jaeger's "Lookback"), besides a custom range.
const LOOKBACKS: [(&str, &str); 7] = [
    ("5m", "last 5 minutes"),
    ("15m", "last 15 minutes"),
    ("1h", "last hour"),
    ("6h", "last 6 hours"),
    ("1d", "last day"),
    ("2d", "last 2 days"),
    ("custom", "custom range"),
];

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
    // The searched time range: a lookback, or "custom" with the from/to inputs (local time).
    let init = state.get_untracked();
    let fixed = init
        .start
        .parse::<i64>()
        .ok()
        .zip(init.end.parse::<i64>().ok());
    let lookback = RwSignal::new(if fixed.is_some() {
        "custom".to_string()
    } else {
        init.since.clone()
    });
    let range_from = RwSignal::new(fixed.map(|(a, _)| local_input(a)).unwrap_or_default());
    let range_to = RwSignal::new(fixed.map(|(_, b)| local_input(b)).unwrap_or_default());
    let range_error = RwSignal::new(None::<String>);
    let attr_error = RwSignal::new(None::<String>);
    // Results ticked for comparison (the first two are compared).
    let picked = RwSignal::new(Vec::<String>::new());
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
        // The form's range becomes the page's window (the URL's since, or start and end).
        let lb = lookback.get_untracked();
        if lb == "custom" {
            // An input still showing the URL's bound keeps it to the millisecond (the inputs
            // show seconds).
            let keep = |input: &str, url: &str| {
                url.parse::<i64>()
                    .ok()
                    .filter(|&ms| local_input(ms) == input)
                    .or_else(|| parse_local(input))
            };
            let cur = state.get_untracked();
            match (
                keep(&range_from.get_untracked(), &cur.start),
                keep(&range_to.get_untracked(), &cur.end),
            ) {
                (Some(a), Some(b)) if a < b => {
                    range_error.set(None);
                    state.update(|s| {
                        s.start = a.to_string();
                        s.end = b.to_string();
                        s.replay.clear();
                    });
                }
                (Some(_), Some(_)) => {
                    range_error.set(Some("the range's end must be after its start".into()));
                    return;
                }
                _ => {
                    range_error.set(Some(
                        "give the range's start and end (date and time)".into(),
                    ));
                    return;
                }
            }
        } else {
            range_error.set(None);
            state.update(|s| {
                s.since = lb;
                s.start.clear();
                s.end.clear();
                s.replay.clear();
            });
        }
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
        match parse_logfmt(&attr.get_untracked()) {
            Ok(pairs) => {
                attr_error.set(None);
                for (k, v) in pairs {
                    q += &format!("&attr={}", enc(&format!("{k}={v}")));
                }
            }
            Err(e) => {
                attr_error.set(Some(e));
                return;
            }
        }
        if errors.get_untracked() {
            q += "&errors=true";
        }
        state.update(|s| s.service = service.get_untracked());
        // The API rounds a window to whole minutes; a fixed window (e.g. a range dragged on
        // the plot) keeps exactly the traces that started inside it.
        let exact = s.start.parse::<i64>().ok().zip(s.end.parse::<i64>().ok());
        results.set(None);
        spawn_local(async move {
            let mut r: Result<TraceList, String> =
                get_json(&format!("orrery/api/traces?{q}")).await;
            if let (Ok(list), Some((a, b))) = (&mut r, exact) {
                list.traces
                    .retain(|t| (a * 1000..b * 1000).contains(&t.start_us));
            }
            let _ = results.try_set(Some(r));
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
                <label>"lookback"<select data-testid="lookback" prop:value=move || lookback.get()
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        if v == "custom" && range_from.with_untracked(|f| f.is_empty()) {
                            // Start from the current lookback.
                            let now = js_sys::Date::now() as i64;
                            let secs = match lookback.get_untracked().as_str() { "15m" => 900, "1h" => 3600, "6h" => 21_600, "1d" => 86_400, "2d" => 172_800, _ => 300 };
                            range_from.set(local_input(now - secs * 1000));
                            range_to.set(local_input(now));
                        }
                        lookback.set(v);
                    }>
                    {LOOKBACKS.iter().map(|(k, label)| view! { <option value=*k>{*label}</option> }).collect_view()}
                    {move || { let cur = lookback.get(); (!LOOKBACKS.iter().any(|(k, _)| *k == cur)).then(|| view! { <option value=cur.clone()>{format!("last {cur}")}</option> }) }}
                </select></label>
                {move || (lookback.get() == "custom").then(|| view! {
                    <label class="range">"from"<input type="datetime-local" step="1" data-testid="range-from" prop:value=move || range_from.get()
                        on:input=move |ev| range_from.set(event_target_value(&ev)) /></label>
                    <label class="range">"to"<input type="datetime-local" step="1" data-testid="range-to" prop:value=move || range_to.get()
                        on:input=move |ev| range_to.set(event_target_value(&ev)) /></label>
                })}
                <label>"attributes (logfmt: k=v …)"<input data-testid="attr-filter" placeholder="http.route=\"/a b\" error=true"
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
                {move || attr_error.get().map(|e| view! { <span class="error" role="alert" data-testid="attr-error">{e}</span> })}
                {move || range_error.get().map(|e| view! { <span class="error" role="alert" data-testid="range-error">{e}</span> })}
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
                    let plot = crate::scatter::Plot::new(&traces);
                    view! {
                        <ScatterPlot plot=plot state=state on_range=move |(a, b): (i64, i64)| {
                            // A dragged range becomes the form's custom range, searched again.
                            lookback.set("custom".into());
                            range_from.set(local_input(a / 1000));
                            range_to.set(local_input(b / 1000 + 1000));
                            search();
                        } />
                        <div class="results-head">
                            <span data-testid="result-count">{format!("{n} trace{}", if n == 1 { "" } else { "s" })}</span>
                            <button data-testid="compare-button" disabled=move || picked.with(|p| p.len() != 2)
                                on:click=move |_| { let p = picked.get_untracked(); if p.len() == 2 { state.update(|s| {
                                    s.view = "compare".into(); s.trace = p[0].clone(); s.compare = p[1].clone(); }) } }>
                                {move || format!("compare selected ({}/2)", picked.with(|p| p.len()))}</button>
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
                                        <div class="r-title">
                                            <input type="checkbox" data-testid="compare-pick" aria-label=format!("select trace {} to compare", t.trace_id)
                                                prop:checked={ let id = t.trace_id.clone(); move || picked.with(|p| p.contains(&id)) }
                                                on:click=|ev| ev.stop_propagation()
                                                on:change={ let id = t.trace_id.clone(); move |ev| { let on = event_target_checked(&ev); picked.update(|p| {
                                                    p.retain(|x| x != &id);
                                                    if on { p.push(id.clone()); if p.len() > 2 { p.remove(0); } }
                                                }) } } />
                                            " "<strong>{format!("{}: {}", t.root_service, t.root_operation)}</strong>
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

/// Duration over time of the results: click a dot to open its trace, drag across the plot to
/// search that time range (it becomes the fixed window).
#[component]
fn ScatterPlot(
    plot: crate::scatter::Plot,
    state: RwSignal<UrlState>,
    #[prop(into)] on_range: Callback<(i64, i64)>,
) -> impl IntoView {
    use crate::scatter::{BOTTOM, H, LEFT, W};
    let svg = NodeRef::<leptos::svg::Svg>::new();
    let drag = RwSignal::new(None::<(f64, f64)>);
    let vx = move |client_x: i32| {
        svg.get_untracked().map(|e| {
            let r = e.get_bounding_client_rect();
            (client_x as f64 - r.left()) / r.width().max(1.0) * W
        })
    };
    let p2 = plot.clone();
    let finish = move |x: Option<f64>| {
        if let (Some((x0, _)), Some(x)) = (drag.get_untracked(), x) {
            drag.set(None);
            if let Some((a, b)) = crate::trace_info::drag_range(x0 / W, x / W) {
                on_range.run((p2.time_at(a * W), p2.time_at(b * W)));
            }
        }
    };
    let open = move |id: String| {
        state.update(|s| {
            s.view = "trace".into();
            s.trace = id;
        })
    };
    let label_t = |us: i64| {
        js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(us as f64 / 1e3))
            .to_locale_time_string("en-GB")
            .as_string()
            .unwrap_or_default()
    };
    view! {
        <svg class="scatter" data-testid="scatter" node_ref=svg viewBox=format!("0 0 {W} {H}") role="img"
            aria-label="duration of each result over time; click a dot to open the trace, drag to search a range"
            on:mousedown=move |ev| { ev.prevent_default(); if let Some(x) = vx(ev.client_x()) { drag.set(Some((x, x))) } }
            on:mousemove=move |ev| if let (Some((x0, _)), Some(x)) = (drag.get_untracked(), vx(ev.client_x())) { drag.set(Some((x0, x))) }
            on:mouseup=move |ev| finish(vx(ev.client_x()))
            on:mouseleave=move |_| drag.set(None)>
            <rect class="plot-bg" x=LEFT y="0" width=W - LEFT height=H - BOTTOM></rect>
            <text class="axis" x="4" y="16">{crate::encoding::fmt_us(plot.max_us)}</text>
            <text class="axis" x="4" y=H - BOTTOM>"0"</text>
            <text class="axis" x=LEFT y=H - 4.0>{label_t(plot.t0_us)}</text>
            <text class="axis end" x=W - 4.0 y=H - 4.0>{label_t(plot.t1_us)}</text>
            {plot.dots.into_iter().map(|d| { let id = d.trace_id.clone(); view! {
                <circle class="dot" class:err=d.error data-trace-id=d.trace_id.clone() cx=format!("{:.1}", d.x) cy=format!("{:.1}", d.y)
                    r=format!("{:.1}", d.r) on:click=move |_| open(id.clone())>
                    <title>{d.trace_id.clone()}</title></circle>
            }}).collect_view()}
            {move || drag.get().map(|(a, b)| view! {
                <rect class="drag-sel" x=a.min(b) y="0" width=(b - a).abs() height=H - BOTTOM></rect> })}
        </svg>
    }
}
