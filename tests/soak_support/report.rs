//! The soak's figures, printed as Markdown tables (docs/benchmarks.md records a run).

use std::collections::BTreeMap;
use std::process::Command;

use super::Outcome;

pub fn uptime() -> String {
    Command::new("uptime")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Per kind of bad input: requests, answers by status, spans rejected, first error unanswered.
type KindTally = (u64, BTreeMap<u16, u64>, u64, String);

impl Outcome {
    pub fn print(&self) {
        println!("load before: {}", self.load_before);
        println!("load after:  {}", self.load_after);
        println!("| figure | value |\n|---|---|");
        let row = |k: &str, v: String| println!("| {k} | {v} |");
        row("run", format!("{:.0} s", self.seconds));
        row(
            "spans acknowledged (generator)",
            format!(
                "{} in {} traces; {} exports failed ({} spans, not acknowledged)",
                self.accepted_spans,
                self.accepted_traces,
                self.failed_exports,
                self.unacknowledged_spans
            ),
        );
        row("spans/s held", format!("{:.0}", self.held_per_sec));
        row(
            "faults injected / survived",
            format!(
                "{} / {}",
                self.faults
                    .iter()
                    .filter(|f| !f.note.starts_with("SKIPPED"))
                    .count(),
                self.faults.iter().filter(|f| f.survived).count()
            ),
        );
        row(
            "spans lost (acknowledged, not stored)",
            self.lost.to_string(),
        );
        row(
            "batches left in the spools after the final stop",
            self.batches_left_in_spools.to_string(),
        );
        row(
            "duplicates (count() − uniqExact)",
            format!(
                "{} in otel_traces, {} in the graph's orrery_span_calls view",
                self.duplicates, self.view_duplicates
            ),
        );
        row(
            "stored though not acknowledged",
            format!(
                "{} (the connection broke after spooling; at-least-once)",
                self.unacked_stored
            ),
        );
        row(
            "bad inputs tried",
            format!(
                "{} requests ({} spans): {} refused 4xx, {} spans rejected via partial_success, {} pushed back/unreachable",
                self.poison.len(),
                self.poison.iter().map(|p| p.spans).sum::<u64>(),
                self.poison
                    .iter()
                    .filter(|p| (400..500).contains(&p.status))
                    .count(),
                self.poison
                    .iter()
                    .filter(|p| p.status == 200)
                    .map(|p| p.rejected)
                    .sum::<u64>(),
                self.poison
                    .iter()
                    .filter(|p| p.status == 0 || p.status >= 500)
                    .count(),
            ),
        );
        row(
            "poison spans accepted → stored / dead letters / unaccounted",
            format!(
                "{} → {} / {} / {}",
                self.poison_accepted,
                self.poison_stored,
                self.poison_dead_lettered
                    .map_or("n/a".into(), |d| d.to_string()),
                self.poison_unaccounted
            ),
        );
        row(
            "graph vs generator (per edge calls)",
            if self.graph_note.is_empty() {
                format!(
                    "{} edges: {} calls missing, {} extra; ClickHouse holds {} client spans beyond \
                     the acknowledged calls; graph ≠ ClickHouse on {} edges ({:+} calls; \
                     {:+} calls read from the replica at its start)",
                    self.edges_checked,
                    self.edge_calls_missing,
                    self.edge_calls_extra,
                    self.stored_calls_extra,
                    self.graph_vs_stored_edges_differing,
                    self.graph_vs_stored_calls,
                    self.fresh_graph_vs_stored_calls
                )
            } else {
                self.graph_note.clone()
            },
        );
        if !self.dead_letter_note.is_empty() {
            row("note", self.dead_letter_note.clone());
        }
        println!("\n| at (s) | fault | survived | recovery (s) | note |\n|---|---|---|---|---|");
        for f in &self.faults {
            println!(
                "| {:.1} | {} | {} | {:.2} | {} |",
                f.at_secs,
                f.what,
                if f.survived { "yes" } else { "no" },
                f.recovery_secs,
                f.note
            );
        }
        // Status 0: no HTTP answer — the collector was down (killed, restarting), or it answered
        // and closed before the client finished sending a large body; the first such error is
        // shown per kind.
        let mut kinds: BTreeMap<&str, KindTally> = BTreeMap::new();
        for p in &self.poison {
            let e = kinds.entry(p.kind.name()).or_default();
            e.0 += 1;
            *e.1.entry(p.status).or_default() += 1;
            e.2 += p.rejected;
            if p.status == 0 && e.3.is_empty() {
                e.3 = p.body.chars().take(100).collect();
            }
        }
        println!(
            "\n| bad input | tried | answers (status × n; 0 = no answer) | spans rejected | first error without an answer |\n|---|---|---|---|---|"
        );
        for (k, (n, statuses, rejected, error)) in kinds {
            let answers: Vec<String> = statuses.iter().map(|(s, c)| format!("{s}×{c}")).collect();
            println!(
                "| {k} | {n} | {} | {rejected} | {error} |",
                answers.join(", ")
            );
        }
    }
}
