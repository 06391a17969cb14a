#!/usr/bin/env bash
# README command 1: install what is missing, then start LiGAN on this machine (embedded default).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/setup/install.sh"
exec "${LIGAN_VENV:-$ROOT/.venv}/bin/ligan" up "$@"
