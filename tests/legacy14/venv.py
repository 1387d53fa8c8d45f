"""A virtual environment with pydantic-aioredis 1.4 and pydantic v1, for `writer.py`.

Made once, in `.venv/legacy-1.4` of the checkout (git ignores `.venv/`), with pip from PyPI;
later runs reuse it. Our own environment cannot hold 1.4: it needs pydantic < 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv" / "legacy-1.4"
REQUIREMENTS = ("pydantic-aioredis==1.4.0", "pydantic>=1.10,<2", "redis>=4.4.4,<6")
WRITER = Path(__file__).with_name("writer.py")


def legacy_python() -> Path:
    """The environment's python, made first if need be; skips the test (fails under CI)
    when it cannot be made, e.g. without access to PyPI."""
    python = VENV / "bin" / "python"
    if not _works(python):
        try:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
            pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            subprocess.run([*pip, *REQUIREMENTS], check=True, capture_output=True, timeout=600)
        except (subprocess.SubprocessError, OSError) as exc:
            message = f"could not make a virtual environment with pydantic-aioredis 1.4: {exc}"
            if os.environ.get("CI") == "true":
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
    return python


def _works(python: Path) -> bool:
    if not python.exists():
        return False
    check = "import pydantic, pydantic_aioredis; assert pydantic.VERSION < '2'"
    probe = subprocess.run([str(python), "-c", check], capture_output=True, env=legacy_env())
    return probe.returncode == 0


def legacy_env() -> dict[str, str]:
    """Our environment without PYTHONPATH, which would put packages of ours (pydantic v2,
    this library) before those of the 1.4 environment."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}


def write_with_1_4(url: str, what: str = "all", count: int = 0) -> None:
    """Run `writer.py` (see there) with pydantic-aioredis 1.4 against the Redis at `url`."""
    command = [str(legacy_python()), str(WRITER), url, what, str(count)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=legacy_env())
    assert result.returncode == 0, result.stderr
