#!/usr/bin/env bash
# The whole test suite: installs what it needs, lints, then runs pytest against real
# components (a mosquitto and a gpsd the tests start themselves on free ports).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "==> ruff"
.venv/bin/ruff check .
echo "==> pytest"
exec .venv/bin/pytest "$@"
