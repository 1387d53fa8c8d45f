"""Store: registration rules, lookup, injected clients, lifecycle."""

from __future__ import annotations

import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest
import redis
import redis.asyncio
from pydantic import create_model

from pydantic_aioredis import (
    ConfigurationError,
    InvalidInputError,
    Model,
    NotRegisteredError,
    PrimaryKeyError,
    RedisConfig,
    Store,
)
from tests.keys import key
from tests.models import Book, Library


class NoKey(Model):
    title: str


class WrongKey(Model):
    _primary_key_field: str = "isbn"
    title: str


def test_register_requires_a_primary_key_that_is_a_field() -> None:
    store = Store(name="s")
    with pytest.raises(ConfigurationError, match="NoKey has no _primary_key_field"):
        store.register_model(NoKey)
    with pytest.raises(ConfigurationError, match="'isbn', which is not a field of WrongKey"):
        store.register_model(WrongKey)


def test_register_refuses_anything_but_a_model() -> None:
    with pytest.raises(ConfigurationError, match="not a pydantic_aioredis Model"):
        Store(name="s").register_model(dict)  # type: ignore[type-var]


def test_model_lookup_ignores_case() -> None:
    store = Store(name="s")
    store.register_model(Book)
    assert store.model("book") is Book
    assert store.model("BOOK") is Book
    with pytest.raises(KeyError, match="no model named 'Film'"):
        store.model("Film")


def test_models_are_per_store() -> None:
    first, second = Store(name="a"), Store(name="b")
    first.register_model(Book)
    second.register_model(Library)
    assert list(first.models) == ["book"]
    assert list(second.models) == ["library"]


def test_two_models_may_not_share_keys() -> None:
    class Shelf(Model):
        _primary_key_field: str = "id"
        _table_name: str = "book"
        id: str

    class Nested(Model):
        _primary_key_field: str = "id"
        _table_name: str = "book:x"
        id: str

    class Prefixed(Model):
        _primary_key_field: str = "id"
        _redis_prefix: str = "book"
        _table_name: str = "y"
        id: str

    store = Store(name="s")
    store.register_model(Book)
    for clash in (Shelf, Nested, Prefixed):
        with pytest.raises(ConfigurationError, match="overlaps Book's 'book:'"):
            store.register_model(clash)


def test_registering_twice_is_harmless() -> None:
    store = Store(name="s")
    store.register_model(Book)
    store.register_model(Book)
    assert store.model("book") is Book


def test_a_non_positive_life_span_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="life_span_in_seconds"):
        Store(name="s", life_span_in_seconds=0)


@pytest.mark.parametrize("decode", [True, False])
async def test_an_injected_client_is_used_as_given(redis_url: str, decode: bool) -> None:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=decode)
    store = Store(name="s", redis_config=RedisConfig(db=0), redis_store=client)
    assert store.redis_store is client
    store.register_model(Book)
    book = Book(title="Tolkien", author="J.R.R.", tags=["a"])
    await Book.insert(book)
    assert await Book.select() == [book]
    assert await Book.select(columns=["tags"]) == [{"tags": ["a"]}]
    assert await client.exists("book:Tolkien") == 1  # it went to the injected client's db
    await store.close()
    assert await client.ping()  # the owner closes an injected client, not the store
    await client.aclose()


def test_an_injected_client_has_a_sync_twin_for_writes_outside_a_loop(redis_url: str) -> None:
    from tests.test_autosave import Note

    client = redis.asyncio.Redis.from_url(redis_url)  # never connects: no loop runs here
    store = Store(name="s", redis_store=client)
    store.register_model(Note)
    Note(id="sync")
    plain = redis.Redis.from_url(redis_url)
    assert plain.exists("note:sync") == 1
    plain.close()
    store.sync_client().close()


async def test_one_store_across_several_event_loops(redis_url: str) -> None:
    import asyncio
    import threading

    store = Store(name="s", redis_config=RedisConfig.from_url(redis_url))
    store.register_model(Book)
    await Book.insert(Book(title="a", author="b"))
    found: list[object] = []

    async def count_in_another_loop() -> None:
        found.append(await Book.count())
        await store.close()  # closes that loop's connections

    thread = threading.Thread(target=lambda: asyncio.run(count_in_another_loop()))
    thread.start()
    thread.join()
    assert found == [1]
    await store.close()


@pytest.mark.parametrize("pk", ["__index", "__expiry", "x" * 4097])
async def test_reserved_and_overlong_primary_keys_are_refused(store: Store, pk: str) -> None:
    store.register_model(Book)
    with pytest.raises(InvalidInputError, match="primary key"):
        await Book.insert(Book(title=pk, author="x"))
    assert await Book.count() == 0


@pytest.mark.parametrize(
    ("pk", "problem"),
    [
        ("__index", "reserved"),
        ("__expiry", "reserved"),
        ("__write:abc", "reserved"),
        ("__values:title", "reserved"),
        ("x" * 4097, "4097 characters long"),
        ("bad \ud800", "cannot be stored: surrogates not allowed"),
    ],
)
async def test_a_bad_primary_key_among_many_ids_is_named(
    store: Store, pk: str, problem: str
) -> None:
    """Many ids are checked at once: a bad one among good ones is still found and named."""
    store.register_model(Book)
    await Book.insert(Book(title="ok", author="x"))
    ids = [f"t{i}" for i in range(50)] + [pk, "ok"]
    with pytest.raises(InvalidInputError, match=problem):
        await Book.select(ids=ids)
    with pytest.raises(InvalidInputError, match=problem):
        await Book.delete(ids=ids)
    assert await Book.count() == 1


@pytest.mark.parametrize(
    "pk", ["", " ", "a:b", "*", "?", "[x]", "line\nbreak", "ünïcødé ✓", "__indexx", "x" * 4096]
)
async def test_unusual_primary_keys_round_trip(store: Store, pk: str) -> None:
    store.register_model(Book)
    await Book.insert([Book(title=pk, author="x"), Book(title="z", author="y")])
    assert await Book.select(ids=[pk]) == [Book(title=pk, author="x")]
    assert [b.title for b in await Book.select() or []] == sorted([pk, "z"])
    assert [b.title for b in await Book.select(skip=1) or []] == sorted([pk, "z"])[1:]
    assert await Book.delete(ids=[pk]) == 1
    assert [b.title for b in await Book.select() or []] == ["z"]


@pytest.mark.onlynoncluster  # the cluster layout: test_cluster.py
async def test_keys_follow_the_documented_layout(store: Store, raw: redis.Redis) -> None:
    class Item(Model):
        _primary_key_field: str = "sku"
        _redis_prefix: str = "shop"
        _redis_separator: str = "|"
        _table_name: str = "items"
        sku: str

    store.register_model(Book)
    store.register_model(Item)
    await Book.insert(Book(title="The Hobbit", author="J.R.R. Tolkien"))
    await Item.insert(Item(sku="a:b *?[]"))
    assert sorted(raw.keys("*")) == [
        "book:The Hobbit",
        "book:__index",
        "shop|items|__index",
        "shop|items|a:b *?[]",
    ]
    assert raw.type(key("book:The Hobbit")) == "hash"
    assert raw.zrange("book:__index", 0, -1) == ["The Hobbit"]
    assert await Item.select(ids=["a:b *?[]"]) == [Item(sku="a:b *?[]")]


async def test_keys_with_glob_characters_touch_only_their_own_record(store: Store) -> None:
    store.register_model(Book)
    store.register_model(Library)
    await Book.insert([Book(title=t, author="x") for t in ("*", "?", "[a]", "a", "b")])
    await Library.insert(Library(name="*", address="somewhere"))
    assert await Book.delete(ids=["*", "?"]) == 2
    assert [b.title for b in await Book.select() or []] == ["[a]", "a", "b"]
    assert await Library.select() == [Library(name="*", address="somewhere")]
    assert [b.title for b in await Book.select(ids=["[a]"]) or []] == ["[a]"]


async def test_unknown_fields_in_updates_are_refused(store: Store) -> None:
    store.register_model(Book)
    book = Book(title="t", author="a")
    await book.save()
    with pytest.raises(ValueError, match='"Book" object has no field "colour"'):
        async with book.update():
            book.colour = "red"  # type: ignore[attr-defined]
    assert await Book.select() == [Book(title="t", author="a")]


async def test_a_store_with_another_text_encoding_round_trips(redis_url: str) -> None:
    # Text goes to Redis in the configured encoding (redis-py's own packer: the faster
    # one the library installs speaks UTF-8 only).
    store = Store(name="latin", redis_config=RedisConfig.from_url(redis_url, encoding="latin-1"))
    store.register_model(Book)
    book = Book(title="Café", author="Zoë")
    await Book.insert(book)
    assert await Book.select() == [book]
    with redis.Redis.from_url(redis_url) as plain:
        assert plain.hget("book:Café".encode("latin-1"), "author") == "Zoë".encode("latin-1")
    await store.close()


@pytest.mark.parametrize("name", ["auto_save", "auto_sync", "save", "update", "mark_changed"])
def test_a_field_named_like_a_library_attribute_is_refused(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydantic's own shadowing warning, if any
        model = create_model("Clash", __base__=Model, id=(str, ...), **{name: (bool, False)})
    model._primary_key_field = "id"  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match=f"field\\(s\\) named '{name}'"):
        Store(name="s").register_model(model)


def test_a_model_belongs_to_one_store_at_a_time() -> None:
    first, second = Store(name="first"), Store(name="second")
    first.register_model(Book)
    with pytest.raises(ConfigurationError, match="registered with store 'first' already"):
        second.register_model(Book)
    assert first.model("book") is Book
    first.unregister_model(Book)  # the move, said out loud
    second.register_model(Book)
    assert Book._store is second
    assert "book" not in first.models
    with pytest.raises(NotRegisteredError):
        first.unregister_model(Book)


class MaybeNamed(Model):
    _primary_key_field: str = "id"
    id: str | None


class NumberOrName(Model):
    _primary_key_field: str = "id"
    id: int | str


class Anything(Model):
    _primary_key_field: str = "id"
    id: Any


class MaybeBytes(Model):
    _primary_key_field: str = "id"
    id: bytes | None


class OneOrOne(Model):
    _primary_key_field: str = "id"
    id: Literal["1", 1]


class MaybePath(Model):
    _primary_key_field: str = "id"
    id: Path | None


class NumberOrDecimal(Model):  # Decimal("1") is stored as "1", as 1 is
    _primary_key_field: str = "id"
    id: int | Decimal


@pytest.mark.parametrize(
    "model", [MaybeNamed, NumberOrName, Anything, MaybeBytes, OneOrOne, MaybePath, NumberOrDecimal]
)
def test_a_primary_key_whose_strings_could_spell_its_other_values_is_refused(
    model: type[Model],
) -> None:
    # None is stored as 'null' and 1 as '1': two records would share one key.
    store = Store(name="spelled", redis_config=RedisConfig(in_memory=True))
    with pytest.raises(PrimaryKeyError, match=rf"{model.__name__}\.id is the primary key"):
        store.register_model(model)
