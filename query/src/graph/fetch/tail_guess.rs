//! The live tail read beside the rollup markers instead of after them.
//!
//! A graph reads its rollup markers first: they say what is rolled up and so which ranges
//! are read from spans. At the live edge that is one range, the tail after the newest closed
//! 10-second slot, and its statement is the longest of a graph's reads — so waiting for the
//! markers (one round trip, ~20 ms; two for a day-long window) put them on the critical path
//! of every graph. The tail's start is the same for every window read until the rollup moves
//! its frontier (every 10 s under ingest), so a read guesses it from the last one this
//! process made ([`Tail`], noted in the [`RolledCache`]), starts the live edges and nodes at
//! once, and keeps their answer **only when the markers then say exactly that range** (and
//! the same small-tail choice): the same statement with the same parameters, so the same
//! answer. Otherwise the early read is aborted and the tail read as before. Nothing is
//! guessed for a range older than the live edge, where a wrong guess would waste a long read.
//!
//! [`RolledCache`]: crate::graph::cache::RolledCache

use std::future::Future;

use anyhow::Result;
use tokio::task::JoinHandle;

use super::window::Window;
use crate::metrics::{TAIL_GUESSES_DROPPED, TAIL_GUESSES_KEPT, inc};

/// `[lo, hi)` in ns.
pub type Range = (i64, i64);

/// How far before "now" a guessed tail may start: the live edge (the slots close seconds after
/// they end; without slots the minutes' frontier is ~1–2 minutes back). An older start is a
/// lagging rollup, whose tail is too long to read on a guess.
const MAX_TAIL_NS: i64 = 180_000_000_000;

/// Where the last graph read's live tail started (ns) and whether it was the small tail that
/// also reads the slots' spans (`edges::small_tail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail {
    pub lo: i64,
    pub whole: bool,
}

/// The live ranges a read guesses, and its small-tail range: what the markers must then say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guess {
    pub live: Vec<Range>,
    pub whole: Option<Range>,
}

impl Tail {
    /// The tail a read found, from its live ranges and small-tail choice: only a single range
    /// that runs to the window's end, when that end is now (a window of the past has no tail
    /// to share), and starts inside the window (one starting at the window's start says where
    /// the window begins, not where the rollup's frontier is).
    pub fn of(w: Window, live: &[Range], whole: Option<Range>) -> Option<Tail> {
        match live {
            [(lo, hi)] if *hi == w.hi && w.hi >= w.now && *lo > w.lo => Some(Tail {
                lo: *lo,
                whole: whole.is_some(),
            }),
            _ => None,
        }
    }

    /// The guess for window `w`: this tail, cut to the window, when it is at the live edge.
    pub fn guess(self, w: Window) -> Option<Guess> {
        let lo = self.lo.max(w.lo);
        if w.hi < w.now || lo >= w.hi || lo < w.now - MAX_TAIL_NS {
            return None;
        }
        Some(Guess {
            live: vec![(lo, w.hi)],
            whole: self.whole.then_some((lo, w.hi)),
        })
    }
}

/// A live part (edges or nodes, and whether it was read without regions) started on a guess.
pub type LiveStart<T> = Started<(Vec<T>, bool)>;

/// A live read started on a guess; aborted when dropped unused (a request that ends, a guess
/// the markers refute), so no early read outlives its graph.
pub struct Started<T> {
    guess: Guess,
    handle: Option<JoinHandle<Result<T>>>,
}

impl<T: Send + 'static> Started<T> {
    pub fn spawn(guess: Guess, read: impl Future<Output = Result<T>> + Send + 'static) -> Self {
        Started {
            guess,
            handle: Some(tokio::spawn(read)),
        }
    }

    /// The early read's answer when the markers say the guessed ranges (`live`, `whole`);
    /// `None` (the read aborted) when they do not. The handle stays in `self` while it is
    /// awaited, so a request that ends meanwhile aborts the read too (`Drop`).
    pub async fn take(mut self, live: &[Range], whole: Option<Range>) -> Option<Result<T>> {
        if self.guess.live != live || self.guess.whole != whole {
            inc(&TAIL_GUESSES_DROPPED);
            return None;
        }
        inc(&TAIL_GUESSES_KEPT);
        let handle = self.handle.as_mut()?;
        Some(match handle.await {
            Ok(r) => r,
            Err(e) => Err(anyhow::anyhow!("live read on a guessed tail: {e}")),
        })
    }
}

/// The early read's answer when `started` guessed the ranges the markers say (`live`,
/// `whole`), else `read`'s — a future, so it runs only then.
pub async fn kept_or<T: Send + 'static>(
    started: Option<Started<T>>,
    (live, whole): (&[Range], Option<Range>),
    read: impl Future<Output = Result<T>>,
) -> Result<T> {
    if let Some(st) = started
        && let Some(answer) = st.take(live, whole).await
    {
        return answer;
    }
    read.await
}

impl<T> Drop for Started<T> {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn window(lo: i64, hi: i64, now: i64) -> Window {
        Window { lo, hi, now }
    }

    #[test]
    fn only_a_single_tail_to_the_end_of_a_window_at_now_is_noted() {
        let w = window(0, 900 * S, 880 * S);
        let t = Tail::of(w, &[(869 * S, 900 * S)], None).unwrap();
        assert_eq!((t.lo, t.whole), (869 * S, false));
        assert!(Tail::of(w, &[(600 * S, 660 * S), (869 * S, 900 * S)], None).is_none());
        assert!(Tail::of(w, &[(600 * S, 660 * S)], None).is_none());
        assert!(
            Tail::of(
                window(869 * S, 900 * S, 880 * S),
                &[(869 * S, 900 * S)],
                None
            )
            .is_none()
        );
        assert!(Tail::of(window(0, 900 * S, 2_000 * S), &[(869 * S, 900 * S)], None).is_none());
        let small = Tail::of(w, &[(800 * S, 900 * S)], Some((800 * S, 900 * S))).unwrap();
        assert!(small.whole);
    }

    #[test]
    fn a_guess_is_cut_to_the_window_and_never_far_from_now() {
        let t = Tail {
            lo: 869 * S,
            whole: false,
        };
        let g = t.guess(window(0, 900 * S, 880 * S)).unwrap();
        assert_eq!(g.live, vec![(869 * S, 900 * S)]);
        assert_eq!(g.whole, None);
        // A window starting after the tail: its own start.
        let g = t.guess(window(870 * S, 900 * S, 880 * S)).unwrap();
        assert_eq!(g.live, vec![(870 * S, 900 * S)]);
        // A window of the past, and a tail far behind now (a lagging rollup): no guess.
        assert!(t.guess(window(0, 600 * S, 880 * S)).is_none());
        assert!(t.guess(window(0, 2_000 * S, 1_999 * S)).is_none());
        let small = Tail {
            lo: 800 * S,
            whole: true,
        };
        assert_eq!(
            small.guess(window(0, 900 * S, 880 * S)).unwrap().whole,
            Some((800 * S, 900 * S))
        );
    }

    #[tokio::test]
    async fn an_answer_is_kept_only_for_the_guessed_ranges() {
        let guess = Guess {
            live: vec![(1, 2)],
            whole: None,
        };
        let hit = Started::spawn(guess.clone(), async { Ok(7) });
        assert_eq!(hit.take(&[(1, 2)], None).await.unwrap().unwrap(), 7);
        let other_range = Started::spawn(guess.clone(), async { Ok(7) });
        assert!(other_range.take(&[(0, 2)], None).await.is_none());
        let other_choice = Started::spawn(guess.clone(), async { Ok(7) });
        assert!(other_choice.take(&[(1, 2)], Some((1, 2))).await.is_none());
        // Dropped unused: the read is aborted, never left running.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let pending = Started::spawn(guess.clone(), async move {
            let _tx = tx;
            std::future::pending::<()>().await;
            Ok(0)
        });
        drop(pending);
        assert!(rx.await.is_err(), "the aborted read dropped its sender");
        // Kept, then the request ends while its answer is awaited: aborted as well.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let kept = Started::spawn(guess, async move {
            let _tx = tx;
            std::future::pending::<()>().await;
            Ok(0)
        });
        let waited = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            kept.take(&[(1, 2)], None),
        );
        assert!(waited.await.is_err(), "still pending when the request ends");
        let ended = tokio::time::timeout(std::time::Duration::from_secs(2), rx).await;
        assert!(
            matches!(ended, Ok(Err(_))),
            "the kept read was aborted with its request"
        );
    }
}
