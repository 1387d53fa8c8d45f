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

The rules are those of the field's type *today*. Where the type changed since 1.4, the
user says how 1.4 stored the field (`stored_as`: "json" when its type was not exactly
`str`, `int` or `float`, or, for a container, its items' type; "text" when it was). A change
that validation does not catch is guessed at: a field that is a `str` today takes any text,
so a value 1.4 wrote as JSON for another type (`"red"` for a str Enum, `null` for None)
would read as text with the quotes. Such a value (a JSON string, or `null`) is refused, the
field named, until the user says which it is.
"""

from __future__ import annotations

import collections
import collections.abc
import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring  # C-accelerated
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import BaseMetadata, GroupedMetadata
from pydantic.fields import FieldInfo
from pydantic_core import from_json

from ._codec import _MAY_HOLD_SEVERAL_VALUES
from ._model import Model

__all__ = ["LegacyValueError", "LegacyValues", "StoredAs", "legacy_rule"]

# How 1.4 stored a field, as the user says it: "json" when its type (or, in a container,
# its items' type) was not exactly str, int or float, "text" when it was.
StoredAs = Literal["json", "text"]

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
    # A str today, whose text is not taken as it is when it looks like JSON (see above).
    suspect_json: bool = False


def legacy_rule(info: FieldInfo, stored_as: StoredAs | None = None) -> LegacyRule:
    """1.4's rule for a field, from pydantic v2's description of it (and, where its type
    changed since 1.4, from how the user says 1.4 stored it)."""
    annotation = info.annotation
    allows_none = annotation is Any or (info.default is None and not info.is_required())
    inner, is_optional = _without_none(annotation)
    container, inner = _container_item(inner)
    # Constraints (`constr`, `Field(max_length=...)`) made the type a subclass in v1.
    constrained = not container and _is_constrained(info.metadata)
    plain = inner in _PLAIN and not constrained
    if stored_as is not None:
        plain = stored_as == "text"
    single = plain and not container
    return LegacyRule(
        json_layers=(0 if plain else 1) + (1 if container else 0),
        none_text=allows_none or is_optional,
        number=single and inner in (int, float),
        suspect_json=single and stored_as is None and inner is str,
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

    def __init__(self, model: type[Model], stored_as: Mapping[str, StoredAs] | None = None) -> None:
        stored_as = stored_as or {}
        self._rules = {
            name: legacy_rule(info, stored_as.get(name))
            for name, info in model.model_fields.items()
        }
        self._model_name = model.__name__
        self._suspects = [name for name, rule in self._rules.items() if rule.suspect_json]
        self._json_keys = {name: encode_basestring(name) + ":" for name in self._rules}
        hook = model.json_object_hook
        base = Model.json_object_hook
        self.object_hook = None if hook.__func__ is base.__func__ else hook  # type: ignore[attr-defined]

    def document(self, stored: dict[str, str]) -> str:
        """The record as a JSON object of the model's fields found in `stored`.

        Raises:
            LegacyValueError: A value is not JSON text inside a JSON string where 1.4 wrote
                one, or a str field's value looks like JSON. (Other invalid JSON surfaces
                when the document is validated; `check` then finds the field.)
        """
        self._refuse_json_like(stored)
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
        if _MAY_HOLD_SEVERAL_VALUES.search(text):
            # Spliced into the record's document: text that is more than one JSON value
            # (`"1815-12-23","n":999`) would add fields to it, or overwrite others.
            _check_json(name, text)
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
        """Raise LegacyValueError for the first field whose stored value is not UTF-8 text,
        or whose JSON is invalid (or out of pydantic's range, as a number of thousands of
        digits is)."""
        for name, rule in self._rules.items():
            if name not in stored:
                continue
            text = stored[name]
            if rule.json_layers:
                self._value(name, rule, text)
            _check_json(name, self._json(name, rule, text), text)

    def decode(self, stored: dict[str, str]) -> dict[str, Any]:
        """The model's fields found in `stored`, as Python values, decoded as 1.4 did.

        Raises:
            LegacyValueError: A value is not what 1.4 would have stored for its field, or a
                str field's value looks like JSON.
        """
        self._refuse_json_like(stored)
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

    def _refuse_json_like(self, stored: dict[str, str]) -> None:
        """Raise LegacyValueError if a field that is a str today holds what 1.4 wrote as JSON
        for a field of another type (see the module's docstring), naming every such field
        of the record, so that one run tells all that `json_fields` may need."""
        found = [name for name in self._suspects if _looks_like_json(stored.get(name))]
        if not found:
            return
        text = stored[found[0]]
        names = ",".join(f"{self._model_name}.{name}" for name in found)
        raise LegacyValueError(
            found[0],
            f"{text[:80]!r} looks like JSON, which 1.4 wrote in a field typed str today only "
            "if the field had another type then (an Enum, UUID, date, Literal, constr...); "
            "name the field with --json-fields (json_fields=) if so, or with --text-fields "
            f"(text_fields=) if the text is what it says: {names}",
        )


def _check_json(name: str, text: str, stored: str | None = None) -> None:
    """Raise LegacyValueError unless `text` is one JSON value that pydantic reads (a
    number of thousands of digits is not) in UTF-8 (`stored`: the value it came from)."""
    shown = (text if stored is None else stored)[:80]
    if not text.isascii():  # bytes that are not UTF-8 arrive as lone surrogates
        try:
            text.encode()
        except UnicodeEncodeError:
            raise LegacyValueError(name, f"its value is not UTF-8 text: {shown!r}") from None
    try:
        from_json(text)
    except ValueError as exc:
        raise LegacyValueError(name, f"invalid JSON ({exc}): {shown!r}") from None


def _looks_like_json(text: str | None) -> bool:
    """Whether text is `null` or a JSON string (what 1.4 wrote for None and text-like values
    of the types it stored as JSON)."""
    if text is None or (text != "null" and not (len(text) > 1 and text[0] == text[-1] == '"')):
        return False
    try:
        json.loads(text)
    except ValueError:
        return False  # text with quotes around it
    return True


# A number as JSON writes it (and as str() writes ints and finite floats).
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
