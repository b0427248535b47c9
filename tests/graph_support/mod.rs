//! The known topology the service-graph tests (tests/query_graph.rs, tests/query_graph_seams.rs)
//! store, and the edges it must give.
#![allow(dead_code)]

use crate::query_support::*;

/// Fan-out, a chain, a cycle, an uninstrumented database, errors (status and HTTP 5xx).
pub fn mesh(base: i64) -> Vec<orrery_store::SpanRow> {
    let mut rows = Vec::new();
    for t in 0..10 {
        let tr = format!("a{t}");
        let ts = base + t * 100 * MS;
        // INTERNET -> frontend
        rows.push(span(&tr, "1", "", "frontend", "Server", ts, 50));
        // frontend -> api (client span + server span), -> auth, -> search (fan-out)
        rows.push(span(&tr, "2", "1", "frontend", "Client", ts + MS, 40));
        let mut api = span(&tr, "3", "2", "api", "Server", ts + 2 * MS, 30);
        if t < 2 {
            api = api.error();
        }
        rows.push(api);
        rows.push(span(&tr, "4", "1", "frontend", "Client", ts + MS, 5));
        let mut auth = span(&tr, "5", "4", "auth", "Server", ts + 2 * MS, 3);
        if t == 9 {
            // HTTP 503 on the server side counts as an error without an error status.
            auth = auth.attr("http.response.status_code", "503");
        }
        rows.push(auth);
        rows.push(span(&tr, "6", "1", "frontend", "Client", ts + MS, 5));
        rows.push(span(&tr, "7", "6", "search", "Server", ts + 2 * MS, 3));
        // chain: api -> postgres (uninstrumented): client span with no child.
        rows.push(
            span(&tr, "8", "3", "api", "Client", ts + 3 * MS, 10)
                .attr("db.system.name", "postgresql")
                .attr("server.address", "pg.internal"),
        );
        // cycle: api -> worker -> api (plain parent/child across services, internal kinds).
        if t < 3 {
            rows.push(span(&tr, "9", "3", "worker", "Internal", ts + 4 * MS, 5));
            rows.push(span(&tr, "a", "9", "api", "Internal", ts + 5 * MS, 2));
        }
        // an external API named by peer.service
        if t < 4 {
            rows.push(
                span(&tr, "b", "3", "api", "Client", ts + 6 * MS, 8).attr("peer.service", "stripe"),
            );
        }
    }
    rows
}

pub fn expected_mesh() -> Vec<(String, String, u64, u64)> {
    let mut v = vec![
        e("INTERNET", "frontend", 10, 0),
        e("api", "database:postgresql", 10, 0),
        e("api", "external:stripe", 4, 0),
        e("api", "worker", 3, 0),
        e("frontend", "api", 10, 2),
        e("frontend", "auth", 10, 1),
        e("frontend", "search", 10, 0),
        e("worker", "api", 3, 0),
    ];
    v.sort();
    v
}
