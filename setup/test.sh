#!/usr/bin/env bash
# README command 2: install what is missing, then run the whole test suite (extra pytest
# arguments pass through, e.g. ./setup/test.sh -k bundle).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/setup/install.sh"
cd "$ROOT"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
exec "${LIGAN_VENV:-$ROOT/.venv}/bin/python" -m pytest "$@"
