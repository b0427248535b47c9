// The browser half of tests/web_e2e.rs's map-UX tests (issue 18): the empty install's
// onboarding and help overlay; the demo map at first sight (services shown, not one namespace
// node), panels beside the map and never over a node, the one-line header at 1280/1440 px,
// axe-core audits, the keyboard reaching every control, a crowded mesh collapsed into
// namespaces, the chaos demo's red edge — with the screenshots docs/web.md shows.
import fs from "node:fs";
import path from "node:path";
import { seriousViolations } from "./a11y.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function watch(page) {
  const log = [];
  page.on("pageerror", (e) => log.push(`pageerror: ${e}`));
  page.on("console", (m) => { if (m.type() === "error") log.push(`console: ${m.text()}`); });
  return log;
}

// Writes a docs screenshot (docs/images/<name>.png) when asked to, else into the artifacts.
async function shot(page, opts, artifacts, name) {
  const dir = opts.docs_images || artifacts;
  fs.mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: path.join(dir, `${name}.png`) });
}

// Every node's drawn centre in page coordinates and every panel's box; the nodes inside the
// canvas and under no panel.
async function coverage(page) {
  return page.evaluate(() => {
    const box = (el) => { const r = el.getBoundingClientRect(); return { x: r.left, y: r.top, w: r.width, h: r.height }; };
    const canvas = box(document.querySelector("[data-testid=map] canvas"));
    const panels = [...document.querySelectorAll("header.top, .map-bar, .replay-bar, .map-side, .side, .legend, .quality, .diff, .empty-state")]
      .filter((e) => e.offsetParent !== null).map((e) => ({ cls: e.className, ...box(e) }));
    const inside = (p, b) => p.x >= b.x && p.x <= b.x + b.w && p.y >= b.y && p.y <= b.y + b.h;
    const nodes = [...document.querySelectorAll("[data-testid=map-nodes] li")].map((e) => {
      const p = { x: canvas.x + Number(e.dataset.x), y: canvas.y + Number(e.dataset.y) };
      return { id: e.dataset.nodeId, ...p, in_canvas: inside(p, canvas), under: panels.filter((b) => inside(p, b)).map((b) => b.cls) };
    });
    return { canvas, panels, nodes };
  });
}

// Tabs through the page from the top and reports which controls were reached, against every
// visible, enabled control on the page. A control is named by tag, test id and node id (a
// service-list row by its node, so a row whose figures changed meanwhile is still the row that
// was reached); unnamed ones (plain inputs, buttons) are counted per tag.
async function tabOrder(page, limit) {
  await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
  // (The name is written out in both page functions: the page's CSP forbids eval.)
  const desc = () => page.evaluate(() => {
    const name = (e) => `${e.tagName.toLowerCase()}${e.dataset.testid ? "#" + e.dataset.testid : ""}${e.dataset.nodeId ? "@" + e.dataset.nodeId : ""}`;
    const e = document.activeElement;
    if (!e || e === document.body) return null;
    const again = e.dataset.tabSeen === "1";
    e.dataset.tabSeen = "1";
    return { again, key: name(e), label: (e.getAttribute("aria-label") || e.textContent || "").trim().slice(0, 30) };
  });
  const controls = () => page.evaluate(() => {
    const name = (e) => `${e.tagName.toLowerCase()}${e.dataset.testid ? "#" + e.dataset.testid : ""}${e.dataset.nodeId ? "@" + e.dataset.nodeId : ""}`;
    return [...document.querySelectorAll("button, input, select, textarea, a[href], [tabindex]:not([tabindex='-1'])")]
      // (checkVisibility: the rows inside a closed <details> — the edge list — have a layout box
      // but are not rendered, so neither shown nor focusable.)
      .filter((e) => !e.disabled && e.offsetParent !== null && e.checkVisibility() && !e.closest("[hidden], [inert]"))
      .map(name);
  });
  // The controls present both before and after the walk (a live update may add or drop a
  // service row meanwhile).
  const before = await controls();
  const reached = [];
  for (let i = 0; i < limit; i++) {
    await page.keyboard.press("Tab");
    const r = await desc();
    if (r && r.again) break; // wrapped around
    if (r) reached.push(r);
  }
  const after = await controls();
  const all = before.filter((k) => after.includes(k));
  const keys = reached.map((r) => r.key);
  const count = (list, k) => list.filter((x) => x === k).length;
  const missed = [...new Set(all)].filter((k) => count(all, k) > count(keys, k))
    .map((k) => `${k} ×${count(all, k) - count(keys, k)}`);
  return { reached: reached.map((r) => `${r.key}:${r.label}`), missed };
}

// An empty install: the onboarding with the collector's real addresses, the docs link; the
// help overlay by "?" and by its button, closed by Escape; no serious accessibility issue.
export async function empty(browser, base, artifacts, opts) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  const log = watch(page);
  const out = { log };
  await page.goto(`${base}/?view=map&level=region&since=5m`, { waitUntil: "load" });
  await page.waitForSelector("[data-testid=empty-state] [data-testid=otlp-lines]", { timeout: 60000 });
  out.lines = await page.$eval("[data-testid=otlp-lines]", (e) => e.textContent);
  out.demo_line = await page.$eval("[data-testid=demo-line]", (e) => e.textContent);
  out.docs_href = await page.$eval("[data-testid=docs-link]", (e) => e.href);
  out.empty_a11y = await seriousViolations(page);
  await shot(page, opts, artifacts, "map-empty");

  // "?" opens the help, focus on its close button; Escape closes it and focus goes back.
  const helpState = () => page.evaluate(() => ({
    shown: !document.querySelector(".help-backdrop").hidden,
    focus: document.activeElement?.dataset.testid || document.activeElement?.tagName || "",
    expanded: document.querySelector("[data-testid=help-button]").getAttribute("aria-expanded"),
  }));
  await page.keyboard.type("?");
  await page.waitForFunction(() => !document.querySelector(".help-backdrop").hidden, { timeout: 5000 });
  out.help_by_key = await helpState();
  out.help_text = await page.$eval("[data-testid=help]", (e) => e.textContent);
  out.help_a11y = await seriousViolations(page, "[data-testid=help]");
  // A real modal: the page behind is inert. Tab and Shift+Tab from the dialog's last control
  // stay in it; the map and the header cannot take focus, even when asked to.
  out.help_modal = await page.evaluate(() => {
    const d = document.querySelector("[data-testid=help-dialog]");
    return { tag: d.tagName, open: d.open, modal: d.matches(":modal") };
  });
  const focusNow = () => page.evaluate(() => ({
    in_dialog: !!document.activeElement?.closest("[data-testid=help-dialog]"),
    id: document.activeElement?.dataset.testid || document.activeElement?.tagName || "",
  }));
  out.help_tabs = [];
  for (const k of ["Tab", "Tab", "Tab"]) { await page.keyboard.press(k); out.help_tabs.push(await focusNow()); }
  await page.keyboard.down("Shift"); await page.keyboard.press("Tab"); await page.keyboard.up("Shift");
  out.help_tabs.push(await focusNow());
  out.help_behind = await page.evaluate(() => {
    const tries = ["[data-testid=map] canvas", "[data-testid=help-button]", "input.locate"].map((sel) => {
      const e = document.querySelector(sel);
      if (!e) return { sel, found: false };
      e.focus();
      return { sel, found: true, focused: document.activeElement === e };
    });
    return tries;
  });
  out.help_a11y_page = await seriousViolations(page);
  await shot(page, opts, artifacts, "map-help");
  await page.keyboard.press("Escape");
  await page.waitForFunction(() => document.querySelector(".help-backdrop").hidden, { timeout: 5000 });
  out.help_after_escape = await helpState();
  out.url_after_escape = await page.evaluate(() => location.search);
  // The button opens it too; "?" typed into a text field is just a character.
  await page.click("[data-testid=help-button]");
  await page.waitForFunction(() => !document.querySelector(".help-backdrop").hidden, { timeout: 5000 });
  out.help_by_button = await helpState();
  await page.click("[data-testid=help-close]");
  await page.focus("input.locate");
  await page.keyboard.type("a?b");
  await sleep(200);
  out.typed = { value: await page.$eval("input.locate", (e) => e.value), help: (await helpState()).shown };
  return out;
}

export async function mapux(browser, base, artifacts, opts) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  const log = watch(page);
  const out = { log };
  const nodeCount = () => page.$eval("[data-testid=map]", (e) => Number(e.dataset.nodeCount));
  const seen = () => page.evaluate(() => ({
    url: location.search,
    grouped: document.querySelector("[data-testid=map]").dataset.grouped,
    nodes: [...document.querySelectorAll("[data-testid=map-nodes] li")].map((e) => ({ id: e.dataset.nodeId, kind: e.dataset.kind, namespace: e.dataset.namespace || "" })),
  }));
  const bars = () => page.evaluate(() => ({
    header: document.querySelector("header.top").getBoundingClientRect().height,
    bar: document.querySelector(".map-bar").getBoundingClientRect().height,
    // One line: every filter's top within a few px of the breadcrumb's.
    tops: [...document.querySelectorAll(".map-bar .crumbs, .map-bar .filters > *")].map((e) => Math.round(e.getBoundingClientRect().top)),
    overflow: document.documentElement.scrollWidth - window.innerWidth,
  }));

  // The demo's region map at first sight: its services, not one namespace node.
  await page.goto(`${base}/?view=map&level=region&since=5m`, { waitUntil: "load" });
  await page.waitForFunction((n) => document.querySelectorAll("[data-testid=map-nodes] li[data-kind=service]").length >= n,
    { timeout: 90000 }, opts.demo_services);
  await sleep(2500); // the stream's next update and the layout animation
  out.demo = await seen();
  out.demo_cover = await coverage(page);
  out.bars_1280 = await bars();
  await shot(page, opts, artifacts, "map-region");
  out.region_a11y = await seriousViolations(page);
  out.tab = await tabOrder(page, 120);

  // A node panel opens beside the map: the map is fitted into what is left.
  await page.$eval(`[data-testid=map-nodes] li[data-node-id="${opts.panel_node}"]`, (e) => e.click());
  await page.waitForSelector("[data-testid=node-panel] [data-testid=node-histogram]", { timeout: 30000 });
  await sleep(800);
  out.panel_cover = await coverage(page);
  out.panel_a11y = await seriousViolations(page);
  await page.keyboard.press("Escape");
  // Collapsing the service list gives the map the width.
  await page.click("[data-testid=sidebar-toggle]");
  await sleep(800);
  out.collapsed_cover = await coverage(page);
  out.collapsed_toggle = await page.$eval("[data-testid=sidebar-toggle]", (e) => e.getAttribute("aria-expanded"));
  await page.click("[data-testid=sidebar-toggle]");

  // The header at 1440 px and below 1280 (wrapping without a horizontal scrollbar).
  await page.setViewport({ width: 1440, height: 900 });
  await sleep(500);
  out.bars_1440 = await bars();
  await page.setViewport({ width: 900, height: 800 });
  await sleep(500);
  out.bars_900 = await bars();
  await page.setViewport({ width: 1280, height: 800 });

  // The global map and a focused service, for the docs; audited too.
  await page.goto(`${base}/?view=map&level=global&since=5m`, { waitUntil: "load" });
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=map-nodes] li").length >= 3, { timeout: 30000 });
  await sleep(2500);
  out.global_cover = await coverage(page);
  out.global_a11y = await seriousViolations(page);
  await shot(page, opts, artifacts, "map-global");
  await page.goto(`${base}/?view=map&level=focused&focus=${opts.panel_node}&since=5m`, { waitUntil: "load" });
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=map-nodes] li").length >= 3, { timeout: 30000 });
  await sleep(2500);
  await shot(page, opts, artifacts, "map-focused");

  return out;
}

// Chaos (switched on by the Rust test): the failing service's edges turn red.
export async function chaos(browser, base, artifacts, opts) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  const log = watch(page);
  const out = { log };
  await page.goto(`${base}/?view=map&level=region&since=1m`, { waitUntil: "load" });
  await page.waitForFunction((e) => document.querySelector(`[data-testid=map-edges] li[data-edge-id="${e}"][data-health=danger]`),
    { timeout: 120000 }, opts.chaos_edge).catch(() => {});
  out.edge = await page.$eval(`[data-testid=map-edges] li[data-edge-id="${opts.chaos_edge}"]`, (e) => ({ health: e.dataset.health, error_rate: Number(e.dataset.errorRate) })).catch(() => null);
  await sleep(1500);
  await shot(page, opts, artifacts, "map-chaos");
  return out;
}

// The crowded region (several hundred services in several namespaces): namespace nodes; the
// user can still ask for every service.
export async function crowded(browser, base, artifacts, opts) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  const log = watch(page);
  const out = { log };
  const seen = () => page.evaluate(() => ({
    url: location.search,
    grouped: document.querySelector("[data-testid=map]").dataset.grouped,
    nodes: [...document.querySelectorAll("[data-testid=map-nodes] li")].map((e) => ({ id: e.dataset.nodeId, kind: e.dataset.kind })),
  }));
  await page.goto(`${base}/?view=map&level=region&region=${opts.region}&since=5m`, { waitUntil: "load" });
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=map-nodes] li[data-kind=namespace]").length >= 2, { timeout: 60000 });
  await sleep(2000);
  out.collapsed = await seen();
  out.cover = await coverage(page);
  await shot(page, opts, artifacts, "map-namespaces");
  // group=none: every service, whatever the count.
  await page.select("[data-testid=group]", "none");
  await page.waitForFunction(() => document.querySelector("[data-testid=map]").dataset.grouped === "false", { timeout: 30000 });
  // The list's rows follow the map a step per frame: read them once it is whole (aria-busy).
  await page.waitForFunction(() => document.querySelector("[data-testid=map-nodes]").getAttribute("aria-busy") === "false", { timeout: 30000 });
  out.ungrouped = await seen();
  // group=prefix: the graph API groups the services by name prefix (`billing-007` → billing).
  await page.select("[data-testid=group]", "prefix");
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=map-nodes] li[data-kind=group]").length >= 2, { timeout: 30000 });
  await page.waitForFunction(() => document.querySelector("[data-testid=map-nodes]").getAttribute("aria-busy") === "false", { timeout: 30000 });
  out.by_prefix = await seen();
  return out;
}
