# Shared settings for Orrery's scripts. Build caches and tools live outside the clone so that
# repeated runs (and CI in a fresh clone) stay fast.
export ORRERY_CACHE="${ORRERY_CACHE:-$HOME/.cache/orrery}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ORRERY_CACHE/target}"
export ORRERY_TOOLS="${ORRERY_TOOLS:-$ORRERY_CACHE/tools}"
export ORRERY_VENV="${ORRERY_VENV:-$PWD/.venv}"
export ORRERY_CHDB_PYTHON="${ORRERY_CHDB_PYTHON:-$ORRERY_VENV/bin/python}"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/pip}"
export npm_config_cache="${npm_config_cache:-$HOME/.cache/npm}"
export PATH="$ORRERY_TOOLS/bin:$HOME/.cargo/bin:$PATH"
mkdir -p "$ORRERY_CACHE" "$ORRERY_TOOLS"
