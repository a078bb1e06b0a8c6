#!/usr/bin/env bash
# Make a Docker daemon answer and the base sandbox image exist. Idempotent: safe to run
# before every test run (the image build is skipped when its content tag already exists).
#
#   - a daemon answers already: use it;
#   - otherwise, as root: install Debian's docker.io if missing, then start
#     `dockerd --bridge=none --iptables=false` in the background and wait for it;
#   - as root: install Debian's openssh-server if missing (the ssh:// docker host tests start
#     an sshd of their own on 127.0.0.1; no system sshd is started);
#   - build the base image (`python -m traject.sandboxes.images build`): from a Dockerfile
#     when a registry answers, else mmdebstrap (installed if missing) with this host's apt
#     sources + docker import. The root filesystem is cached under ~/.cache/traject.
#   - build the trixie base, and from it the image with the published harbor package that the
#     Harbor interop test runs (pip, through this host's package-index settings).
#
# Environment: PYTHON (interpreter with traject importable; default: .venv/bin/python, else
# python3), DOCKERD_LOG (default /tmp/dockerd.log), DOCKER_WAIT_S (default 60).
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
DOCKERD_LOG="${DOCKERD_LOG:-/tmp/dockerd.log}"
DOCKER_WAIT_S="${DOCKER_WAIT_S:-60}"

say() { echo "setup_docker: $*" >&2; }

daemon_up() { docker info >/dev/null 2>&1; }

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 || {
    apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends "$@" >/dev/null
  }
}

if ! daemon_up; then
  if [ "$(id -u)" != 0 ]; then
    say "no Docker daemon answers and this is not root: Docker tests will be skipped"
    exit 0
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    say "installing docker.io"
    apt_install docker.io
  fi
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    say "starting dockerd (log: $DOCKERD_LOG)"
    setsid nohup dockerd --bridge=none --iptables=false >"$DOCKERD_LOG" 2>&1 </dev/null &
  fi
  for _ in $(seq 1 "$DOCKER_WAIT_S"); do
    daemon_up && break
    sleep 1
  done
  if ! daemon_up; then
    say "dockerd did not answer within ${DOCKER_WAIT_S}s; last lines of $DOCKERD_LOG:"
    tail -20 "$DOCKERD_LOG" >&2 || true
    exit 1
  fi
fi

if [ "$(id -u)" = 0 ] && [ ! -x /usr/sbin/sshd ]; then
  # the ssh:// docker host tests start their own sshd on 127.0.0.1 (traject/testing/ssh_server.py)
  say "installing openssh-server (its system service is not started)"
  no_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && no_policy=1
  fi
  apt_install openssh-server || say "could not install openssh-server: the ssh host tests will be skipped"
  if [ "$no_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

if [ "$(id -u)" = 0 ] && ! command -v mmdebstrap >/dev/null 2>&1; then
  # only needed when no registry answers; cheap to have
  say "installing mmdebstrap"
  apt_install mmdebstrap || say "could not install mmdebstrap (fine if a registry answers)"
fi

PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m traject.sandboxes.images build
# The SWE tests run one instance on Python 3.13, whose image is built on trixie: build that
# base here too (once; later runs find it by its content tag), so the suite's time is the tests'.
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m traject.sandboxes.images build --suite trixie \
  || say "could not build the trixie base image: the Python 3.13 SWE test will build it"
# The Harbor interop test runs the published harbor package (Python >= 3.12) in an image derived
# from the trixie base with pip: build it here too (once; needs the package index).
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m traject.testing.harbor_reference \
  || say "could not build the harbor reference image: the Harbor interop test will try to build it"
