"""The migration of one model's records from the layout of pydantic-aioredis 1.4.

A run, for one model:

1. *prepare*: a 1.4 record whose key is one of the model's own keys now (its primary key
   was `__expiry`, say) is moved aside, so that it cannot make the model's calls fail; the
   1.4 index (a set of record keys, under the 1.4 prefix or ours) becomes the model's work
   list, `{namespace}__index:~upgrading_1.4`, with the records an earlier run could not
   convert (see `_upgrade_scripts.PREPARE`);
2. *convert*, a chunk at a time: read the records the list names (one call), sort and
   convert them in memory (`_upgrade_records`), and write them back in one call that also
   moves each to its new key if that changed, enters it in our indexes and takes it off the
   list;
3. records that cannot be converted (a value that does not decode or validate, a new key
   taken) are left as they were, listed in `{namespace}__index:~unconverted_1.4`, and
   reported; records in today's layout already (written by this library since an earlier
   run left them over) are taken off the list as they are.

When the list is empty the model is migrated, and the store's check (`_legacy`) lets calls
on it through. A dry run reads the same records and reports, writing nothing.

Every call that writes carries a write token (see `_scripts`): redis-py sends a call again
after a timeout, and the second sending then answers what the first did, so that the counts
of the report stay exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._legacy import LegacyKeys
from ._legacy_values import LegacyValues
from ._scripts import LuaScript, ScriptCall, write_token
from ._sharded import drop
from ._upgrade_records import Chunk, Converted, RecordConverter, wire_key
from ._upgrade_scripts import (
    CONVERT,
    CONVERTED,
    CURRENT,
    EXISTING,
    GONE,
    NOT_A_HASH,
    PREPARE,
    READ,
    SIZE,
    TAKEN,
)

if TYPE_CHECKING:
    from ._store import Store
    from ._table import ModelTable

__all__ = ["ModelUpgrade", "ModelUpgrader", "Progress", "RecordProblem"]

# Index entries moved onto the work list per call while preparing.
_MOVE_BATCH = 1000

# Called after each chunk: model name, records done, records in all.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class RecordProblem:
    """A record that was not converted, and why; it was left as it was.

    Attributes:
        model: The model's name.
        key: The record's key in Redis.
        field: The field at fault, or None when the record as a whole is.
        problem: What is wrong.
    """

    model: str
    key: str
    field: str | None
    problem: str

    def __str__(self) -> str:
        where = f"field {self.field!r} of " if self.field else ""
        return f"{self.model}: {where}{self.key!r}: {self.problem}"


@dataclass
class ModelUpgrade:
    """What the migration did to one model's records (in a dry run: would do).

    Every record the lists named is counted once: converted, current, expired, or among
    the problems.

    Attributes:
        model: The model's name.
        records: Records the 1.4 index listed (with those an earlier run left as they were).
        converted: Records converted to today's layout.
        moved: Of those, records whose key changed (the prefix's case, or the primary key's
            text: a `datetime` key was `2024-01-02 03:04:05`, it is `2024-01-02T03:04:05`).
        reencoded: Stored values whose text changed.
        current: Records in today's layout already: left over by an earlier run and written
            by this library since. They were taken off the list as they are.
        expired: Entries whose record no longer existed (it had expired, or was deleted
            since an earlier run); they were dropped.
        problems: Records not converted, each with the field at fault.
    """

    model: str
    records: int = 0
    converted: int = 0
    moved: int = 0
    reencoded: int = 0
    current: int = 0
    expired: int = 0
    problems: list[RecordProblem] = field(default_factory=list)

    def __str__(self) -> str:
        return self.describe(dry_run=False)

    def describe(self, dry_run: bool) -> str:
        """One line: the counts (in the conditional for a dry run)."""
        done, moved, reencoded, dropped, left = (
            ("would be converted", "would move", "would be re-encoded", "would be dropped",
             "would be left as they are")
            if dry_run
            else ("converted", "moved", "re-encoded", "dropped", "left as they were")
        )  # fmt: skip
        return (
            f"{self.model}: {self.records:,} records found, {self.converted:,} {done} "
            f"({self.moved:,} {moved} to a new key, {self.reencoded:,} values {reencoded}), "
            f"{self.current:,} already in today's layout, "
            f"{self.expired:,} entries without a record {dropped}, "
            f"{len(self.problems):,} {left}"
        )


class ModelUpgrader:
    """Migrates (or, in a dry run, inspects) the 1.4 records of one registered model."""

    def __init__(
        self,
        store: Store,
        table: ModelTable[Any],
        values: LegacyValues,
        chunk_size: int,
        progress: Progress | None,
    ) -> None:
        self.store, self.table = store, table
        self.keys = LegacyKeys.of(table)
        self.converter = RecordConverter(table, self.keys, values)
        self.chunk_size = chunk_size
        self.progress = progress
        self.report = ModelUpgrade(table.model.__name__)

    async def run(self) -> ModelUpgrade:
        """Convert every record still to do; returns the report."""
        total = await self._prepare()
        self.report.records += total
        while total:
            await self._pass(self.keys.work, write=True)
            left = await self._size(self.keys.work)
            if left == total:  # a pass that changed nothing would change nothing again
                break
            total = left
        if not total:  # each record it converted was entered in the indexes
            await self.table.index_state.mark_converted()
        self._progress(done=True)
        return self.report

    async def dry_run(self) -> ModelUpgrade:
        """Read what a run would convert and report what it would do; write nothing."""
        sources = (self.keys.work, self.keys.index, self.keys.legacy_index, self.keys.unconverted)
        for source in dict.fromkeys(sources):
            size = await self._size(source)
            if size:
                self.report.records += size
                await self._pass(source, write=False)
        self._progress(done=True)
        return self.report

    # -- calls ---------------------------------------------------------------------------

    def _call(
        self, script: LuaScript, args: tuple[Any, ...], *keys: str, token: str = ""
    ) -> ScriptCall:
        """A call with the header and keys of every script (see `_upgrade_scripts`)."""
        shard = self.table.shards[0]
        header = (shard.namespace, len(shard.indexed), token)
        lists = (self.keys.work, self.keys.unconverted)
        return ScriptCall(script, (*shard.keys, *lists, *keys), (*header, *args))

    async def _prepare(self) -> int:
        keys = self.keys
        legacy = () if keys.legacy_index == keys.index else (keys.legacy_index,)
        args = (_MOVE_BATCH, keys.aside_prefix)
        while True:
            call = self._call(PREPARE, args, keys.state, keys.lock, *legacy, token=write_token())
            ((done, size, moved),) = await self.store.send([call])
            for key, target in zip(moved[::2], moved[1::2]):
                self.report.records += 1
                self._problem(key, None, self._moved_aside(target))
            if int(done):
                return int(size)

    def _moved_aside(self, target: str) -> str:
        return (
            f"its key is one of the model's own keys now: moved to {target!r}, "
            "as it is, and not converted"
        )

    async def _size(self, key: str) -> int:
        (size,) = await self.store.send([self._call(SIZE, (), key)])
        return int(size)

    async def _pass(self, source: str, write: bool) -> None:
        """One SSCAN pass over `source`, a chunk per call. The next chunk is read while this
        one is converted and written (they are different records)."""
        request: asyncio.Future[list[Any]] | None = self._read(source, "0")
        try:
            while request is not None:
                ((cursor, rows),) = await request
                request = None if str(cursor) == "0" else self._read(source, cursor)
                # Let the read reach the socket before converting: redis-py passes a few
                # awaits on its way there (as `ModelTable._read_range` does).
                for _ in range(4):
                    await asyncio.sleep(0)
                chunk = self._sorted(rows)
                await (self._write(chunk) if write else self._inspect(chunk))
                self._progress()
        finally:
            await drop(request)

    def _read(self, source: str, cursor: str) -> asyncio.Future[list[Any]]:
        call = self._call(READ, (cursor, self.chunk_size), source)
        return asyncio.ensure_future(self.store.send([call]))

    def _sorted(self, rows: list[Any]) -> Chunk:
        chunk = self.converter.sort(rows)
        for key, error in chunk.failed:
            self._problem(key, error.field, error.problem)
        return chunk

    async def _write(self, chunk: Chunk) -> None:
        failed = [wire_key(key) for key, _ in chunk.failed]
        args: list[Any] = [len(chunk.gone), *chunk.gone, len(failed), *failed]
        args += [len(chunk.current), *chunk.current]
        for record in chunk.records:
            args += [record.key, record.pk, len(record.pairs) // 2, *record.pairs]
            args += record.encodings
        call = self._call(CONVERT, tuple(args), token=write_token())
        ((gone, current, statuses),) = await self.store.send([call])
        self.report.expired += int(gone)
        self.report.current += int(current)
        for record, status in zip(chunk.records, statuses):
            self._tally(record, int(status))

    async def _inspect(self, chunk: Chunk) -> None:
        """What `_write` would do with the chunk."""
        self.report.expired += len(chunk.gone)
        self.report.current += len(chunk.current)
        moved = [record for record in chunk.records if self._moves(record)]
        new_keys = tuple(self.keys.namespace + record.pk for record in moved)
        taken = set()
        if new_keys:
            (found,) = await self.store.send([self._call(EXISTING, new_keys)])
            taken = {record.key for record, exists in zip(moved, found) if int(exists)}
        for record in chunk.records:
            self._tally(record, TAKEN if record.key in taken else CONVERTED)

    def _tally(self, record: Converted, status: int) -> None:
        report = self.report
        if status == CONVERTED:
            report.converted += 1
            report.moved += self._moves(record)
            report.reencoded += record.reencoded
        elif status == GONE:
            report.expired += 1
        elif status == CURRENT:
            report.current += 1
        elif status == TAKEN:
            new_key = self.keys.namespace + record.pk
            self._problem(record.key, None, f"its new key {new_key!r} holds another record")
        elif status == NOT_A_HASH:
            self._problem(record.key, None, "it changed into something else than a hash")
        # else it was no longer on the list: another run of the migration took it

    def _moves(self, record: Converted) -> bool:
        return record.key != self.keys.namespace + record.pk

    def _progress(self, done: bool = False) -> None:
        if self.progress is not None:
            report = self.report
            handled = report.converted + report.current + report.expired + len(report.problems)
            self.progress(report.model, report.records if done else handled, report.records)

    def _problem(self, key: str, field_name: str | None, problem: str) -> None:
        self.report.problems.append(RecordProblem(self.report.model, key, field_name, problem))
