"""`python -m pydantic_aioredis build-indexes`: the command docs/queries.md gives, on a module
that registers its model with a store of its own when imported (the usual layout)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pydantic_aioredis import IndexNotReadyError, RedisConfig, Store
from tests.keys import register_alone
from tests.test_queries import Indexed1, Plain

APP = """
from typing import Annotated

from pydantic_aioredis import Indexed, Model, RedisConfig, Store


class Gadget(Model):
    _primary_key_field: str = "id"
    _table_name: str = "gadget"
    id: str
    kind: Annotated[str, Indexed()] = ""


store = Store(name="app", redis_config=RedisConfig(port=1))  # the app's own settings
store.register_model(Gadget)
"""


@pytest.mark.onlynoncluster
async def test_the_command_builds_an_index_added_later(redis_url: str, tmp_path: Path) -> None:
    store = Store(name="writer", redis_config=RedisConfig.from_url(redis_url))
    register_alone(store, Plain)
    await Plain.insert([Plain(id=f"g{i:03d}", kind=f"k{i % 2}") for i in range(300)])
    store.unregister_model(Plain)
    register_alone(store, Indexed1)
    with pytest.raises(IndexNotReadyError):
        await Indexed1.count(where={"kind": "k0"})
    (tmp_path / "myapp.py").write_text(textwrap.dedent(APP))
    command = [sys.executable, "-m", "pydantic_aioredis", "build-indexes"]
    arguments = ["--url", redis_url, "--models", "myapp:Gadget"]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = await _run([*command, *arguments], env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Gadget: kind (300 records)"
    assert await Indexed1.count(where={"kind": "k0"}) == 150
    again = await _run([*command, *arguments], env)
    assert again.stdout.strip() == "Gadget: every index was complete already"
    await store.close()


async def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_command_says_what_is_wrong_with_its_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pydantic_aioredis.__main__ import main

    (tmp_path / "needs_setting.py").write_text("import os\nDATABASE = os.environ['NO_SUCH']\n")
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for command in ("build-indexes", "upgrade-1.4"):
        url = ["--url", "redis://127.0.0.1:1/0"]
        assert main([command, *url, "--models", "needs_setting:Book"]) == 2
        assert "importing needs_setting failed: KeyError: 'NO_SUCH'" in capsys.readouterr().err
        assert main([command, *url, "--models", "exits:Book"]) == 2  # not 0: nothing ran
        assert "importing exits failed: SystemExit" in capsys.readouterr().err
        for nothing in ("", ",", " , "):
            assert main([command, *url, "--models", nothing]) == 2
            assert "--models names no model" in capsys.readouterr().err
