"""Writes the test data with pydantic-aioredis 1.4 itself (pydantic v1, redis-py < 6).

Runs in the virtual environment `venv.py` makes, never in ours:

    python writer.py redis://127.0.0.1:PORT/DB all        # the models of dataset.py
    python writer.py redis://127.0.0.1:PORT/DB books N    # N records of the bulk model
    python writer.py redis://127.0.0.1:PORT/DB retyped    # the records of dataset.RETYPED

The models are those of `models.py`, declared as 1.4's documents show.
"""

# ruff: noqa: UP006, UP007, UP035, UP045 - typed as the 1.4 documents type models
from __future__ import annotations

import asyncio
import sys
from datetime import date, datetime
from enum import Enum, IntEnum
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple, Union
from uuid import UUID

from pydantic import BaseModel, constr

from pydantic_aioredis import Model, RedisConfig, Store

sys.path.insert(0, str(Path(__file__).parent))
import dataset


class Color(str, Enum):
    red = "red"
    green = "green"


class Level(IntEnum):
    low = 1
    high = 2


class Sub(BaseModel):
    a: int
    tags: List[str]


class Everything(Model):
    _primary_key_field = "id"
    id: str
    name: str
    amount: int
    ratio: float
    flag: bool
    maybe_text: Optional[str]
    maybe_int: Optional[int]
    maybe_float: Optional[float]
    maybe_when: Optional[datetime]
    maybe_flag: Optional[bool]
    when: datetime
    day: date
    uid: UUID
    address: IPv4Address
    network: IPv4Network
    color: Color
    level: Level
    tags: List[str]
    matrix: List[List[int]]
    scores: Dict[str, List[int]]
    meta: Dict[str, Any]
    pair: Tuple[int, str]
    numbers: Tuple[int, ...]
    subs: List[Sub]
    sub: Sub
    maybe_tags: Optional[List[str]]
    editions: List[Optional[str]]
    choice: Literal["a", "b"]
    either: Union[int, str]
    short: constr(max_length=5)  # type: ignore[valid-type]


class Thing(Model):
    _primary_key_field = "code"
    _redis_prefix = "MyApp"
    _redis_separator = "!!"
    _table_name = "Things"
    code: str
    size: int


class Event(Model):
    _primary_key_field = "at"
    at: datetime
    what: str


class Counter(Model):
    _primary_key_field = "n"
    n: int
    label: Optional[str]


class Book(Model):
    _primary_key_field = "title"
    title: str
    author: str
    published_on: date
    in_stock: bool
    price: float
    tags: List[str]


class Retyped(Model):
    _primary_key_field = "sku"
    sku: str
    color: Color
    uid: UUID
    kind: Literal["book", "cd"]
    day: date
    name: constr(max_length=50)  # type: ignore[valid-type]
    nick: Optional[constr(max_length=20)]  # type: ignore[valid-type]
    note: str


async def write_all(store: Store) -> None:
    for model in (Everything, Thing, Event, Counter):
        store.register_model(model)
    await Everything.insert([Everything(**row) for row in dataset.EVERYTHING])
    things = [Thing(**row) for row in dataset.THINGS]
    await Thing.insert(things[:3], life_span_seconds=dataset.THING_TTL)
    await Thing.insert(things[3:])
    await Event.insert([Event(**row) for row in dataset.EVENTS])
    await Counter.insert([Counter(**row) for row in dataset.COUNTERS])


async def write_books(store: Store, count: int) -> None:
    store.register_model(Book)
    for start in range(0, count, 5000):
        rows = [dataset.book(i) for i in range(start, min(count, start + 5000))]
        await Book.insert([Book(**row) for row in rows])


async def write_retyped(store: Store) -> None:
    store.register_model(Retyped)
    await Retyped.insert([Retyped(**row) for row in dataset.RETYPED])


async def main(url: str, what: str, count: int) -> None:
    host_port, _, db = url.removeprefix("redis://").partition("/")
    host, _, port = host_port.partition(":")
    store = Store(name="legacy", redis_config=RedisConfig(host=host, port=int(port), db=int(db)))
    try:
        if what == "all":
            await write_all(store)
        elif what == "retyped":
            await write_retyped(store)
        else:
            await write_books(store, count)
    finally:
        await store.redis_store.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0))
