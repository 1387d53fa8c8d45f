"""The CRUD router's bodies and paths with models that are not plain: aliases, computed and
excluded fields, `extra="forbid"`, keys holding `/`, validators across fields; on Redis, in
memory and on a cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import fastapi
import httpx
import pytest
from fastapi import FastAPI
from pydantic import ConfigDict, Field, computed_field, model_validator
from typing_extensions import Self

from pydantic_aioredis import Store
from pydantic_aioredis.ext.fastapi import CRUDRouter, FastAPIModel


class Person(FastAPIModel):
    """Aliases only: the body spells fields as the model validates them."""

    _primary_key_field: str = "person_id"
    person_id: str = Field(alias="personId")
    full_name: str = Field(alias="fullName")
    age: int = Field(default=0, ge=0)


class Pet(FastAPIModel):
    """Aliases, and field names accepted too."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)
    _primary_key_field: str = "name"
    name: str = Field(alias="petName")
    species: str = Field(alias="kind")


class Box(FastAPIModel):
    """`extra="forbid"` and a computed field, which a dump of the record would carry."""

    model_config = ConfigDict(extra="forbid")
    _primary_key_field: str = "id"
    id: str
    width: int
    height: int = 1

    @computed_field  # type: ignore[prop-decorator]
    @property
    def area(self) -> int:
        return self.width * self.height


class Login(FastAPIModel):
    """A required field left out of every dump (and so of every response)."""

    _primary_key_field: str = "user"
    user: str
    password_hash: str = Field(exclude=True)
    visits: int = 0


class Memo(FastAPIModel):
    _primary_key_field: str = "path"
    path: str
    text: str


class Label(FastAPIModel):
    """Responses spell fields by their serialization aliases, which bodies do not declare."""

    _primary_key_field: str = "code"
    code: str = Field(serialization_alias="labelCode")
    text: str = Field(alias="t", serialization_alias="labelText")
    size: int = 1


class Reading(FastAPIModel):
    """NaN and infinities, which JSON cannot carry, answered as strings (docs/fastapi.md)."""

    model_config = ConfigDict(ser_json_inf_nan="strings")
    _primary_key_field: str = "id"
    id: str
    value: float = 0.0


class Range(FastAPIModel):
    """A validator that needs two fields: a record is valid only as a whole."""

    _primary_key_field: str = "name"
    name: str
    lo: int = 0
    hi: int = 10

    @model_validator(mode="after")
    def ordered(self) -> Self:
        if self.lo > self.hi:
            raise ValueError("lo cannot be above hi")
        return self


@pytest.fixture
async def api(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    for model in (Person, Pet, Box, Login, Memo, Label, Reading, Range):
        store.register_model(model)
        app.include_router(CRUDRouter(model))
    # Errors the router does not turn into a response are a 500, not an exception here.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


# -- aliases (issue 25) ----------------------------------------------------------------------


async def test_put_and_patch_take_the_aliases_that_post_takes(api: httpx.AsyncClient) -> None:
    ann = {"personId": "p1", "fullName": "Ann", "age": 30}
    assert (await api.post("/person/", json=ann)).status_code == 201
    replaced = await api.put("/person/p1", json={"fullName": "Bo"})
    assert (replaced.status_code, replaced.json()) == (200, {**ann, "fullName": "Bo", "age": 0})
    patched = await api.patch("/person/p1", json={"age": 31})
    assert (patched.status_code, patched.json()) == (200, {**ann, "fullName": "Bo", "age": 31})
    assert (await api.get("/person/p1")).json() == patched.json()
    (stored,) = await Person.select(ids=["p1"]) or []
    assert (stored.full_name, stored.age) == ("Bo", 31)


async def test_field_names_are_refused_where_the_model_refuses_them(
    api: httpx.AsyncClient,
) -> None:
    await api.post("/person/", json={"personId": "p1", "fullName": "Ann"})
    for method in ("put", "patch"):
        response = await api.request(method, "/person/p1", json={"full_name": "Bo"})
        assert response.status_code == 422, method
    assert (await api.get("/person/p1")).json()["fullName"] == "Ann"


async def test_both_spellings_where_the_model_takes_both(api: httpx.AsyncClient) -> None:
    assert (await api.post("/pet/", json={"name": "Rex", "species": "dog"})).status_code == 201
    by_name = await api.put("/pet/Rex", json={"name": "Rex", "species": "wolf"})
    assert by_name.json() == {"petName": "Rex", "kind": "wolf"}
    by_alias = await api.patch("/pet/Rex", json={"kind": "cat"})
    assert by_alias.json() == {"petName": "Rex", "kind": "cat"}
    moved = await api.patch("/pet/Rex", json={"petName": "Tom"})
    assert (moved.status_code, moved.json()["detail"][0]["loc"]) == (422, ["body", "petName"])


async def test_a_constraint_in_a_patch_body_is_checked(api: httpx.AsyncClient) -> None:
    await api.post("/person/", json={"personId": "p1", "fullName": "Ann"})
    response = await api.patch("/person/p1", json={"age": -1})
    assert response.status_code == 422
    assert (await api.get("/person/p1")).json()["age"] == 0


# -- computed and excluded fields (issue 26) -------------------------------------------------


async def test_patch_a_model_with_a_computed_field_and_extra_forbid(
    api: httpx.AsyncClient,
) -> None:
    created = await api.post("/box/", json={"id": "b", "width": 2})
    assert created.json() == {"id": "b", "width": 2, "height": 1, "area": 2}
    patched = await api.patch("/box/b", json={"height": 3})
    assert (patched.status_code, patched.json()) == (
        200,
        {"id": "b", "width": 2, "height": 3, "area": 6},
    )
    assert (await api.put("/box/b", json={"width": 5})).json()["area"] == 5
    assert (await api.patch("/box/b", json={"colour": 1})).status_code == 422  # not a field


async def test_patch_keeps_a_required_excluded_field(api: httpx.AsyncClient) -> None:
    created = await api.post("/login/", json={"user": "ann", "password_hash": "x1"})
    assert created.json() == {"user": "ann", "visits": 0}
    patched = await api.patch("/login/ann", json={"visits": 4})
    assert (patched.status_code, patched.json()) == (200, {"user": "ann", "visits": 4})
    (stored,) = await Login.select(ids=["ann"]) or []
    assert (stored.password_hash, stored.visits) == ("x1", 4)
    assert (await api.put("/login/ann", json={"visits": 1})).status_code == 422  # required
    replaced = await api.put("/login/ann", json={"password_hash": "y2"})
    assert replaced.json() == {"user": "ann", "visits": 0}
    (stored,) = await Login.select(ids=["ann"]) or []
    assert stored.password_hash == "y2"


# -- keys holding `/` (issue 27) -------------------------------------------------------------


@pytest.mark.parametrize("key", ["a/b", "a/b/", "/", "a\nb", "a%2Fb", "Dune"])
async def test_every_route_reaches_a_key_holding_a_slash(api: httpx.AsyncClient, key: str) -> None:
    url = "/memo/" + quote(key, safe="")  # Starlette routes on the decoded path
    assert (await api.post("/memo/", json={"path": key, "text": "1"})).status_code == 201
    assert (await api.get(url)).json() == {"path": key, "text": "1"}
    assert (await api.put(url, json={"text": "2"})).json() == {"path": key, "text": "2"}
    assert (await api.patch(url, json={"text": "3"})).json() == {"path": key, "text": "3"}
    assert (await api.get("/memo/")).json() == [{"path": key, "text": "3"}]
    assert (await api.delete(url)).status_code == 204
    assert (await api.get(url)).status_code == 404


async def test_a_slash_in_the_path_is_part_of_the_key(api: httpx.AsyncClient) -> None:
    await api.post("/memo/", json={"path": "docs/a.md", "text": "A"})
    assert (await api.get("/memo/docs/a.md")).json()["text"] == "A"
    assert (await api.get("/memo/docs")).status_code == 404
    assert (await api.get("/memo/")).status_code == 200  # the collection, not the key ""


# -- the key in a PUT or PATCH body (issue 28) -----------------------------------------------


async def test_get_modify_put_with_the_key_in_the_body(api: httpx.AsyncClient) -> None:
    await api.post("/person/", json={"personId": "p1", "fullName": "Ann"})
    record = (await api.get("/person/p1")).json()
    replaced = await api.put("/person/p1", json={**record, "fullName": "Bo"})
    assert (replaced.status_code, replaced.json()) == (200, {**record, "fullName": "Bo"})
    patched = await api.patch("/person/p1", json={"personId": "p1", "age": 2})
    assert (patched.status_code, patched.json()["age"]) == (200, 2)
    for method in ("put", "patch"):
        moved = await api.request(method, "/person/p1", json={**record, "personId": "p2"})
        assert moved.status_code == 422, method
        assert moved.json()["detail"][0]["loc"] == ["body", "personId"]
        assert "p1" in moved.json()["detail"][0]["msg"]
    assert (await api.get("/person/p2")).status_code == 404


# -- a value that cannot be stored (issue 11, item 14) ---------------------------------------


@pytest.mark.parametrize("method", ["post", "put", "patch"])
async def test_a_lone_surrogate_is_422_not_500(api: httpx.AsyncClient, method: str) -> None:
    if method != "post":
        await api.post("/memo/", json={"path": "n", "text": "ok"})
    url = "/memo/" if method == "post" else "/memo/n"
    body = '{"path": "n", "text": "\\ud800"}'  # valid JSON: a lone UTF-16 surrogate
    headers = {"content-type": "application/json"}
    response = await api.request(method, url, content=body, headers=headers)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body"]  # the library refused it; its message names the field
    assert "Memo.text" in error["msg"]
    expected = 404 if method == "post" else 200
    assert (await api.get("/memo/n")).status_code == expected  # nothing written


async def test_a_lone_surrogate_that_pydantic_refuses_is_422_not_500(
    api: httpx.AsyncClient,
) -> None:
    # A constrained string (the key's minLength here) makes pydantic refuse the text, with
    # the input in its error, which FastAPI's handler could not write as UTF-8.
    body = '{"path": "\\ud800", "text": "x"}'
    headers = {"content-type": "application/json"}
    response = await api.post("/memo/", content=body, headers=headers)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert (error["loc"], error["input"]) == (["body", "path"], "\\ud800")
    assert await Memo.select() is None


# -- GET, then PUT or PATCH of the body it answered (item 10) --------------------------------


@pytest.mark.parametrize("method", ["put", "patch"])
async def test_the_body_get_answers_can_be_sent_back(api: httpx.AsyncClient, method: str) -> None:
    await api.post("/box/", json={"id": "b", "width": 2, "height": 3})
    await api.post("/label/", json={"code": "x1", "t": "Ex", "size": 2})
    for url in ("/box/b", "/label/x1"):
        got = (await api.get(url)).json()
        sent = await api.request(method, url, json=got)
        assert (sent.status_code, sent.json()) == (200, got), url


async def test_a_computed_field_in_a_body_is_ignored(api: httpx.AsyncClient) -> None:
    await api.post("/box/", json={"id": "b", "width": 2})
    patched = await api.patch("/box/b", json={"height": 3, "area": 1})
    assert (patched.status_code, patched.json()["area"]) == (200, 6)
    replaced = await api.put("/box/b", json={"width": 4, "area": "anything"})
    assert (replaced.status_code, replaced.json()["area"]) == (200, 4)


async def test_bodies_take_the_serialization_alias_and_the_alias(api: httpx.AsyncClient) -> None:
    created = await api.post("/label/", json={"code": "x1", "t": "Ex"})
    assert created.json() == {"labelCode": "x1", "labelText": "Ex", "size": 1}
    assert (await api.patch("/label/x1", json={"labelText": "A"})).json()["labelText"] == "A"
    assert (await api.patch("/label/x1", json={"t": "B"})).json()["labelText"] == "B"
    replaced = await api.put("/label/x1", json={"labelCode": "x1", "t": "C"})
    assert replaced.json() == {"labelCode": "x1", "labelText": "C", "size": 1}
    moved = await api.put("/label/x1", json={"labelCode": "x2", "t": "D"})
    assert moved.status_code == 422
    (stored,) = await Label.select(ids=["x1"]) or []
    assert (stored.text, stored.size) == ("C", 1)


# -- a PATCH validates and writes the record whole (item 4) -----------------------------------


@pytest.fixture
def reads_meet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hold each record a route reads until two requests have read theirs, so that both
    work from the same stored record (as two PATCHes at once may)."""
    original = CRUDRouter._read
    read: list[None] = []
    met = asyncio.Event()

    async def read_then_wait(self: CRUDRouter, pk: Any) -> Any:
        record = await original(self, pk)
        read.append(None)
        if len(read) == 2:
            met.set()
        await met.wait()
        return record

    monkeypatch.setattr(CRUDRouter, "_read", read_then_wait)


@pytest.mark.usefixtures("reads_meet")
async def test_concurrent_patches_leave_a_record_that_validates_whole(
    api: httpx.AsyncClient,
) -> None:
    await api.post("/range/", json={"name": "r", "lo": 0, "hi": 10})
    low, high = await asyncio.gather(
        api.patch("/range/r", json={"lo": 8}), api.patch("/range/r", json={"hi": 2})
    )
    # Each is valid on the record both read; combined they are not (lo 8 > hi 2).
    assert (low.status_code, high.status_code) == (200, 200)
    got = await api.get("/range/r")
    assert got.status_code == 200
    assert got.json() in (low.json(), high.json())  # the last write wins, whole
    assert (await api.get("/range/")).status_code == 200


@pytest.mark.skipif(
    tuple(map(int, fastapi.__version__.split(".")[:2])) < (0, 130),
    reason="FastAPI before 0.130 encodes responses with json.dumps, which refuses NaN",
)
async def test_nan_and_infinity_come_back_whole_as_strings(api: httpx.AsyncClient) -> None:
    for value in ("NaN", "Infinity", "-Infinity"):
        created = await api.post("/reading/", json={"id": "r", "value": value})
        assert created.status_code == 201, created.text
        answered = (await api.get("/reading/r")).json()
        assert answered == {"id": "r", "value": value}
        assert (await api.put("/reading/r", json=answered)).status_code == 200
        assert (await api.get("/reading/r")).json() == answered
        assert (await api.delete("/reading/r")).status_code in (200, 204)
