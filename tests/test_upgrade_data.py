"""Data written by pydantic-aioredis 1.4 itself, migrated, and read back by this library.

The data is written by the real 1.4 package (with pydantic v1, in a virtual environment of
its own: see tests/legacy14/venv.py), covering every field type whose stored form 1.4
chose differently, TTLs, and a mixed-case prefix with its own separator and table name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing
from collections.abc import AsyncIterator
from datetime import date, datetime
from ipaddress import IPv4Address
from typing import Any
from uuid import UUID

import pytest
import redis
from pydantic import constr, create_model

from pydantic_aioredis import RedisConfig, Store, UnmigratedDataError
from pydantic_aioredis._legacy_values import legacy_rule
from pydantic_aioredis.migrate import UpgradeReport, upgrade_from_1_4
from tests.legacy14 import dataset, expected
from tests.legacy14.models import ALL, Book, Color, Counter, Event, Everything, Level, Sub, Thing
from tests.legacy14.venv import ROOT, legacy_env, legacy_python, write_with_1_4

pytestmark = pytest.mark.filterwarnings("ignore:Field name:UserWarning")


@pytest.fixture
def raw(redis_url: str) -> redis.Redis:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[Store]:
    """A store on the flushed test database, holding what 1.4 wrote for `ALL`."""
    write_with_1_4(redis_url)
    store = Store(name="upgrade", redis_config=RedisConfig.from_url(redis_url))
    for model in ALL:
        store.register_model(model)
    yield store
    await store.close()


def dump(client: redis.Redis) -> dict[str, Any]:
    """Every key: its type, its value, and whether it has a TTL."""
    found: dict[str, Any] = {}
    for key in client.keys("*"):
        kind = client.type(key)
        if kind == "hash":
            value: Any = client.hgetall(key)
        elif kind == "set":
            value = sorted(client.smembers(key))
        elif kind == "string":  # a write token's reply (see pydantic_aioredis._scripts)
            value = client.get(key)
        else:
            value = client.zrange(key, 0, -1, withscores=True)
        found[key] = (kind, value, client.pttl(key) > 0)
    return found


def counts(report: UpgradeReport) -> list[tuple[Any, ...]]:
    fields = ("model", "records", "converted", "moved", "reencoded", "current", "expired")
    return [(*(getattr(m, f) for f in fields), len(m.problems)) for m in report.models]


async def test_every_field_type_reads_back_equal(store: Store) -> None:
    report = await upgrade_from_1_4(store, ALL)
    assert not report.problems
    for model, records in expected.records().items():
        assert await model.select() == records, model.__name__
        pks = [getattr(record, model._primary_key_field) for record in records]
        assert await model.select(ids=pks[::-1]) == records[::-1]
    columns = await Everything.select(columns=["maybe_text", "when", "subs"])
    assert columns == [
        {"maybe_text": row.maybe_text, "when": row.when, "subs": row.subs}
        for row in expected.everything()
    ]


async def test_values_are_stored_as_this_library_stores_them(
    store: Store, raw: redis.Redis
) -> None:
    before = raw.hgetall("everything:full")
    assert before["maybe_text"] == "hello"  # 1.4: bare text in an Optional[str]
    assert before["day"] == '"1999-12-31"'  # 1.4: JSON-quoted
    assert json.loads(before["matrix"]) == "[[1, 2], [3], []]"  # 1.4: JSON inside JSON
    assert raw.hget("everything:nones", "maybe_int") == "None"
    await upgrade_from_1_4(store, ALL)
    after = raw.hgetall("everything:full")
    assert after["maybe_text"] == '"hello"'
    assert after["day"] == "1999-12-31"
    assert after["uid"] == "12345678-1234-5678-1234-567812345678"
    assert after["color"] == "green"
    assert after["matrix"] == "[[1,2],[3],[]]"
    assert raw.hget("everything:nones", "maybe_int") == "null"
    assert raw.hget("everything:nones", "name") == "None"  # a str field: text stays text


async def test_keys_move_to_the_prefix_as_written_and_the_primary_key_as_stored(
    store: Store, raw: redis.Redis
) -> None:
    assert raw.type("myapp!!Things!!__index") == "set"
    assert raw.exists("event:2024-01-02 03:04:05")
    report = await upgrade_from_1_4(store, ALL)
    assert {m.model: m.moved for m in report.models} == {
        "Everything": 0,
        "Thing": 5,
        "Event": 2,
        "Counter": 0,
    }
    assert not raw.keys("myapp*")
    assert sorted(raw.keys("MyApp!!Things!!c*")) == [f"MyApp!!Things!!c{i}" for i in range(1, 6)]
    assert raw.type("MyApp!!Things!!__index") == "zset"
    assert raw.exists("event:2024-01-02T03:04:05")
    assert not raw.exists("event:2024-01-02 03:04:05")


async def test_each_record_keeps_its_ttl(store: Store, raw: redis.Redis) -> None:
    assert raw.pttl("myapp!!Things!!__index") > 0  # 1.4 gave its index a TTL too
    await upgrade_from_1_4(store, ALL)
    now_ms = int(raw.time()[0]) * 1000
    expiry = dict(raw.zrange("MyApp!!Things!!__expiry", 0, -1, withscores=True))
    assert sorted(expiry) == ["c1", "c2", "c3"]
    for code in ("c1", "c2", "c3"):
        ttl = raw.pttl(f"MyApp!!Things!!{code}")
        assert 0 < ttl <= dataset.THING_TTL * 1000
        assert abs(expiry[code] - (now_ms + ttl)) < 5000
    for code in ("c4", "c5"):
        assert raw.pttl(f"MyApp!!Things!!{code}") == -1
    assert raw.pttl("MyApp!!Things!!__index") == -1
    assert await Thing.count() == 5


async def test_every_call_waits_for_the_migration(store: Store, raw: redis.Redis) -> None:
    before = dump(raw)
    for model in ALL:
        with pytest.raises(UnmigratedDataError, match=f"{model.__name__}:.*upgrade-1.4"):
            await model.select()
    # Thing's 1.4 index is under the lower-cased prefix, where our scripts would not look.
    with pytest.raises(UnmigratedDataError, match="myapp!!Things!!__index"):
        await Thing.insert(Thing(code="new", size=1))
    assert dump(raw) == before
    await upgrade_from_1_4(store, ALL)
    assert await Thing.insert(Thing(code="new", size=1)) == 1
    assert await Thing.count() == 6


async def test_a_second_run_changes_nothing(store: Store, raw: redis.Redis) -> None:
    await upgrade_from_1_4(store, ALL)
    before = dump(raw)
    report = await upgrade_from_1_4(store, ALL)
    assert dump(raw) == before
    assert all(row[1:] == (0, 0, 0, 0, 0, 0, 0) for row in counts(report))


async def test_a_dry_run_writes_nothing_and_reports_what_a_run_does(
    store: Store, raw: redis.Redis
) -> None:
    before = dump(raw)
    planned = await upgrade_from_1_4(store, ALL, dry_run=True)
    assert dump(raw) == before
    assert planned.dry_run
    assert planned.summary().startswith("dry run, nothing written")
    done = await upgrade_from_1_4(store, ALL)
    assert counts(planned) == counts(done)
    # Re-encoded: the values whose text changed. Not a fixed number: how pydantic writes a
    # float depends on its release (1e16: `1e+16`, as 1.4 wrote it, with pydantic 2.14;
    # `1e16` with 2.11, the floor).
    changed = sum(
        text != raw.hget(key, name)
        for key, record in before.items()
        if key.startswith("everything:") and record[0] == "hash"
        for name, text in record[1].items()
    )
    assert counts(done)[0] == ("Everything", 3, 3, 0, changed, 0, 0, 0)


async def test_a_record_that_does_not_convert_is_reported_and_left_as_it_was(
    store: Store, raw: redis.Redis
) -> None:
    raw.hset("everything:nones", "matrix", '"[[1, 2]"')  # JSON text inside JSON, cut short
    raw.hset("everything:full", "amount", "many")
    broken = {key: raw.hgetall(key) for key in ("everything:nones", "everything:full")}
    report = await upgrade_from_1_4(store, [Everything])
    problems = sorted(report.problems, key=lambda problem: problem.key)
    assert [(p.key, p.field) for p in problems] == [
        ("everything:full", "amount"),
        ("everything:nones", "matrix"),
    ]
    assert "invalid JSON" in problems[1].problem
    assert str(problems[0]).startswith("Everything: field 'amount' of 'everything:full': ")
    assert {key: raw.hgetall(key) for key in broken} == broken
    assert raw.smembers("everything:__index:~unconverted_1.4") == set(broken)
    # The model is migrated; the records that did not convert wait, listed, for a fix.
    assert await Everything.count() == 1
    raw.hset("everything:nones", "matrix", '"[]"')
    raw.hset("everything:full", "amount", "42")
    again = await upgrade_from_1_4(store, [Everything])
    assert not again.problems
    assert again.models[0].converted == 2
    assert await Everything.select() == expected.everything()
    assert not raw.exists("everything:__index:~unconverted_1.4")


async def test_index_entries_of_expired_records_are_dropped(store: Store, raw: redis.Redis) -> None:
    raw.delete("counter:2")  # as if its TTL had run out: 1.4 left the index entry behind
    report = await upgrade_from_1_4(store, [Counter])
    assert (report.models[0].converted, report.models[0].expired) == (2, 1)
    assert raw.zrange("counter:__index", 0, -1) == ["1", "3"]


async def test_a_stopped_migration_says_so_and_a_rerun_finishes_it(
    store: Store, raw: redis.Redis
) -> None:
    # More records in the same layout: with 1.4's five alone, the first SSCAN of a chunk of
    # 2 could return them all (it returns whole buckets of the set's hash table).
    more = [Thing(code=f"x{i:03d}", size=i) for i in range(200)]
    with raw.pipeline(transaction=False) as pipe:
        for thing in more:
            fields = {"code": thing.code, "size": str(thing.size)}
            pipe.hset(f"myapp!!Things!!{thing.code}", mapping=fields)
            pipe.sadd("myapp!!Things!!__index", f"myapp!!Things!!{thing.code}")
        pipe.execute()
    in_all = len(more) + len(dataset.THINGS)

    def stop(model: str, done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await upgrade_from_1_4(store, [Thing], chunk_size=2, progress=stop)
    # The list of records to do outlives the TTL 1.4 gave its index.
    left = raw.scard("MyApp!!Things!!__index:~upgrading_1.4")
    assert 0 < left < in_all
    assert raw.pttl("MyApp!!Things!!__index:~upgrading_1.4") == -1
    assert raw.zcard("MyApp!!Things!!__index") == in_all - left
    with pytest.raises(UnmigratedDataError, match="was started and has not finished"):
        await Thing.select()
    report = await upgrade_from_1_4(store, [Thing])
    assert (report.models[0].records, report.models[0].converted) == (left, left)
    assert await Thing.select() == expected.records()[Thing] + more


async def test_migrated_models_work_as_usual(store: Store) -> None:
    await upgrade_from_1_4(store, ALL)
    (thing,) = await Thing.select(ids=["c4"])
    async with thing.update():
        thing.size = 40
    await Counter.insert(Counter(n=9, label="None"))
    assert await Counter.select(ids=[9]) == [Counter(n=9, label="None")]
    assert await Thing.select(ids=["c4"]) == [Thing(code="c4", size=40)]
    assert await Event.delete() == 2
    assert await Everything.delete(ids=["full", "nones"]) == 2


def _command(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    models = ",".join(f"tests.legacy14.models:{model.__name__}" for model in ALL)
    return subprocess.run(
        [sys.executable, "-m", "pydantic_aioredis", "upgrade-1.4", "--models", models, *args],
        cwd=ROOT,
        env={**os.environ, "REDIS_URL": url},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def test_the_command(store: Store, raw: redis.Redis, redis_url: str) -> None:
    before = dump(raw)
    planned = _command(redis_url, "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.startswith("dry run, nothing written")
    assert dump(raw) == before
    raw.hset("counter:1", "label", "[")  # an Optional[str]: any text is fine...
    raw.hset("counter:3", "n", "three")  # ...but not as the int key
    done = _command(redis_url, "--url", redis_url)
    assert done.returncode == 1, done.stderr
    assert "Everything: 3 records found, 3 converted" in done.stdout
    assert "Counter: field 'n' of 'counter:3'" in done.stdout
    assert "Thing: 5 records done" in done.stderr
    assert await Thing.select() == expected.records()[Thing]
    raw.hset("counter:3", "n", "3")
    again = _command(redis_url)
    assert again.returncode == 0, again.stderr
    assert await Counter.count() == 3


def test_the_command_refuses_bad_arguments(redis_url: str) -> None:
    for args, message in (
        (["--models", "tests.legacy14.models:Nope"], "has no 'Nope'"),
        (["--models", "tests.legacy14.models"], "module:Class"),
        (["--models", "tests.legacy14.dataset:book"], "not a pydantic_aioredis Model"),
        (["--models", "tests.legacy14.models:Book", "--url", "http://x"], "scheme"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "pydantic_aioredis", "upgrade-1.4", "--url", redis_url, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert message in result.stderr, (args, result.stderr)


# The annotations whose 1.4 rule is checked against pydantic v1 itself.
ANNOTATIONS = [
    "str", "int", "float", "bool", "Optional[str]", "Optional[int]", "Optional[float]",
    "Optional[bool]", "Optional[datetime]", "datetime", "date", "UUID", "IPv4Address",
    "Color", "Level", "List[str]", "List[Optional[str]]", "List[int]", "List[List[int]]",
    "Dict[str, int]", "Dict[str, List[int]]", "Dict[str, Any]", "Tuple[int, str]",
    "Tuple[int, ...]", "List[Sub]", "Sub", "Optional[Sub]", "Optional[List[str]]",
    "Union[int, str]", "Optional[Union[int, str]]", "Literal['a', 'b']", "constr(max_length=5)",
    "Any", "List", "list", "Dict", "dict", "Set[str]", "FrozenSet[int]", "Sequence[int]",
    "Mapping[str, int]", "DefaultDict[str, int]", "Tuple", "tuple", "List[constr(max_length=3)]",
    "Optional[Dict[str, List[int]]]",
]  # fmt: skip
_PROBE = """
import json, sys
from datetime import date, datetime
from typing import *
from uuid import UUID
from ipaddress import IPv4Address
from pydantic import constr, create_model
from pydantic_aioredis.types import JSON_DUMP_SHAPES
sys.path.insert(0, sys.argv[1])
from writer import Color, Level, Sub
rules = {}
for source in json.loads(sys.argv[2]):
    field = create_model("M", x=(eval(source), ...)).__fields__["x"]
    layers = (field.type_ not in [str, float, int]) + (field.shape in JSON_DUMP_SHAPES)
    rules[source] = [layers, field.allow_none]
print(json.dumps(rules))
"""


def test_the_rules_1_4_stored_values_by_match_pydantic_v1() -> None:
    namespace = {
        **vars(typing),
        **{kind.__name__: kind for kind in (date, datetime, UUID, IPv4Address, Color, Level, Sub)},
        "constr": constr,
    }
    probe = [str(legacy_python()), "-c", _PROBE, str(ROOT / "tests" / "legacy14")]
    result = subprocess.run(
        [*probe, json.dumps(ANNOTATIONS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=legacy_env(),
    )
    in_v1 = json.loads(result.stdout)
    for source in ANNOTATIONS:
        annotation = eval(source, namespace)
        rule = legacy_rule(create_model("M", x=(annotation, ...)).model_fields["x"])
        layers, allows_none = in_v1[source]
        assert rule.json_layers == layers, source
        assert rule.none_text == allows_none, source


@pytest.mark.parametrize("count", [1200])
async def test_many_records_over_many_chunks(redis_url: str, count: int) -> None:
    write_with_1_4(redis_url, "books", count)
    store = Store(name="upgrade", redis_config=RedisConfig.from_url(redis_url))
    store.register_model(Book)
    report = await upgrade_from_1_4(store, [Book], chunk_size=100)
    assert counts(report) == [("Book", count, count, 0, 2 * count, 0, 0, 0)]
    books = await Book.select()
    assert books == sorted((Book(**dataset.book(i)) for i in range(count)), key=lambda b: b.title)
    await store.close()


async def test_the_migration_refuses_what_it_cannot_do(
    redis_url: str, cluster_config: RedisConfig
) -> None:
    from pydantic_aioredis import ConfigurationError

    store = Store(name="upgrade", redis_config=RedisConfig.from_url(redis_url))
    with pytest.raises(ConfigurationError, match="chunk_size must be from 1 to 2,000"):
        await upgrade_from_1_4(store, [Book], chunk_size=0)
    other = Store(name="other", redis_config=RedisConfig.from_url(redis_url))
    other.register_model(Book)
    with pytest.raises(ConfigurationError, match="Book is registered with store 'other'"):
        await upgrade_from_1_4(store, [Book])
    cluster = Store(name="cluster", redis_config=cluster_config)
    with pytest.raises(ConfigurationError, match="single Redis server"):
        await upgrade_from_1_4(cluster, [Book])


def test_the_command_migrates_a_model_its_module_registers_with_a_store(
    redis_url: str, raw: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    from pydantic_aioredis.__main__ import main
    from pydantic_aioredis._model import store_of
    from tests.legacy14 import registered

    if store_of(registered.Shelf) is None:  # released by the suite after an earlier test
        registered.store.register_model(registered.Shelf)
    for code in ("a", "b"):
        raw.hset(f"shelf:{code}", mapping={"code": code, "size": "3"})
        raw.sadd("shelf:__index", f"shelf:{code}")
    models = "tests.legacy14.registered:Shelf"
    assert main(["upgrade-1.4", "--url", redis_url, "--models", models]) == 0
    assert "Shelf: 2 records found, 2 converted" in capsys.readouterr().out
    assert raw.zrange("shelf:__index", 0, -1) == ["a", "b"]
    # The model is given back to the store its module registered it with.
    assert store_of(registered.Shelf) is registered.store
