//! A small in-memory cache of the rolled-up part of graph windows.
//!
//! The rolled-up part of a window (closed hours and minutes before the first minute the rollup
//! has not marked) only changes when the rollup recomputes one of its minutes or hours, which
//! changes that marker's version. Entries are keyed by the query's shape *and* the versions of
//! every marker it read, so a hit is exactly what ClickHouse would answer now; nothing is ever
//! invalidated, old keys just age out. A restart or another replica simply starts cold.

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use super::agg::{EdgeAgg, NodeAgg};
use super::fetch::tail_guess::Tail;

/// What a cached part holds.
#[derive(Debug, Clone)]
pub enum Part {
    Edges(Arc<Vec<EdgeAgg>>),
    Nodes(Arc<Vec<NodeAgg>>),
}

#[derive(Default)]
struct Inner {
    map: HashMap<u64, Part>,
    order: VecDeque<u64>,
    /// Where the last graph read's live tail started: not an answer, a guess a read verifies
    /// against its own markers (`fetch::tail_guess`), so it is kept whatever the capacity.
    tail: Option<Tail>,
}

/// Shared by clones (one per query service process).
#[derive(Clone, Default)]
pub struct RolledCache {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for RolledCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RolledCache")
    }
}

/// A cache key: a hash of everything the answer depends on.
pub fn key(parts: &impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

impl RolledCache {
    pub fn get(&self, key: u64) -> Option<Part> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.map.get(&key).cloned()
    }

    /// Keeps at most `capacity` entries, dropping the oldest first.
    pub fn put(&self, key: u64, part: Part, capacity: usize) {
        if capacity == 0 {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.map.insert(key, part).is_none() {
            inner.order.push_back(key);
        }
        while inner.order.len() > capacity {
            if let Some(old) = inner.order.pop_front() {
                inner.map.remove(&old);
            }
        }
    }

    /// The live tail the last graph read of this process found (`fetch::tail_guess`).
    pub fn last_tail(&self) -> Option<Tail> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).tail
    }

    /// `None`: the last live read had no tail to share (a graph ending at its settled
    /// frontier), so the next read starts nothing on a guess.
    pub fn note_tail(&self, tail: Option<Tail>) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).tail = tail;
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_entries_up_to_capacity() {
        let c = RolledCache::default();
        for k in 0..5u64 {
            c.put(k, Part::Edges(Arc::new(Vec::new())), 3);
        }
        assert_eq!(c.len(), 3);
        assert!(c.get(0).is_none() && c.get(1).is_none());
        assert!(c.get(4).is_some());
        c.put(9, Part::Nodes(Arc::new(Vec::new())), 0);
        assert!(c.get(9).is_none(), "capacity 0 caches nothing");
        assert_ne!(key(&("edges", 1u64)), key(&("nodes", 1u64)));
    }
}
