"""The benchmark runs end to end (at a tiny size: it measures nothing here)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import REDIS_SERVER

ROOT = Path(__file__).resolve().parent.parent


def _run_benchmark(module: str, *args: str) -> str:
    """Run a benchmark module at a tiny size; what it printed."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif(REDIS_SERVER is None, reason="the benchmark starts its own redis-server")
def test_benchmark_smoke() -> None:
    output = _run_benchmark(
        "benchmarks.bench",
        *("--n", "300", "--repeat", "1", "--big", "600", "--saves", "20"),
        *("--assignments", "1000", "--crowd", "1000"),
    )
    for expected in (
        "| bulk insert N | records |",
        "| select all | ",
        "peak memory",
        "longest single server-side call",
        "| 600 |",
        "beside 1,000 unrelated keys",
        "| equality query | ",
        "| range query, order_by",
    ):
        assert expected in output, expected


@pytest.mark.skipif(
    REDIS_SERVER is None or shutil.which("redis-cli") is None,
    reason="the cluster benchmark starts its own redis-servers and joins them with redis-cli",
)
def test_cluster_benchmark_smoke() -> None:
    output = _run_benchmark("benchmarks.cluster", "--n", "300", "--repeat", "1")
    for expected in (
        "| ours, single Redis |",
        "| ours, 3-master cluster |",
        "(floor) |",
        "| equality query | ",
    ):
        assert expected in output, expected
