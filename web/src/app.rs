//! The Leptos app: routing between the views (map, trace search, trace, comparison) over the
//! URL-held state, the header, and the sign-in form. The map view lives in `map_view` (markup),
//! `map_state` (what its parts share), `map_data` (fetch, live stream, applying a graph),
//! `map_input` (mouse and keyboard), `map_frame` (renderer and frame loop), `map_rows` (the
//! lists' rows following the graph in bounded steps), `panels` and `replay_bar`.

mod map_data;
mod map_frame;
mod map_input;
mod map_rows;
mod map_state;
mod map_view;
mod onboarding;
mod panels;
mod replay_bar;

use crate::route::{UrlState, now_s};

use crate::trace_search::SearchView;
use crate::trace_view::TraceView;
use leptos::prelude::*;
use leptos::task::spawn_local;
use map_view::MapView;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

pub(crate) fn flag(name: &str) -> bool {
    let search = web_sys::window()
        .unwrap()
        .location()
        .search()
        .unwrap_or_default();
    web_sys::UrlSearchParams::new_with_str(&search)
        .unwrap()
        .has(name)
}

pub(crate) fn prefers_reduced_motion() -> bool {
    flag("reduced-motion")
        || web_sys::window()
            .unwrap()
            .match_media("(prefers-reduced-motion: reduce)")
            .ok()
            .flatten()
            .is_some_and(|m| m.matches())
}

#[wasm_bindgen]
pub fn start_app() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

/// The map's open side panel.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Panel {
    None,
    Node(String),
    Edge(String, String),
}

#[component]
fn App() -> impl IntoView {
    let state = RwSignal::new(UrlState::read());
    // The URL follows the state (replace for filters, push for navigation).
    Effect::new(move |prev: Option<UrlState>| {
        let s = state.get();
        let h = web_sys::window().unwrap().history().unwrap();
        let url = s.query();
        let nav = prev.as_ref().is_some_and(|p| {
            p.view != s.view
                || p.level != s.level
                || p.focus != s.focus
                || p.trace != s.trace
                || p.compare != s.compare
        });
        if nav {
            let _ = h.push_state_with_url(&JsValue::NULL, "", Some(&url));
        } else {
            let _ = h.replace_state_with_url(&JsValue::NULL, "", Some(&url));
        }
        s
    });
    let popstate = Closure::<dyn FnMut()>::new(move || state.set(UrlState::read()));
    let _ = web_sys::window()
        .unwrap()
        .add_event_listener_with_callback("popstate", popstate.as_ref().unchecked_ref());
    popstate.forget();
    let kiosk = flag("kiosk");
    let auth = crate::auth::state();
    // Only a change of view rebuilds the page; filters and navigation within a view do not.
    let view_name = Memo::new(move |_| state.get().view);
    let go = move |view: &'static str| state.update(|s| s.view = view.to_string());
    // The checks' board (polled for the app's lifetime): the checks view and the map's notices.
    let board = crate::checks::poll_board();
    let help = onboarding::Help(RwSignal::new(false));
    onboarding::install_help_keys(help);
    view! {
        <div class="app" class:kiosk=kiosk>
            // While the sign-in dialog is open the rest of the page is inert (no focus, no
            // clicks, hidden from assistive technology): the dialog is modal.
            <header class="top" inert=move || auth.prompt.get().is_some()>
                <span class="brand">"ORRERY"</span>
                <nav aria-label="views">
                    <button class:active=move || state.get().view == "map" on:click=move |_| go("map")>"Map"</button>
                    <button class:active=move || matches!(state.get().view.as_str(), "traces" | "trace" | "compare") on:click=move |_| go("traces")>"Traces"</button>
                    <button class:active=move || state.get().view == "checks" data-testid="nav-checks" on:click=move |_| go("checks")>"Checks"</button>
                </nav>
                <label>"Window "
                    <select aria-label="time window" on:change=move |ev| { let v = event_target_value(&ev); state.update(|s| s.since = v) }
                        prop:value=move || state.get().since>
                        <option value="1m">"last 1m"</option>
                        <option value="5m">"last 5m"</option>
                        <option value="15m">"last 15m"</option>
                        <option value="1h">"last 1h"</option>
                        <option value="6h">"last 6h"</option>
                        <option value="1d">"last 1d"</option>
                    </select>
                </label>
                {move || { let s = state.get(); if s.live() {
                    view! { <button title="keep this window fixed (a shareable range)" on:click=move |_| {
                        let now = js_sys::Date::now() as i64;
                        let secs = parse_since(&state.get_untracked().since);
                        state.update(|s| { s.start = (now - secs * 1000).to_string(); s.end = now.to_string(); });
                    }>"freeze window"</button> }.into_any()
                } else {
                    view! { <span data-testid="fixed-window">{format!("fixed {} → {}", fmt_ms(&s.start), fmt_ms(&s.end))}</span>
                        " "<button on:click=move |_| state.update(|s| { s.start.clear(); s.end.clear(); s.replay.clear(); })>"back to live"</button> }.into_any()
                }}}
                <button class="help-button" data-testid="help-button" aria-haspopup="dialog"
                    aria-expanded=move || help.0.get().to_string() title="keyboard and mouse controls (?)"
                    aria-label="help: keyboard and mouse controls" on:click=move |_| help.0.update(|o| *o = !*o)>"?"</button>
                {move || auth.signed_in.get().then(|| view! {
                    <button class="sign-out" data-testid="sign-out" title="forget this tab's API token"
                        on:click=move |_| crate::auth::sign_out()>"sign out"</button> })}
            </header>
            <SignIn />
            <onboarding::HelpOverlay help=help />
            // A sign-in or sign-out (the auth epoch) rebuilds the view: every request of it is
            // made again with the new credentials, and the live stream reopened.
            <div class="view" inert=move || auth.prompt.get().is_some()>
            {move || { let _ = auth.epoch.get(); match view_name.get().as_str() {
                "trace" => view! { <TraceView state=state /> }.into_any(),
                "compare" => view! { <crate::trace_compare::CompareView state=state /> }.into_any(),
                "traces" => view! { <SearchView state=state /> }.into_any(),
                "checks" => view! { <crate::checks::ChecksView state=state board=board /> }.into_any(),
                _ => view! { <MapView state=state board=board /> }.into_any(),
            }}}
            </div>
        </div>
    }
}

/// Tries `candidate` against a cheap authenticated endpoint; keeps it when accepted. Here, by
/// the form, rather than in `auth.rs`: the token store stays below `net.rs`, which sends it.
async fn sign_in(candidate: &str) -> Result<(), String> {
    use crate::net::{FetchError, OnUnauthorized, fetch_with};
    let candidate = candidate.trim();
    if candidate.is_empty() {
        return Err("Enter the API token.".into());
    }
    match fetch_with("orrery/api/config", Some(candidate), OnUnauthorized::Report).await {
        Ok(_) => {
            crate::auth::accept(candidate);
            Ok(())
        }
        Err(FetchError::Unauthorized) => Err(crate::signin::REFUSED.into()),
        Err(FetchError::Other(e)) => Err(e),
    }
}

/// The sign-in form, open while `auth.prompt` holds a message (the first 401 opens it). A modal
/// dialog: labelled, focus moved to the token field, the result announced (`role="alert"`).
#[component]
fn SignIn() -> impl IntoView {
    let auth = crate::auth::state();
    let token = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let input = NodeRef::<leptos::html::Input>::new();
    // Focus the token field whenever the form opens.
    Effect::new(move |_| {
        if auth.prompt.get().is_some()
            && let Some(i) = input.get()
        {
            let _ = i.focus();
        }
    });
    let submit = move |ev: web_sys::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        let candidate = token.get_untracked();
        spawn_local(async move {
            let res = sign_in(&candidate).await;
            let _ = busy.try_set(false);
            match res {
                Ok(()) => {
                    let _ = token.try_set(String::new());
                    let _ = error.try_set(None);
                }
                Err(e) => {
                    let _ = error.try_set(Some(e));
                    if let Some(i) = input.get_untracked() {
                        i.select();
                    }
                }
            }
        });
    };
    move || {
        auth.prompt.get().map(|why| view! {
            <div class="sign-in-backdrop">
                <form class="sign-in panel" role="dialog" aria-modal="true" aria-labelledby="sign-in-title"
                    aria-describedby="sign-in-why" data-testid="sign-in" on:submit=submit>
                    <h2 id="sign-in-title">"Sign in"</h2>
                    <p id="sign-in-why" data-testid="sign-in-why">{why}</p>
                    <label for="sign-in-token">"API token"</label>
                    <input id="sign-in-token" node_ref=input type="password" name="token" required
                        autocomplete="current-password" spellcheck="false" data-testid="sign-in-token"
                        prop:value=move || token.get() on:input=move |ev| token.set(event_target_value(&ev)) />
                    <p class="error" role="alert" data-testid="sign-in-error">{move || error.get()}</p>
                    <p class="muted">"Kept for this tab only (until it is closed); sent as an Authorization header, never in a URL."</p>
                    <button type="submit" prop:disabled=move || busy.get()>"Sign in"</button>
                </form>
            </div>
        })
    }
}

/// Seconds in a `since` value like `90s`, `5m`, `1h`, `2d` (default 5 minutes).
fn parse_since(s: &str) -> i64 {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n.parse().unwrap_or(5);
    n * match unit {
        "s" => 1,
        "h" => 3600,
        "d" => 86400,
        _ => 60,
    }
}

pub(crate) fn fmt_ms(ms: &str) -> String {
    let d = js_sys::Date::new(&JsValue::from_f64(ms.parse().unwrap_or(0.0)));
    d.to_iso_string().as_string().unwrap_or_default()
}
