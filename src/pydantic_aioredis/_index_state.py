"""Whether each secondary index covers every record, and building the ones that do not.

Every write keeps the indexes of the fields a model declares `Indexed` exact, in the same
script call as the record. An index can still miss records: those written before the field
was marked `Indexed`, while it had another type, or while a release of the application
without the index was writing. A query on such an index could miss records silently, so it
is refused until the index is known to be complete.

What is known is kept in a hash per model, `{namespace}__index:~state`, field -> state:

* `partial:<signature>`: entries are being written with that encoding (`FieldIndex.signature`),
  but records written before may lack theirs. A store records it on its first writing call
  for the model, before it writes anything, so the state always names the encoding of the
  entries in the index (or says, `mixed` below, that entries of two encodings were written);
* `<signature>`: complete: recorded so on that first writing call when the model has no
  records yet, else by `build_indexes()`. (Not by counting entries: a release without the
  index that deletes a record leaves the record's entry behind, and such an entry would
  count for a record that has none);
* `building:<signature>`: `build_indexes()` is at work;
* `mixed`: stores with different types of the field have written entries: built again
  before anyone trusts it.

On that first writing call, a store also drops the index keys of fields the model no
longer declares (and their state): a release without the index does not keep it up to date,
so it must not be found complete again later. Other releases of the model may run at the
same time (a rolling deploy, a rollback), so a store does not trust the readiness it once
found for good: each round trip of a query reads the states again, in the same pipeline,
and a query whose indexes are no longer complete raises.

`build_indexes()` walks every record in bounded calls, encodes the field's stored value and
adds the entry, unless a writer changed the value meanwhile (that writer indexed it); it
holds a lock so that two builds never mix. Killed part way, it is simply run again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ._connection import run_calls_sync
from ._exceptions import (
    CorruptRecordError,
    IndexNotReadyError,
    RedisOperationError,
    UnmigratedDataError,
    UsageError,
)
from ._index_scripts import BUILD_INDEX, BUILD_LOCK, DROP_KEYS, INDEX_COUNTS, INDEX_STATE
from ._indexes import FieldIndex
from ._inflight import stop_if_cancelled
from ._keys import VALUES_PREFIX, Shard
from ._scripts import AGAIN, ScriptCall

if TYPE_CHECKING:
    from ._connection import SyncClient
    from ._table import ModelTable

__all__ = ["ForeignStatesError", "IndexState"]

logger = logging.getLogger("pydantic_aioredis")


class ForeignStatesError(RedisOperationError):
    """The key of a model's index states holds something else (see `_check_states`): no
    write of the model may go out, automatic ones included."""


_PARTIAL = "partial:"
_BUILDING = "building:"
_MIXED = "mixed"
# Every state an index can have: its signature (complete), partial or building under one, or
# mixed (see `FieldIndex.signature`).
_STATE = re.compile(r"(?:partial:|building:)?[\w.-]+/\d+|mixed")
T = TypeVar("T")
# A build's lock lasts this long unless renewed: each page renews it, and a page takes a few
# milliseconds; a build that was killed holds up the next one this long at most.
_LOCK_MS = 15_000


class IndexState:
    """Which indexes of one model are complete (cached once known), and how to build them."""

    def __init__(self, table: ModelTable[Any]) -> None:
        self.table = table
        self.key = table.keys.namespace + "__index:~state"
        self.lock_key = table.keys.namespace + "__index:~building"
        self.ready: set[str] = set()
        self._done = False  # prepared: see `prepare`
        self._preparing: asyncio.Future[None] | None = None  # under way in a task
        self._claimed_over_1_4 = False  # its first write found records in 1.4's layout

    # -- the first write ------------------------------------------------------------------

    async def prepare(self) -> None:
        """Before the store's first writing call for the model: record the encodings its writes
        will use, and drop the indexes it no longer declares. Once per store; a call made
        while another task is at it waits for it (and tries again if it failed)."""
        while not self._done:
            loop = asyncio.get_running_loop()
            waiting = self._preparing
            if waiting is not None and waiting.get_loop() is loop:
                await asyncio.shield(waiting)
                continue
            # Under way in no task of this loop (maybe in another loop, or in one that was
            # closed before it finished): this task does it, as another store would.
            mine = self._preparing = loop.create_future()
            try:
                await self._run(self._first_write())
                self._done = True
            finally:
                if self._preparing is mine:
                    self._preparing = None
                mine.set_result(None)

    def prepare_sync(self, client: SyncClient) -> None:
        """`prepare`, for automatic writes sent outside an event loop (blocking)."""
        if self._done:
            return
        steps = self._first_write()
        try:
            calls = next(steps)
            while True:
                calls = steps.send(run_calls_sync(client, calls))
        except StopIteration:
            self._done = True

    async def _run(self, steps: Generator[list[ScriptCall], list[Any], T]) -> T:
        """The value of `steps`, their calls sent with the store's `send` (see `_state`)."""
        try:
            calls = next(steps)
            while True:
                try:
                    replies = await self.table.store.send(calls)
                except UnmigratedDataError as exc:
                    calls = steps.throw(exc)
                else:
                    calls = steps.send(replies)
        except StopIteration as done:
            return cast(T, done.value)

    def _first_write(self) -> Generator[list[ScriptCall], list[Any], None]:
        """What `prepare` does, as the calls it sends: it yields each round trip's calls and
        is sent their replies, so that the async and the blocking paths share it."""
        (reply,) = yield [self._state_call("get")]
        states = _states_of(reply)
        self._check_states(states)
        for name in sorted(set(states) - set(self.table.indexes)):
            self.ready.discard(name)
            yield self._drop_calls(name)
            yield [self._state_call("del", name)]
            logger.info("dropped the index of %s.%s", self.table.model.__name__, name)
        claims = [(name, self._signature(name), _MIXED) for name in self.table.indexes]
        if not claims:
            return
        # Whether the model has records, where an index is new or partial (a migration from
        # 1.4 that another process began: see `mark_converted`). Checked apart from the
        # claim (a cluster keeps the records elsewhere): a release without the index
        # writing meanwhile is the case docs/queries.md warns about.
        partial = {name: _PARTIAL + self._signature(name) for name in self.table.indexes}
        unsure = any(states.get(name, state) == state for name, state in partial.items())
        first = _PARTIAL
        if unsure and (yield from self._no_records()):
            first = ""
        yield [self._state_call("claim", first, *[item for claim in claims for item in claim])]

    def _check_states(self, states: dict[str, str]) -> None:
        """Refuse a hash of states that holds other things: a record that 1.4 wrote under
        the primary key `__index:~state`, which dropping the indexes it seems to name, or
        claiming them, would destroy."""
        foreign = sorted(name for name, state in states.items() if not _STATE.fullmatch(state))
        if foreign:
            raise ForeignStatesError(
                f"{self.table.model.__name__}: {self.key!r} should hold the states of its "
                f"indexes, but holds other fields ({', '.join(foreign[:5])}): a record that "
                "pydantic-aioredis 1.4 wrote with the primary key '__index:~state'? Nothing "
                "was written. Migrating the model's records from 1.4 (see "
                "docs/upgrading-from-1.4.md) moves such a record aside when 1.4's index lists "
                "it; else rename or delete that key yourself"
            )

    # -- queries ---------------------------------------------------------------------------

    async def ensure(self, fields: list[str]) -> bool:
        """Return whether a query on the indexes of `fields` can find anything: True when
        they are complete, False when no store with them has written and there are no
        records; else raise.

        Raises:
            IndexNotReadyError: An index may miss records; it names the fields.
        """
        missing = [name for name in fields if name not in self.ready]
        if not missing:
            return True
        states = await self.states()
        self._check_states(states)
        self.ready.update(name for name in missing if states.get(name) == self._signature(name))
        still = [name for name in missing if name not in self.ready]
        # No state at all: no store with these indexes has written yet. Nothing to miss if
        # there are no records (a new application's first query); that is not recorded,
        # since a writer without the indexes may still add records.
        if (
            still
            and all(name not in states for name in still)
            and await self._run(self._no_records())
        ):
            return False
        if still:
            raise IndexNotReadyError(self.table.model.__name__, still, self._why(still, states))
        return True

    def state_call(self) -> ScriptCall:
        """A call that reads the states, to send with a query's calls (see `verify`)."""
        return self._state_call("get")

    def verify(self, fields: list[str], reply: list[str]) -> None:
        """Raise unless `reply` (of a `state_call`) says the indexes of `fields` are still
        complete: another release may have dropped one, or written entries of another
        type, since this store found it complete.

        Raises:
            IndexNotReadyError: An index may miss records; it names the fields.
        """
        states = _states_of(reply)
        stale = [name for name in fields if states.get(name) != self._signature(name)]
        if stale:
            self.ready.difference_update(stale)
            raise IndexNotReadyError(self.table.model.__name__, stale, self._why(stale, states))

    async def mark_converted(self) -> None:
        """After a migration from 1.4 converted every record, entering each in the indexes:
        the partial indexes that its first write found only 1.4's records for are complete.
        (The model's own writes are refused while 1.4's records are there.)"""
        names = list(self.table.indexes)
        if not self._claimed_over_1_4:
            # A run stopped after its last record and before this step left them partial:
            # the run after it (which finds nothing to convert) checks that every record
            # has its entry, as the migration entered them, before trusting such an index.
            names = await self._entered_everywhere(names)
        changes = [
            (name, _PARTIAL + self._signature(name), self._signature(name)) for name in names
        ]
        if changes:
            states = await self._state("cas", *[item for change in changes for item in change])
            self.ready.update(n for n in self.table.indexes if states.get(n) == self._signature(n))

    async def _entered_everywhere(self, names: list[str]) -> list[str]:
        """The fields among `names` whose index is partial and has an entry for every record
        (each field's hash of encodings holds as many as the model has records)."""
        states = await self.states()
        partial = [n for n in names if states.get(n) == _PARTIAL + self._signature(n)]
        if not partial:
            return []
        calls = [self.table.script_call(INDEX_COUNTS, shard, ()) for shard in self.table.shards]
        replies = await self.table.execute_exact(calls)
        records = sum(int(reply[0]) for reply in replies)
        positions = {name: i for i, name in enumerate(self.table.indexes, start=1)}
        return [
            name
            for name in partial
            if sum(int(reply[positions[name]]) for reply in replies) == records
        ]

    def _no_records(self) -> Generator[list[ScriptCall], list[Any], bool]:
        """Whether the model has no records (steps, see `_first_write`). A shard answering
        AGAIN (expired records left to clean up) is asked again; records in 1.4's layout
        (`UnmigratedDataError`, thrown in by the sender) are records."""
        calls = [self.table.script_call(INDEX_COUNTS, shard, ()) for shard in self.table.shards]
        while calls:
            try:
                replies = yield calls
            except UnmigratedDataError:  # the migration's own first write: see mark_converted
                self._claimed_over_1_4 = True
                return False
            if any(reply != AGAIN and reply[0] != 0 for reply in replies):
                return False
            calls = [call for call, reply in zip(calls, replies) if reply == AGAIN]
        return True

    def _why(self, names: list[str], states: dict[str, str]) -> str:
        found = {states.get(name, ""): self._signature(name) for name in names}
        if any(state == _BUILDING + ours for state, ours in found.items()):
            return "build_indexes() has not finished"
        if any(state == _PARTIAL + ours for state, ours in found.items()):
            return "records written before the field was indexed may lack entries"
        if "" in found:
            return (
                "no state is recorded for it: records were written while the field was not "
                "indexed, or Redis lost its data since this store's first write"
            )
        if _MIXED in found:
            return "entries of another type of the field were written too"
        return "its entries were written for another type of the field"

    async def states(self) -> dict[str, str]:
        return await self._state("get")

    async def _state(self, operation: str, *args: str) -> dict[str, str]:
        # `send`, not `execute`: this may run before the model's first write, which may be
        # the queue of automatic writes sending itself.
        (reply,) = await self.table.store.send([self._state_call(operation, *args)])
        return _states_of(reply)

    def _state_call(self, operation: str, *args: str) -> ScriptCall:
        return ScriptCall(INDEX_STATE, (self.key,), (operation, *args))

    def _signature(self, name: str) -> str:
        return self.table.indexes[name].signature

    # -- building ------------------------------------------------------------------------

    async def build(self) -> dict[str, int]:
        """Build every index that is not complete, drop those no longer declared.

        Returns:
            For each index built, the number of records it was built for.

        Raises:
            UsageError: Another build of the model's indexes is running.
        """
        await self.prepare()
        token = os.urandom(9).hex()
        if (taken := await self._take_lock(token)) is not True:
            raise UsageError(
                f"{self.table.model.__name__}: another build_indexes() is at work on this "
                "model (in this process or another); let it finish. (A build that was killed "
                f"leaves its lock, {self.lock_key!r}, for {taken / 1000:.0f} s more at most.)"
            )
        try:
            return await self._build_all(token)
        finally:
            await self._lock("free", token)

    async def _build_all(self, token: str) -> dict[str, int]:
        states = await self.states()
        built = {}
        for name, index in self.table.indexes.items():
            state = states.get(name)
            if state == index.signature:
                self.ready.add(name)
                continue
            # Built from nothing, unless resuming a build of its own: a partial index may
            # hold entries of records that a release without it deleted.
            if state != _BUILDING + index.signature:
                await self._drop(name)
            await self._state("set", name, _BUILDING + index.signature)
            built[name] = await self._build_one(index, token)
            building = _BUILDING + index.signature
            if (await self._state("cas", name, building, index.signature)).get(name) != (
                index.signature
            ):
                raise UsageError(
                    f"{self.table.model.__name__}: while build_indexes() ran, a store with "
                    f"another type of {name} wrote entries in its index; run it again once "
                    "every process runs this model"
                )
            self.ready.add(name)
        return built

    async def _take_lock(self, token: str) -> bool | int:
        """True, or the milliseconds the lock another build holds has left at most.

        Raises:
            UsageError: The lock's key holds something no build wrote.
        """
        (reply,) = await self.table.store.send(
            [ScriptCall(BUILD_LOCK, (self.lock_key,), ("take", token, _LOCK_MS))]
        )
        if reply == 1:
            return True
        if reply == "foreign":
            raise UsageError(
                f"{self.table.model.__name__}: {self.lock_key!r}, the lock of its builds, holds "
                "something this library did not write (a record pydantic-aioredis 1.4 wrote "
                "with the primary key '__index:~building'? Migrating the model's records from "
                "1.4 moves it aside); build_indexes() cannot run until it is gone"
            )
        return -int(reply)

    async def _lock(self, operation: str, token: str) -> bool:
        (reply,) = await self.table.store.send(
            [ScriptCall(BUILD_LOCK, (self.lock_key,), (operation, token, _LOCK_MS))]
        )
        return bool(reply)

    async def _drop(self, name: str) -> None:
        self.ready.discard(name)
        await self.table.store.send(self._drop_calls(name))

    def _drop_calls(self, name: str) -> list[ScriptCall]:
        return [ScriptCall(DROP_KEYS, _field_keys(shard, name), ()) for shard in self.table.shards]

    async def _build_one(self, index: FieldIndex, token: str) -> int:
        done = 0
        for shard in self.table.shards:
            async for pks in self.table.primary_key_pages(shard):
                stop_if_cancelled()  # it can be stopped at any point, and run again
                if not await self._lock("renew", token):
                    raise UsageError(
                        f"{self.table.model.__name__}: build_indexes() lost its lock (paused "
                        f"for over {_LOCK_MS // 1000} s?); run it again"
                    )
                done += await self._build_page(shard, index, pks)
        return done

    async def _build_page(self, shard: Shard, index: FieldIndex, pks: list[str]) -> int:
        table, name, key_of = self.table, index.name, self.table.keys.record_key
        # Each record's value as a read of it gives: of the whole record when the value
        # read may differ from the one stored (as the table's writes index it).
        whole = name in table.reread
        fields = list(table.codec.names) if whole else [name]
        (reply,) = await table.execute_exact(table.read_calls(pks, fields))
        rows = table.rows_of(reply, [])
        problems: list[CorruptRecordError] = []
        if whole:
            values = [getattr(m, name) for m in table.codec.decode_rows(rows, key_of, problems)]
        else:
            values = [v[name] for v in table.codec.decode_columns([name], rows, key_of, problems)]
        unreadable = {problem.key for problem in problems}
        stride = len(fields) + 1
        readable = [pk for pk in rows[::stride] if key_of(pk) not in unreadable]
        texts = dict(zip(rows[::stride], rows[fields.index(name) + 1 :: stride]))
        args: list[Any] = [table.indexed.index(name) + 1, name]
        for pk, value in zip(readable, values):
            text = texts[pk]
            held = "0" if text is None else "1"
            args += (pk, held, text or "", index.encode(value))
        for problem in problems:
            logger.warning("not indexed, the record cannot be read: %s", problem)
        if len(args) == 2:
            return 0
        call = table.script_call(BUILD_INDEX, shard, args, readable)
        (count,) = await table.store.execute([call])
        return int(count)


def _states_of(reply: list[str]) -> dict[str, str]:
    return dict(zip(reply[::2], reply[1::2]))


def _field_keys(shard: Shard, name: str) -> tuple[str, str]:
    return (shard.field_index_key(name), f"{shard.namespace}{VALUES_PREFIX}{name}")
