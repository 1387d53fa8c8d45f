"""Models with less common primary keys."""

from __future__ import annotations

from pydantic_aioredis import Model


class Counter(Model):
    _primary_key_field: str = "id"
    id: int
    value: str
