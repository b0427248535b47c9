//! Latency histograms of the service-graph rollups (schema v6).
//!
//! A duration goes into one of [`BUCKETS`] log-scale buckets, three per doubling: bucket `i`
//! holds `floor(3 * log2(ns)) = i + OFFSET`, i.e. `[2^((i+40)/3), 2^((i+41)/3))` ns (each bucket
//! 26% wider than the one before), with everything under 13 µs in bucket 0 and everything from
//! 21.6 s in the last. Rollup rows keep the counts as plain `UInt32` columns `H00..H63` plus the
//! smallest and largest duration, so rows merge by `sum`/`min`/`max` — column sums that
//! ClickHouse runs several times faster than merging t-digest states — and so windows, unions of
//! edges and cached parts can be merged outside ClickHouse too.
//!
//! Quantiles are read off the merged counts (log-interpolated inside the bucket, clamped to the
//! smallest/largest duration): always inside the bucket of the true value, so within 26% of it
//! at worst and usually within a few percent (`quantile_stays_in_the_true_bucket`).

/// Number of buckets.
pub const BUCKETS: usize = 64;
/// Buckets per doubling of the duration.
pub const PER_DOUBLING: i32 = 3;
/// `floor(3 * log2(ns))` of bucket 0.
const OFFSET: i32 = 40;

/// Column name of bucket `i`.
pub fn column(i: usize) -> String {
    format!("H{i:02}")
}

/// `H00, H01, ..., H63`.
pub fn columns_csv() -> String {
    (0..BUCKETS).map(column).collect::<Vec<_>>().join(", ")
}

/// Column definitions for a rollup table (after its count columns).
pub fn columns_ddl() -> String {
    (0..BUCKETS)
        .map(|i| format!("    {} UInt32", column(i)))
        .collect::<Vec<_>>()
        .join(",\n")
}

/// SQL: the bucket index (0-based, `UInt8`) of a duration in ns.
pub fn index_sql(duration: &str) -> String {
    format!(
        "toUInt8(least({last}, greatest(0, toInt32(floor({PER_DOUBLING} * log2(greatest({duration}, 1)))) - {OFFSET})))",
        last = BUCKETS - 1
    )
}

/// SQL: `countIf(B = 0) AS H00, ...` over a column `B` holding [`index_sql`].
pub fn counts_sql(index_column: &str) -> String {
    (0..BUCKETS)
        .map(|i| format!("toUInt32(countIf({index_column} = {i})) AS {}", column(i)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// SQL: `sum(H00) AS H00, ...` (merging rollup rows into rows of the same shape).
pub fn merge_sql() -> String {
    (0..BUCKETS)
        .map(|i| format!("toUInt32(sum({c})) AS {c}", c = column(i)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// SQL: `[sum(H00), ..., sum(H63)]` as `Array(UInt64)` (reading a merged histogram).
pub fn sum_array_sql() -> String {
    let sums: Vec<String> = (0..BUCKETS)
        .map(|i| format!("sum({})", column(i)))
        .collect();
    format!("[{}]::Array(UInt64)", sums.join(", "))
}

/// The bucket of a duration (the same arithmetic as [`index_sql`]).
pub fn index(ns: u64) -> usize {
    let i = (PER_DOUBLING as f64 * (ns.max(1) as f64).log2()).floor() as i32 - OFFSET;
    i.clamp(0, BUCKETS as i32 - 1) as usize
}

/// Lower bound (ns) of bucket `i` (0 for the first).
pub fn lower_ns(i: usize) -> f64 {
    if i == 0 {
        0.0
    } else {
        2f64.powf((i as i32 + OFFSET) as f64 / PER_DOUBLING as f64)
    }
}

/// Upper bound (ns, exclusive) of bucket `i` (infinite for the last).
pub fn upper_ns(i: usize) -> f64 {
    if i + 1 >= BUCKETS {
        f64::INFINITY
    } else {
        2f64.powf((i as i32 + OFFSET + 1) as f64 / PER_DOUBLING as f64)
    }
}

/// A merged latency histogram: bucket counts plus the smallest and largest duration (ns).
/// Fixed-size and inline, so graphs of thousands of edges copy and merge them without
/// allocating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    pub counts: [u64; BUCKETS],
    pub min_ns: u64,
    pub max_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: [0; BUCKETS],
            min_ns: 0,
            max_ns: 0,
        }
    }
}

impl Histogram {
    /// From bucket counts as read from ClickHouse (missing buckets are empty, extra ones are
    /// added to the last).
    pub fn new(counts: &[u64], min_ns: u64, max_ns: u64) -> Self {
        let mut h = Histogram {
            counts: [0; BUCKETS],
            min_ns,
            max_ns,
        };
        for (i, c) in counts.iter().enumerate() {
            h.counts[i.min(BUCKETS - 1)] += c;
        }
        h
    }

    /// One bucket with `n` calls between `min_ns` and `max_ns`.
    pub fn one_bucket(bucket: usize, n: u64, min_ns: u64, max_ns: u64) -> Self {
        let mut h = Histogram {
            counts: [0; BUCKETS],
            min_ns,
            max_ns,
        };
        h.counts[bucket.min(BUCKETS - 1)] = n;
        h
    }

    /// A histogram of exact durations (tests, reference).
    pub fn of(durations: &[u64]) -> Self {
        let mut h = Histogram {
            counts: [0; BUCKETS],
            min_ns: durations.iter().copied().min().unwrap_or(0),
            max_ns: durations.iter().copied().max().unwrap_or(0),
        };
        for d in durations {
            h.counts[index(*d)] += 1;
        }
        h
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds another histogram (a union of their calls).
    pub fn merge(&mut self, other: &Histogram) {
        if other.max_ns == 0 && other.total() == 0 {
            return;
        }
        if self.max_ns == 0 && self.total() == 0 {
            *self = other.clone();
            return;
        }
        for (c, n) in self.counts.iter_mut().zip(&other.counts) {
            *c += n;
        }
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// The `q`-quantile in ns (0 for an empty histogram).
    pub fn quantile(&self, q: f64) -> f64 {
        self.quantile_of(q, self.total())
    }

    fn quantile_of(&self, q: f64, n: u64) -> f64 {
        if n == 0 {
            return 0.0;
        }
        // The k-th smallest of n values (1-based), as for a nearest-rank quantile.
        let rank = (q.clamp(0.0, 1.0) * n as f64).ceil().max(1.0);
        // The smallest and largest values are known exactly.
        if rank <= 1.0 {
            return self.min_ns as f64;
        }
        if rank >= n as f64 {
            return self.max_ns as f64;
        }
        let mut before = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c == 0 || ((before + c) as f64) < rank {
                before += c;
                continue;
            }
            let (min, max) = (self.min_ns as f64, self.max_ns as f64);
            let lo = lower_ns(i).max(min).min(max);
            let hi = upper_ns(i).min(max).max(lo);
            if c == 1 || hi <= lo {
                // One value: the geometric middle of what it can be.
                return if c == 1 && lo > 0.0 {
                    (lo * hi).sqrt()
                } else {
                    lo
                };
            }
            // Spread the bucket's values evenly in log scale from lo to hi.
            let f = (rank - before as f64 - 1.0) / (c - 1) as f64;
            return if lo > 0.0 {
                lo * (hi / lo).powf(f)
            } else {
                lo + (hi - lo) * f
            };
        }
        self.max_ns as f64
    }

    /// p50, p95, p99 in ns.
    pub fn p50_p95_p99(&self) -> Vec<f64> {
        let n = self.total();
        [0.5, 0.95, 0.99]
            .iter()
            .map(|q| self.quantile_of(*q, n))
            .collect()
    }

    /// For display: one bar per doubling from the first to the last non-empty one, as upper
    /// bounds in ms (3 significant digits) and counts, plus an empty overflow bar (the web's
    /// histogram draws `counts[i]` as "≤ bounds[i]" and one more as "more").
    pub fn display(&self) -> (Vec<f64>, Vec<u64>) {
        // (upper bound ns, count) per doubling; the open-ended last bucket is the overflow.
        let mut bars: Vec<(f64, u64)> = Vec::new();
        let mut group = i32::MIN;
        for (i, &c) in self.counts.iter().enumerate().take(BUCKETS - 1) {
            let g = (i as i32 + OFFSET) / PER_DOUBLING;
            if g != group {
                bars.push((0.0, 0));
                group = g;
            }
            if let Some(bar) = bars.last_mut() {
                bar.0 = upper_ns(i);
                bar.1 += c;
            }
        }
        let overflow = self.counts[BUCKETS - 1];
        let first = bars.iter().position(|(_, c)| *c > 0);
        let last = bars.iter().rposition(|(_, c)| *c > 0);
        let shown = match (first, last) {
            (Some(f), Some(l)) => &bars[f..=l],
            // Only overflow (or nothing): one bound, the overflow's lower bound.
            _ if overflow > 0 => &bars[bars.len() - 1..],
            _ => return (Vec::new(), vec![0]),
        };
        let bounds = shown.iter().map(|(b, _)| round3(b / 1e6)).collect();
        let mut counts: Vec<u64> = shown.iter().map(|(_, c)| *c).collect();
        counts.push(overflow);
        (bounds, counts)
    }
}

/// `x` to three significant digits.
fn round3(x: f64) -> f64 {
    if x <= 0.0 {
        return x;
    }
    let mag = 10f64.powi(2 - x.log10().floor() as i32);
    (x * mag).round() / mag
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    fn exact(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank - 1]
    }

    #[test]
    fn buckets_are_contiguous_and_three_per_doubling() {
        assert_eq!(index(1), 0);
        assert_eq!(index(13_000), 0);
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        for i in 1..BUCKETS {
            assert_eq!(lower_ns(i), upper_ns(i - 1));
            // Exactly the bucket's lower bound lands in it (or the one before, by rounding).
            let lo = lower_ns(i).ceil() as u64;
            assert!(index(lo) == i || index(lo) + 1 == i, "bucket {i}");
            assert_eq!(index((upper_ns(i - 1) * 0.999) as u64), i - 1);
        }
        let r = upper_ns(10) / upper_ns(9);
        assert!((r - 2f64.powf(1.0 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn quantile_stays_in_the_true_bucket() {
        let mut rng = SmallRng::seed_from_u64(3);
        for case in 0..300 {
            let n = 1 + case * 7 % 500;
            // Log-normal-ish: 20 µs .. 20 s.
            let mut d: Vec<u64> = (0..n)
                .map(|_| (20_000f64 * 1e6f64.powf(rng.random::<f64>().powi(2))) as u64)
                .collect();
            d.sort_unstable();
            let h = Histogram::of(&d);
            assert_eq!(h.total(), n as u64);
            for q in [0.0, 0.5, 0.9, 0.95, 0.99, 1.0] {
                let want = exact(&d, q);
                let got = h.quantile(q);
                let b = index(want);
                assert!(
                    got >= lower_ns(b).max(d[0] as f64) - 1e-6
                        && got <= upper_ns(b).min(d[n - 1] as f64) + 1e-6,
                    "n={n} q={q}: got {got}, true {want} (bucket {b})"
                );
                assert!(
                    (got - want as f64).abs() <= want as f64 * 0.26 + 1.0,
                    "n={n} q={q}: got {got}, true {want}"
                );
            }
        }
        // Extremes are exact.
        let h = Histogram::of(&[5_000_000, 7_000_000, 9_000_000]);
        assert_eq!(h.quantile(0.0), 5_000_000.0);
        assert_eq!(h.quantile(1.0), 9_000_000.0);
        assert_eq!(Histogram::of(&[42_000]).quantile(0.5), 42_000.0);
        assert_eq!(Histogram::default().quantile(0.5), 0.0);
    }

    #[test]
    fn merge_is_the_histogram_of_the_union() {
        let a = [1_000_000u64, 3_000_000, 90_000_000];
        let b = [2_000u64, 40_000_000_000];
        let mut h = Histogram::of(&a);
        h.merge(&Histogram::of(&b));
        let all: Vec<u64> = a.iter().chain(&b).copied().collect();
        assert_eq!(h, Histogram::of(&all));
        let mut e = Histogram::default();
        e.merge(&h);
        assert_eq!(e, h);
    }

    #[test]
    fn display_shows_the_populated_doublings() {
        // 1.5 ms and 3 ms: doublings (1.05, 2.1] ms and (2.1, 4.19] ms.
        let h = Histogram::of(&[1_500_000, 1_600_000, 3_000_000]);
        let (bounds, counts) = h.display();
        assert_eq!(bounds, vec![2.1, 4.19]);
        assert_eq!(counts, vec![2, 1, 0]);
        let (bounds, counts) = Histogram::default().display();
        assert!(bounds.is_empty());
        assert_eq!(counts, vec![0]);
        // Calls in the open-ended last bucket are shown as "more".
        let h = Histogram::of(&[1_000_000, 60_000_000_000]);
        let (bounds, counts) = h.display();
        assert_eq!(counts.iter().sum::<u64>(), 2);
        assert_eq!(*counts.last().unwrap(), 1);
        assert_eq!(counts.len(), bounds.len() + 1);
        assert!(bounds.windows(2).all(|w| w[0] < w[1]));
    }
}
