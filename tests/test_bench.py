"""The benchmarks still run end to end (figures are printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("bench", ["bench.ingest", "bench.alarm_latency"])
def test_benchmark_quick_run_completes(bench: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", bench, "--quick", "--modes", "threading"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "targets" in run.stdout
