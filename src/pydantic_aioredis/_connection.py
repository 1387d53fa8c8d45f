"""Clients built from a `RedisConfig`, and the one way scripts are sent to them.

The store talks to Redis through redis-py only: its asyncio client for everything awaited,
and a synchronous twin for the two places that cannot await (an automatic write made
outside any event loop, and the last flush at interpreter exit). On a Redis Cluster both
are redis-py's cluster clients, which route each call to the node that owns its slot,
follow MOVED/ASK redirects and retry TRYAGAIN while a slot migrates.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import hiredis
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import (
    ClusterCrossSlotError,
    ClusterError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)

from ._config import RedisConfig
from ._exceptions import ConfigurationError, RedisOperationError
from ._node_batches import batches
from ._scripts import ScriptCall

__all__ = [
    "connect_async",
    "connect_sync",
    "is_cluster",
    "is_transient",
    "pool_size",
    "run_calls",
    "run_calls_sync",
    "sync_twin",
]

AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster
SyncClient = redis.Redis | redis.cluster.RedisCluster

_RETRY_ERRORS = [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
READ_ERRORS = "surrogateescape"


class _HiredisPacking:
    """Pack commands with hiredis's C packer, as redis-py's synchronous client does.

    Written here for speed: redis-py's asyncio connection packs each argument in Python,
    rebuilding a buffer of up to 6 kB per argument, and a script call that writes 250
    records is some 2,000 arguments (2,250 on a cluster, which names the record keys
    too). Measured here, bulk insert of 100,000 records on the 3-master cluster: 23,000
    records/s with redis-py's packer, 44,000 with this one (half of the time had gone
    into packing); on a single server the difference was within the noise.
    """

    encoder: Any

    def pack_command(self, *args: Any) -> list[bytes]:
        # hiredis encodes as strict UTF-8: what the library sends (checked by the codec)
        # is always that, whatever error handler the connection reads replies with.
        if self.encoder.encoding != "utf-8":
            return super().pack_command(*args)  # type: ignore[misc,no-any-return]
        if isinstance(args[0], str) and " " in args[0]:  # "SCRIPT LOAD": two arguments
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError as exc:  # a value redis-py would refuse too
            raise redis.exceptions.DataError(str(exc)) from exc


class _Connection(_HiredisPacking, redis.asyncio.connection.Connection):
    pass


class _SSLConnection(_HiredisPacking, redis.asyncio.connection.SSLConnection):
    pass


def _pack_with_hiredis(cluster: redis.asyncio.cluster.RedisCluster, ssl: bool) -> None:
    # RedisCluster takes no connection class; the nodes it discovers are made from its
    # nodes manager's connection options. If a redis-py release moves them, the nodes
    # keep redis-py's own connections: slower, not wrong.
    options = getattr(getattr(cluster, "nodes_manager", None), "connection_kwargs", None)
    if isinstance(options, dict):
        options["connection_class"] = _SSLConnection if ssl else _Connection


def is_cluster(client: object) -> bool:
    """Whether a redis-py client talks to a Redis Cluster."""
    return isinstance(client, (redis.asyncio.cluster.RedisCluster, redis.cluster.RedisCluster))


def pool_size(client: AsyncClient) -> int | None:
    """How many connections the client may open (to each node, on a cluster), if it says."""
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        size = client.get_connection_kwargs().get("max_connections")
    else:
        size = getattr(getattr(client, "connection_pool", None), "max_connections", None)
    return size if isinstance(size, int) and size > 0 else None


def _connection_options(config: RedisConfig) -> dict[str, Any]:
    return {
        "host": config.host,
        "port": config.port,
        "username": config.username,
        "password": config.password.get_secret_value() if config.password else None,
        "encoding": config.encoding,
        "decode_responses": True,
        # Bytes another program stored that are not text in this encoding arrive as lone
        # surrogates, which the codec reports as a CorruptRecordError naming the record,
        # instead of failing the whole reply in the parser with no key named.
        "encoding_errors": READ_ERRORS,
        "socket_timeout": config.socket_timeout,
        "socket_connect_timeout": config.socket_connect_timeout,
        "retry_on_error": _RETRY_ERRORS,
        **_tls_options(config),
    }


def _tls_options(config: RedisConfig) -> dict[str, Any]:
    if not config.ssl:
        return {}
    return {
        "ssl_ca_certs": config.ssl_ca_certs,
        "ssl_cert_reqs": config.ssl_cert_reqs,
        "ssl_certfile": config.ssl_certfile,
        "ssl_keyfile": config.ssl_keyfile,
    }


def _pool_options(config: RedisConfig) -> dict[str, Any]:
    return {
        "max_connections": config.max_connections,
        "db": config.db,
        **_connection_options(config),
    }


def _cluster_options(config: RedisConfig) -> dict[str, Any]:
    # Per node: the store keeps at most `max_connections` calls in flight in all, and runs
    # each to its end (see `_inflight`), so no node needs more connections than that.
    tls = {"ssl": True} if config.ssl else {}
    return {"max_connections": config.max_connections, **tls, **_connection_options(config)}


def _memory_server(config: RedisConfig) -> Any:
    try:
        import fakeredis
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ConfigurationError(
            "the in-memory backend needs the 'memory' extra: "
            "pip install 'pydantic-aioredis[memory]'"
        ) from None
    # One shared server per name, so that every store on `memory://name` sees one dataset.
    key = f"{config.host}:{config.port}"
    server = _MEMORY_SERVERS.get(key)
    if server is None:
        server = _MEMORY_SERVERS[key] = fakeredis.FakeServer()
    return fakeredis, server


_MEMORY_SERVERS: dict[str, Any] = {}


def connect_async(config: RedisConfig) -> AsyncClient:
    """A new asyncio client for the config (bound to the loop that first uses it)."""
    if config.in_memory:
        fakeredis, server = _memory_server(config)
        client: AsyncClient = fakeredis.FakeAsyncRedis(
            server=server,
            db=config.db,
            decode_responses=True,
            encoding=config.encoding,
            encoding_errors=READ_ERRORS,
        )
        return client
    from redis.asyncio.retry import Retry as AsyncRetry

    retry = AsyncRetry(_BACKOFF, config.retries)
    if config.cluster:
        cluster = redis.asyncio.cluster.RedisCluster(retry=retry, **_cluster_options(config))
        _pack_with_hiredis(cluster, ssl=config.ssl)
        return cluster
    connection_class = _SSLConnection if config.ssl else _Connection
    # A plain pool: the store keeps the calls in flight within `max_connections` itself.
    pool = redis.asyncio.ConnectionPool(
        connection_class=connection_class, retry=retry, **_pool_options(config)
    )
    return redis.asyncio.Redis.from_pool(pool)


def connect_sync(config: RedisConfig) -> SyncClient:
    """A new synchronous client for the config."""
    if config.in_memory:
        fakeredis, server = _memory_server(config)
        client: SyncClient = fakeredis.FakeRedis(
            server=server,
            db=config.db,
            decode_responses=True,
            encoding=config.encoding,
            encoding_errors=READ_ERRORS,
        )
        return client
    from redis.retry import Retry

    retry = Retry(_BACKOFF, config.retries)
    if config.cluster:
        return redis.cluster.RedisCluster(retry=retry, **_cluster_options(config))
    connection_class = redis.connection.SSLConnection if config.ssl else redis.connection.Connection
    # Blocking: threads that share the client wait for a free connection.
    pool = redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]
        connection_class=connection_class,
        retry=retry,
        timeout=config.socket_timeout,
        **_pool_options(config),
    )
    return redis.Redis.from_pool(pool)


def sync_twin(client: AsyncClient) -> SyncClient:
    """A synchronous client that reaches the same server and database as `client`."""
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        return _sync_cluster_twin(client)
    kwargs = dict(client.connection_pool.connection_kwargs)
    if "server" in kwargs:  # a fakeredis client
        return _fake_twin(kwargs)
    keep = (
        "host",
        "port",
        "db",
        "username",
        "password",
        "socket_timeout",
        "socket_connect_timeout",
        "path",
        "encoding",
    )
    options = {name: kwargs[name] for name in keep if name in kwargs}
    connection_class = client.connection_pool.connection_class
    if issubclass(connection_class, redis.asyncio.connection.SSLConnection):
        options["ssl"] = True
        options["ssl_cert_reqs"] = kwargs.get("ssl_cert_reqs", "required")
        options["ssl_ca_certs"] = kwargs.get("ssl_ca_certs")
    elif "path" in options:
        options["unix_socket_path"] = options.pop("path")
    return redis.Redis(decode_responses=True, encoding_errors=READ_ERRORS, **options)


def _fake_twin(kwargs: dict[str, Any]) -> SyncClient:
    import fakeredis

    if kwargs["server"] is not None:
        where: dict[str, Any] = {"server": kwargs["server"]}
    else:
        # A client made without `server=` finds its data by its address, server type
        # and version (a random host name unless one was given): so does its twin.
        names = ("host", "port", "version", "server_type", "lua_modules")
        where = {name: kwargs[name] for name in names if name in kwargs}
        if "path" in kwargs:
            where["unix_socket_path"] = kwargs["path"]
    twin: SyncClient = fakeredis.FakeRedis(
        db=kwargs.get("db", 0),
        decode_responses=True,
        encoding=kwargs.get("encoding", "utf-8"),
        encoding_errors=READ_ERRORS,
        **where,
    )
    return twin


def _sync_cluster_twin(client: redis.asyncio.cluster.RedisCluster) -> SyncClient:
    kwargs = client.get_connection_kwargs()
    node = client.get_default_node() or client.get_nodes()[0]
    keep = ("username", "password", "socket_timeout", "socket_connect_timeout", "encoding")
    options: dict[str, Any] = {name: kwargs[name] for name in keep if name in kwargs}
    connection_class = kwargs.get("connection_class")
    if isinstance(connection_class, type) and issubclass(
        connection_class, redis.asyncio.connection.SSLConnection
    ):
        options["ssl"] = True
        options["ssl_cert_reqs"] = kwargs.get("ssl_cert_reqs", "required")
        options["ssl_ca_certs"] = kwargs.get("ssl_ca_certs")
    return redis.cluster.RedisCluster(
        host=node.host,
        port=int(node.port),
        decode_responses=True,
        encoding_errors=READ_ERRORS,
        **options,
    )


# How long calls wait out a slot that is moving between cluster nodes: meanwhile Redis
# answers TRYAGAIN to a call on several keys of the slot that are not all on one side.
# redis-py retries those for well under a second; moving a big slot can take longer.
MIGRATION_PATIENCE = 10.0


async def run_calls(
    client: AsyncClient, calls: Sequence[ScriptCall], raise_errors: bool = True
) -> list[Any]:
    """Send script calls in one round trip and return their replies in order.

    A script the server does not know (first use, or after a restart) is loaded and its
    calls are sent again; calls refused with TRYAGAIN are sent again until the slot
    settles; every other error is raised as `RedisOperationError` (with `raise_errors`
    False, a call's error reply takes the place of its reply instead).
    """
    try:
        replies = await _send(client, calls)
        for attempt in range(1, _retries(client) + 1):
            if not (dropped := _dropped(replies)):
                break
            await asyncio.sleep(_BACKOFF.compute(attempt))
            for i, reply in zip(dropped, await _send(client, [calls[i] for i in dropped])):
                replies[i] = reply
        deadline = time.monotonic() + MIGRATION_PATIENCE
        delay = 0.05
        while (waiting := _refused(replies)) and time.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = min(2 * delay, 0.5)
            for i, reply in zip(waiting, await _send(client, [calls[i] for i in waiting])):
                replies[i] = reply
        if raise_errors:
            _raise_first_error(replies)
        return replies
    except Exception as exc:
        raise _failure(exc) from exc


# A cluster pipeline leaves a dropped connection or a timeout in the place of each call it
# hit, where a single command would be sent again (`retries` times, with backoff): those
# calls are sent again here the same way. Every call is safe to run twice (see `_scripts`).
_DROPPED = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
_BACKOFF = ExponentialWithJitterBackoff(base=0.05, cap=1.0)


def _dropped(replies: list[Any]) -> list[int]:
    return [i for i, reply in enumerate(replies) if isinstance(reply, _DROPPED)]


def _retries(client: AsyncClient | SyncClient) -> int:
    """How many times the client sends a command again after a dropped connection."""
    retries = getattr(getattr(client, "retry", None), "get_retries", None)
    count = retries() if callable(retries) else 0
    return count if isinstance(count, int) else 0


async def _send(client: AsyncClient, calls: Sequence[ScriptCall]) -> list[Any]:
    """One round trip (a few when a cluster node batch runs out of time); an error reply
    takes the place of its call's reply."""
    if len(calls) > 1 and isinstance(client, redis.asyncio.cluster.RedisCluster):
        return await _send_in_node_batches(client, calls)
    return await _send_each(client, calls)


async def _send_in_node_batches(
    client: redis.asyncio.cluster.RedisCluster, calls: Sequence[ScriptCall]
) -> list[Any]:
    """Send small calls bound for one node together (see `_node_batches`), in rounds until
    each has run: calls a batch had no time for go again, those it could not run (their
    slot moves) go on their own."""
    replies: list[Any] = [None] * len(calls)
    todo = list(range(len(calls)))
    alone: set[int] = set()  # positions in `calls` that a batch could not run
    while todo:
        asked = [calls[i] for i in todo]
        plan = batches(
            asked, partial(_node_name, client), {j for j, i in enumerate(todo) if i in alone}
        )
        again: list[int] = []
        for batch, reply in zip(plan, await _send_each(client, [b.call for b in plan])):
            ran, later, on_their_own = batch.replies(reply)
            for j, value in ran:
                replies[todo[j]] = value
            again += [todo[j] for j in later + on_their_own]
            alone.update(todo[j] for j in on_their_own)
        todo = sorted(again)
    return replies


def _node_name(client: redis.asyncio.cluster.RedisCluster, call: ScriptCall) -> str | None:
    node = _route(client, call).get("target_nodes")
    return None if node is None else str(node.name)


async def _send_each(
    client: AsyncClient, calls: Sequence[ScriptCall], reload: bool = True
) -> list[Any]:
    """One round trip, each call as it is."""
    if len(calls) == 1:
        try:
            return [await _call_one(client, calls[0])]
        except (ResponseError, ClusterError) as exc:
            return [exc]
    async with client.pipeline(transaction=False) as pipe:
        for call in calls:
            pipe.execute_command(*call.command(), **_route(client, call))
        replies = list(await pipe.execute(raise_on_error=False))
    unknown = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if unknown and reload:  # load each script once (on every master of a cluster), resend
        for script in {calls[i].script for i in unknown}:
            await client.script_load(script.source)
        again = await _send_each(client, [calls[i] for i in unknown], reload=False)
        for i, reply in zip(unknown, again):
            replies[i] = reply
    return replies


async def _call_one(client: AsyncClient, call: ScriptCall) -> Any:
    try:
        return await client.execute_command(*call.command())
    except NoScriptError:
        # Sent again with its text, which loads the script on the node that runs it. On a
        # cluster that need not be the node the slot map names: while a slot moves, an ASK
        # redirect sends the call to the slot's next node. (Loading on every master instead
        # would fan out to subtasks, which a cancelled call must not leave behind: see
        # `_inflight`.)
        return await client.execute_command(*call.command_with_source())


def run_calls_sync(
    client: SyncClient, calls: Sequence[ScriptCall], raise_errors: bool = True
) -> list[Any]:
    """The synchronous form of `run_calls`."""
    try:
        replies = _send_sync(client, calls)
        for attempt in range(1, _retries(client) + 1):
            if not (dropped := _dropped(replies)):
                break
            time.sleep(_BACKOFF.compute(attempt))
            for i, reply in zip(dropped, _send_sync(client, [calls[i] for i in dropped])):
                replies[i] = reply
        deadline = time.monotonic() + MIGRATION_PATIENCE
        delay = 0.05
        while (waiting := _refused(replies)) and time.monotonic() < deadline:
            time.sleep(delay)
            delay = min(2 * delay, 0.5)
            for i, reply in zip(waiting, _send_sync(client, [calls[i] for i in waiting])):
                replies[i] = reply
        if raise_errors:
            _raise_first_error(replies)
        return replies
    except Exception as exc:
        raise _failure(exc) from exc


def _send_sync(client: SyncClient, calls: Sequence[ScriptCall], reload: bool = True) -> list[Any]:
    with client.pipeline(transaction=False) as pipe:
        for call in calls:
            pipe.execute_command(*call.command())
        replies = list(pipe.execute(raise_on_error=False))
    unknown = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if unknown and reload:  # as in `_send`
        for script in {calls[i].script for i in unknown}:
            client.script_load(script.source)
        again = _send_sync(client, [calls[i] for i in unknown], reload=False)
        for i, reply in zip(unknown, again):
            replies[i] = reply
    return replies


def _route(client: AsyncClient, call: ScriptCall) -> dict[str, Any]:
    """The node of a call, for redis-py's cluster pipeline, which otherwise hashes every
    key the call names, twice: measured here, a sixth of the time of a select of 100,000
    records (a read of 500 records names 502 keys). All keys of a call share the slot of
    the first, so its node is the call's node. A call refused with MOVED or ASK is sent
    again by the pipeline without this hint, through redis-py's own routing."""
    if not isinstance(client, redis.asyncio.cluster.RedisCluster):
        return {}
    try:
        return {"target_nodes": client.get_node_from_key(call.keys[0])}
    except RedisClusterException:  # no map of the slots (yet): redis-py routes the call
        return {}


# Failures that may pass: the connection, the time, a server loading, busy, out of memory
# or unable to write to its disk or replicas for now, a cluster moving slots or failing over.
_TRANSIENT_ERRORS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    # redis-py takes the "OOM" off the message of this one.
    redis.exceptions.OutOfMemoryError,
    TryAgainError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.MasterDownError,
    redis.exceptions.ReadOnlyError,
    RedisClusterException,
)
_TRANSIENT_REPLIES = (
    "OOM",
    "BUSY",
    "LOADING",
    "MASTERDOWN",
    "READONLY",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "MISCONF",
    "NOREPLICAS",
)


def is_transient(error: BaseException) -> bool:
    """Whether a call that failed with `error` may succeed if sent again later."""
    cause = error.__cause__ if isinstance(error, RedisOperationError) else error
    if isinstance(cause, _TRANSIENT_ERRORS):
        return True
    return isinstance(cause, ResponseError) and str(cause).startswith(_TRANSIENT_REPLIES)


def _failure(exc: Exception) -> RedisOperationError:
    """Any error met while talking to Redis, as the library's: redis-py raises more than
    `RedisError` (an `AttributeError` from a connection closed under a call, `OSError`s)."""
    # A cluster client follows MOVED, and our keys of one call share a slot: either reply
    # means a plain client reached a cluster node.
    if isinstance(exc, (MovedError, ClusterCrossSlotError)):
        return RedisOperationError(
            f"Redis failed: {exc}: the server is a node of a Redis Cluster; connect with "
            "RedisConfig(cluster=True) or a redis+cluster:// URL"
        )
    return RedisOperationError(f"Redis failed: {_describe(exc)}")


def _describe(exc: Exception) -> str:
    # redis-py's own errors say what happened, though some say nothing at all
    # (MaxConnectionsError); other exceptions need their type to make sense.
    if isinstance(exc, (RedisError, RedisClusterException)) and str(exc):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _refused(replies: list[Any]) -> list[int]:
    """Positions of the calls that a moving slot kept from running: refused with TRYAGAIN,
    or redirected until redis-py gave up ("TTL exhausted", which it raises only after
    MOVED, ASK and TRYAGAIN replies: the call never ran, so sending it again is safe)."""
    return [i for i, reply in enumerate(replies) if _was_refused(reply)]


def _was_refused(reply: Any) -> bool:
    if isinstance(reply, TryAgainError):
        return True
    return isinstance(reply, ClusterError) and "TTL exhausted" in str(reply)


def _raise_first_error(replies: Sequence[Any]) -> None:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
