// The map's renderer worker (web/src/map/gl/worker.rs): instantiates the page's module and
// draws the map canvas the page handed over. A file, not a blob: the Content-Security-Policy
// allows scripts from 'self' only. The page's first message (`init`) carries the module it
// compiled (`module`), so the worker neither downloads nor compiles the 4 MB again — CPU the
// first graph's server would otherwise share with it; without one it loads the file.
// Messages that arrive while the module instantiates are kept.
import init, { gl_worker_start } from "./orrery_web.js";
const early = [];
let started = false;
self.onmessage = async (e) => {
  early.push(e.data);
  if (started) return;
  started = true;
  const module = e.data && e.data.module;
  await init({ module_or_path: module instanceof WebAssembly.Module ? module : "./orrery_web_bg.wasm" });
  gl_worker_start(early);
};
