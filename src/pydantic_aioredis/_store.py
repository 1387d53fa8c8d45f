"""`Store`: connections, the registry of models, and the store's lifecycle."""

from __future__ import annotations

import asyncio
import atexit
import sys
import weakref
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ._config import RedisConfig
from ._connection import (
    AsyncClient,
    SyncClient,
    connect_async,
    connect_sync,
    is_cluster,
    run_calls,
    sync_twin,
)
from ._exceptions import ConfigurationError, PrimaryKeyError, PydanticAioredisError, UsageError
from ._legacy import LegacyIndexCheck
from ._scripts import ScriptCall
from ._table import ModelTable
from ._writes import PendingWrites

if TYPE_CHECKING:
    from ._model import Model

__all__ = ["Store"]

M = TypeVar("M", bound="Model")


class Store:
    """A Redis connection and the models that keep their records in it.

    Args:
        name: A name for this store (used in messages).
        redis_config: Where to connect; ignored when `redis_store` is given.
        redis_store: An existing `redis.asyncio.Redis` or `redis.asyncio.cluster.RedisCluster`
            client to use as it is, whether or not it decodes responses.
        life_span_in_seconds: Default TTL of every record written (None: no expiry).

    Attributes:
        cluster: Whether the store talks to a Redis Cluster (`RedisConfig(cluster=True)`
            or an injected `RedisCluster` client); its models then keep their keys in
            buckets (see docs/cluster.md).
        pending: The automatic writes not sent yet; `len(store.pending)` counts the records
            they touch, `store.pending.last_error` is the error of the last failed attempt
            while they wait. `await store.flush()` sends them.

    Example:
        ```python
        store = Store(name="shop", redis_config=RedisConfig(db=5), life_span_in_seconds=3600)
        store.register_model(Book)
        async with store:
            await Book.insert(Book(title="The Hobbit", author="J.R.R. Tolkien"))
        ```
    """

    def __init__(
        self,
        name: str,
        redis_config: RedisConfig | None = None,
        redis_store: AsyncClient | None = None,
        life_span_in_seconds: float | None = None,
    ) -> None:
        if life_span_in_seconds is not None and life_span_in_seconds <= 0:
            raise ConfigurationError(
                f"life_span_in_seconds must be positive, not {life_span_in_seconds!r}"
            )
        self.name = name
        self.redis_config = redis_config if redis_config is not None else RedisConfig()
        self.life_span_in_seconds = life_span_in_seconds
        self.models: dict[str, type[Model]] = {}
        self._tables: dict[type[Model], ModelTable[Any]] = {}
        self._injected = redis_store
        # On a cluster, models lay their keys out in buckets (see `_keys`).
        self.cluster = is_cluster(redis_store) if redis_store else self.redis_config.cluster
        self._decodes = _decodes_responses(redis_store) if redis_store is not None else True
        # redis-py's asyncio connections belong to the loop that opened them, so a store
        # made from a config keeps one client per running loop (tests and scripts often
        # call asyncio.run more than once).
        # With each client, a semaphore keeps at most `max_connections` calls in flight;
        # the others wait their turn. (redis-py's BlockingConnectionPool does the same for
        # about 30 us more per call, measured here.)
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[AsyncClient, asyncio.Semaphore]
        ] = weakref.WeakKeyDictionary()
        self._sync_client: SyncClient | None = None
        self.pending = PendingWrites(self.send, self.sync_client)
        self._legacy_check = LegacyIndexCheck(self)
        atexit.register(_flush_at_exit, weakref.ref(self))

    def __repr__(self) -> str:
        where = "injected client" if self._injected is not None else str(self.redis_config)
        return f"Store(name={self.name!r}, {where}, models={sorted(self.models)})"

    # -- models --------------------------------------------------------------------------

    def register_model(self, model_class: type[M]) -> type[M]:
        """Bind a model to this store, so that its records are kept here.

        Returns the model, so this works as a class decorator too.

        Raises:
            ConfigurationError: The model has no valid `_primary_key_field`, or its keys
                would overlap with those of another registered model.
        """
        from ._model import Model, bind_table

        if not (isinstance(model_class, type) and issubclass(model_class, Model)):
            raise ConfigurationError(f"{model_class!r} is not a pydantic_aioredis Model")
        name = model_class.__name__
        pk = model_class._primary_key_field
        if not isinstance(pk, str) or not pk:
            raise PrimaryKeyError(
                f"{name} has no _primary_key_field; set it to the name of one of its fields"
            )
        if pk not in model_class.model_fields:
            raise PrimaryKeyError(
                f"{name}._primary_key_field is {pk!r}, which is not a field of {name} "
                f"(fields: {', '.join(model_class.model_fields)})"
            )
        version = model_class._version_field
        if version is not None and version not in model_class.model_fields:
            raise ConfigurationError(
                f"{name}._version_field is {version!r}, which is not a field of {name}"
            )
        table = ModelTable(model_class, self)
        for other_model, other in self._tables.items():
            if other_model is not model_class and table.keys.overlaps(other.keys):
                raise ConfigurationError(
                    f"{name} would store its records under {table.keys.namespace!r}, which "
                    f"overlaps {other_model.__name__}'s {other.keys.namespace!r}; give one of "
                    "them another _table_name or _redis_prefix"
                )
        self._tables[model_class] = table
        self.models[name.lower()] = model_class
        bind_table(model_class, table)
        return model_class

    def model(self, name: str) -> type[Model]:
        """The registered model with this class name, ignoring case.

        Raises:
            KeyError: No model of that name is registered.
        """
        try:
            return self.models[name.lower()]
        except KeyError:
            known = ", ".join(sorted(self.models)) or "none"
            raise KeyError(
                f"no model named {name!r} in store {self.name!r} (known: {known})"
            ) from None

    # -- connections ---------------------------------------------------------------------

    @property
    def redis_store(self) -> AsyncClient:
        """The `redis.asyncio.Redis` client: the injected one, or this event loop's."""
        if self._injected is not None:
            return self._injected
        return self._connection()[0]

    @redis_store.setter
    def redis_store(self, client: AsyncClient) -> None:
        """Use this client from now on, as `Store(..., redis_store=client)` would (the way
        pydantic-aioredis 1.4 injected a client); the synchronous twin follows it.

        Raises:
            ConfigurationError: Not an asyncio redis-py client, or a cluster client where
                the registered models lay their keys out for a single server (or the
                other way round).
            UsageError: The store has already opened connections of its own.
        """
        if not isinstance(client, AsyncClient):
            raise ConfigurationError(
                f"store.redis_store must be a redis.asyncio client, not {type(client).__name__}"
            )
        if any(own is not self._injected for own, _ in self._clients.values()):
            raise UsageError(
                f"store {self.name!r} has opened connections of its own already: assign "
                "store.redis_store before its first call, or pass Store(..., redis_store=client)"
            )
        cluster = is_cluster(client)
        if cluster != self.cluster and self._tables:
            raise ConfigurationError(
                f"store {self.name!r} has models registered for a "
                f"{'cluster' if self.cluster else 'single server'}; pass a client of the "
                "other kind as Store(..., redis_store=client), before registering models"
            )
        self._injected, self.cluster = client, cluster
        self._decodes = _decodes_responses(client)
        self._clients.clear()  # held the previous injected client only
        if self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None

    def _connection(self) -> tuple[AsyncClient, asyncio.Semaphore]:
        loop = asyncio._get_running_loop()
        if loop is None:
            raise RuntimeError("Store.redis_store is only available inside a running event loop")
        connection = self._clients.get(loop)
        if connection is None:
            client = self._injected
            if client is None:
                client = connect_async(self.redis_config)
            limit = asyncio.Semaphore(self.redis_config.max_connections)
            connection = self._clients[loop] = (client, limit)
        return connection

    def sync_client(self) -> SyncClient:
        """A blocking client on the same server, for writes made outside an event loop."""
        if self._sync_client is None:
            if self._injected is not None:
                self._sync_client = sync_twin(self._injected)
            else:
                self._sync_client = connect_sync(self.redis_config)
        return self._sync_client

    # -- operations ----------------------------------------------------------------------

    def ttl_ms(self, life_span_seconds: float | None) -> int:
        """The TTL in milliseconds for a write (0 for none)."""
        seconds = life_span_seconds if life_span_seconds is not None else self.life_span_in_seconds
        if seconds is None:
            return 0
        if seconds <= 0:
            raise ConfigurationError(f"a life span must be positive, not {seconds!r}")
        return max(1, round(seconds * 1000))

    @property
    def default_ttl_ms(self) -> int:
        return self.ttl_ms(None)

    async def execute(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Send queued automatic writes, then these calls, and return their replies."""
        if self.pending:
            await self.pending.flush()
        return await self.send(calls)

    async def send(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Send script calls in one round trip, within the store's connection limit."""
        client, limit = self._connection()
        async with limit, self._legacy_check.guard(client, calls):
            replies = await run_calls(client, calls)
        return replies if self._decodes else _decoded(replies)

    async def flush(self) -> None:
        """Wait until every queued automatic write is in Redis.

        Raises:
            AutoSaveError: A write failed; it stays queued and the next flush retries it.
        """
        await self.pending.flush()

    async def close(self) -> None:
        """Send what is queued, then close this loop's connections.

        An injected client is left open: its owner closes it.
        """
        try:
            await self.flush()
        finally:
            loop = asyncio._get_running_loop()
            connection = self._clients.pop(loop, None) if loop is not None else None
            if connection is not None and connection[0] is not self._injected:
                await connection[0].aclose()
            if self._sync_client is not None:
                self._sync_client.close()
                self._sync_client = None

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


def _decodes_responses(client: Any) -> bool:
    if is_cluster(client):
        return bool(client.get_connection_kwargs().get("decode_responses", False))
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    return bool(kwargs.get("decode_responses", False))


def _decoded(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [_decoded(item) for item in value]
    return value


def _flush_at_exit(store_ref: weakref.ref[Store]) -> None:
    # `asyncio.run` cancels the task that would have sent the last automatic writes;
    # send them here, synchronously, so that they are not lost.
    store = store_ref()
    if store is None or not store.pending:
        return
    try:
        store.pending.flush_sync(store.sync_client())
    except PydanticAioredisError as exc:
        print(f"pydantic-aioredis: store {store.name!r}: {exc}", file=sys.stderr)
