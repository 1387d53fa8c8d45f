"""Reading field values as pydantic-aioredis 1.4 stored them.

1.4 chose a value's stored form from pydantic v1's view of the field: its `type_` (the type
inside `Optional` and inside one container) and its `shape` (single value, or a container).
For a value `v` it stored

* `str(v)` when `type_` is exactly `str`, `int` or `float` (so `hello`, `5`, `1.5`);
* else `json.dumps(v)` (dates, UUIDs, IP addresses and str enums JSON-quoted, with the model's
  `json_default` for what json cannot encode);
* and that once more through `json.dumps` when the shape is a container: a `list[str]` is
  JSON once, but a `list[list[int]]`, `dict[str, Any]`, `tuple[int, str]` or a list of
  models is JSON inside a JSON string;
* the string `None` for `None` when the field allowed None and `type_` is `str`, `int` or
  `float` (`null` otherwise), and read `None` back as None whatever the type, so a `str`
  "None" in an `Optional[str]` field read back as None too.

`LegacyValues` applies those rules backwards, from the pydantic v2 model of today, and
gives input that validates as the model: a JSON document, built from the stored texts
without decoding what is JSON already.
"""

from __future__ import annotations

import collections
import collections.abc
import json
import re
import types
import typing
from dataclasses import dataclass
from json.encoder import encode_basestring  # C-accelerated
from typing import Annotated, Any, Union, get_args, get_origin

from annotated_types import BaseMetadata, GroupedMetadata
from pydantic.fields import FieldInfo

from ._model import Model

__all__ = ["LegacyValueError", "LegacyValues", "legacy_rule"]

_PLAIN = (str, int, float)
# pydantic v1 shapes that 1.4 JSON-encoded (again): sequences and mappings.
_SEQUENCES = frozenset(
    {
        list,
        set,
        frozenset,
        collections.abc.Sequence,
        collections.abc.MutableSequence,
        collections.abc.Set,
        collections.abc.MutableSet,
    }
)
_MAPPINGS = frozenset(
    {
        dict,
        collections.abc.Mapping,
        collections.abc.MutableMapping,
        collections.defaultdict,
        collections.OrderedDict,
    }
)


class LegacyValueError(ValueError):
    """A stored value does not read by 1.4's rules (names the field)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field


@dataclass(frozen=True)
class LegacyRule:
    """How 1.4 stored one field's values."""

    json_layers: int  # 0: str(value); 1: JSON; 2: JSON inside a JSON string
    none_text: bool  # the text `None` reads as None
    number: bool  # str() of an int or float


def legacy_rule(info: FieldInfo) -> LegacyRule:
    """1.4's rule for a field, from pydantic v2's description of it."""
    annotation = info.annotation
    allows_none = annotation is Any or (info.default is None and not info.is_required())
    inner, is_optional = _without_none(annotation)
    container, inner = _container_item(inner)
    # Constraints (`constr`, `Field(max_length=...)`) made the type a subclass in v1.
    constrained = not container and _is_constrained(info.metadata)
    plain = inner in _PLAIN and not constrained
    return LegacyRule(
        json_layers=(0 if plain else 1) + (1 if container else 0),
        none_text=allows_none or is_optional,
        number=plain and not container and inner is not str,
    )


def _without_none(annotation: Any) -> tuple[Any, bool]:
    """`Optional[X]` -> (X, True); unions of several types but None stay whole."""
    if get_origin(annotation) not in (Union, types.UnionType):
        return annotation, False
    args = [arg for arg in get_args(annotation) if arg is not type(None)]
    if len(args) == len(get_args(annotation)):
        return annotation, False
    return (args[0] if len(args) == 1 else annotation), True


def _container_item(annotation: Any) -> tuple[bool, Any]:
    """(whether v1 saw a container, the type of its items or values)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in _SEQUENCES:
        return True, _unannotated(args[0]) if args else Any
    if origin in _MAPPINGS:
        return True, _unannotated(args[1]) if len(args) == 2 else Any
    if origin is tuple:
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            return True, _unannotated(args[0]) if args else Any
        return True, annotation  # a fixed tuple: its own type, never plain
    return False, annotation  # bare `list` or `dict` too: v1 saw one value


def _unannotated(item: Any) -> Any:
    """An item type; a constrained one (`conlist(constr(...))`) is never plain."""
    if get_origin(item) is Annotated:
        return item if _is_constrained(item.__metadata__) else get_args(item)[0]
    return item


def _is_constrained(metadata: typing.Iterable[Any]) -> bool:
    return any(isinstance(item, (BaseMetadata, GroupedMetadata)) for item in metadata)


class LegacyValues:
    """Turns the hash fields 1.4 stored for a record into input for the model.

    A model that overrides `json_object_hook` (to rebuild objects of its own from JSON)
    gets Python values (`decode`), decoded with its hook as 1.4 did, to validate in Python
    mode; every other model gets a JSON document (`document`), validated as our reads
    validate records, many in one call.
    """

    def __init__(self, model: type[Model]) -> None:
        self._rules = {name: legacy_rule(info) for name, info in model.model_fields.items()}
        self._json_keys = {name: encode_basestring(name) + ":" for name in self._rules}
        hook = model.json_object_hook
        base = Model.json_object_hook
        self.object_hook = None if hook.__func__ is base.__func__ else hook  # type: ignore[attr-defined]

    def document(self, stored: dict[str, str]) -> str:
        """The record as a JSON object of the model's fields found in `stored`.

        Raises:
            LegacyValueError: A value is not JSON text inside a JSON string where 1.4 wrote
                one. (Other invalid JSON surfaces when the document is validated; `check`
                then finds the field.)
        """
        parts = [
            self._json_keys[name] + self._json(name, rule, stored[name])
            for name, rule in self._rules.items()
            if name in stored
        ]
        return "{" + ",".join(parts) + "}"

    def _json(self, name: str, rule: LegacyRule, text: str) -> str:
        if rule.json_layers == 0:
            if rule.none_text and text == "None":
                return "null"
            if rule.number and _JSON_NUMBER.fullmatch(text):
                return text
            return encode_basestring(text)  # text, or a number pydantic parses (`inf`)
        if rule.json_layers == 2:
            text = self._inner(name, text)
        return "null" if rule.none_text and text == '"None"' else text

    def _inner(self, name: str, text: str) -> str:
        try:
            inner = json.loads(text)
        except ValueError as exc:
            raise LegacyValueError(name, f"invalid JSON ({exc}): {text[:80]!r}") from None
        if not isinstance(inner, str):
            raise LegacyValueError(name, f"expected JSON text inside a JSON string: {text[:80]!r}")
        return inner

    def check(self, stored: dict[str, str]) -> None:
        """Raise LegacyValueError for the first field whose stored JSON is invalid."""
        for name, rule in self._rules.items():
            if name in stored and rule.json_layers:
                self._value(name, rule, stored[name])

    def decode(self, stored: dict[str, str]) -> dict[str, Any]:
        """The model's fields found in `stored`, as Python values, decoded as 1.4 did.

        Raises:
            LegacyValueError: A value is not what 1.4 would have stored for its field.
        """
        return {
            name: self._value(name, rule, stored[name])
            for name, rule in self._rules.items()
            if name in stored
        }

    def _value(self, name: str, rule: LegacyRule, text: str) -> Any:
        value: Any = text
        for layer in range(rule.json_layers):
            if not isinstance(value, str):
                raise LegacyValueError(name, f"expected JSON text inside a JSON string: {text!r}")
            try:
                value = json.loads(value, object_hook=self.object_hook)
            except ValueError as exc:
                where = "" if layer == 0 else " inside the JSON string"
                problem = f"invalid JSON{where} ({exc}): {text[:80]!r}"
                raise LegacyValueError(name, problem) from None
        if rule.none_text and value == "None":
            return None
        if rule.number and _JSON_NUMBER.fullmatch(value):
            return json.loads(value)
        return value


# A number as JSON writes it (and as str() writes ints and finite floats).
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
