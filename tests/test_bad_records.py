"""Bad data in Redis: one clear error naming model, key and field, or, when asked for,
the bad records skipped and reported. Never a half-filled model, never a bare KeyError."""

from __future__ import annotations

import pytest
import redis

from pydantic_aioredis import CorruptRecordError, Store
from tests.keys import key
from tests.models import Book, books

# What other programs (or bugs) can leave at a record's key, and what it is reported as.
DAMAGE = {
    "missing field": (lambda raw, key: raw.hdel(key, "author"), "author", "missing"),
    "wrong type": (lambda raw, key: raw.hset(key, "price", '"cheap"'), "price", "valid number"),
    "invalid JSON": (lambda raw, key: raw.hset(key, "tags", "[1,"), "tags", "invalid JSON"),
    "not a hash": (lambda raw, key: (raw.delete(key), raw.set(key, "x")), None, "not a hash"),
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
