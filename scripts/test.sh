#!/usr/bin/env bash
# The test command (README, and what CI runs via .ci/run): installs whatever is missing, builds
# everything (binary and the WASM UI), checks formatting and lints, and runs every test —
# unit, integration against the real embedded ClickHouse, third-party OpenTelemetry clients
# (Python, Node) and headless-Chromium browser tests all run under `cargo test`; the web UI's
# native unit tests in a step of their own.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
step() { printf '\n\033[1;32m[test]\033[0m %s\n' "$*"; }

step "install prerequisites"
bash scripts/install.sh
step "cargo fmt --check"
cargo fmt --all -- --check
step "build"
cargo build --locked --all-targets
if [ -x scripts/build-web.sh ] || [ -f scripts/build-web.sh ]; then
  step "build the web UI"
  bash scripts/build-web.sh
fi
step "clippy"
cargo clippy --locked --all-targets -- -D warnings
if grep -q '^leptos' web/Cargo.toml 2>/dev/null; then
  cargo clippy --locked -p orrery-web --target wasm32-unknown-unknown -- -D warnings
fi
step "cargo test"
cargo test --locked --no-fail-fast "$@"
# The web UI is not a default member (its binary is WASM), so the workspace's `cargo test` does
# not run its unit tests (layout, encodings, pacing, the stream parser…): they run natively here.
step "the web UI's unit tests (native)"
cargo clippy --locked -p orrery-web --all-targets -- -D warnings
cargo test --locked --no-fail-fast -p orrery-web
step "all tests passed"
