"""The records of `dataset.py` as this library should read them after the migration."""

from __future__ import annotations

from typing import Any

from pydantic_aioredis import Model

from . import dataset
from .models import Counter, Event, Everything, Thing


def everything() -> list[Everything]:
    rows = []
    for row in dataset.EVERYTHING:
        if row["maybe_text"] == "None":  # 1.4 read it back as None (see dataset.py)
            row = {**row, "maybe_text": None}
        rows.append(Everything(**row))
    return rows


def records() -> dict[type[Model], list[Any]]:
    """Per model, its records in primary-key order (the order of `select()`)."""
    found: dict[type[Model], list[Any]] = {
        Everything: everything(),
        Thing: [Thing(**row) for row in dataset.THINGS],
        Event: [Event(**row) for row in dataset.EVENTS],
        Counter: [Counter(**row) for row in dataset.COUNTERS],
    }
    for model, rows in found.items():
        pk = model._primary_key_field
        rows.sort(key=lambda row: str(getattr(row, pk)))
    return found
