"""RedisConfig: fields, URL forms, and keeping the password out of sight."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pydantic_aioredis import ConfigurationError, RedisConfig, Store


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


def test_the_password_never_shows_in_validation_errors() -> None:
    with pytest.raises(ValidationError) as caught:
        RedisConfig(password=["hunter2-secret"], port=-1)  # type: ignore[arg-type]
    assert "hunter2-secret" not in str(caught.value)


def test_configs_are_immutable() -> None:
    config = RedisConfig()
    with pytest.raises(ValidationError):
        config.db = 3  # type: ignore[misc]
