"""Whether each secondary index covers every record, and building the ones that do not.

Every write keeps the indexes of the fields a model declares `Indexed` exact, in the same
script call as the record. An index can still miss records: those written before the field
was marked `Indexed` (or while it had another type). A query on such an index could miss
records silently, so it is refused until the index is known to be complete.

What is known is kept in a hash per model, `{namespace}__index:~state`: field -> the index's
signature (`FieldIndex.signature`) once it is complete, `building:<signature>` while
`build_indexes()` works on it. A field the hash does not know is complete when every shard
has as many entries in the field's hash of encodings as it has records (`INDEX_COUNTS`): then
every record has been written since the field was indexed (a new model, say), and the state
is recorded at once.

`build_indexes()` walks every record in bounded calls, encodes the field's stored value and
adds the entry, unless a writer changed the value meanwhile (that writer indexed it). Killed
part way, it is simply run again. Fields no longer declared have their keys dropped.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ._exceptions import CorruptRecordError, IndexNotReadyError
from ._index_scripts import BUILD_INDEX, DROP_KEYS, INDEX_COUNTS, INDEX_STATE
from ._indexes import FieldIndex
from ._keys import VALUES_PREFIX, Shard
from ._scripts import ScriptCall

if TYPE_CHECKING:
    from ._table import ModelTable

__all__ = ["IndexState"]

logger = logging.getLogger("pydantic_aioredis")

_BUILDING = "building:"


class IndexState:
    """Which indexes of one model are complete (cached once known), and how to build them."""

    def __init__(self, table: ModelTable[Any]) -> None:
        self.table = table
        self.key = table.keys.namespace + "__index:~state"
        self.ready: set[str] = set()

    async def ensure(self, fields: list[str]) -> None:
        """Return if the indexes of `fields` are complete, else raise.

        Raises:
            IndexNotReadyError: An index may miss records; it names the fields.
        """
        missing = [name for name in fields if name not in self.ready]
        if not missing:
            return
        states = await self.states()
        unknown: list[str] = []
        for name in missing:
            state = states.get(name)
            if state == self._signature(name):
                self.ready.add(name)
            elif state is None:
                unknown.append(name)
        if unknown:
            await self._adopt_complete(unknown)
        still = [name for name in missing if name not in self.ready]
        if still:
            why = "records written before the field was indexed may lack entries"
            if any(states.get(name, "").startswith(_BUILDING) for name in still):
                why = "build_indexes() has not finished"
            elif any(name in states for name in still):
                why = "it was built for another type of the field"
            raise IndexNotReadyError(self.table.model.__name__, still, why)

    async def states(self) -> dict[str, str]:
        return await self._state("get")

    async def _state(self, operation: str, *args: str) -> dict[str, str]:
        (reply,) = await self.table.store.execute(
            [ScriptCall(INDEX_STATE, (self.key,), (operation, *args))]
        )
        return dict(zip(reply[::2], reply[1::2]))

    async def _adopt_complete(self, names: list[str]) -> None:
        """Record as complete the indexes that have an entry for every record."""
        complete = set(names)
        calls = [self.table.script_call(INDEX_COUNTS, shard, ()) for shard in self.table.shards]
        for counts in await self.table.execute_exact(calls):
            records, entries = counts[0], counts[1:]
            for name, count in zip(self.table.indexed, entries):
                if count != records:
                    complete.discard(name)
        if complete:
            pairs = [item for name in complete for item in (name, self._signature(name))]
            await self._state("set", *pairs)
            self.ready |= complete

    def _signature(self, name: str) -> str:
        return self.table.indexes[name].signature

    # -- building ------------------------------------------------------------------------

    async def build(self) -> dict[str, int]:
        """Build every index that is not complete, drop those no longer declared.

        Returns:
            For each index built, the number of records it was built for.
        """
        states = await self.states()
        for name in sorted(set(states) - set(self.table.indexes)):
            await self._drop(name)
            await self._state("del", name)
            logger.info("dropped the index of %s.%s", self.table.model.__name__, name)
        built = {}
        for name, index in self.table.indexes.items():
            state = states.get(name)
            if state == index.signature:
                self.ready.add(name)
                continue
            if state is None:
                await self._adopt_complete([name])
                if name in self.ready:
                    continue
            elif state != _BUILDING + index.signature:  # built for another type: start over
                await self._drop(name)
            await self._state("set", name, _BUILDING + index.signature)
            built[name] = await self._build_one(index)
            await self._state("set", name, index.signature)
            self.ready.add(name)
        return built

    async def _drop(self, name: str) -> None:
        self.ready.discard(name)
        calls = [ScriptCall(DROP_KEYS, _field_keys(shard, name), ()) for shard in self.table.shards]
        await self.table.store.execute(calls)

    async def _build_one(self, index: FieldIndex) -> int:
        done = 0
        for shard in self.table.shards:
            async for pks in self.table.primary_key_pages(shard):
                done += await self._build_page(shard, index, pks)
        return done

    async def _build_page(self, shard: Shard, index: FieldIndex, pks: list[str]) -> int:
        table, name = self.table, index.name
        (reply,) = await table.execute_exact(table.read_calls(pks, [name]))
        rows = table.rows_of(reply, [])
        problems: list[CorruptRecordError] = []
        values = table.codec.decode_columns([name], rows, table.keys.record_key, problems)
        unreadable = {problem.key for problem in problems}
        readable = [pk for pk in rows[::2] if table.keys.record_key(pk) not in unreadable]
        args: list[Any] = [table.indexed.index(name) + 1, name]
        for pk, text, value in zip(readable, _texts(rows, readable), values):
            held = "0" if text is None else "1"
            args += (pk, held, text or "", index.encode(value[name]))
        for problem in problems:
            logger.warning("not indexed, the record cannot be read: %s", problem)
        if len(args) == 2:
            return 0
        call = table.script_call(BUILD_INDEX, shard, args, readable)
        (count,) = await table.store.execute([call])
        return int(count)


def _field_keys(shard: Shard, name: str) -> tuple[str, str]:
    return (shard.field_index_key(name), f"{shard.namespace}{VALUES_PREFIX}{name}")


def _texts(rows: list[Any], pks: list[str]) -> list[str | None]:
    by_pk = dict(zip(rows[::2], rows[1::2]))
    return [by_pk[pk] for pk in pks]
