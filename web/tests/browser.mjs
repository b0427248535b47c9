// Drives headless Debian Chromium for the web UI's browser tests (tests/web_*.rs run this).
//   node browser.mjs bench <dist-dir> <artifacts-dir> [query]   → prints the bench JSON
//   node browser.mjs mesh <base-url> <artifacts-dir> <opts.json>  → a big map's figures (mesh.mjs)
//   node browser.mjs e2e|namespaces|auth|streamcap|bigtrace|traces|empty|mapux|chaos|crowded <base-url> <artifacts-dir> <opts.json> → prints observations JSON
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import os from "node:os";
import puppeteer from "puppeteer-core";

const [mode, target, artifacts, extra] = process.argv.slice(2);
fs.mkdirSync(artifacts, { recursive: true });

const MIME = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css" };
function serve(dir) {
  return new Promise((resolve) => {
    const srv = http.createServer((req, res) => {
      const p = path.join(dir, decodeURIComponent(new URL(req.url, "http://x").pathname));
      if (!p.startsWith(dir) || !fs.existsSync(p) || fs.statSync(p).isDirectory()) {
        res.writeHead(404).end("not found");
        return;
      }
      res.writeHead(200, { "content-type": MIME[path.extname(p)] || "application/octet-stream" });
      fs.createReadStream(p).pipe(res);
    });
    srv.listen(0, "127.0.0.1", () => resolve(srv));
  });
}

async function launch() {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "orrery-chromium-"));
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    userDataDir,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      // WebGL2 on the CPU (SwiftShader) since there is no GPU.
      "--enable-unsafe-swiftshader", "--window-size=1280,900",
    ],
  });
  return { browser, userDataDir };
}

async function bench() {
  const dir = path.resolve(target);
  const srv = await serve(dir);
  const { browser, userDataDir } = await launch();
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => errors.push(`${m.type()}: ${m.text()}`));
    const url = `http://127.0.0.1:${srv.address().port}/bench.html${extra ? "?" + extra : ""}`;
    await page.goto(url, { waitUntil: "load" });
    try {
      await page.waitForSelector("#bench-result[data-done=true]", { timeout: 400000 });
    } catch (e) {
      throw new Error(`bench did not finish: ${e}; status: ${await page.$eval("#bench-status", (el) => el.textContent).catch(() => "?")}; page log: ${errors.join(" | ")}`);
    }
    const json = await page.$eval("#bench-result", (el) => el.textContent);
    await page.screenshot({ path: path.join(artifacts, `bench${extra ? "-" + extra.replace(/[^a-z0-9]+/gi, "_") : ""}.png`) });
    process.stdout.write(json + "\n");
  } finally {
    await browser.close();
    srv.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

if (mode === "bench") {
  await bench();
} else if (mode === "mesh") {
  // A big mesh's map measured (web/tests/mesh.mjs; tests/web_mesh.rs, benches/map_mesh.rs).
  const { mesh } = await import("./mesh.mjs");
  const { browser, userDataDir } = await launch();
  try {
    process.stdout.write(JSON.stringify(await mesh(browser, target, artifacts, JSON.parse(extra || "{}"))) + "\n");
  } finally {
    await browser.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
} else if (["e2e", "bigtrace", "namespaces", "auth", "streamcap", "traces", "empty", "mapux", "chaos", "crowded"].includes(mode)) {
  const file = { namespaces: "./namespaces.mjs", auth: "./auth.mjs", streamcap: "./auth.mjs", traces: "./traces.mjs",
    empty: "./map_ux.mjs", mapux: "./map_ux.mjs", chaos: "./map_ux.mjs", crowded: "./map_ux.mjs" }[mode] || "./e2e.mjs";
  const mod = await import(file);
  const e2e = mod[mode];
  const { browser, userDataDir } = await launch();
  try {
    const out = await e2e(browser, target, artifacts, JSON.parse(extra || "{}"));
    process.stdout.write(JSON.stringify(out) + "\n");
  } finally {
    await browser.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
} else {
  console.error("usage: browser.mjs bench|e2e ...");
  process.exit(2);
}
