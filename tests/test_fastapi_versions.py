"""The CRUD router and `_version_field`: ETags, If-Match, versions in bodies, and the
atomic compare-and-set under racing clients; on Redis, in memory and on a cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pydantic_aioredis import Store
from pydantic_aioredis.ext import _crud_versions
from pydantic_aioredis.ext.fastapi import CRUDRouter, FastAPIModel


class Wallet(FastAPIModel):
    _primary_key_field: str = "id"
    _version_field: str = "version"
    id: str
    owner: str
    balance: int = 0
    version: int = 0


class Tally(FastAPIModel):
    _primary_key_field: str = "id"
    id: str
    n: int = 0


ALICE = {"id": "alice", "owner": "Alice", "balance": 10}


@pytest.fixture
async def api(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    for model in (Wallet, Tally):
        store.register_model(model)
        app.include_router(CRUDRouter(model))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def stored() -> Wallet:
    (wallet,) = await Wallet.select(ids=["alice"]) or []
    return wallet


def etag(version: int) -> dict[str, str]:
    return {"If-Match": f'"{version}"'}


# -- what GET and POST answer ----------------------------------------------------------------


async def test_post_creates_at_version_1_and_get_answers_it_as_the_etag(
    api: httpx.AsyncClient,
) -> None:
    created = await api.post("/wallet/", json=ALICE)
    assert (created.status_code, created.headers["ETag"]) == (201, '"1"')
    assert created.json() == {**ALICE, "version": 1}
    got = await api.get("/wallet/alice")
    assert (got.headers["ETag"], got.json()["version"]) == ('"1"', 1)
    assert (await stored()).version == 1


async def test_without_a_version_no_etag_and_only_if_match_star(api: httpx.AsyncClient) -> None:
    await api.post("/tally/", json={"id": "p"})
    assert "ETag" not in (await api.get("/tally/p")).headers
    for method in ("put", "patch", "delete"):  # no tag can match a record that has none
        json = None if method == "delete" else {"n": 1}
        refused = await api.request(method, "/tally/p", json=json, headers=etag(0))
        assert refused.status_code == 412, method
    assert (await api.get("/tally/p")).json() == {"id": "p", "n": 0}
    star = {"If-Match": "*"}
    assert (await api.patch("/tally/p", json={"n": 2}, headers=star)).json()["n"] == 2
    assert (await api.delete("/tally/p", headers=star)).status_code == 204
    assert (await api.put("/tally/p", json={"n": 3}, headers=star)).status_code == 404


# -- If-Match --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["put", "patch"])
async def test_if_match_of_the_stored_version_writes_the_next_one(
    api: httpx.AsyncClient, method: str
) -> None:
    await api.post("/wallet/", json=ALICE)
    change = {"owner": "Alice", "balance": 20}  # a whole record for PUT, fields for PATCH
    written = await api.request(method, "/wallet/alice", json=change, headers=etag(1))
    assert (written.status_code, written.headers["ETag"]) == (200, '"2"')
    assert written.json() == {**ALICE, "balance": 20, "version": 2}
    assert ((await stored()).balance, (await stored()).version) == (20, 2)
    stale = await api.request(method, "/wallet/alice", json=change, headers=etag(1))
    assert stale.status_code == 412
    assert '"2"' in stale.json()["detail"]
    assert ((await stored()).balance, (await stored()).version) == (20, 2)


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ('"1"', 200),
        ('"0", "1"', 200),
        ('W/"0", "1"', 200),  # a weak tag before the strong one that matches
        ('W/"0","1"', 200),
        ("*", 200),
        ('W/"1"', 412),
        ('"0", W/"1"', 412),
        ("1", 412),
        ('"2"', 412),
    ],
)
async def test_if_match_compares_strong_tags(
    api: httpx.AsyncClient, header: str, status: int
) -> None:
    await api.post("/wallet/", json=ALICE)
    response = await api.patch("/wallet/alice", json={"balance": 1}, headers={"If-Match": header})
    assert response.status_code == status
    assert (await stored()).version == (2 if status == 200 else 1)


async def test_if_match_on_a_missing_record_is_404(api: httpx.AsyncClient) -> None:
    for method in ("put", "patch"):
        response = await api.request(method, "/wallet/bob", json={"owner": "Bob"}, headers=etag(1))
        assert response.status_code == 404, method
    assert await Wallet.select() is None


# -- the version in the body -----------------------------------------------------------------


@pytest.mark.parametrize("method", ["put", "patch"])
async def test_the_version_in_the_body_is_checked_and_moved_on(
    api: httpx.AsyncClient, method: str
) -> None:
    await api.post("/wallet/", json=ALICE)
    record = (await api.get("/wallet/alice")).json()
    written = await api.request(method, "/wallet/alice", json={**record, "balance": 5})
    assert (written.status_code, written.json()["version"]) == (200, 2)
    again = await api.request(method, "/wallet/alice", json={**record, "balance": 6})
    assert again.status_code == 409
    assert "at version 2, not 1" in again.json()["detail"]
    assert ((await stored()).balance, (await stored()).version) == (5, 2)


async def test_get_modify_put_round_trip(api: httpx.AsyncClient) -> None:
    await api.post("/wallet/", json=ALICE)
    got = await api.get("/wallet/alice")
    changed = {**got.json(), "owner": "Alice B."}
    put = await api.put("/wallet/alice", json=changed, headers={"If-Match": got.headers["ETag"]})
    assert (put.status_code, put.json()) == (200, {**changed, "version": 2})


@pytest.mark.parametrize("method", ["put", "patch"])
async def test_a_write_that_proves_no_version_is_428(api: httpx.AsyncClient, method: str) -> None:
    await api.post("/wallet/", json=ALICE)
    response = await api.request(method, "/wallet/alice", json={"owner": "Mallory"})
    assert response.status_code == 428
    assert "If-Match" in response.json()["detail"]
    assert ((await stored()).owner, (await stored()).version) == ("Alice", 1)


async def test_if_match_and_body_are_both_checked(api: httpx.AsyncClient) -> None:
    await api.post("/wallet/", json=ALICE)
    stale_header = await api.patch("/wallet/alice", json={"version": 1}, headers=etag(0))
    assert stale_header.status_code == 412
    stale_body = await api.patch("/wallet/alice", json={"version": 0}, headers=etag(1))
    assert stale_body.status_code == 409
    assert (await stored()).version == 1


async def test_a_patch_that_changes_nothing_keeps_the_version(api: httpx.AsyncClient) -> None:
    await api.post("/wallet/", json=ALICE)
    response = await api.patch("/wallet/alice", json={"id": "alice"}, headers=etag(1))
    assert (response.status_code, response.headers["ETag"]) == (200, '"1"')
    assert (await stored()).version == 1


async def test_a_patch_of_the_stored_values_keeps_the_version(api: httpx.AsyncClient) -> None:
    await api.post("/wallet/", json=ALICE)
    same = {"owner": "Alice", "balance": 10, "version": 1}
    for headers in (etag(1), {"If-Match": "*"}, {}):
        response = await api.patch("/wallet/alice", json=same, headers=headers)
        assert (response.status_code, response.headers["ETag"]) == (200, '"1"'), headers
        assert response.json() == {**ALICE, "version": 1}
    assert (await stored()).version == 1
    changed = await api.patch("/wallet/alice", json={**same, "balance": 11})
    assert (changed.status_code, changed.headers["ETag"]) == (200, '"2"')


@pytest.mark.parametrize("method", ["post", "put", "patch"])
async def test_a_negative_version_in_a_body_is_422(api: httpx.AsyncClient, method: str) -> None:
    if method != "post":
        await api.post("/wallet/", json=ALICE)
    url = "/wallet/" if method == "post" else "/wallet/alice"
    response = await api.request(method, url, json={**ALICE, "balance": 5, "version": -1})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "version"]
    unchanged = None if method == "post" else [{"balance": 10}]
    assert await Wallet.select(columns=["balance"]) == unchanged


async def test_delete_checks_if_match_when_sent(api: httpx.AsyncClient) -> None:
    await api.post("/wallet/", json=ALICE)
    assert (await api.delete("/wallet/alice", headers=etag(0))).status_code == 412
    assert (await stored()).version == 1
    assert (await api.delete("/wallet/alice", headers=etag(1))).status_code == 204
    assert (await api.delete("/wallet/alice", headers=etag(1))).status_code == 404
    await api.post("/wallet/", json=ALICE)
    assert (await api.delete("/wallet/alice")).status_code == 204  # unconditional


# -- racing clients: the write is one compare-and-set ----------------------------------------


@pytest.fixture
def writes_meet(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[], Awaitable[Any]]], None]:
    """Hold each versioned write until two requests have passed their version checks, so
    that both checked the same stored version and only the write itself can stop one.
    Call the fixture with a coroutine function to run it just before the writes go."""
    original = _crud_versions.RecordVersions.save
    arrived: list[None] = []
    met = asyncio.Event()
    before: list[Callable[[], Awaitable[Any]]] = []

    async def save_when_both_checked(self: Any, *args: Any) -> None:
        arrived.append(None)
        if len(arrived) == 2:
            for step in before:
                await step()
            met.set()
        await met.wait()
        await original(self, *args)

    monkeypatch.setattr(_crud_versions.RecordVersions, "save", save_when_both_checked)
    return before.append


@pytest.mark.parametrize(("headers", "loser"), [(etag(1), 412), ({}, 409)])
async def test_of_two_clients_racing_on_one_version_one_wins(
    api: httpx.AsyncClient,
    writes_meet: Callable[[Callable[[], Awaitable[Any]]], None],
    headers: dict[str, str],
    loser: int,
) -> None:
    await api.post("/wallet/", json=ALICE)
    body = {} if headers else {"version": 1}
    bodies = [{**body, "balance": 100}, {**body, "balance": 200}]
    responses = await asyncio.gather(
        *(api.patch("/wallet/alice", json=b, headers=headers) for b in bodies)
    )
    assert sorted(r.status_code for r in responses) == sorted([200, loser])
    (winner,) = [r for r in responses if r.status_code == 200]
    assert (await stored()).balance == winner.json()["balance"]
    assert (await stored()).version == 2


async def test_a_record_deleted_before_the_write_is_404_not_written_again(
    api: httpx.AsyncClient, writes_meet: Callable[[Callable[[], Awaitable[Any]]], None]
) -> None:
    await api.post("/wallet/", json=ALICE)
    writes_meet(lambda: Wallet.delete(ids=["alice"]))
    responses = await asyncio.gather(
        api.put("/wallet/alice", json={"owner": "A"}, headers=etag(1)),
        api.patch("/wallet/alice", json={"balance": 2}, headers=etag(1)),
    )
    assert [r.status_code for r in responses] == [404, 404]
    assert await Wallet.select() is None


@pytest.mark.parametrize("sent", [-1, 0, 6])
async def test_what_post_created_is_not_revived_by_a_write_racing_a_delete(
    api: httpx.AsyncClient,
    writes_meet: Callable[[Callable[[], Awaitable[Any]]], None],
    sent: int,
) -> None:
    created = await api.post("/wallet/", json={**ALICE, "version": sent})
    if created.status_code == 201:
        tag = {"If-Match": created.headers["ETag"]}
        writes_meet(lambda: Wallet.delete(ids=["alice"]))
        responses = await asyncio.gather(
            api.put("/wallet/alice", json={"owner": "A"}, headers=tag),
            api.patch("/wallet/alice", json={"balance": 2}, headers=tag),
        )
        assert [r.status_code for r in responses] == [404, 404]
        assert await Wallet.select() is None  # both writes found it gone
    assert created.status_code == (422 if sent < 0 else 201)


async def test_many_concurrent_writers_of_one_version_exactly_one_wins(
    api: httpx.AsyncClient,
) -> None:
    await api.post("/wallet/", json=ALICE)
    responses = await asyncio.gather(
        *(api.put("/wallet/alice", json={"owner": f"o{i}"}, headers=etag(1)) for i in range(10))
    )
    assert sorted(r.status_code for r in responses) == [200] + [412] * 9
    assert (await stored()).version == 2


# -- the OpenAPI document --------------------------------------------------------------------


async def test_openapi_describes_etags_if_match_and_the_version_answers(store: Store) -> None:
    store.register_model(Wallet)
    store.register_model(Tally)
    app = FastAPI()
    app.include_router(CRUDRouter(Wallet))
    app.include_router(CRUDRouter(Tally))
    paths = app.openapi()["paths"]
    item = paths["/wallet/{id}"]
    for method in ("put", "patch"):
        parameters = {p["name"]: p for p in item[method]["parameters"]}
        assert parameters["If-Match"]["in"] == "header"
        assert {"409", "412", "428"} <= set(item[method]["responses"])
        assert "ETag" in item[method]["responses"]["200"]["headers"]
    assert "ETag" in item["get"]["responses"]["200"]["headers"]
    assert "ETag" in paths["/wallet/"]["post"]["responses"]["201"]["headers"]
    assert "412" in item["delete"]["responses"]
    tally = paths["/tally/{id}"]
    for method in ("put", "patch", "delete"):
        parameters = {p["name"]: p for p in tally[method]["parameters"]}
        assert "only *" in parameters["If-Match"]["description"]
        assert "412" in tally[method]["responses"]
        assert not {"409", "428"} & set(tally[method]["responses"])
    assert "headers" not in tally["get"]["responses"]["200"]
