"""Every code example in the README and in docs/ runs, as written.

* ```python blocks are whole programs: each runs in a fresh interpreter, with REDIS_URL set
  to the test database (and once more without it, on the embedded backend, for the README's
  quick start), and REDIS_CLUSTER_URL to the test cluster for programs that use it.
* ```py blocks are fragments: they run with top-level await in a namespace holding a `Book`
  model, a `book` and a `store` (with `Book` registered unless the fragment registers
  models itself), with `RedisConfig` pointed at the test database.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import pydantic_aioredis
from pydantic_aioredis import Model, RedisConfig, Store

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(python|py)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks(kind: str) -> list[Any]:
    found = []
    for document in DOCUMENTS:
        text = document.read_text()
        for match in BLOCK.finditer(text):
            if match.group(1) == kind:
                line = text.count("\n", 0, match.start()) + 1
                found.append(pytest.param(match.group(2), id=f"{document.name}:{line}"))
    return found


def test_documents_have_examples() -> None:
    assert len(_blocks("python")) >= 6
    assert len(_blocks("py")) >= 2


@pytest.mark.parametrize("program", _blocks("python"))
def test_program(program: str, redis_url: str, request: pytest.FixtureRequest) -> None:
    env = {"REDIS_URL": redis_url}
    if "REDIS_CLUSTER_URL" in program:  # docs/cluster.md: on the test cluster
        env["REDIS_CLUSTER_URL"] = request.getfixturevalue("cluster_config").redis_url
    _run(program, env)


def test_quickstart_in_the_readme_is_the_example_file() -> None:
    readme = (ROOT / "README.md").read_text()
    assert (ROOT / "examples" / "quickstart.py").read_text() in readme


def test_quickstart_runs_on_the_embedded_backend() -> None:
    output = _run((ROOT / "examples" / "quickstart.py").read_text(), {})
    assert "deleted 5 books" in output


def _run(program: str, env: dict[str, str]) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", program],
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert not result.stderr, result.stderr
    return result.stdout


class Book(Model):
    _primary_key_field: str = "title"
    title: str
    author: str = "J.R.R. Tolkien"
    tags: list[str] = []


@pytest.mark.parametrize("fragment", _blocks("py"))
async def test_fragment(fragment: str, redis_url: str) -> None:
    test_config = RedisConfig.from_url(redis_url)

    def config(*args: Any, **kwargs: Any) -> RedisConfig:
        return test_config  # whatever the fragment asks for, use the test database

    store = Store(name="docs", redis_config=test_config)
    if "register_model(" not in fragment:  # else the fragment registers its own models
        store.register_model(Book)
    namespace: dict[str, Any] = {
        **{name: getattr(pydantic_aioredis, name) for name in pydantic_aioredis.__all__},
        "RedisConfig": config,
        "Book": Book,
        "book": Book(title="The Hobbit"),
        "store": store,
        "__name__": "fragment",
    }
    code = compile(fragment, "<fragment>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if result is not None:
        await result
    await namespace["store"].close()
    await store.close()
