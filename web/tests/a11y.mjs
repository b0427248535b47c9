// axe-core accessibility audit shared by the browser tests (map and trace pages).
// The UI's CSP forbids inline scripts, so axe's source is evaluated over the DevTools protocol
// (page.evaluate is not subject to the page's CSP) instead of being injected as a <script>.
import fs from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const AXE_SOURCE = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

// Runs axe on `page` (optionally only inside `selector`) and returns the violations whose impact
// is serious or critical, reduced to what a failing test should print: rule id, impact, help and
// the first few offending nodes' selectors.
export async function seriousViolations(page, selector) {
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async (sel) => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(sel ? document.querySelector(sel) : document, {
      resultTypes: ["violations"],
    });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
    }));
  }, selector || null);
  return result.filter((v) => v.impact === "serious" || v.impact === "critical");
}
