// Times the real Jaeger UI (the prebuilt one in ../shared/jaeger-ui, see its README) opening a
// trace that Orrery serves, for benches/big_trace.rs (ORRERY_BENCH_JAEGER_UI=<that dir>):
//   node jaeger_ui.mjs <jaeger-ui dir> <orrery base url> <trace id> <opens>
// Starts the UI's own static server + proxy (serve.mjs, /api/* → Orrery's query port, where the
// Jaeger-compatible /api/traces/{id} is), then opens /trace/<id> once to warm up and <opens>
// times, each in a fresh browser, timing navigation → the first span rows (`.span-row`) in the
// DOM, as the Orrery bench times its own waterfall. Prints one JSON line.
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import puppeteer from "puppeteer-core";

const [dir, backend, trace, opensArg] = process.argv.slice(2);
const opens = Number(opensArg || 5);

const freePort = () => new Promise((resolve) => {
  const s = net.createServer();
  s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
});

const port = await freePort();
const server = spawn(process.execPath, [path.join(dir, "serve.mjs"), "--port", String(port), "--backend", backend],
  { stdio: ["ignore", "pipe", "pipe"] });
await new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error("serve.mjs did not start")), 20000);
  server.stdout.on("data", (d) => { if (String(d).includes("jaeger-ui on")) { clearTimeout(t); resolve(); } });
  server.on("exit", (c) => reject(new Error(`serve.mjs exited ${c}`)));
});

async function openOnce() {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "orrery-jui-"));
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    userDataDir,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--enable-unsafe-swiftshader", "--window-size=1280,900"],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 900 });
    const t0 = Date.now();
    await page.goto(`http://127.0.0.1:${port}/trace/${trace}`, { waitUntil: "load" });
    await page.waitForSelector(".span-row", { timeout: 180000 });
    const open_ms = Date.now() - t0;
    const total = await page.evaluate(() => {
      const m = /Total Spans\s*:?\s*(\d+)/.exec(document.body.innerText);
      return m ? Number(m[1]) : null;
    });
    const dom_rows = await page.$$eval(".span-row", (els) => els.length);
    return { open_ms, total_spans: total, dom_rows };
  } finally {
    await browser.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

try {
  const warm = await openOnce();
  const runs = [];
  for (let k = 0; k < opens; k++) runs.push(await openOnce());
  process.stdout.write(JSON.stringify({ warm, runs }) + "\n");
} finally {
  server.kill();
}
