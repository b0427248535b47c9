// The browser half of tests/web_e2e.rs: walks the UI served by a real `orrery all-in-one` and
// reports what it saw (the Rust test asserts). Screenshots go to the artifacts directory.
import path from "node:path";

export async function e2e(browser, base, artifacts, opts) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 900 });
  const log = [];
  page.on("pageerror", (e) => log.push(`pageerror: ${e}`));
  page.on("console", (m) => { if (m.type() === "error") log.push(`console: ${m.text()}`); });
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

  // Drill down into checkout (double-click on the canvas), then back with Escape.
  await page.mouse.click(box.x + pos[0], box.y + pos[1], { clickCount: 2 });
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
  await shot("diff");

  // A fixed window (no stream) from the URL shows the same services.
  const end = Date.now(), start = end - 15 * 60 * 1000;
  await page.goto(`${base}/?view=map&level=region&start=${start}&end=${end}`, { waitUntil: "load" });
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=map-nodes] li").length >= 4, { timeout: 20000 });
  out.fixed_nodes = await nodeIds();
  out.fixed_label = await page.$eval("[data-testid=fixed-window]", (e) => e.textContent);

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
  await shot("live");
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
  const row_count = await page.$eval(".wf-scroll", (e) => Number(e.dataset.rowCount));
  const phases = await page.$eval("[data-testid=waterfall]", (e) => e.dataset.timings);
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
    open_ms, phases, row_count, dom_rows, scroll_steps: steps.length,
    scroll_step_p50_ms: sorted[Math.floor(sorted.length / 2)],
    scroll_step_max_ms: sorted[sorted.length - 1], last_row_visible,
  };
}
