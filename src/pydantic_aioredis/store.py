"""Deprecated: the pydantic-aioredis 1.4 path of `Store`.

Use `from pydantic_aioredis import Store`.
"""

from typing import TYPE_CHECKING

from ._legacy_imports import moved_names

if TYPE_CHECKING:
    from ._store import Store as Store

__all__ = ["Store"]

__getattr__ = moved_names(
    __name__, {"Store": ("pydantic_aioredis", "Store", "from pydantic_aioredis import Store")}
)
