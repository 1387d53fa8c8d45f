"""Connection settings: `RedisConfig`, and its URL form."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast, overload
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from ._exceptions import ConfigurationError

__all__ = ["RedisConfig"]

_SCHEMES = ("redis", "rediss", "redis+cluster", "rediss+cluster", "memory")

# Settings that the parts of a URL spell (scheme, user info, host, port): never a query option.
_URL_PARTS = frozenset({"host", "port", "username", "password", "ssl", "in_memory", "cluster"})

_TLS_SETTINGS = ("ssl_ca_certs", "ssl_cert_reqs", "ssl_certfile", "ssl_keyfile")

# Redis speaks ASCII (command names, replies such as OK); an encoding must keep it as it is.
_ASCII = "".join(map(chr, range(128)))


class _PasswordSetting(Protocol):
    """How type checkers see `RedisConfig.password`: set from a `str` (or a `SecretStr`),
    read as a `SecretStr`. Without pydantic's mypy plugin, a checker would otherwise take
    the field's type, `SecretStr | None`, for what `RedisConfig(password=...)` accepts."""

    @overload
    def __get__(self, instance: None, owner: Any) -> _PasswordSetting: ...
    @overload
    def __get__(self, instance: object, owner: Any) -> SecretStr | None: ...
    def __set__(self, instance: object, value: str | SecretStr | None) -> None: ...


class RedisConfig(BaseModel):
    """Where and how to connect to Redis.

    The password is kept as a `SecretStr`: it never appears in `repr()`, `str()` or
    error messages. `redis_url` is the one place it is spelled out, because a
    connection URL needs it. A config cannot be changed once made.

    Attributes:
        host: Server host name.
        port: Server port.
        db: Database number.
        username: ACL user name, if the server uses ACLs.
        password: Password, if the server requires one: a `str` (or a `SecretStr`).
        ssl: Connect over TLS (`rediss://`).
        ssl_ca_certs: With `ssl`: a file of CA certificates to verify the server with
            (default: the system's).
        ssl_cert_reqs: With `ssl`: whether the server's certificate must verify.
        ssl_certfile: With `ssl`: a client certificate, for servers that ask for one.
        ssl_keyfile: With `ssl`: the client certificate's private key.
        encoding: Text encoding of stored strings; one that keeps ASCII as it is
            (`utf-8`, `latin-1`, ...), as Redis replies are ASCII.
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

    Raises:
        ConfigurationError: A setting is invalid (the message names it, never showing its
            value), unknown, or useless as combined with the others: a TLS setting
            without `ssl`, a database other than 0 on a cluster.

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
    if TYPE_CHECKING:
        password: _PasswordSetting = cast("_PasswordSetting", None)
    else:
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

    # pydantic's ValidationError cannot be subclassed, so the library's error is raised in
    # its place. Hidden from type checkers, which keep pydantic's typed signature.
    if not TYPE_CHECKING:

        def __init__(self, **settings: Any) -> None:
            with _configuration_errors():
                super().__init__(**settings)

        @classmethod
        def model_validate(cls, *args: Any, **kwargs: Any) -> RedisConfig:
            """Build a config from a mapping (or an object), as pydantic's `model_validate` does.

            Raises:
                ConfigurationError: A setting is invalid; it names the setting.
            """
            with _configuration_errors():
                return super().model_validate(*args, **kwargs)

        @classmethod
        def model_validate_json(cls, *args: Any, **kwargs: Any) -> RedisConfig:
            """Build a config from JSON text, as pydantic's `model_validate_json` does.

            Raises:
                ConfigurationError: A setting is invalid; it names the setting.
            """
            with _configuration_errors():
                return super().model_validate_json(*args, **kwargs)

        @classmethod
        def model_validate_strings(cls, *args: Any, **kwargs: Any) -> RedisConfig:
            """Build a config from a mapping of strings, as pydantic's `model_validate_strings`
            does.

            Raises:
                ConfigurationError: A setting is invalid; it names the setting.
            """
            with _configuration_errors():
                return super().model_validate_strings(*args, **kwargs)

        def __setattr__(self, name: str, value: Any) -> None:
            raise ConfigurationError(
                f"RedisConfig is immutable: cannot set {name!r}; make a new RedisConfig"
            )

    @field_validator("encoding")
    @classmethod
    def _check_encoding(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ConfigurationError(f"unknown text encoding {encoding!r}") from None
        if _ASCII.encode(encoding) != _ASCII.encode("ascii"):
            raise ConfigurationError(
                f"{encoding!r} does not keep ASCII text as it is, which Redis replies are "
                "written in; use an encoding such as 'utf-8' or 'latin-1'"
            )
        return encoding

    @model_validator(mode="after")
    def _check_combinations(self) -> RedisConfig:
        if self.cluster and self.in_memory:
            raise ConfigurationError("the embedded in-memory backend cannot be a cluster")
        if self.cluster and self.db != 0:
            raise ConfigurationError(
                f"a Redis Cluster has only database 0; db={self.db} cannot be used with it"
            )
        unused = [name for name in _TLS_SETTINGS if name in self.model_fields_set]
        if unused and not self.ssl:
            raise ConfigurationError(
                f"{', '.join(unused)}: TLS settings, which need ssl=True (a rediss:// URL)"
            )
        return self

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisConfig:
        """Build a config from `redis://`, `rediss://`, `redis+cluster://` or `memory://` URLs.

        Args:
            url: `redis://[[username]:password@]host[:port][/db][?option=value&...]`;
                `rediss://` for TLS; `redis+cluster://host:port` (or `rediss+cluster://`)
                for a Redis Cluster, through any of its nodes; `memory://` (or
                `memory://name`) for the embedded backend. Query options set the other
                fields, e.g. `rediss://cache:6380/0?ssl_cert_reqs=none&socket_timeout=2`.
            **options: Any other `RedisConfig` field, e.g. `socket_timeout=2`; these take
                precedence over the URL.

        Raises:
            ConfigurationError: The URL cannot be understood, has an option that is not a
                setting, or a setting is invalid.

        Example:
            >>> RedisConfig.from_url("redis://cache/2?socket_timeout=1.5").socket_timeout
            1.5
        """
        parts = _split(url)
        settings = _settings_of_parts(parts)
        for name, value in _query_options(parts.query).items():
            if name in settings:
                raise ConfigurationError(f"{name} is given twice in the Redis URL")
            settings[name] = value
        return cls(**{**settings, **options})

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


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsed on access: a bad port raises here
    except ValueError as exc:
        raise ConfigurationError(f"invalid Redis URL: {exc}") from None
    if parts.scheme not in _SCHEMES:
        raise ConfigurationError(
            f"unsupported URL scheme {parts.scheme!r}; use one of {', '.join(_SCHEMES)}"
        )
    return parts


def _memory_name(parts: SplitResult) -> str:
    """The dataset a `memory://name` URL names, as written: `Shop` and `shop` are two, and
    `memory://` (no name) is one of its own."""
    host = parts.netloc.rpartition("@")[2]
    if parts.port is not None:
        host = host.rpartition(":")[0]
    return host


def _settings_of_parts(parts: SplitResult) -> dict[str, Any]:
    """The settings that a URL's scheme, user info, host, port and path spell."""
    settings: dict[str, Any] = {
        "host": _memory_name(parts) if parts.scheme == "memory" else parts.hostname or "localhost",
        "ssl": parts.scheme.startswith("rediss"),
        "in_memory": parts.scheme == "memory",
        "cluster": parts.scheme.endswith("+cluster"),
    }
    if parts.port is not None:
        settings["port"] = parts.port
    if parts.username:
        settings["username"] = unquote(parts.username)
    if parts.password:
        settings["password"] = unquote(parts.password)
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ConfigurationError(f"the database in a Redis URL must be a number, not {db!r}")
    return {**settings, "db": int(db)} if db else settings


def _query_options(query: str) -> dict[str, str]:
    """A URL's query options, each a setting that the other parts of a URL do not spell."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise ConfigurationError(f"invalid query in the Redis URL: {exc}") from None
    accepted = sorted(set(RedisConfig.model_fields) - _URL_PARTS)
    options: dict[str, str] = {}
    for name, value in pairs:
        if name not in accepted:
            raise ConfigurationError(
                f"{name!r} is not a setting a Redis URL's query can give; use one of "
                f"{', '.join(accepted)} (user, password, host and port go in the URL "
                "itself, TLS in its scheme)"
            )
        if name in options:
            raise ConfigurationError(f"{name} is given twice in the Redis URL")
        options[name] = value
    return options


@contextmanager
def _configuration_errors() -> Iterator[None]:
    try:
        yield
    except ValidationError as exc:
        # `model_validate` runs `__init__`, whose error pydantic wraps once more.
        causes = [error.get("ctx", {}).get("error") for error in exc.errors()]
        explained = causes[0] if len(causes) == 1 else None
        if isinstance(explained, ConfigurationError) and explained.__cause__ is not None:
            raise explained from explained.__cause__
        raise ConfigurationError(_explain(exc)) from exc


def _explain(exc: ValidationError) -> str:
    """What pydantic found wrong, by setting, without the values (a password among them)."""
    problems = [_problem(error) for error in exc.errors(include_url=False, include_input=False)]
    return "invalid RedisConfig: " + "; ".join(problems)


def _problem(error: ErrorDetails) -> str:
    cause = error.get("ctx", {}).get("error")
    message = str(cause) if isinstance(cause, ConfigurationError) else error["msg"]
    where = ".".join(map(str, error["loc"]))
    return f"{where}: {message}" if where else message
