"""Connections: errors from redis-py in the library's hierarchy, the limit of calls in flight
with an injected client, and the store used where no event loop runs."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import uuid
from typing import Any

import fakeredis
import pytest
import redis.asyncio
import redis.asyncio.cluster

from pydantic_aioredis import RedisConfig, RedisOperationError, Store, UsageError
from tests.keys import register_alone
from tests.models import Book, books
from tests.test_autosave import Note


async def test_an_error_redis_py_raises_outside_its_own_hierarchy_is_wrapped(
    redis_url: str,
) -> None:
    # A client that decodes replies as ASCII, reading a record that holds other text:
    # redis-py fails with a UnicodeDecodeError, outside its own errors.
    writer = Store(name="w", redis_config=RedisConfig.from_url(redis_url))
    register_alone(writer, Book)
    await Book.insert(Book(title="t", author="Brontë"))
    await writer.close()
    client = redis.asyncio.Redis.from_url(redis_url, encoding="ascii", decode_responses=True)
    store = Store(name="s", redis_store=client)
    register_alone(store, Book)
    with pytest.raises(RedisOperationError, match="Redis failed: UnicodeDecodeError") as caught:
        await Book.select()
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


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"version": 6},
        {"server_type": "valkey"},
        {"host": uuid.uuid4().hex, "port": 6380, "db": 3},
        {"server": fakeredis.FakeServer()},
    ],
)
def test_an_injected_fakeredis_client_has_a_twin_on_its_data(options: dict[str, Any]) -> None:
    client = fakeredis.FakeAsyncRedis(**options)
    store = Store(name="s", redis_store=client)
    store.register_model(Note)
    Note(id="written outside a loop")  # sent at once, by the store's synchronous twin
    assert asyncio.run(client.hget("note:written outside a loop", "id")) == (
        b"written outside a loop"
    )
    store.sync_client().close()


def test_writes_to_an_injected_fakeredis_client_queued_at_exit_are_sent() -> None:
    program = textwrap.dedent(
        """
        import asyncio, atexit
        import fakeredis
        from pydantic_aioredis import AutoModel, Store

        class Item(AutoModel):
            _primary_key_field: str = "id"
            id: int

        client = fakeredis.FakeAsyncRedis()
        # Registered before the store's own, so it runs after it (last in, first out).
        atexit.register(lambda: print(asyncio.run(client.zcard("item:__index"))))
        store = Store(name="exit", redis_store=client)
        store.register_model(Item)

        async def main():
            for i in range(100):
                Item(id=i)

        asyncio.run(main())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60
    )
    assert (result.stdout, result.stderr) == ("100\n", "")
