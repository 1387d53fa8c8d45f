"""The library's errors: one root, a few branches.

```
PydanticAioredisError                 the root: catch this to catch everything we raise
├── ConfigurationError (ValueError)   a model, store or connection set up wrongly
│   ├── NotRegisteredError            a model used before `store.register_model(Model)`
│   └── PrimaryKeyError (AttributeError)  no valid `_primary_key_field`
├── InvalidInputError (ValueError)    a call's arguments are wrong (bad id, unknown column)
├── SerializationError (ValueError, TypeError)  a field value cannot be stored; nothing
│                                     was written
├── CorruptRecordError                a record in Redis cannot be read back as the model
├── UsageError (RuntimeError)         a call made where or when it cannot work (no event loop,
│   │                                 an update() block already open in another task)
│   └── IndexNotReadyError            a query on an index not built yet: build_indexes()
├── ConflictError                     the record changed (or is gone) since it was read
└── RedisOperationError               Redis failed; the redis-py error is the `__cause__`
    ├── AutoSaveError                 an automatic write failed; it stays queued for retry
    └── UnmigratedDataError           a model's records are still as pydantic-aioredis 1.4
                                      wrote them: migrate them (docs/upgrading-from-1.4.md)
```

Two classes also derive from the built-in error that pydantic-aioredis 1.4 raised in their
place, so that code written for 1.4 keeps catching them: `SerializationError` is a
`TypeError`, `PrimaryKeyError` an `AttributeError`.

Errors from redis-py are never swallowed: they are re-raised as `RedisOperationError`
with the original exception chained (`raise ... from exc`).
"""

from __future__ import annotations

__all__ = [
    "AutoSaveError",
    "ConfigurationError",
    "ConflictError",
    "CorruptRecordError",
    "IndexNotReadyError",
    "InvalidInputError",
    "NotRegisteredError",
    "PrimaryKeyError",
    "PydanticAioredisError",
    "RedisOperationError",
    "SerializationError",
    "UnmigratedDataError",
    "UsageError",
]


class PydanticAioredisError(Exception):
    """Root of every error raised by pydantic-aioredis."""


class ConfigurationError(PydanticAioredisError, ValueError):
    """A model, a store or a connection is declared or set up wrongly."""


class NotRegisteredError(ConfigurationError):
    """A model was used with Redis before it was registered with a store.

    Attributes:
        model_name: The class name of the model.
    """

    def __init__(self, model_name: str) -> None:
        super().__init__(
            f"{model_name} is not registered with a store; "
            f"call store.register_model({model_name}) first"
        )
        self.model_name = model_name


class PrimaryKeyError(ConfigurationError, AttributeError):
    """A model has no `_primary_key_field`, or it names no field of the model.

    Also an `AttributeError`, which is what pydantic-aioredis 1.4 raised here.
    """


class InvalidInputError(PydanticAioredisError, ValueError):
    """An argument of a library call is wrong: a bad primary key, an unknown column..."""


class SerializationError(PydanticAioredisError, ValueError, TypeError):
    """A field value cannot be turned into a stored string; nothing was written.

    Also a `TypeError`, which is what pydantic-aioredis 1.4 raised for such a value.
    """


class CorruptRecordError(PydanticAioredisError):
    """A record read from Redis does not validate as its model.

    Attributes:
        model_name: The model being read.
        key: The Redis key of the record.
        field: The field at fault, or None when the record as a whole is wrong.
    """

    def __init__(self, model_name: str, key: str, field: str | None, problem: str) -> None:
        where = f"field {field!r} of " if field else ""
        super().__init__(f"{model_name}: {where}record {key!r} is invalid: {problem}")
        self.model_name = model_name
        self.key = key
        self.field = field


class ConflictError(PydanticAioredisError):
    """A write found the record not as the instance expected: changed since it was read
    (with a `_version_field`), or gone (expired, deleted) for a change of some fields.
    Nothing was written. Select it again, reapply the change, retry (or `save()` it).

    Attributes:
        model_name: The model being written.
        key: The Redis key of the record.
        version: The version the instance was read at; None for an unversioned model.
    """

    def __init__(self, model_name: str, key: str, version: int | None) -> None:
        if version is None:
            problem = (
                "no longer exists (it expired or was deleted), so its changed fields were not "
                "written; save() writes the whole record again"
            )
        else:
            problem = (
                f"is no longer at version {version}; it was changed or deleted since it was "
                "read, and nothing was written"
            )
        super().__init__(f"{model_name}: record {key!r} {problem}")
        self.model_name = model_name
        self.key = key
        self.version = version


class UsageError(PydanticAioredisError, RuntimeError):
    """A call was made where or when it cannot work: `Store.redis_store` outside an event
    loop, or a second `update()` block on an instance whose block another task holds open."""


class IndexNotReadyError(UsageError):
    """A query uses an indexed field whose index does not cover every record yet: the field
    was marked `Indexed` when records existed already, or its type changed. Nothing was read.
    `await Model.build_indexes()` (or `python -m pydantic_aioredis build-indexes`) builds it.

    Attributes:
        model_name: The model queried.
        fields: The fields whose indexes are not ready.
    """

    def __init__(self, model_name: str, fields: list[str], why: str) -> None:
        names = ", ".join(fields)
        super().__init__(
            f"{model_name}: the index of {names} is not ready ({why}); a query on it could "
            f"miss records. Build it with `await {model_name}.build_indexes()` or "
            "`python -m pydantic_aioredis build-indexes`"
        )
        self.model_name = model_name
        self.fields = fields


class RedisOperationError(PydanticAioredisError):
    """Redis refused or failed an operation; the redis-py exception is the `__cause__`."""


class AutoSaveError(RedisOperationError):
    """An automatic write could not be delivered.

    The write stays queued on the store and is retried by the next library call or
    `await store.flush()`; nothing is dropped.
    """


class UnmigratedDataError(RedisOperationError):
    """A model's records in Redis are still in the layout pydantic-aioredis 1.4 wrote (its
    index is a set of keys): no call on the model can work until they are migrated with
    `python -m pydantic_aioredis upgrade-1.4` (see docs/upgrading-from-1.4.md). Nothing was
    written.

    Attributes:
        model_name: The model whose records need the migration.
        key: The key that holds the 1.4 index, or the list of records a migration that was
            stopped has still to convert.
        command: The command that migrates the model (with the URL's password masked).
        interrupted: Whether a migration of the model was started and has not finished.
    """

    def __init__(self, model_name: str, key: str, command: str, interrupted: bool) -> None:
        if interrupted:
            state = (
                "a migration of its records from pydantic-aioredis 1.4 was started and has "
                f"not finished ({key!r} lists the records still to do); run it again"
            )
        else:
            state = (
                f"its records are still in the pydantic-aioredis 1.4 layout ({key!r} is a 1.4 "
                "index); migrate them first"
            )
        super().__init__(
            f"{model_name}: {state}: {command} (see docs/upgrading-from-1.4.md); "
            "nothing was written"
        )
        self.model_name = model_name
        self.key = key
        self.command = command
        self.interrupted = interrupted
