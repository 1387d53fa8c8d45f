"""Until a model's 1.4 records are migrated, every call on it fails with one clear error.

The 1.4 layout is written here with plain commands (a set of record keys as the index, as
1.4 kept it); tests/test_upgrade_data.py does the same with data written by 1.4 itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

from pydantic_aioredis import (
    AutoModel,
    InvalidInputError,
    Model,
    RedisConfig,
    RedisOperationError,
    Store,
    UnmigratedDataError,
)
from tests.keys import register_alone

pytestmark = pytest.mark.onlynoncluster  # 1.4 could not write to a Redis Cluster


class Book(Model):
    _primary_key_field: str = "title"
    title: str
    author: str = "someone"


class Gadget(AutoModel):
    _primary_key_field: str = "name"
    _redis_prefix: str = "MyApp"
    name: str
    size: int = 0


def write_1_4(raw: redis.Redis, namespace: str, pks: list[str]) -> None:
    """Records and index in the layout 1.4 wrote them."""
    for pk in pks:
        raw.hset(namespace + pk, mapping={"title": pk, "author": "1.4", "name": pk, "size": 1})
        raw.sadd(namespace + "__index", namespace + pk)


def dump(raw: redis.Redis) -> dict[str, Any]:
    read = {
        "hash": raw.hgetall,
        "set": lambda key: sorted(raw.smembers(key)),
        "zset": lambda key: raw.zrange(key, 0, -1, withscores=True),
        "string": raw.get,
    }
    return {key: read[raw.type(key)](key) for key in raw.keys("*")}


CALLS: dict[str, Callable[[], Awaitable[Any]]] = {
    "select": lambda: Book.select(),
    "select ids": lambda: Book.select(ids=["a"]),
    "select columns": lambda: Book.select(columns=["author"]),
    "page": lambda: Book.select(skip=1, limit=1),
    "count": lambda: Book.count(),
    "insert": lambda: Book.insert(Book(title="new")),
    "save": lambda: Book(title="a", author="changed").save(),
    "delete ids": lambda: Book.delete(ids=["a"]),
    "delete all": lambda: Book.delete(),
}


@pytest.mark.parametrize("call", CALLS)
async def test_every_call_fails_whole_naming_the_model_and_the_command(
    store: Store, raw: redis.Redis, call: str
) -> None:
    store.register_model(Book)
    write_1_4(raw, "book:", ["a", "b"])
    before = dump(raw)
    with pytest.raises(UnmigratedDataError) as caught:
        await CALLS[call]()
    error = caught.value
    assert (error.model_name, error.key, error.interrupted) == ("Book", "book:__index", False)
    assert error.command.startswith("python -m pydantic_aioredis upgrade-1.4 --url ")
    assert error.command.endswith(f"--models {__name__}:Book")
    message = str(caught.value)
    assert message.startswith("Book: its records are still in the pydantic-aioredis 1.4 layout")
    assert "python -m pydantic_aioredis upgrade-1.4 --url " in message
    assert f"--models {__name__}:Book" in message
    assert dump(raw) == before


async def test_update_blocks_write_nothing_and_leave_the_store_usable(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Book)
    book = Book(title="a")
    write_1_4(raw, "book:", ["a"])
    before = dump(raw)
    for attempt in range(2):
        with pytest.raises(UnmigratedDataError):
            async with book.update():
                book.author = f"changed {attempt}"  # update() writes what differs
        assert dump(raw) == before
    raw.flushdb()
    await Book.insert(book)
    assert await Book.select() == [book]


async def test_a_1_4_index_under_the_lower_cased_prefix_is_found(
    store: Store, raw: redis.Redis
) -> None:
    # 1.4 lower-cased the prefix: our scripts, looking under "MyApp:", would see no records.
    store.register_model(Gadget)
    write_1_4(raw, "myapp:gadget:", ["g1"])
    before = dump(raw)
    with pytest.raises(UnmigratedDataError, match=r"'myapp:gadget:__index' is a 1\.4 index"):
        await Gadget.select()
    Gadget(name="g2")  # an automatic write: refused when sent, nothing written
    with pytest.raises(UnmigratedDataError, match="Gadget: its records are still"):
        await store.flush()
    assert dump(raw) == before
    # The caller has the error; the write, which cannot succeed before a migration, is
    # dropped rather than left to hold up every later call on the store.
    assert not store.pending
    raw.delete("myapp:gadget:__index")
    assert await Gadget.select() is None


async def test_a_migration_left_unfinished_says_to_run_it_again(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Book)
    raw.sadd("book:__index:~upgrading_1.4", "book:a")
    with pytest.raises(UnmigratedDataError, match="was started and has not finished") as caught:
        await Book.count()
    assert caught.value.interrupted
    assert caught.value.key == "book:__index:~upgrading_1.4"


async def test_no_record_can_be_named_like_the_migration_keys(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Book)
    for title in ("__index:~upgrading_1.4", "__index:~unconverted_1.4"):
        with pytest.raises(InvalidInputError, match="reserved"):
            await Book.insert(Book(title=title))
    # The names of an earlier version are records like any other.
    odd = [Book(title="__upgrading_1.4"), Book(title="__unconverted_1.4")]
    await Book.insert(odd)
    assert await Book.select() == sorted(odd, key=lambda book: book.title)


async def test_the_check_is_made_once_per_model_and_connection(redis_url: str) -> None:
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    store = Store(name="once", redis_config=RedisConfig.from_url(redis_url))
    store.register_model(Book)
    await Book.count()
    raw.config_resetstat()
    for _ in range(5):
        await Book.count()
    # One script call per count, none for the check: it was made by the first call.
    assert raw.info("commandstats")["cmdstat_evalsha"]["calls"] == 5
    await store.close()
    # Checked once, a connection is not checked again: a set 1.4 writes later under the
    # lower-cased prefix goes unseen until the next connection. (One at our index's own key
    # makes our scripts fail with WRONGTYPE, which is checked again: next test.)
    other = Store(name="other", redis_config=RedisConfig.from_url(redis_url))
    register_alone(other, Gadget)
    await Gadget.count()
    write_1_4(raw, "myapp:gadget:", ["g1"])
    assert await Gadget.count() == 0
    await other.close()
    fresh = Store(name="fresh", redis_config=RedisConfig.from_url(redis_url))
    register_alone(fresh, Gadget)
    with pytest.raises(UnmigratedDataError):
        await Gadget.count()
    await fresh.close()
    raw.close()


async def test_a_1_4_index_written_after_the_check_turns_wrongtype_into_the_same_error(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Book)
    await Book.insert(Book(title="ours"))
    raw.delete("book:__index")
    write_1_4(raw, "book:", ["a"])
    before = dump(raw)
    with pytest.raises(UnmigratedDataError) as caught:
        await Book.insert(Book(title="new"))
    cause = caught.value.__cause__
    assert isinstance(cause, RedisOperationError)
    assert "WRONGTYPE" in str(cause)
    assert dump(raw) == before


async def test_other_errors_pass_through_unchanged(store: Store, raw: redis.Redis) -> None:
    store.register_model(Book)
    raw.set("book:a", "not a hash")
    raw.zadd("book:__index", {"a": 0})
    with pytest.raises(RedisOperationError) as caught:
        await Book.insert(Book(title="a"))
    assert type(caught.value) is RedisOperationError
    assert "WRONGTYPE" in str(caught.value)


async def test_a_refused_automatic_write_reaches_the_next_call_and_then_holds_nothing_up(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Gadget)
    store.register_model(Book)
    write_1_4(raw, "myapp:gadget:", ["g1"])
    Gadget(name="g2")  # queued; whether or not its background send ran yet...
    with pytest.raises(UnmigratedDataError, match="Gadget"):
        await Book.count()  # ...the next call on the store sends it first, and raises
    assert await Book.insert(Book(title="b")) == 1
    assert await Book.count() == 1
