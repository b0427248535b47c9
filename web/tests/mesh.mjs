// The browser half of tests/web_mesh.rs and benches/map_mesh.rs: a big mesh's region map in
// headless Chromium, measured. Opens `?view=map&level=region&region=…` with
// `window.orreryGeometry = true` set before the app starts (the renderer
// then publishes what it drew: node centres and radii, label boxes, frame CPU), waits for the
// first drawn frame and for the layout animation to settle, and reports:
//   first_frame_ms   navigation → first frame with nodes (the canvas's data-first-frame-ms,
//                    performance.now() whose origin is the navigation)
//   legibility       viewport, node bounding box, min centre distance, largest node diameter,
//                    labels shown and overlapping label pairs (from the drawn boxes)
//   live             over opts.watch_ms while the mesh keeps sending: graph updates applied,
//                    frames drawn (the renderer's data-gl-frames: in its worker or on the page),
//                    renderer frame CPU (data-frame-stats), main-thread busy time per frame (CDP
//                    TaskDuration), full-screen layer copies per drawn frame (data-gl-frames),
//                    where WebGL runs (data-gl-thread) and the WebGL draw calls made on the
//                    page's thread (WebGL2 wrapped: 0 when a worker draws), long tasks (> 50 ms)
//                    and the longest, and what ran in them (long_tasks_by_cause: update — a
//                    graph's read, merge or apply, or the lists beside the map following it —,
//                    labels, layer_chunk, layer_at_once — page-thread WebGL only — or frame)
//   list_chunks      the steps in which the lists' rows were created or updated (User Timing
//                    `orrery:list-chunk`, detail.rows = rows it changed): over the page's life and
//                    during the live phase — count, rows in all, the most rows and the longest
//                    step; and the rows on screen at the end
//   phases           where the time to the first frame went: the app's User Timing entries
//                    (`orrery:*`, web/src/map/perf.rs: fetch, parse, prepare, layout, lists,
//                    scene, upload, list-nodes, apply, first-draw, labels, live-decode) up to
//                    the first frame, in order, plus the wasm module's load (resource timing)
//   live.phases      the same entries during the live phase: count, total and max per name
//   memory           JS heap used, the wasm memory, DOM nodes, and the renderer process's RSS
//   lists            (opts.lists = { edge, node }: ids far down the lists) the lists beside the map
//                    are bounded — rows and "more" lines, the page's element count — and the
//                    filter reaches that edge and that node by keyboard (Enter opens its panel);
//                    axe-core on the page with the edge list open and filtered
// Screenshot: artifacts/mesh-<name>.png, and docs_images/<opts.docs_image> when asked.
import fs from "node:fs";
import path from "node:path";
import { seriousViolations } from "./a11y.mjs";

function rssKiB(pid) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/);
    return m ? Number(m[1]) : 0;
  } catch { return 0; }
}

function parent(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch { return 0; }
}

// Whether `pid` is a descendant of `root` (renderers hang under the zygote, not the browser).
function descends(pid, root) {
  for (let p = parent(pid), i = 0; p > 1 && i < 10; p = parent(p), i++) if (p === root) return true;
  return false;
}

// Chromium's renderer processes (descendants of the browser with --type=renderer).
function renderers(browserPid) {
  const out = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, "utf8");
      if (cmd.includes("--type=renderer") && descends(Number(d), browserPid)) out.push(Number(d));
    } catch { /* gone */ }
  }
  return out;
}

function legibility(g) {
  const n = g.nodes;
  const xs = n.map((p) => p[0]), ys = n.map((p) => p[1]);
  const bbox = { w: Math.max(...xs) - Math.min(...xs), h: Math.max(...ys) - Math.min(...ys) };
  // Closest pair of node centres (sweep over x).
  const byX = [...n].sort((a, b) => a[0] - b[0]);
  let min = Infinity, pair = null;
  for (let i = 0; i < byX.length; i++) {
    for (let j = i + 1; j < byX.length && byX[j][0] - byX[i][0] < min; j++) {
      const d = Math.hypot(byX[j][0] - byX[i][0], byX[j][1] - byX[i][1]);
      if (d < min) { min = d; pair = [byX[i], byX[j]]; }
    }
  }
  const labels = g.labels;
  let overlaps = 0;
  for (let i = 0; i < labels.length; i++) {
    for (let j = i + 1; j < labels.length; j++) {
      const [a, b] = [labels[i], labels[j]];
      if (a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3]) overlaps++;
    }
  }
  return {
    viewport: { w: g.w, h: g.h },
    nodes: n.length,
    bbox,
    bbox_share: { w: bbox.w / g.w, h: bbox.h / g.h },
    min_centre_distance: min,
    closest_pair: pair,
    max_node_diameter: Math.max(...n.map((p) => 2 * p[2])),
    labels: labels.length,
    label_names: labels.map((l) => l[4]),
    label_overlaps: overlaps,
  };
}

// CPU time (ms, user + system) of Chromium's processes by type (browser, renderer, gpu-process,
// utility…): what the browser itself took from the machine's cores over a phase.
function chromiumCpu(browserPid) {
  const tick = 10; // ms per clock tick (USER_HZ 100)
  const by = {};
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const pid = Number(d);
    if (pid !== browserPid && !descends(pid, browserPid)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, "utf8");
      const type = (cmd.match(/--type=([a-z-]+)/) || [null, "browser"])[1];
      const stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      by[type] = (by[type] || 0) + (Number(f[11]) + Number(f[12])) * tick;
    } catch { /* gone */ }
  }
  return by;
}

// A map with nothing on it (a region without services): frames drawn by the renderer's worker
// over 2 s once it has settled (none may be drawn while nothing changes), the page's workers, and
// the workers left once the map view is gone (its worker must end with it).
async function idleMap(browser, base) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  await page.evaluateOnNewDocument(() => { window.orreryGeometry = true; });
  await page.goto(`${base}/?view=map&level=region&region=no-such-region&since=15m`, { waitUntil: "load" });
  await page.waitForSelector("[data-testid=map][data-stream=live] canvas[data-gl-thread]", { timeout: 60000 });
  const frames = () => page.$eval("[data-testid=map] canvas", (c) => Number((c.dataset.glFrames || "0 0").split(" ")[0]));
  await new Promise((r) => setTimeout(r, 1500));
  const f0 = await frames();
  await new Promise((r) => setTimeout(r, 2000));
  const out = {
    gl_thread: await page.$eval("[data-testid=map] canvas", (c) => c.dataset.glThread),
    frames_drawn_in_2s: (await frames()) - f0,
    workers: page.workers().length,
  };
  // Leaving the map (the header's "Traces"): its renderer worker ends with the view.
  await page.click("header nav button:nth-child(2)");
  await page.waitForFunction(() => !document.querySelector("[data-testid=map]"), { timeout: 10000 }).catch(() => {});
  // Polled (up to 10 s), not read after a fixed second: a loaded machine reports the worker's
  // end later.
  for (let i = 0; i < 100 && page.workers().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  out.workers_after_leaving = page.workers().length;
  await page.close();
  return out;
}

export async function mesh(browser, base, artifacts, opts) {
  const idle = opts.idle ? await idleMap(browser, base) : undefined;
  const page = await browser.newPage();
  await page.setViewport({ width: opts.width || 1280, height: opts.height || 800 });
  const log = [];
  page.on("pageerror", (e) => log.push(`pageerror: ${e}`));
  page.on("console", (m) => { if (m.type() === "error") log.push(`console: ${m.text()}`); });
  // opts.renderer = "page": WebGL on the page's thread instead of the renderer's worker.
  if (opts.renderer) await page.evaluateOnNewDocument((r) => { window.orreryRenderer = r; }, opts.renderer);
  await page.evaluateOnNewDocument(() => {
    window.orreryGeometry = true;
    window.__long = [];
    new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push([e.startTime, e.duration]); })
      .observe({ type: "longtask", buffered: true });
    // The wasm module's memory (linear memory is outside the JS heap).
    for (const k of ["instantiateStreaming", "instantiate"]) {
      const orig = WebAssembly[k];
      WebAssembly[k] = async (...a) => {
        const r = await orig.apply(WebAssembly, a);
        if (r && r.instance) window.__wasmMemory = r.instance.exports.memory;
        return r;
      };
    }
    // WebGL draw calls made on the page's thread (a worker's context is not wrapped).
    window.__pageDraws = 0;
    {
      const P = WebGL2RenderingContext.prototype;
      for (const k of ["drawArrays", "drawArraysInstanced", "drawElements", "clear"]) {
        const f = P[k];
        P[k] = function (...a) { window.__pageDraws++; return f.apply(this, a); };
      }
    }
    window.__frames = 0;
    const tick = () => { window.__frames++; requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
  });
  // The network as the browser saw it (CDP): when each request of the page was sent, when its
  // answer's headers came and when its first and last bytes arrived (ms after navigation) — the
  // live stream's first graph is the first frame's critical path.
  const net = await page.target().createCDPSession();
  await net.send("Network.enable");
  const requests = new Map();
  let navTs = null;
  net.on("Network.requestWillBeSent", (e) => {
    if (navTs === null && e.type === "Document") navTs = e.timestamp;
    requests.set(e.requestId, { url: e.request.url.replace(base, ""), sent: e.timestamp });
  });
  net.on("Network.responseReceived", (e) => { const r = requests.get(e.requestId); if (r) r.headers = e.timestamp; });
  net.on("Network.dataReceived", (e) => {
    const r = requests.get(e.requestId);
    if (r) { r.first_data ??= e.timestamp; r.last_data = e.timestamp; r.bytes = (r.bytes || 0) + e.dataLength; }
  });
  const url = `${base}/?view=map&level=${opts.level || "region"}&region=${encodeURIComponent(opts.region || "")}`
    + `&since=${opts.since || "15m"}${opts.extra || ""}`;
  const cpu0 = chromiumCpu(browser.process().pid);
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector("[data-testid=map] canvas[data-first-frame-ms]", { timeout: 120000 });
  const cpu1 = chromiumCpu(browser.process().pid);
  const out = { log, url, idle };
  // Chromium's CPU from navigation to the first frame (polled: up to ~100 ms after it), by process type.
  out.browser_cpu_ms_to_first_frame = Object.fromEntries(Object.keys(cpu1).map((k) => [k, cpu1[k] - (cpu0[k] || 0)]));
  out.first_frame_ms = Number(await page.$eval("[data-testid=map] canvas[data-first-frame-ms]", (c) => c.dataset.firstFrameMs));
  out.phases = await page.evaluate((ff) => {
    const r = (x) => Math.round(x * 10) / 10;
    const wasm = performance.getEntriesByType("resource").find((e) => e.name.endsWith(".wasm"));
    const m = performance.getEntriesByType("measure").filter((e) => e.name.startsWith("orrery:") && e.startTime <= ff + 1)
      .map((e) => [e.name.slice(7), r(e.startTime), r(e.duration)]);
    const nav = performance.getEntriesByType("navigation")[0];
    const ready = performance.getEntriesByName("orrery:wasm-ready")[0];
    return {
      dom_content_loaded: nav ? r(nav.domContentLoadedEventEnd) : null,
      wasm_loaded: wasm ? r(wasm.responseEnd) : null,
      // main.js: the module compiled and instantiated, the app about to start.
      wasm_ready: ready ? r(ready.startTime) : null,
      entries: m,
    };
  }, out.first_frame_ms);
  const ms = (t) => (t === undefined || navTs === null ? null : Math.round((t - navTs) * 1000));
  out.phases.network = [...requests.values()].filter((q) => ms(q.sent) <= out.first_frame_ms)
    .map((q) => ({ url: q.url.slice(0, 90), sent: ms(q.sent), headers: ms(q.headers), first_data: ms(q.first_data), bytes: q.bytes || 0 }));
  // The live stream's requests up to the first frame: main.js requests it before the module is
  // ready and the app takes that request over (one request, sent before wasm_ready).
  const streams = out.phases.network.filter((q) => q.url.startsWith("/orrery/api/graph/stream"));
  out.stream = { requests: streams.length, sent: streams[0]?.sent ?? null, first_data: streams[0]?.first_data ?? null };
  // Renderer workers alive (the page's dedicated workers).
  out.workers = page.workers().length;
  // Wait until the map shows (nearly) all the services asked for and the layout animation ended.
  await page.waitForFunction((want) => {
    const o = document.querySelector("[data-testid=map] canvas[data-geometry]");
    return o && JSON.parse(o.dataset.geometry).nodes.length >= want;
  }, { timeout: 120000, polling: 500 }, opts.min_nodes || 1);
  await new Promise((r) => setTimeout(r, 1500));
  const geometry = async () => JSON.parse(await page.$eval("[data-testid=map] canvas[data-geometry]", (c) => c.dataset.geometry));
  const g = await geometry();
  out.legibility = legibility(g);
  if (opts.notices) {
    // The checks' board is polled every 15 s: wait for the marks, then read them.
    await page.waitForFunction(() => {
      const o = document.querySelector("[data-testid=map] canvas[data-geometry]");
      return o && (JSON.parse(o.dataset.geometry).notice_nodes || []).length > 0;
    }, { timeout: 40000, polling: 500 }).catch(() => {});
    const n = await geometry();
    out.notices = {
      nodes: n.notice_nodes,
      edges: n.notice_edges,
      text: await page.$eval("[data-testid=map-notice-marks]", (u) => u.textContent),
      // Visually hidden (a text alternative only): its box is at most 1x1 px.
      area: await page.$eval("[data-testid=map-notice-marks]", (u) => { const r = u.getBoundingClientRect(); return r.width * r.height; }),
      log: log.filter((l) => /Content.Security|inline style/i.test(l)),
    };
  }
  if (opts.lists) out.lists = await lists(page, opts.lists);
  await page.screenshot({ path: path.join(artifacts, `mesh-${opts.name || "map"}.png`) });
  if (opts.docs_images && opts.docs_image) {
    await page.screenshot({ path: path.join(opts.docs_images, opts.docs_image) });
  }

  // Live phase: updates keep arriving over the stream while frames run.
  if (opts.watch_ms) {
    const cdp = await page.target().createCDPSession();
    await cdp.send("Performance.enable");
    const metric = async () => Object.fromEntries((await cdp.send("Performance.getMetrics")).metrics.map((m) => [m.name, m.value]));
    const version = async () => (await geometry()).version || 0;
    // [frames drawn, full-screen copies among them] as the renderer reports them.
    const glFrames = () => page.$eval("[data-testid=map] canvas", (c) => (c.dataset.glFrames || "0 0").split(" ").map(Number));
    const [m0, f0, v0, t0] = [await metric(), await page.evaluate(() => window.__frames), await version(), Date.now()];
    const [g0, d0] = [await glFrames(), await page.evaluate(() => window.__pageDraws)];
    const longBefore = await page.evaluate(() => window.__long.length);
    const since = await page.evaluate(() => performance.now());
    // ORRERY_MESH_TRACE=<file>: a Chromium trace of the live phase, to see what a long task did.
    const trace = process.env.ORRERY_MESH_TRACE;
    if (trace) await page.tracing.start({ path: trace, categories: ["devtools.timeline", "blink", "v8", "cc"] });
    await new Promise((r) => setTimeout(r, opts.watch_ms));
    if (trace) await page.tracing.stop();
    const [m1, f1, v1, t1] = [await metric(), await page.evaluate(() => window.__frames), await version(), Date.now()];
    const long = (await page.evaluate(() => window.__long)).slice(longBefore);
    const [g1, d1] = [await glFrames(), await page.evaluate(() => window.__pageDraws)];
    const drawn = g1[0] - g0[0];
    const frames = drawn > 0 ? drawn : f1 - f0;
    out.live = {
      seconds: (t1 - t0) / 1000,
      graph_updates: v1 - v0,
      frames,
      page_animation_frames: f1 - f0,
      fps: frames / ((t1 - t0) / 1000),
      gl_thread: await page.$eval("[data-testid=map] canvas", (c) => c.dataset.glThread || null),
      page_thread_gl_draws: d1 - d0,
      full_screen_copies_per_drawn_frame: (g1[1] - g0[1]) / Math.max(1, drawn),
      renderer_frame_cpu: JSON.parse(await page.$eval("[data-testid=map] canvas", (c) => c.dataset.frameStats || "{}")),
      main_thread_ms_per_frame: frames ? ((m1.TaskDuration - m0.TaskDuration) * 1000) / frames : null,
      script_ms_per_frame: frames ? ((m1.ScriptDuration - m0.ScriptDuration) * 1000) / frames : null,
      long_tasks: long.length,
      longest_task_ms: long.reduce((m, t) => Math.max(m, t[1]), 0),
      long_task_ms: long.map((t) => Math.round(t[1])),
      // How long after the last update's apply ended each long task began (null: before any
      // update): a task right behind an update is its aftermath (the browser restyling or
      // rasterising what the update changed) even when none of the app's code ran in it.
      long_task_after_update_ms: await page.evaluate((long) => {
        const applied = performance.getEntriesByName("orrery:apply").map((e) => e.startTime + e.duration);
        return long.map(([s]) => {
          const before = applied.filter((t) => t <= s);
          return before.length ? Math.round(s - Math.max(...before)) : null;
        });
      }, long),
      long_tasks_by_cause: await page.evaluate((long) => {
        // What ran inside each long task, from the app's User Timing entries that start in it:
        // applying a graph update, drawing a cached layer (a chunk or at once), or neither (a
        // frame of copies, particles and the overlay).
        const m = performance.getEntriesByType("measure").filter((e) => e.name.startsWith("orrery:"));
        // With WebGL in the worker, the layer entries are the worker's (relayed): they did not
        // run in a task of the page, whose own drawing is the label overlay.
        const worker = document.querySelector("[data-testid=map] canvas")?.dataset.glThread === "worker";
        const by = { update: 0, labels: 0, layer_chunk: 0, layer_at_once: 0, frame: 0 };
        for (const [s, d] of long) {
          const names = m.filter((e) => e.startTime >= s && e.startTime <= s + d).map((e) => e.name.slice(7));
          const has = (...k) => names.some((n) => k.includes(n));
          // The lists beside the map following an update (setting what they want, `list-nodes`,
          // and their rows' steps, `list-chunk`) and its deferred particles and GPU upload
          // (`upload`) are that update's work too.
          by[has("apply", "upload", "live-decode", "live-parse", "list-nodes", "list-chunk") ? "update" : has("labels") ? "labels"
            : !worker && has("layer") ? "layer_at_once" : !worker && has("layer-chunk") ? "layer_chunk" : "frame"]++;
        }
        return by;
      }, long),
      phases: await page.evaluate((since) => {
        const by = {};
        for (const e of performance.getEntriesByType("measure")) {
          if (!e.name.startsWith("orrery:") || e.startTime < since) continue;
          const k = e.name.slice(7);
          const b = (by[k] ||= { count: 0, total_ms: 0, max_ms: 0 });
          b.count++;
          b.total_ms = Math.round((b.total_ms + e.duration) * 10) / 10;
          b.max_ms = Math.max(b.max_ms, Math.round(e.duration * 10) / 10);
        }
        return by;
      }, since),
    };
    out.list_chunks = await page.evaluate(async (since) => {
      // Caught up: no step for half a second (or give up after 10 s).
      const last = () => Math.max(0, ...performance.getEntriesByName("orrery:list-chunk").map((e) => e.startTime + e.duration));
      for (let i = 0; i < 100 && performance.now() - last() < 500; i++) await new Promise((r) => setTimeout(r, 100));
      const stats = (es) => ({
        count: es.length,
        rows: es.reduce((a, e) => a + (e.detail?.rows || 0), 0),
        max_rows: es.reduce((a, e) => Math.max(a, e.detail?.rows || 0), 0),
        max_ms: Math.round(es.reduce((a, e) => Math.max(a, e.duration), 0) * 10) / 10,
      });
      const all = performance.getEntriesByName("orrery:list-chunk");
      return {
        page: stats(all),
        live: stats(all.filter((e) => e.startTime >= since)),
        rows_on_screen: {
          nodes: document.querySelectorAll("[data-testid=map-nodes] li").length,
          edges: document.querySelectorAll("[data-testid=map-edges] li").length,
        },
      };
    }, since);
    const m = await metric();
    const dom = await cdp.send("Memory.getDOMCounters").catch(() => ({}));
    const pids = renderers(browser.process().pid);
    out.memory = {
      js_heap_used_mb: m.JSHeapUsedSize / 1048576,
      wasm_memory_mb: await page.evaluate(() => window.__wasmMemory ? window.__wasmMemory.buffer.byteLength / 1048576 : null),
      dom_nodes: dom.nodes ?? null,
      renderer_rss_mb: Math.max(0, ...pids.map(rssKiB)) / 1024,
      renderer_pids: pids.length,
    };
  }
  await page.close();
  return out;
}

// The bounded lists beside the map, and the filter that reaches any row of them (see `lists`
// in the header).
async function lists(page, far) {
  const rows = () => page.evaluate((far) => ({
    nodes: document.querySelectorAll("[data-testid=map-nodes] li").length,
    edges: document.querySelectorAll("[data-testid=map-edges] li").length,
    nodes_more: document.querySelector("[data-testid=map-nodes-more]")?.textContent ?? null,
    edges_more: document.querySelector("[data-testid=map-edges-more]")?.textContent ?? null,
    edge_count: Number(document.querySelector("[data-testid=map]").dataset.edgeCount),
    node_count: Number(document.querySelector("[data-testid=map]").dataset.nodeCount),
    elements: document.getElementsByTagName("*").length,
    far_edge_listed: !!document.querySelector(`[data-testid=map-edges] li[data-edge-id="${far.edge}"]`),
    far_node_listed: !!document.querySelector(`[data-testid=map-nodes] li[data-node-id="${far.node}"]`),
  }), far);
  // The rows follow the graph a chunk per frame (web/src/map_lists.rs): read them once no chunk
  // has run for half a second, not after a fixed sleep that a loaded machine outlasts.
  const settled = () => page.waitForFunction(() => {
    const chunks = performance.getEntriesByName("orrery:list-chunk");
    const last = chunks.length ? chunks[chunks.length - 1] : null;
    return !last || performance.now() - (last.startTime + last.duration) > 500;
  }, { timeout: 15000, polling: 100 }).catch(() => {});
  await settled();
  const out = { before: await rows() };
  // Keyboard only: focus the filter, type the edge's id, open the edge list, Enter on the row.
  await page.focus("[data-testid=map-list-filter]");
  await page.keyboard.type(far.edge);
  await page.waitForFunction((id) => document.querySelector(`[data-testid=map-edges] li[data-edge-id="${id}"]`),
    { timeout: 10000 }, far.edge).catch(() => {});
  out.edge_filtered = await rows();
  await page.focus("[data-testid=map-edges-box] summary");
  await page.keyboard.press("Enter");
  out.edges_open = await page.$eval("[data-testid=map-edges-box]", (d) => d.open);
  await page.focus(`[data-testid=map-edges] li[data-edge-id="${far.edge}"]`).catch(() => {});
  await page.keyboard.press("Enter");
  await page.waitForSelector("[data-testid=edge-panel]", { timeout: 10000 }).catch(() => {});
  out.edge_panel = !!(await page.$("[data-testid=edge-panel]"));
  out.edge_selected = await page.$$eval("[data-testid=map-edges] li[data-selected=true]", (els) => els.map((e) => e.dataset.edgeId));
  out.a11y = await seriousViolations(page);
  // The node, by part of its name (the filter's text replaced).
  await page.click("[data-testid=map-list-filter]", { clickCount: 3 });
  await page.keyboard.type(far.node);
  await page.waitForFunction((id) => document.querySelector(`[data-testid=map-nodes] li[data-node-id="${id}"]`),
    { timeout: 10000 }, far.node).catch(() => {});
  out.node_filtered = await rows();
  await page.focus(`[data-testid=map-nodes] li[data-node-id="${far.node}"]`).catch(() => {});
  await page.keyboard.press("Enter");
  await page.waitForSelector("[data-testid=node-panel]", { timeout: 10000 }).catch(() => {});
  out.node_panel = await page.$eval("[data-testid=node-panel]", (e) => e.textContent.slice(0, 200)).catch(() => null);
  // Cleared: the bounded lists again.
  await page.click("[data-testid=map-list-filter]", { clickCount: 3 });
  await page.keyboard.press("Backspace");
  await new Promise((r) => setTimeout(r, 300));
  await settled();
  out.after = await rows();
  return out;
}
