// The map's renderer worker (web/src/map/gl/worker.rs): loads the same module as the page and
// draws the map canvas the page handed over. A file, not a blob: the Content-Security-Policy
// allows scripts from 'self' only. Messages that arrive while the module loads are kept.
import init, { gl_worker_start } from "./orrery_web.js";
const early = [];
self.onmessage = (e) => early.push(e.data);
await init({ module_or_path: "./orrery_web_bg.wasm" });
gl_worker_start(early);
