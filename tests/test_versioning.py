"""Optimistic concurrency: a version field, checked atomically by save() and update()."""

from __future__ import annotations

import asyncio

import pytest
import redis

from pydantic_aioredis import ConfigurationError, ConflictError, Model, Store
from tests.keys import key


class Account(Model):
    _primary_key_field: str = "id"
    _version_field: str = "version"
    id: str
    balance: int = 0
    version: int = 0


@pytest.fixture(autouse=True)
def _register(store: Store) -> None:
    store.register_model(Account)


async def test_each_save_moves_to_the_next_version(raw: redis.Redis) -> None:
    account = Account(id="a")
    await account.save()
    assert account.version == 1
    account.balance = 10
    await account.save()
    assert account.version == 2
    assert raw.hgetall(key("account:a")) == {"id": "a", "balance": "10", "version": "2"}


async def test_a_stale_copy_cannot_overwrite_a_newer_record(raw: redis.Redis) -> None:
    await Account(id="a").save()
    first, second = await Account.select() or [], await Account.select() or []
    mine, theirs = first[0], second[0]
    theirs.balance = 50
    await theirs.save()
    mine.balance = 99
    with pytest.raises(ConflictError, match="no longer at version 1") as caught:
        await mine.save()
    assert (caught.value.key, caught.value.version) == (key("account:a"), 1)
    assert mine.version == 1  # unchanged: select again, reapply, retry
    assert raw.hgetall(key("account:a")) == {"id": "a", "balance": "50", "version": "2"}
    (fresh,) = await Account.select() or []
    fresh.balance += 1
    await fresh.save()
    assert raw.hget(key("account:a"), "balance") == "51"


async def test_of_many_concurrent_saves_of_one_version_exactly_one_wins() -> None:
    await Account(id="a").save()
    copies = [(await Account.select() or [])[0] for _ in range(20)]
    for i, copy in enumerate(copies):
        copy.balance = i
    results = await asyncio.gather(*(copy.save() for copy in copies), return_exceptions=True)
    assert sum(result is None for result in results) == 1
    assert all(isinstance(r, ConflictError) for r in results if r is not None)
    (stored,) = await Account.select() or []
    assert stored.version == 2
    assert stored.balance == results.index(None)


async def test_update_blocks_are_checked_too() -> None:
    await Account(id="a", balance=5).save()
    (mine,) = await Account.select() or []
    (theirs,) = await Account.select() or []
    async with theirs.update():
        theirs.balance = 6
    with pytest.raises(ConflictError):
        async with mine.update():
            mine.balance = 7
    assert [a.balance for a in await Account.select() or []] == [6]


async def test_a_record_deleted_meanwhile_is_a_conflict() -> None:
    account = Account(id="a")
    await account.save()
    await Account.delete(ids=["a"])
    with pytest.raises(ConflictError):
        await account.save()
    assert await Account.select() is None


def test_versioned_models_do_not_save_automatically(store: Store) -> None:
    account = Account(id="a", _auto_sync=True)
    with pytest.raises(ConfigurationError, match="_version_field"):
        account.balance = 1
    with pytest.raises(ConfigurationError, match="_version_field"):
        Account(id="b", _auto_save=True)


def test_the_version_field_must_exist(store: Store) -> None:
    class Broken(Model):
        _primary_key_field: str = "id"
        _version_field: str = "revision"
        id: str

    with pytest.raises(ConfigurationError, match="'revision', which is not a field"):
        store.register_model(Broken)


async def test_a_cancellation_that_comes_as_the_write_ends_keeps_its_outcome() -> None:
    # A versioned save moves the instance to the next version from the outcome of its
    # write: a cancellation arriving in the same turn as that outcome must not lose it.
    from pydantic_aioredis._table import run_to_end

    written: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    caller = asyncio.ensure_future(run_to_end(written))
    await asyncio.sleep(0)  # the caller now waits for the write
    written.set_result(1)
    caller.cancel()
    assert await caller == (1, True)
