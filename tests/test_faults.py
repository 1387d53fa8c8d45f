"""Faults: the server killed in the middle of an operation, then restarted; a hung server.

Each test owns its redis-server (with an append-only file, so that what reached the server
survives the kill) and checks that every call either succeeded or raised the library's error
with the redis-py cause, and that no record is ever left half-written.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Awaitable, Iterator

import pytest
import redis

from pydantic_aioredis import AutoSaveError, RedisConfig, RedisOperationError, Store
from tests.models import Book, Movie, books
from tests.servers import REDIS_SERVER, RedisServer

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="needs redis-server")

FIELDS = set(Book.model_fields)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer(None, "--appendonly", "yes", "--appendfsync", "always") as server:
        yield server


def _store(server: RedisServer, **options: float) -> Store:
    config = RedisConfig.from_url(server.url, retries=0, socket_connect_timeout=1, **options)
    store = Store(name="faults", redis_config=config)
    store.register_model(Book)
    store.register_model(Movie)
    return store


def _kill_when(server: RedisServer, ready: str) -> threading.Thread:
    """Kill the server from another thread as soon as `ready` (a Lua condition on the
    server, or "now") holds."""

    def watch() -> None:
        client = redis.Redis(port=server.port, socket_timeout=1)
        deadline = time.monotonic() + 20
        try:
            while ready != "now" and time.monotonic() < deadline:
                if client.eval(f"return {ready} and 1 or 0", 0):
                    break
        except redis.RedisError:
            pass
        finally:
            client.close()
        server.stop()

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


async def _outcome(call: Awaitable[object]) -> RedisOperationError | None:
    """None if the call succeeded, else its error, which must carry the redis-py cause."""
    try:
        await call
    except RedisOperationError as error:
        if not isinstance(error.__cause__, redis.ConnectionError):
            raise
        return error
    return None


def _assert_whole(server: RedisServer) -> int:
    """Every index entry has a whole record and every record its index entry."""
    client = redis.Redis(port=server.port, decode_responses=True)
    indexed = set(client.zrange("book:__index", 0, -1))
    stored = {key.removeprefix("book:") for key in client.scan_iter("book:book-*")}
    assert indexed == stored
    for pk in stored:
        assert set(client.hkeys(f"book:{pk}")) == FIELDS, pk
    client.close()
    return len(stored)


async def test_killed_during_a_bulk_insert(server: RedisServer) -> None:
    store = _store(server)
    killer = _kill_when(server, "redis.call('DBSIZE') > 1000")
    outcome = await _outcome(Book.insert(books(20_000)))
    killer.join()
    server.start()
    count = _assert_whole(server)
    assert 0 < count <= 20_000 if outcome is not None else count == 20_000
    found = await Book.select()  # what is there reads back as valid models
    assert len(found or []) == count
    await store.close()


async def test_killed_during_a_select(server: RedisServer) -> None:
    store = _store(server)
    await Book.insert(books(20_000))
    killer = _kill_when(server, "now")
    outcome = await _outcome(Book.select())
    assert outcome is None or isinstance(outcome.__cause__, redis.ConnectionError)
    killer.join()
    server.start()
    assert len(await Book.select() or []) == 20_000
    await store.close()


async def test_automatic_writes_made_while_down_land_after_the_restart(
    server: RedisServer,
) -> None:
    store = _store(server)
    movies = [Movie(title=f"m{i:03d}") for i in range(200)]
    await store.flush()
    server.stop()
    for movie in movies:
        movie.director = "changed while down"
    late = [Movie(title=f"late{i:03d}", director="born while down") for i in range(50)]
    with pytest.raises(AutoSaveError) as caught:
        await store.flush()
    assert isinstance(caught.value.__cause__, redis.ConnectionError)
    assert len(store.pending) == 250
    server.start()
    await store.flush()
    stored = await Movie.select() or []
    assert len(stored) == 250
    assert {m.director for m in stored} == {"changed while down", "born while down"}
    assert [m for m in stored if m.title.startswith("late")] == late
    await store.close()


async def test_a_hung_server_fails_calls_after_the_timeout(server: RedisServer) -> None:
    store = _store(server, socket_timeout=0.5)
    await Book.insert(books(10))
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(RedisOperationError) as caught:
            await Book.select()
        assert isinstance(caught.value.__cause__, redis.TimeoutError)
        assert time.monotonic() - started < 5
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    await asyncio.sleep(0.1)
    assert len(await Book.select() or []) == 10
    await store.close()


async def test_retries_ride_out_a_short_restart(server: RedisServer) -> None:
    config = RedisConfig.from_url(server.url, retries=8, socket_connect_timeout=1)
    store = Store(name="retries", redis_config=config)
    store.register_model(Book)
    await Book.insert(books(10))
    server.stop()
    restart = threading.Timer(0.3, server.start)
    restart.start()
    found = await Book.select()  # retried with backoff until the server is back
    restart.join()
    assert len(found or []) == 10
    await store.close()


async def test_killed_in_the_middle_of_a_burst_of_automatic_writes(server: RedisServer) -> None:
    store = _store(server)
    movies = [Movie(title=f"m{i:05d}", director="first") for i in range(5000)]  # queued
    killer = _kill_when(server, "redis.call('DBSIZE') > 500")
    error = await _outcome(store.flush())
    killer.join()
    if error is not None:
        assert isinstance(error, AutoSaveError)
        assert len(store.pending) > 0  # what was not acknowledged is still queued
    server.start()
    await store.flush()
    assert len(store.pending) == 0
    assert await Movie.select() == movies
    await store.close()


async def test_automatic_writes_refused_for_lack_of_memory_stay_queued(
    server: RedisServer,
) -> None:
    store = _store(server)
    movie = Movie(title="m")
    await store.flush()
    admin = redis.Redis(port=server.port)
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)
    try:
        movie.director = "changed while full"
        born = Movie(title="born while full")
        with pytest.raises(AutoSaveError) as caught:
            await store.flush()
        assert isinstance(caught.value.__cause__, redis.exceptions.OutOfMemoryError)
        assert len(store.pending) == 2  # kept, to be sent again: the failure may pass
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()
    await store.flush()
    assert await Movie.select(ids=["m", "born while full"]) == [movie, born]
    assert (await Movie.select(ids="m") or [])[0].director == "changed while full"
    await store.close()
