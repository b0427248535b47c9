// A control for the map bench's long tasks (docs/benchmarks.md, "The map at 2,000 real
// services"): a bare WebGL2 canvas of the map's size in the same headless Chromium (SwiftShader),
// no app, drawing per frame: nothing but a clear, one full-canvas quad, 3,000 points, 500 random
// lines, and 5,000 random lines. Prints fps and long tasks (> 50 ms) per mode over 10 s each.
//   node web/tests/gl_control.mjs
import puppeteer from "puppeteer-core";
import fs from "node:fs"; import os from "node:os"; import path from "node:path";
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "gl-"));
const browser = await puppeteer.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true, userDataDir,
  args: ["--no-sandbox","--disable-gpu","--disable-quic","--no-first-run","--enable-unsafe-swiftshader","--window-size=1280,900"] });
const out = {};
for (const mode of ["clear", "tri2", "points3000", "lines500", "lines"]) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  await page.evaluateOnNewDocument(() => { window.__long = []; new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push(Math.round(e.duration)); }).observe({ type: "longtask", buffered: true }); });
  await page.setContent(`<canvas id=c width=1030 height=720 style="width:1030px;height:720px"></canvas>`);
  const r = await page.evaluate(async (mode) => {
    window.__long = []; new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push(Math.round(e.duration)); }).observe({ type: "longtask" });
    const c = document.getElementById("c");
    const gl = c.getContext("webgl2", { alpha: false, antialias: false, depth: false });
    const vs = gl.createShader(gl.VERTEX_SHADER); gl.shaderSource(vs, "#version 300 es\nin vec2 p; void main(){gl_Position=vec4(p,0,1); gl_PointSize=8.0;}"); gl.compileShader(vs);
    const fs = gl.createShader(gl.FRAGMENT_SHADER); gl.shaderSource(fs, "#version 300 es\nprecision mediump float; out vec4 o; void main(){o=vec4(0.3,0.6,0.9,0.5);}"); gl.compileShader(fs);
    const pr = gl.createProgram(); gl.attachShader(pr, vs); gl.attachShader(pr, fs); gl.linkProgram(pr); gl.useProgram(pr);
    const n = 5000, a = new Float32Array(n * 4); for (let i = 0; i < a.length; i++) a[i] = Math.random() * 2 - 1; a.set([-1,-1, 1,-1, 1,1, -1,-1, 1,1, -1,1]);
    const b = gl.createBuffer(); gl.bindBuffer(gl.ARRAY_BUFFER, b); gl.bufferData(gl.ARRAY_BUFFER, a, gl.STATIC_DRAW);
    gl.enableVertexAttribArray(0); gl.vertexAttribPointer(0, 2, gl.FLOAT, false, 0, 0);
    let frames = 0; const t0 = performance.now();
    await new Promise((done) => { const tick = () => { frames++;
        if (mode !== "none") { gl.clearColor(0.05, 0.05, 0.1, 1); gl.clear(gl.COLOR_BUFFER_BIT); }
        if (mode === "lines") gl.drawArrays(gl.LINES, 0, n * 2);
        if (mode === "tri2") gl.drawArrays(gl.TRIANGLES, 0, 6);
        if (mode === "points3000") gl.drawArrays(gl.POINTS, 0, 3000);
        if (mode === "lines500") gl.drawArrays(gl.LINES, 0, 1000);
        if (performance.now() - t0 < 10000) requestAnimationFrame(tick); else done(); };
      requestAnimationFrame(tick); });
    return { frames, fps: frames / ((performance.now() - t0) / 1000) };
  }, mode);
  const long = await page.evaluate(() => window.__long);
  long.sort((x, y) => x - y);
  out[mode] = { ...r, long_tasks: long.length, median_ms: long[Math.floor(long.length / 2)] || 0, max_ms: long[long.length - 1] || 0 };
  await page.close();
}
console.log(JSON.stringify(out));
await browser.close();
