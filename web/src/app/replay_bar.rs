//! Replay of a fixed window: the bar (start, play/pause, speed, scrubber) and the timer that
//! steps the URL's position while playing.

use super::{UrlState, fmt_ms};
use crate::replay;
use leptos::prelude::*;
use std::cell::Cell;
use std::rc::Rc;

/// Replay controls for a fixed window: start, play/pause, speed, a scrubber over the minutes.
#[component]
pub(crate) fn ReplayBar(
    state: RwSignal<UrlState>,
    playing: RwSignal<bool>,
    speed: RwSignal<f64>,
) -> impl IntoView {
    let info =
        Memo::new(move |_| state.with(|s| if s.live() { None } else { Some(s.replaying()) }));
    let range = Memo::new(move |_| info.get().flatten().map(|(r, _)| r));
    let pos = Memo::new(move |_| info.get().flatten().map(|(_, p)| p).unwrap_or(0));
    // Rebuilt only when replay starts/stops or the range changes, never per step (a rebuilt
    // scrubber would drop the user's drag).
    let mode = Memo::new(move |_| info.get().map(|i| i.map(|(r, _)| r)));
    move || {
        match mode.get() {
        None => None,
        Some(None) => Some(view! {
            <div class="replay-bar" data-testid="replay-bar">
                <button data-testid="replay-start" on:click=move |_| state.update(|s| s.replay = s.start.clone())>
                    "▶ replay this range minute by minute"</button>
            </div>
        }.into_any()),
        Some(Some(r)) => {
            Some(view! {
                <div class="replay-bar" data-testid="replay" data-position=move || pos.get() data-playing=move || playing.get().to_string()
                    data-frame=move || range.get().map(|r| r.index(pos.get())).unwrap_or(0) data-frames=r.frames()>
                    <button data-testid="replay-play" on:click=move |_| {
                        // Play from the start again once the end was reached.
                        if !playing.get_untracked() && range.get_untracked().is_some_and(|r| r.next(pos.get_untracked()).is_none()) {
                            state.update(|s| s.replay = r.first.to_string());
                        }
                        playing.update(|p| *p = !*p)
                    }>{move || if playing.get() { "❚❚ pause" } else { "▶ play" }}</button>
                    <label>" speed "<select data-testid="replay-speed" aria-label="replay speed" prop:value=move || speed.get().to_string()
                        on:change=move |ev| speed.set(event_target_value(&ev).parse().unwrap_or(1.0))>
                        {[1, 2, 4, 8, 16].into_iter().map(|k| view! { <option value=k.to_string()>{format!("{k}×")}</option> }).collect_view()}
                    </select></label>
                    <input type="range" data-testid="replay-scrubber" aria-label="replay position" min=r.first max=r.last step=replay::STEP_MS
                        prop:value=move || pos.get().to_string()
                        on:input=move |ev| { if let Ok(v) = event_target_value(&ev).parse::<i64>() { state.update(|s| s.replay = r.clamp(v).to_string()) } } />
                    <span data-testid="replay-label">{move || format!("{} · minute {} of {}", fmt_ms(&pos.get().to_string()), r.index(pos.get()) + 1, r.frames())}</span>
                    <button on:click=move |_| { playing.set(false); state.update(|s| s.replay.clear()) }>"stop replay"</button>
                </div>
            }.into_any())
        }
    }
    }
}

/// While playing, steps to the next minute once the previous frame has arrived (`busy` is
/// false).
pub(crate) fn step_while_playing(
    state: RwSignal<UrlState>,
    playing: RwSignal<bool>,
    speed: RwSignal<f64>,
    busy: Rc<Cell<bool>>,
) {
    let timer = RwSignal::new(None::<IntervalHandle>);
    Effect::new(move |_| {
        let (on, every) = (playing.get(), replay::interval_ms(speed.get()));
        if let Some(h) = timer.try_get_untracked().flatten() {
            h.clear();
        }
        let busy = busy.clone();
        let handle = on.then(|| {
            set_interval_with_handle(
                move || {
                    if busy.get() {
                        return;
                    }
                    let Some((r, pos)) = state.with_untracked(|s| s.replaying()) else {
                        playing.set(false);
                        return;
                    };
                    match r.next(pos) {
                        Some(p) => state.update(|s| s.replay = p.to_string()),
                        None => playing.set(false),
                    }
                },
                std::time::Duration::from_millis(every as u64),
            )
            .ok()
        });
        timer.set(handle.flatten());
    });
    on_cleanup(move || {
        if let Some(h) = timer.try_get_untracked().flatten() {
            h.clear();
        }
    });
}
