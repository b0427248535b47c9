// The browser half of tests/web_auth.rs: the UI of a query service started with --api-token.
// The browser talks to the service through a small proxy of this script, which records what
// went over the wire (URL, Authorization header) and can cut the live streams (a network drop).
// Reports what it saw; the Rust test asserts.
import http from "node:http";
import path from "node:path";

function startProxy(base) {
  const target = new URL(base);
  const seen = [];
  const served = {};
  const streams = new Set();
  const srv = http.createServer((req, res) => {
    const entry = { url: req.url, auth: req.headers.authorization || null, status: 0 };
    seen.push(entry);
    const up = http.request(
      { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
      (r) => {
        entry.status = r.statusCode;
        const headers = { ...r.headers };
        const csp = headers["content-security-policy"];
        if (csp) {
          // Enforce the served policy without any 'unsafe-inline' / 'unsafe-eval' it may allow,
          // so the test proves the UI needs neither ('wasm-unsafe-eval' is kept).
          headers["content-security-policy"] = csp.replace(/\s*'unsafe-(inline|eval)'/g, "");
          if (req.url === "/" || req.url.startsWith("/?")) served.csp = csp;
        }
        res.writeHead(r.statusCode, headers);
        r.pipe(res);
      });
    up.on("error", () => res.destroy());
    req.pipe(up);
    if (req.url.startsWith("/orrery/api/graph/stream")) {
      const s = { res, up };
      streams.add(s);
      res.on("close", () => { streams.delete(s); up.destroy(); });
    }
  });
  // Drops every open stream connection without an HTTP ending, as a broken network would.
  const cut = () => { const n = streams.size; for (const s of streams) { s.res.socket?.destroy(); s.up.destroy(); } return n; };
  return new Promise((resolve) => srv.listen(0, "127.0.0.1", () =>
    resolve({ srv, seen, served, cut, url: `http://127.0.0.1:${srv.address().port}` })));
}

export async function auth(browser, base, artifacts, opts) {
  const proxy = await startProxy(base);
  const out = { log: [], csp_violations: [] };
  const shot = (p, name) => p.screenshot({ path: path.join(artifacts, `auth-${name}.png`) });
  const watch = async (p) => {
    p.on("pageerror", (e) => out.log.push(`pageerror: ${e}`));
    p.on("console", (m) => {
      const t = m.text();
      if (m.type() === "error") out.log.push(`console: ${t}`);
      if (/Content Security Policy/i.test(t)) out.csp_violations.push(`console: ${t}`);
    });
    // Registered before any page script runs (CDP scripts are not subject to the page's CSP).
    await p.evaluateOnNewDocument(() => {
      document.addEventListener("securitypolicyviolation", (e) =>
        console.error(`Content Security Policy violation: ${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
    });
  };
  const mark = () => proxy.seen.length;
  const apiSince = (from) => proxy.seen.slice(from).filter((r) => r.url.startsWith("/orrery/api/"));
  const nodeIds = (p) => p.$$eval("[data-testid=map-nodes] li", (els) => els.map((e) => e.dataset.nodeId));
  const hasNode = (p, id) => p.waitForFunction((id) =>
    [...document.querySelectorAll("[data-testid=map-nodes] li")].some((e) => e.dataset.nodeId === id), { timeout: 60000 }, id);
  const signInOpen = (p) => p.evaluate(() => !!document.querySelector("[data-testid=sign-in]"));
  const post = async (body) => {
    const res = await fetch(opts.otlp, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${opts.otlp_token}` }, body });
    if (!res.ok) throw new Error(`OTLP post: ${res.status} ${await res.text()}`);
  };
  const mapUrl = `${proxy.url}/?view=map&level=region&since=15m`;

  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 900 });
    await watch(page);

    // 1. No token yet: the first API answer (401) opens the sign-in form.
    const first = await page.goto(mapUrl, { waitUntil: "load" });
    out.csp_served = proxy.served.csp || null;
    out.csp_enforced = first.headers()["content-security-policy"] || null;
    await page.waitForSelector("[data-testid=sign-in]", { timeout: 30000 });
    out.prompt = await page.$eval("[data-testid=sign-in-why]", (e) => e.textContent);
    out.form = await page.evaluate(() => {
      const f = document.querySelector("[data-testid=sign-in]");
      const input = document.querySelector("[data-testid=sign-in-token]");
      return {
        role: f.getAttribute("role"), modal: f.getAttribute("aria-modal"),
        title: document.getElementById(f.getAttribute("aria-labelledby"))?.textContent,
        label: input.labels[0]?.textContent, type: input.type, focused: document.activeElement === input,
        // Modal: the page behind is inert.
        behind_inert: document.querySelector("header.top").inert && document.querySelector(".view").inert,
      };
    });
    out.map_status_401 = await page.$eval("[data-testid=map-status]", (e) => e.textContent).catch(() => "");
    await shot(page, "sign-in");

    // 2. A wrong token is refused and not kept.
    await page.type("[data-testid=sign-in-token]", opts.wrong);
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelector("[data-testid=sign-in-error]")?.textContent.length > 0, { timeout: 20000 });
    out.refused = await page.$eval("[data-testid=sign-in-error]", (e) => e.textContent);
    out.open_after_wrong = await signInOpen(page);
    out.stored_after_wrong = await page.evaluate(() => sessionStorage.getItem("orrery.api_token"));
    await shot(page, "refused");
    // A token no HTTP header can carry (beyond Latin-1) is an error in the form, not a crash.
    await page.$eval("[data-testid=sign-in-token]", (e) => { e.value = ""; });
    await page.type("[data-testid=sign-in-token]", "t€ken");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => /header/.test(document.querySelector("[data-testid=sign-in-error]")?.textContent), { timeout: 20000 });
    out.unsendable = await page.$eval("[data-testid=sign-in-error]", (e) => e.textContent);

    // 3. The right token: the form closes, the map loads with data.
    const signedFrom = mark();
    await page.$eval("[data-testid=sign-in-token]", (e) => { e.value = ""; });
    // Pasted with blanks around it: trimmed.
    await page.type("[data-testid=sign-in-token]", `  ${opts.token} `);
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => !document.querySelector("[data-testid=sign-in]"), { timeout: 20000 });
    for (const n of opts.nodes) await hasNode(page, n);
    out.map_nodes = await nodeIds(page);
    out.storage = await page.evaluate(() => ({
      session: sessionStorage.getItem("orrery.api_token"),
      local: JSON.stringify(Object.entries(localStorage)),
      cookie: document.cookie, url: location.href,
    }));
    out.sign_out_shown = await page.evaluate(() => !!document.querySelector("[data-testid=sign-out]"));
    out.inert_after = await page.evaluate(() => document.querySelector("header.top").inert || document.querySelector(".view").inert);

    // 4. The live stream (with the token) delivers a new service.
    await page.waitForFunction(() => document.querySelector("[data-testid=map]").dataset.stream === "live", { timeout: 30000 });
    await post(opts.live_body);
    await hasNode(page, opts.live_node);
    out.live_nodes = await nodeIds(page);

    // 5. The network drops the stream: the UI says so, reconnects (with the token), and updates
    //    flow again.
    const cutFrom = mark();
    out.cut_streams = proxy.cut();
    await page.waitForFunction(() => document.querySelector("[data-testid=map]").dataset.stream === "retrying", { timeout: 20000, polling: "mutation" });
    out.retry_status = await page.$eval("[data-testid=stream-status]", (e) => e.textContent).catch(() => "");
    await page.waitForFunction(() => document.querySelector("[data-testid=map]").dataset.stream === "live", { timeout: 40000 });
    out.reconnects = apiSince(cutFrom).filter((r) => r.url.startsWith("/orrery/api/graph/stream"));
    await post(opts.after_cut_body);
    await hasNode(page, opts.after_cut_node);
    await shot(page, "live");

    // 6. Other views: the node panel, trace search, a trace (every fetch carries the token).
    await page.$eval(`[data-testid=map-nodes] li[data-node-id=${opts.nodes[1]}]`, (e) => e.click());
    await page.waitForSelector("[data-testid=node-panel] [data-testid=node-histogram] .hbar", { timeout: 20000 });
    await page.goto(`${proxy.url}/?view=traces&service=${opts.nodes[1]}&since=15m`, { waitUntil: "load" });
    await page.waitForSelector(".result", { timeout: 30000 });
    out.search_results = await page.$$eval(".result", (els) => els.length);
    await page.click(".result");
    await page.waitForSelector(".wf-row", { timeout: 30000 });
    out.trace_rows = await page.$$eval(".wf-row", (els) => els.length);
    out.trace_truncated = await page.$eval("[data-testid=trace-truncated]", (e) => e.textContent).catch(() => null);
    await shot(page, "trace");

    // 7. A reload keeps the tab signed in: no form, the map loads.
    await page.goto(mapUrl, { waitUntil: "load" });
    const reloadFrom = mark();
    await page.reload({ waitUntil: "load" });
    for (const n of opts.nodes) await hasNode(page, n);
    out.reload_sign_in = await signInOpen(page);
    out.reload_401 = apiSince(reloadFrom).filter((r) => r.status === 401).length;
    const signedApi = apiSince(signedFrom);
    out.signed_requests = signedApi.length;
    // Which endpoints were called (path, ids replaced by ":id"), for the assertion that every
    // kind of request of the UI was covered.
    out.signed_paths = [...new Set(signedApi.map((r) => r.url.split("?")[0].replace(/^(\/orrery\/api\/(nodes|traces)\/).+$/, "$1:id")))].sort();
    out.signed_without_token = signedApi.filter((r) => r.auth !== `Bearer ${opts.token}`).map((r) => r.url);
    out.stream_requests = signedApi.filter((r) => r.url.startsWith("/orrery/api/graph/stream")).map((r) => ({ url: r.url, auth: r.auth }));

    // 8. A new tab does not inherit the token (sessionStorage is per tab).
    const tab = await browser.newPage();
    await watch(tab);
    await tab.goto(mapUrl, { waitUntil: "load" });
    await tab.waitForSelector("[data-testid=sign-in]", { timeout: 30000 });
    out.new_tab_prompt = await tab.$eval("[data-testid=sign-in-why]", (e) => e.textContent);
    await tab.close();

    // 9. Sign out: the token is forgotten and the form is back.
    await page.click("[data-testid=sign-out]");
    await page.waitForSelector("[data-testid=sign-in]", { timeout: 30000 });
    out.after_sign_out = {
      prompt: await page.$eval("[data-testid=sign-in-why]", (e) => e.textContent),
      stored: await page.evaluate(() => sessionStorage.getItem("orrery.api_token")),
      sign_out_shown: await page.evaluate(() => !!document.querySelector("[data-testid=sign-out]")),
    };

    // 10. A kept token the server no longer accepts (rotated): the form says so, it is dropped.
    await page.evaluate(() => sessionStorage.setItem("orrery.api_token", "rotated-away"));
    await page.reload({ waitUntil: "load" });
    await page.waitForSelector("[data-testid=sign-in]", { timeout: 30000 });
    out.stale = {
      prompt: await page.$eval("[data-testid=sign-in-why]", (e) => e.textContent),
      stored: await page.evaluate(() => sessionStorage.getItem("orrery.api_token")),
    };
    await shot(page, "stale");

    out.urls_with_token = proxy.seen.filter((r) => r.url.includes(opts.token) || r.url.includes("access_token")).map((r) => r.url);
    out.requests_total = proxy.seen.length;
    return out;
  } finally {
    proxy.srv.closeAllConnections?.();
    proxy.srv.close();
  }
}

// Two tabs against a service allowing one live stream (--query-max-streams 1): the second tab
// still shows the map (the graph fetch is not a stream), says why its live updates wait, and
// honours the 429's Retry-After instead of retrying every second; when the first tab closes it
// connects. Reports timings and the stream requests of the second tab.
export async function streamcap(browser, base, artifacts, opts) {
  const proxy = await startProxy(base);
  const out = { log: [] };
  const mapUrl = `${proxy.url}/?view=map&level=region&since=15m`;
  const stateIs = (p, s, timeout) => p.waitForFunction((s) => document.querySelector("[data-testid=map]")?.dataset.stream === s,
    { timeout, polling: "mutation" }, s);
  try {
    const a = await browser.newPage();
    a.on("pageerror", (e) => out.log.push(`pageerror: ${e}`));
    await a.goto(mapUrl, { waitUntil: "load" });
    await stateIs(a, "live", 30000);
    const from = proxy.seen.length;
    const b = await browser.newPage();
    b.on("pageerror", (e) => out.log.push(`pageerror: ${e}`));
    await b.setViewport({ width: 1400, height: 900 });
    await b.goto(mapUrl, { waitUntil: "load" });
    await stateIs(b, "retrying", 30000);
    const refusedAt = Date.now();
    out.status = await b.$eval("[data-testid=stream-status]", (e) => e.textContent);
    // The graph itself is a plain fetch: the map is drawn while live updates wait.
    await b.waitForFunction(() => document.querySelectorAll("[data-testid=map-nodes] li").length >= 4, { timeout: 30000 });
    out.nodes = await b.$$eval("[data-testid=map-nodes] li", (els) => els.map((e) => e.dataset.nodeId));
    await b.screenshot({ path: path.join(artifacts, "auth-stream-cap.png") });
    await a.close();
    await stateIs(b, "live", 90000);
    out.live_after_ms = Date.now() - refusedAt;
    out.b_streams = proxy.seen.slice(from).filter((r) => r.url.startsWith("/orrery/api/graph/stream")).map((r) => r.status);
    return out;
  } finally {
    proxy.srv.closeAllConnections?.();
    proxy.srv.close();
  }
}
