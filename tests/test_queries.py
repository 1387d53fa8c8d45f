"""Queries on secondary indexes: exactly what a full scan with the same filter, order and page
gives, on Redis, the embedded backend and a cluster; indexes kept exact by every write path;
clear errors; indexes built for records written before a field was indexed."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import warnings
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import (
    ConfigDict,
    PlainSerializer,
    ValidationInfo,
    field_validator,
    model_validator,
    root_validator,
    validator,
)

from pydantic_aioredis import (
    AutoModel,
    ConfigurationError,
    ConflictError,
    CorruptRecordError,
    Indexed,
    IndexNotReadyError,
    InvalidInputError,
    Model,
    RedisOperationError,
    SerializationError,
    Store,
    UsageError,
)
from pydantic_aioredis._index_state import IndexState
from pydantic_aioredis._indexes import field_indexes
from pydantic_aioredis._model import _TABLES
from tests.keys import key
from tests.test_query_plan import POOLS, Color, Level, conditions, python_says


class Shelf(Model):
    _primary_key_field: str = "id"
    id: str
    title: Annotated[str, Indexed()]
    author: Annotated[str | None, Indexed()] = None
    year: Annotated[int, Indexed()]
    rating: Annotated[float | None, Indexed()] = None
    price: Annotated[Decimal, Indexed()]
    published: Annotated[datetime | None, Indexed()] = None
    in_stock: Annotated[bool, Indexed()]
    color: Annotated[Color, Indexed()]
    level: Annotated[Level, Indexed()]
    note: str = ""


INDEXES = field_indexes(Shelf)


def full_scan(
    records: list[Shelf],
    where: list[tuple[str, str, Any]],
    order_by: str | None,
    skip: int,
    limit: int | None,
) -> list[str]:
    """The ids a query must give: Python's filter over every record, in primary-key order
    or by the order field (its values ordered as their index encoding orders them, which
    tests/test_index_encoding.py checks against Python's own order), ties by primary key."""
    found = sorted(
        (r for r in records if all(python_says(getattr(r, f), op, v) for f, op, v in where)),
        key=lambda r: r.id,
    )
    if order_by is not None:
        field = order_by.lstrip("-")
        found.sort(
            key=lambda r: INDEXES[field].encode(getattr(r, field)), reverse=order_by[0] == "-"
        )
    page = found[skip:] if limit is None else found[skip : skip + limit]
    return [r.id for r in page]


def _where(triples: list[tuple[str, str, Any]]) -> dict[str, Any]:
    return {field if op == "eq" else f"{field}__{op}": value for field, op, value in triples}


shelves = st.lists(
    st.tuples(
        st.text(max_size=4) | st.sampled_from(["", "\x00", "a:b", "\U0010ffff"]),
        st.fixed_dictionaries({f: st.sampled_from(pool) for f, pool in POOLS.items()}),
    ),
    max_size=25,
    unique_by=lambda pair: pair[0],
)
orders = st.none() | st.sampled_from(
    [name for name, index in INDEXES.items() if index.ordered]
).flatmap(lambda name: st.sampled_from([name, "-" + name]))
pages = st.tuples(st.integers(0, 6), st.none() | st.integers(1, 8))


@settings(
    max_examples=35, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=shelves, queries=st.lists(st.tuples(conditions(), orders, pages), min_size=1, max_size=4)
)
async def test_a_query_gives_what_a_full_scan_gives(
    store: Store, data: list[tuple[str, dict[str, Any]]], queries: list[Any]
) -> None:
    store.register_model(Shelf)
    await Shelf.delete()
    records = [Shelf(id=pk, **values) for pk, values in data]
    await Shelf.insert(records)
    for where, order_by, (skip, limit) in queries:
        expected = full_scan(records, where, order_by, skip, limit)
        found = await Shelf.select(where=_where(where), order_by=order_by, skip=skip, limit=limit)
        assert [s.id for s in found or []] == expected, (where, order_by, skip, limit)
        assert await Shelf.count(where=_where(where)) == len(
            full_scan(records, where, None, 0, None)
        )
    await Shelf.delete()


# The issue's own examples, on a plain model.


class Book(Model):
    _primary_key_field: str = "title"
    title: str
    author: Annotated[str, Indexed()]
    published_on: Annotated[date, Indexed()]
    in_stock: Annotated[bool, Indexed()] = True
    rating: Annotated[float, Indexed()] = 0.0


BOOKS = [
    Book(title="Oliver Twist", author="Charles Dickens", published_on=date(1838, 4, 1)),
    Book(title="Great Expectations", author="Charles Dickens", published_on=date(1861, 8, 1)),
    Book(title="Jane Eyre", author="Charlotte Bronte", published_on=date(1847, 10, 16)),
    Book(title="Wuthering Heights", author="Emily Bronte", published_on=date(1847, 12, 1)),
]
BOOKS[0].in_stock = BOOKS[2].in_stock = False


@pytest.fixture
async def books(store: Store) -> list[Book]:
    store.register_model(Book)
    await Book.insert(BOOKS)
    return BOOKS


def titles(found: list[Any] | None) -> list[str]:
    return [item["title"] if isinstance(item, dict) else item.title for item in found or []]


async def test_each_operator(books: list[Book]) -> None:
    assert titles(await Book.select(where={"author": "Charles Dickens"})) == [
        "Great Expectations",
        "Oliver Twist",
    ]
    bronte = await Book.select(where={"author__in": ["Emily Bronte", "Charlotte Bronte"]})
    assert titles(bronte) == ["Jane Eyre", "Wuthering Heights"]
    forties = {"published_on__gte": date(1840, 1, 1), "published_on__lt": date(1850, 1, 1)}
    assert titles(await Book.select(where=forties)) == ["Jane Eyre", "Wuthering Heights"]
    page = await Book.select(
        where={"author__startswith": "Charl", "in_stock": True},
        order_by="-published_on",
        skip=0,
        limit=20,
        columns=["title"],
    )
    assert page == [{"title": "Great Expectations"}]
    assert await Book.count(where={"in_stock": False}) == 2
    assert await Book.select(where={"author": "Nobody"}) is None
    assert await Book.delete(where={"in_stock": False}) == 2
    assert titles(await Book.select()) == ["Great Expectations", "Wuthering Heights"]


async def test_order_by_and_pages(books: list[Book]) -> None:
    assert titles(await Book.select(order_by="published_on")) == [
        "Oliver Twist",
        "Jane Eyre",
        "Wuthering Heights",
        "Great Expectations",
    ]
    assert titles(await Book.select(order_by="-published_on", skip=1, limit=2)) == [
        "Wuthering Heights",
        "Jane Eyre",
    ]
    # Ties (every rating is 0.0) in primary-key order, descending or not.
    assert titles(await Book.select(order_by="-rating", limit=3)) == titles(
        await Book.select(limit=3)
    )


# Every write path keeps the indexes exact, in the same call as the record.


class Task(AutoModel):
    _primary_key_field: str = "id"
    id: str
    owner: Annotated[str, Indexed()]
    done: Annotated[bool, Indexed()] = False
    priority: Annotated[int, Indexed()] = 0


async def _owners(**where: Any) -> list[str]:
    return [t.id for t in await Task.select(where=where) or []]


async def test_every_write_path_moves_the_index_entries(store: Store, raw: redis.Redis) -> None:
    store.register_model(Task)
    a = Task(id="a", owner="ann")  # automatic write of a whole record
    b = Task(id="b", owner="bob", _auto_save=False)
    await Task.insert(b)  # insert
    assert await _owners(owner="ann") == ["a"]
    a.owner = "bob"  # automatic field update: the entry moves
    assert await _owners(owner="ann") == []
    assert await _owners(owner="bob") == ["a", "b"]
    b.set_auto_sync(False)
    b.priority = 5
    await b.save()  # save
    assert await _owners(priority__gte=5) == ["b"]
    async with b.update():  # update()
        b.done = True
        b.priority = 1
    assert await _owners(done=True, priority=1) == ["b"]
    assert await _owners(priority__gte=5) == []
    await Task.delete(ids=["a"])  # delete
    assert await _owners(owner="bob") == ["b"]
    await Task.insert(Task(id="t", owner="tmp", _auto_save=False), life_span_seconds=0.1)
    assert await _owners(owner="tmp") == ["t"]
    await asyncio.sleep(0.25)  # expiry
    assert await _owners(owner="tmp") == []
    assert await Task.count(where={"owner": "tmp"}) == 0


async def test_a_record_written_several_times_in_one_call_keeps_only_its_last_entries(
    store: Store, raw: redis.Redis
) -> None:
    """A call moves the entries of all its records at once: a record it carries more than
    once ends with the entries of its last version, and no entry of the others is left."""
    store.register_model(Task)
    await Task.insert(Task(id="a", owner="old", priority=9, _auto_save=False))
    versions = [Task(id="a", owner=f"v{i}", priority=i, _auto_save=False) for i in range(5)]
    others = [Task(id=f"o{i}", owner="o", _auto_save=False) for i in range(20)]
    await Task.insert([versions[0], *others[:10], *versions[1:], *others[10:]])
    assert await _owners(owner="v4") == ["a"]
    for owner in ("old", "v0", "v1", "v2", "v3"):
        assert await _owners(owner=owner) == []
    assert await _owners(priority__gte=5) == []
    assert await _owners(priority=4) == ["a"]
    assert len(await _owners(owner="o")) == 20
    if not store.cluster:  # one entry per record and field: nothing stale left behind
        assert raw.zcard(key("task:__index:owner")) == 21


async def test_versioned_writes_move_the_entries_too(store: Store) -> None:
    class Ticket(Model):
        _primary_key_field: str = "id"
        _version_field: str = "version"
        id: str
        state: Annotated[str, Indexed()] = "open"
        version: int = 0

    store.register_model(Ticket)
    ticket = Ticket(id="t1")
    await ticket.save()
    stale = (await Ticket.select(ids=["t1"]) or [])[0]
    ticket.state = "closed"
    await ticket.save()
    stale.state = "rejected"
    with pytest.raises(ConflictError):
        await stale.save()  # refused: its entry does not move either
    assert [t.id for t in await Ticket.select(where={"state": "closed"}) or []] == ["t1"]
    assert await Ticket.select(where={"state": "rejected"}) is None


async def test_a_query_never_returns_a_record_that_does_not_meet_it_while_others_write(
    store: Store,
) -> None:
    store.register_model(Task)
    tasks = [Task(id=f"t{i:03d}", owner="o", _auto_save=False) for i in range(300)]
    await Task.insert(tasks)
    writing = True

    async def writer() -> None:
        nonlocal writing
        rng = random.Random(7)
        for task in rng.choices(tasks, k=300):
            async with task.update():  # each flip its own call, between the reader's calls
                task.done = not task.done
        writing = False

    running = asyncio.create_task(writer())
    queries = 0
    while writing:
        for order_by in (None, "-priority"):
            found = await Task.select(where={"done": True}, order_by=order_by) or []
            assert all(task.done for task in found)
            queries += 1
    await running
    assert queries > 5
    assert await _owners(done=True) == sorted(t.id for t in tasks if t.done)


# Bad questions: clear errors, never a silent full scan.


async def test_bad_conditions_name_the_field_and_what_is_indexed(books: list[Book]) -> None:
    with pytest.raises(InvalidInputError, match=r"'title' is not an indexed field.*author"):
        await Book.select(where={"title": "x"})
    with pytest.raises(InvalidInputError, match="unknown operator 'like'"):
        await Book.select(where={"author__like": "x"})
    with pytest.raises(InvalidInputError, match=r"Book\.published_on.*not a valid value"):
        await Book.count(where={"published_on": "yesterday"})
    with pytest.raises(InvalidInputError, match="order_by='title' is not an indexed field"):
        await Book.select(order_by="title")
    with pytest.raises(InvalidInputError, match="cannot be combined"):
        await Book.select(ids=["Jane Eyre"], where={"in_stock": True})
    with pytest.raises(InvalidInputError, match="not an indexed field"):
        await Book.delete(where={"title": "Jane Eyre"})
    assert await Book.count() == 4  # nothing was deleted


def test_a_type_that_cannot_be_indexed_is_refused_at_registration(store: Store) -> None:
    class Bad(Model):
        _primary_key_field: str = "id"
        id: str
        tags: Annotated[list[str], Indexed()] = []

    with pytest.raises(ConfigurationError, match=r"Bad\.tags: .*cannot be indexed"):
        store.register_model(Bad)


# Indexes added to a model that has records already.


class Plain(Model):
    _primary_key_field: str = "id"
    _table_name: str = "gadget"
    id: str
    kind: str = ""


class Indexed1(Model):
    _primary_key_field: str = "id"
    _table_name: str = "gadget"
    id: str
    kind: Annotated[str, Indexed()] = ""


async def test_an_index_added_later_is_refused_until_built_then_exact(store: Store) -> None:
    store.register_model(Plain)
    await Plain.insert([Plain(id=f"g{i:04d}", kind=f"k{i % 3}") for i in range(1_200)])
    store.unregister_model(Plain)
    store.register_model(Indexed1)  # the same records, now with `kind` indexed
    await Indexed1.insert(Indexed1(id="new", kind="k0"))  # indexed as it is written
    with pytest.raises(IndexNotReadyError, match="Indexed1: the index of kind is not ready"):
        await Indexed1.select(where={"kind": "k0"})
    assert await Indexed1.build_indexes() == {"kind": 1_201}
    assert await Indexed1.count(where={"kind": "k0"}) == 401
    assert await Indexed1.build_indexes() == {}  # built: nothing to do
    # A new store (a new process) knows it is built.
    store.unregister_model(Indexed1)
    other = Store(name="other", redis_config=store.redis_config)
    other.register_model(Indexed1)
    assert len(await Indexed1.select(where={"kind": "k2"}) or []) == 400
    await other.close()


async def _written_before_kind_was_indexed(store: Store) -> None:
    """3,000 records of Indexed1 written while its field `kind` was not indexed."""
    store.register_model(Plain)
    await Plain.insert([Plain(id=f"g{i:04d}", kind="k") for i in range(3_000)])
    store.unregister_model(Plain)
    store.register_model(Indexed1)


async def test_a_build_cut_short_is_finished_by_the_next_one(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _written_before_kind_was_indexed(store)
    build_page = IndexState._build_page
    pages = 0

    async def crash_after_two_pages(self: IndexState, *args: Any) -> int:
        nonlocal pages
        pages += 1
        if pages > 2:
            raise RuntimeError("the process was killed")
        return await build_page(self, *args)

    with monkeypatch.context() as patched:
        patched.setattr(IndexState, "_build_page", crash_after_two_pages)
        with pytest.raises(RuntimeError, match="killed"):
            await Indexed1.build_indexes()
    with pytest.raises(IndexNotReadyError, match="build_indexes\\(\\) has not finished"):
        await Indexed1.count(where={"kind": "k"})
    assert await Indexed1.build_indexes() == {"kind": 3_000}
    assert await Indexed1.count(where={"kind": "k"}) == 3_000


async def test_a_cancelled_build_stops_even_if_a_call_swallowed_the_cancellation(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _written_before_kind_was_indexed(store)
    build_page = IndexState._build_page
    pages = 0

    async def swallow_a_cancellation(self: IndexState, *args: Any) -> int:
        # What redis-py's asyncio.wait_for can do on Python 3.11: the cancellation
        # reaches it, and the call returns as if nothing had happened.
        nonlocal pages
        pages += 1
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)
        return await build_page(self, *args)

    if not hasattr(asyncio.Task, "cancelling"):
        pytest.skip("Python 3.10 cannot tell a swallowed cancellation")
    with monkeypatch.context() as patched:
        patched.setattr(IndexState, "_build_page", swallow_a_cancellation)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.ensure_future(Indexed1.build_indexes())
    assert pages == 1
    assert await Indexed1.build_indexes() == {"kind": 3_000}  # run again, it finishes


async def test_a_new_model_needs_no_build(store: Store) -> None:
    store.register_model(Book)
    await Book.insert(BOOKS)  # every record written with its entries: complete at once
    assert await Book.count(where={"in_stock": True}) == 2


async def test_a_query_before_anything_is_written_finds_nothing(store: Store) -> None:
    # A new application's first call may be a query: no store has written the model yet.
    store.register_model(Indexed1)
    assert await Indexed1.select(where={"kind": "k0"}) is None
    assert await Indexed1.count(where={"kind": "k0"}) == 0
    assert await Indexed1.delete(where={"kind": "k0"}) == 0
    assert await Indexed1.select(order_by="kind") is None
    # Records written without the index, though, may lack entries: refused, and said so.
    store.unregister_model(Indexed1)
    store.register_model(Plain)
    await Plain.insert(Plain(id="g1", kind="k0"))
    store.unregister_model(Plain)
    store.register_model(Indexed1)
    with pytest.raises(IndexNotReadyError, match="written while the field was not indexed"):
        await Indexed1.count(where={"kind": "k0"})


async def test_tasks_writing_a_new_model_at_once_leave_its_indexes_complete(
    store: Store,
) -> None:
    store.register_model(Indexed1)
    await asyncio.gather(
        *(Indexed1.insert([Indexed1(id=f"t{t}-{i}", kind="k") for i in range(3)]) for t in range(5))
    )
    assert await Indexed1.count(where={"kind": "k"}) == 15


async def test_removing_an_index_drops_its_keys(store: Store, raw: redis.Redis) -> None:
    store.register_model(Indexed1)
    await Indexed1.insert([Indexed1(id="a", kind="x")])
    assert await Indexed1.count(where={"kind": "x"}) == 1
    store.unregister_model(Indexed1)
    store.register_model(Plain)
    await Plain.build_indexes()  # `kind` is no longer indexed: its keys go
    assert [k for k in raw.keys("gadget:*") if "kind" in k] == []
    assert await Plain.select() == [Plain(id="a", kind="x")]


# What a hostile tester found, kept from coming back.


class Numbered(Model):
    _primary_key_field: str = "id"
    _table_name: str = "numbered"
    id: str
    n: Annotated[int, Indexed()]
    tag: Annotated[str, Indexed()] = "x"


async def test_descending_order_walks_several_ranges_from_the_top(store: Store) -> None:
    store.register_model(Numbered)
    await Numbered.insert([Numbered(id=f"r{i:03d}", n=i % 10) for i in range(300)])
    found = await Numbered.select(where={"n__in": [1, 9]}, order_by="-n", limit=3)
    assert [(r.id, r.n) for r in found or []] == [("r009", 9), ("r019", 9), ("r029", 9)]
    found = await Numbered.select(where={"n__in": [1, 2], "tag": "x"}, order_by="-n", skip=25)
    expected = sorted((r for r in range(300) if r % 10 in (1, 2)), key=lambda r: -(r % 10))
    assert [r.id for r in found or []] == [f"r{i:03d}" for i in expected][25:]


async def test_thousands_of_values_in_one_condition(store: Store) -> None:
    store.register_model(Numbered)
    await Numbered.insert([Numbered(id=f"r{i:05d}", n=i) for i in range(3_000)])
    wanted = list(range(0, 20_000, 2))  # 10,000 values
    assert await Numbered.count(where={"n__in": wanted}) == 1_500
    assert await Numbered.count(where={"n__in": wanted, "tag": "x"}) == 1_500
    found = await Numbered.select(where={"n__in": wanted, "tag": "x"}, order_by="-n", limit=2)
    assert [r.n for r in found or []] == [2_998, 2_996]
    assert await Numbered.delete(where={"n__in": wanted[:10]}) == 10


class Release1(Model):
    _primary_key_field: str = "id"
    _table_name: str = "release"
    id: str
    x: Annotated[int, Indexed()] = 0


class Release2Str(Model):
    _primary_key_field: str = "id"
    _table_name: str = "release"
    id: str
    x: Annotated[str, Indexed()] = ""


class Release2Plain(Model):
    _primary_key_field: str = "id"
    _table_name: str = "release"
    id: str
    x: int = 0


async def _release(store: Store, model: type[Model]) -> None:
    for registered in list(store.models.values()):
        store.unregister_model(registered)
    store.register_model(model)


async def test_a_changed_type_is_found_even_if_nobody_queried_before(store: Store) -> None:
    await _release(store, Release1)
    await Release1.insert([Release1(id="A", x=5), Release1(id="B", x=10)])  # never queried
    await _release(store, Release2Str)
    with pytest.raises(IndexNotReadyError, match="another type"):
        await Release2Str.select(where={"x": "5"})
    assert await Release2Str.build_indexes() == {"x": 2}
    assert [r.id for r in await Release2Str.select(order_by="x") or []] == ["B", "A"]
    assert await Release2Str.count(where={"x__startswith": "1"}) == 1


async def test_an_index_dropped_for_a_release_is_not_complete_when_it_comes_back(
    store: Store,
) -> None:
    await _release(store, Release1)
    await Release1.insert(Release1(id="A", x=1))
    assert await Release1.count(where={"x": 1}) == 1
    await _release(store, Release2Plain)  # a release without the index: its keys go
    await Release2Plain.insert(Release2Plain(id="C", x=1))
    await _release(store, Release1)
    with pytest.raises(IndexNotReadyError):
        await Release1.select(where={"x": 1})
    await Release1.build_indexes()
    assert [r.id for r in await Release1.select(where={"x": 1}) or []] == ["A", "C"]


async def test_two_builds_at_once_are_refused(store: Store) -> None:
    await _release(store, Release2Plain)
    await Release2Plain.insert([Release2Plain(id=f"r{i:04d}", x=i) for i in range(2_000)])
    await _release(store, Release1)
    first = asyncio.create_task(Release1.build_indexes())
    await asyncio.sleep(0)  # the first one takes the lock
    results = await asyncio.gather(first, Release1.build_indexes(), return_exceptions=True)
    assert results[0] == {"x": 2_000}
    assert isinstance(results[1], UsageError)
    assert await Release1.count(where={"x__gte": 0}) == 2_000


async def test_the_lock_of_a_killed_build_says_how_long_it_has_left(
    store: Store, raw: redis.Redis
) -> None:
    await _release(store, Release1)
    lock = _TABLES[Release1].index_state.lock_key
    raw.set(lock, "a killed build's token", px=15_000)  # as a build that never freed it
    with pytest.raises(UsageError, match=r"for 1[45] s more at most"):
        await Release1.build_indexes()
    raw.delete(lock)  # expired
    assert await Release1.build_indexes() == {}


# Two releases of a model running at once (a rolling deploy, a rollback), each in a store
# of its own: the one that trusts an index must stop trusting it once the other changes it.


async def test_an_index_another_release_drops_is_no_longer_trusted(store: Store) -> None:
    await _release(store, Release1)
    await Release1.insert([Release1(id="A", x=1), Release1(id="B", x=1)])
    assert await Release1.count(where={"x": 1}) == 2  # complete, and known to be
    async with Store(name="old release", redis_config=store.redis_config) as without_index:
        without_index.register_model(Release2Plain)
        await Release2Plain.insert(Release2Plain(id="C", x=1))  # its first write drops the index
    for query in (
        Release1.count(where={"x": 1}),
        Release1.select(where={"x": 1}),
        Release1.select(order_by="x"),
        Release1.delete(where={"x": 1}),
    ):
        with pytest.raises(IndexNotReadyError, match="written while the field was not indexed"):
            await query
    assert await Release1.build_indexes() == {"x": 3}
    assert [r.id for r in await Release1.select(where={"x": 1}) or []] == ["A", "B", "C"]


async def test_an_index_another_type_writes_to_is_trusted_by_neither(store: Store) -> None:
    await _release(store, Release1)
    await Release1.insert([Release1(id="a", x=2134), Release1(id="b", x=9)])
    assert [r.id for r in await Release1.select(order_by="x") or []] == ["b", "a"]
    async with Store(name="new release", redis_config=store.redis_config) as other_type:
        other_type.register_model(Release2Str)
        await Release2Str.insert(Release2Str(id="c", x="2134"))  # an entry of another encoding
        for query in (Release2Str.count(where={"x": "2134"}), Release1.count(where={"x": 2134})):
            with pytest.raises(IndexNotReadyError, match="another type of the field"):
                await query
        store.unregister_model(Release1)
        async with Store(name="rolled back", redis_config=store.redis_config) as rolled_back:
            rolled_back.register_model(Release1)  # a fresh process of the first release
            with pytest.raises(IndexNotReadyError, match="another type of the field"):
                await Release1.select(where={"x": 2134})
            rolled_back.unregister_model(Release1)
        # Once every process runs the new type, a build makes the index exact for it.
        assert await Release2Str.build_indexes() == {"x": 3}
        assert [r.id for r in await Release2Str.select(order_by="x") or []] == ["a", "c", "b"]


async def test_a_build_that_another_type_writes_during_is_not_trusted(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _release(store, Release2Plain)
    await Release2Plain.insert([Release2Plain(id=f"r{i:04d}", x=i) for i in range(1_200)])
    await _release(store, Release1)
    other_type = Store(name="new release", redis_config=store.redis_config)
    other_type.register_model(Release2Str)
    build_page = IndexState._build_page
    pages = 0

    async def another_release_writes_after_the_first_page(self: IndexState, *args: Any) -> int:
        nonlocal pages
        written = await build_page(self, *args)
        pages += 1
        if pages == 1:  # another release starts: its first write, with another type of x
            await Release2Str.insert(Release2Str(id="s", x="text"))
        return written

    monkeypatch.setattr(IndexState, "_build_page", another_release_writes_after_the_first_page)
    async with other_type:
        with pytest.raises(UsageError, match="another type of x wrote entries"):
            await Release1.build_indexes()
        with pytest.raises(IndexNotReadyError):
            await Release1.count(where={"x__gte": 0})


async def test_entries_left_by_another_release_never_stand_in_for_missing_ones(
    store: Store,
) -> None:
    # The release without the index deletes a record of the one with it: the entry stays,
    # as many entries as records, but "old" has none. Only a build makes the index exact.
    await _release(store, Release2Plain)
    await Release2Plain.insert(Release2Plain(id="old", x=1))
    async with Store(name="new release", redis_config=store.redis_config) as with_index:
        with_index.register_model(Release1)
        await Release1.insert([Release1(id="new", x=1), Release1(id="tmp", x=1)])
        await Release2Plain.delete(ids=["tmp"])
        with pytest.raises(IndexNotReadyError, match="may lack entries"):
            await Release1.select(where={"x": 1})
        assert await Release1.build_indexes() == {"x": 2}
        assert await Release1.count(where={"x": 1}) == 2
        with_index.unregister_model(Release1)


async def test_an_index_dropped_between_two_round_trips_of_a_query_is_noticed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _release(store, Release1)
    await Release1.insert([Release1(id=f"r{i}", x=i % 3) for i in range(6)])
    assert await Release1.count(where={"x__in": [0, 1]}) == 4
    execute = store.execute

    async def first_write_of_the_old_release_before_the_read(calls: Any) -> Any:
        if any(call.script.name == "read_ids" for call in calls):
            async with Store(name="old release", redis_config=store.redis_config) as old:
                old.register_model(Release2Plain)
                await Release2Plain.insert(Release2Plain(id="r0", x=0))  # drops the index
                old.unregister_model(Release2Plain)
        return await execute(calls)

    monkeypatch.setattr(store, "execute", first_write_of_the_old_release_before_the_read)
    with pytest.raises(IndexNotReadyError):
        # Found, then read: two round trips (a descending page, on any backend).
        await Release1.select(where={"x__in": [0, 1]}, order_by="-x", limit=10)


async def test_a_third_release_that_drops_the_state_does_not_hide_another_type(
    store: Store,
) -> None:
    await _release(store, Release2Str)
    await Release2Str.insert(Release2Str(id="r1", x="1"))
    config = store.redis_config
    async with Store(name="a", redis_config=config) as a, Store(name="c", redis_config=config) as c:
        a.register_model(Release2Plain)
        await Release2Plain.delete(ids=["r1"])  # its first write drops the index of x
        await Release2Str.insert(Release2Str(id="r2", x="5"))  # an entry of the str type
        c.register_model(Release1)
        await Release1.insert(Release1(id="r3", x=7))  # records exist: not complete
        with pytest.raises(IndexNotReadyError):
            await Release1.count(where={"x__gte": 0})
        a.unregister_model(Release2Plain)
        c.unregister_model(Release1)


def _after_each_scan_call_move_the_lowest(
    store: Store, records: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another client, after each call that scans an index, moves the record of lowest `n`
    not moved yet from before the scan's cursor to after it."""
    lowest = iter(records)
    execute = store.execute

    async def another_client_moves_one(calls: Any) -> Any:
        replies = await execute(calls)
        if any("query" in call.script.name for call in calls):
            record = next(lowest)
            record.n += 100_000
            await type(record).insert(record)
        return replies

    monkeypatch.setattr(store, "execute", another_client_moves_one)


@pytest.mark.onlynoncluster
async def test_records_moved_during_a_query_come_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.register_model(Numbered)
    records = [Numbered(id=f"r{i:05d}", n=i) for i in range(4_500)]
    await Numbered.insert(records)
    _after_each_scan_call_move_the_lowest(store, records, monkeypatch)
    found = await Numbered.select(order_by="n") or []
    assert len(found) == len({r.id for r in found}) == 4_500
    assert await Numbered.count(where={"n__gte": 0, "tag": "x"}) == 4_500


class TwoBuckets(Model):
    _primary_key_field: str = "id"
    _table_name: str = "twobuckets"
    _cluster_buckets: int = 2  # on a cluster, over 2,000 records each: scans of two calls
    id: str
    n: Annotated[int, Indexed()]


@pytest.mark.parametrize("order_by", [None, "n"])
async def test_records_moved_during_a_scan_without_a_page_come_once_in_order(
    store: Store, monkeypatch: pytest.MonkeyPatch, order_by: str | None
) -> None:
    # On a cluster, a query without a page reads records in its scanning calls: one moved
    # ahead of a bucket's cursor is read again, and comes once, where it was read last.
    store.register_model(TwoBuckets)
    records = [TwoBuckets(id=f"r{i:05d}", n=i) for i in range(4_500)]
    await TwoBuckets.insert(records)
    _after_each_scan_call_move_the_lowest(store, records, monkeypatch)
    found = await TwoBuckets.select(where={"n__gte": 0}, order_by=order_by) or []
    if order_by is None:  # moving changes `n`, not the key order: a page sees the same
        assert [r.id for r in found] == [r.id for r in records]
        assert await TwoBuckets.select(where={"n__gte": 0}, skip=4_000) == found[4_000:]
    else:
        assert sorted(r.id for r in found) == [r.id for r in records]
        assert found == sorted(found, key=lambda r: (r.n, r.id))


async def test_a_page_never_holds_a_record_that_moved_in_the_order_meanwhile(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.register_model(Numbered)
    await Numbered.insert([Numbered(id=f"r{i}", n=i) for i in range(10)])
    execute = store.execute
    moved = False

    async def another_client_moves_r9(calls: Any) -> Any:
        nonlocal moved
        replies = await execute(calls)
        if not moved and any("query" in call.script.name for call in calls):
            moved = True
            await Numbered.insert(Numbered(id="r9", n=0))
        return replies

    monkeypatch.setattr(store, "execute", another_client_moves_r9)
    page = await Numbered.select(where={"n__gte": 0}, order_by="-n", limit=3) or []
    assert [r.n for r in page] == sorted((r.n for r in page), reverse=True)
    assert "r9" not in [r.id for r in page]


async def test_a_record_missing_from_the_order_index_is_reported(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Numbered)
    await Numbered.insert([Numbered(id=f"r{i}", n=i) for i in range(5)])
    assert await Numbered.count(where={"n__gte": 0}) == 5  # the index is complete, known so
    index = key("numbered:r2").rsplit(":", 1)[0] + ":__index:n"
    values = key("numbered:r2").rsplit(":", 1)[0] + ":__values:n"
    raw.zrem(index, raw.hget(values, "r2") + "r2")
    raw.hdel(values, "r2")  # as a record that could not be read when the index was built
    with pytest.raises(CorruptRecordError, match=r"no entry in the index of n"):
        await Numbered.select(where={"tag": "x"}, order_by="n")
    problems: list[CorruptRecordError] = []
    found = await Numbered.select(where={"tag": "x"}, order_by="n", invalid=problems)
    assert [r.id for r in found or []] == ["r0", "r1", "r3", "r4"]
    assert [p.field for p in problems] == ["n"]


async def test_an_offset_with_seconds_is_refused_rather_than_changed(store: Store) -> None:
    class Event(Model):
        _primary_key_field: str = "id"
        id: str
        at: Annotated[datetime, Indexed()]

    store.register_model(Event)
    amsterdam_1900 = timezone(timedelta(minutes=19, seconds=32))
    with pytest.raises(SerializationError, match=r"Event\.at.*has seconds"):
        await Event.insert(Event(id="e", at=datetime(1900, 1, 1, 12, tzinfo=amsterdam_1900)))


async def test_a_key_of_another_type_has_its_place_in_a_page_as_in_a_full_scan(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Numbered)
    await Numbered.insert([Numbered(id=f"r{i}", n=i) for i in range(10)])
    raw.delete(key("numbered:r3"))
    raw.set(key("numbered:r3"), "another program's string")
    for where in (None, {"tag": "x"}):  # a full scan, then a query without a page
        invalid: list[CorruptRecordError] = []
        found = await Numbered.select(where=where, skip=4, invalid=invalid) or []
        assert ([r.id for r in found], invalid) == ([f"r{i}" for i in range(4, 10)], [])
        with pytest.raises(CorruptRecordError, match="r3"):
            await Numbered.select(where=where, skip=3)


# The keys of the bucket of record "numbered:r3", by what they hold (see `_keys.Shard.keys`).
_SHARD_KEYS = {"index": 0, "expiry": 1, "n's index": 2, "n's entries": 3, "tag's entries": 5}


@pytest.mark.parametrize("spoiled", list(_SHARD_KEYS))
async def test_a_read_that_meets_a_key_of_another_type_names_it(
    store: Store, raw: redis.Redis, spoiled: str
) -> None:
    # Reading calls check their keys' types when a read fails, or before they clean up:
    # each read gives its exact answer, or an error naming the key; never a bare WRONGTYPE.
    store.register_model(Numbered)
    await Numbered.insert([Numbered(id=f"r{i}", n=i) for i in range(10)])
    await Numbered.count(where={"n": 1})  # the index state, recorded before the damage
    table = _TABLES[Numbered]
    shard = table.shards[table.keys.shard_index("r3")]
    bad_key = shard.keys[_SHARD_KEYS[spoiled]]
    raw.delete(bad_key)
    raw.set(bad_key, "another program's string")
    reads: dict[str, tuple[Any, Any]] = {
        "select": (Numbered.select(), 10),
        "ids": (Numbered.select(ids=["r3", "r4"]), 2),
        "count": (Numbered.count(), 10),
        "query": (Numbered.select(where={"n__gte": 2}), 8),
        "ordered": (Numbered.select(where={"n__lt": 5}, order_by="-n"), 5),
        "page": (Numbered.select(where={"n__lt": 5}, order_by="n", skip=1, limit=2), 2),
        "counted": (Numbered.count(where={"n__lt": 5}), 5),
    }
    errors: dict[str, str] = {}
    for name, (read, expected) in reads.items():
        try:
            answer = await read
        except RedisOperationError as error:
            errors[name] = str(error)
        else:
            assert (len(answer) if isinstance(answer, list) else answer) == expected, name
    for name, error in errors.items():
        assert f"WRONGTYPE key {bad_key} holds a string" in error, name
    failed = set(errors)
    must_fail = {
        "index": {"select", "count", "counted"},
        "expiry": set(reads),  # every read looks for expired records first
        "n's index": {"query", "ordered", "page", "counted"},
    }
    assert must_fail.get(spoiled, set()) <= failed


async def test_a_read_that_would_clean_up_checks_every_key_first(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Numbered)
    await Numbered.insert([Numbered(id=f"r{i}", n=i) for i in range(10)])
    await Numbered.count(where={"n": 1})  # the index state, recorded before the damage
    await Numbered.insert(Numbered(id="r3", n=3), life_span_seconds=0.05)
    await asyncio.sleep(0.2)  # expired; its entries wait for a read to clean them up
    table = _TABLES[Numbered]
    shard = table.shards[table.keys.shard_index("r3")]
    tag_entries = shard.keys[_SHARD_KEYS["tag's entries"]]  # no read below reads it
    raw.delete(tag_entries)
    raw.set(tag_entries, "another program's string")
    before = {name: raw.dump(name) for name in shard.keys}
    for read in (Numbered.count, lambda: Numbered.select(where={"n": 3})):
        with pytest.raises(RedisOperationError, match=f"WRONGTYPE key {re.escape(tag_entries)}"):
            await read()
    assert {name: raw.dump(name) for name in shard.keys} == before  # nothing cleaned up


async def test_index_states_held_by_a_key_of_another_type_are_named(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Numbered)
    await Numbered.insert(Numbered(id="r1", n=1))
    state_key = _TABLES[Numbered].index_state.key
    raw.delete(state_key)
    raw.set(state_key, "another program's string")
    for read in (lambda: Numbered.count(where={"n": 1}), Numbered.build_indexes):
        with pytest.raises(RedisOperationError, match=f"WRONGTYPE key {re.escape(state_key)}"):
            await read()


async def test_a_primary_key_holding_a_nul_comes_back_whole(store: Store) -> None:
    # Index members are an encoding, a NUL, then the primary key; a key may hold a NUL too.
    store.register_model(Numbered)
    await Numbered.insert([Numbered(id=pk, n=1) for pk in ("a\x00b", "b", "c\x00")])
    for order_by in (None, "n", "-n"):
        found = await Numbered.select(where={"n": 1}, order_by=order_by)
        assert [r.id for r in found or []] == ["a\x00b", "b", "c\x00"], order_by


# -- values that read back otherwise than they were assigned --------------------------------
# Without validate_assignment, an assigned value is stored as it is and validated when read:
# the index holds the value as read, which is what a full scan compares.


class Member(AutoModel):
    _primary_key_field: str = "id"
    id: str
    email: Annotated[str, Indexed()]
    name: Annotated[str, Indexed(), PlainSerializer(str.upper)] = ""

    @field_validator("email")
    @classmethod
    def lower(cls, value: str) -> str:
        return value.lower()


async def test_an_assignment_a_validator_would_change_is_indexed_as_read(store: Store) -> None:
    store.register_model(Member)
    member = Member(id="1", email="ann@x.org", name="ann")
    await store.flush()
    member.email = "Bob@X.org"  # no validation: the record holds it, reads give bob@x.org
    await store.flush()
    other = Member(id="2", email="carl@x.org")
    await other.save()
    other.email = "Carl@X.org"
    await other.save()
    (read,) = await Member.select(ids=["1"]) or []
    assert (read.email, read.name) == ("bob@x.org", "ANN")
    assert await Member.select(where={"email": "bob@x.org"}, columns=["id"]) == [{"id": "1"}]
    assert await Member.count(where={"email__in": ["bob@x.org", "carl@x.org"]}) == 2
    assert await Member.select(where={"email__startswith": "B"}) is None
    assert await Member.select(where={"name": "ANN"}, columns=["id"]) == [{"id": "1"}]
    assert await Member.select(where={"name": "ann"}) is None


class Stamp(Model):
    model_config = ConfigDict(ser_json_temporal="milliseconds")
    _primary_key_field: str = "id"
    id: str
    at: Annotated[datetime, Indexed()]


async def test_a_naive_datetime_stored_as_milliseconds_is_indexed_as_read(store: Store) -> None:
    store.register_model(Stamp)
    naive = datetime(2020, 1, 1, 12)
    await Stamp.insert(Stamp(id="1", at=naive))
    (read,) = await Stamp.select() or []  # pydantic 2.12+: read back in UTC, so aware
    assert await Stamp.select(where={"at": read.at}) == [read]
    assert await Stamp.select(where={"at": naive}) == ([read] if read.at == naive else None)


class Tidy(Model):
    _primary_key_field: str = "id"
    id: str
    city: Annotated[str, Indexed()] = ""
    note: str = ""

    @model_validator(mode="after")
    def tidy(self) -> Tidy:
        self.__dict__["city"] = self.city.strip().title()
        return self


class TidyBefore(Model):  # Tidy before its city was indexed
    _primary_key_field: str = "id"
    _table_name: str = "tidy"
    id: str
    city: str = ""
    note: str = ""


async def test_a_model_validator_that_changes_a_field_is_indexed_as_read(store: Store) -> None:
    store.register_model(TidyBefore)
    await TidyBefore.insert(TidyBefore(id="2", city=" lyon"))
    store.unregister_model(TidyBefore)
    store.register_model(Tidy)
    with pytest.raises(IndexNotReadyError):
        await Tidy.select(where={"city": "Lyon"})
    await Tidy.build_indexes()  # from the records as a read of them gives
    assert await Tidy.select(where={"city": "Lyon"}, columns=["id"]) == [{"id": "2"}]
    tidy = Tidy(id="1")
    tidy.city = "  paris "
    await tidy.save()
    assert await Tidy.select(where={"city": "Paris"}) == [Tidy(id="1", city="Paris")]


class Titled(AutoModel):
    _primary_key_field: str = "id"
    id: str
    title: str = ""
    slug: Annotated[str, Indexed()] = ""
    price: Annotated[float | None, Indexed(), PlainSerializer(lambda v: v and round(v, 1))] = None

    @model_validator(mode="after")
    def slugged(self) -> Titled:
        self.__dict__["slug"] = self.title.lower()
        return self


async def test_a_change_of_one_field_moves_the_entry_of_another_it_changes_as_read(
    store: Store,
) -> None:
    store.register_model(Titled)
    await Titled.insert([Titled(id="a", title="Alpha"), Titled(id="b", title="Mid")])
    (alpha,) = await Titled.select(ids=["a"]) or []
    alpha.set_auto_sync(True)
    alpha.title = "Zed"  # only title changes; a read gives slug "zed"
    await store.flush()
    async with alpha.update():
        alpha.title = "Omega"
    assert [t.slug for t in await Titled.select(order_by="slug") or []] == ["mid", "omega"]
    assert await Titled.delete(where={"slug": "zed"}) == 0
    assert await Titled.count(where={"slug": "omega"}) == 1


async def test_a_serializer_inside_optional_is_indexed_as_read(store: Store) -> None:
    store.register_model(Titled)
    await Titled.insert(Titled(id="p", price=1.26))  # stored, and read, as 1.3
    assert await Titled.select(where={"price": 1.3}, columns=["id"]) == [{"id": "p"}]
    assert await Titled.select(where={"price": 1.26}) is None


class Lowered(Model):
    _primary_key_field: str = "id"
    id: str
    lower: bool = True
    name: Annotated[str, Indexed()] = ""

    @field_validator("name")
    @classmethod
    def lowered(cls, value: str, info: ValidationInfo) -> str:
        # Without the record (a query's value), there is no info.data to read.
        return value.lower() if (info.data or {}).get("lower") else value

    def model_post_init(self, context: Any) -> None:
        self.__dict__["name"] = self.name.strip()


async def test_validators_reading_other_fields_and_post_init_are_indexed_as_read(
    store: Store,
) -> None:
    store.register_model(Lowered)
    lowered = Lowered(id="1")
    lowered.name = " MiXeD "  # a read strips it (model_post_init) and lowers it (info.data)
    await lowered.save()
    assert await Lowered.select(where={"name": "mixed"}, columns=["id"]) == [{"id": "1"}]


class NeedsRecord(Model):
    _primary_key_field: str = "id"
    id: str
    name: Annotated[str, Indexed()] = ""

    @field_validator("name")
    @classmethod
    def needs_record(cls, value: str, info: ValidationInfo) -> str:
        return f"{info.data['id']}:{value}"  # a name tagged with its record's id


async def test_a_query_value_a_validator_cannot_take_alone_is_refused_clearly(
    store: Store,
) -> None:
    store.register_model(NeedsRecord)
    await NeedsRecord.insert(NeedsRecord(id="1", name="x"))
    with pytest.raises(
        InvalidInputError, match=r"NeedsRecord\.name.*cannot be validated on its own"
    ):
        await NeedsRecord.select(where={"name": "x"})


def _old_style_model() -> type[Model]:
    with warnings.catch_warnings():  # pydantic v1's decorators, deprecated but accepted
        warnings.simplefilter("ignore", DeprecationWarning)

        class OldStyle(Model):
            _primary_key_field: str = "id"
            id: str
            email: Annotated[str, Indexed()] = ""
            first: str = ""
            full: Annotated[str, Indexed()] = ""

            @validator("email")
            @classmethod
            def lowered(cls, value: str) -> str:
                return value.lower()

            @root_validator(skip_on_failure=True)
            @classmethod
            def named(cls, values: dict[str, Any]) -> dict[str, Any]:
                return {**values, "full": values["first"].upper()}

    return OldStyle


async def test_old_style_validators_are_indexed_as_read(store: Store) -> None:
    model = _old_style_model()
    store.register_model(model)
    record = model(id="1", first="bob")
    await record.save()
    record.email = "A@X.COM"
    async with record.update():
        record.first = "alice"
    assert await model.count(where={"email": "a@x.com"}) == 1
    assert await model.count(where={"full": "ALICE"}) == 1
    assert await model.count(where={"full": "BOB"}) == 0


class Session(AutoModel):
    _primary_key_field: str = "id"
    id: str
    user: Annotated[str, Indexed()]


async def test_the_first_query_of_a_model_sees_the_automatic_writes_made_before_it(
    store: Store,
) -> None:
    # Before any write of the model, a query finds no index state: it must send the queued
    # writes (which record it) before it reads the states, as every call sends them first.
    store.register_model(Session)
    Session(id="s1", user="alice")  # queued
    assert await Session.count(where={"user": "alice"}) == 1
    Session(id="s2", user="bob")
    assert await Session.delete(where={"user": "bob"}) == 1
    assert [s.id for s in await Session.select(where={"user": "alice"}) or []] == ["s1"]
