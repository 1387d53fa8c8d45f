"""The models of `dataset.py` as they are declared for this library (pydantic v2).

The same fields as in `writer.py`, so that the records 1.4 wrote there read back here.
Importable as `tests.legacy14.models`, for the migration command's `--models`.
"""

# ruff: noqa: UP007, UP045 - typed as a 1.4 user would
from __future__ import annotations

from datetime import date, datetime
from enum import Enum, IntEnum
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Literal, Optional, Union
from uuid import UUID

from pydantic import BaseModel, constr

from pydantic_aioredis import Model


class Color(str, Enum):
    red = "red"
    green = "green"


class Level(IntEnum):
    low = 1
    high = 2


class Sub(BaseModel):
    a: int
    tags: list[str]


class Everything(Model):
    _primary_key_field: str = "id"
    id: str
    name: str
    amount: int
    ratio: float
    flag: bool
    maybe_text: Optional[str] = None
    maybe_int: Optional[int] = None
    maybe_float: Optional[float] = None
    maybe_when: Optional[datetime] = None
    maybe_flag: Optional[bool] = None
    when: datetime
    day: date
    uid: UUID
    address: IPv4Address
    network: IPv4Network
    color: Color
    level: Level
    tags: list[str]
    matrix: list[list[int]]
    scores: dict[str, list[int]]
    meta: dict[str, Any]
    pair: tuple[int, str]
    numbers: tuple[int, ...]
    subs: list[Sub]
    sub: Sub
    maybe_tags: Optional[list[str]] = None
    editions: list[Optional[str]]
    choice: Literal["a", "b"]
    either: Union[int, str]
    short: constr(max_length=5)  # type: ignore[valid-type]


class Thing(Model):
    _primary_key_field: str = "code"
    _redis_prefix: str = "MyApp"
    _redis_separator: str = "!!"
    _table_name: str = "Things"
    code: str
    size: int


class Event(Model):
    _primary_key_field: str = "at"
    at: datetime
    what: str


class Counter(Model):
    _primary_key_field: str = "n"
    n: int
    label: Optional[str] = None


class Book(Model):
    _primary_key_field: str = "title"
    title: str
    author: str
    published_on: date
    in_stock: bool
    price: float
    tags: list[str]


class Retyped(Model):
    """`writer.Retyped` ported with every field typed `str`: 1.4 stored all but `sku` and
    `note` as JSON, which the migration must be told (`json_fields`)."""

    _primary_key_field: str = "sku"
    sku: str
    color: str
    uid: str
    kind: str
    day: str
    name: str
    nick: Optional[str] = None
    note: str


ALL = (Everything, Thing, Event, Counter)
