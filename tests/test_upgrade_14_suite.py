"""The scenarios of pydantic-aioredis 1.4's own test suite that a user meets, rewritten for
this library and run against a real Redis, through the 1.4 import paths and with the client
injected as 1.4's tests injected it (`store.redis_store = client`).

Left out: tests of 1.4 internals (`serialize_partially`, `NestedAsyncIO`, `_AbstractModel`)
and of fastapi-crudrouter's own status codes. Where 1.4 behaved differently on purpose, the
scenario asserts today's behaviour and says how it differs (README, "Changes from 1.4").
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from datetime import date
from enum import Enum
from ipaddress import IPv4Network, ip_network
from typing import Any, Optional, Union
from uuid import UUID, uuid4

import httpx
import pytest
import redis.asyncio
from fastapi import FastAPI

with warnings.catch_warnings():  # the paths 1.4's tests import from, deprecated today
    warnings.simplefilter("ignore", DeprecationWarning)
    from pydantic_aioredis.ext.FastAPI import FastAPIModel, PydanticAioredisCRUDRouter

    from pydantic_aioredis.config import RedisConfig
    from pydantic_aioredis.model import AutoModel, Model
    from pydantic_aioredis.store import Store

# ruff: noqa: UP007, UP045 - models typed as 1.4's tests type them

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class Book(Model):
    _primary_key_field: str = "title"
    title: str
    author: str
    published_on: date
    in_stock: bool = True


class ExtendedBook(Book):
    editions: list[Optional[str]]


class ModelWithNone(Model):
    _primary_key_field = "name"
    name: str
    optional_field: Optional[str] = None  # pydantic v2: an Optional without default is required


class ModelWithIP(Model):
    _primary_key_field = "name"
    name: str
    ip_network: IPv4Network


class ModelWithPrefix(Model):
    _primary_key_field = "name"
    _redis_prefix = "prefix"
    name: str


class ModelWithSeparator(Model):
    _primary_key_field = "name"
    _redis_separator = "!!"
    name: str


class ModelWithTableName(Model):
    _primary_key_field = "name"
    _table_name = "tablename"
    name: str


class ModelWithFullCustomKey(Model):
    _primary_key_field = "name"
    _redis_prefix = "prefix"
    _redis_separator = "!!"
    _table_name = "custom"
    name: str


def books() -> list[Book]:
    return [
        Book(title="Oliver Twist", author="Charles Dickens", published_on=date(1215, 4, 4),
             in_stock=False),
        Book(title="Great Expectations", author="Charles Dickens",
             published_on=date(1220, 4, 4)),
        Book(title="Jane Eyre", author="Charles Dickens", published_on=date(1225, 6, 4),
             in_stock=False),
        Book(title="Wuthering Heights", author="Jane Austen", published_on=date(1600, 4, 4)),
    ]  # fmt: skip


def extended_books() -> list[ExtendedBook]:
    editions = [[], ["first", None], ["ebook"], ["hardbound", "paperback", "second"]]
    return [ExtendedBook(**b.model_dump(), editions=e) for b, e in zip(books(), editions)]


KINDS: dict[str, tuple[type[Model], Any, str]] = {
    "Book": (Book, books, "book:"),
    "ExtendedBook": (ExtendedBook, extended_books, "extendedbook:"),
    "ModelWithNone": (
        ModelWithNone,
        lambda: [ModelWithNone(name="test", optional_field="test"), ModelWithNone(name="test2")],
        "modelwithnone:",
    ),
    "ModelWithIP": (
        ModelWithIP,
        lambda: [
            ModelWithIP(name="test", ip_network=ip_network("10.10.0.0/24")),
            ModelWithIP(name="test2", ip_network=ip_network("192.168.0.0/16")),
        ],
        "modelwithip:",
    ),
    "ModelWithPrefix": (
        ModelWithPrefix,
        lambda: [ModelWithPrefix(name="test"), ModelWithPrefix(name="test2")],
        "prefix:modelwithprefix:",
    ),
    "ModelWithSeparator": (
        ModelWithSeparator,
        lambda: [ModelWithSeparator(name="test"), ModelWithSeparator(name="test2")],
        "modelwithseparator!!",
    ),
    "ModelWithTableName": (
        ModelWithTableName,
        lambda: [ModelWithTableName(name="test"), ModelWithTableName(name="test2")],
        "tablename:",
    ),
    "ModelWithFullCustomKey": (
        ModelWithFullCustomKey,
        lambda: [ModelWithFullCustomKey(name="test"), ModelWithFullCustomKey(name="test2")],
        "prefix!!custom!!",
    ),
}


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def redis_store(client: redis.asyncio.Redis) -> AsyncIterator[Store]:
    """As in 1.4's tests: a store configured for no server, given a client by assignment."""
    store = Store(
        name="sample", redis_config=RedisConfig(port=1024, db=1), life_span_in_seconds=3600
    )
    store.redis_store = client
    for model, _, _ in KINDS.values():
        store.register_model(model)
    yield store
    await store.close()


def pk(model: Model) -> Any:
    return getattr(model, type(model)._primary_key_field)


def test_redis_config_redis_url() -> None:
    assert RedisConfig().redis_url == "redis://localhost:6379/0"
    assert RedisConfig(ssl=True).redis_url == "rediss://localhost:6379/0"
    assert RedisConfig(password="password").redis_url == "redis://:password@localhost:6379/0"
    assert RedisConfig(ssl=True, password="pw").redis_url == "rediss://:pw@localhost:6379/0"


def test_register_model_without_primary_key(redis_store: Store) -> None:
    class ModelWithoutPrimaryKey(Model):
        title: str

    with pytest.raises(AttributeError, match="_primary_key_field"):
        redis_store.register_model(ModelWithoutPrimaryKey)
    ModelWithoutPrimaryKey._primary_key_field = None
    with pytest.raises(AttributeError, match="_primary_key_field"):
        redis_store.register_model(ModelWithoutPrimaryKey)


def test_store_model(redis_store: Store) -> None:
    assert redis_store.model("Book") is Book
    with pytest.raises(KeyError):
        redis_store.model("Notabook")


def test_json_object_hook_returns_what_it_is_given() -> None:
    class Thing:
        value = "test"

    thing = Thing()
    assert Model.json_object_hook(thing) is thing  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", KINDS)
async def test_insert_select_delete(
    redis_store: Store, client: redis.asyncio.Redis, kind: str
) -> None:
    model_class, make, key_prefix = KINDS[kind]
    models = make()
    keys = [f"{key_prefix}{pk(model)}" for model in models]
    assert await model_class.select() is None  # nothing yet: None, as in 1.4
    await model_class.insert(models[0])
    assert await client.exists(keys[0])
    assert 0 < await client.ttl(keys[0]) <= 3600  # the store's life span
    await model_class.insert(models, life_span_seconds=60)  # in bulk, with a life span
    assert await client.exists(*keys) == len(models)
    assert 0 < await client.ttl(keys[0]) <= 60
    assert sorted(map(pk, await model_class.select())) == sorted(map(pk, models))
    for model in await model_class.select(skip=1, limit=1):
        assert model in models
    some = models[:2]
    assert await model_class.select(ids=[pk(model) for model in some]) == some
    assert await model_class.delete() == len(models)
    assert await model_class.select() is None
    # 1.4 answered a delete of nothing with None; 0 now (both falsy).
    assert not await model_class.delete()


async def test_select_columns(redis_store: Store) -> None:
    await Book.insert(books())
    columns = ["title", "author", "in_stock"]
    found = {row["title"]: row for row in await Book.select(columns=columns)}
    for book in books():
        assert found[book.title] == {name: getattr(book, name) for name in columns}
    # 1.4 read columns back as strings; they are typed now.
    assert found["Oliver Twist"]["in_stock"] is False


async def test_select_bad_id(redis_store: Store) -> None:
    await Book.insert(books())
    assert await Book.select(ids=["Not in there"]) is None


async def test_update_by_save(redis_store: Store) -> None:
    first = books()[0]
    await Book.insert(first)
    first.author = "John Doe"
    await first.save()
    assert await Book.select(ids=[first.title]) == [first]


async def test_delete_some(redis_store: Store, client: redis.asyncio.Redis) -> None:
    await Book.insert(books())
    await Book.delete(ids=books()[1].title)  # one id, not in a list
    await Book.delete(ids=[book.title for book in books()[2:]])
    assert await client.exists(*[f"book:{book.title}" for book in books()[1:]]) == 0
    assert await Book.select() == books()[:1]


async def test_unserializable_object(redis_store: Store) -> None:
    class MyClass: ...

    class TestModel(Model):
        _primary_key_field = "name"
        name: str
        object: MyClass

    redis_store.register_model(TestModel)
    with pytest.raises(TypeError):
        await TestModel.insert(TestModel(name="test", object=MyClass()))


async def test_enum_and_uuid_support(redis_store: Store) -> None:
    class TestEnum(str, Enum):
        test = "test"
        foo = "foo"

    class EnumModel(Model):
        _primary_key_field = "id"
        id: int
        enum: TestEnum
        uuid: UUID

    redis_store.register_model(EnumModel)
    model = EnumModel(id=0, enum="foo", uuid=uuid4())
    await EnumModel.insert(model)
    (found,) = await EnumModel.select()
    assert found == model
    assert isinstance(found.uuid, UUID)
    assert found.enum is TestEnum.foo


class SimpleModel(Model):
    _primary_key_field: str = "test_str"
    test_str: str
    test_int: int = 9


def test_auto_sync_and_auto_save_flags() -> None:
    model = SimpleModel(test_str="test")
    assert model.auto_sync is False
    model.set_auto_sync()
    assert model.auto_sync
    model.set_auto_sync(False)
    assert model.auto_sync is False
    assert model.auto_save is False
    model.set_auto_save()
    assert model.auto_save
    model.set_auto_save(False)
    assert model.auto_save is False


async def test_auto_save_in_init(redis_store: Store) -> None:
    redis_store.register_model(SimpleModel)
    # 1.4 did not save an instance of a model without a store; we do save registered ones.
    assert SimpleModel(test_str="saved", auto_save=True).auto_save
    assert SimpleModel(test_str="not saved", auto_save=False).auto_save is False
    assert await SimpleModel.select() == [SimpleModel(test_str="saved")]


async def test_update_context_manager(redis_store: Store) -> None:
    redis_store.register_model(SimpleModel)
    model = SimpleModel(test_str="test", test_int=9)
    await SimpleModel.insert(model)
    async with model.update() as changing:
        changing.test_int = 36
        assert (await SimpleModel.select(ids=["test"]))[0].test_int == 9
    assert (await SimpleModel.select(ids=["test"]))[0].test_int == 36


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        (list[int], [1, 2, 3]),
        (dict[str, int], {"a": 1, "b": 2}),
        (dict[str, list[int]], {"a": [1], "c": [4, 5]}),
    ],
)
async def test_storing_containers(redis_store: Store, annotation: Any, value: Any) -> None:
    class DataTypeTest(Model):
        _primary_key_field: str = "key"
        key: str
        value: annotation  # type: ignore[valid-type]

    redis_store.register_model(DataTypeTest)
    await DataTypeTest(key="test_storage", value=value).save()
    (found,) = await DataTypeTest.select()
    assert found.value == value


class AutoBook(AutoModel):
    _primary_key_field: str = "title"
    title: str
    author: str
    in_stock: bool = True


async def test_auto_save_and_auto_sync(redis_store: Store) -> None:
    redis_store.register_model(AutoBook)
    book = AutoBook(title="Oliver Twist", author="Charles Dickens", in_stock=False)
    assert await AutoBook.select(ids=["Oliver Twist"]) == [book]
    book.in_stock = True
    (found,) = await AutoBook.select(ids=["Oliver Twist"])
    assert found.in_stock


class FloatIntTest(Model):
    _primary_key_field: str = "key"
    key: str
    float_int: Union[float, int]
    int_float: Union[int, float]


async def test_unions_keep_ints_and_floats(redis_store: Store) -> None:
    # 1.4 (pydantic v1) turned the 2 into 2.0 and the 2.9 into 2: its tests marked that
    # xfail. Pydantic v2 keeps them, and so does a round trip through Redis.
    redis_store.register_model(FloatIntTest)
    instance = FloatIntTest(key="k", float_int=2, int_float=2.9)
    await instance.save()
    (found,) = await FloatIntTest.select()
    assert isinstance(found.float_int, int)
    assert isinstance(found.int_float, float)
    assert found == instance


class FastModel(FastAPIModel):
    _primary_key_field = "name"
    name: str


async def test_select_or_404(redis_store: Store) -> None:
    redis_store.register_model(FastModel)
    app = FastAPI()

    @app.get("/", response_model=list[FastModel])
    async def get_endpoint() -> list[FastModel]:
        return await FastModel.select_or_404()

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await http.get("/")).status_code == 404
        await FastModel.insert(FastModel(name="test"))
        response = await http.get("/")
    assert response.status_code == 200
    assert response.json() == [{"name": "test"}]


class CrudModel(Model):
    _primary_key_field = "name"
    name: str
    value: int


async def test_crud_router_from_the_1_4_extras_page(redis_store: Store) -> None:
    app = FastAPI()
    app.include_router(PydanticAioredisCRUDRouter(schema=CrudModel, store=redis_store))
    models = [CrudModel(name=f"test{i}", value=i) for i in range(1, 10)]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await http.get("/crudmodel/")).json() == []
        assert (await http.get("/crudmodel/test1")).status_code == 404
        assert (await http.put("/crudmodel/test1", json={"value": 1})).status_code == 404
        assert (await http.delete("/crudmodel/test1")).status_code == 404
        await CrudModel.insert(models)
        assert len((await http.get("/crudmodel/")).json()) == 9
        page = await http.get("/crudmodel/", params={"skip": 2, "limit": 5})
        assert [row["name"] for row in page.json()] == [f"test{i}" for i in range(3, 8)]
        assert (await http.get("/crudmodel/test1")).json() == {"name": "test1", "value": 1}
        # 1.4 answered a create with 200 and took the key in a PUT body: 201, and the
        # key in the path only, now.
        created = await http.post("/crudmodel/", json={"name": "new", "value": 0})
        assert created.status_code == 201
        assert (await http.post("/crudmodel/", json={"invalid": "stuff"})).status_code == 422
        replaced = await http.put("/crudmodel/test1", json={"value": 100})
        assert replaced.json() == {"name": "test1", "value": 100}
        # 1.4 answered a delete of one with 200 and the record: 204 now.
        assert (await http.delete("/crudmodel/test1")).status_code == 204
        assert (await http.delete("/crudmodel/")).json() == {"deleted": 9}
    assert await CrudModel.select() is None
