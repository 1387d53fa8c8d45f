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
last, and reads the value when the write is sent. A write leaves the queue only once Redis
has acknowledged it; a failure leaves it queued and is raised to the caller of the flush.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ._connection import run_calls_sync
from ._exceptions import (
    AutoSaveError,
    RedisOperationError,
    SerializationError,
    UnmigratedDataError,
)
from ._scripts import ScriptCall

if TYPE_CHECKING:
    from ._connection import SyncClient
    from ._table import ModelTable

__all__ = ["PendingWrites"]


class _PendingRecord:
    """What is owed to one record: a whole write, field updates, or both."""

    __slots__ = ("fields", "latest", "pk", "table", "version", "whole")

    def __init__(self, table: ModelTable[Any], pk: str) -> None:
        self.table = table
        self.pk = pk
        self.whole: Any = None  # the instance to write whole, if any
        self.fields: dict[str, Any] = {}  # field name -> the instance that set it last
        self.latest: Any = None  # the instance changed last: it writes a missing record
        self.version = 0


class _Batch:
    """The script calls of one flush, and the records they came from."""

    def __init__(self) -> None:
        self.calls: list[ScriptCall] = []
        # The field updates of one table: their calls are calls[start:stop].
        self.updates: list[tuple[int, int, list[_PendingRecord]]] = []  # start, stop, records
        self.sent: list[tuple[_PendingRecord, int]] = []
        self.unstorable: list[tuple[_PendingRecord, SerializationError]] = []


class PendingWrites:
    """Automatic writes waiting to be sent to Redis."""

    def __init__(
        self,
        send: Callable[[Sequence[ScriptCall]], Awaitable[list[Any]]],
        sync_client: Callable[[], SyncClient],
    ) -> None:
        self._send = send  # the store's: within its connection limit, replies decoded
        self._sync_client = sync_client
        self._records: dict[tuple[int, str], _PendingRecord] = {}
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._kick_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.last_error: BaseException | None = None

    def __len__(self) -> int:
        return len(self._records)

    # -- queueing ----------------------------------------------------------------------

    def add_whole(self, table: ModelTable[Any], pk: str, instance: Any) -> None:
        record = self._record(table, pk)
        record.whole = record.latest = instance
        record.fields.clear()  # the whole write carries every field
        record.version += 1

    def add_fields(
        self, table: ModelTable[Any], pk: str, instance: Any, names: Iterable[str]
    ) -> None:
        record = self._record(table, pk)
        fields = record.fields
        for name in names:
            fields[name] = instance
        record.latest = instance
        record.version += 1

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
        if not self._records:
            return
        try:
            await self.flush(drop_refused=False)
        except (RedisOperationError, SerializationError) as exc:
            # Not lost: the write stays queued, and the next library call on the store
            # retries it and raises if it still fails.
            self.last_error = exc

    # -- sending -----------------------------------------------------------------------

    async def flush(self, drop_refused: bool = True) -> None:
        """Send everything queued and wait for Redis to acknowledge it.

        Raises:
            AutoSaveError: Redis failed; the writes stay queued for the next flush.
            SerializationError: A queued value cannot be stored; that write is dropped
                (it could never succeed), the others are sent.
            UnmigratedDataError: A model's records are still as pydantic-aioredis 1.4
                wrote them; nothing was sent. With `drop_refused`, the writes to that
                model are dropped (they cannot succeed before a migration, which rewrites
                every record; kept, they would hold up every later call on the store).
        """
        if not self._records:
            return
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        async with lock:  # one flush at a time, so writes reach Redis in program order
            batch = self._batch()
            try:
                if batch.calls:
                    replies = await self._send(batch.calls)
                    follow_up = self._missing_records(batch, replies)
                    if follow_up:
                        await self._send(follow_up)
            except UnmigratedDataError as exc:
                if drop_refused:
                    self._drop_model(exc.model_name)
                raise
            except RedisOperationError as exc:
                raise self._failed(exc) from exc.__cause__
            self._settle(batch)
            if self._records and not self._kick_scheduled:
                self._kick_scheduled = True  # what was queued meanwhile goes next
                loop.call_soon(self._kick, loop)

    def flush_sync(self, client: SyncClient) -> None:
        """Send everything queued, blocking; for code that runs outside an event loop."""
        if not self._records:
            return
        batch = self._batch()
        try:
            if batch.calls:
                follow_up = self._missing_records(batch, run_calls_sync(client, batch.calls))
                if follow_up:
                    run_calls_sync(client, follow_up)
        except RedisOperationError as exc:
            raise self._failed(exc) from exc.__cause__
        self._settle(batch)

    def _drop_model(self, model_name: str) -> None:
        for key, record in list(self._records.items()):
            if record.table.model.__name__ == model_name:
                del self._records[key]

    def _failed(self, exc: RedisOperationError) -> AutoSaveError:
        error = AutoSaveError(
            f"{len(self._records)} automatic write(s) could not be sent and stay queued: {exc}"
        )
        self.last_error = error
        return error

    def _batch(self) -> _Batch:
        batch = _Batch()
        by_table: dict[int, list[_PendingRecord]] = {}
        for record in self._records.values():
            by_table.setdefault(id(record.table), []).append(record)
        for records in by_table.values():
            self._add_table_calls(batch, records)
        return batch

    def _add_table_calls(self, batch: _Batch, records: list[_PendingRecord]) -> None:
        table = records[0].table
        wholes: list[Any] = []
        updates: list[tuple[_PendingRecord, list[str | bytes]]] = []
        for record in records:
            try:
                if record.whole is not None:
                    pk, values = table.encode_whole(record.whole)
                    # The instance's primary key changed after this write was queued: its
                    # state now belongs to the newer record, queued under the new key.
                    if pk == record.pk:
                        wholes.append((pk, values))
                if record.fields:
                    updates.append((record, table.encode_changes(record.fields)))
            except SerializationError as exc:
                batch.unstorable.append((record, exc))
                continue
            batch.sent.append((record, record.version))
        batch.calls += table.write_calls(wholes, table.store.default_ttl_ms)
        if updates:
            start = len(batch.calls)
            batch.calls += table.update_calls([(r.pk, pairs) for r, pairs in updates])
            batch.updates.append((start, len(batch.calls), [record for record, _ in updates]))

    def _missing_records(self, batch: _Batch, replies: list[Any]) -> list[ScriptCall]:
        """Whole writes for records that a field update found missing (expired, deleted)."""
        calls: list[ScriptCall] = []
        for start, stop, records in batch.updates:
            missing = {pk for reply in replies[start:stop] for pk in reply}
            if not missing:
                continue
            table = records[0].table
            encoded = [table.encode_whole(r.latest) for r in records if r.pk in missing]
            calls += table.write_calls(encoded, table.store.default_ttl_ms)
        return calls

    def _settle(self, batch: _Batch) -> None:
        for record, version in batch.sent:
            key = (id(record.table), record.pk)
            if self._records.get(key) is record and record.version == version:
                del self._records[key]  # else it changed while in flight: send it again
        self.last_error = None
        if batch.unstorable:
            for record, _ in batch.unstorable:
                self._records.pop((id(record.table), record.pk), None)
            raise batch.unstorable[0][1]
