//! The live edge under continuous ingest (`--rate`): minutes rolled up to the frontier, the
//! slots after them, then the 15-minute graph cold and its live tail in parts.

use super::*;

/// How long before a graph read a running service's last slot pass ran, in the continuous
/// mode's model: the pass runs when a slot can close and its own time at 30k spans/s (~1 s
/// quiet) plus the last spans' settling passes before the frontier moves.
pub(crate) const SLOT_PASS_LAG_NS: i64 = 1_000 * MS;

/// A continuous fill's "now", moved back (< 10 s) to the phase of the slot cycle at which the
/// live tail is its average length (5–15 s after the grace and the pass's lag: 10 s + lag).
/// The tail is most of a 15-minute graph's cost at 30k spans/s, and with an arbitrary "now"
/// it was anything from 7.5 to 17.5 s: the live part of two fills differed by up to ±40%.
pub(crate) fn slot_phase(now: i64) -> i64 {
    use orrery_query::rollup::SLOT_NS;
    let grace = GraphArgs::default().graph_grace.as_nanos() as i64;
    // The tail is `now - floor(now - grace - lag)`; its middle is half a slot.
    let phase = (grace + SLOT_PASS_LAG_NS + SLOT_NS / 2).rem_euclid(SLOT_NS);
    let aligned = now.div_euclid(SLOT_NS) * SLOT_NS + phase;
    if aligned > now {
        aligned - SLOT_NS
    } else {
        aligned
    }
}

/// The live edge under continuous ingest (`--rate`): minutes rolled up to the frontier, then
/// the slots after them, then the 15-minute graph cold and its live tail in parts.
pub(crate) async fn live_edge(
    client: &clickhouse::Client,
    rollup: &Rollup,
    settings: &GraphArgs,
    cache: &graph::cache::RolledCache,
    now: i64,
    (rate, runs): (u64, u64),
    server_pid: Option<u32>,
) -> Result<()> {
    use orrery_store::graph_rules::{
        LIVE_PARENT_NEAR_NS, call_rows_sql, live_call_rows_sql, minute_filter,
    };
    let scale = 1e5 / rate as f64;
    // Minutes, as the minute rollup keeps them: each minute once, with the whole lookback.
    let (t, cpu0) = (Instant::now(), cpu_now(server_pid));
    let mut minutes = 0;
    loop {
        let r = rollup.run_once(now, Duration::from_secs(3_600)).await?;
        if r.computed.is_empty() {
            break;
        }
        minutes += r.computed.len();
    }
    let cpu = cpu_now(server_pid) - cpu0;
    // Per minute of spans (empty minutes get markers too, at next to no cost).
    let rolled: u64 = client
        .query(
            "SELECT toUInt64(sum(Spans)) FROM orrery_span_minutes
             WHERE Minute < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))",
        )
        .param(
            "hi",
            (now - 30_000 * MS).div_euclid(60_000 * MS) * 60_000 * MS,
        )
        .fetch_one()
        .await?;
    let per_minute = cpu / (rolled.max(1) as f64 / rate as f64 / 60.0);
    println!(
        "minute rollup: {minutes} minutes ({rolled} spans) in {:.1} s; CPU {:.2} s per minute of spans at {rate}/s = {:.3} cores at 100k spans/s (scaled per span)",
        t.elapsed().as_secs_f64(),
        per_minute,
        per_minute / 60.0 * scale,
    );
    // Slots after them: six a minute in steady state. A running service's slot pass runs when
    // a slot can close (`Rollup::slot_pass`: its end + grace, its spans settled) and takes
    // ~1 s at 30k spans/s, so when a graph is read the slots are closed as of ~1 s before.
    let slots_at = now - SLOT_PASS_LAG_NS;
    let (t, cpu0) = (Instant::now(), cpu_now(server_pid));
    let slots = rollup.run_slots(slots_at).await?;
    let cpu = cpu_now(server_pid) - cpu0;
    let per_slot = cpu / slots.len().max(1) as f64;
    println!(
        "slot rollup: {} slots in {:.1} s; CPU {:.2} s per slot = {:.3} cores at {rate}/s, {:.3} cores at 100k spans/s (scaled per span)",
        slots.len(),
        t.elapsed().as_secs_f64(),
        per_slot,
        per_slot * 6.0 / 60.0,
        per_slot * 6.0 / 60.0 * scale,
    );
    println!(
        "rollup CPU at 100k spans/s (minutes + slots, scaled per span): {:.3} cores",
        (per_minute / 60.0 + per_slot * 6.0 / 60.0) * scale
    );
    // The rollup's next tick, as a running rollup job would (a no-op unless counts moved).
    rollup.run_once(now, Duration::from_secs(3_600)).await?;
    let again = rollup.run_slots(slots_at).await?;
    println!("next tick: {} slots recomputed", again.len());
    let (req, cold) = fifteen_minutes(now, settings);
    let w = req.window;
    let c = graph::fetch::Rolled::read(client, w.lo, w.hi)
        .await?
        .coverage(w);
    let tail = c.live.last().copied().unwrap_or((w.hi, w.hi));
    println!(
        "15 min window: minutes to {} s before its end, slots to {} s before, spans after ({} live range(s)): a live tail of {:.1} s before now",
        (w.hi - c.live_lo) / 1_000_000_000,
        (w.hi - c.slots.1) / 1_000_000_000,
        c.live.len(),
        (now - c.slots.1) as f64 / 1e9,
    );
    let g = graph::graph(client, &cold, cache, &req).await?;
    println!(
        "graph 15 min: {} nodes, {} edges, {}",
        g.nodes.len(),
        g.edges.len(),
        match g.window.through_ms {
            Some(t) => format!(
                "ends at the settled frontier, {:.1} s before now",
                (now / 1_000_000 - t) as f64 / 1e3
            ),
            None => "read to now (its live tail from spans)".into(),
        }
    );
    time(
        "graph, 15 min window, cold (with what's-wrong)",
        runs,
        |_| {
            let (c, s, k, r) = (client.clone(), cold.clone(), cache.clone(), req.clone());
            async move { graph::graph(&c, &s, &k, &r).await }
        },
    )
    .await?;
    // A fresh process: no earlier read, so no guessed tail (`fetch::tail_guess`) — the live
    // tail waits for the markers. The runs above follow a read, as a running service's do.
    time(
        "graph, 15 min window, cold, fresh process (no tail guess)",
        runs,
        |_| {
            let (c, s, r) = (client.clone(), cold.clone(), req.clone());
            async move { graph::graph(&c, &s, &Default::default(), &r).await }
        },
    )
    .await?;
    cpu_per_graph("graph, 15 min window, cold", runs, server_pid, || {
        let (c, s, k, r) = (client.clone(), cold.clone(), cache.clone(), req.clone());
        async move { graph::graph(&c, &s, &k, &r).await }
    })
    .await?;
    {
        // Its parts one at a time (the graph runs them concurrently).
        use graph::fetch::{self, EdgeFilter, Grouping, NodeKey, Rolled};
        let p = w.baseline();
        let rolled = Rolled::read(client, p.lo, w.hi).await?;
        let (c, s, k, rolled) = (client, &cold, cache, &rolled);
        time(
            "  part: rollup markers (window + baseline)",
            runs,
            |_| async move { Rolled::read(c, p.lo, w.hi).await },
        )
        .await?;
        time(
            "  part: edges (rolled + slots + live)",
            runs,
            |_| async move {
                fetch::edges_in(c, s, k, w, rolled, Grouping::Services, &EdgeFilter::None).await
            },
        )
        .await?;
        time(
            "  part: edges of the baseline window",
            runs,
            |_| async move {
                fetch::edges_in(c, s, k, p, rolled, Grouping::Services, &EdgeFilter::None).await
            },
        )
        .await?;
        time("  part: nodes", runs, |_| async move {
            fetch::nodes_in(c, s, k, w, rolled, &NodeKey::Services).await
        })
        .await?;
        time("  part: namespaces", runs, |_| async move {
            fetch::namespaces(c, w).await
        })
        .await?;
    }
    let lookback = settings.graph_parent_lookback.as_nanos() as i64;
    let bind = |sql: &str| {
        client
            .query(sql)
            .param("lo", tail.0)
            .param("hi", tail.1)
            .param("plo", tail.0 - lookback)
            .param("chi", tail.1 + lookback)
            .param("settled", now - settings.graph_grace.as_nanos() as i64)
            .param("region_attrs", &settings.graph_region_attributes)
    };
    let near = format!("SELECT count() FROM ({})", live_call_rows_sql());
    let exact = format!(
        "SELECT count() FROM ({})",
        call_rows_sql(minute_filter::ALL)
    );
    let (n_near, n_exact): (u64, u64) = (
        bind(&near).fetch_one().await?,
        bind(&exact).fetch_one().await?,
    );
    println!(
        "live tail: {} s, {n_near} call rows with the near lookup, {n_exact} with the whole lookback",
        (tail.1 - tail.0) / 1_000_000_000
    );
    for (label, sql) in [
        ("  part: live call rows, near parent lookup", &near),
        ("  part: live call rows, whole lookback", &exact),
    ] {
        time(label, runs, |_| async {
            Ok(bind(sql).fetch_one::<u64>().await?)
        })
        .await?;
    }
    let lookup = |from: &str| {
        format!(
            "SELECT count() FROM orrery_span_calls
            WHERE Timestamp >= fromUnixTimestamp64Nano({from}) AND Timestamp < fromUnixTimestamp64Nano({{chi:Int64}})
              AND SpanKey IN (SELECT ParentKey FROM orrery_span_calls
                WHERE Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})
                  AND ParentKey != 0)"
        )
    };
    let keys = "SELECT count() FROM orrery_span_calls
        WHERE Timestamp >= fromUnixTimestamp64Nano({plo:Int64}) AND Timestamp < fromUnixTimestamp64Nano({chi:Int64})";
    let in_lookback: u64 = bind(keys).fetch_one().await?;
    println!("  parent lookup range (whole lookback): {in_lookback} span keys");
    let near_lookup = lookup(&format!("{{lo:Int64}} - {LIVE_PARENT_NEAR_NS}"));
    let whole_lookup = lookup("{plo:Int64}");
    for (label, sql) in [
        ("  part: parent lookup alone, near", &near_lookup),
        ("  part: parent lookup alone, whole lookback", &whole_lookup),
    ] {
        time(label, runs, |_| async {
            Ok(bind(sql).fetch_one::<u64>().await?)
        })
        .await?;
    }
    Ok(())
}

/// The 15-minute region graph ending at `now` (with what's wrong) and settings without the
/// parts cache, so every run is cold: what both 15-minute figures time.
pub(crate) fn fifteen_minutes(now: i64, settings: &GraphArgs) -> (GraphRequest, GraphArgs) {
    let req = GraphRequest {
        level: Level::Region,
        region: None,
        focus: None,
        window: params::span(now - 15 * 60_000 * MS, now, now).unwrap(),
        whats_wrong: true,
        group: Default::default(),
    };
    let cold = GraphArgs {
        graph_cache_entries: 0,
        ..settings.clone()
    };
    (req, cold)
}
