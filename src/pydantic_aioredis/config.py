"""Deprecated: the pydantic-aioredis 1.4 path of `RedisConfig`.

Use `from pydantic_aioredis import RedisConfig`.
"""

from typing import TYPE_CHECKING

from ._legacy_imports import moved_names

if TYPE_CHECKING:
    from ._config import RedisConfig as RedisConfig

__all__ = ["RedisConfig"]

__getattr__ = moved_names(
    __name__,
    {
        "RedisConfig": (
            "pydantic_aioredis",
            "RedisConfig",
            "from pydantic_aioredis import RedisConfig",
        )
    },
)
