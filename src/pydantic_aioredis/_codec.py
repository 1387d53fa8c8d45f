"""Model instances <-> Redis hash fields.

A record is one hash field per model field. Each value is the field's *JSON-mode*
serialization by pydantic-core (so custom serializers are honoured), stored as:

* the bare string, for fields whose JSON form is always a string (`str`, str enums,
  dates and times, UUID, Decimal, IP addresses and networks). They read naturally in
  redis-cli: `published_on` is `1937-09-21`, not `"1937-09-21"`;
* JSON text for everything else: `42`, `true`, `null`, `["a","b"]`, `{"x":1}`. This keeps
  `None` (`null`) apart from the string `"None"` in an `Optional[str]` field.

Reading assembles the stored values of many records into one JSON array and validates it
in a single pydantic-core call, in JSON mode: exactly pydantic's own JSON round trip, with
validators, strict mode and custom types honoured. Only when that call fails is the batch
validated record by record, to name the record and field at fault.

Models that override the old `json_default` / `json_object_hook` classmethods (to store
types pydantic cannot serialize) take the other path: `json_default` is pydantic's
serialization fallback, and stored JSON is decoded with `json.loads(object_hook=...)` and
validated in Python mode.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import ipaddress
import json
import operator
import re
import types
import typing
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from json.encoder import encode_basestring  # C-accelerated
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar, get_args, get_origin

from pydantic import (
    AfterValidator,
    BeforeValidator,
    PlainValidator,
    PydanticUserError,
    Secret,
    SecretBytes,
    SecretStr,
    TypeAdapter,
    ValidationError,
    WrapValidator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticSerializationError, from_json, to_json

from ._exceptions import (
    ConfigurationError,
    CorruptRecordError,
    InvalidInputError,
    PydanticAioredisError,
    SerializationError,
)
from ._field_types import (
    computed_and_forbidden_inside,
    excluded_inside,
    may_hold_times,
    offset_with_seconds,
    secret_inside,
    unreadable_dict_key,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["HashCodec"]

M = TypeVar("M", bound="BaseModel")

# Types whose JSON form is a string that pydantic parses back unchanged.
_STRING_TYPES: tuple[type, ...] = (
    str,
    uuid.UUID,
    decimal.Decimal,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
    ipaddress.IPv4Interface,
    ipaddress.IPv6Interface,
)
_TEMPORAL_TYPES = (datetime.date, datetime.time)  # datetime is a date
_VALIDATOR_WRAPPERS: dict[str, Callable[[Any], Any]] = {
    "before": BeforeValidator,
    "after": AfterValidator,
    "wrap": WrapValidator,
    "plain": PlainValidator,
}


def _json_text(value: Any) -> str | bytes:
    """The JSON text of a JSON-compatible value (fast paths for the common scalars)."""
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if kind is int:
        return str(value)
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    # Infinity and NaN as JSON constants, which pydantic reads back; the default would
    # turn them into null and lose them.
    return to_json(value, inf_nan_mode="constants")


class HashCodec(Generic[M]):
    """Encodes instances of one model into hash values and decodes them back."""

    def __init__(self, model: type[M]) -> None:
        self.model = model
        self.name = model.__name__
        self.names: tuple[str, ...] = tuple(model.model_fields)
        self._raw = tuple(self._is_stored_raw(name) for name in self.names)
        self._raw_by_name = dict(zip(self.names, self._raw))
        self._required = tuple(info.is_required() for info in model.model_fields.values())
        # `"title":` and so on, ready to be joined into a JSON object.
        self._json_keys = tuple(encode_basestring(name) + ":" for name in self.names)
        # The document of a record that has every field, as one %-format: each stored value
        # goes through its field's step (quoted, or checked to be one JSON value), in C.
        self._template = "{" + ",".join(key + "%s" for key in self._json_keys) + "}"
        # The same document cut before each value: `{"title":`, `,"author":`...
        self._prefixes = ("{" + self._json_keys[0], *("," + key for key in self._json_keys[1:]))
        self._steps = tuple(encode_basestring if raw else _one_json_value for raw in self._raw)
        # The primary key field: its stored text is the key's (or, stored as a JSON string,
        # the string's), and a record whose field says otherwise (another program changed
        # it) is refused, since saving it would write to another key.
        pk_field = getattr(model, "_primary_key_field", None)
        self._pk_field = pk_field if pk_field in self.names else None
        self._pk_column = None if self._pk_field is None else self.names.index(self._pk_field)
        self._pk_bare = self._pk_field is not None and self._raw_by_name[self._pk_field]
        if model.model_config.get("extra") == "allow":
            raise ConfigurationError(
                f"{self.name} has extra='allow': the values of undeclared fields would not be "
                "stored (a record holds the declared fields); declare them as fields instead"
            )
        self._serializer = model.__pydantic_serializer__
        self._computed = set(model.model_computed_fields) or None
        # Fields that may hold a datetime or time: pydantic's JSON keeps a UTC offset to
        # the minute only.
        self._zoned = tuple(
            name for name, info in model.model_fields.items() if may_hold_times(info.annotation)
        )
        self._fallback = _override(model, "json_default")
        self._object_hook = _override(model, "json_object_hook")
        self._many: TypeAdapter[list[M]] = TypeAdapter(list[model])  # type: ignore[valid-type]
        self._column_adapters: dict[str, TypeAdapter[Any]] = {}
        # Fields whose stored form pydantic's own dump does not give: excluded ones (hidden
        # from dumps) and secrets (masked as '**********' in dumps).
        self._special: dict[str, Callable[[M], Any]] = {}
        for name, info in model.model_fields.items():
            if _secret_type(info.annotation) is not None:
                self._special[name] = self._secret_dumper(name, info.annotation)
            elif info.exclude or getattr(info, "exclude_if", None) is not None:
                self._special[name] = self._excluded_dumper(name)
            elif secret_inside(info.annotation):
                raise ConfigurationError(
                    f"{self.name}.{name} holds secrets inside another type; pydantic dumps them "
                    "masked, so they would be stored as '**********'. Only a field that is a "
                    "SecretStr, SecretBytes or Secret[...] itself (or Optional) can be stored"
                )
            self._check_type(name, info.annotation)
        if model.__pydantic_decorators__.model_serializers:
            raise ConfigurationError(
                f"{self.name} has a model_serializer; records are stored one hash field per "
                "model field, so serialize individual fields (field_serializer) instead"
            )

    def _check_type(self, name: str, annotation: Any) -> None:
        """Refuse a field type whose values would not read back (see `_field_types`); a
        field with a serializer of its own writes what it likes, and is left alone."""
        if self._has_own_serializer(name):
            return
        strict = computed_and_forbidden_inside(annotation)
        if strict is not None:
            raise ConfigurationError(
                f"{self.name}.{name} holds {strict}, which has computed fields and forbids "
                "extra ones: pydantic's JSON of it holds the computed fields, which its "
                "validation then refuses, so no record could be read. Allow extra fields there"
            )
        excluded = excluded_inside(annotation)
        if excluded is not None:
            raise ConfigurationError(
                f"{self.name}.{name} holds {excluded}, which is excluded from pydantic's dumps "
                "(Field(exclude=...) or exclude_if): it would not be stored, and would read "
                "back as its default or not at all. Remove the exclusion from that model"
            )
        key = unreadable_dict_key(annotation)
        if key is not None:
            raise ConfigurationError(
                f"{self.name}.{name} holds a dict keyed by {_type_name(key)}: pydantic writes "
                "such a key as text that it cannot read back as the key (the tuple (1, 2) "
                "becomes '1,2'). Key it by str, int or another single value"
            )

    # -- encoding ----------------------------------------------------------------------

    def encode(self, instance: M) -> list[str | bytes]:
        """All field values of `instance`, in field order.

        Raises:
            SerializationError: A value cannot be serialized; it names the field.
        """
        data = self._dump(instance, None)
        for name, dump in self._special.items():
            data[name] = dump(instance)
        for name in self._zoned:
            _check_offset(self.name, name, getattr(instance, name))
        return [
            self._text(name, data[name], raw, instance) for name, raw in zip(self.names, self._raw)
        ]

    def encode_fields(self, instance: M, names: Iterable[str]) -> list[str | bytes]:
        """`name, value, name, value...` for the given fields only."""
        wanted = set(names)
        data = self._dump(instance, wanted)
        for name in self._zoned:
            if name in wanted:
                _check_offset(self.name, name, getattr(instance, name))
        pairs: list[str | bytes] = []
        for name in self.names:
            if name in wanted:
                dump = self._special.get(name)
                value = data[name] if dump is None else dump(instance)
                pairs += (name, self._text(name, value, self._raw_by_name[name], instance))
        return pairs

    def snapshot(self, instance: M) -> list[str | bytes] | None:
        """The stored form of every field now, to compare with later (None if a value
        cannot be stored at the moment)."""
        try:
            return self.encode(instance)
        except SerializationError:
            return None

    def changed_fields(self, instance: M, before: list[str | bytes] | None) -> list[str]:
        """The fields whose stored form differs from `before`, however they were changed
        (assigned, or changed in place). Without a snapshot: every field.

        Raises:
            SerializationError: A value cannot be stored.
        """
        after = self.encode(instance)
        if before is None:
            return list(self.names)
        return [name for name, old, new in zip(self.names, before, after) if old != new]

    def key_text(self, name: str, instance: M) -> str:
        """The text a primary key field's value has in keys: its JSON form, bare when that
        is a string (as the field's own serializers make it).

        Raises:
            SerializationError: The value cannot be stored.
        """
        dump = self._special.get(name)
        data = self._dump(instance, {name})[name] if dump is None else dump(instance)
        if type(data) is str:
            if not data.isascii():
                _check_utf8(self.name, name, data)
            return data
        text = self._text(name, data, False)
        return text if isinstance(text, str) else text.decode()

    def key_of_value(self, name: str, value: Any) -> str:
        """`key_text` of a value given by a caller (an id): validated as the field
        declares, then serialized as a record holding it would be.

        Raises:
            InvalidInputError: The value is not valid for the field, or cannot be stored.
        """
        adapter = self._column_adapter(name)
        try:
            validated = adapter.validate_python(value)
            return self.key_text(name, self.model.model_construct(**{name: validated}))
        except ValidationError as exc:
            raise InvalidInputError(
                f"{self.name}.{name}: {value!r} is not a valid value: {exc.errors()[0]['msg']}"
            ) from None
        except Exception as exc:
            problem = f"{self.name}.{name}: {value!r} cannot be used: {exc}"
            raise InvalidInputError(problem) from None

    def is_plain_str(self, name: str) -> bool:
        """Whether the field is a bare `str` that pydantic takes as it is (no constraint,
        validator or string option), so that a caller's string is already its stored form."""
        info = self.model.model_fields[name]
        config = self.model.model_config
        return (
            info.annotation is str
            and not info.metadata
            and not _field_validators(self.model, name)
            and not _old_style_validators(self.model, name)
            and self._raw_by_name[name]  # no serializer of its own either
            and not any(config.get(option) for option in _STRING_OPTIONS)
        )

    def key_may_read_back_otherwise(self, name: str) -> bool:
        """`may_read_back_otherwise` for the primary key field: its own declarations and the
        model's validators only (a validator of another field cannot change it)."""
        info = self.model.model_fields[name]
        decorators = self.model.__pydantic_decorators__
        serializers = decorators.field_serializers.values()
        return bool(
            not _is_plain_value_type(info.annotation)
            or info.metadata
            or _field_validators(self.model, name)
            or _old_style_validators(self.model, name)
            or any(name in d.info.fields or "*" in d.info.fields for d in serializers)
            or decorators.model_validators
            or decorators.root_validators
            or self.model.__pydantic_post_init__
            or any(self.model.model_config.get(option) for option in _VALUE_OPTIONS)
        )

    def may_read_back_otherwise(self, name: str, plain: tuple[type, ...] = ()) -> bool:
        """Whether a read of field `name` may give another value than an instance holds: a
        value assigned without validation is stored as it is, then validated when read,
        where a type of its own, validators (of any field: `info.data`), serializers,
        string and JSON options, model validators or `model_post_init` may change it.
        `plain`: metadata types that change nothing (the library's `Indexed`)."""
        info = self.model.model_fields[name]
        decorators = self.model.__pydantic_decorators__
        config = self.model.model_config
        return bool(
            not _is_plain_value_type(info.annotation)
            or any(not isinstance(item, plain) for item in info.metadata)
            or decorators.field_validators
            or decorators.validators  # pydantic v1's @validator, still accepted
            or decorators.field_serializers
            or decorators.model_validators
            or decorators.root_validators
            or self.model.__pydantic_post_init__
            or any(config.get(option) for option in _VALUE_OPTIONS)
        )

    def record_as_read(
        self, pk: str, instance: M, stored: Sequence[str | bytes] | None = None
    ) -> M:
        """What a read of `instance`'s record gives (the instance itself if that fails).
        `stored`: `encode(instance)`, when the caller has it already."""
        stored = self.encode(instance) if stored is None else stored
        values = [v.decode() if isinstance(v, bytes) else v for v in stored]
        try:
            document = self._document(pk, values, str)
            return self._validate_one(document, pk, values, str)
        except PydanticAioredisError:
            return instance

    def is_stored_raw(self, name: str) -> bool:
        """Whether the field's stored text is its bare string (see the module's docstring)."""
        return self._raw_by_name[name]

    def _dump(self, instance: M, include: set[str] | None) -> dict[str, Any]:
        # warnings="error": a value of the wrong type (assigned without
        # validate_assignment) is refused here rather than stored unreadable.
        # Computed fields are not stored: excluded, they are not computed either.
        try:
            data: dict[str, Any] = self._serializer.to_python(
                instance,
                mode="json",
                by_alias=False,
                include=include,
                exclude=self._computed,
                fallback=self._fallback,
                warnings="error",
            )
        except Exception as exc:  # a serializer of the user's may raise anything
            raise self._serialization_error(instance, exc) from exc
        return data

    def _excluded_dumper(self, name: str) -> Callable[[M], Any]:
        # `Field(exclude=True)` hides a field from dumps, not from the record.
        def dump(instance: M) -> Any:
            adapter = self._column_adapter(name)
            return self._dump_one(name, adapter, getattr(instance, name))

        return dump

    def _secret_dumper(self, name: str, annotation: Any) -> Callable[[M], Any]:
        # A secret is stored as its value (Redis is where it is kept), read back as a secret.
        inner: Any = _secret_type(annotation)
        optional = _secret_type(annotation) is not None and _is_optional(annotation)
        adapter: TypeAdapter[Any] = TypeAdapter(inner | None if optional else inner)

        def dump(instance: M) -> Any:
            secret = getattr(instance, name)
            if secret is None and not optional:  # assigned without validate_assignment
                raise SerializationError(f"{self.name}.{name} cannot be None: it is no Optional")
            value = None if secret is None else secret.get_secret_value()
            return self._dump_one(name, adapter, value)

        return dump

    def _dump_one(self, name: str, adapter: TypeAdapter[Any], value: Any) -> Any:
        try:
            return adapter.dump_python(
                value, mode="json", fallback=self._fallback, warnings="error"
            )
        except Exception as exc:
            raise SerializationError(f"{self.name}.{name} cannot be serialized: {exc}") from exc

    def _text(self, name: str, value: Any, raw: bool, instance: M | None = None) -> str | bytes:
        if raw:
            if type(value) is not str:
                raise SerializationError(
                    f"{self.name}.{name}: expected its serialized form to be a string, "
                    f"got {type(value).__name__}"
                )
            text: str | bytes = value
        else:
            try:
                text = _json_text(value)
            except (PydanticSerializationError, ValueError) as exc:  # ValueError: huge ints
                raise SerializationError(f"{self.name}.{name} cannot be stored: {exc}") from exc
            # pydantic turns a dict key it cannot encode into U+FFFD characters instead of
            # failing: where one shows, look for text UTF-8 cannot carry in the value itself.
            replaced = "\ufffd" in text if type(text) is str else b"\xef\xbf\xbd" in text
            if replaced and instance is not None:
                _check_nested_text(self.name, name, getattr(instance, name))
        if type(text) is str and not text.isascii():
            _check_utf8(self.name, name, text)
        return text

    def _serialization_error(self, instance: M, exc: Exception) -> SerializationError:
        for name in self.names:  # find the field at fault
            try:
                self._serializer.to_python(
                    instance, mode="json", include={name}, fallback=self._fallback, warnings="error"
                )
            except Exception as field_exc:
                return SerializationError(f"{self.name}.{name} cannot be serialized: {field_exc}")
        return SerializationError(f"{self.name} cannot be serialized: {exc}")

    # -- decoding ----------------------------------------------------------------------

    def decode_rows(
        self,
        rows: Sequence[Any],
        key_of: Callable[[str], str],
        invalid: list[CorruptRecordError] | None = None,
    ) -> list[M]:
        """Models from a flat reply `pk, v1..vn, pk, v1..vn, ...` (None: field missing).

        Args:
            rows: The reply.
            key_of: Turns a primary key into its Redis key, for error messages.
            invalid: None to raise at the first record that does not validate; a list to
                skip such records and append their errors to it.

        Raises:
            CorruptRecordError: A record does not validate; it names the key and field.
        """
        if self._object_hook is not None:
            return self._decode_with_hooks(rows, key_of, invalid)
        records = None  # (pk, values, JSON document), built when the batch cannot be
        try:
            batch = self._batch_document(rows)
        except (TypeError, ValueError):  # a field missing (None), or not one JSON value
            records = self._documents(rows, key_of, invalid)
            batch = "[" + ",".join(document for _, _, document in records) + "]"
        try:
            return self._many.validate_json(batch, by_alias=False, by_name=True)
        except (ValidationError, ValueError):  # ValueError: text that is not UTF-8
            pass
        if records is None:
            records = self._documents(rows, key_of, invalid)
        models = []  # the batch failed: validate record by record to find the culprits
        for pk, values, document in records:
            try:
                models.append(self._validate_one(document, pk, values, key_of))
            except CorruptRecordError as error:
                _report(error, invalid)
        return models

    def _documents(
        self,
        rows: Sequence[Any],
        key_of: Callable[[str], str],
        invalid: list[CorruptRecordError] | None,
    ) -> list[tuple[str, Sequence[Any], str]]:
        """Each record's pk, values and JSON document, record by record (see `decode_rows`)."""
        stride = len(self.names) + 1
        records = []
        for i in range(0, len(rows), stride):
            pk, values = rows[i], rows[i + 1 : i + stride]
            try:
                records.append((pk, values, self._document(pk, values, key_of)))
            except CorruptRecordError as error:
                _report(error, invalid)
        return records

    def _batch_document(self, rows: Sequence[Any]) -> str:
        """The JSON array of the records of a flat reply (see `decode_rows`), when every
        record has every field and each stored JSON value is one JSON value; else TypeError
        or ValueError.

        Written column by column rather than record by record for speed: every step below
        runs in C, where a Python call per record or per value costs about as much as
        pydantic's validation of the record.
        """
        stride = len(self.names) + 1
        at = self._pk_column
        if at is not None and not self._keys_match(rows[::stride], rows[at + 1 :: stride]):
            raise ValueError("a primary key field differs from its key")
        columns: list[Iterable[str]] = []
        for j, raw in enumerate(self._raw, start=1):
            column = rows[j::stride]
            if raw:
                columns.append(map(encode_basestring, column))
                continue
            # Spliced into a document of the whole record: text another program stored
            # (`"eve","is_admin":true`) must be one JSON value, not a way to add fields.
            if _MAY_HOLD_SEVERAL_VALUES.search("".join(column)):
                deque(map(from_json, column), maxlen=0)
            columns.append(column)
        count = len(rows) // stride
        parts: list[Iterable[str]] = []
        for prefix, values in zip(self._prefixes, columns):
            parts += (repeat(prefix, count), values)
        parts.append(repeat("}", count))
        return "[" + ",".join(map("".join, zip(*parts))) + "]"

    def _document(self, pk: str, values: Sequence[Any], key_of: Callable[[str], str]) -> str:
        if self._pk_column is not None:
            self._check_key(pk, values[self._pk_column], key_of)
        try:  # written here for speed: the common case, every field present and sound
            return self._template % tuple(map(_apply, self._steps, values))
        except (TypeError, ValueError):  # a field missing (None), or not one JSON value
            return self._document_by_field(pk, values, key_of)

    def _document_by_field(
        self, pk: str, values: Sequence[Any], key_of: Callable[[str], str]
    ) -> str:
        parts = []
        for json_key, raw, required, value, name in zip(
            self._json_keys, self._raw, self._required, values, self.names
        ):
            if value is None:
                if required:
                    raise CorruptRecordError(self.name, key_of(pk), name, "the field is missing")
                continue  # an optional field added to the model later: use its default
            if raw:
                value = encode_basestring(value)
            elif _MAY_HOLD_SEVERAL_VALUES.search(value):
                # Spliced into a document of the whole record: text another program stored
                # (`"eve","is_admin":true`) must be one JSON value, not a way to add fields.
                _check_one_json_value(self.name, pk, key_of, name, value)
            parts.append(json_key + value)
        return "{" + ",".join(parts) + "}"

    def _keys_match(self, keys: Sequence[Any], stored: Sequence[Any]) -> bool:
        """Whether each stored primary key field is its record's key (see `__init__`)."""
        if keys == stored:
            return True
        if self._pk_bare:
            return False
        try:
            return list(keys) == [_key_text(text) for text in stored]
        except (TypeError, ValueError):  # a field missing, or not JSON: checked one by one
            return False

    def _check_key(self, pk: str, stored: Any, key_of: Callable[[str], str]) -> None:
        """Refuse a record whose primary key field is not its key's."""
        if stored is None or stored == pk:
            return
        try:
            text = stored if self._pk_bare else _key_text(stored)
        except ValueError:  # not JSON: its validation says so
            return
        if text != pk:
            raise CorruptRecordError(
                self.name,
                key_of(pk),
                self._pk_field,
                f"it holds {stored[:80]!r}, but the record's key names {pk[:80]!r}; as it is, "
                "saving it would write another record",
            )

    def _validate_one(
        self, document: str, pk: str, values: Sequence[Any], key_of: Callable[[str], str]
    ) -> M:
        for name, raw, value in zip(self.names, self._raw, values):
            if value is None:
                continue
            _check_stored_text(self.name, key_of(pk), name, value)
            if not raw:
                try:
                    from_json(value)
                except ValueError as exc:
                    raise CorruptRecordError(
                        self.name, key_of(pk), name, f"invalid JSON ({exc}): {value[:80]!r}"
                    ) from None
        try:
            return self.model.model_validate_json(document, by_alias=False, by_name=True)
        except ValidationError as exc:
            raise self._corrupt(pk, exc, key_of) from None

    def _corrupt(
        self, pk: str, exc: ValidationError, key_of: Callable[[str], str]
    ) -> CorruptRecordError:
        error = exc.errors()[0]
        loc = error.get("loc", ())
        field = str(loc[0]) if loc else None
        return CorruptRecordError(self.name, key_of(pk), field, error["msg"])

    def _decode_with_hooks(
        self,
        rows: Sequence[Any],
        key_of: Callable[[str], str],
        invalid: list[CorruptRecordError] | None,
    ) -> list[M]:
        stride = len(self.names) + 1
        models = []
        for i in range(0, len(rows), stride):
            try:
                models.append(self._load_with_hooks(rows[i], rows[i + 1 : i + stride], key_of))
            except CorruptRecordError as error:
                _report(error, invalid)
        return models

    def _load_with_hooks(self, pk: str, values: Sequence[Any], key_of: Callable[[str], str]) -> M:
        if self._pk_column is not None:
            self._check_key(pk, values[self._pk_column], key_of)
        data = {}
        for name, raw, value in zip(self.names, self._raw, values):
            if value is not None:
                _check_stored_text(self.name, key_of(pk), name, value)
                data[name] = value if raw else self._loads(pk, name, value, key_of)
        # Python mode reads what json.loads built: a date is still a string there, which a
        # strict model would refuse although it wrote it; lax mode reads it back.
        try:
            return self.model.model_validate(data, strict=False, by_alias=False, by_name=True)
        except ValidationError as exc:
            raise self._corrupt(pk, exc, key_of) from None

    def _loads(self, pk: str, name: str, value: str, key_of: Callable[[str], str]) -> Any:
        try:
            return json.loads(value, object_hook=self._object_hook)
        except ValueError as exc:
            raise CorruptRecordError(self.name, key_of(pk), name, f"invalid JSON: {exc}") from None

    def decode_columns(
        self,
        names: Sequence[str],
        rows: Sequence[Any],
        key_of: Callable[[str], str],
        invalid: list[CorruptRecordError] | None = None,
    ) -> list[dict[str, Any]]:
        """Dicts holding just the given fields, each value validated as its field declares
        (`invalid` as for `decode_rows`). A field missing from a record (added to the model
        later) takes its default, as in whole records.

        Raises:
            InvalidInputError: A field's validator cannot run on the value alone (it reads
                other fields through `info.data`): such a field needs whole records.
        """
        adapters = [self._column_adapter(name) for name in names]
        raws = [self._raw_by_name[name] for name in names]
        stride = len(names) + 1
        result = []
        pk_at = names.index(self._pk_field) + 1 if self._pk_field in names else None
        for i in range(0, len(rows), stride):
            pk, record = rows[i], {}
            try:
                if pk_at is not None:
                    self._check_key(pk, rows[i + pk_at], key_of)
                for name, adapter, raw, value in zip(
                    names, adapters, raws, rows[i + 1 : i + stride]
                ):
                    if value is None:
                        record[name] = self._default(pk, name, key_of)
                    else:
                        record[name] = self._column_value(pk, name, adapter, raw, value, key_of)
            except CorruptRecordError as error:
                _report(error, invalid)
                continue
            result.append(record)
        return result

    def _column_value(
        self,
        pk: str,
        name: str,
        adapter: TypeAdapter[Any],
        raw: bool,
        value: str,
        key_of: Callable[[str], str],
    ) -> Any:
        _check_stored_text(self.name, key_of(pk), name, value)
        try:
            # By name, not alias: nested models are stored under their fields' names.
            if self._object_hook is not None and not raw:
                loaded = self._loads(pk, name, value, key_of)
                return adapter.validate_python(loaded, strict=False, by_alias=False, by_name=True)
            text = encode_basestring(value) if raw else value
            return adapter.validate_json(text, by_alias=False, by_name=True)
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"]
            raise CorruptRecordError(self.name, key_of(pk), name, problem) from None
        except CorruptRecordError:
            raise
        except Exception as exc:  # a validator that needs the rest of the record
            raise InvalidInputError(
                f"{self.name}.{name} cannot be read as a column: its validation failed on the "
                f"value alone ({type(exc).__name__}: {exc}); a validator that reads other "
                "fields (info.data) needs whole records: select without columns"
            ) from exc

    def _default(self, pk: str, name: str, key_of: Callable[[str], str]) -> Any:
        info = self.model.model_fields[name]
        if info.is_required():
            raise CorruptRecordError(self.name, key_of(pk), name, "the field is missing")
        try:
            return info.get_default(call_default_factory=True, validated_data={})
        except Exception as exc:  # a default_factory that reads the other fields
            raise InvalidInputError(
                f"{self.name}.{name} is missing from record {key_of(pk)!r} and its "
                f"default_factory needs the rest of the record ({type(exc).__name__}: {exc}): "
                "select whole records"
            ) from exc

    def _column_adapter(self, name: str) -> TypeAdapter[Any]:
        adapter = self._column_adapters.get(name)
        if adapter is None:
            adapter = self._column_adapters[name] = self._build_column_adapter(name)
        return adapter

    def _build_column_adapter(self, name: str) -> TypeAdapter[Any]:
        # One field on its own: its type, its Annotated metadata and constraints, and the
        # model's @field_validator functions that apply to it.
        info: FieldInfo = self.model.model_fields[name]
        metadata: list[Any] = list(info.metadata)
        for decorator in _field_validators(self.model, name):
            metadata.append(_VALIDATOR_WRAPPERS[decorator.info.mode](decorator.func))
        parts = (info.annotation, *metadata)
        annotated: Any = Annotated.__class_getitem__(parts) if metadata else info.annotation  # type: ignore[attr-defined]
        config = self.model.model_config
        options = {key: config[key] for key in _TYPE_OPTIONS if key in config}  # type: ignore[literal-required]
        try:
            return TypeAdapter(annotated, config=options or None)  # type: ignore[arg-type]
        except PydanticUserError:  # a model or dataclass field: it carries its own config
            return TypeAdapter(annotated)

    # -- classification ----------------------------------------------------------------

    def _has_own_serializer(self, name: str) -> bool:
        info = self.model.model_fields[name]
        if any(_is_serializer(item) for item in info.metadata):
            return True
        decorators = self.model.__pydantic_decorators__.field_serializers.values()
        return any(name in d.info.fields or "*" in d.info.fields for d in decorators)

    def _is_stored_raw(self, name: str) -> bool:
        """True when the field's JSON form is always a string, stored without quotes."""
        if self._has_own_serializer(name):
            return False
        info = self.model.model_fields[name]
        kind = info.annotation
        if not isinstance(kind, type):
            return False  # Optional, unions, generics, Literal: JSON keeps them unambiguous
        if issubclass(kind, _STRING_TYPES):
            return True
        temporal = self.model.model_config.get("ser_json_temporal", "iso8601")
        return issubclass(kind, _TEMPORAL_TYPES) and temporal == "iso8601"


# Model options that shape how a single field's type validates and serializes.
_STRING_OPTIONS = (
    "str_strip_whitespace",
    "str_to_lower",
    "str_to_upper",
    "str_min_length",
    "str_max_length",
)
# Types whose values pydantic reads back from their JSON as they were (and `Optional` of
# them), when nothing else is declared on the field.
_PLAIN_VALUE_TYPES = (
    str,
    int,
    float,
    bool,
    datetime.date,
    datetime.datetime,
    decimal.Decimal,
    uuid.UUID,
)


def _is_plain_value_type(annotation: Any) -> bool:
    if get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        return len(members) == 1 and _is_plain_value_type(members[0])
    if annotation in _PLAIN_VALUE_TYPES:
        return True
    return (
        isinstance(annotation, type)
        and issubclass(annotation, enum.Enum)
        and not hasattr(annotation, "__get_pydantic_core_schema__")
    )


# Model options that may change a value read back from what was assigned.
_VALUE_OPTIONS = (
    "ser_json_bytes",
    "val_json_bytes",
    "ser_json_timedelta",
    "ser_json_temporal",
    "val_temporal_unit",
    "use_enum_values",
    "coerce_numbers_to_str",
    "str_strip_whitespace",
    "str_to_lower",
    "str_to_upper",
)
_TYPE_OPTIONS = (
    "strict",
    "arbitrary_types_allowed",
    "ser_json_bytes",
    "val_json_bytes",
    "ser_json_timedelta",
    "ser_json_temporal",
    "val_temporal_unit",
    "ser_json_inf_nan",
    "use_enum_values",
    "coerce_numbers_to_str",
    "regex_engine",
    *_STRING_OPTIONS,
)


def _old_style_validators(model: type[Any], name: str) -> list[Any]:
    """pydantic v1's `@validator`s of a field (still accepted, deprecated), and its
    `@root_validator`s, which may change any field."""
    decorators = model.__pydantic_decorators__
    fields = [
        d for d in decorators.validators.values() if name in d.info.fields or "*" in d.info.fields
    ]
    return fields + list(decorators.root_validators.values())


def _field_validators(model: type[Any], name: str) -> list[Any]:
    decorators = model.__pydantic_decorators__.field_validators.values()
    return [d for d in decorators if name in d.info.fields or "*" in d.info.fields]


def _secret_type(annotation: Any) -> Any:
    """For a secret field (`SecretStr`, `SecretBytes`, `Secret[T]`, or Optional of one):
    the type of its revealed value. None for any other field."""
    if annotation is SecretStr:
        return str
    if annotation is SecretBytes:
        return bytes
    origin = get_origin(annotation)
    if origin is Secret:
        return get_args(annotation)[0]
    if origin in (typing.Union, types.UnionType):
        others = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(others) == 1:
            return _secret_type(others[0])
    return None


def _check_utf8(model_name: str, field: str, text: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise SerializationError(
            f"{model_name}.{field} cannot be stored: its text holds {text[exc.start]!r} at "
            f"position {exc.start}, which UTF-8 cannot carry ({exc.reason})"
        ) from None


def _check_nested_text(model_name: str, field: str, value: Any, depth: int = 0) -> None:
    """Raise SerializationError if text anywhere in `value` (keys included) is not UTF-8."""
    if isinstance(value, str):
        if not value.isascii():
            _check_utf8(model_name, field, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_nested_text(model_name, field, key, depth + 1)
            _check_nested_text(model_name, field, item, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _check_nested_text(model_name, field, item, depth + 1)
    elif hasattr(value, "__dict__") and depth < 50:
        _check_nested_text(model_name, field, vars(value), depth + 1)


def _key_text(stored: str) -> str:
    """The key text of a primary key field stored as JSON: a JSON string's string, else the
    text itself (see `HashCodec.key_text`)."""
    if not stored.startswith('"'):
        return stored
    text: str = from_json(stored)
    return text


def _type_name(annotation: Any) -> str:
    """`Point` for a class, `tuple[int, int]` for a generic alias."""
    return annotation.__name__ if isinstance(annotation, type) else repr(annotation)


def _check_offset(model_name: str, field: str, value: Any) -> None:
    """Refuse a time zone whose UTC offset has seconds (Amsterdam's +00:19:32 of 1900, say),
    in the value or anywhere inside it: pydantic's JSON writes the offset to the minute, so
    the value would read back another."""
    offset = offset_with_seconds(value)
    if offset is not None:
        raise SerializationError(
            f"{model_name}.{field}: the UTC offset {offset} has seconds, which the stored text "
            "cannot keep (it would read back as another instant); convert the value to UTC"
        )


def _is_optional(annotation: Any) -> bool:
    if get_origin(annotation) not in (typing.Union, types.UnionType):
        return False
    return type(None) in get_args(annotation)


# `operator.call` (Python 3.11+) applies each step in C; a lambda does it on 3.10.
_apply: Callable[[Callable[[str], str], str], str] = getattr(
    operator, "call", lambda step, value: step(value)
)


# Characters without which a stored value cannot be more than one JSON value.
_MAY_HOLD_SEVERAL_VALUES = re.compile(r"[,:}\]]")


def _one_json_value(value: str) -> str:
    """`value` if it is one JSON value (the fast path's check); else ValueError."""
    if _MAY_HOLD_SEVERAL_VALUES.search(value):
        from_json(value)
    return value


def _check_one_json_value(
    model_name: str, pk: str, key_of: Callable[[str], str], field: str, value: str
) -> None:
    try:
        from_json(value)
    except ValueError as exc:
        problem = f"invalid JSON ({exc}): {value[:80]!r}"
        raise CorruptRecordError(model_name, key_of(pk), field, problem) from None


def _check_stored_text(model_name: str, key: str, field: str, value: str) -> None:
    """Bytes that are not UTF-8 (written by another program) arrive as lone surrogates."""
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            problem = f"the stored value is not UTF-8 text (bad byte at {exc.start})"
            raise CorruptRecordError(model_name, key, field, problem) from None


def _report(error: CorruptRecordError, invalid: list[CorruptRecordError] | None) -> None:
    """Raise the error, or, when the caller collects them, note it and go on."""
    if invalid is None:
        raise error
    invalid.append(error)


def _is_serializer(item: Any) -> bool:
    return type(item).__name__ in ("PlainSerializer", "WrapSerializer")


def _override(model: type[Any], name: str) -> Callable[..., Any] | None:
    """The model's own classmethod `name`, or None when it keeps the base version."""
    from ._model import Model

    method = getattr(model, name, None)
    base = getattr(Model, name)
    if method is None or getattr(method, "__func__", None) is base.__func__:
        return None
    return method  # type: ignore[no-any-return]
