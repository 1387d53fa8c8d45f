r"""Secondary indexes: which fields are indexed, and the order-preserving text of their values.

An indexed field has, per shard, a sorted set whose members all have score 0, so Redis orders
them by their bytes and ZRANGEBYLEX reads ranges of them. The member of a record is
`encode(value) + primary_key`. Every encoding is valid UTF-8 text and:

* preserves order and equality: for values Python can order, `a < b` iff
  `encode(a) < encode(b)` (UTF-8 byte order, which is also the code point order Python uses
  to compare str), and `a == b` iff `encode(a) == encode(b)`;
* ends with its only NUL character (`\0` below), so no encoding is a prefix of another:
  appending the primary key keeps the order (value first, then key), and the first NUL of a
  member is where the primary key starts (`primary_key_of`);
* starts with a band character, which keeps apart what Python cannot compare: None sorts
  before every value, NaN after every number, naive datetimes before aware ones.

| type | encoding | example |
|---|---|---|
| None | `!\0` | `None -> !\0` |
| str | `=`, the text (NUL as `\x01\x01`, `\x01` as `\x01\x02`), `\0` | `=Dickens\0` |
| int, float, Decimal | a sign band, the exponent, the digits, `\0` (below) | `42 -> >a142\0` |
| float, Decimal | `;\0` -inf, `?\0` +inf, `~\0` NaN | |
| bool | `=false\0`, `=true\0` | |
| date | `=`, ISO 8601, `\0` | `=1838-04-01\0` |
| datetime, naive | `=`, ISO 8601 to the microsecond, `\0` | `=1838-04-01T12:00:00.000000\0` |
| datetime, aware | `@`, the UTC instant in ISO 8601, `\0` | `@1838-04-01T10:00:00.000000\0` |
| UUID | `=`, its lower-case form (ordered as its int), `\0` | `=12345678-1234-...\0` |
| IntEnum, str Enum... | as their value (an int, a str, a float...) | value 3: `>a03\0` |
| other Enum | `=`, the member's name as a str, `\0` | `Color.RED -> =RED\0` |

Numbers: a non-zero number is `d.ddd x 10^e`. Its encoding is `>` (positive) or `<`
(negative), then the exponent, then the significant digits without trailing zeros, so
`Decimal("1.50")`, `1.5` and `Decimal("15E-1")` all encode as `>a015\0`, and `0.05` as
`>Z75\0`. The exponent is a letter giving its number of digits (`a` = 1, `b` = 2...) and its
digits; a negative exponent is a capital (`Z` = 1 digit, `Y` = 2...) and its digits counted
down from 9 (`-1 -> Z8`, `-2 -> Z7`, `-10 -> Y89`). A negative number writes its exponent
negated and its digits counted down from 9, then `~`, so that larger magnitudes sort lower:
`-42 -> <Z857~\0`. Zero (0, -0.0, `Decimal("-0E5")`) is `=\0`. Ints have no size limit;
floats are written as their shortest repr, which orders floats as the floats themselves.

An aware datetime is written as its UTC instant even when that falls outside the years
1-9999 (`0001-01-01T00:00+02:00 -> @0000-12-31T22:00:00.000000\0`, and `9999-12-32` the
other way), which still sorts right. Aware datetimes are compared as instants, also when
they share a time zone (Python compares those by wall time).

Plain Enums (not int, str or float ones) are compared only for equality, as in Python;
range operators and `order_by` refuse them.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import re
import types
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, get_args, get_origin

import pydantic.types
from pydantic import TypeAdapter, ValidationError

from ._codec import HashCodec
from ._exceptions import ConfigurationError, InvalidInputError, SerializationError

if TYPE_CHECKING:
    from pydantic import BaseModel
    from pydantic.fields import FieldInfo

__all__ = ["FieldIndex", "Indexed", "after", "field_indexes", "primary_key_of", "successor"]

# Bumped whenever an encoding below changes: every signature changes with it.
ENCODING_VERSION = 1

TERMINATOR = "\x00"
NONE = "!" + TERMINATOR
NAN = "~" + TERMINATOR
_MAX_CHAR = chr(0x10FFFF)
_SURROGATE = re.compile("[\ud800-\udfff]")
_DIGITS = bytes.maketrans(bytes(range(10)), b"0123456789")
_DOWN_DIGITS = bytes.maketrans(bytes(range(10)), b"9876543210")
_DOWN = str.maketrans("0123456789", "9876543210")
_INFINITIES = (float("inf"), float("-inf"))
# pydantic's constrained date types are plain classes at run time.
_PYDANTIC_TEMPORAL: dict[Any, type] = {
    pydantic.types.AwareDatetime: datetime.datetime,
    pydantic.types.NaiveDatetime: datetime.datetime,
    pydantic.types.PastDatetime: datetime.datetime,
    pydantic.types.FutureDatetime: datetime.datetime,
    pydantic.types.PastDate: datetime.date,
    pydantic.types.FutureDate: datetime.date,
}
_INDEXABLE = "str, int, float, bool, date, datetime, Decimal, Enum, UUID or Optional[...] of one"


@dataclass(frozen=True)
class Indexed:
    """Marks a model field as indexed, so `where=` and `order_by=` can use it.

    Example:
        ```py
        class Book(Model):
            _primary_key_field: str = "title"
            title: str
            author: Annotated[str, Indexed()]
            rating: Annotated[float | None, Indexed()] = None
        ```
    """


def primary_key_of(member: str) -> str:
    """The primary key in an index member: everything after the first NUL."""
    return member[member.index(TERMINATOR) + 1 :]


def successor(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with `prefix`.

    None when there is none (the prefix is empty or only U+10FFFF characters): no upper bound.
    """
    stripped = prefix.rstrip(_MAX_CHAR)
    if not stripped:
        return None
    following = ord(stripped[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates are not characters: no member holds one
        following = 0xE000
    return stripped[:-1] + chr(following)


def after(encoding: str) -> str:
    """The smallest string greater than every member `encoding + primary_key`."""
    return encoding[:-1] + chr(ord(TERMINATOR) + 1)


# -- the encodings ------------------------------------------------------------------------


def _escape(text: str) -> str:
    """Text in which NUL never appears, ordered as the original: NUL -> 01 01, 01 -> 01 02."""
    if not text.isascii() and _SURROGATE.search(text):  # isascii: a fast check, in C
        raise ValueError("it contains a lone surrogate, which is not valid UTF-8")
    return text.replace("\x01", "\x01\x02").replace("\x00", "\x01\x01")


def _encode_text(value: str) -> str:
    return "=" + _escape(value) + TERMINATOR


def _exponent(exponent: int) -> str:
    # Decimal exponents fit in 64 bits, so 19 digits at most: a letter per length suffices.
    digits = str(abs(exponent))
    if exponent >= 0:
        return chr(ord("a") + len(digits) - 1) + digits
    return chr(ord("Z") - len(digits) + 1) + digits.translate(_DOWN)


# The exponents of floats, written once: `_encode_float` looks them up (measured here, a
# fifth of its time went into writing them).
_FLOAT_EXPONENTS = {e: _exponent(e) for e in range(-400, 401)}


def _encode_decimal(number: Decimal) -> str:
    if number.is_nan():
        return NAN
    if number.is_infinite():
        return (";" if number.is_signed() else "?") + TERMINATOR
    if not number:
        return "=" + TERMINATOR
    digits = number.as_tuple().digits
    if number.is_signed():
        down = bytes(digits).translate(_DOWN_DIGITS).decode().rstrip("9")
        return "<" + _exponent(-number.adjusted()) + down + "~" + TERMINATOR
    up = bytes(digits).translate(_DIGITS).decode().rstrip("0")
    return ">" + _exponent(number.adjusted()) + up + TERMINATOR


def _encode_int(value: int) -> str:
    return _encode_decimal(Decimal(value))


def _encode_float(value: float) -> str:
    """The encoding of the Decimal of the shortest repr, which orders floats as the floats
    themselves (float() rounding is monotonic).

    Written by hand for speed: read off the repr, the digits and exponent cost a third of
    what making the Decimal does, which was the larger part of an indexed record's write.
    """
    text = float.__repr__(value)
    if not value or value != value or value in _INFINITIES:
        return _encode_decimal(Decimal(text))
    mantissa, _, exponent = text.lstrip("-").partition("e")
    whole, _, fraction = mantissa.partition(".")
    all_digits = whole + fraction
    digits = all_digits.lstrip("0")  # not empty: the value is not zero
    adjusted = int(exponent or 0) + len(whole) - 1 - (len(all_digits) - len(digits))
    if value < 0:
        down = digits.rstrip("0").translate(_DOWN)
        return "<" + _FLOAT_EXPONENTS[-adjusted] + down + "~" + TERMINATOR
    return ">" + _FLOAT_EXPONENTS[adjusted] + digits.rstrip("0") + TERMINATOR


def _encode_bool(value: bool) -> str:
    return "=true\x00" if value else "=false\x00"


def _encode_date(value: datetime.date) -> str:
    return "=" + value.isoformat() + TERMINATOR


def _encode_datetime(value: datetime.datetime) -> str:
    offset = value.utcoffset()
    naive = value.replace(tzinfo=None)
    if offset is None:  # Python compares such a value as naive too
        return "=" + naive.isoformat(timespec="microseconds") + TERMINATOR
    return "@" + _utc_text(naive, offset) + TERMINATOR


def _utc_text(naive: datetime.datetime, offset: datetime.timedelta) -> str:
    """ISO 8601 of `naive - offset`, which may fall a day outside the years 1-9999.

    Those instants are written as 0000-12-31 and 9999-12-32, which still sort right.
    """
    try:
        return (naive - offset).isoformat(timespec="microseconds")
    except OverflowError:
        pass
    if offset > datetime.timedelta(0):  # before 0001-01-01: shift a day forward, write back
        text = (naive + datetime.timedelta(days=1) - offset).isoformat(timespec="microseconds")
        return "0000-12-31" + text[10:]
    text = (naive - datetime.timedelta(days=1) - offset).isoformat(timespec="microseconds")
    return "9999-12-32" + text[10:]


def _encode_uuid(value: uuid.UUID) -> str:
    return "=" + str(uuid.UUID(int=value.int)) + TERMINATOR  # canonical, whatever the subclass


@dataclass(frozen=True)
class _Kind:
    """How one indexable type is encoded and which operators it supports."""

    name: str
    holds: Callable[[Any], bool]  # True for a value ready to encode
    encode: Callable[[Any], str]
    # For each band of values, the members of every value Python can compare with them:
    # [low, high). None and NaN have none.
    spans: dict[str, tuple[str, str]] = field(default_factory=lambda: {"=": ("=", ">")})
    ordered: bool = True  # range operators and order_by
    text: bool = False  # __startswith


# -inf, negatives, zero, positives and +inf all compare with each other.
_NUMBER_SPANS = dict.fromkeys(";<=>?", (";", "@"))
# False and True are all there is: `__gt=True` is visibly empty.
_BOOL_SPANS = {"=": ("=false" + TERMINATOR, after("=true" + TERMINATOR))}
_DATETIME_SPANS = {"=": ("=", ">"), "@": ("@", "A")}  # naive, aware


def _is_date(value: Any) -> bool:
    return isinstance(value, datetime.date) and not isinstance(value, datetime.datetime)


_KINDS: tuple[tuple[type, _Kind], ...] = (  # subclasses before their base classes
    (bool, _Kind("bool", lambda v: isinstance(v, bool), _encode_bool, _BOOL_SPANS)),
    (int, _Kind("int", lambda v: isinstance(v, int), _encode_int, _NUMBER_SPANS)),
    (float, _Kind("float", lambda v: isinstance(v, float), _encode_float, _NUMBER_SPANS)),
    (Decimal, _Kind("decimal", lambda v: isinstance(v, Decimal), _encode_decimal, _NUMBER_SPANS)),
    (str, _Kind("str", lambda v: isinstance(v, str), _encode_text, text=True)),
    (
        datetime.datetime,
        _Kind(
            "datetime",
            lambda v: isinstance(v, datetime.datetime),
            _encode_datetime,
            _DATETIME_SPANS,
        ),
    ),
    (datetime.date, _Kind("date", _is_date, _encode_date)),
    (uuid.UUID, _Kind("uuid", lambda v: isinstance(v, uuid.UUID), _encode_uuid)),
)


def _plain_enum_kind(cls: type[enum.Enum]) -> _Kind:
    def encode(value: Any) -> str:
        member = value if isinstance(value, cls) else cls(value)  # a raw value: use_enum_values
        return _encode_text(member.name or repr(member.value))

    # The encoding is the member's name: renaming members or changing values changes it.
    members = sorted((name, repr(member.value)) for name, member in cls.__members__.items())
    digest = hashlib.sha256(repr(members).encode()).hexdigest()[:8]
    return _Kind(f"enum-{digest}", lambda v: True, encode, ordered=False)


def _kind_of(cls: type) -> _Kind | None:
    if issubclass(cls, enum.Enum) and not issubclass(cls, (int, float, str, Decimal)):
        return _plain_enum_kind(cls)
    return next((kind for base, kind in _KINDS if issubclass(cls, base)), None)


# -- declaring indexes --------------------------------------------------------------------


class FieldIndex:
    """The index of one model field: how its values are encoded, what it can be asked.

    Attributes:
        name: The field.
        signature: Changes whenever the encoding of the field's values would change (another
            type, a new encoding version): an index built under another signature is stale.
        nullable: Whether the field takes None.
        ordered: Whether range operators and `order_by` apply (not to plain Enums).
        text: Whether `__startswith` applies (str fields).
    """

    def __init__(
        self, model_name: str, name: str, kind: _Kind, nullable: bool, adapter: TypeAdapter[Any]
    ) -> None:
        self.model_name = model_name
        self.name = name
        self.signature = f"{kind.name}/{ENCODING_VERSION}"
        self.nullable = nullable
        self.ordered = kind.ordered
        self.text = kind.text
        self._kind = kind
        self._adapter = adapter

    @property
    def label(self) -> str:
        """`Model.field`, for messages."""
        return f"{self.model_name}.{self.name}"

    def encode(self, value: Any) -> str:
        """The encoding of a value as a model instance holds it.

        A value of another type (assigned without validation) is validated as the field
        declares first.

        Raises:
            SerializationError: The value is not valid for the field, or cannot be encoded.
        """
        encode = self._kind.encode  # a value of the field's type: checked once, here
        if value is None or not self._kind.holds(value):
            try:
                value = self._adapter.validate_python(value)
            except ValidationError as exc:
                raise SerializationError(self._invalid(value, exc)) from None
            encode = self._encode_valid
        try:
            return encode(value)
        except (ValueError, TypeError) as exc:
            raise SerializationError(f"{self.label} cannot be indexed: {exc}") from None

    def encode_query_value(self, value: Any) -> str:
        """The encoding of a value given by a caller, validated as the field declares.

        Raises:
            InvalidInputError: The value is not valid for the field; it names the field.
        """
        try:
            valid = self._adapter.validate_python(value)
        except ValidationError as exc:
            raise InvalidInputError(self._invalid(value, exc)) from None
        except Exception as exc:  # a validator of the user's that needs the whole record
            raise InvalidInputError(
                f"{self.label}: {_describe(value)} cannot be validated on its own "
                f"({type(exc).__name__}: {exc}); a query value is validated without the "
                "rest of a record, so a validator that reads other fields (info.data) "
                "must accept that"
            ) from None
        try:
            return self._encode_valid(valid)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(f"{self.label}: {_describe(value)}: {exc}") from None

    def prefix_span(self, prefix: str) -> tuple[str, str | None]:
        """The members of every str value that starts with `prefix`: [low, high)."""
        try:
            low = "=" + _escape(prefix)
        except ValueError as exc:
            raise InvalidInputError(f"{self.label}: {_describe(prefix)}: {exc}") from None
        return low, successor(low)

    def comparable_span(self, encoding: str) -> tuple[str, str] | None:
        """The members whose values Python can order against the encoded value: [low, high).

        None for None and NaN, which order against nothing.
        """
        return self._kind.spans.get(encoding[0])

    def _encode_valid(self, value: Any) -> str:
        if value is None:
            if not self.nullable:  # a validator let it through: still not a value of the type
                raise TypeError("None is not a value of the field's type")
            return NONE
        if not self._kind.holds(value):
            raise TypeError(f"its validators returned a {type(value).__name__}")
        return self._kind.encode(value)

    def _invalid(self, value: Any, exc: ValidationError) -> str:
        problem = exc.errors()[0]["msg"]
        return f"{self.label}: {_describe(value)} is not a valid value: {problem}"

    def __repr__(self) -> str:
        return f"FieldIndex({self.label}, {self.signature})"


def field_indexes(model: type[BaseModel]) -> dict[str, FieldIndex]:
    """The indexed fields of a model, in field order.

    Raises:
        ConfigurationError: An indexed field's type cannot be indexed; it names the field.
    """
    indexes = {}
    codec: HashCodec[Any] | None = None
    for name, info in model.model_fields.items():
        if not _declares_index(info):
            continue
        codec = codec or HashCodec(model)
        kind, nullable = _field_kind(model.__name__, name, info.annotation)
        adapter = codec._column_adapter(name)  # validates as the field does, validators too
        indexes[name] = FieldIndex(model.__name__, name, kind, nullable, adapter)
    return indexes


def _declares_index(info: FieldInfo) -> bool:
    return any(isinstance(item, Indexed) for item in info.metadata) or _mentions_index(
        info.annotation
    )


def _mentions_index(annotation: Any) -> bool:
    """Indexed() anywhere inside the annotation: `Optional[Annotated[str, Indexed()]]`."""
    metadata = (
        getattr(annotation, "__metadata__", ()) if get_origin(annotation) is Annotated else ()
    )
    if any(isinstance(item, Indexed) for item in metadata):
        return True
    return any(_mentions_index(arg) for arg in get_args(annotation))


def _field_kind(model_name: str, name: str, annotation: Any) -> tuple[_Kind, bool]:
    cls, nullable = _unwrap(annotation)
    is_class = isinstance(cls, type) and get_origin(cls) is None  # list[int] is a type in 3.10
    kind = _kind_of(cls) if is_class else None
    if kind is None:
        raise ConfigurationError(
            f"{model_name}.{name}: {_type_name(annotation)} cannot be indexed; "
            f"an indexed field is a {_INDEXABLE} of them"
        )
    return kind, nullable


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The type under Annotated, Optional and NewType, and whether None is allowed."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        others = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(others) != 1:
            return annotation, False  # a union of two types: no single order
        return _unwrap(others[0])[0], True
    if hasattr(annotation, "__supertype__"):  # typing.NewType
        return _unwrap(annotation.__supertype__)
    return _PYDANTIC_TEMPORAL.get(annotation, annotation), False


def _type_name(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else repr(annotation)


def _describe(value: Any) -> str:
    """A short repr for messages: values may be huge (a long string, a 10,000-digit int)."""
    if isinstance(value, int) and value.bit_length() > 256:
        return f"an int of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + f"... ({len(text)} characters)"
