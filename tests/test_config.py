"""RedisConfig: fields, URL forms, and keeping the password out of sight."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import ValidationError

from pydantic_aioredis import ConfigurationError, PydanticAioredisError, RedisConfig, Store
from tests.models import Book


def test_defaults_and_the_plain_url() -> None:
    assert RedisConfig().redis_url == "redis://localhost:6379/0"
    assert RedisConfig(db=5, host="cache", port=6380).redis_url == "redis://cache:6380/5"


def test_ssl_password_and_username_in_the_url() -> None:
    assert RedisConfig(ssl=True).redis_url == "rediss://localhost:6379/0"
    assert RedisConfig(password="p@ss:w/rd%").redis_url == (
        "redis://:p%40ss%3Aw%2Frd%25@localhost:6379/0"
    )
    assert RedisConfig(username="app", password="x").redis_url == "redis://app:x@localhost:6379/0"
    assert RedisConfig(username="app").redis_url == "redis://app@localhost:6379/0"


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6379/0",
        "rediss://app:p%40ss%3Aw%2Frd@cache.example:6390/7",
        "redis://:only%20password@10.0.0.1:6379/3",
    ],
)
def test_from_url_round_trips(url: str) -> None:
    assert RedisConfig.from_url(url).redis_url == url


def test_from_url_reads_every_part() -> None:
    config = RedisConfig.from_url("rediss://app:s%40cret@cache:6390/7", socket_timeout=2)
    assert (config.host, config.port, config.db, config.username) == ("cache", 6390, 7, "app")
    assert config.password is not None
    assert config.password.get_secret_value() == "s@cret"
    assert config.ssl
    assert config.socket_timeout == 2


def test_memory_url() -> None:
    config = RedisConfig.from_url("memory://")
    assert config.in_memory
    assert config.redis_url.startswith("memory://")


async def test_memory_urls_share_a_dataset_when_their_names_are_the_same() -> None:
    pytest.importorskip("fakeredis")

    async def written_and_seen(write: str, read: str) -> bool:
        writer = Store(name="w", redis_config=RedisConfig.from_url(write))
        reader = Store(name="r", redis_config=RedisConfig.from_url(read))
        try:
            await writer.redis_store.set("probe", write)
            return await reader.redis_store.get("probe") is not None
        finally:
            await writer.redis_store.delete("probe")
            await writer.close()
            await reader.close()

    assert await written_and_seen("memory://Shop", "memory://Shop/0")
    assert await written_and_seen("memory://Shop", "memory://Shop:6379")
    assert not await written_and_seen("memory://Shop", "memory://shop")  # case-sensitive
    assert not await written_and_seen("memory://", "memory://localhost")
    assert not await written_and_seen("memory://Shop", "memory://Shop/1")  # another db


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://localhost", "unsupported URL scheme 'http'"),
        ("redis://localhost:notaport/0", "invalid Redis URL"),
        ("redis://localhost/zero", "must be a number"),
    ],
)
def test_bad_urls_are_explained(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        RedisConfig.from_url(url)


def test_the_password_never_shows() -> None:
    config = RedisConfig(password="hunter2-secret", username="app")
    store = Store(name="s", redis_config=config)
    for text in (repr(config), str(config), repr(store), str(config.model_dump())):
        assert "hunter2-secret" not in text
    assert str(config) == "redis://app:***@localhost:6379/0"


def test_the_password_never_shows_in_errors() -> None:
    secret = "hunter2-secret"
    with pytest.raises(ConfigurationError) as caught:
        RedisConfig(password=[secret], port=-1)  # type: ignore[arg-type]
    assert str(caught.value) == (
        "invalid RedisConfig: port: Input should be greater than or equal to 0; "
        "password: Input should be a valid string"
    )
    assert isinstance(caught.value.__cause__, ValidationError)
    assert secret not in "".join(traceback.format_exception(caught.value))


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"port": 99999}, "port: Input should be less than or equal to 65535"),
        ({"db": -1}, "db: Input should be greater than or equal to 0"),
        ({"max_connections": 0}, "max_connections: Input should be greater than 0"),
        ({"socket_timeout": "soon"}, "socket_timeout: Input should be a valid number"),
        ({"ssl_cert_reqs": "maybe"}, "ssl_cert_reqs: Input should be 'required', 'optional'"),
        ({"pasword": "x"}, "pasword: Extra inputs are not permitted"),
        ({"cluster": True, "db": 3}, "a Redis Cluster has only database 0; db=3 cannot"),
        ({"cluster": True, "in_memory": True}, "in-memory backend cannot be a cluster"),
        ({"ssl_cert_reqs": "none"}, "ssl_cert_reqs: TLS settings, which need ssl=True"),
        ({"ssl_ca_certs": "ca.crt"}, "ssl_ca_certs: TLS settings, which need ssl=True"),
        ({"encoding": "klingon"}, "encoding: unknown text encoding 'klingon'"),
        ({"encoding": "utf-16"}, "encoding: 'utf-16' does not keep ASCII text as it is"),
    ],
)
def test_invalid_settings_are_configuration_errors_naming_them(
    settings: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(problem)) as caught:
        RedisConfig(**settings)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, PydanticAioredisError)
    with pytest.raises(ConfigurationError, match=re.escape(problem)):
        RedisConfig.model_validate(settings)
    with pytest.raises(ConfigurationError, match=re.escape(problem)):
        RedisConfig.model_validate_json(json.dumps(settings))


def test_configs_are_immutable() -> None:
    config = RedisConfig()
    with pytest.raises(ConfigurationError, match="immutable: cannot set 'db'"):
        config.db = 3  # type: ignore[misc]
    assert config.db == 0


def test_query_options_of_a_url_are_settings() -> None:
    config = RedisConfig.from_url(
        "rediss://cache:6390?ssl_cert_reqs=none&socket_timeout=1&ssl_ca_certs=/etc/ca.crt"
        "&db=4&retries=0&max_connections=8&encoding=latin-1&socket_connect_timeout=0.5"
    )
    assert config.model_dump(exclude={"password"}) == {
        **RedisConfig().model_dump(exclude={"password"}),
        "host": "cache",
        "port": 6390,
        "ssl": True,
        "ssl_cert_reqs": "none",
        "socket_timeout": 1.0,
        "ssl_ca_certs": "/etc/ca.crt",
        "db": 4,
        "retries": 0,
        "max_connections": 8,
        "encoding": "latin-1",
        "socket_connect_timeout": 0.5,
    }
    assert RedisConfig.from_url("redis://h/1?retries=5", retries=2).retries == 2


async def test_a_query_option_reaches_redis(redis_url: str) -> None:
    store = Store(name="latin", redis_config=RedisConfig.from_url(f"{redis_url}?encoding=latin-1"))
    store.register_model(Book)
    await Book.insert(Book(title="Café", author="Zoë"))
    with redis.Redis.from_url(redis_url) as plain:
        assert plain.hget("book:Café".encode("latin-1"), "author") == "Zoë".encode("latin-1")
    await store.close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://h/0?decode_responses=true", "'decode_responses' is not a setting a Redis URL"),
        ("redis://h/0?password=x", "'password' is not a setting a Redis URL's query can give"),
        ("redis://h/0?ssl=true", "'ssl' is not a setting"),
        ("redis://h/1?db=2", "db is given twice in the Redis URL"),
        ("redis://h?retries=1&retries=2", "retries is given twice in the Redis URL"),
        ("redis://h?retries", "invalid query in the Redis URL"),
        ("redis://h?retries=often", "retries: Input should be a valid integer"),
        ("redis://h?socket_timeout=", "socket_timeout: Input should be a valid number"),
        ("redis://h?ssl_cert_reqs=none", "ssl_cert_reqs: TLS settings, which need ssl=True"),
    ],
)
def test_query_options_that_are_not_settings_are_refused(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(problem)):
        RedisConfig.from_url(url)


def test_a_password_is_a_str_to_a_type_checker_without_pydantics_plugin(tmp_path: Path) -> None:
    source = tmp_path / "typed.py"
    source.write_text(
        "from pydantic import SecretStr\n"
        "from typing_extensions import assert_type\n"
        "from pydantic_aioredis import RedisConfig\n"
        "config = RedisConfig(password='pw', port=6380)\n"
        "RedisConfig(password=SecretStr('pw'))\n"
        "assert_type(config.password, SecretStr | None)\n"
        "RedisConfig(password=1234)  # type: ignore[arg-type]\n"
        "RedisConfig(port='6380')  # type: ignore[arg-type]\n"
    )
    settings = tmp_path / "mypy.ini"
    settings.write_text("[mypy]\n")  # no plugins
    command = [sys.executable, "-m", "mypy", "--strict", "--no-incremental"]
    result = subprocess.run(
        [*command, "--config-file", str(settings), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
