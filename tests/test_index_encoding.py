"""Index value encodings: byte order is Python's order, equal values encode equal, and the
fields that cannot be indexed are refused by name (pydantic_aioredis._indexes)."""

from __future__ import annotations

import enum
import math
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal, NewType, Optional, Union

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import AwareDatetime, BaseModel, create_model, field_validator

from pydantic_aioredis import ConfigurationError, InvalidInputError, SerializationError
from pydantic_aioredis._indexes import (
    ENCODING_VERSION,
    FieldIndex,
    Indexed,
    field_indexes,
    primary_key_of,
    successor,
)


class Level(enum.IntEnum):
    LOW = 1
    MID = 5
    HIGH = 10


class Size(str, enum.Enum):
    SMALL = "s"
    MEDIUM = "m"
    LARGE = "l"


class Ratio(float, enum.Enum):
    THIRD = 1 / 3
    HALF = 0.5
    WHOLE = 1.0


class Color(enum.Enum):
    RED = "red"
    GREEN = (0, 255, 0)
    CRIMSON = "red"  # an alias of RED: the same member


class Everything(BaseModel):
    text: Annotated[str, Indexed()]
    number: Annotated[int, Indexed()]
    real: Annotated[float, Indexed()]
    exact: Annotated[Decimal, Indexed()]
    flag: Annotated[bool, Indexed()]
    day: Annotated[date, Indexed()]
    moment: Annotated[datetime, Indexed()]
    uid: Annotated[uuid.UUID, Indexed()]
    level: Annotated[Level, Indexed()]
    size: Annotated[Size, Indexed()]
    ratio: Annotated[Ratio, Indexed()]
    color: Annotated[Color, Indexed()]
    maybe_text: Annotated[Optional[str], Indexed()] = None  # noqa: UP045 (typing.Union)
    maybe_number: Annotated[int, Indexed()] | None = None
    maybe_moment: Annotated[datetime | None, Indexed()] = None
    not_indexed: str = ""


INDEXES = field_indexes(Everything)

HOSTILE_TEXT = ["", "\x00", "\x01", "\x02", "\x00\x00", "\x01\x00", "\x00\x01", ":", "a:b", "\x7f"]
HOSTILE_TEXT += [
    "\ud7ff",
    "\ue000",
    "\U0010ffff",
    "\U0010ffff\x00",
    "😀",
    "é",
    "e\u0301",
    "a" * 100_000,
]
HOSTILE_INTS = [0, -1, 1, 2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1]
HOSTILE_INTS += [2**64 - 1, 2**64, 10**30, -(10**30), 10**5000, -(10**5000), 10**5000 + 1]
OFFSETS = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23))
ZONES = st.builds(timezone, OFFSETS)


def _equal_decimals(number: Decimal, zeros: int) -> Decimal:
    """The same finite number written with more trailing zeros: 1.5 -> 1.500."""
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    return Decimal((sign, (*digits, *([0] * zeros)), exponent - zeros))


finite_decimals = st.decimals(allow_nan=False, allow_infinity=False)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "text": st.text() | st.sampled_from(HOSTILE_TEXT) | st.text("\x00\x01\x02a", max_size=5),
    "number": st.integers() | st.sampled_from(HOSTILE_INTS) | st.integers(-(2**300), 2**300),
    "real": st.floats(allow_nan=False),
    "exact": st.decimals(allow_nan=False)
    | st.builds(_equal_decimals, finite_decimals, st.integers(0, 5))
    | st.sampled_from([Decimal("1e-999999"), Decimal("-1e999999"), Decimal("-0"), Decimal(0)]),
    "flag": st.booleans(),
    "day": st.dates(),
    "moment": st.datetimes() | st.datetimes(timezones=ZONES),
    "uid": st.uuids(),
    "level": st.sampled_from(Level),
    "size": st.sampled_from(Size),
    "ratio": st.sampled_from(Ratio),
    "maybe_text": st.text(),
    "maybe_number": st.integers() | st.sampled_from(HOSTILE_INTS),
    "maybe_moment": st.datetimes(timezones=ZONES),
}
keys = st.text(max_size=8) | st.sampled_from(["", "\x00", "\x00pk", "a\x01"])


def _member(field: str, value: Any, pk: str) -> bytes:
    return (INDEXES[field].encode(value) + pk).encode()  # UTF-8, or it raises


def _comparable(a: Any, b: Any) -> bool:
    """Whether Python orders these two values (naive and aware datetimes it does not)."""
    if isinstance(a, datetime) and isinstance(b, datetime):
        return (a.utcoffset() is None) == (b.utcoffset() is None)
    return True


@pytest.mark.parametrize("field", sorted(VALUES))
def test_member_byte_order_is_python_order_of_value_then_key(field: str) -> None:
    @given(VALUES[field], VALUES[field], keys, keys)
    @settings(deadline=None)
    def check(a: Any, b: Any, key_a: str, key_b: str) -> None:
        if not _comparable(a, b):
            return
        first, second = _member(field, a, key_a), _member(field, b, key_b)
        assert (first < second) == ((a, key_a) < (b, key_b))
        assert (first == second) == ((a, key_a) == (b, key_b))

    check()


def _all_texts(alphabet: str, longest: int) -> list[str]:
    texts = [""]
    for _ in range(longest):
        texts += [text + char for text in texts if len(text) == len(texts[-1]) for char in alphabet]
    return texts


MAGNITUDES = "0 0.01 0.015 0.1 1 1.05 1.5 1.55 10 15 105"
NUMBER_GRID = [sign * Decimal(text) for sign in (1, -1) for text in MAGNITUDES.split()]


@pytest.mark.parametrize(
    ("field", "values"),
    [
        ("text", _all_texts("\x00\x01\x02", 3)),  # every escape next to every other
        ("exact", NUMBER_GRID),  # digits that are prefixes of each other, both signs
        ("real", [float(number) for number in NUMBER_GRID]),
        ("number", [int(number) for number in NUMBER_GRID if number == int(number)]),
    ],
)
def test_every_pair_of_tricky_values_orders_as_in_python(field: str, values: list[Any]) -> None:
    for a in values:
        for b in values:
            first, second = _member(field, a, "k"), _member(field, b, "")
            assert (first < second) == ((a, "k") < (b, "")), (a, b)


@pytest.mark.parametrize(
    ("field", "value", "encoding"),
    [  # the examples that the module's docstring gives
        ("maybe_text", None, "!\x00"),
        ("text", "Dickens", "=Dickens\x00"),
        ("text", "a\x00\x01", "=a\x01\x01\x01\x02\x00"),
        ("number", 42, ">a142\x00"),
        ("real", 0.05, ">Z75\x00"),
        ("real", 1e-300, ">X6991\x00"),
        ("exact", Decimal("1.50"), ">a015\x00"),
        ("number", -42, "<Z857~\x00"),
        ("real", -0.0, "=\x00"),
        ("real", -math.inf, ";\x00"),
        ("real", math.inf, "?\x00"),
        ("real", math.nan, "~\x00"),
        ("flag", False, "=false\x00"),
        ("day", date(1838, 4, 1), "=1838-04-01\x00"),
        ("moment", datetime(1838, 4, 1, 12), "=1838-04-01T12:00:00.000000\x00"),
        (
            "moment",
            datetime(1838, 4, 1, 12, tzinfo=timezone(timedelta(hours=2))),
            "@1838-04-01T10:00:00.000000\x00",
        ),
        (
            "moment",
            datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=2))),
            "@0000-12-31T22:00:00.000000\x00",
        ),
        ("uid", uuid.UUID(int=0x12345678_1234), "=00000000-0000-0000-0000-123456781234\x00"),
        ("level", Level.HIGH, ">a11\x00"),
        ("color", Color.RED, "=RED\x00"),
    ],
)
def test_the_documented_encodings(field: str, value: Any, encoding: str) -> None:
    assert INDEXES[field].encode(value) == encoding


@given(st.sampled_from(sorted(VALUES)), st.data())
@settings(deadline=None)
def test_equal_values_encode_equal_and_unequal_ones_differ(field: str, data: Any) -> None:
    a = data.draw(VALUES[field])
    b = data.draw(VALUES[field] | st.just(a))
    assert (INDEXES[field].encode(a) == INDEXES[field].encode(b)) == (a == b)


@pytest.mark.parametrize(
    ("field", "a", "b"),
    [
        ("real", -0.0, 0.0),
        ("exact", Decimal("1.0"), Decimal("1.00")),
        ("exact", Decimal("15E-1"), Decimal("1.50")),
        ("exact", Decimal("0"), Decimal("-0E+5")),
        ("number", Level.MID, 5),
        ("number", True, 1),
        ("level", Level.HIGH, 10),
        ("size", Size.MEDIUM, "m"),
        ("text", Size.MEDIUM, "m"),
        ("ratio", Ratio.HALF, 0.5),
        ("color", Color.CRIMSON, Color.RED),
        (
            "moment",
            datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2))),
            datetime(2024, 5, 1, 10, tzinfo=timezone.utc),
        ),
        (
            "moment",
            datetime(1, 1, 1, 1, tzinfo=timezone(timedelta(hours=2))),  # 0000-12-31T23:00Z
            datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1, minutes=30))),
        ),
    ],
)
def test_equal_values_written_differently_encode_equal(field: str, a: Any, b: Any) -> None:
    assert a == b
    assert INDEXES[field].encode(a) == INDEXES[field].encode(b)


@pytest.mark.parametrize(
    ("field", "smaller", "larger"),
    [
        ("moment", datetime.max, datetime.min.replace(tzinfo=timezone.utc)),  # naive, aware
        ("real", math.inf, math.nan),
        ("exact", Decimal("Infinity"), Decimal("NaN")),
        ("exact", Decimal("-Infinity"), Decimal("-1e999999")),
        ("color", Color.GREEN, Color.RED),  # by name
    ],
)
def test_bands_that_python_cannot_order(field: str, smaller: Any, larger: Any) -> None:
    assert INDEXES[field].encode(smaller) < INDEXES[field].encode(larger)


@given(st.data())
@settings(deadline=None)
def test_none_sorts_before_every_value(data: Any) -> None:
    field = data.draw(st.sampled_from(["maybe_text", "maybe_number", "maybe_moment"]))
    value = data.draw(VALUES[field])
    assert INDEXES[field].encode(None) < INDEXES[field].encode(value)


@given(st.floats(allow_nan=False))
@settings(deadline=None)
def test_nan_sorts_after_every_float_and_equals_no_other_value(value: float) -> None:
    nan = INDEXES["real"].encode(math.nan)
    assert INDEXES["real"].encode(value) < nan
    assert nan == INDEXES["real"].encode(-math.nan)


@given(st.floats(allow_nan=False))
@settings(deadline=None)
@example(5e-324)
@example(-1.7976931348623157e308)
@example(1e22)
@example(-0.001)
def test_a_float_is_encoded_as_the_decimal_of_its_repr(value: float) -> None:
    """Floats have an encoding path of their own, for speed: it must agree with Decimals'."""
    assert INDEXES["real"].encode(value) == INDEXES["exact"].encode(Decimal(repr(value)))


@given(moment=st.datetimes(), offset=st.sampled_from([timedelta(hours=23), -timedelta(hours=23)]))
@settings(deadline=None)
@example(moment=datetime.min, offset=timedelta(hours=23))
@example(moment=datetime.max, offset=-timedelta(hours=23))
def test_aware_instants_order_even_a_day_outside_the_calendar(
    moment: datetime, offset: timedelta
) -> None:
    far = moment.replace(tzinfo=timezone(offset))
    edges = [datetime.min, datetime.max, moment]
    for other in (edge.replace(tzinfo=timezone.utc) for edge in edges):
        assert (INDEXES["moment"].encode(far) < INDEXES["moment"].encode(other)) == (far < other)


@given(st.sampled_from(sorted(VALUES)), st.data(), keys)
@settings(deadline=None)
def test_the_primary_key_follows_the_first_nul(field: str, data: Any, key: str) -> None:
    member = INDEXES[field].encode(data.draw(VALUES[field])) + key
    assert primary_key_of(member) == key


@given(st.text(), st.text())
@settings(deadline=None)
@example("a\ud7ff", "a\ue000")
@example("a\U0010ffff", "b")
@example("\U0010ffff", "\U0010ffff\U0010ffff")
def test_successor_bounds_exactly_the_strings_with_the_prefix(prefix: str, text: str) -> None:
    bound = successor(prefix)
    if text.startswith(prefix):
        assert bound is None or text < bound
    elif text > prefix:
        assert bound is not None
        assert text >= bound
    if bound is not None:
        bound.encode()  # valid UTF-8: never a surrogate


# -- declaring indexes --------------------------------------------------------------------


def test_indexed_fields_in_field_order_with_their_nullability() -> None:
    assert list(INDEXES) == [name for name in Everything.model_fields if name != "not_indexed"]
    nullable = [name for name, index in INDEXES.items() if index.nullable]
    assert nullable == ["maybe_text", "maybe_number", "maybe_moment"]
    assert field_indexes(create_model("Plain", x=(int, ...))) == {}


Email = NewType("Email", str)


def test_newtype_and_pydantic_date_types_are_indexed_as_their_base() -> None:
    class Account(BaseModel):
        email: Annotated[Email, Indexed()]
        seen: Annotated[AwareDatetime, Indexed()]

    indexes = field_indexes(Account)
    assert indexes["email"].signature == INDEXES["text"].signature
    assert indexes["seen"].signature == INDEXES["moment"].signature


@pytest.mark.parametrize(
    "annotation",
    [
        list[str],
        int | str,
        int | str | None,
        Union[int, str],  # noqa: UP007 (typing.Union)
        bytes,
        dict[str, int],
        Literal["a"],
    ],
)
def test_a_type_that_cannot_be_indexed_is_refused_naming_the_field(annotation: Any) -> None:
    model = create_model("Shelf", spine=(Annotated[annotation, Indexed()], ...))
    with pytest.raises(ConfigurationError, match=r"Shelf\.spine: .* cannot be indexed"):
        field_indexes(model)


def test_a_nested_model_and_an_indexed_list_item_are_refused() -> None:
    class Inner(BaseModel):
        x: int

    class Outer(BaseModel):
        inner: Annotated[Inner, Indexed()]

    class Tags(BaseModel):
        tags: list[Annotated[str, Indexed()]]

    with pytest.raises(ConfigurationError, match=r"Outer\.inner: Inner cannot be indexed"):
        field_indexes(Outer)
    with pytest.raises(ConfigurationError, match=r"Tags\.tags: .* cannot be indexed"):
        field_indexes(Tags)


def test_signatures_name_the_kind_and_the_encoding_version() -> None:
    signatures = {name: index.signature for name, index in INDEXES.items()}
    assert signatures["text"] == f"str/{ENCODING_VERSION}"
    assert signatures["maybe_text"] == signatures["text"] == signatures["size"]
    assert signatures["level"] == signatures["number"] == signatures["maybe_number"]
    assert signatures["moment"] == signatures["maybe_moment"]
    kinds = ["text", "number", "real", "exact", "flag", "day", "moment", "uid", "color"]
    assert len({signatures[name] for name in kinds}) == len(kinds)


def test_a_plain_enum_signature_changes_with_its_members() -> None:
    def signature(members: dict[str, Any]) -> str:
        kind = enum.Enum("Kind", members)  # type: ignore[misc]
        return field_indexes(create_model("M", k=(Annotated[kind, Indexed()], ...)))["k"].signature

    base = signature({"A": 1, "B": 2})
    assert base == signature({"A": 1, "B": 2})
    assert base != signature({"A": 1, "B": 3})
    assert base != signature({"A": 1, "C": 2})


# -- values given by callers, values held without validation ------------------------------


def _index(field: str) -> FieldIndex:
    return INDEXES[field]


def test_query_values_are_validated_as_the_field_declares() -> None:
    assert _index("real").encode_query_value(2) == _index("real").encode(2.0)
    assert _index("level").encode_query_value(10) == _index("level").encode(Level.HIGH)
    assert _index("color").encode_query_value("red") == _index("color").encode(Color.RED)
    assert _index("maybe_text").encode_query_value(None) == _index("maybe_text").encode(None)
    huge = 10**5000
    assert _index("number").encode_query_value(huge) == _index("number").encode(huge)


@pytest.mark.parametrize(
    ("field", "value"),
    [("number", "many"), ("number", 2.5), ("text", 5), ("day", "yesterday"), ("text", None)],
)
def test_a_query_value_of_the_wrong_type_names_the_field(field: str, value: Any) -> None:
    with pytest.raises(InvalidInputError, match=rf"Everything\.{field}: .* is not a valid value"):
        _index(field).encode_query_value(value)


def test_a_lone_surrogate_is_refused_not_sent_as_invalid_utf8() -> None:
    with pytest.raises(InvalidInputError, match=r"Everything\.text: .*surrogate"):
        _index("text").encode_query_value("a\ud800")
    with pytest.raises(SerializationError, match=r"Everything\.text .*surrogate"):
        _index("text").encode("a\ud800")


def test_a_huge_wrong_value_gets_a_short_message() -> None:
    with pytest.raises(InvalidInputError) as caught:
        _index("number").encode_query_value("9" * 100_000)
    assert len(str(caught.value)) < 300


def test_a_value_held_without_validation_is_validated_before_encoding() -> None:
    record = Everything.model_construct(number="5", text="x", level=5)
    assert _index("number").encode(record.number) == _index("number").encode(5)
    assert _index("level").encode(record.level) == _index("level").encode(Level.MID)
    # As the record will read back: a datetime at midnight validates as a date.
    assert _index("day").encode(datetime(2024, 1, 1)) == _index("day").encode(date(2024, 1, 1))
    with pytest.raises(SerializationError, match=r"Everything\.number: 'many' is not a valid"):
        _index("number").encode("many")
    with pytest.raises(SerializationError, match=r"Everything\.text: None is not a valid"):
        _index("text").encode(None)


def test_field_validators_apply_to_query_values() -> None:
    class Person(BaseModel):
        name: Annotated[str, Indexed()]

        @field_validator("name")
        @classmethod
        def lower(cls, value: str) -> str:
            return value.lower()

    index = field_indexes(Person)["name"]
    assert index.encode_query_value("DICKENS") == index.encode(Person(name="Dickens").name)
