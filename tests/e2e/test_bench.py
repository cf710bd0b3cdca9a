"""The benchmarks still run end to end (figures are printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "command",
    [
        ["bench.ingest", "--modes", "threading"],
        ["bench.alarm_latency", "--modes", "threading"],
        ["bench.terminals", "--modes", "threading"],
        ["bench.scale", "--instances", "1,2"],
        ["bench.agent"],
        ["bench.recommend"],
        ["bench.outage"],
        ["bench.card_wear"],
    ],
)
def test_benchmark_quick_run_completes(command: list[str]) -> None:
    run = subprocess.run(
        [sys.executable, "-m", *command, "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "target" in run.stdout
    # the baselines too push what the terminals' contract accepts, or their figures are void
    assert "off the wire contract" not in run.stdout + run.stderr
