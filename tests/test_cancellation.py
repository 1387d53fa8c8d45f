"""A cancelled call affects that call only: calls that nobody cancelled, running beside it
through the same small connection limit, neither fail nor see wrong results (on a single
server, on the embedded backend and on a Redis Cluster).

On a cluster, redis-py sends a call to each node in a subtask; cancelling the call could
leave one of them running (on Python 3.11 its `asyncio.wait_for` can swallow the
cancellation) with a connection that the store's limit had already handed to the next
call. The node's pool then ran out, and redis-py failed, or closed the connections of,
calls that nobody cancelled.
"""

from __future__ import annotations

import asyncio
import gc
import random
from collections import deque
from typing import Any

import pytest

from pydantic_aioredis import RedisConfig, Store
from tests.keys import register_alone
from tests.models import Book, books


async def _one_call(rng: random.Random, stored: list[Book]) -> None:
    """An insert or a select of ten records, spread over all buckets of a cluster."""
    chosen = rng.sample(stored, 10)
    if rng.random() < 0.5:
        assert await Book.insert(chosen) == 10
    else:
        ids = [book.title for book in chosen]
        assert await Book.select(ids=ids) == chosen


async def test_a_cancelled_call_fails_no_other_call(config: RedisConfig) -> None:
    if config.in_memory:
        pytest.skip("the embedded backend has no connections to share")
    store = Store(name="c", redis_config=config.model_copy(update={"max_connections": 4}))
    store.register_model(Book)
    stored = books(1_000)
    await Book.insert(stored)
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: unhandled.append(context))
    failures: list[BaseException] = []
    outcomes = {"cancelled": 0, "completed": 0, "bystander calls": 0}
    # What the bystanders' last calls took: deadlines from nothing to that much cut
    # calls at every stage (waiting for a slot, sending, reading, decoding).
    call_times: deque[float] = deque([0.001], maxlen=50)
    victims_done = asyncio.Event()

    async def bystander(rng: random.Random) -> None:
        while not victims_done.is_set():
            start = loop.time()
            try:
                await _one_call(rng, stored)
                outcomes["bystander calls"] += 1
            except Exception as exc:
                failures.append(exc)
            call_times.append(loop.time() - start)

    async def victim(rng: random.Random, calls: int) -> None:
        for _ in range(calls):
            deadline = rng.uniform(0, sum(call_times) / len(call_times))
            try:
                await asyncio.wait_for(_one_call(rng, stored), deadline)
                outcomes["completed"] += 1
            except asyncio.TimeoutError:
                outcomes["cancelled"] += 1
            except Exception as exc:  # a victim may only ever see its own deadline
                failures.append(exc)

    async def victims() -> None:
        await asyncio.gather(*(victim(random.Random(seed), 1_500) for seed in (1, 2)))
        victims_done.set()

    await asyncio.gather(victims(), *(bystander(random.Random(seed)) for seed in (3, 4)))
    print(outcomes)
    await store.close()
    gc.collect()  # report tasks whose exceptions nobody retrieved
    loop.set_exception_handler(None)
    assert failures == []
    assert unhandled == []
    assert await _all_there(config, stored)


async def _all_there(config: RedisConfig, stored: list[Book]) -> bool:
    previous = Book._store
    store = Store(name="check", redis_config=config)
    register_alone(store, Book)
    try:
        return await Book.select() == stored
    finally:
        await store.close()
        if previous is not None:
            register_alone(previous, Book)


async def test_a_call_made_after_a_cancelled_one_goes_out_after_it(store: Store) -> None:
    # On a cluster a cancelled insert runs on in the background (its calls fan out over
    # the nodes); the save made next must not be overtaken by it.
    store.register_model(Book)
    for steps in range(6):  # cancel the insert at each of its first steps
        first = books(20)
        insert = asyncio.ensure_future(Book.insert(first))
        for _ in range(steps):
            await asyncio.sleep(0)
        insert.cancel()
        changed = first[0].model_copy(update={"author": f"changed after step {steps}"})
        await changed.save()
        await store.close()  # and the background work with it
        assert await Book.select(ids=[changed.title]) == [changed]
