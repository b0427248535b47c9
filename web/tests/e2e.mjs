// The browser half of tests/web_e2e.rs: walks the UI served by a real `orrery all-in-one` and
// reports what it saw (the Rust test asserts). Screenshots go to the artifacts directory.
import path from "node:path";

export async function e2e(browser, base, artifacts, opts) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 900 });
  const log = [];
  page.on("pageerror", (e) => log.push(`pageerror: ${e}`));
  page.on("console", (m) => { if (m.type() === "error") log.push(`console: ${m.text()}`); });
  // CSP violations are logged as console errors (and fail the test).
  await page.evaluateOnNewDocument(() => {
    document.addEventListener("securitypolicyviolation", (e) =>
      console.error(`Content Security Policy violation: ${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
    // Every state an edge row of the map was ever drawn in on this page, so a flash of a wrong
    // state (a diff-mode map drawn unmarked before its diff) is seen, not just the final one.
    window.__edgeStates = [];
    const seen = (el) => {
      if (el.nodeType === 1 && el.matches("[data-testid=map-edges] li")) window.__edgeStates.push(el.dataset.health);
    };
    new MutationObserver((ms) => ms.forEach((m) => {
      if (m.type === "attributes") seen(m.target);
      else m.addedNodes.forEach((n) => { seen(n); if (n.querySelectorAll) n.querySelectorAll("[data-testid=map-edges] li").forEach(seen); });
    })).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-health"] });
  });
  const out = { log };
  const shot = (name) => page.screenshot({ path: path.join(artifacts, `e2e-${name}.png`) });
  const want = opts.nodes || [];
  const nodeIds = () => page.$$eval("[data-testid=map-nodes] li", (els) => els.map((e) => e.dataset.nodeId));

  await page.goto(`${base}/?view=map&level=region&since=15m`, { waitUntil: "load" });
  await page.waitForFunction(
    (want) => { const ids = [...document.querySelectorAll("[data-testid=map-nodes] li")].map((e) => e.dataset.nodeId);
                return want.every((w) => ids.includes(w)); },
    { timeout: 60000 }, want);
  out.map_nodes = await nodeIds();
  out.map_edges = await page.$$eval("[data-testid=map-edges] li", (els) =>
    els.map((e) => ({ id: e.dataset.edgeId, health: e.dataset.health, error_rate: Number(e.dataset.errorRate) })));
  out.renderer = await page.$eval("[data-testid=map]", (e) => e.dataset.renderer || "");
  out.legend = await page.$eval("[data-testid=legend]", (e) => e.textContent);
  out.quality = await page.$eval("[data-testid=data-quality]", (e) => e.textContent);
  await new Promise((r) => setTimeout(r, 1500));
  await shot("map");

  // Hover over a node drawn on the canvas (position published by the app for tests).
  const pos = await page.$eval("[data-testid=map-nodes] li[data-node-id=checkout]", (e) => [Number(e.dataset.x), Number(e.dataset.y)]);
  const box = await (await page.$("[data-testid=map] canvas")).boundingBox();
  await page.mouse.move(box.x + pos[0], box.y + pos[1]);
  await page.waitForSelector("[data-testid=hover]", { timeout: 5000 }).catch(() => {});
  out.hover = await page.$eval("[data-testid=hover]", (e) => e.textContent).catch(() => "");

  // Node panel: operations and the node's latency histogram; Escape closes it.
  await page.$eval("[data-testid=map-nodes] li[data-node-id=checkout]", (e) => e.click());
  await page.waitForSelector("[data-testid=node-panel] [data-testid=node-histogram] .hbar", { timeout: 20000 });
  out.node_histogram = await page.$$eval("[data-testid=node-histogram] .hbar", (els) =>
    els.map((e) => ({ le: e.dataset.le, count: Number(e.dataset.count) })));
  out.node_operations = await page.$$eval("[data-testid=operations] tbody tr", (els) => els.map((e) => e.cells[0].textContent));
  await shot("node-panel");
  await page.keyboard.press("Escape");
  await page.waitForFunction(() => !document.querySelector("[data-testid=node-panel]"), { timeout: 5000 });

  // Drill down into checkout (double-click on the canvas), then back with Escape. The closed
  // panel gave the map its width back and the map was fitted again: read where checkout is now.
  await page.waitForFunction((before) => {
    const e = document.querySelector("[data-testid=map-nodes] li[data-node-id=checkout]");
    return e && `${e.dataset.x},${e.dataset.y}` === before;
  }, { timeout: 5000 }, `${pos[0]},${pos[1]}`).catch(() => {});
  const pos2 = await page.$eval("[data-testid=map-nodes] li[data-node-id=checkout]", (e) => [Number(e.dataset.x), Number(e.dataset.y)]);
  await page.mouse.click(box.x + pos2[0], box.y + pos2[1], { clickCount: 2 });
  await page.waitForSelector("[data-testid=focused]", { timeout: 20000 });
  out.focused = await page.$eval("[data-testid=focused]", (e) => e.textContent);
  out.focused_url = await page.evaluate(() => location.search);
  await page.waitForFunction(() => document.querySelector("[data-testid=map]").dataset.level === "focused"
    && document.querySelectorAll("[data-testid=map-nodes] li").length > 0, { timeout: 20000 });
  out.focused_nodes = await nodeIds();
  await shot("focused");
  // Escape closes an open panel first, then goes up a level.
  if (await page.$("[data-testid=node-panel]")) await page.keyboard.press("Escape");
  await page.keyboard.press("Escape");
  await page.waitForFunction(() => document.querySelector("[data-testid=map]").dataset.level === "region", { timeout: 20000 });
  out.after_escape_url = await page.evaluate(() => location.search);

  // Click the red edge → its recent error traces → open one as a waterfall.
  await page.waitForSelector(`[data-testid=map-edges] li[data-edge-id="${opts.red_edge}"]`, { timeout: 20000 });
  await page.$eval(`[data-testid=map-edges] li[data-edge-id="${opts.red_edge}"]`, (e) => e.click());
  await page.waitForSelector("[data-testid=error-traces] a", { timeout: 20000 });
  out.error_traces = await page.$$eval("[data-testid=error-traces] a", (els) => els.map((e) => e.dataset.traceId));
  await shot("edge");
  await page.click("[data-testid=error-traces] a");
  await page.waitForSelector("[data-testid=waterfall] .wf-row", { timeout: 20000 });
  out.trace_url = await page.evaluate(() => location.search);
  out.waterfall = await page.$$eval(".wf-row", (els) => els.map((e) => ({ span: e.dataset.spanId, error: e.classList.contains("error"), critical: e.classList.contains("critical"), text: e.textContent })));
  await page.click(".wf-row.error");
  await page.waitForSelector("[data-testid=span-detail]", { timeout: 5000 });
  out.span_detail = await page.$eval("[data-testid=span-detail]", (e) => e.textContent);
  await shot("trace");

  // From the payments span to its call on the map: the edge selected, its panel open.
  await page.$$eval(".wf-row", (els) => els.find((e) => e.textContent.includes("payments")).click());
  await page.waitForSelector("[data-testid=span-edge-link]", { timeout: 5000 });
  out.link_label = await page.$eval("[data-testid=span-edge-link]", (e) => e.textContent);
  await page.click("[data-testid=span-edge-link]");
  const linked = async () => {
    await page.waitForSelector("[data-testid=edge-panel] [data-testid=histogram]", { timeout: 20000 });
    await page.waitForFunction(() => document.querySelector("[data-testid=map-edges] li[data-selected=true]"), { timeout: 20000 });
    return {
      url: await page.evaluate(() => location.search),
      panel: await page.$eval("[data-testid=edge-panel] h3", (e) => e.textContent),
      selected: await page.$$eval("[data-testid=map-edges] li[data-selected=true]", (els) => els.map((e) => e.dataset.edgeId)),
      level: await page.$eval("[data-testid=map]", (e) => e.dataset.level),
    };
  };
  out.link = await linked();
  await shot("trace-to-edge");
  // The link alone reopens it.
  await page.goto(`${base}/${out.link.url}`, { waitUntil: "load" });
  out.link_reloaded = await linked();

  // The URL alone reproduces the view.
  await page.goto(`${base}/${out.trace_url}`, { waitUntil: "load" });
  await page.waitForSelector("[data-testid=waterfall] .wf-row", { timeout: 20000 });
  out.reloaded_rows = await page.$$eval(".wf-row", (els) => els.length);

  // Trace search lists the traces with error marks.
  await page.goto(`${base}/?view=traces&since=15m&service=frontend`, { waitUntil: "load" });
  await page.waitForSelector("[data-testid=trace-results] .result", { timeout: 20000 }).catch(async (e) => {
    await shot("search-failed");
    throw new Error(`no search results: ${await page.$eval(".traces", (el) => el.textContent).catch(() => "?")}`);
  });
  out.search_results = await page.$$eval("[data-testid=trace-results] .result", (els) =>
    els.map((e) => ({ id: e.dataset.traceId, error: e.classList.contains("has-error") })));
  await shot("search");

  // Diff mode: against the (empty) previous window every edge is new.
  await page.goto(`${base}/?view=map&level=region&since=15m&diff=1`, { waitUntil: "load" });
  await page.waitForSelector("[data-testid=diff] li", { timeout: 20000 });
  out.diff_added = await page.$$eval("[data-testid=diff] li.added[data-edge-id]", (els) => els.map((e) => e.dataset.edgeId));
  // The lists beside the map follow the graph a frame later: wait for the drawn edges.
  await page.waitForFunction((n) => document.querySelectorAll("[data-testid=map-edges] li").length >= n,
    { timeout: 20000 }, (opts.edges || []).length);
  // Past a live tick, so a stream graph after the diff is among what was drawn.
  await new Promise((r) => setTimeout(r, 6000));
  out.diff_drawn = await page.$$eval("[data-testid=map-edges] li", (els) => els.map((e) => ({ id: e.dataset.edgeId, health: e.dataset.health })));
  out.diff_states_seen = [...new Set(await page.evaluate(() => window.__edgeStates))];
  await shot("diff");

  // Diff of a window after the traffic: every edge and node vanished, still drawn (grey, dashed).
  const later = Date.now() + 60000;
  await page.goto(`${base}/?view=map&level=region&start=${later}&end=${later + 15 * 60000}&diff=1`, { waitUntil: "load" });
  await page.waitForFunction((n) => document.querySelectorAll("[data-testid=map-edges] li[data-health=vanished]").length >= n
    && document.querySelectorAll("[data-testid=map-nodes] li").length >= 4, { timeout: 20000 }, (opts.edges || []).length);
  out.vanished_edges = await page.$$eval("[data-testid=map-edges] li", (els) => els.map((e) => ({ id: e.dataset.edgeId, health: e.dataset.health })));
  out.vanished_nodes = await page.$$eval("[data-testid=map-nodes] li", (els) => els.map((e) => ({ id: e.dataset.nodeId, health: e.dataset.health })));
  out.vanished_listed = await page.$$eval("[data-testid=diff] li.vanished", (els) => els.map((e) => e.dataset.edgeId));
  await new Promise((r) => setTimeout(r, 1000));
  await shot("diff-vanished");

  // A fixed window (no stream) from the URL shows the same services.
  const end = Date.now(), start = end - 15 * 60 * 1000;
  await page.goto(`${base}/?view=map&level=region&start=${start}&end=${end}`, { waitUntil: "load" });
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=map-nodes] li").length >= 4, { timeout: 20000 });
  out.fixed_nodes = await nodeIds();
  out.fixed_label = await page.$eval("[data-testid=fixed-window]", (e) => e.textContent);

  // Replay minute by minute: the minute with the traffic, an empty one via the scrubber, then
  // playback to the end at 16×, watching every frame the map shows.
  const P = Math.floor(opts.data_ms / 60000) * 60000, S = P - 2 * 60000, E = P + 3 * 60000;
  await page.goto(`${base}/?view=map&level=region&start=${S}&end=${E}&replay=${P}`, { waitUntil: "load" });
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=map-nodes] li").length >= 4, { timeout: 20000 });
  const replayState = () => page.$eval("[data-testid=replay]", (e) => ({ position: Number(e.dataset.position), playing: e.dataset.playing, frames: Number(e.dataset.frames) }));
  out.replay = { first: S, data: P, state: await replayState(), nodes: await nodeIds(), url: await page.evaluate(() => location.search) };
  await shot("replay");
  await page.$eval("[data-testid=replay-scrubber]", (el, v) => { el.value = String(v); el.dispatchEvent(new Event("input", { bubbles: true })); }, S);
  await page.waitForFunction(() => document.querySelector("[data-testid=map]").dataset.nodeCount === "0", { timeout: 20000 }).catch(async (e) => {
    await shot("replay-scrub-failed");
    throw new Error(`scrubbing did not empty the map: ${e}; url ${await page.evaluate(() => location.search)}; replay ${JSON.stringify(await replayState())}; nodes ${await nodeIds()}; api ${await page.evaluate(async (S) => (await fetch(`orrery/api/graph?level=region&start=${S}&end=${S + 60000}`)).text(), S)}; log ${log.join(" | ")}`);
  });
  out.replay.scrubbed = { state: await replayState(), url: await page.evaluate(() => location.search),
    status: await page.$eval("[data-testid=map-status]", (e) => e.textContent).catch(() => "") };
  await page.evaluate(() => {
    window.__frames = [];
    const bar = document.querySelector("[data-testid=replay]");
    const map = document.querySelector("[data-testid=map]");
    // On every step, the node count of the frame just left (steps wait for their frame).
    new MutationObserver(() => window.__frames.push({ position: Number(bar.dataset.position), prev_nodes: Number(map.dataset.nodeCount) }))
      .observe(bar, { attributes: true, attributeFilter: ["data-position"] });
  });
  await page.select("[data-testid=replay-speed]", "16");
  await page.click("[data-testid=replay-play]");
  await page.waitForFunction(() => document.querySelector("[data-testid=replay]").dataset.playing === "true", { timeout: 5000 });
  await page.waitForFunction(() => document.querySelector("[data-testid=replay]").dataset.playing === "false", { timeout: 60000 });
  out.replay.frames = await page.evaluate(() => window.__frames);
  out.replay.end = { state: await replayState(), url: await page.evaluate(() => location.search) };

  // Live: new spans (a new service) arrive while the map is open.
  await page.goto(`${base}/?view=map&level=region&since=15m`, { waitUntil: "load" });
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=map-nodes] li").length >= 4, { timeout: 20000 });
  const positions = () => page.$$eval("[data-testid=map-nodes] li", (els) =>
    Object.fromEntries(els.map((e) => [e.dataset.nodeId, `${e.dataset.x},${e.dataset.y}`])));
  const before = await positions();
  const res = await fetch(opts.otlp, { method: "POST", headers: { "content-type": "application/json" }, body: opts.live_body });
  if (!res.ok) throw new Error(`OTLP post: ${res.status} ${await res.text()}`);
  await page.waitForFunction(() => [...document.querySelectorAll("[data-testid=map-nodes] li")].some((e) => e.dataset.nodeId === "fraud"), { timeout: 60000 });
  await new Promise((r) => setTimeout(r, 1000));
  const after = await positions();
  out.live_nodes = Object.keys(after);
  out.live_moved = Object.keys(before).filter((id) => after[id] !== before[id]);
  // Without --api-token the sign-in form never opens.
  out.sign_in_shown = await page.evaluate(() => !!document.querySelector("[data-testid=sign-in]"));
  out.stream_state = await page.$eval("[data-testid=map]", (e) => e.dataset.stream);
  await shot("live");
  out.early_streams = await earlyStreams(browser, base, opts.early_urls || []);
  return out;
}

// main.js requests a live map's stream before the app loads, from its own reading of the URL;
// the app takes that request over only when its own stream URL (`UrlState::graph_query`) is the
// same, else it aborts it and asks again. So one stream request per page means the two readings
// agree for that URL — the check that keeps main.js's copy of the rule honest.
async function earlyStreams(browser, base, urls) {
  const out = {};
  for (const q of urls) {
    const page = await browser.newPage();
    const seen = [];
    page.on("request", (r) => { if (r.url().includes("/api/graph/stream")) seen.push(r.url().split("?")[1] ?? ""); });
    await page.goto(`${base}/${q}`, { waitUntil: "load" });
    await page.waitForFunction(() => document.querySelector("[data-testid=map]")?.dataset.stream === "live",
      { timeout: 30000 }).catch(() => {});
    // A second request would follow the app's first graph (the early one aborted): give it time.
    await new Promise((r) => setTimeout(r, 1000));
    out[q] = { requests: seen, state: await page.$eval("[data-testid=map]", (e) => e.dataset.stream).catch(() => null) };
    await page.close();
  }
  return out;
}

// Opens a big trace and measures: navigation → first rows, rows in the DOM, scroll steps.
export async function bigtrace(browser, base, artifacts, opts) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 900 });
  const t0 = Date.now();
  await page.goto(`${base}/?view=trace&trace=${opts.trace}`, { waitUntil: "load" });
  await page.waitForSelector(".wf-row", { timeout: 120000 });
  const open_ms = Date.now() - t0;
  // Phases of what was drawn first: a big trace's first rows come from the first bytes of its
  // answer ("… · first N rows"); then the whole trace replaces them (data-complete).
  const phases = await page.$eval("[data-testid=waterfall]", (e) => e.dataset.timings);
  const first_rows = await page.$$eval(".wf-row", (els) => els.map((e) => e.dataset.spanId).slice(0, 5));
  await page.waitForSelector("[data-testid=waterfall][data-complete]", { timeout: 120000 });
  await page.waitForFunction((n) => Number((document.querySelector(".wf-scroll") || { dataset: {} }).dataset.rowCount) === n,
    { timeout: 30000 }, opts.spans).catch(() => {});
  const complete_ms = Date.now() - t0;
  const complete = await page.$eval("[data-testid=waterfall]", (e) => e.dataset.complete);
  const complete_first_rows = await page.$$eval(".wf-row", (els) => els.map((e) => e.dataset.spanId).slice(0, 5));
  const row_count = await page.$eval(".wf-scroll", (e) => Number(e.dataset.rowCount));
  const dom_rows = await page.$$eval(".wf-row", (els) => els.length);
  // Scroll through the whole list in 40 steps, each awaited until the rows for it are drawn.
  const steps = await page.evaluate(async () => {
    const el = document.querySelector(".wf-scroll");
    const times = [];
    for (let k = 1; k <= 40; k++) {
      const t = performance.now();
      el.scrollTop = (el.scrollHeight - el.clientHeight) * (k / 40);
      el.dispatchEvent(new Event("scroll"));
      await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
      times.push(performance.now() - t);
    }
    return times;
  });
  const last_row_visible = await page.evaluate(() => {
    const el = document.querySelector(".wf-scroll");
    const rows = [...document.querySelectorAll(".wf-row")];
    const bottom = el.scrollTop + el.clientHeight;
    return rows.some((r) => r.offsetTop + r.offsetHeight >= bottom - 30);
  });
  await page.screenshot({ path: `${artifacts}/bigtrace.png` });
  const sorted = [...steps].sort((a, b) => a - b);
  return {
    open_ms, phases, first_rows, complete_ms, complete, complete_first_rows, row_count, dom_rows, scroll_steps: steps.length,
    scroll_step_p50_ms: sorted[Math.floor(sorted.length / 2)],
    scroll_step_max_ms: sorted[sorted.length - 1], last_row_visible,
  };
}
