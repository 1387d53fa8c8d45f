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
import ipaddress
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from json.encoder import encode_basestring  # C-accelerated
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    PlainValidator,
    PydanticUserError,
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
    SerializationError,
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
        self._excluded = frozenset(
            name for name, info in model.model_fields.items() if info.exclude
        )
        self._serializer = model.__pydantic_serializer__
        self._fallback = _override(model, "json_default")
        self._object_hook = _override(model, "json_object_hook")
        self._many: TypeAdapter[list[M]] = TypeAdapter(list[model])  # type: ignore[valid-type]
        self._column_adapters: dict[str, TypeAdapter[Any]] = {}
        if model.__pydantic_decorators__.model_serializers:
            raise ConfigurationError(
                f"{self.name} has a model_serializer; records are stored one hash field per "
                "model field, so serialize individual fields (field_serializer) instead"
            )

    # -- encoding ----------------------------------------------------------------------

    def encode(self, instance: M) -> list[str | bytes]:
        """All field values of `instance`, in field order.

        Raises:
            SerializationError: A value cannot be serialized; it names the field.
        """
        data = self._dump(instance, None)
        for name in self._excluded:  # `Field(exclude=True)` hides it from dumps, not from us
            data[name] = self._dump_excluded(instance, name)
        return [self._text(name, data[name], raw) for name, raw in zip(self.names, self._raw)]

    def encode_fields(self, instance: M, names: Iterable[str]) -> list[str | bytes]:
        """`name, value, name, value...` for the given fields only."""
        wanted = set(names)
        data = self._dump(instance, wanted)
        pairs: list[str | bytes] = []
        for name in self.names:
            if name in wanted:
                value = data[name] if name in data else self._dump_excluded(instance, name)
                pairs += (name, self._text(name, value, self._raw_by_name[name]))
        return pairs

    def encode_value(self, name: str, value: Any) -> str:
        """The stored text of one field value given by a caller (a primary key)."""
        adapter = self._column_adapter(name)
        try:
            data = adapter.dump_python(adapter.validate_python(value), mode="json")
        except ValidationError as exc:
            raise InvalidInputError(
                f"{self.name}.{name}: {value!r} is not a valid value: {exc.errors()[0]['msg']}"
            ) from None
        text = self._text(name, data, self._raw_by_name[name])
        return text if isinstance(text, str) else text.decode()

    def _dump(self, instance: M, include: set[str] | None) -> dict[str, Any]:
        try:
            data: dict[str, Any] = self._serializer.to_python(
                instance, mode="json", by_alias=False, include=include, fallback=self._fallback
            )
        except (PydanticSerializationError, ValueError, TypeError) as exc:
            raise self._serialization_error(instance, exc) from exc
        return data

    def _dump_excluded(self, instance: M, name: str) -> Any:
        return self._column_adapter(name).dump_python(
            getattr(instance, name), mode="json", fallback=self._fallback
        )

    def _text(self, name: str, value: Any, raw: bool) -> str | bytes:
        if raw:
            if type(value) is str:
                return value
            raise SerializationError(
                f"{self.name}.{name}: expected its serialized form to be a string, "
                f"got {type(value).__name__}"
            )
        try:
            return _json_text(value)
        except PydanticSerializationError as exc:
            raise SerializationError(f"{self.name}.{name}: {exc}") from exc

    def _serialization_error(self, instance: M, exc: Exception) -> SerializationError:
        for name in self.names:  # find the field at fault
            try:
                self._serializer.to_python(
                    instance, mode="json", include={name}, fallback=self._fallback
                )
            except (PydanticSerializationError, ValueError, TypeError):
                return SerializationError(f"{self.name}.{name} cannot be serialized: {exc}")
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
        stride = len(self.names) + 1
        records = []  # (pk, values, JSON document)
        for i in range(0, len(rows), stride):
            pk, values = rows[i], rows[i + 1 : i + stride]
            try:
                records.append((pk, values, self._document(pk, values, key_of)))
            except CorruptRecordError as error:
                _report(error, invalid)
        try:
            batch = "[" + ",".join(document for _, _, document in records) + "]"
            return self._many.validate_json(batch, by_name=True)
        except ValidationError:
            pass
        models = []  # the batch failed: validate record by record to find the culprits
        for pk, values, document in records:
            try:
                models.append(self._validate_one(document, pk, values, key_of))
            except CorruptRecordError as error:
                _report(error, invalid)
        return models

    def _document(self, pk: str, values: Sequence[Any], key_of: Callable[[str], str]) -> str:
        parts = []
        for json_key, raw, required, value, name in zip(
            self._json_keys, self._raw, self._required, values, self.names
        ):
            if value is None:
                if required:
                    raise CorruptRecordError(self.name, key_of(pk), name, "the field is missing")
                continue  # an optional field added to the model later: use its default
            parts.append(json_key + (encode_basestring(value) if raw else value))
        return "{" + ",".join(parts) + "}"

    def _validate_one(
        self, document: str, pk: str, values: Sequence[Any], key_of: Callable[[str], str]
    ) -> M:
        for name, raw, value in zip(self.names, self._raw, values):
            if value is not None and not raw:
                try:
                    from_json(value)
                except ValueError as exc:
                    raise CorruptRecordError(
                        self.name, key_of(pk), name, f"invalid JSON ({exc}): {value[:80]!r}"
                    ) from None
        try:
            return self.model.model_validate_json(document, by_name=True)
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
        data = {}
        for name, raw, value in zip(self.names, self._raw, values):
            if value is not None:
                data[name] = value if raw else self._loads(pk, name, value, key_of)
        try:
            return self.model.model_validate(data, by_name=True)
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
        (`invalid` as for `decode_rows`)."""
        adapters = [self._column_adapter(name) for name in names]
        raws = [self._raw_by_name[name] for name in names]
        stride = len(names) + 1
        result = []
        for i in range(0, len(rows), stride):
            pk, record = rows[i], {}
            try:
                for name, adapter, raw, value in zip(
                    names, adapters, raws, rows[i + 1 : i + stride]
                ):
                    if value is not None:  # else absent from this record: left out
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
        try:
            if self._object_hook is not None and not raw:
                return adapter.validate_python(self._loads(pk, name, value, key_of))
            return adapter.validate_json(encode_basestring(value) if raw else value)
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"]
            raise CorruptRecordError(self.name, key_of(pk), name, problem) from None

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
        for decorator in self.model.__pydantic_decorators__.field_validators.values():
            if name in decorator.info.fields or "*" in decorator.info.fields:
                metadata.append(_VALIDATOR_WRAPPERS[decorator.info.mode](decorator.func))
        parts = (info.annotation, *metadata)
        annotated: Any = Annotated.__class_getitem__(parts) if metadata else info.annotation  # type: ignore[attr-defined]
        config = self.model.model_config
        options = {
            key: config[key]
            for key in (
                "strict",
                "arbitrary_types_allowed",
                "ser_json_bytes",
                "val_json_bytes",
                "ser_json_timedelta",
                "ser_json_inf_nan",
                "use_enum_values",
            )
            if key in config
        }
        try:
            return TypeAdapter(annotated, config=options or None)  # type: ignore[arg-type]
        except PydanticUserError:  # a model or dataclass field: it carries its own config
            return TypeAdapter(annotated)

    # -- classification ----------------------------------------------------------------

    def _is_stored_raw(self, name: str) -> bool:
        """True when the field's JSON form is always a string, stored without quotes."""
        info = self.model.model_fields[name]
        if any(_is_serializer(item) for item in info.metadata):
            return False
        decorators = self.model.__pydantic_decorators__.field_serializers.values()
        if any(name in d.info.fields or "*" in d.info.fields for d in decorators):
            return False
        kind = info.annotation
        if not isinstance(kind, type):
            return False  # Optional, unions, generics, Literal: JSON keeps them unambiguous
        if issubclass(kind, _STRING_TYPES):
            return True
        temporal = self.model.model_config.get("ser_json_temporal", "iso8601")
        return issubclass(kind, _TEMPORAL_TYPES) and temporal == "iso8601"


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
