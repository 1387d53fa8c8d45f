"""Query planning: a `where` dict and an `order_by` turned into ranges of index members.

`where` maps a field, optionally followed by an operator, to a value; the conditions are
ANDed:

| key | matches records whose value... |
|---|---|
| `"author"` | equals the value (None selects None) |
| `"author__in"` | equals one of the values (a list, set, tuple...) |
| `"rating__gt"`, `__gte`, `__lt`, `__lte` | compares so with the value (never None or NaN) |
| `"author__startswith"` | is a str that starts with the value (str fields) |

Each condition becomes a list of ZRANGEBYLEX ranges over the field's index members
(`encode(value) + primary_key`, see `_indexes`); conditions on one field are intersected
into one list. Values are compared as Python compares them, with these choices where Python
cannot compare: None and NaN never satisfy a range condition (Python would raise, or say
False); NaN equals nothing, so `__in` ignores NaN; an aware datetime only matches aware
records and a naive one naive records; plain Enums take equality and `__in` only.

Example:
    ```py
    plan = plan_query("Book", field_indexes(Book), {"rating__gte": 4}, "-published_on")
    plan.conditions  # {"rating": [("[>a04\\x00", "(@")]}
    ```
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._exceptions import InvalidInputError
from ._indexes import NAN, FieldIndex, after

__all__ = ["OPERATORS", "QueryPlan", "plan_query"]

OPERATORS = ("in", "gt", "gte", "lt", "lte", "startswith")

# A range of members: from `low` (inclusive, "" = no bound) to `high` (exclusive, None = no
# bound). Lists of them are kept sorted and disjoint.
_Span = tuple[str, "str | None"]
_EVERYTHING: list[_Span] = [("", None)]


@dataclass(frozen=True)
class QueryPlan:
    """What a query asks of the indexes.

    Attributes:
        conditions: For each field with a condition, the ZRANGEBYLEX bounds (`"[x"`, `"(x"`,
            `"-"`, `"+"`) of sorted, disjoint ranges of index members: a record satisfies
            the field's conditions iff its member lies in one of them. An empty list: nothing
            can match.
        order_by: The indexed field to order by, or None.
        descending: Whether `order_by` asked for descending order (`"-field"`).
    """

    conditions: dict[str, list[tuple[str, str]]]
    order_by: str | None = None
    descending: bool = False

    @property
    def never_matches(self) -> bool:
        """True when no record can match (an empty range list): no need to ask Redis."""
        return any(not ranges for ranges in self.conditions.values())

    def matches(self, field: str, member: str) -> bool:
        """Whether an index member of `field` satisfies the field's conditions, as
        ZRANGEBYLEX would decide it (a field without conditions accepts every member)."""
        ranges = self.conditions.get(field)
        if ranges is None:
            return True
        return any(_above(member, low) and _below(member, high) for low, high in ranges)


def plan_query(
    model_name: str,
    indexes: Mapping[str, FieldIndex],
    where: Mapping[str, Any] | None,
    order_by: str | None = None,
) -> QueryPlan:
    """Plan a query over a model's indexes.

    Args:
        model_name: The model, for messages.
        indexes: The model's indexed fields (`field_indexes(model)`).
        where: Conditions, ANDed: `{"author": "x", "rating__gte": 4}`; None for none.
        order_by: An indexed field, prefixed with `-` for descending order, or None.

    Raises:
        InvalidInputError: A condition names a field that is not indexed or an unknown
            operator, or has a value of the wrong type; or `order_by` is not an indexed field.
    """
    if where is not None and not isinstance(where, Mapping):
        raise InvalidInputError(f"{model_name}: where= takes a dict, got {type(where).__name__}")
    spans: dict[str, list[_Span]] = {}
    for key, value in (where or {}).items():
        index, operator = _parse_key(model_name, indexes, key)
        new = _condition(index, operator, value)
        spans[index.name] = _intersect(spans.get(index.name, _EVERYTHING), new)
    field, descending = _parse_order(model_name, indexes, order_by)
    conditions = {name: [_bounds(span) for span in found] for name, found in spans.items()}
    return QueryPlan(conditions, field, descending)


# -- reading the arguments ----------------------------------------------------------------


def _parse_key(
    model_name: str, indexes: Mapping[str, FieldIndex], key: Any
) -> tuple[FieldIndex, str]:
    if isinstance(key, str) and key in indexes:
        return indexes[key], "eq"
    field, separator, operator = key.rpartition("__") if isinstance(key, str) else ("", "", "")
    if separator and field in indexes:
        if operator in OPERATORS:
            return indexes[field], operator
        raise InvalidInputError(
            f"{model_name}.{field}: unknown operator {operator!r} in where key {key!r}; "
            f"the operators are {', '.join('__' + name for name in OPERATORS)}"
        )
    raise InvalidInputError(
        f"{model_name}: where key {key!r} is not an indexed field (with an optional operator); "
        f"{_indexed_list(indexes)}"
    )


def _parse_order(
    model_name: str, indexes: Mapping[str, FieldIndex], order_by: Any
) -> tuple[str | None, bool]:
    if order_by is None:
        return None, False
    descending = isinstance(order_by, str) and order_by.startswith("-")
    field = order_by[1:] if descending else order_by
    if not isinstance(field, str) or field not in indexes:
        raise InvalidInputError(
            f"{model_name}: order_by={order_by!r} is not an indexed field, or one prefixed "
            f"with '-' for descending order; {_indexed_list(indexes)}"
        )
    if not indexes[field].ordered:
        raise InvalidInputError(f"{indexes[field].label} cannot be ordered: {_UNORDERED}")
    return field, descending


_UNORDERED = "Python does not order plain Enum members (IntEnum and str enums are ordered)"


def _indexed_list(indexes: Mapping[str, FieldIndex]) -> str:
    if not indexes:
        return "the model has no indexed field (mark one with Annotated[..., Indexed()])"
    return "the indexed fields are " + ", ".join(indexes)


# -- conditions into spans ----------------------------------------------------------------


def _condition(index: FieldIndex, operator: str, value: Any) -> list[_Span]:
    if operator == "eq":
        return _point(index.encode_query_value(value))
    if operator == "in":
        points = [_point(index.encode_query_value(item)) for item in _items(index, value)]
        return _union([span for point in points for span in point])
    if operator == "startswith":
        return [index.prefix_span(_prefix(index, value))]
    return _comparison(index, operator, value)


def _point(encoding: str) -> list[_Span]:
    """The members of one value; none for NaN, which equals nothing."""
    if encoding == NAN:
        return []
    return [(encoding, after(encoding))]


def _comparison(index: FieldIndex, operator: str, value: Any) -> list[_Span]:
    if not index.ordered:
        raise InvalidInputError(f"{index.label}__{operator}: {_UNORDERED}")
    if value is None:
        raise InvalidInputError(f"{index.label}__{operator}: cannot compare with None")
    encoding = index.encode_query_value(value)
    comparable = index.comparable_span(encoding)
    if comparable is None:  # NaN: every comparison with it is False
        return []
    low, high = comparable
    span = {
        "gt": (after(encoding), high),
        "gte": (encoding, high),
        "lt": (low, encoding),
        "lte": (low, after(encoding)),
    }[operator]
    return [span] if _is_open(span) else []


def _items(index: FieldIndex, value: Any) -> Iterable[Any]:
    if isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(value, Iterable):
        raise InvalidInputError(
            f"{index.label}__in takes a list, tuple or set of values, got {type(value).__name__}"
        )
    return value


def _prefix(index: FieldIndex, value: Any) -> str:
    if not index.text:
        raise InvalidInputError(f"{index.label}__startswith applies to str fields only")
    if not isinstance(value, str):
        raise InvalidInputError(
            f"{index.label}__startswith takes a str, got {type(value).__name__}"
        )
    return value


# -- span arithmetic ----------------------------------------------------------------------


def _is_open(span: _Span) -> bool:
    low, high = span
    return high is None or low < high


def _union(spans: list[_Span]) -> list[_Span]:
    """Sorted, disjoint spans covering the same members (overlapping ones merged)."""
    merged: list[_Span] = []
    for low, high in sorted(spans, key=lambda span: span[0]):
        if merged and (merged[-1][1] is None or low <= merged[-1][1]):
            previous_low, previous_high = merged[-1]
            merged[-1] = (previous_low, _max_high(previous_high, high))
        else:
            merged.append((low, high))
    return merged


def _intersect(first: list[_Span], second: list[_Span]) -> list[_Span]:
    """The members in both lists (each sorted and disjoint), sorted and disjoint."""
    result: list[_Span] = []
    i = j = 0
    while i < len(first) and j < len(second):
        span = (max(first[i][0], second[j][0]), _min_high(first[i][1], second[j][1]))
        if _is_open(span):
            result.append(span)
        if _min_high(first[i][1], second[j][1]) == first[i][1]:
            i += 1
        else:
            j += 1
    return result


def _min_high(a: str | None, b: str | None) -> str | None:
    return b if a is None else a if b is None else min(a, b)


def _max_high(a: str | None, b: str | None) -> str | None:
    return None if a is None or b is None else max(a, b)


def _bounds(span: _Span) -> tuple[str, str]:
    low, high = span
    return ("[" + low if low else "-", "(" + high if high is not None else "+")


def _above(member: str, low: str) -> bool:
    if low == "-":
        return True
    return member >= low[1:] if low[0] == "[" else member > low[1:]


def _below(member: str, high: str) -> bool:
    if high == "+":
        return True
    return member <= high[1:] if high[0] == "[" else member < high[1:]
