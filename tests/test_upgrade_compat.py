"""Code written for pydantic-aioredis 1.4 keeps working: its import paths, injecting a
client by assigning `store.redis_store`, the built-in errors it raised, and its router."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis
import redis.asyncio
from fastapi import FastAPI

import pydantic_aioredis
from pydantic_aioredis import (
    ConfigurationError,
    Model,
    PrimaryKeyError,
    RedisConfig,
    SerializationError,
    Store,
    UsageError,
)
from pydantic_aioredis.ext.fastapi import FastAPIModel
from tests.keys import register_alone

OLD_PATHS = [
    ("pydantic_aioredis.config", "RedisConfig", pydantic_aioredis.RedisConfig),
    ("pydantic_aioredis.store", "Store", pydantic_aioredis.Store),
    ("pydantic_aioredis.model", "Model", pydantic_aioredis.Model),
    ("pydantic_aioredis.model", "AutoModel", pydantic_aioredis.AutoModel),
    ("pydantic_aioredis.ext.FastAPI", "FastAPIModel", FastAPIModel),
]


@pytest.mark.parametrize(("module", "name", "today"), OLD_PATHS)
def test_1_4_import_paths_work_and_name_the_new_one(module: str, name: str, today: type) -> None:
    with pytest.warns(DeprecationWarning, match=f"{module}.{name} .* use: from ") as caught:
        value = getattr(importlib.import_module(module), name)
    assert value is today
    assert caught[0].filename == __file__  # the warning points at the caller


def test_from_import_statements_as_the_1_4_documents_write_them() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from pydantic_aioredis.config import RedisConfig  # noqa: I001 - in the order below
        from pydantic_aioredis.ext.FastAPI import FastAPIModel as Old
        from pydantic_aioredis.ext.FastAPI import PydanticAioredisCRUDRouter
        from pydantic_aioredis.model import AutoModel, Model
        from pydantic_aioredis.store import Store
    assert (RedisConfig, Store, Model, AutoModel, Old) == (
        pydantic_aioredis.RedisConfig,
        pydantic_aioredis.Store,
        pydantic_aioredis.Model,
        pydantic_aioredis.AutoModel,
        FastAPIModel,
    )
    assert issubclass(PydanticAioredisCRUDRouter, pydantic_aioredis.ext.fastapi.CRUDRouter)
    assert {w.category for w in caught} == {DeprecationWarning}
    assert [str(w.message).split(" is ")[0] for w in caught] == [
        "pydantic_aioredis.config.RedisConfig",
        "pydantic_aioredis.ext.FastAPI.FastAPIModel",
        "pydantic_aioredis.ext.FastAPI.PydanticAioredisCRUDRouter",
        "pydantic_aioredis.model.AutoModel",
        "pydantic_aioredis.model.Model",
        "pydantic_aioredis.store.Store",
    ]
    assert "CRUDRouter(Model)" in str(caught[2].message)


def test_unknown_names_of_old_paths_are_attribute_errors() -> None:
    import pydantic_aioredis.ext.FastAPI  # noqa: I001 - a module of no file of its own
    import pydantic_aioredis.store

    with pytest.raises(AttributeError, match=r"'pydantic_aioredis\.store' has no attribute 'x'"):
        pydantic_aioredis.store.x  # noqa: B018
    with pytest.raises(ImportError):
        from pydantic_aioredis.ext.FastAPI import Nope  # noqa: F401
    assert pydantic_aioredis.ext.FastAPI.__all__ == ["FastAPIModel", "PydanticAioredisCRUDRouter"]


def test_no_two_files_of_the_package_differ_only_in_case() -> None:
    # A case-insensitive file system (macOS, Windows) would see them as one file.
    package = Path(pydantic_aioredis.__file__).parent
    paths = [str(path.relative_to(package)) for path in package.rglob("*")]
    paths = [path for path in paths if "__pycache__" not in path]
    assert len({path.lower() for path in paths}) == len(paths)


def test_the_fastapi_path_works_in_a_fresh_interpreter_and_loads_fastapi_lazily() -> None:
    program = (
        "import sys, warnings\n"
        "warnings.simplefilter('error')\n"
        "import pydantic_aioredis.ext.FastAPI as old\n"
        "assert 'fastapi' not in sys.modules\n"
        "warnings.simplefilter('ignore')\n"
        "from pydantic_aioredis.ext.FastAPI import FastAPIModel\n"
        "import pydantic_aioredis.ext.fastapi as new\n"
        "assert FastAPIModel is new.FastAPIModel and old is sys.modules[old.__name__]\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# -- store.redis_store = client --------------------------------------------------------


class Note(Model):
    _primary_key_field: str = "key"
    key: str
    text: str = ""


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)  # bytes replies: used as it is
    yield client
    await client.aclose()


async def test_assigning_redis_store_injects_the_client(
    client: redis.asyncio.Redis, redis_url: str
) -> None:
    # Configured for a server that does not exist: only the injected client can work.
    store = Store(name="old", redis_config=RedisConfig(port=1, db=1))
    store.redis_store = client
    store.register_model(Note)
    assert store.redis_store is client
    await Note.insert(Note(key="a", text="x"))
    assert await client.hgetall("note:a") == {b"key": b"a", b"text": b"x"}
    assert await Note.select() == [Note(key="a", text="x")]
    await store.close()
    assert await client.ping()  # the store leaves an injected client open


def test_the_synchronous_twin_follows_an_assigned_client(
    client: redis.asyncio.Redis, redis_url: str
) -> None:
    store = Store(name="old", redis_config=RedisConfig(port=1, db=1))
    store.register_model(Note)
    store.sync_client()  # a twin for the configured server, which does not exist
    store.redis_store = client
    Note(key="outside", text="a loop", _auto_save=True)  # written at once, by the twin
    check = redis.Redis.from_url(redis_url, decode_responses=True)
    assert check.hget("note:outside", "text") == "a loop"
    check.close()
    store.sync_client().close()


async def test_assigning_redis_store_after_the_store_connected_is_refused(
    client: redis.asyncio.Redis, redis_url: str
) -> None:
    store = Store(name="late", redis_config=RedisConfig.from_url(redis_url))
    store.register_model(Note)
    await Note.count()  # the store opens a connection of its own
    with pytest.raises(UsageError, match=r"Store\(\.\.\., redis_store=client\)"):
        store.redis_store = client
    await store.close()
    replaced = Store(name="twice", redis_store=client)
    other = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    replaced.redis_store = other  # an injected client can be replaced by another
    register_alone(replaced, Note)
    assert await Note.count() == 0
    assert replaced.redis_store is other
    await other.aclose()


def test_assigning_something_else_than_an_asyncio_client_is_refused(redis_url: str) -> None:
    store = Store(name="sync", redis_config=RedisConfig.from_url(redis_url))
    sync = redis.Redis.from_url(redis_url)
    with pytest.raises(ConfigurationError, match=r"must be a redis\.asyncio client, not Redis"):
        store.redis_store = sync  # type: ignore[assignment]
    sync.close()


async def test_a_cluster_client_cannot_replace_one_models_were_registered_for(
    cluster_config: RedisConfig, redis_url: str
) -> None:
    from redis.asyncio.cluster import RedisCluster

    store = Store(name="mixed", redis_config=RedisConfig.from_url(redis_url))
    store.register_model(Note)
    cluster = RedisCluster.from_url(cluster_config.redis_url.replace("+cluster", ""))
    with pytest.raises(ConfigurationError, match="registered for a single server"):
        store.redis_store = cluster
    empty = Store(name="empty", redis_config=RedisConfig.from_url(redis_url))
    empty.redis_store = cluster
    assert empty.cluster
    await cluster.aclose()


# -- the built-in errors 1.4 raised -----------------------------------------------------


class Unstorable:
    pass


class Holder(Model):
    _primary_key_field: str = "key"
    key: str
    thing: Unstorable


async def test_a_value_that_cannot_be_stored_is_a_type_error_as_in_1_4(redis_url: str) -> None:
    store = Store(name="errors", redis_config=RedisConfig.from_url(redis_url))
    store.register_model(Holder)
    with pytest.raises(TypeError) as caught:
        await Holder.insert(Holder(key="k", thing=Unstorable()))
    assert isinstance(caught.value, SerializationError)
    assert "Holder.thing" in str(caught.value)
    await store.close()


def test_a_model_without_a_primary_key_is_an_attribute_error_as_in_1_4() -> None:
    class NoKey(Model):
        title: str

    class WrongKey(Model):
        _primary_key_field: str = "name"
        title: str

    store = Store(name="errors")
    for model in (NoKey, WrongKey):
        with pytest.raises(AttributeError, match="_primary_key_field") as caught:
            store.register_model(model)
        assert isinstance(caught.value, PrimaryKeyError)
        assert isinstance(caught.value, ConfigurationError)


# -- PydanticAioredisCRUDRouter(schema=..., store=...) ----------------------------------


class Film(Model):
    _primary_key_field: str = "name"
    _table_name: str = "films"
    name: str
    value: int


def _old_router() -> type:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from pydantic_aioredis.ext.FastAPI import PydanticAioredisCRUDRouter
    return PydanticAioredisCRUDRouter


async def test_the_1_4_router_mounts_ours(redis_url: str) -> None:
    store = Store(name="crud", redis_config=RedisConfig.from_url(redis_url))
    app = FastAPI()
    app.include_router(_old_router()(schema=Film, store=store))  # registers the model
    assert store.model("film") is Film
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        # As in 1.4, the routes are under the model's name, not its table name.
        created = await http.post("/film/", json={"name": "Alien", "value": 1})
        assert created.status_code == 201
        assert (await http.get("/film/Alien")).json() == {"name": "Alien", "value": 1}
        replaced = await http.put("/film/Alien", json={"value": 2})
        assert replaced.json() == {"name": "Alien", "value": 2}
        assert (await http.get("/film/", params={"skip": 0, "limit": 5})).json() == [
            {"name": "Alien", "value": 2}
        ]
        assert (await http.delete("/film/")).json() == {"deleted": 1}  # on, as in 1.4
        assert (await http.get("/film/Alien")).status_code == 404
    await store.close()


def test_the_1_4_router_takes_1_4_arguments() -> None:
    store = Store(name="crud")
    router = _old_router()(
        schema=Film, store=store, prefix="Movies", paginate=20, delete_all_route=False
    )
    routes = {route.name: route.path for route in router.routes}
    assert routes["list_records_Film"] == "/movies/"
    assert "delete_all_records_Film" not in routes
    assert router.max_limit == 20
    with pytest.raises(ConfigurationError, match="route dependencies are not supported"):
        _old_router()(schema=Film, store=store, get_one_route=[object()])
    with pytest.raises(ConfigurationError, match="takes no create_schema"):
        _old_router()(schema=Film, store=store, create_schema=Film)


def test_the_migration_module_documents_its_public_names() -> None:
    import inspect

    from pydantic_aioredis import migrate

    assert migrate.__all__ == ["ModelUpgrade", "RecordProblem", "UpgradeReport", "upgrade_from_1_4"]
    for name in migrate.__all__:
        value = getattr(migrate, name)
        assert inspect.getdoc(value), name
        for attribute, member in vars(value).items() if inspect.isclass(value) else ():
            if not attribute.startswith("_") and callable(member):
                assert inspect.getdoc(member), f"{name}.{attribute}"
