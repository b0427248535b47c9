// Starts the UI. A file, not an inline <script>: the query service's Content-Security-Policy
// (script-src 'self' 'wasm-unsafe-eval') refuses inline scripts.
import init, { start_app } from "./orrery_web.js";

// A live map's first graph is the server's longest answer (seconds at thousands of services),
// and the live stream starts with it: the stream is requested here, before the module is
// downloaded and compiled, and the app takes the request over (web/src/stream.rs, `take_early`)
// when its own stream is the same URL with the same token — else it aborts this one. This is
// `UrlState::read` + `UrlState::graph_query` (web/src/route.rs) for the live map only: any other
// page (a fixed window, replay, diff) requests nothing here.
function earlyStream() {
  const p = new URLSearchParams(location.search);
  const group = p.get("group") ?? "";
  if ((p.get("view") ?? "map") !== "map" || p.has("start") || p.get("diff") === "1") return;
  // The groupings the graph API makes (`namespaces::server_group`, `grouping::server_param`);
  // any other value (`none`) asks for none.
  const server = ["namespace", "region", "prefix"].includes(group) || group.startsWith("attr:");
  const by = group === "" ? "auto" : server ? group : null;
  const level = p.get("level") ?? "region";
  const enc = encodeURIComponent;
  let q = `level=${enc(level)}&since=${enc(p.get("since") ?? "5m")}`;
  const region = p.get("region") ?? "";
  if (level === "region" && region !== "") q += `&region=${enc(region)}`;
  if (level === "focused") q += `&service=${enc(p.get("focus") ?? "")}`;
  if (level === "region" && by !== null) {
    q += `&group=${enc(by)}`;
    const ns = p.get("ns") ?? "";
    if (ns !== "") q += `&expand=${enc(ns)}`;
  }
  let token = null;
  try { token = sessionStorage.getItem("orrery.api_token") || null; } catch { /* no storage */ }
  const url = `orrery/api/graph/stream?${q}`;
  const controller = new AbortController();
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  let response;
  try {
    response = fetch(url, { headers, signal: controller.signal });
  } catch { return; }
  // Handled by the app when it takes the request over; an abort is no page error.
  response.catch(() => {});
  const early = { url, token, controller, response };
  window.__orreryEarlyStream = early;
  // Not taken over (the app went elsewhere first): the server's subscription is let go.
  setTimeout(() => {
    if (window.__orreryEarlyStream === early) {
      delete window.__orreryEarlyStream;
      controller.abort();
    }
  }, 20000);
}
earlyStream();

await init({ module_or_path: "./orrery_web_bg.wasm" });
performance.mark("orrery:wasm-ready");
start_app();
