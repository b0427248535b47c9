// Starts the UI. A file, not an inline <script>: the query service's Content-Security-Policy
// (script-src 'self' 'wasm-unsafe-eval') refuses inline scripts.
import init, { start_app } from "./orrery_web.js";
await init({ module_or_path: "./orrery_web_bg.wasm" });
start_app();
