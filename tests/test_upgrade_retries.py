"""A migration whose calls redis-py sends twice (a timeout, then a retry) reports exact counts.

As in tests/test_retries.py, the server is stalled for longer than the client's socket
timeout (SIGSTOP, then SIGCONT): the first sending of a call runs when the server wakes up,
and redis-py, having timed out, sends it again on a new connection. The second sending must
answer what the first did, not "nothing left to do".
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest
import redis

from pydantic_aioredis import Model, RedisConfig, Store
from pydantic_aioredis.migrate import upgrade_from_1_4
from tests.servers import REDIS_SERVER, RedisServer

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="needs redis-server")

COUNT, CHUNK = 400, 40


class Note(Model):
    _primary_key_field: str = "id"
    id: str
    text: str


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def stall(server: RedisServer, seconds: float) -> threading.Timer:
    """Stop the server process now, and let it go on after `seconds`."""
    assert server.process is not None
    pid = server.process.pid
    os.kill(pid, signal.SIGSTOP)
    timer = threading.Timer(seconds, os.kill, (pid, signal.SIGCONT))
    timer.start()
    return timer


async def test_counts_stay_exact_when_calls_are_sent_twice(server: RedisServer) -> None:
    with redis.Redis(port=server.port, decode_responses=True) as raw:
        for i in range(COUNT):
            raw.hset(f"note:n{i:03d}", mapping={"id": f"n{i:03d}", "text": "None"})
            raw.sadd("note:__index", f"note:n{i:03d}")
        gone = [f"note:n{i:03d}" for i in range(0, COUNT, 10)]  # expired: entries left over
        raw.delete(*gone)
    config = RedisConfig.from_url(server.url, socket_timeout=0.5, retries=3)
    store = Store(name="retried", redis_config=config)
    store.register_model(Note)
    timers: list[threading.Timer] = []

    def stall_now_and_then(model: str, done: int, total: int) -> None:
        # After every other chunk: the next chunk's write is sent while the server sleeps.
        if done < total and len(timers) < 4 and done // CHUNK % 2:
            timers.append(stall(server, 0.8))

    report = await upgrade_from_1_4(store, [Note], chunk_size=CHUNK, progress=stall_now_and_then)
    for timer in timers:
        timer.join()
    assert len(timers) == 4
    (done,) = report.models
    assert not done.problems
    assert (done.records, done.converted, done.expired) == (COUNT, COUNT - len(gone), len(gone))
    assert await Note.count() == COUNT - len(gone)
    await store.close()
