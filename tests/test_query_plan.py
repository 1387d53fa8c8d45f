"""Query plans: a record matches a plan iff Python says its values satisfy the conditions,
and Redis's ZRANGEBYLEX returns exactly what the plan accepts (pydantic_aioredis._query)."""

from __future__ import annotations

import enum
import itertools
import math
import operator
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, create_model

from pydantic_aioredis import InvalidInputError
from pydantic_aioredis._indexes import Indexed, after, field_indexes
from pydantic_aioredis._query import QueryPlan, plan_query


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 3


class Shelf(BaseModel):
    title: Annotated[str, Indexed()]
    author: Annotated[str | None, Indexed()] = None
    year: Annotated[int, Indexed()]
    rating: Annotated[float | None, Indexed()] = None
    price: Annotated[Decimal, Indexed()]
    published: Annotated[datetime | None, Indexed()] = None
    in_stock: Annotated[bool, Indexed()]
    color: Annotated[Color, Indexed()]
    level: Annotated[Level, Indexed()]
    note: str = ""


INDEXES = field_indexes(Shelf)
PLUS_TWO = timezone(timedelta(hours=2))
UTC = timezone.utc

# Values a record can hold (hostile ones among them), queried with the same values.
POOLS: dict[str, list[Any]] = {
    "title": ["", "a", "ab", "a\x00", "a\x01", "a\x00b", "a\x01\x01", "b", "Charles", "Charlotte"],
    "author": [None, "", "Dickens", "Bronte", "Brontë", "B", "😀", "\U0010ffff", "\U0010ffffa"],
    "year": [-(2**64), -(2**63), -1, 0, 1, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 10**30],
    "rating": [None, math.nan, -math.inf, -1.5, -1.0, -0.0, 0.0, 2.0, 2.5, 1e-300, math.inf],
    "price": [Decimal(text) for text in ["-1.10", "-1.1", "-1", "0", "1.0", "1.00", "1.5", "1E+3"]],
    "published": [
        None,
        datetime(2024, 1, 1),
        datetime(2024, 1, 1, 12),
        datetime(2024, 1, 1, 12, tzinfo=PLUS_TWO),
        datetime(2024, 1, 1, 10, tzinfo=UTC),  # the same instant as the one above
        datetime(2024, 1, 1, 12, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=PLUS_TWO),
    ],
    "in_stock": [False, True],
    "color": list(Color),
    "level": list(Level),
}
# Only records can hold these: a query validates its values, which refuses them.
RECORD_ONLY: dict[str, list[Any]] = {
    "price": [Decimal("NaN"), Decimal("-Infinity"), Decimal("Infinity")]
}
# Only queries give these: validated, they become values of the field's type (2 -> 2.0).
QUERY_ONLY: dict[str, list[Any]] = {"rating": [2, -1], "level": [1, 3], "year": [True]}
PREFIXES = ["", "a", "a\x00", "a\x01", "Charl", "B", "Br", "\U0010ffff", "😀"]
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def python_says(value: Any, op: str, wanted: Any) -> bool:
    """Whether Python finds the condition true of the value; where Python cannot compare
    (None, naive against aware, NaN Decimals), it is not."""
    if op == "eq":
        return bool(value == wanted)
    if op == "in":
        return any(value == item for item in wanted)
    if op == "startswith":
        return isinstance(value, str) and value.startswith(wanted)
    try:
        return COMPARISONS[op](value, wanted)
    except (TypeError, InvalidOperation):
        return False


def _operators(field: str) -> list[str]:
    index = INDEXES[field]
    return ["eq", "in"] + list(COMPARISONS) * index.ordered + ["startswith"] * index.text


@st.composite
def conditions(draw: st.DrawFn) -> list[tuple[str, str, Any]]:
    """(field, operator, value) triples, at most one per field and operator."""
    pairs = st.sampled_from(sorted(POOLS)).flatmap(
        lambda field: st.tuples(st.just(field), st.sampled_from(_operators(field)))
    )
    chosen = draw(st.lists(pairs, max_size=3, unique=True))
    return [(field, op, draw(_query_value(field, op))) for field, op in chosen]


def _query_value(field: str, op: str) -> st.SearchStrategy[Any]:
    values = st.sampled_from(POOLS[field] + QUERY_ONLY.get(field, []))
    if op == "in":
        return st.lists(values, max_size=4)
    if op == "startswith":
        return st.sampled_from(PREFIXES)
    if op in COMPARISONS:
        return values.filter(lambda value: value is not None)
    return values


def _where(triples: list[tuple[str, str, Any]]) -> dict[str, Any]:
    return {field if op == "eq" else f"{field}__{op}": value for field, op, value in triples}


records = st.fixed_dictionaries(
    {field: st.sampled_from(pool + RECORD_ONLY.get(field, [])) for field, pool in POOLS.items()}
)
primary_keys = st.text(max_size=6) | st.sampled_from(["", "\x00", "\x01", "\U0010ffff"])


def _member(field: str, value: Any, pk: str) -> str:
    return INDEXES[field].encode(value) + pk


def _assert_sorted_and_disjoint(plan: QueryPlan) -> None:
    for ranges in plan.conditions.values():
        for low, high in ranges:
            assert low == "-" or low.startswith("[")
            assert high == "+" or high.startswith("(")
            assert low == "-" or high == "+" or low[1:] < high[1:]
        for (_, high), (low, _) in itertools.pairwise(ranges):
            assert high[1:] <= low[1:]


def _single_conditions() -> list[tuple[str, str, Any]]:
    """Every operator of every field with every value of its pool (lists: pairs of them)."""
    triples = []
    for field, pool in POOLS.items():
        values = pool + QUERY_ONLY.get(field, [])
        for op in _operators(field):
            if op == "in":
                triples += [(field, op, [a, b]) for a in values for b in values]
            elif op == "startswith":
                triples += [(field, op, prefix) for prefix in PREFIXES]
            else:
                triples += [(field, op, v) for v in values if v is not None or op == "eq"]
    return triples


@pytest.mark.parametrize("field", sorted(POOLS))
def test_every_single_condition_against_every_value(field: str) -> None:
    values = POOLS[field] + RECORD_ONLY.get(field, [])
    for _, op, wanted in (t for t in _single_conditions() if t[0] == field):
        plan = plan_query("Shelf", INDEXES, _where([(field, op, wanted)]))
        for value in values:
            planned = plan.matches(field, _member(field, value, "pk"))
            assert planned == python_says(value, op, wanted), (op, wanted, value)


@given(conditions(), st.lists(st.tuples(records, primary_keys), min_size=1, max_size=20))
@settings(max_examples=400, deadline=None)
def test_a_record_matches_the_plan_iff_python_says_so(
    triples: list[tuple[str, str, Any]], rows: list[tuple[dict[str, Any], str]]
) -> None:
    plan = plan_query("Shelf", INDEXES, _where(triples))
    _assert_sorted_and_disjoint(plan)
    for record, pk in rows:
        planned = all(plan.matches(f, _member(f, record[f], pk)) for f in INDEXES)
        expected = all(python_says(record[f], op, value) for f, op, value in triples)
        assert planned == expected, (record, plan)
        assert not (plan.never_matches and expected)


@given(conditions(), st.lists(records, min_size=200, max_size=300), primary_keys)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_zrangebylex_returns_exactly_the_members_the_plan_accepts_in_byte_order(
    redis_url: str, triples: list[tuple[str, str, Any]], rows: list[dict[str, Any]], pk: str
) -> None:
    plan = plan_query("Shelf", INDEXES, _where(triples))
    with redis.Redis.from_url(redis_url) as client:
        for field in INDEXES:
            members = {_member(field, row[field], f"{i}:{pk}") for i, row in enumerate(rows)}
            key = f"index:{field}"
            client.delete(key)
            client.zadd(key, dict.fromkeys(members, 0))
            in_redis = [member.decode() for member in client.zrange(key, 0, -1)]
            assert in_redis == sorted(members, key=str.encode) == sorted(members)
            found = [
                member.decode()
                for low, high in plan.conditions.get(field, [("-", "+")])
                for member in client.zrangebylex(key, low, high)
            ]
            assert found == [member for member in in_redis if plan.matches(field, member)]


# -- the shape of plans -------------------------------------------------------------------


def test_order_by_takes_an_indexed_field_and_a_minus_for_descending() -> None:
    assert plan_query("Shelf", INDEXES, None, "year") == QueryPlan({}, "year", False)
    assert plan_query("Shelf", INDEXES, {}, "-published") == QueryPlan({}, "published", True)
    assert plan_query("Shelf", INDEXES, {}) == QueryPlan({}, None, False)


def test_conditions_on_one_field_are_intersected_into_one_list() -> None:
    plan = plan_query("Shelf", INDEXES, {"year__gte": 0, "year__lt": 10, "year__in": [5, 20]})
    assert list(plan.conditions) == ["year"]
    five = INDEXES["year"].encode(5)
    assert plan.conditions["year"] == [("[" + five, "(" + after(five))]


@pytest.mark.parametrize(
    "where",
    [
        {"rating": math.nan},
        {"rating__in": [math.nan]},
        {"rating__gt": math.nan},
        {"rating__lte": -math.nan},
        {"year__in": []},
        {"year__gt": 5, "year__lt": 3},
        {"title__startswith": "a", "title": "b"},
        {"in_stock__gt": True},
    ],
)
def test_nothing_matching_is_visible_in_the_plan(where: dict[str, Any]) -> None:
    assert plan_query("Shelf", INDEXES, where).never_matches


@pytest.mark.parametrize("where", [{}, {"year": 1}, {"author": None}, {"title__startswith": ""}])
def test_a_plan_that_can_match_says_so(where: dict[str, Any]) -> None:
    assert not plan_query("Shelf", INDEXES, where).never_matches


# -- errors -------------------------------------------------------------------------------


INDEXED = "the indexed fields are title, author, year, rating, price, published, in_stock"


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"titel": "x"}, rf"Shelf: where key 'titel' is not an indexed field.*; {INDEXED}"),
        ({"note": "x"}, rf"Shelf: where key 'note' is not an indexed field.*; {INDEXED}"),
        ({"note__in": ["x"]}, rf"where key 'note__in' is not an indexed field.*; {INDEXED}"),
        ({5: "x"}, r"Shelf: where key 5 is not an indexed field"),
        ({"title__contains": "x"}, r"Shelf\.title: unknown operator 'contains' .*__startswith"),
        ({"title__": "x"}, r"Shelf\.title: unknown operator ''"),
        ({"year": "many"}, r"Shelf\.year: 'many' is not a valid value: Input should be"),
        ({"year__in": [1, "many"]}, r"Shelf\.year: 'many' is not a valid value"),
        ({"year__gte": 1.5}, r"Shelf\.year: 1\.5 is not a valid value"),
        ({"title": None}, r"Shelf\.title: None is not a valid value"),
        ({"color": "purple"}, r"Shelf\.color: 'purple' is not a valid value"),
        ({"published__lt": "soon"}, r"Shelf\.published: 'soon' is not a valid value"),
        ({"year__startswith": "1"}, r"Shelf\.year__startswith applies to str fields only"),
        ({"title__startswith": 1}, r"Shelf\.title__startswith takes a str, got int"),
        ({"title__startswith": "\ud800"}, r"Shelf\.title: .*lone surrogate"),
        ({"year__in": 5}, r"Shelf\.year__in takes a list, tuple or set of values, got int"),
        ({"title__in": "abc"}, r"Shelf\.title__in takes a list, tuple or set of values, got str"),
        ({"year__gt": None}, r"Shelf\.year__gt: cannot compare with None"),
        ({"author__lte": None}, r"Shelf\.author__lte: cannot compare with None"),
        ({"color__gt": Color.RED}, r"Shelf\.color__gt: Python does not order plain Enum"),
    ],
)
def test_a_bad_condition_names_the_field_and_what_is_wrong(
    where: dict[Any, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        plan_query("Shelf", INDEXES, where)


@pytest.mark.parametrize(
    ("order_by", "message"),
    [
        ("titel", rf"Shelf: order_by='titel' is not an indexed field.*; {INDEXED}"),
        ("-note", r"Shelf: order_by='-note' is not an indexed field"),
        ("-", r"Shelf: order_by='-' is not an indexed field"),
        ("", r"Shelf: order_by='' is not an indexed field"),
        (5, r"Shelf: order_by=5 is not an indexed field"),
        ("color", r"Shelf\.color cannot be ordered: Python does not order plain Enum"),
    ],
)
def test_a_bad_order_by_names_what_can_be_ordered(order_by: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        plan_query("Shelf", INDEXES, None, order_by)


def test_where_must_be_a_dict() -> None:
    with pytest.raises(InvalidInputError, match=r"Shelf: where= takes a dict, got list"):
        plan_query("Shelf", INDEXES, ["title"])  # type: ignore[arg-type]


def test_a_model_without_indexes_says_how_to_declare_one() -> None:
    indexes = field_indexes(create_model("Plain", x=(int, ...)))
    with pytest.raises(InvalidInputError, match=r"Plain: .*\(mark one with Annotated\[\.\.\., Ind"):
        plan_query("Plain", indexes, {"x": 1})
