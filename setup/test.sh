#!/usr/bin/env bash
# README command 2: install what is missing, then run the whole test suite (extra pytest
# arguments pass through, e.g. ./setup/test.sh -k bundle). LIGAN_TEST_WORKERS (default 2)
# pytest-xdist workers share the tests, one module per worker at a time; 0 runs them in this
# process.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/setup/install.sh"
cd "$ROOT"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
WORKERS=${LIGAN_TEST_WORKERS:-2}
case "$WORKERS" in ''|*[!0-9]*) echo "LIGAN_TEST_WORKERS must be a number, not '$WORKERS'" >&2; exit 2;; esac
exec "${LIGAN_VENV:-$ROOT/.venv}/bin/python" -m pytest -n "$WORKERS" "$@"
