"""The import paths of pydantic-aioredis 1.4, kept working with a `DeprecationWarning`.

* `pydantic_aioredis.config.RedisConfig`: now `pydantic_aioredis.RedisConfig`;
* `pydantic_aioredis.store.Store`: now `pydantic_aioredis.Store`;
* `pydantic_aioredis.model.Model` and `.AutoModel`: now `pydantic_aioredis.Model`, `.AutoModel`;
* `pydantic_aioredis.ext.FastAPI.FastAPIModel`: now in `pydantic_aioredis.ext.fastapi`;
* `pydantic_aioredis.ext.FastAPI.PydanticAioredisCRUDRouter`: now
  `pydantic_aioredis.ext.fastapi.CRUDRouter` (it takes 1.4's arguments, see `_fastapi14`).

The first three are small modules of their own. `ext.FastAPI` cannot be: a file `FastAPI.py`
beside `fastapi.py` is the same file on a case-insensitive file system (macOS, Windows).
So importing `pydantic_aioredis.ext` puts a module object under that name in `sys.modules`,
where the import system looks first; it loads FastAPI only when a name is taken from it.
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["FASTAPI_ALIAS", "install_fastapi_alias", "moved_names"]

FASTAPI_ALIAS = "pydantic_aioredis.ext.FastAPI"

# Old name -> (module that holds it now, its name there, how to import it now).
_FASTAPI_NAMES = {
    "FastAPIModel": (
        "pydantic_aioredis.ext.fastapi",
        "FastAPIModel",
        "from pydantic_aioredis.ext.fastapi import FastAPIModel",
    ),
    "PydanticAioredisCRUDRouter": (
        "pydantic_aioredis.ext._fastapi14",
        "PydanticAioredisCRUDRouter",
        "from pydantic_aioredis.ext.fastapi import CRUDRouter; CRUDRouter(Model)",
    ),
}


def moved_names(old_module: str, names: dict[str, tuple[str, str, str]]) -> Callable[[str], Any]:
    """A module `__getattr__` that hands out names moved elsewhere, each with a warning.

    Args:
        old_module: The 1.4 module's name, for the message.
        names: Old name -> (module that holds it now, its name there, the new import).
    """

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        module, attribute, new_import = names[name]
        warnings.warn(
            f"{old_module}.{name} is the pydantic-aioredis 1.4 import path and is "
            f"deprecated; use: {new_import}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module), attribute)

    return __getattr__


def install_fastapi_alias() -> None:
    """Register `pydantic_aioredis.ext.FastAPI` (called when `pydantic_aioredis.ext` loads)."""
    if FASTAPI_ALIAS in sys.modules:
        return
    module = types.ModuleType(
        FASTAPI_ALIAS,
        "Deprecated: the pydantic-aioredis 1.4 path of `pydantic_aioredis.ext.fastapi`.",
    )
    module.__all__ = sorted(_FASTAPI_NAMES)  # type: ignore[attr-defined]
    module.__getattr__ = moved_names(FASTAPI_ALIAS, _FASTAPI_NAMES)  # type: ignore[method-assign]
    sys.modules[FASTAPI_ALIAS] = module
    # As the import system does for a submodule it loads: an attribute of the package.
    parent, _, name = FASTAPI_ALIAS.rpartition(".")
    setattr(sys.modules[parent], name, module)
