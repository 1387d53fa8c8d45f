"""`PydanticAioredisCRUDRouter`: the 1.4 name and arguments of the CRUD router.

pydantic-aioredis 1.4 built its router on fastapi-crudrouter. This is our `CRUDRouter`,
taking 1.4's arguments; its routes, status codes and bodies are those of `CRUDRouter`
(see docs/fastapi.md and "Changes from 1.4" in the README).
"""

from __future__ import annotations

from typing import Any

from .._exceptions import ConfigurationError
from .._model import Model
from .._store import Store
from .fastapi import CRUDRouter

__all__ = ["PydanticAioredisCRUDRouter"]

# 1.4 (fastapi-crudrouter) route switch -> ours.
_ROUTES = {
    "get_all_route": "list_route",
    "get_one_route": "get_route",
    "create_route": "create_route",
    "update_route": "replace_route",  # PUT {prefix}/{pk}
    "delete_one_route": "delete_one_route",
    "delete_all_route": "delete_all_route",
}


class PydanticAioredisCRUDRouter(CRUDRouter):
    """Deprecated: `CRUDRouter(Model)` with the arguments of pydantic-aioredis 1.4.

    Args:
        schema: The model.
        store: Its store; the model is registered with it if it is not yet.
        prefix: URL prefix (default, as in 1.4: `/` + the model's name, lower-cased).
        tags: OpenAPI tags.
        paginate: The largest page `GET {prefix}` returns (`max_limit`).
        get_all_route, get_one_route, create_route, update_route, delete_one_route,
        delete_all_route: Switch a route off with False (route dependencies, which 1.4
            accepted here, are refused: put them on the router or the app).
        create_schema, update_schema: Not supported: must be None.
        **kwargs: Passed on to `CRUDRouter`.

    Raises:
        ConfigurationError: A custom schema or route dependencies were given.
    """

    def __init__(
        self,
        schema: type[Model],
        store: Store,
        create_schema: type[Any] | None = None,
        update_schema: type[Any] | None = None,
        prefix: str | None = None,
        tags: list[str] | None = None,
        paginate: int | None = None,
        **kwargs: Any,
    ) -> None:
        if create_schema is not None or update_schema is not None:
            raise ConfigurationError(
                "PydanticAioredisCRUDRouter takes no create_schema or update_schema: "
                "request bodies are the model's fields (see docs/fastapi.md)"
            )
        switches = {ours: kwargs.pop(old, True) for old, ours in _ROUTES.items()}
        for old, ours in _ROUTES.items():
            if not isinstance(switches[ours], bool):
                raise ConfigurationError(
                    f"PydanticAioredisCRUDRouter: {old} must be True or False; route "
                    "dependencies are not supported here: give them to the router "
                    "(dependencies=[...]) or to the app"
                )
        if store.models.get(schema.__name__.lower()) is not schema:
            store.register_model(schema)
        if paginate is not None:
            kwargs["max_limit"] = paginate
        name = (prefix or schema.__name__).strip("/").lower()
        super().__init__(schema, prefix=f"/{name}", tags=tags, **switches, **kwargs)
