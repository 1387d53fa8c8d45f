"""Running the migration again, odd 1.4 records, and models with `Indexed` fields.

The 1.4 layout is written here with plain commands, as in tests/test_upgrade_guard.py: a set
of record keys as the index, values as 1.4 stored them for these field types.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated, Optional

import pytest
import redis
from pydantic import Field

from pydantic_aioredis import (
    AutoModel,
    CorruptRecordError,
    Indexed,
    Model,
    RedisConfig,
    RedisOperationError,
    Store,
    UsageError,
)
from pydantic_aioredis.migrate import UpgradeReport, upgrade_from_1_4

pytestmark = pytest.mark.filterwarnings("ignore:Field name:UserWarning")


class Book(Model):
    _primary_key_field: str = "title"
    title: str
    author: Annotated[str, Indexed()] = "someone"
    published_on: date = date(2000, 1, 1)
    subtitle: Optional[str] = None  # noqa: UP045 - as a 1.4 user typed it
    copies: Annotated[int, Field(ge=0), Indexed()] = 0


def write_1_4(raw: redis.Redis, records: dict[str, dict[str, str]]) -> None:
    """Records (by primary key) and their index, as 1.4 wrote them for `Book`."""
    for pk, fields in records.items():
        raw.hset(f"book:{pk}", mapping=fields)
        raw.sadd("book:__index", f"book:{pk}")


def as_1_4(title: str, **fields: str) -> dict[str, str]:
    values = {"title": title, "author": "Ann", "published_on": '"1999-12-31"', "copies": "1"}
    return {**values, "subtitle": "None", **fields}


@pytest.fixture
def raw(redis_url: str) -> redis.Redis:
    # Bytes that are not UTF-8 read as lone surrogates, as the library reads them.
    client = redis.Redis.from_url(
        redis_url, decode_responses=True, encoding_errors="surrogateescape"
    )
    yield client
    client.close()


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[Store]:
    store = Store(name="reruns", redis_config=RedisConfig.from_url(redis_url))
    store.register_model(Book)
    yield store
    await store.close()


def counts(report: UpgradeReport) -> tuple[int, ...]:
    (m,) = report.models
    return (m.records, m.converted, m.current, m.expired, len(m.problems))


async def test_a_rerun_leaves_records_written_since_as_they_are(
    store: Store, raw: redis.Redis
) -> None:
    write_1_4(
        raw,
        {
            "ok": as_1_4("ok"),
            "Hamlet": as_1_4("Hamlet", copies="-2"),
            "Emma": as_1_4("Emma", published_on='"1815-02-30"'),
            "Gone": as_1_4("Gone", copies="x"),
        },
    )
    first = await upgrade_from_1_4(store, [Book])
    assert sorted(p.key for p in first.problems) == ["book:Emma", "book:Gone", "book:Hamlet"]
    # Meanwhile the left-overs are not the model's: select() leaves them out, and naming
    # one by its id finds a record that does not read as the model.
    assert [book.title for book in await Book.select() or []] == ["ok"]
    with pytest.raises(CorruptRecordError, match="record 'book:Hamlet' is invalid"):
        await Book.select(ids=["Hamlet"])
    # The application writes two of them anew (it cannot see them), and deletes the third.
    fixed = [
        Book(title="Hamlet", subtitle="The new edition", copies=5),
        Book(title="Emma", published_on=date(1815, 12, 23), author="Jane"),
    ]
    await Book.insert(fixed)
    assert await Book.delete(ids=["Gone"]) == 1
    written = {key: raw.hgetall(key) for key in ("book:Hamlet", "book:Emma")}
    planned = await upgrade_from_1_4(store, [Book], dry_run=True)
    again = await upgrade_from_1_4(store, [Book])
    assert counts(planned) == counts(again) == (3, 0, 2, 1, 0)
    assert {key: raw.hgetall(key) for key in written} == written
    assert await Book.select(ids=["Hamlet", "Emma"]) == fixed
    assert await Book.select(where={"author": "Jane"}) == [fixed[1]]
    assert not raw.exists("book:__index:~unconverted_1.4")
    assert counts(await upgrade_from_1_4(store, [Book])) == (0, 0, 0, 0, 0)


async def test_indexed_fields_are_complete_after_the_migration(
    store: Store, raw: redis.Redis
) -> None:
    write_1_4(raw, {f"b{i}": as_1_4(f"b{i}", author=f"a{i % 3}", copies=str(i)) for i in range(9)})
    report = await upgrade_from_1_4(store, [Book], chunk_size=4)
    assert counts(report) == (9, 9, 0, 0, 0)
    # No build_indexes() needed: the indexes were written with the records.
    found = await Book.select(where={"author": "a1", "copies__gte": 4}, order_by="copies")
    assert [book.title for book in found or []] == ["b4", "b7"]
    assert await Book.count(where={"author__in": ["a0", "a2"]}) == 6
    assert await Book.build_indexes() == {}


async def test_a_migration_another_process_finishes_leaves_the_indexes_complete(
    store: Store, raw: redis.Redis, redis_url: str
) -> None:
    write_1_4(raw, {f"b{i:02d}": as_1_4(f"b{i:02d}", author=f"a{i % 2}") for i in range(30)})

    def killed(*_: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await upgrade_from_1_4(store, [Book], chunk_size=5, progress=killed)
    await store.close()
    store.unregister_model(Book)
    finisher = Store(name="another process", redis_config=RedisConfig.from_url(redis_url))
    finisher.register_model(Book)
    report = await upgrade_from_1_4(finisher, [Book])
    converted, problems = counts(report)[1], counts(report)[4]
    assert (converted > 0, problems) == (True, 0)
    assert await Book.count(where={"author": "a1"}) == 15  # no build_indexes() needed
    await finisher.close()


# 1.4 records whose primary key names one of the model's own keys today, and others that
# had only the names of the migration's lists in an earlier version.
ODD = {
    "ok": as_1_4("ok"),
    "__upgrading_1.4": as_1_4("__upgrading_1.4"),
    "__unconverted_1.4": as_1_4("__unconverted_1.4"),
    "__expiry": as_1_4("__expiry"),  # our expiry set's key
    "__index:author": as_1_4("__index:author"),  # the key of the index of `author`
    "__values:copies": as_1_4("__values:copies"),  # the encodings of `copies`
    "__index:~upgrading_1.4": as_1_4("__index:~upgrading_1.4"),  # the work list's key
    "__index:other": as_1_4("__index:other"),  # reserved, but not a key the model uses
    "__write:x": as_1_4("__write:x"),
    "bad": as_1_4("bad", copies="many"),
}
ASIDE = ["__expiry", "__index:author", "__values:copies", "__index:~upgrading_1.4"]
LEFT = ["__index:other", "__write:x", "bad"]


async def test_odd_1_4_records_are_reported_and_block_nothing(
    store: Store, raw: redis.Redis, redis_url: str
) -> None:
    write_1_4(raw, ODD)
    binary = redis.Redis.from_url(redis_url)  # for a key that is not UTF-8
    not_utf8 = {b"title": b"caf\xe9", b"copies": b"1"}
    binary.hset(b"book:caf\xe9", mapping=not_utf8)
    binary.sadd(b"book:__index", b"book:caf\xe9")
    before = {f"book:{pk}": raw.hgetall(f"book:{pk}") for pk in ODD}
    keys = sorted(raw.keys())
    planned = await upgrade_from_1_4(store, [Book], dry_run=True)
    assert sorted(raw.keys()) == keys
    report = await upgrade_from_1_4(store, [Book])
    assert counts(planned) == counts(report) == (11, 3, 0, 0, 8)
    problems = {p.key: p.problem for p in report.problems}
    assert sorted(problems) == sorted(f"book:{pk}" for pk in [*ASIDE, *LEFT, "caf\udce9"])
    for pk in ASIDE:  # moved out of the way, as they were
        assert f"moved to 'book:__index:~reserved_1.4:{pk}'" in problems[f"book:{pk}"]
        assert raw.hgetall(f"book:__index:~reserved_1.4:{pk}") == before[f"book:{pk}"]
    for pk in LEFT:
        assert raw.hgetall(f"book:{pk}") == before[f"book:{pk}"]
    assert "not UTF-8" in problems["book:caf\udce9"]
    assert binary.hgetall(b"book:caf\xe9") == not_utf8
    binary.close()
    assert "reserved" in problems["book:__index:other"]
    titles = ["__unconverted_1.4", "__upgrading_1.4", "ok"]
    assert [book.title for book in await Book.select() or []] == titles
    assert await Book.count(where={"author": "Ann"}) == 3
    assert "'book:caf\\udce9'" in report.summary().encode().decode()  # printable
    # A rerun tries the records left over again, and still blocks nothing.
    again = await upgrade_from_1_4(store, [Book])
    assert counts(again) == (4, 0, 0, 0, 4)
    assert await Book.count() == 3


class Plain(Model):  # Book's records, read by a model without indexes
    _primary_key_field: str = "title"
    _table_name: str = "book"
    title: str
    author: str = "someone"


@pytest.mark.parametrize("model", [Book, Plain])
async def test_a_1_4_record_at_the_key_of_the_index_states_is_moved_aside_whole(
    redis_url: str, raw: redis.Redis, model: type[Model]
) -> None:
    # Its fields looked like the states of indexes: the first write dropped them (the
    # record was gone) or claimed one (the record changed).
    write_1_4(raw, {"__index:~state": as_1_4("__index:~state"), "ok": as_1_4("ok")})
    before = raw.hgetall("book:__index:~state")
    store = Store(name="states", redis_config=RedisConfig.from_url(redis_url))
    store.register_model(model)
    try:
        report = await upgrade_from_1_4(store, [model])
        (problem,) = report.problems
        assert "moved to 'book:__index:~reserved_1.4:__index:~state'" in problem.problem
        assert raw.hgetall("book:__index:~reserved_1.4:__index:~state") == before
        assert [record.title for record in await model.select() or []] == ["ok"]
    finally:
        await store.close()


async def test_a_first_write_leaves_alone_a_hash_of_states_that_holds_a_record(
    store: Store, raw: redis.Redis
) -> None:
    raw.hset("book:__index:~state", mapping=as_1_4("__index:~state"))  # its 1.4 index lost
    before = raw.hgetall("book:__index:~state")
    with pytest.raises(RedisOperationError, match=r"holds other fields .*__index:~state"):
        await Book.insert(Book(title="new"))
    assert raw.hgetall("book:__index:~state") == before
    assert not raw.exists("book:new")


async def test_a_record_moved_aside_where_a_1_4_record_is_already_goes_next_to_it(
    store: Store, raw: redis.Redis
) -> None:
    taken = "__index:~reserved_1.4:__expiry"  # the place of `__expiry`, a 1.4 record too
    write_1_4(raw, {"__expiry": as_1_4("__expiry"), taken: as_1_4(taken), "ok": as_1_4("ok")})
    before = raw.hgetall("book:__expiry")
    planned = await upgrade_from_1_4(store, [Book], dry_run=True)
    assert "followed by ~2, ~3" in {p.key: p.problem for p in planned.problems}["book:__expiry"]
    report = await upgrade_from_1_4(store, [Book])
    problems = {p.key: p.problem for p in report.problems}
    assert f"moved to 'book:{taken}~2'" in problems["book:__expiry"]
    assert raw.hgetall(f"book:{taken}~2") == before
    assert "reserved" in problems[f"book:{taken}"]
    assert [book.title for book in await Book.select() or []] == ["ok"]
    assert counts(await upgrade_from_1_4(store, [Book])) == (1, 0, 0, 0, 1)  # a rerun


async def test_a_value_that_is_more_than_one_json_value_is_reported_not_spliced(
    store: Store, raw: redis.Redis
) -> None:
    # 1.4 wrote a str field's text as it was: read as a date today, it must not add fields.
    spliced = '"1815-12-23","copies":999,"title":"Other"'
    write_1_4(raw, {"Emma": as_1_4("Emma", published_on=spliced)})
    report = await upgrade_from_1_4(store, [Book])
    (problem,) = report.problems
    assert (problem.key, problem.field) == ("book:Emma", "published_on")
    assert raw.hgetall("book:Emma")["published_on"] == spliced
    assert not raw.exists("book:Other")
    assert await Book.select() is None


async def test_a_value_that_is_not_utf8_or_too_long_a_number_names_its_field(
    store: Store, raw: redis.Redis, redis_url: str
) -> None:
    write_1_4(raw, {"long": as_1_4("long", copies="9" * 5000)})
    binary = redis.Redis.from_url(redis_url)
    binary.hset(b"book:latin", mapping={**as_1_4("latin"), "subtitle": b"caf\xe9"})
    binary.sadd(b"book:__index", b"book:latin")
    binary.close()
    report = await upgrade_from_1_4(store, [Book], dry_run=True)
    fields = {p.key: (p.field, p.problem) for p in report.problems}
    assert fields["book:long"][0] == "copies"
    assert fields["book:latin"] == ("subtitle", "its value is not UTF-8 text: 'caf\\udce9'")


async def test_a_1_4_record_at_the_key_of_the_build_lock_is_moved_aside(
    store: Store, raw: redis.Redis
) -> None:
    # Left there, it looked like a lock that never expires: no build could run.
    write_1_4(raw, {"__index:~building": as_1_4("__index:~building"), "ok": as_1_4("ok")})
    report = await upgrade_from_1_4(store, [Book])
    (problem,) = report.problems
    assert "moved to 'book:__index:~reserved_1.4:__index:~building'" in problem.problem
    assert await Book.build_indexes() == {}


async def test_a_build_lock_key_holding_something_else_is_named(
    store: Store, raw: redis.Redis
) -> None:
    await Book.insert(Book(title="ok"))
    raw.hset("book:__index:~building", mapping={"title": "x"})  # no TTL: no build wrote it
    with pytest.raises(UsageError, match="holds something this library did not write"):
        await Book.build_indexes()


async def test_a_run_stopped_before_marking_the_indexes_is_finished_by_the_next(
    store: Store, raw: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic_aioredis._index_state import IndexState

    write_1_4(raw, {f"b{i}": as_1_4(f"b{i}") for i in range(30)})
    mark = IndexState.mark_converted

    async def killed_first(self: IndexState) -> None:
        raise asyncio.CancelledError  # stopped after the last record, before this step

    monkeypatch.setattr(IndexState, "mark_converted", killed_first)
    with pytest.raises(asyncio.CancelledError):
        await upgrade_from_1_4(store, [Book])
    monkeypatch.setattr(IndexState, "mark_converted", mark)
    await store.close()
    store.unregister_model(Book)
    again = Store(name="rerun", redis_config=store.redis_config)  # a new process
    again.register_model(Book)
    try:
        assert counts(await upgrade_from_1_4(again, [Book])) == (0, 0, 0, 0, 0)
        assert await Book.count(where={"author": "Ann"}) == 30
    finally:
        await again.close()


class AutoBook(AutoModel):
    _primary_key_field: str = "title"
    _table_name: str = "book"
    title: str
    author: Annotated[str, Indexed()] = "someone"


def test_an_automatic_write_outside_a_loop_leaves_a_foreign_states_hash_alone(
    redis_url: str, raw: redis.Redis
) -> None:
    raw.hset("book:__index:~state", mapping=as_1_4("__index:~state"))  # its 1.4 index lost
    before = raw.hgetall("book:__index:~state")
    store = Store(name="sync", redis_config=RedisConfig.from_url(redis_url))
    store.register_model(AutoBook)

    async def count_then_close() -> int:
        try:
            return await AutoBook.count(where={"author": "Austen"})
        finally:
            await store.close()

    with pytest.raises(RedisOperationError, match="holds other fields"):
        AutoBook(title="Emma", author="Austen")  # written at once: no event loop
    assert not raw.exists("book:Emma")
    assert raw.hgetall("book:__index:~state") == before
    with pytest.raises(RedisOperationError, match="holds other fields"):
        asyncio.run(count_then_close())
