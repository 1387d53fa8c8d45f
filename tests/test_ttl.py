"""Life spans: records expire on their own, never because another record did."""

from __future__ import annotations

import asyncio

import redis

from pydantic_aioredis import RedisConfig, Store
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
