"""`Store`: connections, the registry of models, and the store's lifecycle."""

from __future__ import annotations

import asyncio
import atexit
import sys
import weakref
from collections.abc import Sequence
from functools import cache
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ._config import RedisConfig
from ._connection import (
    AsyncClient,
    SyncClient,
    connect_async,
    connect_sync,
    is_cluster,
    pool_size,
    run_calls,
    sync_twin,
)
from ._exceptions import (
    ConfigurationError,
    InvalidInputError,
    NotRegisteredError,
    PrimaryKeyError,
    PydanticAioredisError,
    UsageError,
)
from ._field_types import texts_may_collide
from ._inflight import CallsInFlight
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
        name: A label for this store, to tell stores apart when a program has several: it
            appears in the store's `repr` and in its messages (a model not found by
            `model()`, a write that failed at interpreter exit). It is not part of any key
            and does not choose a server or a database: `redis_config` does that.
        redis_config: Where to connect. With `redis_store`, only its `max_connections`
            applies: the most calls in flight, capped at the size of the client's pool.
        redis_store: An existing `redis.asyncio.Redis` or `redis.asyncio.cluster.RedisCluster`
            client to use as it is, whether or not it decodes responses.
        life_span_in_seconds: Default TTL of every record written (None: no expiry).

    Attributes:
        name: The `name` given.
        redis_config: The connection settings (a default `RedisConfig()` when none was
            given).
        life_span_in_seconds: The default TTL of records written, in seconds, or None.
        models: The registered models, by lower-cased class name (`{"book": Book}`);
            `model(name)` looks one up. Register models with `register_model`, not by
            changing this dict.
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
        if life_span_in_seconds is not None:
            try:
                _life_span_ms(life_span_in_seconds)
            except InvalidInputError as exc:
                raise ConfigurationError(f"life_span_in_seconds: {exc}") from None
        self.name = name
        self.redis_config = redis_config if redis_config is not None else RedisConfig()
        self.life_span_in_seconds = life_span_in_seconds
        self.models: dict[str, type[Model]] = {}
        self._tables: dict[type[Model], ModelTable[Any]] = {}
        # The index keys of the models whose first call has not been made yet.
        self._first_calls: dict[str, ModelTable[Any]] = {}
        if redis_store is not None and not isinstance(redis_store, AsyncClient):
            raise ConfigurationError(
                f"Store(redis_store=...) takes a redis.asyncio.Redis or RedisCluster client, "
                f"not {type(redis_store).__module__}.{type(redis_store).__name__}"
            )
        self._injected = redis_store
        # On a cluster, models lay their keys out in buckets (see `_keys`).
        self.cluster = is_cluster(redis_store) if redis_store else self.redis_config.cluster
        self._decodes = _decodes_responses(redis_store) if redis_store is not None else True
        # redis-py's asyncio connections belong to the loop that opened them, so a store
        # made from a config keeps one client per running loop (tests and scripts often
        # call asyncio.run more than once).
        # With each client, its calls in flight: at most `max_connections` at once, the
        # others wait their turn. (redis-py's BlockingConnectionPool would wait too, for
        # about 30 us more per call, measured here, but would let a cancelled call free
        # its connection before redis-py is done with it: see `_inflight`.)
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[AsyncClient, CallsInFlight]
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

        A model belongs to one store at a time: to move it to another store, call
        `unregister_model` on the first one.

        Raises:
            ConfigurationError: The model has no valid `_primary_key_field`, a field named
                like one of the library's own attributes, a type the library cannot store,
                keys that would overlap with those of another registered model, or it is
                registered with another store already.
        """
        from ._model import Model, bind_table, store_of

        if not (isinstance(model_class, type) and issubclass(model_class, Model)):
            raise ConfigurationError(f"{model_class!r} is not a pydantic_aioredis Model")
        name = model_class.__name__
        other_store = store_of(model_class)
        if other_store is not None and other_store is not self:
            raise ConfigurationError(
                f"{name} is registered with store {other_store.name!r} already; a model "
                f"belongs to one store at a time: call unregister_model({name}) on that "
                "store first to move it"
            )
        clashes = sorted(set(model_class.model_fields) & _reserved_field_names())
        if clashes:
            raise ConfigurationError(
                f"{name} has field(s) named {', '.join(map(repr, clashes))}, like attributes "
                "the library gives every model; rename them (an alias keeps the outside name)"
            )
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
        if texts_may_collide(model_class.model_fields[pk].annotation):
            raise PrimaryKeyError(
                f"{name}.{pk} is the primary key, and two values of its type can have the "
                "same key (None is stored as 'null' like the string 'null', 1 as '1' like "
                "'1' or Decimal('1')), so two records would share one. Give it a single type, "
                "such as str"
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
        namesake = self.models.get(name.lower())
        if namesake is not None and namesake is not model_class:
            raise ConfigurationError(
                f"store {self.name!r} has a model named {namesake.__name__} already; "
                "store.model() finds models by name, so names must differ within a store"
            )
        self._tables[model_class] = table
        self.models[name.lower()] = model_class
        for shard in table.shards:  # its first call records its index state (`_index_state`)
            self._first_calls[shard.index_key] = table
        bind_table(model_class, table)
        return model_class

    def unregister_model(self, model_class: type[Model]) -> None:
        """Unbind a model from this store: it is then not registered anywhere, and may be
        registered with another store. Its records stay in Redis.

        Raises:
            NotRegisteredError: The model is not registered with this store.
        """
        from ._model import unbind_table

        table = self._tables.pop(model_class, None)
        if table is None:
            raise NotRegisteredError(model_class.__name__)
        for shard in table.shards:
            self._first_calls.pop(shard.index_key, None)
        del self.models[model_class.__name__.lower()]
        unbind_table(model_class)

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
        """The `redis.asyncio.Redis` client: the injected one, or this event loop's.

        Raises:
            UsageError: No client was injected and no event loop is running.
        """
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

    def _connection(self) -> tuple[AsyncClient, CallsInFlight]:
        loop = asyncio._get_running_loop()
        if loop is None:
            raise UsageError("Store.redis_store is only available inside a running event loop")
        connection = self._clients.get(loop)
        if connection is None:
            client = self._injected
            if client is None:
                client = connect_async(self.redis_config)
            connection = self._clients[loop] = (client, CallsInFlight(self._call_limit(client)))
        return connection

    def _call_limit(self, client: AsyncClient) -> int:
        limit = self.redis_config.max_connections
        # An injected client's pool may be smaller: past its size, redis-py raises rather
        # than waits, so calls wait for a slot here instead.
        size = pool_size(client) if client is self._injected else None
        return min(limit, size) if size is not None else limit

    def sync_client(self) -> SyncClient:
        """A blocking client on the same server, for writes made outside an event loop.

        The store makes it on first use and keeps it: automatic writes outside a running
        loop and the last flush at interpreter exit go through it. `close()` closes it.

        Returns:
            A `redis.Redis` (or `redis.cluster.RedisCluster`) client; for an injected
            client, one made from the injected client's connection settings.
        """
        if self._sync_client is None:
            if self._injected is not None:
                self._sync_client = sync_twin(self._injected)
            else:
                self._sync_client = connect_sync(self.redis_config)
        return self._sync_client

    # -- operations ----------------------------------------------------------------------

    def ttl_ms(self, life_span_seconds: float | None) -> int:
        """The TTL in milliseconds that a write sets: the call's `life_span_seconds`, else
        the store's `life_span_in_seconds`, else 0, which keeps the TTL the record has.

        Args:
            life_span_seconds: The life span asked for by the call; None takes the store's
                `life_span_in_seconds`.

        Returns:
            Milliseconds, at least 1 for any life span; 0 when there is none.

        Raises:
            InvalidInputError: The life span is not a number of seconds from 0.001 to
                100 years.
        """
        if life_span_seconds is not None:
            return _life_span_ms(life_span_seconds)
        if self.life_span_in_seconds is not None:
            return _life_span_ms(self.life_span_in_seconds)
        return 0

    @property
    def default_ttl_ms(self) -> int:
        """The TTL in milliseconds of a write that names none (0: keep the record's)."""
        return self.ttl_ms(None)

    async def execute(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Send queued automatic writes, then these calls, and return their replies.

        This is the path of every model operation (it is what makes each call see the
        automatic writes made before it). The calls are the library's own server-side
        script calls, built by a model's table; it is not a way to send arbitrary
        commands (use `redis_store` for that).

        Raises:
            AutoSaveError: A queued automatic write failed; these calls were not sent.
            RedisOperationError: Redis failed.
        """
        if self.pending:
            await self.pending.flush()
        return await self.send(calls)

    async def send(self, calls: Sequence[ScriptCall], raise_errors: bool = True) -> list[Any]:
        """Send script calls in one round trip, within the store's connection limit.

        With `raise_errors` False, a call's error reply takes the place of its reply
        instead of being raised (a failure of the whole round trip is still raised).
        Cancelling the caller affects this call only (see `_inflight`). Unlike `execute`,
        it does not send the queued automatic writes first: the queue itself sends its
        writes through it.

        Raises:
            RedisOperationError: Redis failed.
        """
        if self._first_calls:
            await self._first_call_of_models(calls)
        client, in_flight = self._connection()
        # Several calls on a cluster go out as one pipeline, which redis-py sends to each
        # node in a subtask: such work must not be cut short by a cancellation.
        fans_out = self.cluster and len(calls) > 1

        async def call() -> list[Any]:
            # Data that pydantic-aioredis 1.4 wrote is refused with one clear error.
            async with self._legacy_check.guard(client, calls):
                return await run_calls(client, calls, raise_errors)

        replies = await in_flight.run(call, detach=fans_out)
        return replies if self._decodes else _decoded(replies)

    async def _first_call_of_models(self, calls: Sequence[ScriptCall]) -> None:
        """Before a model's first writing call: its index state (see `_index_state`)."""
        firsts = self._first_calls
        tables = {
            firsts[call.keys[0]]
            for call in calls
            if call.script.writes and call.keys and call.keys[0] in firsts
        }
        for table in tables:
            # Under way in another task: waited for, so that no write of the model reaches
            # Redis before its index state is recorded. (Its own calls do not write.)
            await table.index_state.prepare()
            for shard in table.shards:
                firsts.pop(shard.index_key, None)

    async def flush(self) -> None:
        """Wait until every queued automatic write is in Redis.

        Raises:
            AutoSaveError: A write failed; it stays queued and the next flush retries it.
        """
        await self.pending.flush()

    async def close(self) -> None:
        """Send what is queued, then close this loop's connections.

        Calls cancelled on a cluster whose work still runs in the background are waited
        for first. An injected client is left open: its owner closes it.
        """
        try:
            await self.flush()
        finally:
            try:
                await self._close_loop_client()
            finally:
                self._close_sync_client()

    async def _close_loop_client(self) -> None:
        loop = asyncio._get_running_loop()
        connection = self._clients.pop(loop, None) if loop is not None else None
        if connection is None:
            return
        client, in_flight = connection
        await in_flight.settle()  # the work of cancelled calls still uses the client
        if client is not self._injected:
            await client.aclose()

    def _close_sync_client(self) -> None:
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


# The longest life span: a century. Longer ones are surely mistakes, and a TTL far
# enough out would overflow the millisecond arithmetic of Lua's doubles and of EXPIRE.
MAX_LIFE_SPAN_SECONDS = 100 * 365.25 * 24 * 3600


def _life_span_ms(seconds: Any) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise InvalidInputError(f"a life span is a number of seconds, not {seconds!r}")
    if not (0.001 <= seconds <= MAX_LIFE_SPAN_SECONDS):  # NaN fails this test too
        raise InvalidInputError(
            f"a life span must be from 0.001 to {MAX_LIFE_SPAN_SECONDS:.0f} seconds "
            f"(100 years), not {seconds!r}"
        )
    return max(1, round(seconds * 1000))


@cache
def _reserved_field_names() -> frozenset[str]:
    """Names that every model has as attributes of the library (`save`, `auto_save`...):
    a field of that name would be shadowed by them, or shadow them."""
    from ._model import Model

    return frozenset(name for name in vars(Model) if not name.startswith("_"))


def _decodes_responses(client: Any) -> bool:
    if is_cluster(client):
        return bool(client.get_connection_kwargs().get("decode_responses", False))
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    return bool(kwargs.get("decode_responses", False))


def _decoded(value: Any) -> Any:
    # As the library's own clients read replies (see `READ_ERRORS`).
    if isinstance(value, bytes):
        return value.decode(errors="surrogateescape")
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
