"""Connections: errors from redis-py in the library's hierarchy, the limit of calls in flight
with an injected client, and the store used where no event loop runs."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio
import redis.asyncio.cluster

from pydantic_aioredis import RedisOperationError, Store, UsageError
from tests.models import Book, books


async def test_an_error_redis_py_raises_outside_its_own_hierarchy_is_wrapped(
    redis_url: str,
) -> None:
    # A client that decodes replies as UTF-16: redis-py fails with a UnicodeDecodeError.
    client = redis.asyncio.Redis.from_url(redis_url, encoding="utf-16", decode_responses=True)
    store = Store(name="s", redis_store=client)
    store.register_model(Book)
    with pytest.raises(RedisOperationError, match="Redis failed: UnicodeDecodeError") as caught:
        await Book.insert(Book(title="t", author="a"))
    assert isinstance(caught.value.__cause__, UnicodeDecodeError)
    await store.close()
    await client.aclose()


async def test_calls_wait_for_an_injected_client_with_a_small_pool(redis_url: str) -> None:
    pool = redis.asyncio.ConnectionPool.from_url(redis_url, max_connections=2)
    client = redis.asyncio.Redis.from_pool(pool)
    store = Store(name="s", redis_store=client)
    store.register_model(Book)
    stored = books(100)
    await asyncio.gather(*(book.save() for book in stored))  # 100 calls, 2 connections
    assert await Book.select() == stored
    await store.close()
    await client.aclose()


def test_the_client_outside_an_event_loop_is_a_usage_error() -> None:
    store = Store(name="s")
    with pytest.raises(UsageError, match="only available inside a running event loop"):
        store.redis_store  # noqa: B018
