"""Serialization: what is stored for each type, and that it reads back equal."""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import re
import uuid
import warnings
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

import pydantic.dataclasses
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Secret,
    SecretBytes,
    SecretStr,
    computed_field,
    field_serializer,
    field_validator,
    validator,
)
from pydantic.fields import FieldInfo
from typing_extensions import NotRequired, TypeAliasType, TypedDict

from pydantic_aioredis import (
    ConfigurationError,
    CorruptRecordError,
    InvalidInputError,
    Model,
    SerializationError,
    Store,
)
from tests.keys import key


class Colour(enum.Enum):
    RED = "red"
    BLUE = 2


class Size(str, enum.Enum):
    SMALL = "s"
    LARGE = "l"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Point(BaseModel):
    x: int
    y: int
    label: str | None = None


class Everything(Model):
    _primary_key_field: str = "id"
    id: str
    text: str = "plain"
    number: int = 0
    ratio: float = 0.0
    flag: bool = False
    amount: Decimal = Decimal("0")
    day: date = date(2000, 1, 1)
    moment: datetime = datetime(2000, 1, 1, tzinfo=timezone.utc)
    clock: time = time(0, 0)
    span: timedelta = timedelta(0)
    ident: uuid.UUID = uuid.UUID(int=0)
    ip4: ipaddress.IPv4Address = ipaddress.IPv4Address("127.0.0.1")
    ip6: ipaddress.IPv6Address = ipaddress.IPv6Address("::1")
    net4: ipaddress.IPv4Network = ipaddress.IPv4Network("10.0.0.0/8")
    net6: ipaddress.IPv6Network = ipaddress.IPv6Network("fd00::/8")
    colour: Colour = Colour.RED
    size: Size = Size.SMALL
    level: Level = Level.LOW
    kind: Literal["a", "b"] = "a"
    items: list[int] = []
    unique: set[str] = set()
    frozen: frozenset[int] = frozenset()
    pair: tuple[int, str] = (0, "")
    many: tuple[float, ...] = ()
    mapping: dict[str, list[int]] = {}
    point: Point = Point(x=0, y=0)
    points: list[Point] = []
    maybe_text: str | None = None
    maybe_number: int | None = None
    either: int | str = 0
    blob: bytes = b""


@pytest.fixture(autouse=True)
def _register(store: Store) -> None:
    store.register_model(Everything)


FULL = Everything(
    id="full",
    text='héllo, wörld \n\t "quoted" \\ {json}',
    number=-(2**62),
    ratio=1 / 3,
    flag=True,
    amount=Decimal("12345.678900"),
    day=date(1937, 9, 21),
    moment=datetime(
        2024, 2, 29, 13, 45, 1, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30))
    ),
    clock=time(23, 59, 59, 999),
    span=timedelta(days=2, seconds=3, microseconds=4),
    ident=uuid.uuid4(),
    ip4=ipaddress.IPv4Address("192.168.1.20"),
    ip6=ipaddress.IPv6Address("2001:db8::1"),
    net4=ipaddress.IPv4Network("192.168.0.0/16"),
    net6=ipaddress.IPv6Network("2001:db8::/32"),
    colour=Colour.BLUE,
    size=Size.LARGE,
    level=Level.HIGH,
    kind="b",
    items=[1, 2, 3],
    unique={"a", "b"},
    frozen=frozenset({5, 6}),
    pair=(7, "seven"),
    many=(1.5, -2.0),
    mapping={"k": [1, 2]},
    point=Point(x=1, y=2, label="p"),
    points=[Point(x=3, y=4)],
    maybe_text="None",
    maybe_number=None,
    either="text",
    blob=b"bytes",
)


async def test_every_supported_type_round_trips() -> None:
    await Everything.insert(FULL)
    assert await Everything.select() == [FULL]


async def test_columns_of_every_type_are_typed() -> None:
    await Everything.insert(FULL)
    names = list(Everything.model_fields)
    (row,) = await Everything.select(columns=names) or []
    assert row == {name: getattr(FULL, name) for name in names}


async def test_none_and_the_string_none_stay_apart(raw: redis.Redis) -> None:
    await Everything.insert(Everything(id="a", maybe_text=None))
    await Everything.insert(Everything(id="b", maybe_text="None"))
    assert raw.hget(key("everything:a"), "maybe_text") == "null"
    assert raw.hget(key("everything:b"), "maybe_text") == '"None"'
    rows = await Everything.select(columns=["maybe_text"])
    assert rows == [{"maybe_text": None}, {"maybe_text": "None"}]


async def test_plain_values_are_readable_in_redis_cli(raw: redis.Redis) -> None:
    await Everything.insert(FULL)
    stored = raw.hgetall(key("everything:full"))
    assert stored["text"] == FULL.text  # as is, no quotes
    assert stored["number"] == str(-(2**62))
    assert stored["flag"] == "true"
    assert stored["day"] == "1937-09-21"
    assert stored["moment"] == "2024-02-29T13:45:01.123456+05:30"
    assert stored["amount"] == "12345.678900"
    assert stored["ident"] == str(FULL.ident)
    assert stored["ip4"] == "192.168.1.20"
    assert stored["size"] == "l"
    assert stored["items"] == "[1,2,3]"
    assert set(stored) == set(Everything.model_fields)


class Custom(Model):
    _primary_key_field: str = "id"
    id: str
    cents: Annotated[int, PlainSerializer(lambda v: f"{v / 100:.2f}", return_type=str)] = 0
    upper: str = ""
    when: datetime = datetime(2000, 1, 1, tzinfo=timezone.utc)

    @field_validator("cents", mode="before")
    @classmethod
    def parse_money(cls, value: Any) -> Any:
        return round(float(value) * 100) if isinstance(value, str) else value

    @field_validator("upper")
    @classmethod
    def shout(cls, value: str) -> str:
        return value.upper()

    @field_serializer("when")
    def as_timestamp(self, value: datetime) -> float:
        return value.timestamp()


async def test_custom_serializers_and_validators_are_honoured(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Custom)
    item = Custom(id="c", cents=1999, upper="quiet", when=datetime(2020, 1, 1, tzinfo=timezone.utc))
    await Custom.insert(item)
    assert raw.hget(key("custom:c"), "cents") == '"19.99"'
    assert raw.hget(key("custom:c"), "when") == "1577836800.0"
    assert await Custom.select() == [item]
    assert await Custom.select(columns=["cents", "upper"]) == [{"cents": 1999, "upper": "QUIET"}]


class Strict(Model):
    model_config = ConfigDict(strict=True)
    _primary_key_field: str = "id"
    id: str
    day: date
    items: tuple[int, ...]


async def test_strict_models_round_trip(store: Store) -> None:
    store.register_model(Strict)
    item = Strict(id="s", day=date(2020, 5, 6), items=(1, 2))
    await Strict.insert(item)
    assert await Strict.select() == [item]


class Aliased(Model):
    _primary_key_field: str = "id"
    id: str = Field(alias="ID")
    hidden: str = Field(default="h", exclude=True)


async def test_aliases_and_excluded_fields_are_stored_under_field_names(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Aliased)
    item = Aliased(ID="x", hidden="secret")
    await Aliased.insert(item)
    assert raw.hgetall(key("aliased:x")) == {"id": "x", "hidden": "secret"}
    assert await Aliased.select() == [item]


class Gadget:
    """A class pydantic cannot serialize by itself."""

    def __init__(self, name: str, size: int) -> None:
        self.name, self.size = name, size

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Gadget) and (self.name, self.size) == (other.name, other.size)

    __hash__ = None  # type: ignore[assignment]


class Workshop(Model):
    _primary_key_field: str = "name"
    name: str
    gadget: Gadget
    spares: list[Gadget] = []

    @classmethod
    def json_default(cls, obj: Any) -> Any:
        if isinstance(obj, Gadget):
            return {"__gadget__": True, "name": obj.name, "size": obj.size}
        return super().json_default(obj)

    @classmethod
    def json_object_hook(cls, obj: dict[str, Any]) -> Any:
        if obj.get("__gadget__"):
            return Gadget(obj["name"], obj["size"])
        return obj


async def test_json_default_and_object_hook_store_arbitrary_types(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Workshop)
    shop = Workshop(name="w", gadget=Gadget("saw", 3), spares=[Gadget("nail", 1)])
    await Workshop.insert(shop)
    assert raw.hget(key("workshop:w"), "gadget") == '{"__gadget__":true,"name":"saw","size":3}'
    assert await Workshop.select() == [shop]
    assert await Workshop.select(columns=["gadget"]) == [{"gadget": Gadget("saw", 3)}]


class NoHooks(Model):
    _primary_key_field: str = "name"
    name: str
    gadget: Gadget


async def test_an_unserializable_value_is_rejected_before_anything_is_written(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(NoHooks)
    good = NoHooks(name="good", gadget=Gadget("a", 1))
    with pytest.raises(SerializationError, match=r"NoHooks\.gadget"):
        await NoHooks.insert([Everything] and [good])
    assert raw.keys("*") == []


async def test_an_unserializable_auto_synced_value_is_reported_and_dropped(store: Store) -> None:
    class Loose(Model):
        _primary_key_field: str = "name"
        _auto_sync: bool = True
        name: str
        thing: Any = None

    store.register_model(Loose)
    loose = Loose(name="l")
    await Loose.insert(loose)
    loose.thing = Gadget("x", 1)
    with pytest.raises(SerializationError, match=r"Loose\.thing"):
        await store.flush()
    assert len(store.pending) == 0  # it can never be stored: not retried forever
    assert await Loose.select() == [Loose(name="l")]


def test_a_model_serializer_is_refused_at_registration(store: Store) -> None:
    from pydantic import model_serializer

    class Whole(Model):
        _primary_key_field: str = "id"
        id: str

        @model_serializer
        def dump(self) -> str:
            return self.id

    with pytest.raises(ConfigurationError, match="model_serializer"):
        store.register_model(Whole)


async def test_a_stored_value_of_the_wrong_type_names_model_key_and_field(
    raw: redis.Redis,
) -> None:
    await Everything.insert([Everything(id="a"), Everything(id="b")])
    raw.hset(key("everything:b"), "number", "not a number")
    with pytest.raises(CorruptRecordError) as caught:
        await Everything.select()
    error = caught.value
    assert (error.model_name, error.key, error.field) == (
        "Everything",
        key("everything:b"),
        "number",
    )
    assert key("everything:b") in str(error)


async def test_invalid_json_and_missing_fields_are_named(raw: redis.Redis) -> None:
    await Everything.insert(Everything(id="a"))
    raw.hset(key("everything:a"), "items", "[1, 2")
    with pytest.raises(CorruptRecordError, match=r"'items'.*invalid JSON"):
        await Everything.select()
    await Everything.insert(Everything(id="a"))
    raw.hdel(key("everything:a"), "id")
    with pytest.raises(CorruptRecordError, match=r"'id'.*missing"):
        await Everything.select(ids=["a"])


async def test_a_key_of_another_type_is_named(raw: redis.Redis) -> None:
    await Everything.insert(Everything(id="a"))
    raw.delete(key("everything:a"))
    raw.set(key("everything:a"), "a string")
    with pytest.raises(CorruptRecordError, match=re.escape(key("everything:a")) + ".*not a hash"):
        await Everything.select()


# -- property-based round trip ------------------------------------------------------------

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
floats = st.floats(allow_nan=False, width=64)
# ISO 8601 carries a UTC offset in whole minutes, not a zone name: what pydantic's JSON keeps.
offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))


class Random(Model):
    _primary_key_field: str = "id"
    id: str
    text: str
    maybe: str | None
    number: int
    ratio: float
    flag: bool
    amount: Decimal
    moment: datetime
    tags: list[str]
    scores: dict[str, float]
    point: Point | None
    level: Level
    either: int | str


randoms = st.builds(
    Random,
    # Keys the model's own keys take are refused (see test_keys); any other text is a key.
    id=texts.filter(
        lambda s: (
            s not in ("", "__index", "__expiry")
            and not s.startswith(("__index:", "__values:", "__write:"))
        )
    ),
    text=texts,
    maybe=st.none() | texts,
    number=st.integers(-(2**63), 2**63),
    ratio=floats,
    flag=st.booleans(),
    amount=st.decimals(allow_nan=False, allow_infinity=False, places=4),
    moment=st.datetimes(timezones=offsets | st.none()),
    tags=st.lists(texts, max_size=4),
    scores=st.dictionaries(texts, floats, max_size=3),
    point=st.none() | st.builds(Point, x=st.integers(), y=st.integers(), label=st.none() | texts),
    level=st.sampled_from(Level),
    either=st.integers() | texts,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(item=randoms)
async def test_round_trip_property(store: Store, item: Random) -> None:
    store.register_model(Random)
    await Random.insert(item)
    assert await Random.select(ids=[item.id]) == [item]
    await Random.delete()


async def test_a_bad_record_in_a_long_read_stops_it_cleanly(raw: redis.Redis) -> None:
    await Everything.insert([Everything(id=f"r{i:05d}") for i in range(1_200)])
    raw.hset(key("everything:r00001"), "number", "NaN-ish")
    with pytest.raises(CorruptRecordError, match=re.escape(key("everything:r00001"))):
        await Everything.select()  # the next chunk's read was already under way
    assert len(await Everything.select(skip=2) or []) == 1_198


# Values pydantic would dump in a form that does not read back: stored as themselves, or
# refused when the model is registered.


class Login(Model):
    _primary_key_field: str = "user"
    user: str
    password: SecretStr
    pin: SecretBytes | None = None
    token: Secret[int] | None = None


async def test_secrets_are_stored_as_themselves(store: Store, raw: redis.Redis) -> None:
    store.register_model(Login)
    login = Login(user="ann", password=SecretStr("hunter2"), pin=SecretBytes(b"1234"), token=7)
    await Login.insert(login)
    assert raw.hget(key("login:ann"), "password") == '"hunter2"'
    (back,) = await Login.select() or []
    assert back.password.get_secret_value() == "hunter2"
    assert back.pin is not None
    assert back.pin.get_secret_value() == b"1234"
    assert back.token is not None
    assert back.token.get_secret_value() == 7
    assert repr(back.password) == "SecretStr('**********')"  # still a secret in Python
    (column,) = await Login.select(columns=["password"]) or []
    assert column["password"].get_secret_value() == "hunter2"
    async with back.update():
        back.password = SecretStr("correct horse")
    assert raw.hget(key("login:ann"), "password") == '"correct horse"'


class Vault(Model):  # pydantic dumps secrets masked
    _primary_key_field: str = "id"
    id: str
    keys: list[SecretStr] = []


class Note(BaseModel):
    text: str
    draft: str = Field("", exclude=True)


class Notebook(Model):  # pydantic leaves Note.draft out of the JSON: it would read back as ""
    _primary_key_field: str = "id"
    id: str
    notes: list[Note] = []


class Grid(Model):  # pydantic writes the key (1, 2) as "1,2", which it cannot read back
    _primary_key_field: str = "id"
    id: str
    cells: dict[tuple[int, int], str] = {}


@dataclasses.dataclass
class Credentials:
    user: str
    password: SecretStr


class Logins(Model):  # a secret inside a dataclass is dumped masked too
    _primary_key_field: str = "id"
    id: str
    logins: list[Credentials] = []


class Draft(TypedDict):
    text: str
    notes: Annotated[str, Field(exclude=True)]


class Drafts(Model):  # TypedDicts exclude too
    _primary_key_field: str = "id"
    id: str
    draft: Draft | None = None


class Sealed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    a: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def double(self) -> int:
        return 2 * self.a


class Envelope(Model):  # Sealed's JSON holds `double`, which Sealed then refuses
    _primary_key_field: str = "id"
    id: str
    sealed: Sealed | None = None


Cells = TypeAliasType("Cells", dict[tuple[int, int], str])
K = TypeVar("K")
ByKey = TypeAliasType("ByKey", dict[K, int], type_params=(K,))


class GenericGrid(Model):  # the alias given the tuple key
    _primary_key_field: str = "id"
    id: str
    cells: ByKey[tuple[int, int]] = {}


class MappedGrid(Model):
    _primary_key_field: str = "id"
    id: str
    cells: Mapping[tuple[int, int], str] = {}


@dataclasses.dataclass
class Hidden:
    shown: int
    hidden: Annotated[int, Field(exclude=True)] = 0


class Hiding(Model):  # a plain dataclass's field excluded through Annotated
    _primary_key_field: str = "id"
    id: str
    hidden: Hidden | None = None


class MaybeNotes(TypedDict):
    text: str
    notes: NotRequired[Annotated[str, Field(exclude=True)]]


class Maybes(Model):  # NotRequired around the exclusion
    _primary_key_field: str = "id"
    id: str
    maybe: MaybeNotes | None = None


@pydantic.dataclasses.dataclass(config=ConfigDict(extra="forbid"))
class SealedData:
    a: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def double(self) -> int:
        return 2 * self.a


class DataEnvelope(Model):
    _primary_key_field: str = "id"
    id: str
    sealed: SealedData | None = None


class AliasedGrid(Model):
    _primary_key_field: str = "id"
    id: str
    cells: Cells = {}


@pytest.mark.parametrize(
    ("model", "problem"),
    [
        (Vault, r"Vault\.keys.*secrets"),
        (Notebook, r"Notebook\.notes holds Note\.draft"),
        (Grid, r"Grid\.cells.*keyed by tuple\[int, int\]"),
        (Logins, r"Logins\.logins.*secrets"),
        (Drafts, r"Drafts\.draft holds Draft\.notes"),
        (Envelope, r"Envelope\.sealed holds Sealed, which has computed fields"),
        (AliasedGrid, r"AliasedGrid\.cells.*keyed by tuple\[int, int\]"),
        (GenericGrid, r"GenericGrid\.cells.*keyed by tuple\[int, int\]"),
        (MappedGrid, r"MappedGrid\.cells.*keyed by tuple\[int, int\]"),
        (Hiding, r"Hiding\.hidden holds Hidden\.hidden"),
        (Maybes, r"Maybes\.maybe holds MaybeNotes\.notes"),
        (DataEnvelope, r"DataEnvelope\.sealed holds SealedData, which has computed fields"),
    ],
    ids=[
        "secret inside a list",
        "nested exclusion",
        "tuple keys",
        "secret in a dataclass",
        "exclusion in a TypedDict",
        "computed fields refused by their model",
        "tuple keys behind a type alias",
        "tuple keys given to a generic alias",
        "tuple keys of a Mapping",
        "exclusion in a plain dataclass",
        "exclusion under NotRequired",
        "computed fields refused by their dataclass",
    ],
)
def test_a_type_that_would_not_read_back_is_refused_at_registration(
    store: Store, model: type[Model], problem: str
) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        store.register_model(model)


def test_extra_allow_is_refused_at_registration(store: Store) -> None:
    class Loose(Model):
        model_config = ConfigDict(extra="allow")
        _primary_key_field: str = "id"
        id: str

    with pytest.raises(ConfigurationError, match="extra='allow'"):
        store.register_model(Loose)


class Crossed(Model):
    _primary_key_field: str = "id"
    id: str
    a: str = Field(alias="b")
    b: str = Field(alias="a")


async def test_an_alias_that_is_another_fields_name_does_not_swap_values(store: Store) -> None:
    store.register_model(Crossed)
    record = Crossed(id="x", b="A", a="B")  # aliases: a is "b", b is "a"
    assert (record.a, record.b) == ("A", "B")
    await Crossed.insert(record)
    (back,) = await Crossed.select() or []
    assert (back.a, back.b) == ("A", "B")
    assert await Crossed.select(columns=["a", "b"]) == [{"a": "A", "b": "B"}]


async def test_a_value_of_the_wrong_type_is_refused_at_write_time(
    store: Store, raw: redis.Redis
) -> None:
    class Counted(Model):
        _primary_key_field: str = "id"
        id: str
        number: int = 0

    store.register_model(Counted)
    counted = Counted(id="c")
    counted.number = "many"  # type: ignore[assignment]  # no validate_assignment: accepted
    with pytest.raises(SerializationError, match=r"Counted\.number"):
        await counted.save()
    with pytest.raises(SerializationError, match=r"Counted\.number"):
        await Counted.insert(counted)
    assert raw.exists(key("counted:c")) == 0
    assert await Counted.select() is None


class StrictWorkshop(Workshop):
    model_config = ConfigDict(strict=True)
    opened: date = date(2024, 1, 2)
    shape: tuple[int, int] = (1, 2)


async def test_hooks_and_strict_mode_read_back_what_they_wrote(store: Store) -> None:
    store.register_model(StrictWorkshop)
    shop = StrictWorkshop(name="s", gadget=Gadget("saw", 3), spares=[])
    await StrictWorkshop.insert(shop)
    assert await StrictWorkshop.select() == [shop]
    assert await StrictWorkshop.select(columns=["opened", "shape"]) == [
        {"opened": date(2024, 1, 2), "shape": (1, 2)}
    ]


@pytest.mark.parametrize("text", ["lone \ud800 surrogate", "\udfff"])
async def test_text_utf8_cannot_carry_is_a_serialization_error(
    store: Store, raw: redis.Redis, text: str
) -> None:
    class Plain(Model):
        _primary_key_field: str = "id"
        id: str
        text: str = ""
        tags: list[str] = []

    store.register_model(Plain)
    for bad in (Plain(id="p", text=text), Plain(id="p", tags=[text])):
        with pytest.raises(SerializationError, match="Plain"):
            await Plain.insert(bad)
    with pytest.raises(SerializationError, match=r"Plain\.id cannot be stored"):
        await Plain.insert(Plain(id=text))
    with pytest.raises(InvalidInputError, match="cannot be stored"):
        await Plain.select(ids=[text])
    assert raw.keys("*") == []


async def test_a_dict_key_utf8_cannot_carry_is_refused_not_replaced(store: Store) -> None:
    class Tagged(Model):
        _primary_key_field: str = "id"
        id: str
        meta: dict[str, Any] = {}
        inner: list[dict[str, int]] = []

    store.register_model(Tagged)
    for bad in (Tagged(id="t", meta={"\udc00": "x"}), Tagged(id="t", inner=[{"\ud800k": 1}])):
        with pytest.raises(SerializationError, match=r"Tagged\.(meta|inner) cannot be stored"):
            await Tagged.insert(bad)
    fine = Tagged(id="t", meta={"\ufffd": "a real replacement character"})
    await Tagged.insert(fine)
    assert await Tagged.select() == [fine]


async def test_an_int_too_long_for_text_is_a_serialization_error(store: Store) -> None:
    class Huge(Model):
        _primary_key_field: str = "id"
        id: str
        value: int = 0

    store.register_model(Huge)
    with pytest.raises(SerializationError, match=r"Huge\.value"):
        await Huge.insert(Huge(id="h", value=10**5000))


@pytest.mark.skipif(
    "exclude_if" not in FieldInfo.__slots__, reason="exclude_if came with pydantic 2.12"
)
async def test_a_field_excluded_by_a_condition_is_stored_like_any_other(
    store: Store, raw: redis.Redis
) -> None:
    class Stock(Model):
        _primary_key_field: str = "id"
        id: str
        qty: int = Field(1, exclude_if=lambda value: value == 0)

    store.register_model(Stock)
    await Stock.insert(Stock(id="s", qty=0))
    assert raw.hget(key("stock:s"), "qty") == "0"
    assert await Stock.select() == [Stock(id="s", qty=0)]


class Stamped(TypedDict):
    at: datetime


class Zoned(Model):
    _primary_key_field: str = "id"
    id: str
    maybe: datetime | None = None
    either: datetime | str = ""
    many: list[datetime] = []
    inside: dict[str, Any] = {}
    typed: Stamped | None = None


# Amsterdam's offset in 1900: +00:19:32, which JSON's +HH:MM cannot keep.
AMSTERDAM_1900 = timezone(timedelta(minutes=19, seconds=32))


@pytest.mark.parametrize("field", ["maybe", "either", "many", "inside", "typed"])
async def test_an_offset_with_seconds_anywhere_in_a_field_is_refused(
    store: Store, raw: redis.Redis, field: str
) -> None:
    store.register_model(Zoned)
    moment = datetime(1900, 1, 1, 12, tzinfo=AMSTERDAM_1900)
    value = {
        "maybe": moment,
        "either": moment,
        "many": [moment],
        "inside": {"at": [moment]},
        "typed": {"at": moment},
    }
    with pytest.raises(SerializationError, match=rf"Zoned\.{field}: the UTC offset 0:19:32"):
        await Zoned.insert(Zoned(id="z", **{field: value[field]}))
    assert raw.keys("*") == []


class Keyed(Model):  # the field's own serializer and validator carry its tuple keys
    _primary_key_field: str = "id"
    id: str
    cells: Annotated[
        dict[tuple[int, int], str],
        PlainSerializer(lambda cells: [[*key, value] for key, value in cells.items()]),
        BeforeValidator(
            lambda cells: cells if isinstance(cells, dict) else {(a, b): v for a, b, v in cells}
        ),
    ] = {}


async def test_a_field_with_its_own_serializer_is_left_to_it(store: Store) -> None:
    store.register_model(Keyed)
    keyed = Keyed(id="k", cells={(1, 2): "x"})
    await Keyed.insert(keyed)
    assert await Keyed.select() == [keyed]


class Person(BaseModel):
    full_name: str = Field(alias="fullName")


class Guest(Model):
    _primary_key_field: str = "id"
    id: str
    who: Person


async def test_a_column_holding_a_model_with_aliases_reads_back(store: Store) -> None:
    store.register_model(Guest)
    await Guest.insert(Guest(id="g", who=Person(fullName="Ann")))
    assert await Guest.select(columns=["who"]) == [{"who": Person(fullName="Ann")}]


class Lowered(Model):
    _primary_key_field: str = "id"
    id: Annotated[str, AfterValidator(str.lower)]


async def test_a_primary_key_that_would_read_back_as_another_is_refused(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Lowered)
    lowered = Lowered(id="abc")
    lowered.id = "ABC"  # no validation: a read of it would say "abc", and its key "ABC"
    with pytest.raises(SerializationError, match=r"Lowered\.id: the primary key 'ABC' reads back"):
        await lowered.save()
    assert raw.keys("*") == []


def _old_style_key_model() -> type[Model]:
    with warnings.catch_warnings():  # pydantic v1's @validator, deprecated but accepted
        warnings.simplefilter("ignore", DeprecationWarning)

        class OldStyle(Model):
            _primary_key_field: str = "id"
            id: str

            @validator("id")
            @classmethod
            def lowered(cls, value: str) -> str:
                return value.lower()

    return OldStyle


async def test_an_old_style_validator_that_would_change_the_primary_key_is_seen(
    store: Store, raw: redis.Redis
) -> None:
    model = _old_style_key_model()
    store.register_model(model)
    record = model(id="abc")
    record.id = "ABC"
    with pytest.raises(SerializationError, match=r"OldStyle\.id: the primary key 'ABC' reads back"):
        await record.save()
    assert raw.keys("*") == []
