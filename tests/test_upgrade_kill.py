"""A migration killed at any point loses nothing, converts nothing twice, and a rerun
finishes it: the command is run as a subprocess and killed (SIGKILL) part way, three times,
on records written by pydantic-aioredis 1.4 itself."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import redis

from pydantic_aioredis import RedisConfig, Store, UnmigratedDataError
from tests.keys import register_alone
from tests.legacy14 import dataset
from tests.legacy14.models import Book
from tests.legacy14.venv import ROOT, write_with_1_4

COUNT = 6000
WORK = "book:__index:~upgrading_1.4"


def start_migration(url: str) -> subprocess.Popen[bytes]:
    # Small chunks: many calls, so that a kill lands in the middle of the run.
    command = ["upgrade-1.4", "--url", url, "--models", "tests.legacy14.models:Book"]
    return subprocess.Popen(
        [sys.executable, "-m", "pydantic_aioredis", *command, "--chunk-size", "10"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def converted(raw: redis.Redis) -> int:
    """Records in our index (until the migration starts, the key holds 1.4's set)."""
    return raw.zcard("book:__index") if raw.type("book:__index") == "zset" else 0


def kill_after_more_records(process: subprocess.Popen[bytes], raw: redis.Redis) -> None:
    """Kill the process once it has converted some more records."""
    try:
        start = converted(raw)
        deadline = time.monotonic() + 300
        while converted(raw) < start + 100:
            assert process.poll() is None, "the migration ended before it could be killed"
            assert time.monotonic() < deadline, "the migration converted nothing"
            time.sleep(0.002)
    finally:
        process.kill()
        process.wait()


def check_nothing_lost_or_half_done(raw: redis.Redis, written: dict[str, dict[str, str]]) -> int:
    """Every record is either converted (in our index) or still to do, with the values
    1.4 wrote (on the work list): never both, never neither. Returns how many are done."""
    converted = {f"book:{pk}" for pk in raw.zrange("book:__index", 0, -1)}
    todo = raw.smembers(WORK)
    assert converted.isdisjoint(todo)
    assert converted | todo == set(written)
    for key in todo:
        assert raw.hgetall(key) == written[key]
    for key in converted:
        stored = raw.hgetall(key)
        assert stored.keys() == written[key].keys()
        assert stored["published_on"] == written[key]["published_on"].strip('"')
    # The records, our index, the work list; and the replies of calls for a few minutes
    # (write tokens, see pydantic_aioredis._scripts).
    keys = [key for key in raw.scan_iter(count=1000) if ":__write:" not in key]
    assert len(keys) == COUNT + 2
    return len(converted)


@pytest.mark.filterwarnings("ignore:Field name:UserWarning")
async def test_a_killed_migration_loses_nothing_and_a_rerun_finishes_it(redis_url: str) -> None:
    write_with_1_4(redis_url, "books", COUNT)
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    written = {key: raw.hgetall(key) for key in raw.smembers("book:__index")}
    assert len(written) == COUNT
    done = 0
    for _ in range(3):
        kill_after_more_records(start_migration(redis_url), raw)
        now_done = check_nothing_lost_or_half_done(raw, written)
        assert done < now_done < COUNT
        done = now_done
    store = Store(name="killed", redis_config=RedisConfig.from_url(redis_url))
    store.register_model(Book)
    with pytest.raises(UnmigratedDataError, match="has not finished"):
        await Book.count()
    assert start_migration(redis_url).wait(timeout=300) == 0
    assert not raw.exists(WORK)
    expected = sorted((Book(**dataset.book(i)) for i in range(COUNT)), key=lambda b: b.title)
    fresh = Store(name="after", redis_config=RedisConfig.from_url(redis_url))
    register_alone(fresh, Book)
    assert await Book.select() == expected
    await store.close()
    await fresh.close()
    raw.close()
