"""A call that redis-py sends again (a timeout, then a retry) is applied once, and reports
what really happened; a cancelled versioned write leaves the instance as Redis has it.

The server is stalled for longer than the client's socket timeout (SIGSTOP, then SIGCONT):
the first send of a call is read by the server when it wakes up and runs, while redis-py,
having timed out, sends the call again on a new connection.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis

from pydantic_aioredis import Model, RedisConfig, Store
from tests.keys import register_alone
from tests.servers import REDIS_SERVER, RedisServer

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="needs redis-server")


class Account(Model):
    _primary_key_field: str = "id"
    _version_field: str = "version"
    id: str
    balance: int = 0
    version: int = 0


class Entry(Model):
    _primary_key_field: str = "id"
    id: str


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
async def store(server: RedisServer) -> AsyncIterator[Store]:
    config = RedisConfig.from_url(server.url, socket_timeout=0.5, retries=3)
    store = Store(name="retries", redis_config=config)
    register_alone(store, Account, Entry)
    yield store
    await store.close()


def stall(server: RedisServer, seconds: float) -> threading.Thread:
    """Stop the server process now, and let it go on after `seconds`."""
    assert server.process is not None
    pid = server.process.pid
    os.kill(pid, signal.SIGSTOP)
    thread = threading.Timer(seconds, os.kill, (pid, signal.SIGCONT))
    thread.start()
    return thread


def stored(server: RedisServer, key: str) -> dict[str, str]:
    with redis.Redis(port=server.port, decode_responses=True) as client:
        return client.hgetall(key)


async def test_a_versioned_save_sent_twice_is_applied_once(
    server: RedisServer, store: Store
) -> None:
    account = Account(id="alice")
    await account.save()
    account.balance += 10
    waking = stall(server, 0.8)
    await account.save()  # times out, lands when the server wakes, is sent again
    waking.join()
    assert account.version == 2
    assert stored(server, "account:alice") == {"id": "alice", "balance": "10", "version": "2"}


async def test_the_deposit_loop_of_the_docs_deposits_once(
    server: RedisServer, store: Store
) -> None:
    await Account(id="bob").save()
    (account,) = await Account.select(ids=["bob"]) or []
    account.balance += 10
    waking = stall(server, 0.8)
    await account.save()
    waking.join()
    (account,) = await Account.select(ids=["bob"]) or []
    assert (account.balance, account.version) == (10, 2)


# Whether the first send of a call runs before redis-py's retry depends on which pooled
# connection it went out on; three rounds make the case happen.


async def test_a_delete_sent_twice_counts_what_it_deleted(
    server: RedisServer, store: Store
) -> None:
    for _ in range(3):
        await Entry.insert([Entry(id="a"), Entry(id="b")])
        waking = stall(server, 0.8)
        deleted = await Entry.delete(ids=["a", "b", "c"])
        waking.join()
        assert deleted == 2
        assert await Entry.count() == 0


async def test_a_delete_all_sent_twice_counts_what_it_deleted(
    server: RedisServer, store: Store
) -> None:
    for _ in range(3):
        await Entry.insert([Entry(id=str(i)) for i in range(10)])
        waking = stall(server, 0.8)
        deleted = await Entry.delete()
        waking.join()
        assert deleted == 10


async def test_a_cancelled_versioned_update_leaves_memory_as_redis_has_it(
    server: RedisServer, store: Store
) -> None:
    account = Account(id="carol")
    await account.save()

    async def deposit() -> None:
        async with account.update():
            account.balance = 5

    waking = stall(server, 0.8)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(deposit(), 0.2)  # cancelled while the write is in flight
    waking.join()
    in_redis = stored(server, "account:carol")
    assert account.version == int(in_redis["version"])
    assert account.balance == int(in_redis["balance"])
    account.balance += 1
    await account.save()  # and the next save is not a false conflict
    assert stored(server, "account:carol")["balance"] == str(account.balance)


class Note(Model):
    _primary_key_field: str = "id"
    id: str
    text: str = ""


async def test_an_update_sent_again_after_its_record_is_gone_reports_its_first_run(
    server: RedisServer, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # redis-py sends a call again after a lost reply; by then another program may have
    # deleted the record (or it expired). The first run wrote: no ConflictError may say
    # that nothing was written.
    register_alone(store, Note)
    note = Note(id="n")
    await note.save()
    sent = []
    execute = store.execute

    async def keep(calls: list[Any]) -> list[Any]:
        sent.extend(calls)
        return await execute(calls)

    monkeypatch.setattr(store, "execute", keep)
    async with note.update():
        note.text = "first run"
    (call,) = sent
    with redis.Redis(port=server.port) as other_program:
        other_program.delete("note:n")
    assert await execute([call]) == [[]]  # as redis-py's resend: the first run's reply
    assert await Note.select() is None  # and nothing written again
