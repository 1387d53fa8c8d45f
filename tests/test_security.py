"""Credentials and transport: an ACL user that may touch one model's keys only, TLS with a
throw-away certificate authority, and passwords kept out of every message and log."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pydantic_aioredis import RedisConfig, RedisOperationError, Store
from tests.models import Book, Library
from tests.servers import REDIS_SERVER, RedisServer, free_port

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="needs redis-server")

SECRET = "s3cret-Pa$$word:/@"


@pytest.fixture
def acl_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        admin = redis.Redis(port=server.port)
        # May run anything, but only on the keys of the `book` model.
        admin.acl_setuser("bookkeeper", enabled=True, passwords=[f"+{SECRET}"],
                          keys=["book:*"], commands=["+@all"])  # fmt: skip
        admin.close()
        yield server


async def test_an_acl_user_limited_to_one_models_keys(acl_server: RedisServer) -> None:
    config = RedisConfig(port=acl_server.port, username="bookkeeper", password=SECRET)
    store = Store(name="acl", redis_config=config)
    store.register_model(Book)
    store.register_model(Library)
    book = Book(title="The Hobbit", author="J.R.R. Tolkien")
    await Book.insert(book)
    assert await Book.select() == [book]
    with pytest.raises(RedisOperationError) as caught:
        await Library.insert(Library(name="Grand", address="Hoima"))
    assert isinstance(caught.value.__cause__, redis.exceptions.NoPermissionError)
    assert "no permissions" in str(caught.value)
    await store.close()


async def test_a_wrong_password_is_reported_without_the_password(
    acl_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = RedisConfig(port=acl_server.port, username="bookkeeper", password=SECRET + "x",
                         retries=0)  # fmt: skip
    store = Store(name="acl", redis_config=config)
    store.register_model(Book)
    with pytest.raises(RedisOperationError) as caught:
        await Book.select()
    assert isinstance(caught.value.__cause__, redis.AuthenticationError)
    shown = [str(caught.value), repr(caught.value), repr(config), str(config), repr(store),
             caplog.text]  # fmt: skip
    assert not [text for text in shown if SECRET in text]
    await store.close()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throw-away certificate authority and a server certificate for 127.0.0.1."""
    folder = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.crt", "-days", "1", "-subj", "/CN=pydantic-aioredis test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
            "server.csr", "-subj", "/CN=localhost")  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "1",
            "-extfile", "san.ext")  # fmt: skip
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out",
            "other.crt", "-days", "1", "-subj", "/CN=another CA")  # fmt: skip
    return folder


@pytest.fixture
def tls_server(certificates: Path) -> Iterator[int]:
    tls_port = free_port()
    tls = ["--tls-port", str(tls_port), "--tls-cert-file", str(certificates / "server.crt"),
           "--tls-key-file", str(certificates / "server.key"), "--tls-ca-cert-file",
           str(certificates / "ca.crt"), "--tls-auth-clients", "no"]  # fmt: skip
    with RedisServer(None, *tls):
        yield tls_port


async def test_tls(tls_server: int, certificates: Path) -> None:
    config = RedisConfig.from_url(f"rediss://127.0.0.1:{tls_server}/0",
                                  ssl_ca_certs=str(certificates / "ca.crt"))  # fmt: skip
    store = Store(name="tls", redis_config=config)
    store.register_model(Book)
    book = Book(title="Secret Garden", author="F. H. Burnett")
    await Book.insert(book)
    assert await Book.select() == [book]
    await store.close()


async def test_tls_refuses_a_server_it_cannot_verify(tls_server: int, certificates: Path) -> None:
    config = RedisConfig(port=tls_server, ssl=True, ssl_ca_certs=str(certificates / "other.crt"),
                         retries=0)  # fmt: skip
    store = Store(name="tls", redis_config=config)
    store.register_model(Book)
    with pytest.raises(RedisOperationError) as caught:
        await Book.select()
    assert "certificate verify failed" in str(caught.value)
    await store.close()
