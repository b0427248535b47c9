//! The checks view (`?view=checks`: every rule with its state and firing history) and the
//! notices panel beside the map (the firing rules: measured value, since when, failing traces).

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::{Board, History, RuleState, episodes, measured_line, ordered, traces_link};
use crate::net::{enc, get_json};
use crate::route::UrlState;

/// How often the rule states are fetched again.
const POLL_MS: u64 = 15_000;

/// What `/orrery/api/checks` answered last: `None` before the first answer, an error message
/// when the service cannot be reached (no rules is an empty board, `configured: false`).
pub type BoardSignal = RwSignal<Option<Result<Board, String>>>;

/// Starts fetching the rule states now and every 15 s while the calling component lives; call
/// once and hand the signal to [`ChecksView`], [`NoticesPanel`] and the map's notices
/// (`checks::notice_targets`).
pub fn poll_board() -> BoardSignal {
    let board: BoardSignal = RwSignal::new(None);
    let fetch = move || {
        spawn_local(async move {
            let r = get_json::<Board>("orrery/api/checks").await;
            let _ = board.try_set(Some(r));
        })
    };
    fetch();
    if let Ok(h) = set_interval_with_handle(fetch, std::time::Duration::from_millis(POLL_MS)) {
        on_cleanup(move || h.clear());
    }
    board
}

fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// `19:20:31` (local time) for today, else the date too.
fn when(ms: i64) -> String {
    if ms <= 0 {
        return "—".into();
    }
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    let today = js_sys::Date::new_0();
    let time = format!(
        "{:02}:{:02}:{:02}",
        d.get_hours(),
        d.get_minutes(),
        d.get_seconds()
    );
    if d.to_date_string() == today.to_date_string() {
        time
    } else {
        format!(
            "{:04}-{:02}-{:02} {time}",
            d.get_full_year(),
            d.get_month() + 1,
            d.get_date()
        )
    }
}

fn ago(ms: i64) -> String {
    let s = ((now_ms() - ms) / 1000).max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d", s / 86400),
    }
}

fn state_class(s: &RuleState) -> &'static str {
    match (s.firing, s.verdict.as_str()) {
        (true, _) => "check-state check-firing",
        (_, "violated") => "check-state check-violated",
        (_, "pass") => "check-state check-pass",
        _ => "check-state check-nodata",
    }
}

fn state_label(s: &RuleState) -> String {
    match (s.firing, s.verdict.as_str()) {
        (true, _) => "FIRING".into(),
        (_, "violated") => "violated (pending for:)".into(),
        (_, "no_data") => "no data".into(),
        (_, v) => v.to_string(),
    }
}

/// Every rule: state, since when, why, what was measured, the failing traces, and when it fired
/// and cleared.
#[component]
pub fn ChecksView(state: RwSignal<UrlState>, board: BoardSignal) -> impl IntoView {
    let _ = state;
    let history: RwSignal<History> = RwSignal::new(History::default());
    // History follows the board: fetched again whenever a new board arrives.
    Effect::new(move |_| {
        let Some(Ok(b)) = board.get() else { return };
        if b.rules.is_empty() {
            return;
        }
        let q: Vec<String> = b
            .rules
            .iter()
            .map(|r| format!("rule={}", enc(&r.rule)))
            .collect();
        spawn_local(async move {
            let url = format!("orrery/api/checks/history?limit=20&{}", q.join("&"));
            if let Ok(h) = get_json::<History>(&url).await {
                let _ = history.try_set(h);
            }
        });
    });
    view! {
        <section class="checks-view" aria-labelledby="checks-title">
            <h2 id="checks-title">"Checks"</h2>
            {move || match board.get() {
                None => view! { <p class="checks-empty">"Loading rule states…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="checks-empty" role="status">{e}</p> }.into_any(),
                Some(Ok(b)) if !b.configured => view! { <p class="checks-empty" role="status">{b.hint.clone()}</p> }.into_any(),
                Some(Ok(b)) if b.rules.is_empty() => view! { <p class="checks-empty">"Evaluating the rules…"</p> }.into_any(),
                Some(Ok(b)) => {
                    let now = now_ms();
                    let rows = ordered(&b)
                        .into_iter()
                        .map(|s| {
                            let events = history.with(|h| h.rules.get(&s.rule).cloned().unwrap_or_default());
                            let eps = episodes(&events);
                            let link = traces_link(s, now);
                            let measured = s.outcome.as_ref().and_then(|o| o.measured.as_ref()).map(measured_line);
                            let reason = s.outcome.as_ref().map(|o| o.reason.clone()).unwrap_or_default();
                            view! {
                                <tr class="check-row" data-rule=s.rule.clone()>
                                    <th scope="row">{s.rule.clone()}<div class="check-desc">{s.description.clone()}</div></th>
                                    <td>{s.kind.clone()}</td>
                                    <td><span class=state_class(s)>{state_label(s)}</span></td>
                                    <td title=when(s.since_ms)>{format!("{} ago", ago(s.since_ms))}</td>
                                    <td>{reason}{s.error.clone().map(|e| view! { <div class="check-error">"last evaluation failed: " {e}</div> })}</td>
                                    <td>{measured.unwrap_or_default()}</td>
                                    <td>{link.map(|l| view! { <a href=l>"traces"</a> })}</td>
                                    <td class="check-history">
                                        {if eps.is_empty() { "never fired".to_string() } else { String::new() }}
                                        <ul>
                                            {eps.into_iter().map(|e| view! {
                                                <li>"fired " {when(e.fired_ms)} ", "
                                                    {match e.cleared_ms { Some(c) => format!("cleared {}", when(c)), None => "still firing".into() }}</li>
                                            }).collect_view()}
                                        </ul>
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view();
                    view! {
                        <p class="checks-meta">{format!("{} rule(s), evaluated every {} s, last at {}", b.rules.len(), b.interval_ms / 1000, when(b.evaluated_at_ms))}</p>
                        <table class="checks-table">
                            <thead><tr>
                                <th scope="col">"Rule"</th><th scope="col">"Kind"</th><th scope="col">"State"</th>
                                <th scope="col">"Since"</th><th scope="col">"Why"</th><th scope="col">"Measured"</th>
                                <th scope="col">"Failing traces"</th><th scope="col">"History"</th>
                            </tr></thead>
                            <tbody>{rows}</tbody>
                        </table>
                    }.into_any()
                }
            }}
        </section>
    }
}

/// The firing rules as a list beside the map (nothing when none fires).
#[component]
pub fn NoticesPanel(state: RwSignal<UrlState>, board: BoardSignal) -> impl IntoView {
    let _ = state;
    let firing = Memo::new(move |_| match board.get() {
        Some(Ok(b)) => b.rules.into_iter().filter(|r| r.firing).collect::<Vec<_>>(),
        _ => Vec::new(),
    });
    move || {
        let list = firing.get();
        (!list.is_empty()).then(|| {
            let now = now_ms();
            view! {
                <aside class="notices-panel" aria-label="Firing checks">
                    <h3>{format!("{} check(s) firing", list.len())}</h3>
                    <ul>
                        {list.into_iter().map(|s| {
                            let link = traces_link(&s, now);
                            let o = s.outcome.clone().unwrap_or_default();
                            view! {
                                <li class="notice" data-rule=s.rule.clone()>
                                    <strong>{s.rule.clone()}</strong>
                                    <div>{o.reason.clone()}</div>
                                    <div class="notice-measured">{o.measured.as_ref().map(measured_line).unwrap_or_default()}</div>
                                    <div class="notice-since" title=when(s.since_ms)>{format!("since {} ({} ago)", when(s.since_ms), ago(s.since_ms))}</div>
                                    {link.map(|l| view! { <a href=l>"failing traces"</a> })}
                                    " · "<a href="?view=checks">"all checks"</a>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                </aside>
            }
        })
    }
}
