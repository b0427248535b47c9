#!/usr/bin/env bash
# Builds the web UI (web/, Leptos CSR) to web/dist/: wasm32 release build with the size-optimised
# `wasm-release` profile, wasm-bindgen (--target web), wasm-opt -Oz when it is installed, and the
# static pages (index.html, bench.html, style.css).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
OUT=web/dist
cargo build --locked -p orrery-web --target wasm32-unknown-unknown --profile wasm-release
WASM="$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/orrery_web.wasm"
rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp"
wasm-bindgen --target web --no-typescript --out-dir "$OUT.tmp" "$WASM"
if command -v wasm-opt >/dev/null 2>&1; then
  wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
    -o "$OUT.tmp/orrery_web_bg.wasm" "$OUT.tmp/orrery_web_bg.wasm"
fi
cp web/static/* "$OUT.tmp/"
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
printf 'web/dist: %s\n' "$(du -sh "$OUT/orrery_web_bg.wasm" | cut -f1) wasm"
