//! Synthetic service graphs for the bench page (2,000 services / 10,000 edges) and tests.

use crate::api::{Edge, Graph, Health, Metrics, Node};

/// A small deterministic PRNG (xorshift64*), enough for reproducible synthetic data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A layered mesh: `services` nodes over `ranks` ranks, `edges` calls from lower to higher
/// ranks, heavy-tailed rates and a few failing edges.
pub fn mesh(services: usize, edges: usize, ranks: u32, seed: u64) -> Graph {
    let mut rng = Rng(seed.max(1));
    let mut nodes = Vec::with_capacity(services + 1);
    nodes.push(node("INTERNET", "entry", 0, 0.0));
    for i in 0..services {
        let rank = 1 + (i as u32 * (ranks - 1)) / services as u32;
        nodes.push(node(&format!("svc-{i:04}"), "service", rank, 0.0));
    }
    let mut by_rank: Vec<Vec<usize>> = vec![Vec::new(); ranks as usize + 1];
    for (i, n) in nodes.iter().enumerate() {
        by_rank[n.rank as usize].push(i);
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(edges);
    let mut max_volume: f64 = 0.0;
    while out.len() < edges {
        let r = rng.below(ranks as u64 - 1) as usize;
        let src = if r == 0 {
            0
        } else {
            by_rank[r][rng.below(by_rank[r].len() as u64) as usize]
        };
        let tr = r + 1 + rng.below(2) as usize;
        let tr = tr.min(ranks as usize - 1);
        let tgt = by_rank[tr][rng.below(by_rank[tr].len() as u64) as usize];
        if src == tgt || !seen.insert((src, tgt)) {
            continue;
        }
        let rps = 0.05 * (1.0 / rng.unit().max(1e-4)).powf(1.3);
        let error_rate = if rng.below(20) == 0 {
            rng.unit() * 0.4
        } else {
            0.0
        };
        max_volume = max_volume.max(rps);
        out.push(Edge {
            id: format!("{}->{}", nodes[src].id, nodes[tgt].id),
            source: nodes[src].id.clone(),
            target: nodes[tgt].id.clone(),
            metrics: metrics(rps, error_rate),
            health: health(error_rate),
            in_cycle: false,
        });
    }
    for e in &out {
        if let Some(n) = nodes.iter_mut().find(|n| n.id == e.target) {
            n.metrics.rps += e.metrics.rps;
        }
    }
    Graph {
        level: "region".into(),
        name: "bench".into(),
        max_volume,
        nodes,
        edges: out,
        ..Default::default()
    }
}

fn node(id: &str, kind: &str, rank: u32, rps: f64) -> Node {
    Node {
        id: id.into(),
        name: id.into(),
        kind: kind.into(),
        metrics: metrics(rps, 0.0),
        health: Health::Normal,
        rank,
        ..Default::default()
    }
}

fn metrics(rps: f64, error_rate: f64) -> Metrics {
    Metrics {
        requests: (rps * 300.0) as u64,
        errors: (rps * 300.0 * error_rate) as u64,
        rps,
        error_rate,
        p50_ms: 5.0,
        p95_ms: 40.0,
        p99_ms: 90.0,
        ..Default::default()
    }
}

fn health(error_rate: f64) -> Health {
    if error_rate >= 0.05 {
        Health::Danger
    } else if error_rate >= 0.01 {
        Health::Warning
    } else {
        Health::Normal
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn mesh_has_the_requested_size_and_only_forward_edges() {
        let g = super::mesh(2000, 10_000, 12, 1);
        assert_eq!(g.nodes.len(), 2001);
        assert_eq!(g.edges.len(), 10_000);
        let rank: std::collections::HashMap<_, _> =
            g.nodes.iter().map(|n| (n.id.as_str(), n.rank)).collect();
        assert!(
            g.edges
                .iter()
                .all(|e| rank[e.source.as_str()] < rank[e.target.as_str()])
        );
        assert_eq!(g, super::mesh(2000, 10_000, 12, 1));
    }
}
