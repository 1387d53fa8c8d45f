"""`ModelTable`: the Redis side of one registered model.

`Model` is the pydantic side (fields, validation, automatic-saving flags); the classmethods
`insert`, `select` and `delete` delegate here. A table knows its store, its key layout and
its codec, and turns each operation into bounded script calls (see `_scripts`).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._codec import HashCodec
from ._exceptions import ConflictError, CorruptRecordError, InvalidInputError
from ._keys import KeySpace, Shard
from ._scripts import (
    COUNT,
    DELETE_ALL,
    DELETE_IDS,
    READ_CHUNK,
    READ_IDS,
    READ_RANGE,
    UPDATE_FIELDS,
    WRITE_CHUNK,
    WRITE_RECORDS,
    LuaScript,
    ScriptCall,
)
from ._sharded import delete_sharded, drop, read_sharded

if TYPE_CHECKING:
    from ._model import Model
    from ._store import Store

__all__ = ["ModelTable"]


M = TypeVar("M", bound="Model")
T = TypeVar("T")

_gc_pauses = 0  # selects under way that asked for the collector to wait
_gc_paused_by_us = False


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Let the cyclic garbage collector wait while a select builds its models.

    Building many long-lived objects makes CPython's collector traverse the whole heap
    again and again: measured here, with 300,000 live objects, a read of 100,000 records
    took 17-19 us per record with the collector running and 12-15 with it paused. Model
    instances hold no reference cycles, and the pause lasts one select (other tasks
    only have their cyclic garbage collected a little later). Concurrent selects share
    the pause; a collector the application disabled itself is left as it is.
    """
    global _gc_pauses, _gc_paused_by_us
    if _gc_pauses == 0 and gc.isenabled():
        gc.disable()
        _gc_paused_by_us = True
    _gc_pauses += 1
    try:
        yield
    finally:
        _gc_pauses -= 1
        if _gc_pauses == 0 and _gc_paused_by_us:
            _gc_paused_by_us = False
            gc.enable()


# A sorted set holds at most 2**32 - 1 members; ranks beyond it find nothing.
_MAX_RANK = 2**32

# (primary key, encoded field values in field order)
Encoded = tuple[str, list[str | bytes]]


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _first(pair: tuple[str, Any]) -> str:
    return pair[0]


class ModelTable(Generic[M]):
    """Reads and writes the records of one model in one store.

    Every operation is a list of script calls, each on one *shard* of the model's keys
    (see `_keys`): the whole model on a single server, one bucket on a cluster.
    """

    def __init__(self, model: type[M], store: Store) -> None:
        self.model = model
        self.store = store
        self.keys = KeySpace(
            model.__name__,
            prefix=model._redis_prefix,
            separator=model._redis_separator,
            table=model._table_name or model.__name__.lower(),
            buckets=model._cluster_buckets if store.cluster else None,
        )
        self.shards = self.keys.shards
        # On a cluster, each call names every key it touches (see `_scripts`), and whole-
        # model reads and deletes go through `_sharded`, even for a model of one bucket.
        self._declares_keys = store.cluster
        self.codec: HashCodec[M] = HashCodec(model)
        self.pk_field: str = model._primary_key_field
        self._pk_index = self.codec.names.index(self.pk_field)
        self._pk_is_text = self.codec._raw[self._pk_index]
        self._fields_header = (len(self.codec.names), *self.codec.names)

    def __repr__(self) -> str:
        return f"ModelTable({self.model.__name__}, {self.keys!r})"

    # -- primary keys --------------------------------------------------------------------

    def primary_key(self, instance: M) -> str:
        """The primary key of an instance, as stored in its key and in the index."""
        value = getattr(instance, self.pk_field)
        if self._pk_is_text and type(value) is str:
            return self.keys.check_primary_key(value)
        text = self.codec.encode_fields(instance, (self.pk_field,))[1]
        return self.keys.check_primary_key(text if isinstance(text, str) else text.decode())

    def primary_keys(self, ids: Any) -> list[str]:
        """Caller-given ids (one or many, any type the primary key accepts), as stored."""
        if ids is None:
            return []
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            ids = [ids]
        keys: dict[str, None] = {}  # ordered and without repeats
        for value in ids:
            if self._pk_is_text and type(value) is str:
                text = value
            else:
                text = self.codec.encode_value(self.pk_field, value)
            keys[self.keys.check_primary_key(text)] = None
        return list(keys)

    # -- shards --------------------------------------------------------------------------

    def by_shard(
        self, items: Sequence[T], primary_key: Callable[[T], str]
    ) -> list[tuple[Shard, Sequence[T]]]:
        """The items grouped by the shard of their primary key, in order within a group."""
        if len(self.shards) == 1:
            return [(self.shards[0], items)]
        groups: dict[int, list[T]] = {}
        for item in items:
            groups.setdefault(self.keys.shard_index(primary_key(item)), []).append(item)
        return [(self.shards[index], group) for index, group in sorted(groups.items())]

    def script_call(
        self, script: LuaScript, shard: Shard, args: tuple[Any, ...], pks: Iterable[str] = ()
    ) -> ScriptCall:
        """A call of `script` on one shard, about the records `pks`."""
        if self._declares_keys:
            namespace = shard.namespace
            return ScriptCall(script, (*shard.keys, *[namespace + pk for pk in pks]), args)
        return ScriptCall(script, shard.keys, args)

    # -- writing -------------------------------------------------------------------------

    def encode_whole(self, instance: M) -> Encoded:
        values = self.codec.encode(instance)
        pk = values[self._pk_index]
        pk = pk if isinstance(pk, str) else pk.decode()
        return self.keys.check_primary_key(pk), values

    def encode_changes(self, fields: dict[str, Any]) -> list[str | bytes]:
        """`name, value` pairs of changed fields, each read from the instance that set it."""
        pairs: list[str | bytes] = []
        by_instance: dict[int, tuple[Any, list[str]]] = {}
        for name, instance in fields.items():
            by_instance.setdefault(id(instance), (instance, []))[1].append(name)
        for instance, names in by_instance.values():
            pairs += self.codec.encode_fields(instance, names)
        return pairs

    def write_calls(
        self, records: Sequence[Encoded], ttl_ms: int, mode: str = "set"
    ) -> list[ScriptCall]:
        """Script calls that write whole records with their index entries.

        `mode` "nx" writes only records that do not exist yet, "xx" only ones that do,
        "cas:<field>" only ones whose stored version field is one less than the value
        written (for one record: with several, a call writes all of its records or none).
        """
        ttl = str(ttl_ms)
        head = (mode, *self._fields_header)
        return self._write_calls(WRITE_RECORDS, records, head, lambda pk, values: (pk, ttl))

    def update_calls(self, records: Sequence[tuple[str, list[str | bytes]]]) -> list[ScriptCall]:
        """Script calls that update fields of records that exist; each replies with the
        primary keys of the records that do not (`(pk, [name, value, ...])` per record)."""
        return self._write_calls(
            UPDATE_FIELDS, records, (), lambda pk, pairs: (pk, len(pairs) // 2)
        )

    def _write_calls(
        self,
        script: LuaScript,
        records: Sequence[tuple[str, list[str | bytes]]],
        head: tuple[Any, ...],
        record_head: Callable[[str, list[str | bytes]], tuple[Any, ...]],
    ) -> list[ScriptCall]:
        # ARGV: the namespace, `head`, then per record `record_head(...)` and its values.
        calls = []
        for shard, group in self.by_shard(records, _first):
            for chunk in _chunks(group, WRITE_CHUNK):
                args: list[Any] = [shard.namespace, *head]
                for pk, values in chunk:
                    args += record_head(pk, values)
                    args += values
                pks = [pk for pk, _ in chunk] if self._declares_keys else ()
                calls.append(self.script_call(script, shard, tuple(args), pks))
        return calls

    async def insert(self, instances: Sequence[M], life_span_seconds: float | None) -> int:
        encoded = [self.encode_whole(instance) for instance in instances]
        ttl_ms = self.store.ttl_ms(life_span_seconds)
        await self.store.execute(self.write_calls(encoded, ttl_ms))
        return len(encoded)

    async def save_versioned(
        self, instance: M, field: str, life_span_seconds: float | None
    ) -> None:
        """Write a record whole if its stored `field` still holds the instance's version,
        and move both to the next version; raise ConflictError (nothing written) if not."""
        version = getattr(instance, field)
        instance.__dict__[field] = version + 1  # encoded with the next version
        try:
            written = await self._write_one(instance, f"cas:{field}", life_span_seconds)
        except BaseException:
            instance.__dict__[field] = version
            raise
        if not written:
            instance.__dict__[field] = version
            key = self.keys.record_key(self.primary_key(instance))
            raise ConflictError(self.model.__name__, key, version)

    async def create(self, instance: M) -> bool:
        """Write a record that does not exist yet; False (nothing written) if it does."""
        return await self._write_one(instance, "nx")

    async def replace(self, instance: M) -> bool:
        """Write a record whole if it exists; False (nothing written) if it does not."""
        return await self._write_one(instance, "xx")

    async def _write_one(
        self, instance: M, mode: str, life_span_seconds: float | None = None
    ) -> bool:
        """Write one record whole if `mode`'s condition holds; whether it was written."""
        ttl_ms = self.store.ttl_ms(life_span_seconds)
        (written,) = await self.store.execute(
            self.write_calls([self.encode_whole(instance)], ttl_ms, mode)
        )
        return bool(written == 1)

    async def update_fields(self, instance: M, names: Iterable[str]) -> bool:
        """Write some fields of an existing record; False (nothing written) if it is gone."""
        pk = self.primary_key(instance)
        calls = self.update_calls([(pk, self.codec.encode_fields(instance, names))])
        (missing,) = await self.store.execute(calls)
        return not missing

    # -- reading -------------------------------------------------------------------------

    def columns(self, columns: Sequence[str] | None) -> list[str] | None:
        if columns is None:
            return None
        if isinstance(columns, str):
            columns = [columns]
        unknown = [name for name in columns if name not in self.model.model_fields]
        if unknown:
            raise InvalidInputError(
                f"{self.model.__name__} has no field(s) {', '.join(map(repr, unknown))}; "
                f"fields are {', '.join(self.codec.names)}"
            )
        return list(dict.fromkeys(columns))

    async def select(
        self,
        ids: Any,
        columns: list[str] | None,
        skip: int | None,
        limit: int | None,
        invalid: list[CorruptRecordError] | None = None,
    ) -> list[Any]:
        fields = columns if columns is not None else list(self.codec.names)
        with _cyclic_gc_paused():
            if ids is None:
                return await self._read_range(fields, skip or 0, limit, columns, invalid)
            pks = self.primary_keys(ids)
            calls = self.read_calls(pks, fields)
            replies = await self.store.execute(calls) if calls else []
            if len(self.shards) > 1:  # replies come shard by shard: back to the asked order
                rows = self.rows_in_order(pks, replies, len(fields) + 1, invalid)
                return self.decode(columns, rows, invalid)
            found: list[Any] = []
            for reply in replies:
                found += self.decode(columns, self.rows_of(reply, invalid), invalid)
            return found

    def read_calls(self, pks: Sequence[str], fields: Sequence[str]) -> list[ScriptCall]:
        """Script calls that read these fields of the records with these primary keys."""
        header = (len(fields), *fields)
        return [
            self.script_call(READ_IDS, shard, (shard.namespace, *header, *chunk), chunk)
            for shard, group in self.by_shard(pks, str)
            for chunk in _chunks(group, READ_CHUNK)
        ]

    def rows_in_order(
        self,
        pks: Sequence[str],
        replies: list[Any],
        width: int,
        invalid: list[CorruptRecordError] | None,
    ) -> list[Any]:
        """The rows of several replies, in the order of `pks`."""
        found: dict[str, tuple[list[Any], int]] = {}
        for reply in replies:
            rows = self.rows_of(reply, invalid)
            for start in range(0, len(rows), width):
                found[rows[start]] = (rows, start)
        ordered: list[Any] = []
        for pk in pks:
            if pk in found:
                rows, start = found[pk]
                ordered += rows[start : start + width]
        return ordered

    def decode(
        self,
        columns: list[str] | None,
        rows: list[Any],
        invalid: list[CorruptRecordError] | None,
    ) -> list[Any]:
        # Decoded chunk by chunk, so that only one chunk of raw replies is alive at a time.
        if columns is not None:
            return self.codec.decode_columns(columns, rows, self.keys.record_key, invalid)
        return self.codec.decode_rows(rows, self.keys.record_key, invalid)

    async def _read_range(
        self,
        fields: list[str],
        skip: int,
        limit: int | None,
        columns: list[str] | None,
        invalid: list[CorruptRecordError] | None,
    ) -> list[Any]:
        # The first call finds the page start by rank; the following ones continue after
        # the last primary key seen (a lex cursor), which concurrent inserts cannot shift.
        # Each next call is sent before the chunk in hand is decoded, so that the server
        # reads while Python validates.
        if skip >= _MAX_RANK:
            return []  # no index is that long (and Lua numbers are doubles)
        if self._declares_keys:
            return await read_sharded(self, fields, skip, limit, columns, invalid)
        found: list[Any] = []
        left = limit
        count = READ_CHUNK if left is None else min(left, READ_CHUNK)
        request: asyncio.Task[list[Any]] | None = self._range_request(
            fields, "rank", str(skip), count
        )
        try:
            while request is not None:
                (reply,) = await request
                last, scanned, rows = reply[0], reply[1], self.rows_of(reply, invalid)
                if left is not None:
                    left -= scanned
                request = None
                if scanned == count and last and (left is None or left > 0):
                    count = READ_CHUNK if left is None else min(left, READ_CHUNK)
                    request = self._range_request(fields, "lex", "(" + last, count)
                    # redis-py's command path passes a few awaits (connection checkout,
                    # send) before the bytes reach the socket: give it a few loop turns.
                    # Measured here, 50,000 records: 17 us/record with one turn, 10 with
                    # four; more change nothing.
                    for _ in range(4):
                        await asyncio.sleep(0)
                found += self.decode(columns, rows, invalid)
        finally:
            await drop(request)
        return found

    def _range_request(
        self, fields: list[str], mode: str, start: str, count: int
    ) -> asyncio.Task[list[Any]]:
        shard = self.shards[0]
        call = ScriptCall(READ_RANGE, shard.keys, (shard.namespace, mode, start, count, *fields))
        return asyncio.ensure_future(self.store.execute([call]))

    def rows_of(self, reply: list[Any], invalid: list[CorruptRecordError] | None) -> list[Any]:
        bad = reply[2]  # pk, error, pk, error...: keys that hold something else than a hash
        for i in range(0, len(bad), 2):
            key = self.keys.record_key(bad[i])
            error = CorruptRecordError(self.model.__name__, key, None, f"not a hash: {bad[i + 1]}")
            if invalid is None:
                raise error
            invalid.append(error)
        rows: list[Any] = reply[3]
        return rows

    async def count(self) -> int:
        calls = [ScriptCall(COUNT, shard.keys, (shard.namespace,)) for shard in self.shards]
        return sum(int(reply) for reply in await self.store.execute(calls))

    # -- deleting ------------------------------------------------------------------------

    async def delete(self, ids: Any) -> int:
        if ids is None:
            return await self._delete_all()
        calls = self.delete_calls(self.primary_keys(ids))
        return sum(await self.store.execute(calls)) if calls else 0

    def delete_calls(self, pks: Sequence[str]) -> list[ScriptCall]:
        return [
            self.script_call(DELETE_IDS, shard, (shard.namespace, *chunk), chunk)
            for shard, group in self.by_shard(pks, str)
            for chunk in _chunks(group, WRITE_CHUNK)
        ]

    async def _delete_all(self) -> int:
        if self._declares_keys:
            return await delete_sharded(self)
        # Each call deletes the first records of the index; several go per round trip
        # (the ones that find the index empty do nothing).
        shard = self.shards[0]
        calls = [ScriptCall(DELETE_ALL, shard.keys, (shard.namespace, WRITE_CHUNK))] * 8
        deleted = 0
        while True:
            replies = await self.store.execute(calls)
            deleted += sum(int(count) for count, _ in replies)
            if replies[-1][1] == 0:  # no index entries left
                return deleted
