"""Deprecated: the pydantic-aioredis 1.4 path of `Model` and `AutoModel`.

Use `from pydantic_aioredis import Model, AutoModel`.
"""

from typing import TYPE_CHECKING

from ._legacy_imports import moved_names

if TYPE_CHECKING:
    from ._model import AutoModel as AutoModel
    from ._model import Model as Model

__all__ = ["AutoModel", "Model"]

__getattr__ = moved_names(
    __name__,
    {
        name: ("pydantic_aioredis", name, f"from pydantic_aioredis import {name}")
        for name in __all__
    },
)
