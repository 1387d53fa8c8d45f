"""The migration benchmark runs end to end (at a tiny size: it measures nothing here)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.legacy14.venv import ROOT
from tests.servers import REDIS_SERVER


@pytest.mark.skipif(REDIS_SERVER is None, reason="the benchmark starts its own redis-server")
def test_migration_benchmark_smoke() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.migrate", "--n", "600", "--repeat", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for expected in ("| dry run |", "| keys stay |", "| every key moves", "99th percentile"):
        assert expected in result.stdout, expected
