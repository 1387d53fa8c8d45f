"""Test set-up: a real Redis for every test that needs one.

Where the server comes from, in order:

1. `TEST_REDIS_URL`, if set;
2. the server on 127.0.0.1:6379, if it answers;
3. a redis-server that the suite starts on a free port, if the binary is installed;
4. otherwise the embedded in-memory backend, with a warning in the report, except under
   `CI=true`, where a missing Redis fails the run.

The suite uses databases 12 and 13 of that server and flushes them around each test.
Contract tests run twice: on Redis (`redis`) and on the embedded backend (`memory`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis

from pydantic_aioredis import RedisConfig, Store
from tests.servers import REDIS_SERVER, RedisServer, reachable

TEST_DB = 12
OTHER_DB = 13

_state: dict[str, Any] = {"fallback": None}


def _find_redis() -> tuple[str | None, RedisServer | None]:
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        if not reachable(url):
            pytest.exit(f"TEST_REDIS_URL={url} does not answer", returncode=3)
        return url, None
    if reachable("redis://127.0.0.1:6379/0"):
        return "redis://127.0.0.1:6379/0", None
    if REDIS_SERVER is not None:
        server = RedisServer().start()
        return server.url, server
    return None, None


@pytest.fixture(scope="session")
def redis_base_url() -> Iterator[str | None]:
    """The base URL of the test Redis, or None when only the embedded backend is left."""
    url, server = _find_redis()
    if url is None:
        message = "no Redis server is reachable and redis-server is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; under CI a real Redis is required", pytrace=False)
        _state["fallback"] = f"{message}: Redis tests ran on the embedded in-memory backend"
    try:
        yield url
    finally:
        if server is not None:
            server.cleanup()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _state["fallback"]:
        terminalreporter.write_sep("!", _state["fallback"], yellow=True)


def _db_url(base: str, db: int) -> str:
    return base.rsplit("/", 1)[0] + f"/{db}"


@pytest.fixture
def redis_url(redis_base_url: str | None) -> Iterator[str]:
    """The URL of a flushed database of the real test Redis."""
    if redis_base_url is None:
        pytest.skip("needs a real Redis server")
    url = _db_url(redis_base_url, TEST_DB)
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(params=["redis", "memory"])
def config(request: pytest.FixtureRequest, redis_base_url: str | None) -> Iterator[RedisConfig]:
    """A RedisConfig for a fresh database: on the real server, then on the embedded one."""
    if request.param == "memory" or redis_base_url is None:
        yield RedisConfig.from_url(f"memory://{uuid.uuid4().hex}")
        return
    url = _db_url(redis_base_url, TEST_DB)
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield RedisConfig.from_url(url)
    client.flushdb()
    client.close()


@pytest.fixture
async def store(config: RedisConfig) -> AsyncIterator[Store]:
    """A store on the test database; closed and emptied afterwards."""
    store = Store(name="test", redis_config=config)
    yield store
    await store.close()


@pytest.fixture
def raw(store: Store) -> redis.Redis:
    """A plain synchronous client on the store's database, to look at what was stored."""
    return store.sync_client()
