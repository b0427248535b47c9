#!/usr/bin/env bash
# Installs everything Orrery needs on a Debian 12 machine, idempotently: Chromium (browser
# tests), the wasm32 target and wasm-bindgen-cli at the exact version the lockfile pins, a
# project-local Python venv with the pinned chDB engine and the official OpenTelemetry Python
# SDK (test client), and the official Node OpenTelemetry SDK (test client).
# Re-running it is cheap: every step checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/env.sh
source scripts/env.sh

log() { printf '\033[1;34m[install]\033[0m %s\n' "$*"; }

# --- Debian packages -------------------------------------------------------------------------
need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ] && [ "${ORRERY_SKIP_APT:-0}" != 1 ]; then
  log "apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# --- Rust: wasm target and wasm-bindgen-cli ------------------------------------------------
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
if [ -f Cargo.lock ]; then
  WB_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock)
  if [ -n "${WB_VERSION}" ]; then
    have=$("$ORRERY_TOOLS/bin/wasm-bindgen" --version 2>/dev/null | awk '{print $2}' || true)
    if [ "$have" != "$WB_VERSION" ]; then
      log "cargo install wasm-bindgen-cli@$WB_VERSION"
      # --locked can ask for a dependency version the registry index does not serve yet;
      # fall back to a fresh resolution then (the CLI version itself stays exact).
      cargo install --locked --quiet --root "$ORRERY_TOOLS" "wasm-bindgen-cli@$WB_VERSION" ||
        cargo install --quiet --root "$ORRERY_TOOLS" "wasm-bindgen-cli@$WB_VERSION"
    fi
  fi
fi

# --- Python venv: chDB (the embedded engine) and the OpenTelemetry Python SDK (test client) ----
if [ ! -x "$ORRERY_VENV/bin/python" ]; then
  log "python3 -m venv $ORRERY_VENV"
  python3 -m venv "$ORRERY_VENV"
fi
if ! cmp -s scripts/requirements.txt "$ORRERY_VENV/.orrery-requirements" 2>/dev/null; then
  log "pip install -r scripts/requirements.txt (chdb-core is ~500 MB the first time)"
  "$ORRERY_VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements.txt
  cp scripts/requirements.txt "$ORRERY_VENV/.orrery-requirements"
fi

# --- Node: the official OpenTelemetry JS SDK (test client) -----------------------------------
if [ -f tests/clients/package.json ]; then
  if ! cmp -s tests/clients/package-lock.json tests/clients/node_modules/.package-lock.json 2>/dev/null; then
    log "npm ci in tests/clients"
    (cd tests/clients && { [ -f package-lock.json ] && npm ci --silent --no-audit --no-fund || npm install --silent --no-audit --no-fund; })
  fi
fi
# --- Node: puppeteer-core drives /usr/bin/chromium for the web UI's browser tests ------------
if [ -f web/tests/package.json ]; then
  if ! cmp -s web/tests/package-lock.json web/tests/node_modules/.package-lock.json 2>/dev/null; then
    log "npm ci in web/tests"
    (cd web/tests && { [ -f package-lock.json ] && npm ci --silent --no-audit --no-fund || npm install --silent --no-audit --no-fund; })
  fi
fi
# --- Static validators for deploy/ (docker-compose, kubernetes-validate), own venvs ---------
if [ -f deploy/validate/install.sh ]; then
  bash deploy/validate/install.sh
fi
log "ready (venv: $ORRERY_VENV, tools: $ORRERY_TOOLS, target: $CARGO_TARGET_DIR)"
