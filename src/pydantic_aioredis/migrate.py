"""Migrating the records that pydantic-aioredis 1.4 wrote to today's layout.

The same migration runs from the command line: `python -m pydantic_aioredis upgrade-1.4
--url redis://... --models myapp.models:Book,myapp.models:Library [--dry-run]
[--json-fields Book.color] [--text-fields Book.note]`. What it changes, and how to upgrade a
running application, is in docs/upgrading-from-1.4.md.

Example:
    ```python
    from pydantic_aioredis.migrate import upgrade_from_1_4

    report = await upgrade_from_1_4(store, [Book, Library])
    print(report.summary())
    ```
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._exceptions import ConfigurationError
from ._legacy_values import LegacyValues, StoredAs
from ._upgrade import ModelUpgrade, ModelUpgrader, Progress, RecordProblem

if TYPE_CHECKING:
    from ._model import Model
    from ._store import Store
    from ._table import ModelTable

__all__ = ["ModelUpgrade", "RecordProblem", "UpgradeReport", "upgrade_from_1_4"]

# Records per call. Measured here (2 cores, Redis 7, a busy machine), the calls of a
# migration of six-field records, 250 per call, held the server 2.7 ms at the median:
# about as long as our other bulk calls (see docs/upgrading-from-1.4.md, Speed).
CHUNK_SIZE = 250
# Lua unpacks at most about 8,000 values at once; a call's index entries are two per record.
MAX_CHUNK_SIZE = 2000


@dataclass
class UpgradeReport:
    """What `upgrade_from_1_4` did (in a dry run: would do), model by model.

    Attributes:
        dry_run: Whether this was a dry run (nothing was written).
        models: One report per model, in the order given.
    """

    dry_run: bool
    models: list[ModelUpgrade]

    @property
    def problems(self) -> list[RecordProblem]:
        """The records left as they were, with the reason, for every model."""
        return [problem for model in self.models for problem in model.problems]

    def summary(self) -> str:
        """A few lines for people: a line per model, then each record not converted."""
        title = "dry run, nothing written: " if self.dry_run else ""
        lines = [f"{title}upgrade from pydantic-aioredis 1.4"]
        lines += [f"  {model.describe(self.dry_run)}" for model in self.models]
        if self.problems:
            left = "would be left as they are" if self.dry_run else "left as they were"
            lines.append(f"records {left} (fix them, or the model, and run again):")
            lines += [f"  {problem}" for problem in self.problems]
        return "\n".join(lines)


async def upgrade_from_1_4(
    store: Store,
    models: Iterable[type[Model]],
    *,
    dry_run: bool = False,
    chunk_size: int = CHUNK_SIZE,
    progress: Progress | None = None,
    json_fields: Iterable[str] = (),
    text_fields: Iterable[str] = (),
) -> UpgradeReport:
    """Convert the records pydantic-aioredis 1.4 wrote for these models to today's layout.

    For each model: its 1.4 index (a set of keys, also where 1.4 lower-cased the prefix)
    becomes our sorted-set index; every value is re-encoded from 1.4's form to ours by its
    field's type; a record whose key changed (the prefix's case, or the text of its
    primary key) moves there; each record keeps its remaining TTL and gets its entries in
    the indexes of the fields the model declares `Indexed`. A record that cannot be
    converted is left as it was and reported, naming its key and field.

    Values are read by the rules 1.4 stored them by for the field's type today. Where that
    type changed since 1.4, name the field in `json_fields` if 1.4 stored it as JSON (its
    type then was not exactly `str`, `int` or `float`: an Enum, UUID, date, Literal,
    `constr`...; for a list or dict, its items' type), or in `text_fields` if 1.4 stored it
    as its text. A value of a `str` field that looks like JSON (a JSON string, or `null`)
    is reported, not taken as text, unless the field is named in one of them.

    Safe to stop and run again: each record is converted and taken off the model's list of
    records to do in one call, so a rerun finishes the job, and a second run finds nothing
    to do. A record left as it was and written since by this library (`insert`, `save`)
    is in today's layout: a rerun takes it off the list as it is. Each call handles one
    chunk of records, so the server keeps serving other clients, and models already
    migrated can be used meanwhile. Stop the writers that still run 1.4 first (see
    docs/upgrading-from-1.4.md).

    Args:
        store: A store on the Redis server that holds the 1.4 data (not a cluster).
        models: The models to migrate, as they are declared today; each is registered
            with `store` if it is not yet.
        dry_run: Read and report what would be done; write nothing.
        chunk_size: Records per call.
        progress: Called after each chunk with the model's name, the records done and the
            records in all.
        json_fields: Fields that 1.4 stored as JSON although their type today says text,
            as `"Model.field"` (the model's class name).
        text_fields: Fields that 1.4 stored as their text although their type today says
            JSON, or whose text may look like JSON, as `"Model.field"`.

    Returns:
        The report; `report.problems` lists the records left as they were.

    Raises:
        ConfigurationError: The store is on a Redis Cluster, a model is registered with
            another store, or a field named in `json_fields` or `text_fields` is not a
            field of one of the models.
        RedisOperationError: Redis failed; run the migration again.
    """
    if store.cluster:
        raise ConfigurationError(
            "pydantic-aioredis 1.4 wrote to a single Redis server; migrate there, with a "
            "store that is not on a cluster"
        )
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ConfigurationError(
            f"chunk_size must be from 1 to {MAX_CHUNK_SIZE:,}, not {chunk_size!r}"
        )
    models = list(dict.fromkeys(models))
    stored_as = _stored_as(models, json_fields, text_fields)
    tables = [_table(store, model) for model in models]
    report = UpgradeReport(dry_run, [])
    for model, table in zip(models, tables):
        values = LegacyValues(model, stored_as.get(model.__name__))
        upgrader = ModelUpgrader(store, table, values, chunk_size, progress)
        report.models.append(await (upgrader.dry_run() if dry_run else upgrader.run()))
    return report


def _table(store: Store, model: type[Model]) -> ModelTable[Any]:
    if model not in store._tables:
        owner = model._store
        if owner is not None and owner is not store:
            raise ConfigurationError(
                f"{model.__name__} is registered with store {owner.name!r}: migrate it with "
                f"that store, or call unregister_model({model.__name__}) on it first"
            )
        store.register_model(model)
    return store._tables[model]


def _stored_as(
    models: list[type[Model]], json_fields: Iterable[str], text_fields: Iterable[str]
) -> dict[str, dict[str, StoredAs]]:
    """`{"Model": {"field": "json" or "text"}}` from the `"Model.field"` names given."""
    found: dict[str, dict[str, StoredAs]] = {}
    by_name = {model.__name__: model for model in models}
    named: tuple[tuple[Iterable[str], StoredAs], ...] = (
        (json_fields, "json"),
        (text_fields, "text"),
    )
    for names, how in named:
        for name in [names] if isinstance(names, str) else names:
            model_name, field_name = _model_field(name.strip(), by_name, how)
            if found.setdefault(model_name, {}).setdefault(field_name, how) != how:
                raise ConfigurationError(
                    f"{name.strip()} is named in both json_fields and text_fields"
                )
    return found


def _model_field(name: str, models: dict[str, type[Model]], how: str) -> tuple[str, str]:
    """`"Book.color"` -> `("Book", "color")`, for a field of one of the models."""
    model_name, _, field_name = name.partition(".")
    model = models.get(model_name)
    if model is None or field_name not in model.model_fields:
        raise ConfigurationError(
            f"{how}_fields: {name!r} is not Model.field for a field of one of the models "
            f"migrated ({', '.join(models)})"
        )
    return model_name, field_name
