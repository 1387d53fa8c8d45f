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
* a datetime or time whose UTC offset has seconds, anywhere in a field: its JSON keeps
  the offset to the minute (see `offset_with_seconds`).
"""

from __future__ import annotations

import dataclasses
import datetime
import types
import typing
from collections.abc import Iterator
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel

__all__ = [
    "excluded_inside",
    "may_hold_times",
    "offset_with_seconds",
    "texts_may_collide",
    "unreadable_dict_key",
]

_UNIONS = (typing.Union, types.UnionType)
_COLLECTIONS = (tuple, list, set, frozenset)


def _types_in(annotation: Any, seen: set[Any] | None = None) -> Iterator[Any]:
    """Every type inside `annotation`: itself, its arguments, and the field types of the
    models and dataclasses it holds, each once."""
    seen = set() if seen is None else seen
    try:
        if annotation in seen:
            return
        seen.add(annotation)
    except TypeError:  # an unhashable annotation (a Literal of a list, say)
        return
    yield annotation
    if get_origin(annotation) is Annotated:
        yield from _types_in(get_args(annotation)[0], seen)
        return
    for arg in get_args(annotation):
        yield from _types_in(arg, seen)
    for field_type in _field_types(annotation):
        yield from _types_in(field_type, seen)


def _field_types(annotation: Any) -> list[Any]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [info.annotation for info in annotation.model_fields.values()]
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return [field.type for field in dataclasses.fields(annotation)]
    return []


def excluded_inside(annotation: Any) -> str | None:
    """`Model.field` of a field that a model nested in `annotation` excludes from dumps."""
    for inner in _types_in(annotation):
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            for name, info in inner.model_fields.items():
                if info.exclude or getattr(info, "exclude_if", None) is not None:
                    return f"{inner.__name__}.{name}"
    return None


def unreadable_dict_key(annotation: Any) -> Any:
    """A dict key type inside `annotation` whose JSON text pydantic cannot read back as a
    key (tuples, lists, sets, models, dataclasses), or None."""
    for inner in _types_in(annotation):
        origin = get_origin(inner)
        if origin is None or not (isinstance(origin, type) and issubclass(origin, dict)):
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
    """Whether two values of a primary key's type can have the same key text: a union
    with `str`, or `Any` (a string spells any other member's JSON)."""
    if get_origin(annotation) is Annotated:
        return texts_may_collide(get_args(annotation)[0])
    if annotation is Any or annotation is object:
        return True
    if get_origin(annotation) not in _UNIONS:
        return False
    members = get_args(annotation)
    return len(members) > 1 and any(_is_text(member) for member in members)


def _is_text(annotation: Any) -> bool:
    if get_origin(annotation) is Annotated:
        return _is_text(get_args(annotation)[0])
    return isinstance(annotation, type) and issubclass(annotation, str)


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
