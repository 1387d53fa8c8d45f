"""Where the tests find a record in Redis, on a single server and on a cluster alike."""

from __future__ import annotations

from typing import Any

from pydantic_aioredis import Store
from pydantic_aioredis._model import _TABLES, store_of


def key(name: str) -> str:
    """The Redis key of the record that a single server keeps at `name` ("note:n1").

    On a cluster the same record lives in its bucket ("note:{5.12}:n1"); this finds the
    registered model whose namespace starts `name` and asks its key layout.
    """
    table, pk = _table_and_pk(name)
    return str(table.keys.record_key(pk))


def index_key(name: str) -> str:
    """The index that lists the record a single server keeps at `name` (its bucket's
    index on a cluster)."""
    table, pk = _table_and_pk(name)
    return str(table.keys.shards[table.keys.shard_index(pk)].index_key)


def _table_and_pk(name: str) -> tuple[Any, str]:
    tables = [t for t in _TABLES.values() if name.startswith(t.keys.namespace)]
    if not tables:
        raise LookupError(f"no registered model keeps records under {name!r}")
    table = max(tables, key=lambda t: len(t.keys.namespace))
    return table, name[len(table.keys.namespace) :]


def register_alone(store: Store, *models: Any) -> None:
    """Register models with `store`, taking them from whatever store had them (a test that
    makes a store of its own, beside the one its fixtures registered the models with)."""
    for model in models:
        owner = store_of(model)
        if owner is not None and owner is not store:
            owner.unregister_model(model)
        store.register_model(model)
