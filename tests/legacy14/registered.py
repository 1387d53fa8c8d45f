"""A model module laid out as applications lay them out: it registers its model with a store
of its own when it is imported, on the server its environment names (`SHOP_REDIS_URL`;
the embedded backend when unset). The migration command must migrate it all the same, on
the server its `--url` names."""

from __future__ import annotations

import os

from pydantic_aioredis import Model, RedisConfig, Store


class Shelf(Model):
    _primary_key_field: str = "code"
    code: str
    size: int


store = Store(
    name="shop", redis_config=RedisConfig.from_url(os.environ.get("SHOP_REDIS_URL", "memory://"))
)
store.register_model(Shelf)
