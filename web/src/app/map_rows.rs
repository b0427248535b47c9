//! The rows of the lists beside the map as the page holds them: keyed (a node's id, an edge's
//! source and target), each with a signal of what it shows, and brought up to date with the
//! wanted rows (`map_view`'s memos over the graph and the filter) by `map_lists::step` — at most
//! `LIST_CHUNK` rows created or changed per step over both lists, one step per frame (in a task
//! after it).
//!
//! Why: at 2,000 services both lists are full (200 rows each) and a live update changes the
//! figures of nearly every row. Setting them in one task — each row's attributes and text read
//! from the whole list, with the DOM updates that sets off — was one task of 51–94 ms after an
//! update on the test machine, the map's last long task. Here a row's cells read its own signal,
//! a row whose shown figures did not change is not touched, and the rest are set a chunk per
//! frame (each an `orrery:list-chunk` User Timing entry whose `detail.rows` says how many rows
//! it changed), so a frame or a key press never waits behind more than one chunk; the DOM stays
//! bounded by `LIST_CAP` rows per list.

use crate::map::perf;
use crate::map_lists::{self, LIST_CHUNK, RowState};
use leptos::prelude::*;
use leptos::task::{spawn_local, tick};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::rc::Rc;

/// A service row as shown.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NodeRow {
    pub(crate) kind: String,
    pub(crate) namespace: String,
    pub(crate) health: String,
    /// Where the node was drawn (CSS px in the canvas) at the last update, for tests and tools.
    pub(crate) x: i32,
    pub(crate) y: i32,
    /// "name · rate · errors".
    pub(crate) text: String,
}

/// An edge row as shown.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EdgeRow {
    /// Health, or `added`/`vanished` in diff mode.
    pub(crate) state: String,
    pub(crate) error_rate: String,
    /// "source → target · rate · errors".
    pub(crate) text: String,
}

/// The rows on screen, in order: each row's key and the signal its cells read.
pub(crate) type Shown<K, V> = RwSignal<Vec<(K, ArcRwSignal<V>)>>;

/// A list the rows of which follow what it wants.
pub(crate) trait Follow {
    /// Subscribes the running effect to what the list wants.
    fn track(&self);
    /// One step with at most `budget` rows created or changed: (rows, caught up), or `None`
    /// once the view is gone.
    fn step(&mut self, budget: usize) -> Option<(usize, bool)>;
}

struct List<K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    want: Memo<Vec<(K, V)>>,
    shown: Shown<K, V>,
    rows: HashMap<K, ArcRwSignal<V>>,
}

/// A list whose rows on screen (`shown`, what its `<For>` iterates) follow `want`.
pub(crate) fn list<K, V>(want: Memo<Vec<(K, V)>>, shown: Shown<K, V>) -> Box<dyn Follow>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Clone + PartialEq + Send + Sync + 'static,
{
    Box::new(List {
        want,
        shown,
        rows: HashMap::new(),
    })
}

impl<K, V> Follow for List<K, V>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Clone + PartialEq + Send + Sync + 'static,
{
    fn track(&self) {
        self.want.track();
    }

    fn step(&mut self, budget: usize) -> Option<(usize, bool)> {
        let (want, shown, rows) = (self.want, self.shown, &mut self.rows);
        want.try_with_untracked(|want| {
            let s = map_lists::step(
                want.len(),
                |i| match rows.get(&want[i].0) {
                    None => RowState::Absent,
                    Some(r) if r.with_untracked(|v| *v == want[i].1) => RowState::Same,
                    Some(_) => RowState::Changed,
                },
                budget,
            );
            for &i in &s.update {
                if let Some(r) = rows.get(&want[i].0) {
                    r.set(want[i].1.clone());
                }
            }
            for &i in &s.create {
                rows.insert(want[i].0.clone(), ArcRwSignal::new(want[i].1.clone()));
            }
            let next: Vec<(K, ArcRwSignal<V>)> = s
                .shown
                .iter()
                .filter_map(|&i| rows.get(&want[i].0).map(|r| (want[i].0.clone(), r.clone())))
                .collect();
            // Rows no longer wanted leave now (dropping the last handle of their signal).
            let keep: HashSet<&K> = next.iter().map(|(k, _)| k).collect();
            rows.retain(|k, _| keep.contains(k));
            let same_keys = shown.with_untracked(|cur| {
                cur.len() == next.len() && cur.iter().zip(&next).all(|(a, b)| a.0 == b.0)
            });
            if !same_keys {
                shown.set(next);
            }
            (s.rows(), s.done)
        })
    }
}

/// Keeps the lists' rows following what they want: whenever any of them wants other rows, steps
/// of at most `LIST_CHUNK` rows (over all the lists, the first list first) run one per frame
/// until every list has caught up, each step on the latest wanted rows (an update arriving meanwhile
/// is taken in, never queued behind the one in progress).
///
/// `busy` is true while steps remain (the lists' `aria-busy`: assistive technology and tests
/// wait for the lists to be whole).
pub(crate) fn follow(lists: Vec<Box<dyn Follow>>, busy: RwSignal<bool>) {
    let lists = Rc::new(RefCell::new(lists));
    let (dirty, running) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(false)));
    Effect::new(move |_| {
        for l in lists.borrow().iter() {
            l.track();
        }
        dirty.set(true);
        if running.replace(true) {
            return;
        }
        let (lists, dirty, running) = (lists.clone(), dirty.clone(), running.clone());
        spawn_local(async move {
            loop {
                dirty.set(false);
                let t = perf::now();
                let (mut budget, mut done) = (LIST_CHUNK, true);
                for l in lists.borrow_mut().iter_mut() {
                    let Some((rows, caught_up)) = l.step(budget) else {
                        // The view is gone.
                        return;
                    };
                    budget -= rows;
                    done &= caught_up;
                }
                // The rows' DOM updates are effects run as microtasks after this one: waiting
                // a tick lets them run, so the entry covers them (all in this task).
                tick().await;
                if budget < LIST_CHUNK {
                    perf::measure_rows("orrery:list-chunk", t, LIST_CHUNK - budget);
                }
                if done && !dirty.get() {
                    break;
                }
                if !busy.get_untracked() {
                    let _ = busy.try_set(true);
                }
                next_frame().await;
            }
            running.set(false);
            let _ = busy.try_set(false);
        });
    });
}

/// Resolves in a task after the next animation frame (a zero timeout from the frame's
/// callback): one step per frame, so the lists' work is spread over frames rather than run
/// back to back, and the step never delays the frame. (In a hidden tab frames stop, and so do the steps; the
/// lists catch up on the latest graph when it is shown again.)
async fn next_frame() {
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;
    let p = js_sys::Promise::new(&mut |resolve, _| {
        let Some(w) = web_sys::window() else { return };
        let later = Closure::once_into_js(move || {
            if let Some(w) = web_sys::window() {
                let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
            }
        });
        let _ = w.request_animation_frame(later.unchecked_ref());
    });
    let _ = wasm_bindgen_futures::JsFuture::from(p).await;
}
