#!/usr/bin/env bash
# Install everything LiGAN needs into the project-local virtual environment (.venv).
# Idempotent: a second run only checks. Debian packages are installed when run as root.
#   LIGAN_TENSORFLOW=cpu|cuda   TensorFlow build (default cpu; cuda for GPU clusters)
#   LIGAN_VENV=PATH             where the virtual environment lives (default <checkout>/.venv)
#   PYTHON=python3.11           the interpreter to build the environment from
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${LIGAN_VENV:-$ROOT/.venv}
FLAVOUR=${LIGAN_TENSORFLOW:-cpu}
PYTHON=${PYTHON:-python3}
# Debian packages the project needs: SLURM and munge for the single-node development cluster
# (setup/slurm/) that the integration tests use; Chromium arrives with the web UI tests.
DEBIAN_PACKAGES=(slurm-wlm munge chromium fonts-dejavu-core)

log() { printf '[ligan setup] %s\n' "$*" >&2; }

case "$FLAVOUR" in cpu|cuda) ;; *) log "LIGAN_TENSORFLOW must be cpu or cuda, not '$FLAVOUR'"; exit 2;; esac

install_debian() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]} (run this script as root, or: sudo apt-get install ${missing[*]})"
    return 1
  fi
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

if ((${#DEBIAN_PACKAGES[@]})); then install_debian "${DEBIAN_PACKAGES[@]}"; fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  log "LiGAN needs Python 3.11 or newer as '$PYTHON' (set PYTHON=/path/to/python3.11)"; exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    install_debian python3-venv
    "$PYTHON" -m venv "$VENV"
  fi
fi

stamp="$VENV/.ligan-installed"
want="$FLAVOUR $(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing Python packages (TensorFlow: $FLAVOUR); the first time takes a few minutes"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e "$ROOT[$FLAVOUR,dev]"
  echo "$want" > "$stamp"
fi
