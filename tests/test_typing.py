"""Users' programs type-check, under `mypy --strict` and under pyright.

Checked as a user's own code is: in a directory of its own, without this project's settings
(and without the pydantic mypy plugin). The programs are examples/*.py and every ```python
block of README.md and docs/*.md; the API checks, under pyright's strict mode too (no
unknown types), pin what `select` and `delete` accept and return.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
CHECKERS = ("mypy", "pyright")

ACCEPTED = """\
# pyright: strict
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

from typing_extensions import assert_type

from pydantic_aioredis import AutoModel, Model


class Book(Model):
    _primary_key_field: str = "title"
    _redis_prefix: str = "shop"
    _table_name: str = "books"
    _version_field: str = "version"
    title: str
    version: int = 0


class Day(AutoModel):
    _primary_key_field: str = "day"
    day: date


class Ticket(Model):
    _primary_key_field: str = "id"
    id: uuid.UUID


def titles() -> Iterator[str]:
    yield "The Hobbit"


async def check() -> None:
    assert_type(await Book.select(), list[Book] | None)
    assert_type(await Book.select(ids="The Hobbit"), list[Book] | None)
    assert_type(await Book.select(ids=["a", "b"]), list[Book] | None)
    assert_type(await Book.select(ids=("a",), skip=1, limit=2), list[Book] | None)
    assert_type(await Book.select(ids=titles()), list[Book] | None)
    assert_type(await Book.select(columns=["title"]), list[dict[str, Any]] | None)
    assert_type(await Day.select(ids=date(2024, 1, 1)), list[Day] | None)
    assert_type(await Ticket.select(ids={uuid.uuid4()}), list[Ticket] | None)
    assert_type(await Book.delete(ids=["a"]), int)
    assert_type(await Day.delete(ids=[date(2024, 1, 1)]), int)
    assert_type(await Book.delete(), int)
"""

# Each call is a mistake that both checkers must report.
REJECTED = """\
from pydantic_aioredis import Model


class Book(Model):
    _primary_key_field: str = "title"
    title: str


async def check(book: Book) -> None:
    await Book.select(ids=[{"title": "x"}])
    await Book.delete(ids=book)
"""
REJECTED_LINES = ["10", "11"]


def _programs(folder: Path) -> list[Path]:
    """The examples, and each program of the README and the docs, as files in `folder`."""
    programs = []
    for example in sorted((ROOT / "examples").glob("*.py")):
        programs.append(folder / example.name)
        programs[-1].write_text(example.read_text())
    for document in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for number, program in enumerate(PROGRAM.findall(document.read_text())):
            module = document.stem.lower().replace("-", "_")
            programs.append(folder / f"doc_{module}_{number}.py")
            programs[-1].write_text(program)
    return programs


def _check(
    checker: str, folder: Path, files: list[Path], pyright_mode: str = "strict"
) -> subprocess.CompletedProcess[str]:
    """Run a checker as a user would, in `folder`, on `files`."""
    if checker == "mypy":
        command = ["-m", "mypy", "--strict", "--no-incremental", "--no-error-summary"]
    else:
        (folder / "pyrightconfig.json").write_text(json.dumps({"typeCheckingMode": pyright_mode}))
        command = ["-m", "pyright", "--pythonpath", sys.executable]
    return subprocess.run(
        [sys.executable, *command, *map(str, files)],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("checker", CHECKERS)
def test_examples_programs_of_the_docs_and_the_api(checker: str, tmp_path: Path) -> None:
    programs = _programs(tmp_path)
    assert len(programs) >= 8
    (tmp_path / "accepted.py").write_text(ACCEPTED)  # in pyright's strict mode: no unknowns
    # The programs in pyright's default mode: its strict mode also refuses what the
    # documented API is made of (reading `Book._auto_save`, a "protected" name) and
    # redis-py's untyped **kwargs.
    result = _check(checker, tmp_path, [*programs, tmp_path / "accepted.py"], "standard")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("checker", CHECKERS)
def test_ids_that_are_no_primary_keys_are_refused(checker: str, tmp_path: Path) -> None:
    program = tmp_path / "rejected.py"
    program.write_text(REJECTED)
    result = _check(checker, tmp_path, [program])
    lines_with_errors = re.findall(r"rejected\.py:(\d+):[\d -]*error", result.stdout)
    assert sorted(lines_with_errors) == REJECTED_LINES, result.stdout  # those, and no others
