"""Connection settings: `RedisConfig`, and its URL form."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from ._exceptions import ConfigurationError

__all__ = ["RedisConfig"]

_SCHEMES = ("redis", "rediss", "redis+cluster", "rediss+cluster", "memory")


class RedisConfig(BaseModel):
    """Where and how to connect to Redis.

    The password is kept as a `SecretStr`: it never appears in `repr()`, `str()` or
    error messages. `redis_url` is the one place it is spelled out, because a
    connection URL needs it.

    Attributes:
        host: Server host name.
        port: Server port.
        db: Database number.
        username: ACL user name, if the server uses ACLs.
        password: Password, if the server requires one.
        ssl: Connect over TLS (`rediss://`).
        ssl_ca_certs: With `ssl`: a file of CA certificates to verify the server with
            (default: the system's).
        ssl_cert_reqs: With `ssl`: whether the server's certificate must verify.
        ssl_certfile: With `ssl`: a client certificate, for servers that ask for one.
        ssl_keyfile: With `ssl`: the client certificate's private key.
        encoding: Text encoding of stored strings.
        in_memory: Use the embedded in-process backend instead of a server
            (needs the `memory` extra: `pip install pydantic-aioredis[memory]`).
        cluster: The server is a node of a Redis Cluster (`redis+cluster://`): connect
            to the whole cluster through it, and lay records out in slots spread over
            its masters (see docs/cluster.md). A cluster has only database 0.
        socket_timeout: Seconds a command may wait for its reply before failing.
        socket_connect_timeout: Seconds a connection attempt may take.
        retries: How often a command is retried after a connection error or timeout,
            with exponential backoff. Every command the library sends is idempotent.
        max_connections: Calls in flight per event loop (and connections); past it, calls
            wait for one in flight to finish instead of failing.

    Example:
        >>> RedisConfig(db=5, password="s3cret")
        RedisConfig(host='localhost', port=6379, db=5, username=None, password=SecretStr('**********'), ssl=False, ssl_ca_certs=None, ssl_cert_reqs='required', ssl_certfile=None, ssl_keyfile=None, encoding='utf-8', in_memory=False, cluster=False, socket_timeout=10.0, socket_connect_timeout=5.0, retries=3, max_connections=50)
        >>> RedisConfig.from_url("redis://:p%40ss@example.com:6380/2").port
        6380
    """  # noqa: E501

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    host: str = "localhost"
    port: int = Field(default=6379, ge=0, le=65535)
    db: int = Field(default=0, ge=0)
    username: str | None = None
    password: SecretStr | None = None
    ssl: bool = False
    ssl_ca_certs: str | None = None
    ssl_cert_reqs: Literal["required", "optional", "none"] = "required"
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    encoding: str = "utf-8"
    in_memory: bool = False
    cluster: bool = False
    socket_timeout: float | None = Field(default=10.0, gt=0)
    socket_connect_timeout: float | None = Field(default=5.0, gt=0)
    retries: int = Field(default=3, ge=0)
    max_connections: int = Field(default=50, gt=0)

    @model_validator(mode="after")
    def _check_cluster(self) -> RedisConfig:
        if self.cluster and self.in_memory:
            raise ConfigurationError("the embedded in-memory backend cannot be a cluster")
        if self.cluster and self.db != 0:
            raise ConfigurationError(
                f"a Redis Cluster has only database 0; db={self.db} cannot be used with it"
            )
        return self

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisConfig:
        """Build a config from `redis://`, `rediss://`, `redis+cluster://` or `memory://` URLs.

        Args:
            url: `redis://[[username]:password@]host[:port][/db]`; `rediss://` for TLS;
                `redis+cluster://host:port` (or `rediss+cluster://`) for a Redis Cluster,
                through any of its nodes; `memory://` (or `memory://name`) for the
                embedded backend.
            **options: Any other `RedisConfig` field, e.g. `socket_timeout=2`.

        Raises:
            ConfigurationError: The URL cannot be understood.
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ConfigurationError(f"invalid Redis URL: {exc}") from None
        if parts.scheme not in _SCHEMES:
            raise ConfigurationError(
                f"unsupported URL scheme {parts.scheme!r}; use one of {', '.join(_SCHEMES)}"
            )
        db_text = parts.path.strip("/")
        if db_text and not db_text.isdigit():
            raise ConfigurationError(
                f"the database in a Redis URL must be a number, not {db_text!r}"
            )
        fields: dict[str, Any] = {
            "host": parts.hostname or "localhost",
            "ssl": parts.scheme.startswith("rediss"),
            "in_memory": parts.scheme == "memory",
            "cluster": parts.scheme.endswith("+cluster"),
        }
        if port is not None:
            fields["port"] = port
        if db_text:
            fields["db"] = int(db_text)
        if parts.username:
            fields["username"] = unquote(parts.username)
        if parts.password:
            fields["password"] = unquote(parts.password)
        return cls(**{**fields, **options})

    @property
    def redis_url(self) -> str:
        """The connection URL, with user name and password escaped.

        Example:
            >>> RedisConfig(password="p@ss:word", db=1).redis_url
            'redis://:p%40ss%3Aword@localhost:6379/1'
        """
        secret = self.password.get_secret_value() if self.password else None
        return self._url(quote(secret, safe="") if secret else None)

    def __str__(self) -> str:
        # The URL with its password masked: safe to print and to log.
        return self._url("***" if self.password else None)

    def _url(self, escaped_secret: str | None) -> str:
        if self.in_memory:
            return f"memory://{self.host}:{self.port}/{self.db}"
        scheme = ("rediss" if self.ssl else "redis") + ("+cluster" if self.cluster else "")
        user = quote(self.username or "", safe="")
        credentials = f"{user}:{escaped_secret}@" if escaped_secret else f"{user}@" * bool(user)
        return f"{scheme}://{credentials}{self.host}:{self.port}/{self.db}"
