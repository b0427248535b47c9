// Starts the map bench (bench.html); a file because the CSP refuses inline scripts.
import init, { run_bench } from "./orrery_web.js";
await init({ module_or_path: "./orrery_web_bg.wasm" });
run_bench();
