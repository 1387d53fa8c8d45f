"""Fields whose type changed since 1.4: a value is never converted silently by the wrong rule.

1.4 stored a str Enum, a UUID, a Literal, a date or a `constr` as JSON (`"red"`, and `null`
for None), a plain `str` as its text. Ported to pydantic v2 as plain `str` fields, they
would read back with their quotes (`'"red"'`, and the text 'null' for None). The data is
written by pydantic-aioredis 1.4 itself (`writer.Retyped`); today's model types every field
`str` (`models.Retyped`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

from pydantic_aioredis import ConfigurationError, RedisConfig, Store
from pydantic_aioredis.migrate import upgrade_from_1_4
from tests.legacy14 import dataset
from tests.legacy14.models import Retyped
from tests.legacy14.venv import ROOT, write_with_1_4

# What 1.4 stored as JSON, typed str today; `note` was a str in 1.4 too.
JSON_FIELDS = [f"Retyped.{name}" for name in ("color", "uid", "kind", "day", "name", "nick")]


@pytest.fixture
def raw(redis_url: str) -> redis.Redis:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[Store]:
    write_with_1_4(redis_url, "retyped")
    store = Store(name="retyped", redis_config=RedisConfig.from_url(redis_url))
    store.register_model(Retyped)
    yield store
    await store.close()
    store.unregister_model(Retyped)


def expected(sku: str) -> Retyped:
    """The record of dataset.RETYPED as text, which is what 1.4 stored the JSON of."""
    (row,) = [row for row in dataset.RETYPED if row["sku"] == sku]
    text = {name: value if value is None else str(value) for name, value in row.items()}
    return Retyped(**text)


def records(raw: redis.Redis) -> dict[str, dict[str, str]]:
    return {
        f"retyped:{row['sku']}": raw.hgetall(f"retyped:{row['sku']}") for row in dataset.RETYPED
    }


async def test_values_1_4_wrote_as_json_in_a_str_field_are_reported_not_converted(
    store: Store, raw: redis.Redis
) -> None:
    before = records(raw)
    for dry_run in (True, False):
        report = await upgrade_from_1_4(store, [Retyped], dry_run=dry_run)
        problems = sorted((p.key, p.field) for p in report.problems)
        assert problems == [("retyped:i1", "color"), ("retyped:i2", "color")], dry_run
        assert report.models[0].converted == 0
        # Each names every field of its record that looks like JSON, for json_fields.
        messages = {p.key: p.problem for p in report.problems}
        assert "looks like JSON" in messages["retyped:i2"]
        assert messages["retyped:i2"].endswith(": " + ",".join(JSON_FIELDS))
        assert messages["retyped:i1"].endswith(": " + ",".join([*JSON_FIELDS, "Retyped.note"]))
        assert records(raw) == before
    assert await Retyped.select() is None


async def test_named_json_fields_convert_and_a_quoted_text_waits_for_text_fields(
    store: Store, raw: redis.Redis
) -> None:
    before = records(raw)
    report = await upgrade_from_1_4(store, [Retyped], json_fields=JSON_FIELDS)
    # i1's note is a str in 1.4 too, whose text is '"quoted"': it could be JSON as well.
    assert [(p.key, p.field) for p in report.problems] == [("retyped:i1", "note")]
    assert raw.hgetall("retyped:i1") == before["retyped:i1"]
    assert await Retyped.select() == [expected("i2")]
    again = await upgrade_from_1_4(
        store, [Retyped], json_fields=JSON_FIELDS, text_fields=["Retyped.note"]
    )
    assert not again.problems
    assert again.models[0].converted == 1
    assert await Retyped.select() == [expected("i1"), expected("i2")]
    (i1,) = await Retyped.select(ids=["i1"]) or []
    assert (i1.color, i1.nick, i1.note) == ("red", None, '"quoted"')


def test_the_command_takes_the_fields_too(store: Store, raw: redis.Redis, redis_url: str) -> None:
    command = [sys.executable, "-m", "pydantic_aioredis", "upgrade-1.4", "--url", redis_url]
    command += ["--models", "tests.legacy14.models:Retyped"]
    command += ["--json-fields", ",".join(JSON_FIELDS), "--text-fields", "Retyped.note"]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Retyped: 2 records found, 2 converted" in done.stdout
    assert raw.hget("retyped:i1", "color") == "red"
    assert raw.hget("retyped:i1", "nick") == "null"  # None, as this library stores it


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"json_fields": ["Retyped.colour"]}, "'Retyped.colour' is not Model.field"),
        ({"text_fields": ["Book.note"]}, "'Book.note' is not Model.field"),
        ({"json_fields": ["note"]}, "'note' is not Model.field"),
        (
            {"json_fields": ["Retyped.note"], "text_fields": ["Retyped.note"]},
            "Retyped.note is named in both",
        ),
    ],
)
async def test_fields_named_wrongly_are_refused_before_anything_is_done(
    redis_url: str, raw: redis.Redis, options: dict[str, Any], message: str
) -> None:
    raw.sadd("retyped:__index", "retyped:x")
    store = Store(name="retyped", redis_config=RedisConfig.from_url(redis_url))
    with pytest.raises(ConfigurationError, match=message):
        await upgrade_from_1_4(store, [Retyped], **options)
    assert raw.type("retyped:__index") == "set"
    await store.close()
