"""Models shared by the tests."""

from __future__ import annotations

from datetime import date

from pydantic_aioredis import AutoModel, Model


class Book(Model):
    _primary_key_field: str = "title"
    title: str
    author: str
    published_on: date = date(2000, 1, 1)
    in_stock: bool = True
    price: float = 9.99
    tags: list[str] = []


class Library(Model):
    _primary_key_field: str = "name"
    name: str
    address: str


class Movie(AutoModel):
    _primary_key_field: str = "title"
    title: str
    director: str = "unknown"


def books(count: int) -> list[Book]:
    return [
        Book(title=f"book-{i:05d}", author=f"author {i % 7}", tags=[f"t{i}", "x"], price=i / 4)
        for i in range(count)
    ]
