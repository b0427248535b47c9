// The browser half of tests/web_e2e.rs's namespace test: the region map at namespace zoom
// (chosen with group=namespace),
// expanding a namespace (double-click), the URL round trip and Escape zooming back out.
import path from "node:path";

export async function namespaces(browser, base, artifacts, opts) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 900 });
  const log = [];
  page.on("pageerror", (e) => log.push(`pageerror: ${e}`));
  page.on("console", (m) => { if (m.type() === "error") log.push(`console: ${m.text()}`); });
  const shot = (name) => page.screenshot({ path: path.join(artifacts, `namespaces-${name}.png`) });
  const waitNodes = (want) => page.waitForFunction(
    (want) => { const ids = [...document.querySelectorAll("[data-testid=map-nodes] li")].map((e) => e.dataset.nodeId);
                return want.every((w) => ids.includes(w)); },
    { timeout: 60000 }, want);
  const seen = async () => ({
    url: page.url(),
    expanded: await page.$eval("[data-testid=map]", (e) => e.dataset.expanded || ""),
    nodes: await page.$$eval("[data-testid=map-nodes] li", (els) =>
      els.map((e) => ({ id: e.dataset.nodeId, kind: e.dataset.kind, namespace: e.dataset.namespace || "" }))),
    edges: await page.$$eval("[data-testid=map-edges] li", (els) =>
      els.map((e) => ({ id: e.dataset.edgeId, health: e.dataset.health, error_rate: Number(e.dataset.errorRate) }))),
  });
  const out = { log };

  // Three services are legible expanded, so the automatic rule would not collapse them: the
  // namespace level is asked for (`group=namespace`), as the grouping control does.
  await page.goto(`${base}/?view=map&level=region&since=15m&group=namespace`, { waitUntil: "load" });
  await waitNodes(opts.collapsed);
  out.collapsed = await seen();
  await new Promise((r) => setTimeout(r, 1000));
  await shot("collapsed");

  // Double-click the namespace (in the node list, which mirrors the canvas) to zoom in.
  await page.$eval(`[data-testid=map-nodes] li[data-node-id="namespace:${opts.expand}"]`,
    (e) => e.dispatchEvent(new MouseEvent("dblclick", { bubbles: true })));
  await waitNodes(opts.expanded);
  out.expanded = await seen();
  await new Promise((r) => setTimeout(r, 1000));
  await shot("expanded");

  // The URL holds the expansion.
  await page.reload({ waitUntil: "load" });
  await waitNodes(opts.expanded);
  out.reloaded = await seen();

  // Escape zooms back out to namespaces.
  await page.keyboard.press("Escape");
  await waitNodes([`namespace:${opts.expand}`]);
  out.after_escape = await seen();

  // A merged edge between namespaces explains itself and opens both ends.
  await page.$eval(`[data-testid=map-edges] li[data-edge-id="${opts.merged_edge}"]`, (e) => e.click());
  await page.waitForSelector("[data-testid=namespace-edge-panel]", { timeout: 10000 });
  out.merged_panel = await page.$eval("[data-testid=namespace-edge-panel]", (e) => e.textContent);
  await page.click("[data-testid=namespace-edge-expand]");
  await waitNodes(opts.merged_expanded);
  out.merged_expanded = await seen();
  out.merged_panel_after = await page.$("[data-testid=namespace-edge-panel]") !== null;
  await page.keyboard.press("Escape");
  await waitNodes([`namespace:${opts.expand}`]);

  // Semantic zoom: wheel-zooming in over a namespace node (where the app drew it) opens it.
  await new Promise((r) => setTimeout(r, 1500));
  const target = `namespace:${opts.wheel}`;
  const pos = await page.$eval(`[data-testid=map-nodes] li[data-node-id="${target}"]`, (e) => [Number(e.dataset.x), Number(e.dataset.y)]);
  const box = await (await page.$("[data-testid=map] canvas")).boundingBox();
  await page.mouse.move(box.x + pos[0], box.y + pos[1]);
  for (let i = 0; i < 12 && !(await page.url()).includes("ns="); i++) {
    await page.mouse.wheel({ deltaY: -120 });
    await new Promise((r) => setTimeout(r, 150));
  }
  await waitNodes(opts.wheel_expanded).catch(() => {});
  out.after_wheel = await seen();
  await shot("wheel");
  return out;
}
