// The browser half of tests/web_traces.rs (issue 19): walks the trace page and the trace search
// page served by a real `orrery all-in-one` and reports what it saw (the Rust test asserts).
import path from "node:path";
import { seriousViolations } from "./a11y.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function traces(browser, base, artifacts, opts) {
  const page = await browser.newPage();
  // 1280x800: also the size of the screenshots committed to docs/images.
  await page.setViewport({ width: 1280, height: 800 });
  const log = [];
  page.on("pageerror", (e) => log.push(`pageerror: ${e}`));
  // A failed request is logged with its URL (the console's "Failed to load resource" has none).
  // Not an error here: the checks board (web/src/checks.rs, polled on every page) answers 404
  // while the service evaluates no rules.
  page.on("console", (m) => { if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) log.push(`console: ${m.text()}`); });
  page.on("response", (r) => {
    const p = new URL(r.url()).pathname;
    if (r.status() >= 400 && !(r.status() === 404 && p === "/orrery/api/checks")) log.push(`HTTP ${r.status()} ${p}`);
  });
  await page.evaluateOnNewDocument(() => {
    document.addEventListener("securitypolicyviolation", (e) =>
      console.error(`Content Security Policy violation: ${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
  });
  const out = { log };
  const shot = (name) => page.screenshot({ path: path.join(artifacts, `traces-${name}.png`) });
  // The screenshots of docs/web.md (opts.docs_images: docs/images).
  const docShot = (name) => opts.docs_images ? page.screenshot({ path: path.join(opts.docs_images, `${name}.png`) }) : null;
  // Every visible, enabled control inside `scope` that Tab never reaches from the top of the
  // page (each tabbed through once; the list should be empty).
  const unreachable = async (scope) => {
    const n = await page.evaluate((scope) => {
      document.activeElement && document.activeElement.blur();
      document.querySelectorAll("[data-kbd]").forEach((e) => delete e.dataset.kbd);
      const els = [...document.querySelectorAll(`${scope} :is(a[href], button, input, select, textarea, [tabindex="0"])`)]
        .filter((e) => !e.disabled && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden");
      els.forEach((e, k) => { e.dataset.kbd = String(k); });
      return els.length;
    }, scope);
    const seen = [];
    for (let k = 0; k < n + 12; k++) {
      await page.keyboard.press("Tab");
      const id = await page.evaluate(() => document.activeElement && document.activeElement.dataset.kbd);
      if (id !== undefined && id !== null) seen.push(id);
    }
    return page.evaluate((seen) => [...document.querySelectorAll("[data-kbd]")].filter((e) => !seen.includes(e.dataset.kbd))
      .map((e) => e.dataset.testid || e.getAttribute("aria-label") || e.textContent.trim().slice(0, 40)), seen);
  };
  const localInput = (ms) => page.evaluate((ms) => {
    const d = new Date(ms); const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }, ms);
  const setInput = (sel, v) => page.$eval(sel, (e, v) => { e.value = v; e.dispatchEvent(new Event("input", { bubbles: true })); }, v);
  const rowsNow = () => page.$$eval(".wf-row", (els) => els.map((e) => ({
    span: e.dataset.spanId, service: e.dataset.service, text: e.querySelector(".label").textContent,
    selected: e.classList.contains("selected"), match: e.classList.contains("match"),
  })));
  // Waits until the waterfall shows `n` rows.
  const rowCount = async (n) => {
    await page.waitForFunction((n) => document.querySelectorAll(".wf-row").length === n, { timeout: 5000 }, n)
      .catch(() => {});
    return page.$$eval(".wf-row", (els) => els.length);
  };

  // 1. The waterfall: header, legend, ruler, durations, colours, the late consumer.
  await page.goto(`${base}/?view=trace&trace=${opts.trace}`, { waitUntil: "load" });
  await page.waitForSelector("[data-testid=waterfall] .wf-row", { timeout: 30000 });
  out.header = await page.$eval("[data-testid=trace-header]", (e) => ({
    duration_us: Number(e.dataset.durationUs), services: Number(e.dataset.services), depth: Number(e.dataset.depth),
    spans: Number(e.dataset.spans), errors: Number(e.dataset.errors), text: e.textContent }));
  out.legend = await page.$$eval("[data-testid=service-legend] li", (els) => els.map((e) => ({
    service: e.dataset.service, colour: getComputedStyle(e.querySelector(".swatch")).backgroundColor, text: e.textContent })));
  out.ticks = await page.$$eval("[data-testid=time-ruler] .tick", (els) => els.map((e) => e.dataset.label));
  out.rows = await page.$$eval(".wf-row", (els) => els.map((e) => {
    const track = e.querySelector(".track").getBoundingClientRect();
    const bar = e.querySelector(".span-bar").getBoundingClientRect();
    return {
      span: e.dataset.spanId, service: e.dataset.service, name: e.querySelector(".label").textContent,
      duration: e.querySelector(".dur").textContent,
      colour: getComputedStyle(e.querySelector(".span-bar")).backgroundColor,
      bar_left: (bar.left - track.left) / track.width, bar_right: (bar.right - track.left) / track.width,
      error: e.classList.contains("error"), critical: e.classList.contains("critical"),
    };
  }));
  // Span events as marks on their bars (left edge in fractions of the track).
  out.event_marks = await page.$$eval("[data-testid=event-mark]", (els) => els.map((e) => {
    const track = e.closest(".track").getBoundingClientRect();
    const r = e.getBoundingClientRect();
    return { span: e.closest(".wf-row").dataset.spanId, name: e.dataset.name, title: e.title,
      at: (r.left + r.width / 2 - track.left) / track.width };
  }));
  await shot("waterfall");

  // The minimap: the canvas is drawn; dragging from 37.5% (60 ms) past the right end zooms
  // the timeline to 60–160 ms; "reset zoom" shows the whole trace again.
  out.minimap_drawn = await page.waitForFunction(() => {
    const c = document.querySelector("[data-testid=minimap] canvas");
    if (!c || !c.width) return false;
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    for (let k = 3; k < d.length; k += 4) if (d[k] > 0) return true;
    return false;
  }, { timeout: 5000 }).then(() => true).catch(() => false);
  const mm = await page.$eval("[data-testid=minimap] .mm-track", (e) => { const r = e.getBoundingClientRect(); return { x: r.left, y: r.top, w: r.width, h: r.height }; });
  await page.mouse.move(mm.x + mm.w * 0.375, mm.y + mm.h / 2);
  await page.mouse.down();
  await page.mouse.move(mm.x + mm.w * 0.7, mm.y + mm.h / 2, { steps: 4 });
  out.minimap_dragging = await page.$$eval("[data-testid=minimap] .mm-sel", (els) => els.length);
  await page.mouse.move(mm.x + mm.w + 40, mm.y + mm.h / 2, { steps: 4 });
  await page.mouse.up();
  await sleep(300);
  out.zoom = await page.$eval("[data-testid=minimap]", (e) => e.dataset.zoom);
  out.zoom_ticks = await page.$$eval("[data-testid=time-ruler] .tick", (els) => els.map((e) => e.dataset.label));
  out.zoom_rows = await page.$$eval(".wf-row", (els) => els.map((e) => {
    const track = e.querySelector(".track").getBoundingClientRect();
    const bar = e.querySelector(".span-bar").getBoundingClientRect();
    return { name: e.querySelector(".label").textContent,
      bar_left: (bar.left - track.left) / track.width, bar_right: (bar.right - track.left) / track.width };
  }));
  await shot("zoomed");
  // Dragging the shown range pans it (width kept, held inside the trace): from 60% to 30%
  // moves 0.375–1 by −0.3.
  out.pan_window = await page.$$eval("[data-testid=minimap-window]", (els) => els.map((e) => getComputedStyle(e).cursor));
  await page.mouse.move(mm.x + mm.w * 0.6, mm.y + mm.h / 2);
  await page.mouse.down();
  await page.mouse.move(mm.x + mm.w * 0.3, mm.y + mm.h / 2, { steps: 4 });
  out.panning_selects = await page.$$eval("[data-testid=minimap] .mm-sel", (els) => els.length);
  await page.mouse.up();
  await sleep(200);
  out.pan_zoom = await page.$eval("[data-testid=minimap]", (e) => e.dataset.zoom);
  out.pan_ticks = await page.$$eval("[data-testid=time-ruler] .tick", (els) => els.map((e) => e.dataset.label));
  // Past the left end: held at the trace's start.
  await page.mouse.move(mm.x + mm.w * 0.2, mm.y + mm.h / 2);
  await page.mouse.down();
  await page.mouse.move(mm.x - 60, mm.y + mm.h / 2, { steps: 4 });
  await page.mouse.up();
  await sleep(200);
  out.pan_held = await page.$eval("[data-testid=minimap]", (e) => e.dataset.zoom);
  await page.click("[data-testid=zoom-reset]");
  await sleep(200);
  out.unzoom = await page.$eval("[data-testid=minimap]", (e) => e.dataset.zoom);
  out.unzoom_ticks = await page.$$eval("[data-testid=time-ruler] .tick", (els) => els.map((e) => e.dataset.label));

  // Collapse all / expand all / by depth, child counts on collapsed rows.
  await page.click("[data-testid=collapse-all]");
  out.collapsed_rows = await rowCount(1);
  out.collapsed_badge = await page.$eval(".wf-row [data-testid=child-count]", (e) => ({ children: Number(e.dataset.children), below: Number(e.dataset.below), text: e.textContent }));
  await page.click("[data-testid=expand-all]");
  out.expanded_rows = await rowCount(opts.spans);
  await page.select("[data-testid=levels]", "3");
  out.level3_rows = await rowCount(3);
  out.level3 = await rowsNow();
  out.level3_badges = await page.$$eval(".wf-row [data-testid=child-count]", (els) => els.map((e) => Number(e.dataset.children)));
  await page.click("[data-testid=expand-all]");
  await rowCount(opts.spans);

  // 2. Span search: "/" focuses it, matches highlighted and counted, Enter goes to the next.
  await page.click("[data-testid=trace-header]");
  await page.keyboard.press("/");
  out.slash_focus = await page.evaluate(() => document.activeElement && document.activeElement.dataset.testid);
  await page.keyboard.type("select");
  await page.waitForFunction(() => document.querySelector("[data-testid=span-search-count]").dataset.matches === "2", { timeout: 5000 }).catch(() => {});
  out.search_matches = await page.$eval("[data-testid=span-search-count]", (e) => ({ n: Number(e.dataset.matches), text: e.textContent }));
  out.search_highlighted = (await rowsNow()).filter((r) => r.match).map((r) => r.text);
  await page.keyboard.press("Enter");
  await sleep(200);
  out.search_enter = (await rowsNow()).filter((r) => r.selected).map((r) => r.text);
  await page.keyboard.press("Enter");
  await sleep(200);
  out.search_enter2 = (await rowsNow()).filter((r) => r.selected).map((r) => r.text);
  out.search_count_text = await page.$eval("[data-testid=span-search-count]", (e) => e.textContent);
  // A search that hits a span inside a collapsed subtree expands its ancestors.
  await page.click("[data-testid=collapse-all]");
  await rowCount(1);
  await page.click("[data-testid=span-search]", { clickCount: 3 });
  await page.keyboard.type("SELECT stock");
  await page.keyboard.press("Enter");
  await sleep(300);
  out.hidden_match = { rows: (await rowsNow()).length, selected: (await rowsNow()).filter((r) => r.selected).map((r) => r.text) };
  await shot("search");
  // Attribute keys and values match too: a span attribute value (with a space), an event's
  // attribute value; the box says what it searches.
  await page.click("[data-testid=expand-all]");
  await rowCount(opts.spans);
  const findText = async (q) => {
    await page.click("[data-testid=span-search]", { clickCount: 3 });
    await page.keyboard.press("Backspace");
    await page.keyboard.type(q);
    await sleep(300);
    return { n: await page.$eval("[data-testid=span-search-count]", (e) => Number(e.dataset.matches)),
      rows: (await rowsNow()).filter((r) => r.match).map((r) => r.span) };
  };
  out.find_attr_value = await findText("{id} bulk");
  out.find_event_attr = await findText("timeouterror");
  out.find_attr_pair = await findText("http.method=post");
  out.find_nothing = await findText("no-such-value-anywhere");
  out.find_hint = await page.$eval("[data-testid=span-search]", (e) => e.placeholder + " | " + e.title);
  await page.click("[data-testid=span-search]", { clickCount: 3 });
  await page.keyboard.press("Backspace");
  await page.keyboard.press("Escape");
  await page.click("[data-testid=expand-all]");
  await rowCount(opts.spans);

  // Keyboard: j/k through the rows, Enter collapses/expands the selected one.
  await page.click("[data-testid=trace-header]");
  // Start from no selection: reload.
  await page.goto(`${base}/?view=trace&trace=${opts.trace}`, { waitUntil: "load" });
  await page.waitForSelector("[data-testid=waterfall] .wf-row", { timeout: 30000 });
  const sel = async () => (await rowsNow()).filter((r) => r.selected).map((r) => r.text)[0] || null;
  await page.keyboard.press("j");
  out.key_j1 = await sel();
  await page.keyboard.press("j");
  await page.keyboard.press("j");
  out.key_j3 = await sel();
  await page.keyboard.press("Enter");
  out.key_enter_rows = await rowCount(3);
  await page.keyboard.press("Enter");
  out.key_enter2_rows = await rowCount(opts.spans);
  await page.keyboard.press("k");
  out.key_k = await sel();
  out.detail_open = await page.$eval("[data-testid=span-detail] h3", (e) => e.textContent).catch(() => null);

  // 4. Trace statistics.
  await page.click("[data-testid=tab-stats]");
  await page.waitForSelector("[data-testid=trace-stats] tbody tr", { timeout: 5000 });
  out.stats = await page.$$eval("[data-testid=trace-stats] tbody tr", (els) => els.map((e) => ({
    service: e.dataset.service, operation: e.dataset.operation, count: Number(e.dataset.count),
    errors: Number(e.dataset.errors), total_us: Number(e.dataset.totalUs), self_us: Number(e.dataset.selfUs) })));
  await shot("stats");
  // The spans table: sorted by duration, then by start; a row opens its span in the timeline.
  await page.click("[data-testid=tab-spans]");
  await page.waitForSelector("[data-testid=spans-table] tbody tr", { timeout: 5000 });
  const spanRows = () => page.$$eval("[data-testid=spans-table] tbody tr", (els) => els.map((e) => ({
    span: e.dataset.spanId, duration_us: Number(e.dataset.durationUs), text: e.textContent })));
  out.spans_by_duration = await spanRows();
  await page.click("[data-testid=sort-start]");
  await sleep(200);
  out.spans_by_start = await spanRows();
  await shot("spans-table");
  await page.$$eval("[data-testid=spans-table] tbody tr", (els) => els.find((e) => e.textContent.includes("send mail")).click());
  await page.waitForSelector(".wf-row.selected", { timeout: 5000 }).catch(() => {});
  out.spans_pick = (await rowsNow()).filter((r) => r.selected).map((r) => r.text);
  await page.click("[data-testid=tab-timeline]");
  out.back_to_timeline_rows = await rowCount(opts.spans);
  // The chosen view is in the URL: a reload and back/forward keep it.
  await page.click("[data-testid=tab-flame]");
  await sleep(200);
  const viewNow = () => page.evaluate(() => ({ url: location.search,
    pressed: [...document.querySelectorAll("[data-testid^=tab-][aria-pressed=true]")].map((e) => e.dataset.testid),
    flame: document.querySelectorAll("[data-testid=flame-frame]").length, rows: document.querySelectorAll(".wf-row").length }));
  out.view_url = await viewNow();
  await page.reload({ waitUntil: "load" });
  await page.waitForSelector("[data-testid=flame-frame]", { timeout: 20000 }).catch(() => {});
  out.view_reloaded = await viewNow();
  await page.goto(`${base}/?view=traces&since=15m`, { waitUntil: "load" });
  await page.goBack();
  await page.waitForSelector("[data-testid=flame-frame]", { timeout: 20000 }).catch(() => {});
  out.view_back = await viewNow();
  await page.goForward();
  await sleep(300);
  await page.goBack();
  await page.waitForSelector("[data-testid=flame-frame]", { timeout: 20000 }).catch(() => {});
  out.view_back_forward = await viewNow();
  await page.click("[data-testid=tab-timeline]");
  await rowCount(opts.spans);
  out.view_timeline_url = await page.evaluate(() => location.search);

  // The span detail: events with their attributes; links that open the linked trace.
  const detailOf = async (span) => {
    await page.click(`.wf-row[data-span-id="${span}"]`);
    await page.waitForFunction((span) => (document.querySelector("[data-testid=span-detail] p.muted") || {}).textContent?.includes(span), { timeout: 5000 }, span).catch(() => {});
    return page.$eval("[data-testid=span-detail]", (e) => ({
      title: e.querySelector("h3").textContent,
      events: [...e.querySelectorAll("[data-testid=span-events] > li")].map((li) => ({ name: li.dataset.name, text: li.textContent,
        attrs: [...li.querySelectorAll("tr")].map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent)) })),
      links: [...e.querySelectorAll("[data-testid=span-link]")].map((a) => ({ trace: a.dataset.traceId, text: a.textContent, href: a.getAttribute("href") })),
    }));
  };
  out.detail_error_span = await detailOf(opts.event_span);
  out.detail_consumer = await detailOf(opts.link_span);
  // The trace page with a span open: axe, the keyboard reaches every control, screenshot.
  out.a11y_trace = await seriousViolations(page);
  out.unreachable_trace = await unreachable("body");
  // Both checks can fail: a nameless button is a critical axe violation, and a button taken
  // out of the Tab order is reported as unreachable.
  await page.evaluate(() => {
    const b = document.createElement("button"); b.id = "axe-probe"; document.querySelector(".wf-tools").append(b);
    const k = document.createElement("button"); k.id = "kbd-probe"; k.tabIndex = -1; k.textContent = "kbd probe";
    document.querySelector(".wf-tools").append(k);
  });
  out.a11y_probe = (await seriousViolations(page, ".wf-tools")).map((v) => v.id);
  out.unreachable_probe = await unreachable("body");
  await page.evaluate(() => { document.getElementById("axe-probe").remove(); document.getElementById("kbd-probe").remove(); });
  await page.click(`.wf-row[data-span-id="${opts.link_span}"]`);
  await docShot("trace-waterfall");
  // Statistics for the docs.
  await page.click("[data-testid=tab-stats]");
  await page.waitForSelector("[data-testid=trace-stats] tbody tr", { timeout: 5000 });
  await docShot("trace-statistics");

  // The flame graph: frames by path, widths = time in and below; a click zooms to a frame.
  await page.click("[data-testid=tab-flame]");
  await page.waitForSelector("[data-testid=flame-frame]", { timeout: 5000 }).catch(() => {});
  const frames = () => page.$$eval("[data-testid=flame-frame]", (els) => els.map((e) => ({
    service: e.dataset.service, operation: e.dataset.operation, depth: Number(e.dataset.depth),
    x: Number(e.dataset.x), w: Number(e.dataset.w), total_us: Number(e.dataset.totalUs), self_us: Number(e.dataset.selfUs),
    px_w: e.getBoundingClientRect().width / e.parentElement.getBoundingClientRect().width,
    colour: getComputedStyle(e).backgroundColor })));
  out.flame = await frames();
  out.a11y_flame = await seriousViolations(page);
  await docShot("trace-flamegraph");
  await page.$$eval("[data-testid=flame-frame]", (els) => els.find((e) => e.dataset.operation === "consume order").click());
  await sleep(200);
  out.flame_zoomed = await frames();
  out.flame_zoom_detail = await page.$eval("[data-testid=span-detail] h3", (e) => e.textContent).catch(() => null);
  // Keyboard: a frame is a button (Tab, Enter).
  await page.click("[data-testid=flame-reset]");
  await sleep(200);
  out.flame_reset = (await frames()).length;
  out.unreachable_flame = await unreachable("body");

  // The graph: by service, then by operation; every call also in the table.
  await page.click("[data-testid=tab-graph]");
  await page.waitForSelector("[data-testid=graph-node]", { timeout: 5000 }).catch(() => {});
  const graph = () => page.evaluate(() => ({
    nodes: [...document.querySelectorAll("[data-testid=graph-node]")].map((e) => ({ key: e.dataset.key, layer: Number(e.dataset.layer), spans: Number(e.dataset.spans), error: e.classList.contains("err") })),
    edges: [...document.querySelectorAll("[data-testid=graph-edge]")].map((e) => ({ from: e.dataset.from, to: e.dataset.to, calls: Number(e.dataset.calls) })),
    table: [...document.querySelectorAll("[data-testid=graph-calls] tbody tr")].map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent)),
  }));
  out.graph_services = await graph();
  out.a11y_graph = await seriousViolations(page);
  await docShot("trace-graph");
  await page.click("[data-testid=graph-by-operation]");
  await sleep(200);
  out.graph_operations = await graph();
  await page.click("[data-testid=tab-timeline]");
  await rowCount(opts.spans);

  // A link opens the linked trace.
  await page.click(`.wf-row[data-span-id="${opts.link_span}"]`);
  await page.waitForSelector("[data-testid=span-link]", { timeout: 5000 });
  await page.click("[data-testid=span-link]");
  await page.waitForFunction((t) => location.search.includes(`trace=${t}`), { timeout: 5000 }, opts.compare_with).catch(() => {});
  await page.waitForFunction(() => document.querySelector("[data-testid=trace-header]") && document.querySelectorAll(".wf-row").length > 0, { timeout: 20000 }).catch(() => {});
  out.link_url = await page.evaluate(() => location.search);
  out.link_header = await page.$eval("[data-testid=trace-header]", (e) => ({ spans: Number(e.dataset.spans), text: e.textContent })).catch(() => null);
  await page.goBack();
  await page.waitForFunction((t) => location.search.includes(`trace=${t}`), { timeout: 5000 }, opts.trace).catch(() => {});
  out.back_rows = await rowCount(opts.spans);
  if (!opts.search) return out;

  // 3. The search page: pickers from the API, result details, sort, open.
  await page.goto(`${base}/?view=traces&since=15m`, { waitUntil: "load" });
  await page.waitForFunction((want) => {
    const opts = [...document.querySelectorAll("[data-testid=service-picker] option")].map((o) => o.value);
    return want.every((w) => opts.includes(w));
  }, { timeout: 20000 }, opts.services).catch(() => {});
  out.service_options = await page.$$eval("[data-testid=service-picker] option", (els) => els.map((e) => e.value));
  await page.select("[data-testid=service-picker]", "checkout");
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=operation-picker] option").length > 2, { timeout: 20000 }).catch(() => {});
  out.checkout_operations = await page.$$eval("[data-testid=operation-picker] option", (els) =>
    els.map((e) => ({ value: e.value, kind: e.dataset.kind || "", text: e.textContent })));
  await page.select("[data-testid=service-picker]", "frontend");
  await page.waitForFunction(() => [...document.querySelectorAll("[data-testid=operation-picker] option")].some((o) => o.value === "GET /checkout"), { timeout: 20000 }).catch(() => {});
  await page.select("[data-testid=operation-picker]", "GET /checkout");
  await page.click(".search-form button[type=submit]");
  await page.waitForFunction((n) => document.querySelectorAll("[data-testid=trace-results] .result").length >= n, { timeout: 20000 }, opts.search_results).catch(() => {});
  out.search_url = await page.evaluate(() => location.search);
  const results = () => page.$$eval("[data-testid=trace-results] .result", (els) => els.map((e) => ({
    id: e.dataset.traceId, start_us: Number(e.dataset.startUs), duration_us: Number(e.dataset.durationUs),
    errors: Number(e.dataset.errors), title: e.querySelector(".r-title strong").textContent,
    shown_id: e.querySelector("[data-testid=trace-id]").textContent,
    ago: e.querySelector("[data-testid=ago]").textContent, started: e.querySelector("[data-testid=started]").textContent,
    error_text: (e.querySelector("[data-testid=error-count]") || {}).textContent || "",
    chips: [...e.querySelectorAll(".chip")].map((c) => ({ service: c.dataset.service, spans: Number(c.dataset.spans),
      colour: getComputedStyle(c.querySelector(".swatch")).backgroundColor, text: c.textContent })),
    bar: e.querySelector(".bar").getBoundingClientRect().width / e.querySelector(".r-dur").getBoundingClientRect().width,
  })));
  out.results = await results();
  out.result_count = await page.$eval("[data-testid=result-count]", (e) => e.textContent);
  out.now_ms = await page.evaluate(() => Date.now());
  await shot("search-page");
  await docShot("trace-search");
  out.a11y_search = await seriousViolations(page);
  out.unreachable_search = await unreachable("body");
  const order = async (k) => { await page.select("[data-testid=sort]", k); await sleep(200); return (await results()).map((r) => ({ id: r.id, duration_us: r.duration_us, errors: r.errors, start_us: r.start_us })); };
  out.sorted = { longest: await order("longest"), shortest: await order("shortest"), errors: await order("errors"), recent: await order("recent") };
  // Keyboard: Tab to a result, Enter opens it.
  await page.focus(`[data-testid=trace-results] .result[data-trace-id="${opts.trace}"]`);
  await page.keyboard.press("Enter");
  await page.waitForSelector("[data-testid=waterfall] .wf-row", { timeout: 20000 }).catch(() => {});
  out.opened_url = await page.evaluate(() => location.search);
  out.opened_rows = await page.$$eval(".wf-row", (els) => els.length);

  // The duration-over-time plot: a dot per result; click one to open it; drag to narrow.
  const searchAgain = async () => {
    await page.goto(`${base}/?view=traces&since=15m&service=frontend`, { waitUntil: "load" });
    await page.waitForFunction((n) => document.querySelectorAll("[data-testid=scatter] circle.dot").length >= n, { timeout: 20000 }, opts.search_results).catch(() => {});
  };
  await searchAgain();
  const dots = () => page.$$eval("[data-testid=scatter] circle.dot", (els) => els.map((e) => ({
    id: e.dataset.traceId, cx: Number(e.getAttribute("cx")), cy: Number(e.getAttribute("cy")), r: Number(e.getAttribute("r")),
    error: e.classList.contains("err"), fill: getComputedStyle(e).fill })));
  out.dots = await dots();
  await shot("scatter");
  await page.click(`[data-testid=scatter] circle.dot[data-trace-id="${opts.trace}"]`);
  await page.waitForSelector("[data-testid=waterfall] .wf-row", { timeout: 20000 }).catch(() => {});
  out.dot_opened_url = await page.evaluate(() => location.search);
  // Compare two traces: tick two results, "compare selected".
  await searchAgain();
  out.compare_disabled_before = await page.$eval("[data-testid=compare-button]", (e) => e.disabled);
  await page.click(`.result[data-trace-id="${opts.trace}"] [data-testid=compare-pick]`);
  await page.click(`.result[data-trace-id="${opts.compare_with}"] [data-testid=compare-pick]`);
  out.compare_stayed = await page.evaluate(() => location.search);
  await page.click("[data-testid=compare-button]");
  await page.waitForSelector("[data-testid=compare-table] tbody tr", { timeout: 20000 }).catch(() => {});
  out.compare_url = await page.evaluate(() => location.search);
  out.compare_rows = await page.$$eval("[data-testid=compare-table] tbody tr", (els) => els.map((e) => ({
    service: e.dataset.service, operation: e.dataset.operation, change: e.dataset.change,
    a: Number(e.dataset.countA), b: Number(e.dataset.countB) })));
  out.compare_summary = await page.$eval("[data-testid=compare-summary]", (e) => e.textContent).catch(() => "");
  await shot("compare");
  await docShot("trace-compare");
  out.a11y_compare = await seriousViolations(page);
  out.unreachable_compare = await unreachable("body");
  await searchAgain();
  // Drag from just left of the earliest other trace to the right edge: the late trace (10 s
  // earlier) falls outside.
  const box = await page.$eval("[data-testid=scatter]", (e) => { const r = e.getBoundingClientRect(); return { x: r.left, y: r.top, w: r.width, h: r.height }; });
  const others = out.dots.filter((d) => d.id !== opts.trace).map((d) => d.cx);
  const from = box.x + (Math.min(...others) - 8) / 1000 * box.w;
  await page.mouse.move(from, box.y + box.h / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.w - 3, box.y + box.h / 2, { steps: 5 });
  out.scatter_dragging = await page.$$eval("[data-testid=scatter] .drag-sel", (els) => els.length);
  await page.mouse.up();
  await page.waitForFunction(() => location.search.includes("start="), { timeout: 5000 }).catch(() => {});
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=trace-results] .result").length > 0, { timeout: 20000 }).catch(() => {});
  out.narrowed_url = await page.evaluate(() => location.search);
  out.narrowed = await page.$$eval("[data-testid=trace-results] .result", (els) => els.map((e) => e.dataset.traceId));
  // The drag filled the form's custom range.
  out.narrowed_form = await page.evaluate(() => ({ lookback: document.querySelector("[data-testid=lookback]").value,
    from: (document.querySelector("[data-testid=range-from]") || {}).value, to: (document.querySelector("[data-testid=range-to]") || {}).value }));

  // A custom range typed in the form: from 5 s after the late trace started to a minute from
  // now leaves it out; an end before the start is refused without searching.
  await page.goto(`${base}/?view=traces&since=15m&service=frontend`, { waitUntil: "load" });
  await page.waitForFunction((n) => document.querySelectorAll("[data-testid=trace-results] .result").length >= n, { timeout: 20000 }, opts.search_results).catch(() => {});
  const late = out.results.find((r) => r.id === opts.trace);
  await page.select("[data-testid=lookback]", "custom");
  await page.waitForSelector("[data-testid=range-from]", { timeout: 5000 });
  out.custom_prefilled = await page.$eval("[data-testid=range-from]", (e) => e.value);
  const rFrom = await localInput(late.start_us / 1000 + 5000);
  const rTo = await localInput(Date.now() + 60000);
  await setInput("[data-testid=range-from]", rTo);
  await setInput("[data-testid=range-to]", rFrom);
  await page.click(".search-form button[type=submit]");
  await sleep(300);
  out.custom_bad = { error: await page.$eval("[data-testid=range-error]", (e) => e.textContent).catch(() => null),
    url: await page.evaluate(() => location.search) };
  await setInput("[data-testid=range-from]", rFrom);
  await setInput("[data-testid=range-to]", rTo);
  await page.click(".search-form button[type=submit]");
  await page.waitForFunction(() => location.search.includes("start="), { timeout: 5000 }).catch(() => {});
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=trace-results] .result").length > 0, { timeout: 20000 }).catch(() => {});
  out.custom = { url: await page.evaluate(() => location.search), from: rFrom, to: rTo,
    error: await page.$eval("[data-testid=range-error]", (e) => e.textContent).catch(() => null),
    results: await page.$$eval("[data-testid=trace-results] .result", (els) => els.map((e) => e.dataset.traceId)) };
  out.a11y_search_custom = await seriousViolations(page);

  // Attribute filters in logfmt with a quoted value holding a space (as Jaeger takes them):
  // only the trace whose span has both attributes; the value without its second word finds
  // none of it; an unclosed quote is refused with a message, without searching.
  const attrSearch = async (q) => {
    await page.goto(`${base}/?view=traces&since=15m`, { waitUntil: "load" });
    await page.waitForSelector("[data-testid=attr-filter]", { timeout: 20000 });
    await page.waitForFunction(() => !document.body.textContent.includes("searching…"), { timeout: 20000 }).catch(() => {});
    await setInput("[data-testid=attr-filter]", q);
    const before = await page.evaluate(() => performance.getEntriesByType("resource").filter((e) => e.name.includes("/api/traces?")).length);
    await page.click(".search-form button[type=submit]");
    await sleep(300);
    await page.waitForFunction(() => !document.body.textContent.includes("searching…"), { timeout: 20000 }).catch(() => {});
    return { results: await page.$$eval("[data-testid=trace-results] .result", (els) => els.map((e) => e.dataset.traceId)),
      requests: await page.evaluate(() => performance.getEntriesByType("resource").filter((e) => e.name.includes("/api/traces?")).map((e) => e.name)),
      before, error: await page.$eval("[data-testid=attr-error]", (e) => e.textContent).catch(() => null) };
  };
  out.logfmt_quoted = await attrSearch('http.route="/orders/{id} bulk" http.method=POST');
  out.logfmt_first_word = await attrSearch('http.route=/orders/{id}');
  out.logfmt_unclosed = await attrSearch('http.route="/orders/{id} bulk');
  out.a11y_search_attr_error = await seriousViolations(page);
  return out;
}
