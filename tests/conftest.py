"""Test set-up: a real Redis for every test that needs one.

Where the server comes from, in order:

1. `TEST_REDIS_URL`, if set: a server you name, whose databases 12 and 13 the suite flushes;
2. else a redis-server that the suite starts on a free port and stops at the end (a
   server already running on the machine, 127.0.0.1:6379 say, is never touched);
3. else, when the binary is not installed, the embedded in-memory backend, with a warning
   in the report, except under `CI=true`, where a missing Redis fails the run.

The suite uses databases 12 and 13 of that server and flushes them around each test.

A Redis Cluster comes from `TEST_CLUSTER_URL` (any node of it; `.ci/run` starts one), or
else the suite starts three redis-server masters of its own and joins them with
`redis-cli --cluster create`. It is flushed around each test that uses it.

Contract tests (those that take the `config` or `store` fixture) run three times: on
Redis (`redis`), on the embedded backend (`memory`) and on the cluster (`cluster`).
A test marked `onlynoncluster` skips the cluster run, one marked `onlycluster` the others.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
import redis.cluster

from pydantic_aioredis import RedisConfig, Store
from tests.servers import REDIS_SERVER, LocalCluster, RedisServer, reachable

TEST_DB = 12
OTHER_DB = 13

_state: dict[str, Any] = {"fallback": None}


def _find_redis() -> tuple[str | None, RedisServer | None]:
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        if not reachable(url):
            pytest.exit(f"TEST_REDIS_URL={url} does not answer", returncode=3)
        return url, None
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


@pytest.fixture(scope="session")
def cluster_url() -> Iterator[str | None]:
    """The URL of a node of the test cluster, or None when no cluster can be had."""
    url = os.environ.get("TEST_CLUSTER_URL")
    if url:
        yield url
        return
    if REDIS_SERVER is None or not shutil.which("redis-cli"):
        if os.environ.get("CI") == "true":
            pytest.fail("under CI a Redis Cluster is required", pytrace=False)
        _state["no_cluster"] = "redis-server/redis-cli are not installed: cluster tests skipped"
        yield None
        return
    with LocalCluster() as cluster:
        yield cluster.url


def cluster_masters(url: str) -> list[redis.Redis]:
    """A plain client on each master of the cluster that `url` names a node of."""
    with redis.Redis.from_url(url) as client:
        slots = client.execute_command("CLUSTER SLOTS")
    addresses = {(host.decode(), int(port)) for _, _, (host, port, *_), *_ in slots}
    return [redis.Redis(host=host, port=port) for host, port in sorted(addresses)]


def flush_cluster(url: str) -> None:
    # Plain clients: redis-py's RedisCluster.from_url leaves a socket open after a
    # command sent to every primary, which the suite's warnings-as-errors would report.
    for master in cluster_masters(url):
        with master:
            master.flushall()


@pytest.fixture
def cluster_config(cluster_url: str | None) -> Iterator[RedisConfig]:
    """A RedisConfig for the flushed test cluster."""
    if cluster_url is None:
        pytest.skip("needs redis-server and redis-cli to start a cluster")
    flush_cluster(cluster_url)
    yield RedisConfig.from_url(cluster_url.replace("redis://", "redis+cluster://", 1))
    flush_cluster(cluster_url)


def pytest_collection_modifyitems(config: Any, items: list[pytest.Item]) -> None:
    # Drop the runs that a marker rules out, rather than report them as skipped.
    kept, dropped = [], []
    for item in items:
        backend = getattr(item, "callspec", None) and item.callspec.params.get("config")
        if (backend == "cluster" and item.get_closest_marker("onlynoncluster")) or (
            backend in ("redis", "memory") and item.get_closest_marker("onlycluster")
        ):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _state.get("no_cluster"):
        terminalreporter.write_sep("!", _state["no_cluster"], yellow=True)
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


@pytest.fixture(params=["redis", "memory", "cluster"])
def config(request: pytest.FixtureRequest, redis_base_url: str | None) -> Iterator[RedisConfig]:
    """A RedisConfig for a fresh database: on the real server, the embedded one, a cluster."""
    if request.param == "cluster":
        yield request.getfixturevalue("cluster_config")
        return
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


@pytest.fixture(autouse=True)
def _models_released() -> Iterator[None]:
    """A model belongs to one store at a time: after each test, every model is released,
    so that the next test's store can register the shared test models again."""
    yield
    from pydantic_aioredis._model import _TABLES

    for model, table in list(_TABLES.items()):
        table.store.unregister_model(model)
