"""What a hostile tester found broken, each kept from coming back (see docs/guarantees.md and
docs/automatic-saving.md for the promises)."""

from __future__ import annotations

import asyncio
import os

import pytest
import redis
import redis.asyncio
from pydantic import Field, SecretStr, computed_field, field_serializer

from pydantic_aioredis import (
    AutoModel,
    ConfigurationError,
    ConflictError,
    CorruptRecordError,
    InvalidInputError,
    Model,
    RedisConfig,
    RedisOperationError,
    SerializationError,
    Store,
)
from tests.keys import key, register_alone
from tests.servers import RedisServer


class Account(Model):
    _primary_key_field: str = "id"
    _version_field: str = "version"
    id: str
    balance: int = 0
    owner: str = ""
    version: int = 0


# Optimistic concurrency.


async def test_two_saves_of_one_stale_instance_cannot_both_pass(store: Store) -> None:
    store.register_model(Account)
    await Account(id="a", balance=100).save()
    (mine,) = await Account.select(ids=["a"]) or []
    (theirs,) = await Account.select(ids=["a"]) or []
    theirs.owner = "carol"
    await theirs.save()
    mine.balance = 999
    results = await asyncio.gather(mine.save(), mine.save(), return_exceptions=True)
    assert all(isinstance(result, ConflictError) for result in results)
    (stored,) = await Account.select(ids=["a"]) or []
    assert (stored.owner, stored.balance, stored.version) == ("carol", 100, 2)
    assert mine.version == 1


@pytest.mark.parametrize("version", [2**53 - 1, 2**53, 2**53 + 1, 2**63, 10**30])
async def test_versions_past_2_53_are_still_checked(store: Store, version: int) -> None:
    store.register_model(Account)
    await Account.insert(Account(id="a", version=version))
    (first,) = await Account.select(ids=["a"]) or []
    (second,) = await Account.select(ids=["a"]) or []
    first.balance += 10
    await first.save()
    second.balance += 20
    with pytest.raises(ConflictError):
        await second.save()
    (stored,) = await Account.select(ids=["a"]) or []
    assert (stored.balance, stored.version) == (10, version + 1)


async def test_a_record_deleted_after_it_was_saved_is_a_conflict(store: Store) -> None:
    store.register_model(Account)
    account = Account(id="b")
    await account.save()  # version 1: written through save()
    await Account.delete(ids=["b"])
    account.balance = 5
    with pytest.raises(ConflictError):
        await account.save()
    assert await Account.select() is None


# update() blocks and queued automatic writes.


class Counter(AutoModel):
    _primary_key_field: str = "id"
    id: str
    n: int = 0
    other: str = ""


async def test_an_update_block_that_raises_writes_nothing_even_with_writes_queued(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Counter)
    counter = Counter(id="c")  # its whole write is queued, not sent

    async def change_then_fail() -> None:
        async with counter.update():
            counter.n = 1_000_000
            await asyncio.sleep(0.05)  # the store's own task runs meanwhile
            raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await change_then_fail()
    assert raw.hget(key("counter:c"), "n") == "0"


async def test_changes_made_while_a_dropped_write_was_in_flight_are_kept(
    store: Store, raw: redis.Redis
) -> None:
    class Doc(AutoModel):
        _primary_key_field: str = "id"
        id: str
        body: str = ""
        other: str = ""

        @field_serializer("body")
        def body_text(self, body: str) -> str:
            if body == "boom":
                raise ValueError("cannot store boom")
            return body

    store.register_model(Doc)
    doc = Doc(id="d")
    await store.flush()
    doc.body = "boom"
    for _ in range(3):
        await asyncio.sleep(0)  # the background send is under way, with "boom"
    doc.body = "fixed"
    doc.other = "also this"
    with pytest.raises(SerializationError, match="Doc 'd'"):
        await store.flush()
    await store.flush()
    # (a field with a serializer of its own is stored as JSON: "fixed", quoted)
    assert raw.hgetall(key("doc:d")) == {"id": "d", "body": '"fixed"', "other": "also this"}


async def test_assigning_the_primary_key_its_own_value_does_not_bring_a_record_back(
    store: Store,
) -> None:
    store.register_model(Counter)
    counter = Counter(id="s1")
    await store.flush()
    await Counter.delete(ids=["s1"])
    counter.id = "s1"  # a handler copying a request body field by field
    counter.n = 99
    counter.mark_changed("id")
    await store.flush()
    assert await Counter.select() is None


async def test_after_a_key_change_the_old_record_keeps_what_was_assigned_before(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Counter)
    counter = Counter(id="A")
    await store.flush()
    counter.n = 1
    counter.id = "B"
    counter.n = 2
    await store.flush()
    assert raw.hget(key("counter:A"), "n") == "1"
    assert raw.hget(key("counter:B"), "n") == "2"


# Values that cannot be stored: a clear error, the store keeps working.


class Order(AutoModel):
    _primary_key_field: str = "id"
    id: str
    total: int = 10
    qty: int = 1

    @computed_field  # type: ignore[prop-decorator]
    @property
    def average(self) -> float:
        return self.total / self.qty


async def test_a_computed_field_is_not_stored_so_its_failure_changes_nothing(
    store: Store, raw: redis.Redis
) -> None:
    store.register_model(Order)
    Order(id="o", qty=0)  # average would divide by zero: it is not stored, so no matter
    await Order.insert(Order(id="z", qty=0))
    assert raw.hgetall(key("order:o")) == {"id": "o", "total": "10", "qty": "0"}
    assert len(await Order.select() or []) == 2


async def test_a_serializer_that_raises_anything_is_a_serialization_error(
    store: Store,
) -> None:
    class Thing(AutoModel):
        _primary_key_field: str = "id"
        id: str
        data: dict[str, int] = {}

        @field_serializer("data")
        def data_out(self, data: dict[str, int]) -> dict[str, int]:
            return {k: data[k] // data["div"] for k in data}  # ZeroDivisionError, KeyError

    store.register_model(Thing)
    with pytest.raises(SerializationError, match=r"Thing\.data.*ZeroDivisionError"):
        await Thing.insert(Thing(id="x", data={"div": 0}, _auto_save=False))
    Thing(id="y", data={"a": 1})  # KeyError in the background
    with pytest.raises(SerializationError, match="Thing 'y'"):
        await Thing.count()
    assert await Thing.count() == 0  # raised once; the store works


async def test_a_non_optional_secret_set_to_none_is_refused_at_write_time(
    store: Store, raw: redis.Redis
) -> None:
    class Login(Model):
        _primary_key_field: str = "user"
        user: str
        password: SecretStr

    store.register_model(Login)
    login = Login(user="u", password=SecretStr("pw"))
    login.password = None  # type: ignore[assignment]  # no validate_assignment
    with pytest.raises(SerializationError, match=r"Login\.password"):
        await login.save()
    assert raw.exists(key("login:u")) == 0


async def test_broken_json_from_another_program_cannot_set_other_fields(
    store: Store, raw: redis.Redis
) -> None:
    class User(Model):
        _primary_key_field: str = "id"
        id: str
        is_admin: bool = False
        nickname: str | None = None
        visits: int = 0

    store.register_model(User)
    await User.insert(User(id="u1"))
    raw.hset(key("user:u1"), "nickname", '"eve","is_admin":true')
    with pytest.raises(CorruptRecordError, match="nickname"):
        await User.select(ids=["u1"])
    raw.hset(key("user:u1"), mapping={"nickname": "null", "visits": '1,"id":"u2"'})
    problems: list[CorruptRecordError] = []
    assert await User.select(invalid=problems) is None
    assert [p.field for p in problems] == ["visits"]


async def test_one_forged_value_among_many_sound_records_is_found(
    store: Store, raw: redis.Redis
) -> None:
    """Many records are read as one document: a value that is more than one JSON value,
    in a record that has every field, is still caught, and only its record is skipped."""

    class Account(Model):
        _primary_key_field: str = "id"
        id: str
        roles: list[str]
        is_admin: bool = False
        limit: int = 0

    store.register_model(Account)
    await Account.insert([Account(id=f"a{i:02}", roles=["x", "y"]) for i in range(40)])
    raw.hset(key("account:a17"), "roles", '["x"],"is_admin":true')
    raw.hset(key("account:a23"), "limit", '5,"is_admin":true')
    with pytest.raises(CorruptRecordError, match="roles"):
        await Account.select()
    problems: list[CorruptRecordError] = []
    found = await Account.select(invalid=problems) or []
    assert [(p.key, p.field) for p in problems] == [
        (key("account:a17"), "roles"),
        (key("account:a23"), "limit"),
    ]
    assert len(found) == 38
    assert not any(account.is_admin for account in found)
    assert {account.roles[0] for account in found} == {"x"}


async def test_a_str_key_with_a_serializer_is_found_by_id(store: Store) -> None:
    class Member(Model):
        _primary_key_field: str = "email"
        email: str
        name: str = ""

        @field_serializer("email")
        def lower(self, email: str) -> str:
            return email.lower()

    store.register_model(Member)
    await Member.insert(Member(email="Bob@X.org"))
    assert len(await Member.select(ids=["Bob@X.org"]) or []) == 1
    assert len(await Member.select(ids="bob@x.org") or []) == 1
    assert await Member.delete(ids=["BOB@X.ORG"]) == 1


async def test_a_default_factory_that_needs_other_fields_is_a_clear_column_error(
    store: Store, raw: redis.Redis
) -> None:
    class Page(Model):
        _primary_key_field: str = "title"
        title: str
        slug: str = Field(default_factory=lambda data: data["title"].lower())

    store.register_model(Page)
    await Page.insert(Page(title="Dune"))
    raw.hdel(key("page:Dune"), "slug")
    assert [p.slug for p in await Page.select() or []] == ["dune"]
    with pytest.raises(InvalidInputError, match=r"Page\.slug.*default_factory"):
        await Page.select(columns=["slug"])


# Arguments of the wrong kind.


async def test_arguments_of_the_wrong_kind_are_library_errors(store: Store) -> None:
    store.register_model(Counter)
    for data in (None, 123, "c"):
        with pytest.raises(InvalidInputError, match="insert expects"):
            await Counter.insert(data)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="takes field names"):
        await Counter.select(columns=5)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match=r"redis\.asyncio"):
        Store(name="t", redis_store=redis.Redis())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"redis\.asyncio"):
        Store(name="t", redis_store="x")  # type: ignore[arg-type]


def test_two_models_of_one_name_cannot_share_a_store() -> None:
    def make(table: str) -> type[Model]:
        class Book(Model):
            _primary_key_field: str = "id"
            _table_name: str = table
            id: str

        return Book

    store = Store(name="s")
    store.register_model(make("first"))
    with pytest.raises(ConfigurationError, match="named Book already"):
        store.register_model(make("second"))


@pytest.mark.parametrize("life_span", [1e-9, 0.0009])
async def test_life_spans_under_a_millisecond_are_refused(store: Store, life_span: float) -> None:
    store.register_model(Counter)
    with pytest.raises(InvalidInputError, match=r"from 0\.001"):
        await Counter.insert(Counter(id="x", _auto_save=False), life_span_seconds=life_span)
    with pytest.raises(ConfigurationError, match=r"from 0\.001"):
        Store(name="s", life_span_in_seconds=life_span)


@pytest.mark.parametrize("reply", ["MISCONF", "NOREPLICAS"])
async def test_a_server_that_cannot_write_for_now_keeps_the_writes_queued(reply: str) -> None:
    with RedisServer(None, "--dbfilename", "blocked.rdb") as server:
        store = Store(name="now", redis_config=RedisConfig.from_url(server.url))
        register_alone(store, Counter)
        counter = Counter(id="c")
        await store.flush()
        admin = redis.Redis(port=server.port)
        if reply == "NOREPLICAS":
            admin.config_set("min-replicas-to-write", 1)
        else:  # a snapshot that cannot be written (its file name is a directory)
            os.mkdir(os.path.join(server.directory, "blocked.rdb"))
            admin.config_set("save", "3600 1")
            admin.bgsave()
            for _ in range(500):  # wait for the snapshot to fail
                if not admin.info("persistence")["rdb_bgsave_in_progress"]:
                    break
                await asyncio.sleep(0.01)
        counter.n = 42
        with pytest.raises(RedisOperationError, match=reply):
            await store.flush()
        assert len(store.pending) == 1  # kept: it may succeed once the server can write
        admin.config_set("min-replicas-to-write", 0)
        admin.config_set("stop-writes-on-bgsave-error", "no")
        await store.flush()
        assert admin.hget("counter:c", "n") == b"42"
        admin.close()
        await store.close()
