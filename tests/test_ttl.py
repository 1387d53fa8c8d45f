"""Life spans: records expire on their own, never because another record did."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
import redis

from pydantic_aioredis import (
    AutoModel,
    ConfigurationError,
    InvalidInputError,
    RedisConfig,
    Store,
)
from tests.keys import index_key, key
from tests.models import Book, books


async def test_records_expire_and_leave_selects(config: RedisConfig) -> None:
    store = Store(name="ttl", redis_config=config, life_span_in_seconds=0.3)
    store.register_model(Book)
    await Book.insert(books(3))
    await Book.insert(Book(title="keeper", author="x"), life_span_seconds=60)
    assert await Book.count() == 4
    await asyncio.sleep(0.5)
    assert [b.title for b in await Book.select() or []] == ["keeper"]
    assert await Book.select(ids=["book-00001"]) is None
    assert await Book.count() == 1
    await store.close()


async def test_a_record_without_ttl_outlives_the_ones_with_ttl(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Book)
    await Book.insert(Book(title="forever", author="x"))
    await Book.insert(books(2), life_span_seconds=0.2)
    await asyncio.sleep(0.4)
    assert [b.title for b in await Book.select() or []] == ["forever"]
    assert raw.ttl(key("book:forever")) == -1
    assert raw.ttl(index_key("book:forever")) == -1  # the index itself never expires


async def test_paging_never_counts_expired_records(store: Store) -> None:
    store.register_model(Book)
    inserted = books(10)
    await Book.insert(inserted)
    await Book.insert([inserted[1], inserted[3]], life_span_seconds=0.2)
    await asyncio.sleep(0.4)
    alive = [b for i, b in enumerate(inserted) if i not in (1, 3)]
    assert await Book.select(skip=0, limit=4) == alive[:4]
    assert await Book.select(skip=4, limit=4) == alive[4:]


async def test_a_write_without_a_ttl_keeps_the_one_the_record_has(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Book)
    book = Book(title="t", author="a")
    await Book.insert(book, life_span_seconds=1)
    await book.save()  # no life span, and the store has none: the TTL stays (as with HSET)
    await Book.insert(book)
    assert 0 < raw.pttl(key("book:t")) <= 1000
    await asyncio.sleep(1.2)
    assert await Book.select() is None
    assert await Book.count() == 0


async def test_the_store_life_span_applies_to_automatic_writes(config: RedisConfig) -> None:
    from tests.test_autosave import Note

    store = Store(name="ttl", redis_config=config, life_span_in_seconds=30)
    store.register_model(Note)
    Note(id="n")
    await store.flush()
    assert 0 < store.sync_client().pttl(key("note:n")) <= 30_000
    await store.close()


async def test_field_updates_keep_the_record_ttl(store: Store, raw: redis.Redis) -> None:
    store.register_model(Book)
    book = Book(title="t", author="a")
    await Book.insert(book, life_span_seconds=60)
    async with book.update():
        book.author = "b"
    assert 50_000 < raw.pttl(key("book:t")) <= 60_000


# One rule for every write path: a write given a life span (the call's, else the store's)
# sets it; a write given none keeps the TTL the record has, if any. A record without a TTL
# never disappears, whatever its earlier lives left behind.


class Offer(AutoModel):
    _primary_key_field: str = "code"
    code: str
    price: int = 0


async def _expired_unread(life_span: float = 0.05) -> None:
    await Offer.insert(Offer(code="S", _auto_save=False), life_span_seconds=life_span)
    await asyncio.sleep(life_span + 0.1)  # expired; nothing read it since


@pytest.mark.parametrize("path", ["insert", "save", "automatic"])
async def test_a_record_written_again_after_it_expired_unread_is_permanent(
    store: Store, raw: redis.Redis, path: str
) -> None:
    store.register_model(Offer)
    await _expired_unread()
    offer = Offer(code="S", price=2, _auto_save=path == "automatic")
    if path == "insert":
        await Offer.insert(offer)
    elif path == "save":
        await offer.save()
    await asyncio.sleep(0.1)
    assert await Offer.select() == [offer]
    assert await Offer.count() == 1
    assert raw.pttl(key("offer:S")) == -1


async def test_a_record_another_program_made_permanent_is_not_purged(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Offer)
    await Offer.insert(Offer(code="P", _auto_save=False), life_span_seconds=0.1)
    raw.persist(key("offer:P"))  # someone decided it stays
    await asyncio.sleep(0.2)
    assert [o.code for o in await Offer.select() or []] == ["P"]
    assert await Offer.count() == 1


async def test_a_field_update_keeps_the_ttl_without_a_store_life_span(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Offer)
    offer = Offer(code="F", _auto_save=False)
    await Offer.insert(offer, life_span_seconds=0.3)
    offer.price = 5  # automatic field update: the TTL stays
    async with offer.update():
        offer.price = 6
    assert 0 < raw.pttl(key("offer:F")) <= 300
    await asyncio.sleep(0.5)
    assert await Offer.select() is None


async def test_every_write_sets_the_store_life_span(config: RedisConfig) -> None:
    store = Store(name="ttl", redis_config=config, life_span_in_seconds=30)
    store.register_model(Offer)
    raw = store.sync_client()
    offer = Offer(code="D", _auto_save=False)
    await Offer.insert(offer, life_span_seconds=0.5)
    offer.price = 1  # a field update given the store's life span: it sets it
    await store.flush()
    assert raw.pttl(key("offer:D")) > 20_000
    await Offer.insert(offer, life_span_seconds=0.5)
    await offer.save()
    assert raw.pttl(key("offer:D")) > 20_000
    await store.close()


async def test_counts_and_pages_are_exact_past_many_expired_records(store: Store) -> None:
    store.register_model(Offer)
    expiring = [Offer(code=f"e{i:04d}", _auto_save=False) for i in range(2_500)]
    await Offer.insert(expiring, life_span_seconds=0.2)
    live = [Offer(code=f"l{i}", _auto_save=False) for i in range(10)]
    await Offer.insert(live)
    await asyncio.sleep(0.4)
    assert await Offer.count() == 10
    assert await Offer.select(limit=10) == live
    assert await Offer.select(skip=5, limit=10) == live[5:]


@pytest.mark.parametrize("life_span", [math.inf, -math.inf, math.nan, 1e14, 0, -1, True, "1"])
async def test_a_bad_life_span_is_refused_before_anything_is_written(
    store: Store, raw: redis.Redis, life_span: Any
) -> None:
    store.register_model(Offer)
    offer = Offer(code="X", _auto_save=False)
    with pytest.raises(InvalidInputError, match="life span"):
        await Offer.insert(offer, life_span_seconds=life_span)
    with pytest.raises(InvalidInputError, match="life span"):
        await offer.save(life_span_seconds=life_span)
    assert raw.exists(key("offer:X")) == 0
    assert await Offer.count() == 0


@pytest.mark.parametrize("life_span", [math.inf, math.nan, 1e14, 0])
def test_a_bad_store_life_span_is_refused(life_span: float) -> None:
    with pytest.raises(ConfigurationError, match="life_span_in_seconds"):
        Store(name="s", life_span_in_seconds=life_span)
