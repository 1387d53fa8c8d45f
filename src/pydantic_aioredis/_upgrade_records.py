"""Converting one chunk of 1.4 records in memory, for the migration (see `_upgrade`).

`RecordConverter.sort` takes the rows the READ script gives (key, type, fields, whether the
record is in today's layout) and sorts them: records gone, records that cannot be converted
(each with the field at fault), records already in today's layout, and the others decoded by
1.4's rules (`_legacy_values`), validated as the model, and encoded as this library stores
them, with their index encodings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from ._exceptions import PydanticAioredisError
from ._legacy import LegacyKeys
from ._legacy_values import LegacyValueError, LegacyValues

if TYPE_CHECKING:
    from ._table import ModelTable

__all__ = ["Chunk", "Converted", "RecordConverter", "RecordError", "wire_key"]


@dataclass(frozen=True)
class Converted:
    """A record converted in memory, to be written."""

    key: str  # its 1.4 key
    pk: str
    pairs: list[str]  # field, value, ... as we store them
    encodings: list[str]  # one per indexed field
    reencoded: int  # values whose text changed


class RecordError(Exception):
    """Why a record cannot be converted: the field at fault (None: the whole record)."""

    def __init__(self, field_name: str | None, problem: str) -> None:
        super().__init__(problem)
        self.field = field_name
        self.problem = problem


@dataclass
class Chunk:
    """One chunk of records read, sorted by what to do with each."""

    gone: list[str] = field(default_factory=list)  # keys whose record no longer exists
    failed: list[tuple[str, RecordError]] = field(default_factory=list)  # cannot convert
    current: list[str] = field(default_factory=list)  # records in today's layout already
    records: list[Converted] = field(default_factory=list)


def wire_key(key: str) -> str | bytes:
    """A key as read, to send back: a key that is not UTF-8 text arrives with its bytes
    escaped as lone surrogates (see `_connection.READ_ERRORS`), and goes back as those bytes."""
    if key.isascii():
        return key
    try:
        key.encode()
    except UnicodeEncodeError:
        return key.encode("utf-8", "surrogateescape")
    return key


class RecordConverter:
    """Sorts and converts the 1.4 records of one model, a chunk at a time."""

    def __init__(self, table: ModelTable[Any], keys: LegacyKeys, values: LegacyValues) -> None:
        self.table, self.keys, self.values = table, keys, values
        self._own = frozenset(keys.own)
        self._many: TypeAdapter[list[Any]] = TypeAdapter(list[table.model])  # type: ignore[name-defined]

    def sort(self, rows: list[Any]) -> Chunk:
        """Sort a chunk of records read: gone, not convertible, current, or converted."""
        chunk = Chunk()
        hashes: list[tuple[str, dict[str, str]]] = []
        seen: set[str] = set()
        for key, kind, flat, current in rows:
            if key in seen:  # SSCAN may return a key twice
                continue
            seen.add(key)
            error = self._unconvertible(key, kind)
            if error is not None:
                chunk.failed.append((key, error))
            elif int(current):
                chunk.current.append(key)
            elif kind == "none":
                chunk.gone.append(key)
            else:
                hashes.append((key, dict(zip(flat[::2], flat[1::2]))))
        for key, stored, instance in self._validated(hashes, chunk):
            try:
                chunk.records.append(self._encoded(key, stored, instance))
            except RecordError as error:
                chunk.failed.append((key, error))
        return chunk

    def _unconvertible(self, key: str, kind: str) -> RecordError | None:
        """What rules a record out before its values are read, if anything."""
        if isinstance(wire_key(key), bytes):
            return RecordError(None, "its key is not UTF-8 text, which no primary key can be")
        if kind not in ("hash", "none"):
            return RecordError(None, f"not a hash but a {kind}")
        if kind == "hash" and key in self._own:  # only in a dry run: a run moves it first
            return RecordError(
                None,
                f"its key is one of the model's own keys now; a run moves it, as it is, to "
                f"{self.keys.aside(key)!r} (or, if a record holds that key, to the first free "
                "one of that key followed by ~2, ~3...)",
            )
        return None

    def _validated(
        self, hashes: list[tuple[str, dict[str, str]]], chunk: Chunk
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
                chunk.failed.append((key, RecordError(exc.field, str(exc))))
        try:  # all in one call, as our reads validate records
            instances = self._many.validate_json("[" + ",".join(documents) + "]", by_name=True)
        except ValidationError:
            return self._each_validated(readable, documents, chunk)
        return [(key, stored, instance) for (key, stored), instance in zip(readable, instances)]

    def _each_validated(
        self,
        hashes: list[tuple[str, dict[str, str]]],
        documents: Sequence[str | None],
        chunk: Chunk,
    ) -> list[tuple[str, dict[str, str], Any]]:
        found = []
        for (key, stored), document in zip(hashes, documents):
            try:
                found.append((key, stored, self._validate(stored, document)))
            except RecordError as error:
                chunk.failed.append((key, error))
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
                if not exc.errors()[0].get("loc"):  # the document as a whole: JSON, UTF-8
                    self.values.check(stored)  # names the field at fault
                raise
        except LegacyValueError as exc:
            raise RecordError(exc.field, str(exc)) from None
        except ValidationError as exc:
            error = exc.errors()[0]
            loc = error.get("loc", ())
            raise RecordError(str(loc[0]) if loc else None, error["msg"]) from None

    def _encoded(self, key: str, stored: dict[str, str], instance: Any) -> Converted:
        """The record as we store it; how many of its values change."""
        table = self.table
        try:
            pk = table.primary_key(instance)
            values = table.codec.encode(instance)
            encodings = table.index_encodings(instance, None)
        except PydanticAioredisError as exc:  # a value or key we cannot store or index
            raise RecordError(None, str(exc)) from None
        names = table.codec.names
        texts = [value if isinstance(value, str) else value.decode() for value in values]
        reencoded = sum(stored.get(name, text) != text for name, text in zip(names, texts))
        pairs = [item for pair in zip(names, texts) for item in pair]
        return Converted(key, pk, pairs, encodings, reencoded)
