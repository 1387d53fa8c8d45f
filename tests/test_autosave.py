"""Automatic saving: each point of the contract in docs/automatic-saving.md."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest
import redis
import redis.cluster
import uvloop

from pydantic_aioredis import (
    AutoModel,
    AutoSaveError,
    Model,
    NotRegisteredError,
    RedisConfig,
    Store,
)
from tests.keys import key, register_alone
from tests.models import Book, Movie
from tests.servers import RedisServer


class Note(Model):
    _primary_key_field: str = "id"
    _auto_save: bool = True
    _auto_sync: bool = True
    id: str
    text: str = ""
    stars: int = 0


class Unregistered(AutoModel):
    _primary_key_field: str = "id"
    id: str


@pytest.fixture(autouse=True)
def _register(store: Store) -> None:
    for model in (Note, Movie, Book):
        store.register_model(model)


# 1. Construction and assignment return at once: the write is queued, not sent.


async def test_construction_queues_the_write_without_sending_it(
    store: Store, raw: redis.Redis
) -> None:
    Note(id="n1", text="hello")
    assert len(store.pending) == 1
    assert raw.exists(key("note:n1")) == 0  # nothing was sent before the coroutine yields
    for _ in range(500):  # the store's own task sends it once the loop runs
        await asyncio.sleep(0.01)
        if not store.pending:
            break
    assert raw.hgetall(key("note:n1")) == {"id": "n1", "text": "hello", "stars": "0"}
    assert len(store.pending) == 0


def test_under_uvloop(config: RedisConfig) -> None:
    store = Store(name="uvloop", redis_config=config)
    register_alone(store, Note)

    async def scenario() -> list[Note] | None:
        note = Note(id="u", text="one")
        note.stars = 5
        found = await Note.select(ids=["u"])
        await store.close()
        return found

    found = uvloop.run(scenario())
    assert found == [Note(id="u", text="one", stars=5)]
    assert isinstance(asyncio.get_event_loop_policy(), asyncio.DefaultEventLoopPolicy)


# 2. Read-your-writes: every library call first sends what is queued.


async def test_select_sees_earlier_automatic_writes() -> None:
    note = Note(id="n1", text="hello")
    assert await Note.select(ids=["n1"]) == [note]
    note.text = "changed"
    assert await Note.select() == [note]
    assert await Note.select(columns=["text"]) == [{"text": "changed"}]


async def test_other_calls_see_earlier_automatic_writes_in_program_order() -> None:
    Note(id="a")
    Note(id="b")
    assert await Note.count() == 2
    Note(id="c")
    assert await Note.delete(ids=["c"]) == 1  # the queued insert went first
    assert [n.id for n in await Note.select() or []] == ["a", "b"]


async def test_insert_of_another_model_sends_the_queue_first(raw: redis.Redis) -> None:
    Note(id="first")
    await Book.insert(Book(title="t", author="a"))
    assert raw.exists(key("note:first")) == 1


# 3. flush() returns once the writes are in Redis, visible to other clients.


async def test_flush_makes_writes_visible_to_a_second_plain_client(
    store: Store, redis_url: str
) -> None:
    if store.redis_config.in_memory:
        pytest.skip("a second plain redis-py client needs a real server")
    note = Note(id="n1", text="x")
    note.stars = 3
    await store.flush()
    config = store.redis_config
    other: redis.Redis | redis.cluster.RedisCluster
    if config.cluster:
        other = redis.cluster.RedisCluster(config.host, config.port, decode_responses=True)
    else:
        other = redis.Redis.from_url(redis_url, decode_responses=True)
    assert other.hgetall(key("note:n1")) == {"id": "n1", "text": "x", "stars": "3"}
    other.close()


# 4. Assignments between two awaits coalesce into one write of the changed fields.


async def test_a_burst_of_assignments_is_one_write_of_the_changed_fields(
    store: Store, raw: redis.Redis
) -> None:
    note = Note(id="n1", text="before")
    await store.flush()
    raw.hset(key("note:n1"), "text", "set by another program")
    before = _script_calls(raw)
    for i in range(10_000):
        note.stars = i
    await store.flush()
    assert _script_calls(raw) - before == 1
    # `text` was not assigned, so it was not rewritten.
    assert raw.hgetall(key("note:n1")) == {
        "id": "n1",
        "text": "set by another program",
        "stars": "9999",
    }


def _script_calls(raw: redis.Redis) -> int:
    """Scripts run so far by the server (INFO commandstats; the suite runs one test at a time)."""
    if "fakeredis" in type(raw).__module__:
        pytest.skip("the embedded backend keeps no command statistics")
    if isinstance(raw, redis.cluster.RedisCluster):
        nodes = raw.info("commandstats", target_nodes=raw.PRIMARIES).values()
    else:
        nodes = [raw.info("commandstats")]
    names = ("cmdstat_evalsha", "cmdstat_eval")
    return sum(stats.get(name, {"calls": 0})["calls"] for stats in nodes for name in names)


async def test_update_block_on_an_automodel_writes_once_at_the_end(
    store: Store, raw: redis.Redis
) -> None:
    movie = Movie(title="Alien", director="?")
    await store.flush()
    before = _script_calls(raw)
    async with movie.update():
        movie.director = "Ridley"
        movie.director = "Ridley Scott"
        await asyncio.sleep(0.01)  # awaiting inside the block still writes nothing
        assert raw.hget(key("movie:Alien"), "director") == "?"
    assert raw.hget(key("movie:Alien"), "director") == "Ridley Scott"
    assert _script_calls(raw) - before == 1
    assert movie.auto_sync  # settings are back
    movie.director = "R. Scott"
    await store.flush()
    assert raw.hget(key("movie:Alien"), "director") == "R. Scott"


async def test_update_block_restores_settings_when_it_raises(
    store: Store, raw: redis.Redis
) -> None:
    movie = Movie(title="Alien")
    await store.flush()
    with pytest.raises(KeyError):  # noqa: PT012
        async with movie.update():
            movie.director = "nobody"
            raise KeyError("boom")
    assert raw.hget(key("movie:Alien"), "director") == "unknown"
    assert movie.auto_sync
    movie.director = "Ridley Scott"
    await store.flush()
    assert raw.hget(key("movie:Alien"), "director") == "Ridley Scott"


async def test_changing_the_primary_key_writes_a_new_record(store: Store) -> None:
    note = Note(id="old", text="t")
    await store.flush()
    note.id = "new"
    assert [n.id for n in await Note.select() or []] == ["new", "old"]


async def test_a_primary_key_changed_before_the_first_send_writes_only_the_last() -> None:
    note = Note(id="draft", text="t")
    note.id = "final"  # no await in between: the two writes coalesce
    assert await Note.select() == [Note(id="final", text="t")]


# 5. Nothing is lost: failures stay queued, surface at the next call, land later.


async def test_writes_queued_while_redis_is_down_land_once_it_is_back() -> None:
    # The server keeps its data across the outage (an append-only file), as production
    # servers do: the field update of n1 applies to n1 once it is back.
    with RedisServer(None, "--appendonly", "yes", "--appendfsync", "always") as server:
        config = RedisConfig.from_url(server.url, retries=0, socket_connect_timeout=0.5)
        store = Store(name="outage", redis_config=config)
        register_alone(store, Note)
        note = Note(id="n1", text="before the outage")
        await store.flush()

        server.stop()
        note.text = "during the outage"
        Note(id="n2", text="born during the outage")
        await asyncio.sleep(0.05)  # the background send fails
        assert len(store.pending) == 2
        with pytest.raises(AutoSaveError) as caught:
            await Note.select()
        assert isinstance(caught.value.__cause__, redis.ConnectionError)
        with pytest.raises(AutoSaveError):
            await store.flush()
        assert len(store.pending) == 2

        server.start()
        await store.flush()
        assert len(store.pending) == 0
        plain = redis.Redis(port=server.port, decode_responses=True)
        assert plain.hget("note:n1", "text") == "during the outage"
        assert plain.hget("note:n2", "text") == "born during the outage"
        plain.close()
        await store.close()


def test_asyncio_run_returning_right_after_construction_loses_nothing(redis_url: str) -> None:
    program = textwrap.dedent(
        f"""
        import asyncio
        from pydantic_aioredis import AutoModel, RedisConfig, Store

        class Item(AutoModel):
            _primary_key_field: str = "id"
            id: int

        store = Store(name="exit", redis_config=RedisConfig.from_url({redis_url!r}))
        store.register_model(Item)

        async def main():
            for i in range(100):
                Item(id=i)

        asyncio.run(main())
        """
    )
    subprocess.run([sys.executable, "-c", program], check=True, timeout=60)
    plain = redis.Redis.from_url(redis_url)
    assert plain.zcard("item:__index") == 100
    assert all(plain.exists(f"item:{i}") for i in range(100))
    plain.close()


async def test_close_sends_what_is_queued(config: RedisConfig) -> None:
    store = Store(name="closing", redis_config=config)
    register_alone(store, Note)
    Note(id="n1")
    await store.close()
    assert store.sync_client().exists(key("note:n1")) == 1


async def test_async_with_store_closes_and_sends(config: RedisConfig) -> None:
    store = Store(name="closing", redis_config=config)
    register_alone(store, Note)
    async with store:
        Note(id="n1")
    assert store.sync_client().exists(key("note:n1")) == 1


# 6. Outside any running loop, an automatic write is sent before the call returns.


def test_outside_a_loop_writes_are_sent_at_once(config: RedisConfig) -> None:
    store = Store(name="sync", redis_config=config)
    register_alone(store, Note)
    raw = store.sync_client()
    note = Note(id="n1", text="sync")
    assert raw.hget(key("note:n1"), "text") == "sync"
    note.text = "changed"
    assert raw.hget(key("note:n1"), "text") == "changed"
    assert len(store.pending) == 0
    raw.flushdb()


# 7. Instances loaded by select never write themselves back.


async def test_selected_instances_do_not_write_back(store: Store, raw: redis.Redis) -> None:
    Note(id="n1", text="original")
    (loaded,) = await Note.select() or []
    raw.hset(key("note:n1"), "text", "changed elsewhere")
    assert not loaded.auto_save
    assert not loaded.auto_sync
    loaded.stars = 9
    await store.flush()
    assert raw.hgetall(key("note:n1")) == {"id": "n1", "text": "changed elsewhere", "stars": "0"}
    assert len(store.pending) == 0


async def test_a_selected_instance_can_opt_in(store: Store, raw: redis.Redis) -> None:
    Note(id="n1")
    (loaded,) = await Note.select() or []
    loaded.set_auto_sync(True)
    loaded.stars = 4
    await store.flush()
    assert raw.hget(key("note:n1"), "stars") == "4"


# 8. Per-instance settings affect that instance only.


@pytest.mark.parametrize("flag", ["_auto_save", "auto_save"])
async def test_per_instance_auto_save_off(flag: str, raw: redis.Redis) -> None:
    local = Note(id="local", **{flag: False})
    assert not local.auto_save
    assert local.auto_sync
    assert await Note.select() is None
    Note(id="other")
    assert [n.id for n in await Note.select() or []] == ["other"]
    assert Note._auto_save is True  # the class keeps its setting


async def test_per_instance_auto_sync_off_and_setters(store: Store, raw: redis.Redis) -> None:
    quiet = Note(id="quiet", _auto_sync=False)
    loud = Note(id="loud")
    await store.flush()  # else the queued construction writes carry the new values
    quiet.stars = 1
    loud.stars = 1
    await store.flush()
    assert raw.hget(key("note:quiet"), "stars") == "0"
    assert raw.hget(key("note:loud"), "stars") == "1"
    quiet.set_auto_sync()
    loud.set_auto_sync(False)
    quiet.stars = 2
    loud.stars = 2
    await store.flush()
    assert (raw.hget(key("note:quiet"), "stars"), raw.hget(key("note:loud"), "stars")) == ("2", "1")
    quiet.set_auto_save(False)
    assert not quiet.auto_save


async def test_equality_ignores_per_instance_settings(store: Store) -> None:
    a = Note(id="same", _auto_save=False, _auto_sync=False)
    b = Note(id="same", auto_save=False)
    assert a == b
    (loaded,) = await Note.select(ids=["same"]) or [None]  # b was not saved either
    assert loaded is None


async def test_auto_sync_only_model_saves_changes_not_construction(raw: redis.Redis) -> None:
    class Draft(Model):
        _primary_key_field: str = "id"
        _auto_sync: bool = True
        id: str
        body: str = ""

    assert Note._store is not None
    Note._store.register_model(Draft)
    draft = Draft(id="d")
    assert await Draft.select() is None
    await Draft.insert(draft)
    draft.body = "text"
    assert await Draft.select(columns=["body"]) == [{"body": "text"}]


# 9. A model without a store says so instead of losing data.


def test_unregistered_automodel_fails_at_construction() -> None:
    with pytest.raises(NotRegisteredError, match=r"Unregistered.*register_model\(Unregistered\)"):
        Unregistered(id="x")


async def test_unregistered_model_fails_at_its_first_operation() -> None:
    class Lonely(Model):
        _primary_key_field: str = "id"
        _auto_sync: bool = True
        id: str
        value: int = 0

    lonely = Lonely(id="x")  # nothing needs the store yet
    with pytest.raises(NotRegisteredError, match="Lonely"):
        lonely.value = 1
    with pytest.raises(NotRegisteredError, match="Lonely"):
        await Lonely.select()
    with pytest.raises(NotRegisteredError, match="Lonely"):
        await lonely.save()
