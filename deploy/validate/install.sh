#!/usr/bin/env bash
# Installs the static validators for deploy/ outside the clone, idempotently, each in its own venv
# (their dependencies conflict: docker-compose 1.29 needs jsonschema<4 and PyYAML<6,
# kubernetes-validate needs jsonschema>=4), and neither may leak into the project's .venv:
#   $ORRERY_CACHE/deploy-compose: docker-compose 1.29 (`config` parses and resolves compose files
#                                 without a Docker engine)
#   $ORRERY_CACHE/deploy-k8s:     kubernetes-validate (Kubernetes JSON schemas shipped in the package)
set -euo pipefail
# Not needed to build or run Orrery (the image build skips them).
[ "${ORRERY_SKIP_DEPLOY_VALIDATORS:-0}" = 1 ] && exit 0
cd "$(dirname "$0")/../.."
source scripts/env.sh
log() { printf '\033[1;34m[install]\033[0m %s\n' "$*"; }

venv() { # name requirements-file [pre-step]
  local dir="$ORRERY_CACHE/$1" reqs="deploy/validate/$2"
  [ -x "$dir/bin/python" ] || python3 -m venv "$dir"
  if ! cmp -s "$reqs" "$dir/.orrery-requirements" 2>/dev/null; then
    log "pip install -r $reqs into $dir"
    local pip=("$dir/bin/pip" install --quiet --disable-pip-version-check)
    if [ "${3:-}" = pyyaml5 ]; then
      # PyYAML 5.4.1 (docker-compose's ceiling) has no wheel for new Pythons and its sdist does
      # not build with Cython 3: build it against Cython 0.29.
      "${pip[@]}" "cython<3" wheel setuptools
      "${pip[@]}" --no-build-isolation "PyYAML==5.4.1"
    fi
    "${pip[@]}" -r "$reqs"
    cp "$reqs" "$dir/.orrery-requirements"
  fi
}
venv deploy-compose requirements-compose.txt pyyaml5
venv deploy-k8s requirements-k8s.txt

# `kubectl kustomize` (or a standalone `kustomize`) builds the kustomization in
# tests/deploy_static.rs (it must refuse to build without the operator's secret files). Not
# installed here: use the distribution's kubectl or https://kubectl.docs.kubernetes.io/installation/kustomize/.
if ! command -v kubectl >/dev/null 2>&1 && ! command -v kustomize >/dev/null 2>&1; then
  log "warning: neither kubectl nor kustomize on PATH: tests/deploy_static.rs needs one"
fi
