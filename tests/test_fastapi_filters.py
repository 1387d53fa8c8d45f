"""The CRUD router's list route: filters on indexed fields and `order_by` as query
parameters (issue 13), with `skip` and `limit`; on Redis, in memory and on a cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from enum import Enum
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import Field, field_validator

from pydantic_aioredis import ConfigurationError, Indexed, Store
from pydantic_aioredis.ext.fastapi import CRUDRouter, FastAPIModel


class Genre(Enum):
    """A plain Enum: Python does not order its members, so only equality applies."""

    NOVEL = "novel"
    POEMS = "poems"


class Novel(FastAPIModel):
    _primary_key_field: str = "title"
    title: str
    author: Annotated[str, Indexed()]
    published_on: Annotated[date | None, Indexed()] = None
    pages: Annotated[int, Indexed(), Field(ge=1)] = 100
    genre: Annotated[Genre, Indexed()] = Genre.NOVEL
    shelf: Annotated[int, Indexed()] = Field(0, alias="shelfNo")
    blurb: str = ""

    @field_validator("author")
    @classmethod
    def no_digits(cls, value: str) -> str:
        if any(character.isdigit() for character in value):
            raise ValueError("an author's name has no digits")
        return value


NOVELS = [
    {"title": "Bleak House", "author": "Charles Dickens", "published_on": "1853-03-01"},
    {"title": "Emma", "author": "Jane Austen", "published_on": "1815-12-23", "pages": 474},
    {"title": "Hard Times", "author": "Charles Dickens", "published_on": "1854-04-01"},
    {"title": "Oliver Twist", "author": "Charles Dickens", "published_on": "1838-04-01"},
    {"title": "Persuasion", "author": "Jane Austen", "pages": 249, "shelfNo": 2},
    {"title": "Leaves of Grass", "author": "Walt Whitman", "genre": "poems", "shelfNo": 3},
]
for novel, pages in zip(NOVELS, (1017, 474, 352, 608, 249, 95)):
    novel["pages"] = pages


@pytest.fixture
async def api(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    store.register_model(Novel)
    app = FastAPI()
    app.include_router(CRUDRouter(Novel, max_limit=20))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for novel in NOVELS:
            assert (await client.post("/novel/", json=novel)).status_code == 201
        yield client


async def titles(api: httpx.AsyncClient, params: Any) -> list[str]:
    response = await api.get("/novel/", params=params)
    assert response.status_code == 200, response.text
    return [novel["title"] for novel in response.json()]


async def test_the_issue_s_example(api: httpx.AsyncClient) -> None:
    found = await titles(api, {"author": "Charles Dickens", "order_by": "-published_on"})
    assert found == ["Hard Times", "Bleak House", "Oliver Twist"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"author": "Jane Austen"}, ["Emma", "Persuasion"]),
        (
            {"author__in": ["Jane Austen", "Walt Whitman"]},
            ["Emma", "Leaves of Grass", "Persuasion"],
        ),
        ({"author__startswith": "Ch"}, ["Bleak House", "Hard Times", "Oliver Twist"]),
        ({"author__gte": "Jane", "author__lt": "Walt"}, ["Emma", "Persuasion"]),
        ({"published_on__gt": "1838-04-01"}, ["Bleak House", "Hard Times"]),
        ({"published_on__lte": "1838-04-01"}, ["Emma", "Oliver Twist"]),
        ({"pages__lt": 300}, ["Leaves of Grass", "Persuasion"]),
        ({"pages__gte": 249, "pages__lte": 474, "author": "Jane Austen"}, ["Emma", "Persuasion"]),
        ({"genre": "poems"}, ["Leaves of Grass"]),
        ({"genre__in": ["novel"], "author__startswith": "J"}, ["Emma", "Persuasion"]),
        ({"shelfNo__gte": 2}, ["Leaves of Grass", "Persuasion"]),
        ({"author": "Nobody"}, []),
    ],
)
async def test_each_filter(api: httpx.AsyncClient, params: Any, expected: list[str]) -> None:
    assert await titles(api, params) == expected


async def test_order_and_page(api: httpx.AsyncClient) -> None:
    by_pages = ["Leaves of Grass", "Persuasion"]
    assert await titles(api, {"order_by": "pages", "limit": 2}) == by_pages
    assert await titles(api, {"order_by": "-pages", "limit": 1}) == ["Bleak House"]
    by_shelf = await titles(api, {"order_by": "-shelfNo", "skip": 1, "limit": 2})
    assert by_shelf == ["Persuasion", "Bleak House"]
    dickens = {"author": "Charles Dickens", "order_by": "published_on"}
    assert await titles(api, {**dickens, "skip": 1, "limit": 1}) == ["Bleak House"]
    assert await titles(api, {**dickens, "skip": 3}) == []


@pytest.mark.parametrize(
    ("query", "parameter", "says"),
    [
        ("autor=Jane", "autor", "not a parameter of this route"),
        ("blurb=x", "blurb", "blurb is not an indexed field"),
        ("title__startswith=E", "title__startswith", "title is not an indexed field"),
        ("genre__gt=novel", "genre__gt", "no operator 'gt' for genre"),
        ("pages__startswith=1", "pages__startswith", "no operator 'startswith' for pages"),
        ("shelf=2", "shelf", "not a parameter"),  # responses spell it shelfNo
        ("pages=many", "pages", "valid integer"),
        ("pages__gt=0", "pages__gt", "greater than or equal to 1"),
        ("published_on=yesterday", "published_on", "valid date"),
        ("genre=prose", "genre", "'novel' or 'poems'"),
        ("author=R2D2", "author", "an author's name has no digits"),  # the model's validator
        ("author=A&author=B", "author", "given 2 times"),
        ("order_by=blurb", "order_by", "published_on"),
        ("order_by=genre", "order_by", "-shelfNo"),
        ("limit=21", "limit", "less than or equal to 20"),
    ],
)
async def test_an_unknown_or_invalid_parameter_is_422_naming_it(
    api: httpx.AsyncClient, query: str, parameter: str, says: str
) -> None:
    response = await api.get(f"/novel/?{query}")
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", parameter]
    assert says in error["msg"]


async def test_the_parameters_in_the_openapi_document(api: httpx.AsyncClient) -> None:
    listed = (await api.get("/openapi.json")).json()["paths"]["/novel/"]["get"]
    parameters = {p["name"]: p for p in listed["parameters"]}
    operators = ("", "__in", "__gt", "__gte", "__lt", "__lte")
    expected = {"skip", "limit", "order_by", "author__startswith"}
    for field in ("author", "published_on", "pages", "shelfNo"):
        expected |= {field + operator for operator in operators}
    expected |= {"genre", "genre__in"}  # equality only: the Enum is not ordered
    assert set(parameters) == expected
    assert all(p["in"] == "query" and not p["required"] for p in parameters.values())
    schemas = {name: p["schema"] for name, p in parameters.items()}
    assert (schemas["published_on__gt"]["type"], schemas["published_on__gt"]["format"]) == (
        "string",
        "date",
    )
    assert (schemas["pages"]["type"], schemas["pages"]["minimum"]) == ("integer", 1)
    assert schemas["author__in"]["type"] == "array"
    assert schemas["author__in"]["items"] == {"type": "string"}
    assert schemas["author__startswith"]["type"] == "string"
    assert schemas["genre"]["$ref"] == "#/components/schemas/Genre"
    orders = ["author", "-author", "published_on", "-published_on", "pages", "-pages"]
    assert schemas["order_by"]["enum"] == [*orders, "shelfNo", "-shelfNo"]
    assert "repeat" in parameters["author__in"]["description"]
    assert "not built" in listed["responses"]["503"]["description"]


class Gadget(FastAPIModel):
    _primary_key_field: str = "id"
    _table_name: str = "gadget"
    id: str
    kind: str = ""


class IndexedGadget(FastAPIModel):
    _primary_key_field: str = "id"
    _table_name: str = "gadget"
    id: str
    kind: Annotated[str, Indexed()] = ""


async def test_an_index_not_built_yet_is_503_saying_how_to_build_it(store: Store) -> None:
    store.register_model(Gadget)
    await Gadget.insert([Gadget(id="g1", kind="lamp"), Gadget(id="g2", kind="fan")])
    store.unregister_model(Gadget)
    store.register_model(IndexedGadget)  # records written before `kind` was indexed
    app = FastAPI()
    app.include_router(CRUDRouter(IndexedGadget))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as api:
        for params in ({"kind": "lamp"}, {"order_by": "kind"}):
            response = await api.get("/gadget/", params=params)
            assert response.status_code == 503
            assert "build_indexes()" in response.json()["detail"]
        assert len((await api.get("/gadget/")).json()) == 2  # no index needed
        await IndexedGadget.build_indexes()
        assert (await api.get("/gadget/", params={"kind": "lamp"})).json() == [
            {"id": "g1", "kind": "lamp"}
        ]


async def test_a_model_without_indexes_takes_no_filter(store: Store) -> None:
    store.register_model(Gadget)
    app = FastAPI()
    app.include_router(CRUDRouter(Gadget))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as api:
        response = await api.get("/gadget/", params={"kind": "lamp"})
        assert response.status_code == 422
        assert "the model has no indexed field" in response.json()["detail"][0]["msg"]
    names = {p["name"] for p in app.openapi()["paths"]["/gadget/"]["get"]["parameters"]}
    assert names == {"skip", "limit"}


def test_a_filter_named_as_a_page_parameter_is_refused(store: Store) -> None:
    class Queue(FastAPIModel):
        _primary_key_field: str = "id"
        id: str
        limit: Annotated[int, Indexed()] = 0

    store.register_model(Queue)
    with pytest.raises(ConfigurationError, match="Queue: the list route's filter 'limit'"):
        CRUDRouter(Queue)
