//! The aggregates a graph is built from: one edge or node of a window, with counts and a
//! latency histogram that merge exactly (rolled-up and live parts, cached parts, virtual nodes).
//! Their own module so the parts cache and the readers both depend on it, not on each other.

use orrery_store::latency::Histogram;

/// One edge of a window: counts and the merged latency histogram, with p50/p95/p99 (ns) read
/// off it.
#[derive(Debug, Clone)]
pub struct EdgeAgg {
    pub source: String,
    pub target: String,
    pub kind: String,
    pub caller_region: String,
    pub callee_region: String,
    pub requests: u64,
    pub errors: u64,
    pub duration_sum_ns: u64,
    pub latency: Histogram,
    pub q: Vec<f64>,
}

/// One node of a window (see [`EdgeAgg`]).
#[derive(Debug, Clone)]
pub struct NodeAgg {
    pub id: String,
    pub region: String,
    pub requests: u64,
    pub errors: u64,
    pub duration_sum_ns: u64,
    pub latency: Histogram,
    pub q: Vec<f64>,
}

impl EdgeAgg {
    /// Adds the calls of another row of the same edge.
    pub fn add(&mut self, o: &EdgeAgg) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.duration_sum_ns += o.duration_sum_ns;
        self.latency.merge(&o.latency);
        if self.caller_region.is_empty() {
            self.caller_region = o.caller_region.clone();
        }
        if self.callee_region.is_empty() {
            self.callee_region = o.callee_region.clone();
        }
    }
}

impl NodeAgg {
    pub fn add(&mut self, o: &NodeAgg) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.duration_sum_ns += o.duration_sum_ns;
        self.latency.merge(&o.latency);
        if self.region.is_empty() {
            self.region = o.region.clone();
        }
    }
}

/// The calls of one key of a live read (an edge or a node), folded from its rows — one per
/// latency bucket — as they arrive, never collected first (see `fetch::edges::live_edges`).
#[derive(Debug, Default)]
pub struct LiveCalls {
    pub requests: u64,
    pub errors: u64,
    pub duration_sum_ns: u64,
    pub latency: Histogram,
}

impl LiveCalls {
    /// One row's calls: `(requests, errors, duration sum)` in latency bucket `bucket`, between
    /// `(min, max)` ns.
    pub fn bucket(
        bucket: u8,
        (requests, errors, sum): (u64, u64, u64),
        (min_ns, max_ns): (u64, u64),
    ) -> Self {
        LiveCalls {
            requests,
            errors,
            duration_sum_ns: sum,
            latency: Histogram::one_bucket(bucket as usize, requests, min_ns, max_ns),
        }
    }

    pub fn add(&mut self, o: &LiveCalls) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.duration_sum_ns += o.duration_sum_ns;
        self.latency.merge(&o.latency);
    }
}
