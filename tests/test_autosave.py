"""Automatic saving: each point of the contract in docs/automatic-saving.md."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from typing import Annotated

import pytest
import redis
import redis.cluster
import uvloop

from pydantic_aioredis import (
    AutoModel,
    AutoSaveError,
    ConflictError,
    Indexed,
    IndexNotReadyError,
    InvalidInputError,
    Model,
    NotRegisteredError,
    RedisConfig,
    RedisOperationError,
    SerializationError,
    Store,
    UsageError,
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
            movie.set_auto_sync(False)  # a setting changed in the block is undone too
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


class IndexedNote(AutoModel):
    _primary_key_field: str = "id"
    _table_name: str = "note"
    id: str
    text: Annotated[str, Indexed()] = ""


def test_outside_a_loop_a_first_write_records_the_index_state(config: RedisConfig) -> None:
    # Sent with the blocking client, a model's first write records its index state as an
    # awaited one does: a new model's index is complete, another release's is not trusted.
    store = Store(name="sync", redis_config=config)
    register_alone(store, IndexedNote)
    IndexedNote(id="n1", text="sync")
    assert asyncio.run(_count_then_close(store)) == 1
    store.unregister_model(IndexedNote)
    old_release = Store(name="old release", redis_config=config)
    register_alone(old_release, Note)
    Note(id="n2", text="sync")  # its first write drops the index of text
    asyncio.run(old_release.close())
    old_release.unregister_model(Note)
    register_alone(store, IndexedNote)
    with pytest.raises(IndexNotReadyError):
        asyncio.run(_count_then_close(store))


def test_a_first_write_a_closed_loop_left_unfinished_does_not_block_the_next_loop(
    config: RedisConfig,
) -> None:
    # A task of another loop was recording the index state when that loop was closed: a
    # later loop records it itself (as it would while the other loop still runs).
    store = Store(name="loops", redis_config=config)
    register_alone(store, IndexedNote)
    closed = asyncio.new_event_loop()
    store._tables[IndexedNote].index_state._preparing = closed.create_future()
    closed.close()

    async def insert_then_count() -> int:
        await IndexedNote.insert(IndexedNote(id="n1", text="sync"))
        return await _count_then_close(store)

    assert asyncio.run(asyncio.wait_for(insert_then_count(), 10)) == 1


async def _count_then_close(store: Store) -> int:
    try:
        return await IndexedNote.count(where={"text": "sync"})
    finally:
        await store.close()


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


# 10. Reading never writes, whatever the model's own __init__ does.


class Session(AutoModel):
    _primary_key_field: str = "id"
    id: str
    user: str = ""
    seen: int = 0

    def __init__(self, **data: object) -> None:
        super().__init__(**data)
        self.seen = self.seen  # an __init__ that assigns: with _auto_sync, a write


async def test_a_model_with_its_own_init_loads_without_writing(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Session)
    await Session.insert(Session(id="s", user="ann", _auto_save=False), life_span_seconds=60)
    (loaded,) = await Session.select() or []
    raw.hset(key("session:s"), "user", "changed by another client")
    await store.flush()
    assert len(store.pending) == 0
    assert raw.hget(key("session:s"), "user") == "changed by another client"
    assert raw.pttl(key("session:s")) > 50_000  # not rewritten without its TTL
    assert not loaded.auto_sync
    built = Session(id="new")  # constructing one still saves it
    await store.flush()
    assert await Session.select(ids=["new"]) == [built]


# 11. update() blocks: two tasks on one instance, and changes made in place.


async def test_a_second_task_cannot_open_an_update_block_on_the_same_instance(
    store: Store,
) -> None:
    book = Book(title="b", author="a")
    await Book.insert(book)
    entered = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with book.update():
            book.author = "first"
            entered.set()
            await release.wait()

    task = asyncio.create_task(first())
    await entered.wait()
    with pytest.raises(UsageError, match="another task has an update"):
        async with book.update():
            book.price = 1.0
    release.set()
    await task
    assert [b.author for b in await Book.select() or []] == ["first"]


async def test_a_nested_block_in_the_same_task_is_part_of_the_outer_one(store: Store) -> None:
    book = Book(title="b", author="a")
    await Book.insert(book)
    async with book.update():
        book.author = "outer"
        async with book.update():
            book.price = 2.0
        assert await Book.select(columns=["author"]) == [{"author": "a"}]
    assert await Book.select() == [book]


async def test_update_writes_changes_made_in_place(store: Store, raw: redis.Redis) -> None:
    book = Book(title="b", author="a", tags=["one"])
    await Book.insert(book)
    async with book.update():
        book.tags.append("two")
    assert await Book.select() == [book]
    assert raw.hget(key("book:b"), "tags") == '["one","two"]'


async def test_mark_changed_saves_a_change_made_in_place(store: Store, raw: redis.Redis) -> None:
    class Shelf(AutoModel):
        _primary_key_field: str = "id"
        id: str
        books: list[str] = []

    store.register_model(Shelf)
    shelf = Shelf(id="s")
    await store.flush()
    shelf.books.append("Dune")  # nobody is told: not saved
    await store.flush()
    assert raw.hget(key("shelf:s"), "books") == "[]"
    shelf.mark_changed("books")
    await store.flush()
    assert raw.hget(key("shelf:s"), "books") == '["Dune"]'
    with pytest.raises(InvalidInputError, match="no field"):
        shelf.mark_changed("nope")


# 12. A record that is gone stays gone: field updates apply to existing records only.


async def test_an_automatic_field_update_does_not_bring_back_an_expired_record(
    store: Store, raw: redis.Redis
) -> None:
    session = Note(id="s1", _auto_save=False)
    await Note.insert(session, life_span_seconds=0.1)
    await asyncio.sleep(0.2)
    session.text = "still here?"
    await store.flush()
    assert raw.exists(key("note:s1")) == 0
    assert await Note.select() is None


async def test_an_automatic_field_update_does_not_bring_back_a_deleted_record(
    store: Store,
) -> None:
    note = Note(id="n1")
    await Note.delete(ids=["n1"])
    note.text = "logged out"
    await store.flush()
    assert await Note.select() is None
    never = Note(id="n2", _auto_save=False)  # never inserted
    never.text = "x"
    assert await Note.select() is None


async def test_update_of_a_gone_record_raises_and_writes_nothing(store: Store) -> None:
    book = Book(title="gone", author="a")
    await Book.insert(book)
    await Book.delete(ids=["gone"])
    with pytest.raises(ConflictError, match="no longer exists"):
        async with book.update():
            book.author = "b"
    assert await Book.select() is None
    await book.save()  # save() writes it whole again
    assert await Book.select() == [book]


# 13. One bad write never wedges the store: it is raised once, dropped, and logged.


async def test_a_value_utf8_cannot_carry_is_raised_once_and_dropped(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    note = Note(id="n1")
    other = Note(id="n2")
    await store.flush()
    note.text = "bad \ud800"  # a lone surrogate: no UTF-8 for it
    other.text = "fine"
    await asyncio.sleep(0.05)  # the background send meets it
    with pytest.raises(SerializationError, match=r"Note 'n1'.*text"):
        await Book.select()  # any call on the store: raised there, once
    assert await Book.select() is None  # and the store works again
    assert [n.text for n in await Note.select() or []] == ["", "fine"]
    assert len(store.pending) == 0
    assert any("dropped the automatic write of Note 'n1'" in r.message for r in caplog.records)
    assert not any("\ud800" in r.getMessage() for r in caplog.records)
    await store.close()  # closing is clean too


async def test_bytes_that_are_not_utf8_are_dropped_not_wedged(store: Store) -> None:
    class Blob(AutoModel):
        _primary_key_field: str = "id"
        id: str
        data: bytes = b""

    store.register_model(Blob)
    Blob(id="bad", data=b"\xff\xfe")
    good = Blob(id="good", data=b"ok")
    with pytest.raises(SerializationError, match="Blob 'bad'"):
        await store.flush()
    await store.flush()
    assert await Blob.select() == [good]


@pytest.mark.onlynoncluster
async def test_a_key_of_the_wrong_type_drops_that_write_only(
    store: Store, raw: redis.Redis
) -> None:
    Note(id="ok1")
    raw.set(key("note:taken"), "another program's string")
    Note(id="taken")
    Note(id="ok2")
    with pytest.raises(RedisOperationError, match=r"Note 'taken'.*WRONGTYPE") as caught:
        await store.flush()
    assert not isinstance(caught.value, AutoSaveError)  # not kept: it can never succeed
    await store.flush()
    assert [n.id for n in await Note.select(invalid=[]) or []] == ["ok1", "ok2"]
    assert raw.get(key("note:taken")) == "another program's string"


async def test_the_queue_can_be_inspected_and_discarded() -> None:
    with RedisServer() as server:
        config = RedisConfig.from_url(server.url, retries=0, socket_connect_timeout=0.5)
        store = Store(name="queue", redis_config=config)
        register_alone(store, Note, Book)
        server.stop()
        Note(id="a")
        Note(id="b", _auto_save=False).text = "x"  # a field update of a record not there
        assert [(q.model, q.key, q.fields) for q in store.pending.queued()] == [
            (Note, "a", None),
            (Note, "b", ("text",)),
        ]
        with pytest.raises(AutoSaveError):
            await store.flush()
        assert store.pending.discard(Note, ids=["a"]) == 1
        assert [q.key for q in store.pending.queued()] == ["b"]
        assert store.pending.discard() == 1
        server.start()
        await store.flush()  # nothing left to send, nothing raised
        assert await Note.select() is None
        await store.close()
