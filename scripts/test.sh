#!/usr/bin/env bash
# The whole test suite: installs what it needs, lints, type-checks, then runs pytest against real
# components (a mosquitto and a gpsd the tests start themselves on free ports), first with
# the servers' stores on SQLite, then again on PostgreSQL for every test whose server keeps
# a store (the pure rules, the wire contract and the repository's checks keep none; the agent,
# the demo, the simulated day and the benchmarks keep their own SQLite; the tests of several
# instances run on PostgreSQL in the first pass already; the screens in Chromium show what the
# API answers, and the API's tests run on both).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
FIELDLINK_POSTGRES_URL="$(scripts/postgres.sh)"
export FIELDLINK_POSTGRES_URL
echo "==> ruff"
.venv/bin/ruff check .
echo "==> mypy"
.venv/bin/mypy
echo "==> pytest, stores on SQLite"
.venv/bin/pytest "$@"
echo "==> pytest, stores on PostgreSQL"
FIELDLINK_TEST_DB_URL="$FIELDLINK_POSTGRES_URL" .venv/bin/pytest \
    --ignore=tests/rules --ignore=tests/wire --ignore=tests/agent \
    --ignore=tests/test_repository.py --ignore=tests/test_deploy.py \
    --ignore=tests/server/test_simulator.py --ignore=tests/server/test_city_day.py \
    --ignore=tests/server/test_store_locks.py \
    --ignore=tests/e2e/test_demo.py --ignore=tests/e2e/test_simulate.py \
    --ignore=tests/e2e/test_bench.py --ignore=tests/e2e/test_instances.py \
    --ignore=tests/e2e/test_proxy.py \
    --ignore=tests/e2e/test_pages.py --ignore=tests/e2e/test_console_actions.py \
    --ignore=tests/e2e/test_phones.py --ignore=tests/e2e/test_accessibility.py \
    --ignore=tests/e2e/test_languages.py \
    "$@"
