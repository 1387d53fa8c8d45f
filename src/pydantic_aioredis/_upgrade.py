"""The migration of one model's records from the layout of pydantic-aioredis 1.4.

A run, for one model:

1. *prepare*: the 1.4 index (a set of record keys, under the 1.4 prefix or ours) becomes
   the model's work list, `{namespace}__upgrading_1.4`, with the records an earlier run
   could not convert (see `_upgrade_scripts.PREPARE`);
2. *convert*, a chunk at a time: read the records the list names (one call), decode each
   value by 1.4's rules (`_legacy_values`), validate the record as the model, encode it as
   we store it (`HashCodec`), and write it back in one call that also moves it to its new
   key if that changed, enters it in our index and takes it off the list;
3. records that cannot be converted (a value that does not decode or validate, a new key
   taken) are left as they were, listed in `{namespace}__unconverted_1.4`, and reported.

When the list is empty the model is migrated, and the store's check (`_legacy`) lets calls
on it through. A dry run reads the same records and reports, writing nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from ._exceptions import PydanticAioredisError
from ._legacy import LegacyKeys
from ._legacy_values import LegacyValueError, LegacyValues
from ._scripts import ScriptCall
from ._sharded import drop
from ._upgrade_scripts import (
    CONVERT,
    CONVERTED,
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

    Attributes:
        model: The model's name.
        records: Records the 1.4 index listed.
        converted: Records converted to today's layout.
        moved: Of those, records whose key changed (the prefix's case, or the primary key's
            text: a `datetime` key was `2024-01-02 03:04:05`, it is `2024-01-02T03:04:05`).
        reencoded: Stored values whose text changed.
        expired: Index entries whose record had expired; they were dropped.
        problems: Records left as they were, each with the field at fault.
    """

    model: str
    records: int = 0
    converted: int = 0
    moved: int = 0
    reencoded: int = 0
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
            f"{self.expired:,} expired entries {dropped}, {len(self.problems):,} {left}"
        )


@dataclass(frozen=True)
class _Converted:
    """A record converted in memory, to be written."""

    key: str  # its 1.4 key
    pk: str
    pairs: list[str]  # field, value, ... as we store them
    reencoded: int  # values whose text changed


@dataclass
class _Chunk:
    """One chunk of records read, sorted by what to do with each."""

    gone: list[str] = field(default_factory=list)  # keys whose record no longer exists
    failed: list[str] = field(default_factory=list)  # keys that cannot be converted
    records: list[_Converted] = field(default_factory=list)


class ModelUpgrader:
    """Migrates (or, in a dry run, inspects) the 1.4 records of one registered model."""

    def __init__(
        self, store: Store, table: ModelTable[Any], chunk_size: int, progress: Progress | None
    ) -> None:
        self.store, self.table = store, table
        self.keys = LegacyKeys.of(table)
        self.values = LegacyValues(table.model)
        self._many: TypeAdapter[list[Any]] = TypeAdapter(list[table.model])  # type: ignore[name-defined]
        self.chunk_size = chunk_size
        self.progress = progress
        self.report = ModelUpgrade(table.model.__name__)

    async def run(self) -> ModelUpgrade:
        """Convert every record still to do; returns the report."""
        total = await self._prepare()
        self.report.records = total
        while total:
            await self._pass(self.keys.work, write=True)
            left = await self._size(self.keys.work)
            if left == total:  # a pass that changed nothing would change nothing again
                break
            total = left
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

    # -- steps -------------------------------------------------------------------------

    async def _prepare(self) -> int:
        keys = self.keys
        sources = (keys.work, keys.index, keys.legacy_index, keys.unconverted)
        call = ScriptCall(PREPARE, tuple(dict.fromkeys(sources)), (_MOVE_BATCH,))
        while True:
            ((done, size),) = await self.store.send([call])
            if done:
                return int(size)

    async def _size(self, key: str) -> int:
        # SCARD through a script, so that the call names the work list first (see _legacy).
        call = ScriptCall(SIZE, (self.keys.work, key), ())
        (size,) = await self.store.send([call])
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
                chunk = self._convert(rows)
                await (self._write(chunk) if write else self._inspect(chunk))
                self._progress()
        finally:
            await drop(request)

    def _read(self, source: str, cursor: str) -> asyncio.Future[list[Any]]:
        call = ScriptCall(READ, (self.keys.work, source), (cursor, self.chunk_size))
        return asyncio.ensure_future(self.store.send([call]))

    async def _write(self, chunk: _Chunk) -> None:
        args: list[Any] = [self.keys.namespace, len(chunk.gone), *chunk.gone]
        args += [len(chunk.failed), *chunk.failed]
        for record in chunk.records:
            args += [record.key, record.pk, len(record.pairs) // 2, *record.pairs]
        keys = (self.keys.work, self.keys.unconverted, self.keys.index, self.table.keys.expiry_key)
        call = ScriptCall(CONVERT, keys, tuple(args))
        ((gone, statuses),) = await self.store.send([call])
        self.report.expired += int(gone)
        for record, status in zip(chunk.records, statuses):
            self._tally(record, int(status))

    async def _inspect(self, chunk: _Chunk) -> None:
        """What `_write` would do with the chunk."""
        self.report.expired += len(chunk.gone)
        moved = [record for record in chunk.records if self._moves(record)]
        new_keys = tuple(self.keys.namespace + record.pk for record in moved)
        taken = set()
        if new_keys:
            (found,) = await self.store.send([ScriptCall(EXISTING, (self.keys.work,), new_keys)])
            taken = {record.key for record, exists in zip(moved, found) if int(exists)}
        for record in chunk.records:
            self._tally(record, TAKEN if record.key in taken else CONVERTED)

    def _tally(self, record: _Converted, status: int) -> None:
        report = self.report
        if status == CONVERTED:
            report.converted += 1
            report.moved += self._moves(record)
            report.reencoded += record.reencoded
        elif status == GONE:
            report.expired += 1
        elif status == TAKEN:
            new_key = self.keys.namespace + record.pk
            self._problem(record.key, None, f"its new key {new_key!r} holds another record")
        elif status == NOT_A_HASH:
            self._problem(record.key, None, "it changed into something else than a hash")
        # else it was converted before, by a run that was stopped, or this call's first
        # sending (redis-py sends a call again after a timeout)

    def _moves(self, record: _Converted) -> bool:
        return record.key != self.keys.namespace + record.pk

    # -- converting records --------------------------------------------------------------

    def _convert(self, rows: list[Any]) -> _Chunk:
        """Sort a chunk of records read: gone, not convertible, or converted in memory."""
        chunk = _Chunk()
        hashes: list[tuple[str, dict[str, str]]] = []
        seen: set[str] = set()
        for key, kind, flat in rows:
            if key in seen:  # SSCAN may return a key twice
                continue
            seen.add(key)
            if kind == "none":
                chunk.gone.append(key)
            elif kind != "hash":
                self._fail(chunk, key, _RecordError(None, f"not a hash but a {kind}"))
            else:
                hashes.append((key, dict(zip(flat[::2], flat[1::2]))))
        for key, stored, instance in self._validated(hashes, chunk):
            try:
                chunk.records.append(self._encoded(key, stored, instance))
            except _RecordError as error:
                self._fail(chunk, key, error)
        return chunk

    def _validated(
        self, hashes: list[tuple[str, dict[str, str]]], chunk: _Chunk
    ) -> list[tuple[str, dict[str, str], Any]]:
        """The records as model instances; those that do not validate go to `chunk.failed`."""
        if self.values.object_hook is not None:
            return self._each_validated(hashes, [None] * len(hashes), chunk)
        readable, documents = [], []
        for key, stored in hashes:
            try:
                documents.append(self.values.document(stored))
                readable.append((key, stored))
            except LegacyValueError as exc:
                self._fail(chunk, key, _RecordError(exc.field, str(exc)))
        try:  # all in one call, as our reads validate records
            instances = self._many.validate_json("[" + ",".join(documents) + "]", by_name=True)
        except ValidationError:
            return self._each_validated(readable, documents, chunk)
        return [(key, stored, instance) for (key, stored), instance in zip(readable, instances)]

    def _each_validated(
        self,
        hashes: list[tuple[str, dict[str, str]]],
        documents: Sequence[str | None],
        chunk: _Chunk,
    ) -> list[tuple[str, dict[str, str], Any]]:
        found = []
        for (key, stored), document in zip(hashes, documents):
            try:
                found.append((key, stored, self._validate(stored, document)))
            except _RecordError as error:
                self._fail(chunk, key, error)
        return found

    def _validate(self, stored: dict[str, str], document: str | None) -> Any:
        """One record as a model instance (from its JSON document, if it has one)."""
        model = self.table.model
        try:
            if document is None:
                return model.model_validate(self.values.decode(stored), by_name=True)
            try:
                return model.model_validate_json(document, by_name=True)
            except ValidationError as exc:
                if exc.errors()[0]["type"] == "json_invalid":
                    self.values.check(stored)  # names the field whose JSON is invalid
                raise
        except LegacyValueError as exc:
            raise _RecordError(exc.field, str(exc)) from None
        except ValidationError as exc:
            error = exc.errors()[0]
            loc = error.get("loc", ())
            raise _RecordError(str(loc[0]) if loc else None, error["msg"]) from None

    def _encoded(self, key: str, stored: dict[str, str], instance: Any) -> _Converted:
        """The record as we store it; how many of its values change."""
        try:
            pk = self.table.primary_key(instance)
            values = self.table.codec.encode(instance)
        except PydanticAioredisError as exc:  # a value or key we cannot store
            raise _RecordError(None, str(exc)) from None
        names = self.table.codec.names
        texts = [value if isinstance(value, str) else value.decode() for value in values]
        reencoded = sum(stored.get(name, text) != text for name, text in zip(names, texts))
        pairs = [item for pair in zip(names, texts) for item in pair]
        return _Converted(key, pk, pairs, reencoded)

    def _fail(self, chunk: _Chunk, key: str, error: _RecordError) -> None:
        chunk.failed.append(key)
        self._problem(key, error.field, error.problem)

    def _progress(self, done: bool = False) -> None:
        if self.progress is not None:
            report = self.report
            handled = report.converted + report.expired + len(report.problems)
            self.progress(report.model, report.records if done else handled, report.records)

    def _problem(self, key: str, field_name: str | None, problem: str) -> None:
        self.report.problems.append(RecordProblem(self.report.model, key, field_name, problem))


class _RecordError(Exception):
    def __init__(self, field_name: str | None, problem: str) -> None:
        super().__init__(problem)
        self.field = field_name
        self.problem = problem
