#!/usr/bin/env bash
# The run command (README): installs whatever is missing, builds Orrery in release mode with its
# web UI, and starts it all-in-one: OTLP on :4317 (gRPC) and :4318 (HTTP), UI and API on
# http://localhost:16686, embedded ClickHouse with data in ./data (or $ORRERY_DATA_DIR).
# Extra arguments go to `orrery` (e.g. `bash scripts/start.sh demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/install.sh
cargo build --locked --release --bin orrery
if [ -f scripts/build-web.sh ]; then
  bash scripts/build-web.sh
fi
exec "$CARGO_TARGET_DIR/release/orrery" "$@"
