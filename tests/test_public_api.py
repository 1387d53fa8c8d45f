"""The public API is exactly what `__all__` says, and every name is documented."""

from __future__ import annotations

import inspect
from pathlib import Path

import pydantic_aioredis


def test_exported_names() -> None:
    assert pydantic_aioredis.__all__ == [
        "AutoModel",
        "AutoSaveError",
        "ConfigurationError",
        "ConflictError",
        "CorruptRecordError",
        "IndexNotReadyError",
        "Indexed",
        "InvalidInputError",
        "Model",
        "NotRegisteredError",
        "PrimaryKeyError",
        "PydanticAioredisError",
        "RedisConfig",
        "RedisOperationError",
        "SerializationError",
        "Store",
        "UnmigratedDataError",
        "UsageError",
        "__version__",
    ]
    assert sorted(pydantic_aioredis.__all__) == pydantic_aioredis.__all__


def test_every_public_name_has_a_docstring() -> None:
    for name in pydantic_aioredis.__all__:
        value = getattr(pydantic_aioredis, name)
        if inspect.isclass(value):
            assert inspect.getdoc(value), name
            for attribute, member in vars(value).items():
                if not attribute.startswith("_") and callable(member):
                    assert inspect.getdoc(member), f"{name}.{attribute}"


def test_every_error_derives_from_the_root() -> None:
    for name in pydantic_aioredis.__all__:
        value = getattr(pydantic_aioredis, name)
        if inspect.isclass(value) and issubclass(value, Exception):
            assert issubclass(value, pydantic_aioredis.PydanticAioredisError), name


def test_ships_py_typed_and_the_version() -> None:
    assert (Path(pydantic_aioredis.__file__).parent / "py.typed").exists()
    assert pydantic_aioredis.__version__ == "2.0.0.dev0"
