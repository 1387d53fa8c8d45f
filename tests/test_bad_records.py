"""Bad data in Redis: one clear error naming model, key and field, or, when asked for,
the bad records skipped and reported. Never a half-filled model, never a bare KeyError."""

from __future__ import annotations

import pytest
import redis

from pydantic_aioredis import CorruptRecordError, Model, RedisOperationError, Store
from tests.keys import index_key, key
from tests.models import Book, books

# What other programs (or bugs) can leave at a record's key, and what it is reported as.
DAMAGE = {
    "missing field": (lambda raw, key: raw.hdel(key, "author"), "author", "missing"),
    "wrong type": (lambda raw, key: raw.hset(key, "price", '"cheap"'), "price", "valid number"),
    "invalid JSON": (lambda raw, key: raw.hset(key, "tags", "[1,"), "tags", "invalid JSON"),
    "not a hash": (lambda raw, key: (raw.delete(key), raw.set(key, "x")), None, "not a hash"),
    # Loaded as it is, the record would be saved under another key.
    "another primary key": (
        lambda raw, key: raw.hset(key, "title", "book-99999"),
        "title",
        "the record's key names",
    ),
    "foreign record": (
        lambda raw, key: (raw.delete(key), raw.hset(key, mapping={"name": "other program"})),
        "title",
        "missing",
    ),
}


@pytest.fixture(autouse=True)
async def _books(store: Store) -> None:
    store.register_model(Book)
    await Book.insert(books(5))


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
async def test_select_names_model_key_and_field(raw: redis.Redis, damage: str) -> None:
    spoil, field, problem = DAMAGE[damage]
    spoil(raw, key("book:book-00003"))
    for select in (Book.select, lambda: Book.select(ids=["book-00003"])):
        with pytest.raises(CorruptRecordError, match=problem) as caught:
            await select()
        error = caught.value
        assert (error.model_name, error.key, error.field) == ("Book", key("book:book-00003"), field)


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
async def test_bad_records_can_be_skipped_and_reported(raw: redis.Redis, damage: str) -> None:
    spoil, field, _ = DAMAGE[damage]
    spoil(raw, key("book:book-00001"))
    spoil(raw, key("book:book-00003"))
    invalid: list[CorruptRecordError] = []
    found = await Book.select(invalid=invalid)
    assert [b.title for b in found or []] == ["book-00000", "book-00002", "book-00004"]
    assert [(e.key, e.field) for e in invalid] == [
        (key("book:book-00001"), field),
        (key("book:book-00003"), field),
    ]


async def test_columns_skip_and_report_too(raw: redis.Redis) -> None:
    raw.hset(key("book:book-00002"), "price", '"cheap"')
    invalid: list[CorruptRecordError] = []
    rows = await Book.select(columns=["price"], invalid=invalid)
    assert len(rows or []) == 4
    assert [(e.key, e.field) for e in invalid] == [(key("book:book-00002"), "price")]
    assert await Book.select(columns=["title"]) is not None  # other columns are fine


async def test_a_field_missing_with_a_default_takes_it(raw: redis.Redis) -> None:
    raw.hdel(key("book:book-00001"), "tags")  # as if the field had been added to the model later
    (book,) = await Book.select(ids=["book-00001"]) or []
    assert book.tags == []


async def test_bytes_that_are_not_utf8_name_the_record_and_can_be_skipped(
    raw: redis.Redis, store: Store
) -> None:
    spoiled = key("book:book-00002")
    raw.hset(spoiled, "author", b"caf\xe9 latin-1")  # bytes go out as they are
    with pytest.raises(CorruptRecordError, match="not UTF-8") as caught:
        await Book.select()
    assert (caught.value.key, caught.value.field) == (spoiled, "author")
    with pytest.raises(CorruptRecordError, match="not UTF-8"):
        await Book.select(columns=["author"])
    problems: list[CorruptRecordError] = []
    found = await Book.select(invalid=problems) or []
    assert [b.title for b in found] == ["book-00000", "book-00001", "book-00003", "book-00004"]
    assert [p.key for p in problems] == [spoiled]


WRITES = {
    "insert": lambda book: Book.insert(book),
    "save": lambda book: book.save(),
    "update": lambda book: _update_author(book),
    "delete ids": lambda book: Book.delete(ids=[book.title]),
    "delete all": lambda book: Book.delete(),
}


async def _update_author(book: Book) -> None:
    async with book.update():
        book.author = "someone else"


@pytest.mark.parametrize("write", WRITES, ids=list(WRITES))
@pytest.mark.parametrize("spoiled", ["__index", "__expiry"])
async def test_a_wrong_type_index_key_fails_a_write_whole(
    raw: redis.Redis, write: str, spoiled: str
) -> None:
    book = (await Book.select(ids=["book-00001"]) or [])[0]
    record, index = key("book:book-00001"), index_key("book:book-00001")
    bad_key = index.replace("__index", spoiled)
    watched = [record] if bad_key == index else [record, index]
    before = {name: raw.dump(name) for name in watched}
    raw.delete(bad_key)
    raw.set(bad_key, "another program's string")
    with pytest.raises(RedisOperationError, match=f"WRONGTYPE key .*{spoiled}"):
        await WRITES[write](book)
    assert {name: raw.dump(name) for name in watched} == before  # nothing written
    assert raw.get(bad_key) == "another program's string"


async def test_a_primary_key_column_that_is_not_the_keys_is_reported(raw: redis.Redis) -> None:
    raw.hset(key("book:book-00002"), "title", "book-99999")
    invalid: list[CorruptRecordError] = []
    rows = await Book.select(columns=["title", "price"], invalid=invalid)
    assert [row["title"] for row in rows or []] == [
        "book-00000",
        "book-00001",
        "book-00003",
        "book-00004",
    ]
    assert [(e.key, e.field) for e in invalid] == [(key("book:book-00002"), "title")]


class Numbered(Model):
    _primary_key_field: str = "n"
    n: int
    name: str = ""


async def test_a_primary_key_field_stored_as_json_is_checked_against_its_key_too(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Numbered)
    await Numbered.insert([Numbered(n=5), Numbered(n=7)])
    raw.hset(key("numbered:5"), "n", "6")
    invalid: list[CorruptRecordError] = []
    assert await Numbered.select(invalid=invalid) == [Numbered(n=7)]
    assert [(e.key, e.field) for e in invalid] == [(key("numbered:5"), "n")]
