"""What a field's declared type lets the library store and read back, found at registration.

A record is stored as pydantic's JSON of each field. Some types pydantic accepts do not come
back from that JSON as they went in, and the library refuses them when a model is
registered (or, for values, before anything is written) instead of losing data later:

* a nested model that excludes a field from dumps (`Field(exclude=True)`, `exclude_if`):
  the field would be missing from the record, read back as its default or not at all;
* a dict whose keys are tuples, sets or models: pydantic writes such a key as text that it
  cannot read back as the key;
* a primary key whose type takes strings and other values (`Optional[str]`, `int | str`,
  `Any`): a string can spell the key of any other value (`"null"` is the key of None), so
  two records would share one Redis key;
* a nested model with computed fields and `extra="forbid"`: its JSON holds the computed
  fields, which its validation refuses;
* a datetime or time whose UTC offset has seconds, anywhere in a field: its JSON keeps
  the offset to the minute (see `offset_with_seconds`).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import types
import typing
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, Secret, SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from typing_extensions import is_typeddict

__all__ = [
    "computed_and_forbidden_inside",
    "excluded_inside",
    "may_hold_times",
    "offset_with_seconds",
    "secret_inside",
    "texts_may_collide",
    "unreadable_dict_key",
]

_UNIONS = (typing.Union, types.UnionType)
_COLLECTIONS = (tuple, list, set, frozenset)


def _types_in(annotation: Any, seen: set[Any] | None = None) -> Iterator[Any]:
    """Every type inside `annotation`: itself, its arguments, what a type alias stands for,
    and the field types of the models, dataclasses, TypedDicts and NamedTuples it holds,
    each once."""
    seen = set() if seen is None else seen
    try:
        if annotation in seen:
            return
        seen.add(annotation)
    except TypeError:  # an unhashable annotation (a Literal of a list, say)
        return
    yield annotation
    alias = _alias_value(annotation)
    if alias is not None:
        yield from _types_in(alias, seen)
    for arg in get_args(annotation):
        yield from _types_in(arg, seen)
    for field_type in _field_types(annotation):
        yield from _types_in(field_type, seen)


def _alias_value(annotation: Any) -> Any:
    """What a type alias (`type X = ...`, TypeAliasType) stands for, its type parameters
    replaced when it is given some (`Pair[int]`); None for anything else."""
    if _is_alias(annotation):
        return annotation.__value__
    origin = get_origin(annotation)
    if not _is_alias(origin):
        return None
    try:
        return origin.__value__[get_args(annotation)]
    except TypeError:  # not generic in the way it is given arguments
        return origin.__value__


def _is_alias(annotation: Any) -> bool:
    return type(annotation).__name__ == "TypeAliasType"


def _unwrapped(hint: Any) -> Any:
    """A TypedDict's key type without `Required`, `NotRequired` or `ReadOnly` around it."""
    while getattr(get_origin(hint), "_name", None) in ("Required", "NotRequired", "ReadOnly"):
        hint = get_args(hint)[0]
    return hint


def _field_types(annotation: Any) -> list[Any]:
    if not isinstance(annotation, type):
        return []
    if issubclass(annotation, BaseModel) or hasattr(annotation, "__pydantic_fields__"):
        return [info.annotation for info in _fields_of(annotation).values()]
    if (
        dataclasses.is_dataclass(annotation)
        or is_typeddict(annotation)
        or (
            issubclass(annotation, tuple) and hasattr(annotation, "_fields")  # a NamedTuple
        )
    ):
        return [_unwrapped(hint) for hint in _hints(annotation).values()]
    return []


def _hints(annotation: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(annotation, include_extras=True)
    except Exception:  # a forward reference that does not resolve: pydantic says so
        return {}


def _fields_of(annotation: Any) -> dict[str, FieldInfo]:
    """The pydantic fields of a model or a pydantic dataclass."""
    fields = getattr(annotation, "__pydantic_fields__", None)
    return fields if isinstance(fields, dict) else {}


def _excludes(info: Any) -> bool:
    return isinstance(info, FieldInfo) and bool(
        info.exclude or getattr(info, "exclude_if", None) is not None
    )


def excluded_inside(annotation: Any) -> str | None:
    """`Type.field` of a field that a model, dataclass or TypedDict nested in `annotation`
    excludes from dumps, or None."""
    for inner in _types_in(annotation):
        for name, info in _fields_of(inner).items():
            if _excludes(info):
                return f"{inner.__name__}.{name}"
        # A TypedDict's or a plain dataclass's field: `Annotated[int, Field(exclude=True)]`.
        for key, hint in _hints(inner).items() if _has_hints(inner) else ():
            hint = _unwrapped(hint)
            if get_origin(hint) is Annotated and any(map(_excludes, hint.__metadata__)):
                return f"{inner.__name__}.{key}"
    return None


def _has_hints(annotation: Any) -> bool:
    return isinstance(annotation, type) and (
        is_typeddict(annotation) or dataclasses.is_dataclass(annotation)
    )


def computed_and_forbidden_inside(annotation: Any) -> str | None:
    """A model nested in `annotation` whose JSON holds computed fields that its own
    validation then refuses (`extra="forbid"`), or None."""
    for inner in _types_in(annotation):
        if not isinstance(inner, type):
            continue
        decorators = getattr(inner, "__pydantic_decorators__", None)
        config = getattr(inner, "__pydantic_config__", None) or getattr(inner, "model_config", {})
        if (
            decorators is not None
            and decorators.computed_fields
            and config.get("extra") == "forbid"
        ):
            return inner.__name__
    return None


def secret_inside(annotation: Any) -> bool:
    """Whether a secret type appears anywhere inside a field's type."""
    return any(
        (isinstance(inner, type) and issubclass(inner, (SecretStr, SecretBytes, Secret)))
        or get_origin(inner) is Secret
        for inner in _types_in(annotation)
    )


def unreadable_dict_key(annotation: Any) -> Any:
    """A dict key type inside `annotation` whose JSON text pydantic cannot read back as a
    key (tuples, lists, sets, models, dataclasses), or None."""
    for inner in _types_in(annotation):
        origin = get_origin(inner)
        if not (isinstance(origin, type) and issubclass(origin, Mapping)):
            continue
        args = get_args(inner)
        if args and _is_structured(args[0]):
            return args[0]
    return None


def _is_structured(key: Any) -> bool:
    if get_origin(key) is Annotated:
        return _is_structured(get_args(key)[0])
    if get_origin(key) in _UNIONS:
        return any(_is_structured(arg) for arg in get_args(key))
    kind = get_origin(key) or key
    return isinstance(kind, type) and (
        issubclass(kind, (*_COLLECTIONS, BaseModel)) or dataclasses.is_dataclass(kind)
    )


def texts_may_collide(annotation: Any) -> bool:
    """Whether two values of a primary key's type can have the same key text: a type that
    takes text (str, bytes, paths, str enums or literals) and values of another type too
    (a string spells any other value's JSON), `Any`, or Decimals with other numbers."""
    kinds = set(_member_kinds(annotation))
    if len(kinds) < 2:
        return False
    # A Decimal is stored as its bare text: Decimal("1") and 1, or Decimal("1.5") and 1.5,
    # have the same key.
    decimal_and_number = any(issubclass(k, Decimal) for k in kinds if isinstance(k, type)) and (
        sum(map(_spells_number, kinds)) > 1
    )
    return decimal_and_number or any(map(_spells_text, kinds))


def _member_kinds(annotation: Any) -> list[Any]:
    """The types of the values a type takes: its union's members, its literals' types."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _member_kinds(get_args(annotation)[0])
    if origin in _UNIONS:
        return [kind for member in get_args(annotation) for kind in _member_kinds(member)]
    if origin is Literal:
        return [type(value) for value in get_args(annotation)]
    if annotation is Any or annotation is object:
        return [str, object]
    return [annotation]


def _spells_number(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, (int, float, Decimal)) and kind is not bool


def _spells_text(kind: Any) -> bool:
    if not isinstance(kind, type):
        return False
    if issubclass(kind, enum.Enum):
        return any(isinstance(member.value, (str, bytes)) for member in kind)
    return issubclass(kind, (str, bytes, bytearray, PurePath))


def may_hold_times(annotation: Any) -> bool:
    """Whether a value of this type may hold a datetime or a time somewhere (`Any` may)."""
    return any(
        inner is Any or inner is object or inner in (datetime.datetime, datetime.time)
        for inner in _types_in(annotation)
    )


def offset_with_seconds(value: Any, depth: int = 0) -> datetime.timedelta | None:
    """The first UTC offset with seconds of a datetime or time in `value` (itself, or inside
    its lists, tuples, sets, dicts, models and dataclasses), or None."""
    if isinstance(value, (datetime.datetime, datetime.time)):
        offset = value.utcoffset()
        if offset is not None and (offset.seconds % 60 or offset.microseconds):
            return offset
        return None
    if depth > 100:  # deeper than any JSON pydantic writes; a cycle pydantic refuses anyway
        return None
    if isinstance(value, dict):
        items: Any = [*value.keys(), *value.values()]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    elif isinstance(value, BaseModel):
        items = value.__dict__.values()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = [getattr(value, field.name) for field in dataclasses.fields(value)]
    else:
        return None
    for item in items:
        offset = offset_with_seconds(item, depth + 1)
        if offset is not None:
            return offset
    return None
