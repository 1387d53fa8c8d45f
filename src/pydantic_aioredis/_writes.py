"""The queue of automatic writes that a store has not sent yet.

`__init__` and `__setattr__` are synchronous, the store is not. Rather than run a nested
event loop (what 1.4 did, by patching asyncio), an automatic write is *queued* here and
sent later, in program order:

* inside a running loop, by a task scheduled with `loop.call_soon` (so that everything
  assigned before the current coroutine next awaits is sent in one round trip), and
  before every library call on the store (read-your-writes);
* outside any loop, at once, with the store's synchronous client;
* at interpreter exit, for whatever is left (`asyncio.run` cancels pending tasks).

Writes coalesce per record: the queue keeps, for every field, the instance that assigned it
last, and reads the value when the write is sent.

What a failure does depends on whether trying again can help:

* transient (connection lost, timeout, a server busy loading or out of memory): the write
  stays queued, the next flush sends it again, and each library call raises `AutoSaveError`
  meanwhile;
* permanent (a value that cannot be stored, a key of the wrong type written by another
  program): that write is dropped, the others are sent, and the error is raised once, by
  the next library call on the store, naming the model and key.

A field update applies to a record that exists: one that is gone (expired, deleted, never
inserted) stays gone. Every failure, retry and drop is logged on the `pydantic_aioredis`
logger, with the model and key, never a value.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._connection import is_transient, run_calls_sync
from ._exceptions import (
    AutoSaveError,
    InvalidInputError,
    PydanticAioredisError,
    RedisOperationError,
    SerializationError,
    UnmigratedDataError,
)
from ._index_state import ForeignStatesError
from ._scripts import ScriptCall

if TYPE_CHECKING:
    from ._connection import SyncClient
    from ._keys import Shard
    from ._table import ModelTable

__all__ = ["PendingWrites", "QueuedWrite"]

logger = logging.getLogger("pydantic_aioredis")


@dataclass(frozen=True)
class QueuedWrite:
    """An automatic write waiting in `store.pending`.

    Attributes:
        model: The model class.
        key: The record's primary key, as stored.
        fields: The fields to write, or None for the whole record.
    """

    model: type[Any]
    key: str
    fields: tuple[str, ...] | None


class _PendingRecord:
    """What is owed to one record: a whole write, field updates, or both."""

    __slots__ = ("fields", "pk", "table", "version", "whole")

    def __init__(self, table: ModelTable[Any], pk: str) -> None:
        self.table = table
        self.pk = pk
        self.whole: Any = None  # the instance to write whole, if any
        self.fields: dict[str, Any] = {}  # field name -> the instance that set it last
        self.version = 0

    def describe(self) -> str:
        return f"{self.table.model.__name__} {self.pk!r}"

    def encode_fields(self) -> tuple[list[str | bytes], list[str]]:
        """The field updates owed: `name, value` pairs and index encodings."""
        live = {n: source for n, source in self.fields.items() if not isinstance(source, _Frozen)}
        pairs, encodings = self.table.encode_changes(live) if live else ([], [])
        encodings = encodings or [""] * len(self.table.indexed)
        frozen = {id(s): s for s in self.fields.values() if isinstance(s, _Frozen)}.values()
        for values in frozen:
            pairs += values.pairs
            encodings = [new or old for old, new in zip(encodings, values.encodings)]
        return pairs, encodings


class _Frozen:
    """Field values encoded when their instance moved on to another primary key: what is
    owed to the old record is what the instance held until then."""

    __slots__ = ("encodings", "pairs")

    def __init__(self, pairs: list[str | bytes], encodings: list[str]) -> None:
        self.pairs = pairs
        self.encodings = encodings


class _Unit:
    """One script call of a flush and the records it carries (all of one shard)."""

    __slots__ = ("call", "kind", "records", "shard", "table")

    def __init__(
        self,
        table: ModelTable[Any],
        shard: Shard,
        kind: str,
        records: list[tuple[_PendingRecord, Any]],
    ) -> None:
        self.table = table
        self.shard = shard
        self.kind = kind  # "whole" or "fields"
        self.records = records  # (pending record, its encoded form)
        encoded = [item for _, item in records]
        ttl_ms = table.store.default_ttl_ms
        if kind == "whole":
            self.call = table.write_call(shard, encoded, ttl_ms)
        else:
            self.call = table.update_call(shard, encoded, ttl_ms)

    def split(self) -> list[_Unit]:
        return [_Unit(self.table, self.shard, self.kind, [record]) for record in self.records]


class _Flush:
    """The work of one flush: what it sends, and what came of it."""

    def __init__(self) -> None:
        self.units: list[_Unit] = []
        self.sent: list[tuple[_PendingRecord, int]] = []  # (record, its version when sent)
        self.versions: dict[int, int] = {}  # id(record) -> its version when encoded
        self.dropped: list[tuple[_PendingRecord, PydanticAioredisError]] = []
        self.kept: list[_PendingRecord] = []  # a transient failure: sent again later
        self.transient: RedisOperationError | None = None


# A flush's conversation: it yields the calls to send and receives what they answered (a
# reply, or the error of that call), so that one algorithm serves async and sync sending.
Exchange = Generator[list[ScriptCall], list[Any], None]


class PendingWrites:
    """Automatic writes waiting to be sent to Redis (`store.pending`).

    `len(store.pending)` counts the records they touch; `queued()` lists them and
    `discard()` drops some or all; `last_error` is the error of the last failed attempt.
    """

    def __init__(
        self,
        send: Callable[[Sequence[ScriptCall], bool], Awaitable[list[Any]]],
        sync_client: Callable[[], SyncClient],
    ) -> None:
        # The store's send: within its connection limit, replies decoded; called with
        # raise_errors=False, so that each call's error reply takes that call's place.
        self._send = send
        self._sync_client = sync_client
        self._records: dict[tuple[int, str], _PendingRecord] = {}
        self._failures: list[PydanticAioredisError] = []  # dropped, not yet raised
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._kick_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.last_error: BaseException | None = None

    def __len__(self) -> int:
        return len(self._records)

    def __bool__(self) -> bool:
        return bool(self._records or self._failures)

    # -- looking at the queue ----------------------------------------------------------

    def queued(self) -> list[QueuedWrite]:
        """The writes waiting to be sent, one per record, in the order they were queued."""
        return [
            QueuedWrite(
                record.table.model,
                record.pk,
                None if record.whole is not None else tuple(record.fields),
            )
            for record in self._records.values()
        ]

    def discard(self, model: type[Any] | None = None, ids: Iterable[Any] | None = None) -> int:
        """Drop queued writes without sending them: those of `model` (all models if None),
        and of those records only if `ids` is given. Returns how many records were dropped.

        Example:
            ```py
            store.pending.discard(Book, ids=["The Hobbit"])  # never write this one
            ```
        """
        wanted = None
        if ids is not None:
            if model is None:
                raise InvalidInputError("discard(ids=...) needs the model the ids belong to")
            wanted = set(_table_of(model).primary_keys(ids))
        doomed = [
            key
            for key, record in self._records.items()
            if (model is None or record.table.model is model)
            and (wanted is None or record.pk in wanted)
        ]
        for key in doomed:
            record = self._records.pop(key)
            logger.info("discarded the queued automatic write of %s", record.describe())
        return len(doomed)

    # -- queueing ----------------------------------------------------------------------

    def add_whole(self, table: ModelTable[Any], pk: str, instance: Any) -> None:
        record = self._record(table, pk)
        record.whole = instance
        record.fields.clear()  # the whole write carries every field
        record.version += 1

    def add_fields(
        self, table: ModelTable[Any], pk: str, instance: Any, names: Iterable[str]
    ) -> None:
        record = self._record(table, pk)
        fields = record.fields
        for name in names:
            fields[name] = instance
        record.version += 1

    def freeze(self, table: ModelTable[Any], pk: str, instance: Any) -> None:
        """Keep the field updates that `instance` owes to record `pk` at their current
        values: the instance now names another record."""
        record = self._records.get((id(table), pk))
        if record is None:
            return
        names = [name for name, source in record.fields.items() if source is instance]
        if not names:
            return
        try:
            frozen = _Frozen(
                table.codec.encode_fields(instance, names),
                table.index_encodings(instance, names),
            )
        except (SerializationError, InvalidInputError):
            return  # sent as they are, and refused then
        for name in names:
            record.fields[name] = frozen

    def _record(self, table: ModelTable[Any], pk: str) -> _PendingRecord:
        key = (id(table), pk)
        record = self._records.get(key)
        if record is None:
            record = self._records[key] = _PendingRecord(table, pk)
        return record

    def schedule(self) -> None:
        """Arrange for the queue to be sent: soon inside a loop, now outside one."""
        loop = asyncio._get_running_loop()
        if loop is None:
            self.flush_sync(self._sync_client())
        elif not self._kick_scheduled:
            self._kick_scheduled = True
            loop.call_soon(self._kick, loop)

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._kick_scheduled = False
        lock = self._locks.get(loop)
        if lock is not None and lock.locked():
            return  # a flush is under way; it schedules another kick if more is queued
        if self._records and not loop.is_closed():
            task = loop.create_task(self._background_flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _background_flush(self) -> None:
        # What goes wrong here is raised by the next library call on the store (and
        # logged now): never left in a task nobody awaits.
        try:
            await self._flush(raise_errors=False)
        except Exception as exc:
            self.last_error = exc
            logger.exception("automatic writes: the background flush failed")

    # -- sending -----------------------------------------------------------------------

    async def flush(self) -> None:
        """Send everything queued and wait for Redis to acknowledge it.

        Raises:
            AutoSaveError: Redis failed for a reason that may pass; the writes stay queued
                for the next flush.
            SerializationError, RedisOperationError: A write could never succeed (a value
                that cannot be stored, a key holding another type); it was dropped, the
                others were sent. Raised once, by the first flush after it happened.
            UnmigratedDataError: A model's records are still as pydantic-aioredis 1.4
                wrote them: its writes are dropped (they cannot succeed before a migration,
                which rewrites every record), the others are sent.
        """
        await self._flush(raise_errors=True)

    async def _flush(self, raise_errors: bool) -> None:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        transient = None
        async with lock:  # one flush at a time, so writes reach Redis in program order
            if self._records:
                flush = self._prepare()
                exchange = self._exchange(flush)
                calls: list[ScriptCall] | None = next(exchange)
                while calls is not None:
                    replies = await self._send_for_errors(calls)
                    calls = _next_calls(exchange, replies)
                transient = self._settle(flush)
            if self._records and not self._kick_scheduled:
                self._kick_scheduled = True  # what was queued meanwhile goes next
                loop.call_soon(self._kick, loop)
        if raise_errors:
            self._raise_failures(transient)

    def flush_sync(self, client: SyncClient) -> None:
        """Send everything queued, blocking; for code that runs outside an event loop.

        Raises:
            The errors of `flush`.
        """
        transient = self._index_states_sync(client) if self._records else None
        if self._records and transient is None:
            flush = self._prepare()
            exchange = self._exchange(flush)
            calls: list[ScriptCall] | None = next(exchange)
            while calls is not None:
                replies = _sent_sync(client, calls)
                calls = _next_calls(exchange, replies)
            transient = self._settle(flush)
        self._raise_failures(transient)

    def _index_states_sync(self, client: SyncClient) -> AutoSaveError | None:
        """Before a model's first write, its index state, as `Store.send` records it on the
        async path (see `_index_state`). A failure that may pass keeps every write queued;
        one that cannot (a key of another type: 1.4's index, say) is left to the writes,
        which meet it too and are dropped with it, as they were before."""
        tables = {id(record.table): record.table for record in self._records.values()}
        try:
            for table in tables.values():
                try:
                    table.index_state.prepare_sync(client)
                except ForeignStatesError as exc:  # the writes would not meet it: drop them
                    flush = _Flush()
                    flush.dropped = [(r, exc) for r in self._records.values() if r.table is table]
                    flush.versions = {id(r): r.version for r, _ in flush.dropped}
                    self._settle(flush)
        except RedisOperationError as exc:
            if not is_transient(exc):
                return None
            flush = _Flush()
            flush.transient = exc
            flush.kept = list(self._records.values())
            return self._settle(flush)
        return None

    async def _send_for_errors(self, calls: list[ScriptCall]) -> list[Any]:
        try:
            return await self._send(calls, False)
        except RedisOperationError as exc:
            return [exc] * len(calls)

    # -- one flush, without I/O --------------------------------------------------------

    def _prepare(self) -> _Flush:
        """Encode what is queued into calls; a value that cannot be stored is dropped."""
        flush = _Flush()
        by_table: dict[int, list[_PendingRecord]] = {}
        for record in self._records.values():
            by_table.setdefault(id(record.table), []).append(record)
            flush.versions[id(record)] = record.version
        for records in by_table.values():
            self._add_units(flush, records)
        return flush

    def _add_units(self, flush: _Flush, records: list[_PendingRecord]) -> None:
        table = records[0].table
        wholes: list[tuple[_PendingRecord, Any]] = []
        updates: list[tuple[_PendingRecord, Any]] = []
        for record in records:
            try:
                if record.whole is not None:
                    encoded = table.encode_whole(record.whole)
                    # The instance's primary key changed after this write was queued: its
                    # state now belongs to the newer record, queued under the new key.
                    if encoded[0] == record.pk:
                        wholes.append((record, encoded))
                if record.fields:
                    pairs, encodings = record.encode_fields()
                    updates.append((record, (record.pk, pairs, encodings)))
            except Exception as exc:  # a value, a serializer, a computed field...: for good
                flush.dropped.append((record, _naming(record, _as_library_error(exc))))
                continue
            flush.sent.append((record, record.version))
        for kind, items in (("whole", wholes), ("fields", updates)):
            for shard, group in table.by_shard(items, _pk_of):
                for start in range(0, len(group), _UNIT_SIZE):
                    chunk = list(group[start : start + _UNIT_SIZE])
                    flush.units.append(_Unit(table, shard, kind, chunk))

    def _exchange(self, flush: _Flush) -> Exchange:
        """Send the units; a unit refused for good is sent again record by record, so
        that one bad record does not take the others of its call down with it."""
        replies = yield [unit.call for unit in flush.units]
        retry: list[_Unit] = []
        for unit, reply in zip(flush.units, replies):
            if len(unit.records) > 1 and _is_permanent(reply):
                retry += unit.split()
            else:
                self._account(flush, unit, reply)
        # A call can fail for good before anything is sent (all calls then share one
        # error): each record goes alone then, in a round trip of its own.
        shared = len({id(reply) for reply in replies}) == 1 and len(replies) > 1
        batches = [[unit] for unit in retry] if shared else [retry] if retry else []
        for units in batches:
            replies = yield [unit.call for unit in units]
            for unit, reply in zip(units, replies):
                self._account(flush, unit, reply)

    def _account(self, flush: _Flush, unit: _Unit, reply: Any) -> None:
        if not isinstance(reply, BaseException):
            _log_missing(unit, reply)
        elif is_transient(reply):
            flush.transient = _as_operation_error(reply)
            flush.kept += [record for record, _ in unit.records]
        else:
            flush.dropped += [(record, _naming(record, reply)) for record, _ in unit.records]

    def _settle(self, flush: _Flush) -> AutoSaveError | None:
        """Take what was delivered or dropped off the queue; the error of what stays."""
        kept = {id(record) for record in flush.kept}
        for record, version in flush.sent:
            key = (id(record.table), record.pk)
            current = self._records.get(key) is record and record.version == version
            if id(record) not in kept and current:
                del self._records[key]  # else it changed while in flight: send it again
        for record, error in flush.dropped:
            key = (id(record.table), record.pk)
            if self._records.get(key) is record and record.version == flush.versions[id(record)]:
                del self._records[key]  # else changed meanwhile: sent again, with new values
            logger.warning(
                "dropped the automatic write of %s: %s; it could never succeed",
                record.describe(),
                _safe_reason(error),
            )
            self._failures.append(error)
        if flush.transient is None:
            if self.last_error is not None and flush.sent:
                logger.info("queued automatic writes sent after an earlier failure")
            self.last_error = None
            return None
        error = AutoSaveError(
            f"{len(self._records)} automatic write(s) not acknowledged by Redis, kept queued "
            f"and sent again by the next call: {flush.transient}"
        )
        error.__cause__ = flush.transient.__cause__
        self.last_error = error
        logger.warning(
            "automatic writes of %d record(s) kept queued for a retry: %s",
            len({id(record) for record in flush.kept}),
            flush.transient,
        )
        return error

    def _raise_failures(self, transient: AutoSaveError | None) -> None:
        """Raise a dropped write's error (once), else the error of writes still queued."""
        if self._failures:
            failures, self._failures = self._failures, []
            first = failures[0]
            if len(failures) > 1:
                more = f" (and {len(failures) - 1} more automatic write(s) dropped: see the log)"
                first.args = (f"{first}{more}",)
            raise first
        if transient is not None:
            raise transient


# Records per call of a flush: the write scripts' own bound.
_UNIT_SIZE = 250


def _pk_of(item: tuple[_PendingRecord, Any]) -> str:
    return item[0].pk


def _table_of(model: type[Any]) -> ModelTable[Any]:
    from ._model import _table_of as table_of

    return table_of(model)


def _next_calls(exchange: Exchange, replies: list[Any]) -> list[ScriptCall] | None:
    try:
        return exchange.send(replies)
    except StopIteration:
        return None


def _is_permanent(reply: Any) -> bool:
    return isinstance(reply, BaseException) and not is_transient(reply)


def _as_operation_error(error: BaseException) -> RedisOperationError:
    if isinstance(error, RedisOperationError):
        return error
    wrapped = RedisOperationError(f"Redis failed: {error}")
    wrapped.__cause__ = error
    return wrapped


def _as_library_error(error: Exception) -> PydanticAioredisError:
    """An error met while encoding a queued write, in the library's terms."""
    if isinstance(error, PydanticAioredisError):
        return error
    wrapped = SerializationError(f"{type(error).__name__}: {error}")
    wrapped.__cause__ = error
    return wrapped


def _naming(record: _PendingRecord, error: BaseException) -> PydanticAioredisError:
    """The error of a dropped write, saying which record it was."""
    if isinstance(error, UnmigratedDataError):
        return error  # it names the model, and the command that makes its writes possible
    where = f"automatic write of {record.describe()} dropped: "
    named: PydanticAioredisError
    if isinstance(error, SerializationError):
        named = SerializationError(where + str(error))
    else:
        named = RedisOperationError(where + str(error))
    named.__cause__ = error
    return named


def _safe_reason(error: PydanticAioredisError) -> str:
    # Serialization messages may quote the value (pydantic's do): log only the kind.
    cause = error.__cause__
    if isinstance(cause, SerializationError | InvalidInputError):
        return f"{type(cause).__name__} (a value that cannot be stored)"
    return str(cause)


def _log_missing(unit: _Unit, reply: Any) -> None:
    if unit.kind == "fields" and reply:
        for pk in reply:
            logger.info(
                "automatic field update of %s %r not applied: the record is gone",
                unit.table.model.__name__,
                pk,
            )


def _sent_sync(client: SyncClient, calls: list[ScriptCall]) -> list[Any]:
    try:
        return run_calls_sync(client, calls, False)
    except RedisOperationError as exc:
        return [exc] * len(calls)
