"""Concurrent writers, in one event loop and in two processes: the store stays consistent
(every record in the index, no index entry without its record, whole records, the last write
of each field wins)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import redis

from pydantic_aioredis import RedisConfig, Store
from tests.models import Book


def _consistent(url: str, count: int) -> redis.Redis:
    client = redis.Redis.from_url(url, decode_responses=True)
    indexed = set(client.zrange("book:__index", 0, -1))
    stored = {key.removeprefix("book:") for key in client.scan_iter("book:*")} - {"__index"}
    assert indexed == stored
    assert len(stored) == count
    for pk in stored:
        assert set(client.hkeys(f"book:{pk}")) == set(Book.model_fields)
    return client


async def test_a_thousand_concurrent_saves_of_distinct_records(redis_url: str) -> None:
    store = Store(name="c", redis_config=RedisConfig.from_url(redis_url))
    store.register_model(Book)
    items = [Book(title=f"b{i:04d}", author=f"a{i}") for i in range(1000)]
    await asyncio.gather(*(item.save() for item in items))
    assert await Book.select() == items
    _consistent(redis_url, 1000).close()
    await store.close()


async def test_a_hundred_concurrent_writers_on_one_record(redis_url: str) -> None:
    store = Store(name="c", redis_config=RedisConfig.from_url(redis_url))
    store.register_model(Book)
    # Each writer writes a whole, self-consistent version: author and tags agree.
    versions = [Book(title="same", author=f"w{i}", tags=[f"w{i}"]) for i in range(100)]
    await asyncio.gather(*(version.save() for version in versions))
    (stored,) = await Book.select() or []
    assert stored in versions
    assert stored.tags == [stored.author]  # never a mix of two versions
    _consistent(redis_url, 1).close()
    await store.close()


async def test_field_updates_from_different_instances_all_land(redis_url: str) -> None:
    store = Store(name="c", redis_config=RedisConfig.from_url(redis_url))
    store.register_model(Book)
    await Book.insert(Book(title="same", author="a"))
    copies = await Book.select() or []
    first, second = copies[0], copies[0].model_copy()

    async def change_author() -> None:
        async with first.update():
            first.author = "changed by one"

    async def change_price() -> None:
        async with second.update():
            second.price = 1.5

    await asyncio.gather(change_author(), change_price())
    (stored,) = await Book.select() or []
    assert (stored.author, stored.price) == ("changed by one", 1.5)  # no lost update
    await store.close()


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pydantic_aioredis import RedisConfig, Store
    from tests.models import Book

    async def main(url, name):
        store = Store(name=name, redis_config=RedisConfig.from_url(url))
        store.register_model(Book)
        for i in range(300):
            versions = [Book(title=f"shared{j}", author=f"{name}-{i}", tags=[f"{name}-{i}"])
                        for j in range(3)]
            await asyncio.gather(*(v.save() for v in versions))
            await Book.insert(Book(title=f"{name}-{i}", author=name))
        await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def test_two_processes_writing_at_once(redis_url: str) -> None:
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, redis_url, name])
        for name in ("left", "right")
    ]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    client = _consistent(redis_url, 3 + 600)
    for j in range(3):
        record = client.hgetall(f"book:shared{j}")
        assert record["tags"] == f'["{record["author"]}"]'  # one writer's whole version
        assert record["author"] in ("left-299", "right-299")  # the last write wins
    client.close()
