//! First steps: the empty state an install without spans shows (how to send them, with the
//! collector's real addresses from `/orrery/api/config`), and the "?" help overlay listing the
//! keyboard and mouse controls.

use crate::net::get_json;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

/// Where the docs on sending spans live (the OpenTelemetry exporter settings Orrery reads).
const DOCS_URL: &str = "https://opentelemetry.io/docs/languages/sdk-configuration/otlp-exporter/";

/// The collector endpoints `/orrery/api/config` reports (`otlp.grpc`, `otlp.http`), with an
/// unspecified host (`0.0.0.0`, `[::]`) replaced by the host the page was loaded from; the
/// default ports when the query service does not know its collector.
fn endpoints(config: &serde_json::Value) -> (String, String) {
    let page_host = web_sys::window()
        .and_then(|w| w.location().hostname().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let fix = |url: Option<&str>, port: u16| match url {
        Some(u) => u.replace("0.0.0.0", &page_host).replace("[::]", &page_host),
        None => format!("http://{page_host}:{port}"),
    };
    (
        fix(config["otlp"]["grpc"].as_str(), 4317),
        fix(config["otlp"]["http"].as_str(), 4318),
    )
}

/// Shown over an empty live map: what to set so spans arrive, and the demo to see it working.
#[component]
pub(crate) fn EmptyState() -> impl IntoView {
    let config = RwSignal::new(None::<serde_json::Value>);
    spawn_local(async move {
        let c = get_json::<serde_json::Value>("orrery/api/config")
            .await
            .unwrap_or_default();
        let _ = config.try_set(Some(c));
    });
    let lines = move || config.get().map(|c| endpoints(&c));
    view! {
        <section class="panel empty-state" data-testid="empty-state" aria-labelledby="empty-title">
            <h2 id="empty-title">"No spans in this window yet"</h2>
            <p>"Point any OpenTelemetry SDK (or an OpenTelemetry Collector) at Orrery's collector:"</p>
            {move || lines().map(|(grpc, http)| view! {
                <pre data-testid="otlp-lines"><code>
                    {format!("# OTLP/gRPC\nexport OTEL_EXPORTER_OTLP_ENDPOINT={grpc}\n\n# or OTLP/HTTP\nexport OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf\nexport OTEL_EXPORTER_OTLP_ENDPOINT={http}")}
                </code></pre>
                <p>"To see a living map first, run the demo — an 18-service web shop with chaos controls: "
                    <code>"orrery demo"</code>" (self-contained), or "
                    <code data-testid="demo-line">{format!("orrery demo --demo-fleet-only --demo-otlp-endpoint {grpc}")}</code>
                    " to send its spans here."</p>
            })}
            <p>"Services appear within seconds of their first spans. "
                <a href=DOCS_URL target="_blank" rel="noopener" data-testid="docs-link">"OTLP exporter settings (docs)"</a>
                " · press "<kbd>"?"</kbd>" for the map's controls."</p>
        </section>
    }
}

/// The help overlay's open state, provided by the app so the map's Escape handler leaves a
/// key meant for the overlay alone.
#[derive(Clone, Copy)]
pub(crate) struct Help(pub RwSignal<bool>);

/// Whether a key event was typed into a text field (where "?" is a character, not a command).
fn typing(ev: &web_sys::KeyboardEvent) -> bool {
    ev.target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        .is_some_and(|e| {
            matches!(e.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
                || e.has_attribute("contenteditable")
        })
}

/// Opens the help with "?" (outside text fields), closes it with Escape.
pub(crate) fn install_help_keys(help: Help) {
    let keys =
        Closure::<dyn FnMut(web_sys::KeyboardEvent)>::new(move |ev: web_sys::KeyboardEvent| {
            if crate::auth::state().prompt.get_untracked().is_some() {
                return;
            }
            match ev.key().as_str() {
                "?" if !typing(&ev) => {
                    ev.prevent_default();
                    help.0.update(|o| *o = !*o);
                }
                // Handled here: the map's Escape (close a panel, go up) sees defaultPrevented.
                "Escape" if help.0.get_untracked() => {
                    ev.prevent_default();
                    help.0.set(false);
                }
                _ => {}
            }
        });
    let _ = web_sys::window()
        .unwrap()
        .add_event_listener_with_callback("keydown", keys.as_ref().unchecked_ref());
    keys.forget();
}

/// The controls, as a real modal: a `<dialog>` opened with `showModal()`, so the page behind
/// is inert (no focus, no clicks, hidden from assistive technology) and Escape closes it.
/// Focus moves to its close button and stays in the dialog (Tab included), and on close focus
/// returns to the "?" button.
#[component]
pub(crate) fn HelpOverlay(help: Help) -> impl IntoView {
    let close = NodeRef::<leptos::html::Button>::new();
    let dialog = NodeRef::<leptos::html::Dialog>::new();
    Effect::new(move |was_open: Option<bool>| {
        let open = help.0.get();
        let Some(d) = dialog.get() else {
            return open;
        };
        // `showModal`/`close` through Reflect: the web-sys binding needs a feature the crate
        // does not otherwise use.
        let call = |name: &str| {
            if let Ok(f) = js_sys::Reflect::get(&d, &name.into())
                && let Ok(f) = f.dyn_into::<js_sys::Function>()
            {
                let _ = f.call0(&d);
            }
        };
        let is_open = js_sys::Reflect::get(&d, &"open".into()).is_ok_and(|v| v.is_truthy());
        if open {
            if !is_open {
                call("showModal");
            }
            if let Some(b) = close.get() {
                let _ = b.focus();
            }
        } else {
            if is_open {
                call("close");
            }
            if was_open == Some(true)
                && let Some(b) = web_sys::window()
                    .and_then(|w| w.document())
                    .and_then(|d| d.query_selector("[data-testid=help-button]").ok().flatten())
                    .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
            {
                let _ = b.focus();
            }
        }
        open
    });
    // Tab and Shift+Tab stay in the dialog: its one control is the close button (after it the
    // browser would move focus to its own toolbar, out of the page).
    let trap = move |ev: web_sys::KeyboardEvent| {
        if ev.key() == "Tab"
            && let Some(b) = close.get()
        {
            ev.prevent_default();
            let _ = b.focus();
        }
    };
    let rows: &[(&str, &str)] = &[
        (
            "click a node or an edge",
            "its panel: rates, latency histogram, operations, traces",
        ),
        (
            "double-click a node",
            "drill down: region → namespace → service (focused)",
        ),
        (
            "Esc",
            "close the panel, then go up a level (collapse namespaces, region → global)",
        ),
        (
            "drag a node",
            "pin it there (kept in this browser; \"unpin all\" releases)",
        ),
        (
            "drag the background · wheel",
            "pan · zoom (zooming in over a namespace opens it)",
        ),
        ("hover", "a node's or edge's rate, errors and latency"),
        (
            "Tab to the service list, Enter",
            "the node's panel; Shift+Enter drills down",
        ),
        ("locate a service, Enter", "centre the map on it"),
        (
            "trace page: j / k, Enter, /",
            "next / previous span, expand or collapse, find",
        ),
        ("?", "this help"),
    ];
    view! {
        // The dialog fills the viewport (its own backdrop): a click beside the panel closes it.
        <dialog class="help-backdrop" node_ref=dialog data-testid="help-dialog" aria-labelledby="help-title"
            hidden=move || !help.0.get()
            on:close=move |_| if help.0.get_untracked() { help.0.set(false) }
            on:keydown=trap
            on:click=move |ev| {
                let on_backdrop = ev.target().zip(dialog.get()).is_some_and(|(t, d)| {
                    t.dyn_ref::<web_sys::Element>().is_some_and(|t| t == d.as_ref() as &web_sys::Element)
                });
                if on_backdrop { help.0.set(false) }
            }>
            <div class="help panel" data-testid="help">
                <h2 id="help-title">"Keyboard and mouse"</h2>
                <table class="data"><tbody>
                    {rows.iter().map(|(k, what)| view! { <tr><th scope="row">{*k}</th><td>{*what}</td></tr> }).collect_view()}
                </tbody></table>
                <p class="muted">"Colours: blue normal, orange warning, red danger (error share or p95 over the thresholds). Particles: requests flowing, red ones failed."</p>
                <button node_ref=close data-testid="help-close" on:click=move |_| help.0.set(false)>"Close (Esc)"</button>
            </div>
        </dialog>
    }
}
