"""What the tests store with pydantic-aioredis 1.4, as plain Python values.

Imported by `writer.py`, which runs in a virtual environment of its own with 1.4 and
pydantic v1, and by our tests, which read the records back with this library: so it
imports neither pydantic nor Redis. Each model here is declared twice, with the same
fields: for 1.4 in `writer.py`, for us in `models.py`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from ipaddress import IPv4Address, IPv4Network
from uuid import UUID

# Every field type whose stored form 1.4 chose differently from ours, and some it did not.
EVERYTHING = [
    {
        "id": "full",
        "name": "plain text",
        "amount": 42,
        "ratio": 0.25,
        "flag": True,
        "maybe_text": "hello",
        "maybe_int": 7,
        "maybe_float": 1.5,
        "maybe_when": datetime(2021, 5, 6, 7, 8, 9),
        "maybe_flag": False,
        "when": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
        "day": date(1999, 12, 31),
        "uid": UUID("12345678-1234-5678-1234-567812345678"),
        "address": IPv4Address("10.1.2.3"),
        "network": IPv4Network("192.168.0.0/16"),
        "color": "green",
        "level": 2,
        "tags": ["a", "b, c", '"quoted"'],
        "matrix": [[1, 2], [3], []],
        "scores": {"k": [1, 2], "empty": []},
        "meta": {"nested": {"deep": [1, "two", None]}, "n": 1.5},
        "pair": (3, "three"),
        "numbers": (1, 2, 3),
        "subs": [{"a": 1, "tags": ["x"]}, {"a": 2, "tags": []}],
        "sub": {"a": 9, "tags": ["y", "z"]},
        "maybe_tags": ["t"],
        "editions": ["first", None],
        "choice": "b",
        "either": "text",
        "short": "abc",
    },
    {
        "id": "nones",
        "name": "None",  # a plain str field: the text "None" stays text
        "amount": -1,
        "ratio": 1e16,
        "flag": False,
        "maybe_text": None,
        "maybe_int": None,
        "maybe_float": None,
        "maybe_when": None,
        "maybe_flag": None,
        "when": datetime(1970, 1, 1, 0, 0, 0),
        "day": date(2000, 2, 29),
        "uid": UUID("00000000-0000-0000-0000-000000000000"),
        "address": IPv4Address("0.0.0.0"),
        "network": IPv4Network("10.0.0.0/8"),
        "color": "red",
        "level": 1,
        "tags": [],
        "matrix": [],
        "scores": {},
        "meta": {},
        "pair": (0, ""),
        "numbers": (),
        "subs": [],
        "sub": {"a": 0, "tags": []},
        "maybe_tags": None,
        "editions": [],
        "choice": "a",
        "either": 5,
        "short": "",
    },
    {
        "id": "text None",
        "name": "x",
        "amount": 0,
        "ratio": -0.5,
        "flag": True,
        # 1.4 stored the text "None" of an Optional[str] as it stored None itself, and read
        # it back as None: that is what it reads as after the migration, too.
        "maybe_text": "None",
        "maybe_int": 0,
        "maybe_float": 0.0,
        "maybe_when": datetime(2030, 1, 1, 12, 0, 0, 123456),
        "maybe_flag": True,
        "when": datetime(2024, 1, 2, 3, 4, 5),
        "day": date(2024, 1, 2),
        "uid": UUID("ffffffff-ffff-ffff-ffff-ffffffffffff"),
        "address": IPv4Address("255.255.255.255"),
        "network": IPv4Network("0.0.0.0/0"),
        "color": "green",
        "level": 1,
        "tags": ["None", "null", ""],
        "matrix": [[0]],
        "scores": {"z": []},
        "meta": {"list": [[1, [2]]], "none": None},
        "pair": (-1, "None"),
        "numbers": (5,),
        "subs": [{"a": 3, "tags": ["p", "q"]}],
        "sub": {"a": 1, "tags": []},
        "maybe_tags": [],
        "editions": [None],
        "choice": "a",
        "either": "None",
        "short": "None",
    },
]

# A mixed-case prefix (1.4 lower-cased it in the key), its own separator and table name.
THINGS = [{"code": f"c{i}", "size": i} for i in range(1, 6)]
THING_TTL = 3600  # seconds; the first three things are written with it, the others without

# A datetime primary key: 1.4 put str(value) in the key, we put its ISO form.
EVENTS = [
    {"at": datetime(2024, 1, 2, 3, 4, 5), "what": "start"},
    {"at": datetime(2024, 1, 2, 3, 4, 6, 500000), "what": "stop"},
]

# An int primary key.
COUNTERS = [{"n": n, "label": None if n % 2 else f"label {n}"} for n in range(1, 4)]

# Fields of types 1.4 stored as JSON, which a port to pydantic v2 may well type `str` (see
# `models.Retyped`), and a plain str whose text has quotes around it.
RETYPED = [
    {
        "sku": "i1",
        "color": "red",
        "uid": UUID(int=7),
        "kind": "book",
        "day": date(2024, 1, 2),
        "name": "Bob",
        "nick": None,
        "note": '"quoted"',
    },
    {
        "sku": "i2",
        "color": "green",
        "uid": UUID(int=8),
        "kind": "cd",
        "day": date(1999, 12, 31),
        "name": "Ann",
        "nick": "annie",
        "note": "plain",
    },
]


def book(i: int) -> dict[str, object]:
    """The i-th record of the bulk data: six fields, as in the benchmarks."""
    return {
        "title": f"book {i:07d}",
        "author": f"author {i % 977}",
        "published_on": date(1900 + i % 120, 1 + i % 12, 1 + i % 28),
        "in_stock": i % 3 != 0,
        "price": round(i * 0.37 % 100, 2),
        "tags": [f"tag{i % 7}", f"tag{i % 11}"],
    }
