"""Model: class options as plain values, flags, equality, typing of the API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pydantic_aioredis import AutoModel, Model
from tests.models import Book, Movie


class Shop(Model):
    _primary_key_field: str = "id"
    _redis_prefix: str = "shop"
    _redis_separator: str = "|"
    _table_name: str = "items"
    _auto_save: bool = True
    _auto_sync: bool = False
    id: str


def test_class_options_read_as_plain_values() -> None:
    assert Book._primary_key_field == "title"
    assert (Shop._redis_prefix, Shop._redis_separator, Shop._table_name) == ("shop", "|", "items")
    assert (Shop._auto_save, Shop._auto_sync) == (True, False)
    assert Book._redis_separator == ":"
    assert Book._table_name is None
    assert Book.get_primary_key_field() == "title"
    assert Book.__private_attributes__ == {}


def test_options_are_inherited_and_automodel_defaults() -> None:
    assert (AutoModel._auto_save, AutoModel._auto_sync) == (True, True)
    assert (Movie._auto_save, Movie._auto_sync) == (True, True)
    assert (Model._auto_save, Model._auto_sync) == (False, False)


def test_instances_read_options_too() -> None:
    book = Book(title="t", author="a")
    assert getattr(book, type(book)._primary_key_field or "") == "t"
    assert book._primary_key_field == "title"


def test_fields_are_plain_pydantic() -> None:
    book = Book(title="t", author="a")
    assert book.model_dump()["title"] == "t"
    assert Book.model_validate({"title": "t", "author": "a"}) == book
    assert "_primary_key_field" not in Book.model_json_schema()["properties"]


def test_await_select_is_typed(tmp_path: Path) -> None:
    source = tmp_path / "typed.py"
    source.write_text(
        "from typing import Any\n"
        "from typing_extensions import assert_type\n"
        "from pydantic_aioredis import Model\n"
        "class Book(Model):\n"
        "    _primary_key_field: str = 'title'\n"
        "    title: str\n"
        "async def check() -> None:\n"
        "    assert_type(await Book.select(), list[Book] | None)\n"
        "    assert_type(await Book.select(ids=['x']), list[Book] | None)\n"
        "    assert_type(await Book.select(columns=['title']), list[dict[str, Any]] | None)\n"
        "    assert_type(await Book.insert(Book(title='x')), int)\n"
        "    assert_type(await Book.delete(), int)\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
