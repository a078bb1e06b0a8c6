#!/usr/bin/env bash
# Set up everything traject needs on a fresh machine, idempotently.
#   scripts/setup.sh          the Python environment (.venv) with traject installed
#   scripts/setup.sh --test   also the system parts the tests use: a Docker daemon and the
#                             sandbox base image, and Chromium
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${TRAJECT_VENV:-$ROOT/.venv}
WANT_TEST=0
for arg in "$@"; do
  case "$arg" in
    --test) WANT_TEST=1 ;;
    *) echo "setup.sh: unknown option $arg (use --test)" >&2; exit 2 ;;
  esac
done

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

pick_python() {
  for py in python3.12 python3.11 python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  echo "setup.sh: traject needs Python 3.11 or later" >&2; return 1
}

# --- the Python environment ----------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  PY=$(pick_python)
  log "creating $VENV with $PY"
  "$PY" -m venv "$VENV"
fi
EXTRAS=dev,verl,serve,interop,ssh
STAMP="$VENV/.traject-installed"
WANT_STAMP=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)-$EXTRAS
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT_STAMP" ]; then
  log "installing Python packages into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  # torch first and exactly: 2.13.0 has a CPU build on these machines; a looser request
  # would pull the newest release with gigabytes of CUDA packages.
  "$VENV/bin/python" -m pip install -q "torch==2.13.0"
  "$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"
  echo "$WANT_STAMP" > "$STAMP"
fi

# --- system parts for the tests ---------------------------------------------------------------
if [ "$WANT_TEST" = 1 ]; then
  need_apt=()
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
  command -v mmdebstrap >/dev/null 2>&1 || need_apt+=(mmdebstrap)
  if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      log "installing Debian packages: ${need_apt[*]}"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    else
      log "WARNING: missing ${need_apt[*]} and not root with apt: tests that need them will be skipped"
    fi
  fi
  if [ -x scripts/setup_docker.sh ]; then
    PYTHON="$VENV/bin/python" scripts/setup_docker.sh || log "WARNING: Docker set-up failed: Docker tests will be skipped"
  fi
fi
log "ready"
