"""Migrating the records that pydantic-aioredis 1.4 wrote to today's layout.

The same migration runs from the command line: `python -m pydantic_aioredis upgrade-1.4
--url redis://... --models myapp.models:Book,myapp.models:Library [--dry-run]`. What it
changes, and how to upgrade a running application, is in docs/upgrading-from-1.4.md.

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
) -> UpgradeReport:
    """Convert the records pydantic-aioredis 1.4 wrote for these models to today's layout.

    For each model: its 1.4 index (a set of keys, also where 1.4 lower-cased the prefix)
    becomes our sorted-set index; every value is re-encoded from 1.4's form to ours by its
    field's type; a record whose key changed (the prefix's case, or the text of its
    primary key) moves there; each record keeps its remaining TTL. A record that cannot be
    converted is left as it was and reported, naming its key and field.

    Safe to stop and run again: each record is converted and taken off the model's list of
    records to do in one call, so a rerun finishes the job, and a second run finds nothing
    to do. Each call handles one chunk of records, so the server keeps serving other
    clients, and models already migrated can be used meanwhile. Stop the writers that
    still run 1.4 first (see docs/upgrading-from-1.4.md).

    Args:
        store: A store on the Redis server that holds the 1.4 data (not a cluster).
        models: The models to migrate, as they are declared today; each is registered
            with `store` if it is not yet.
        dry_run: Read and report what would be done; write nothing.
        chunk_size: Records per call.
        progress: Called after each chunk with the model's name, the records done and the
            records in all.

    Returns:
        The report; `report.problems` lists the records left as they were.

    Raises:
        ConfigurationError: The store is on a Redis Cluster, or a model is registered with
            another store.
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
    report = UpgradeReport(dry_run, [])
    for model in dict.fromkeys(models):
        upgrader = ModelUpgrader(store, _table(store, model), chunk_size, progress)
        report.models.append(await (upgrader.dry_run() if dry_run else upgrader.run()))
    return report


def _table(store: Store, model: type[Model]) -> ModelTable[Any]:
    if model not in store._tables:
        if model._store is not None and model._store is not store:
            raise ConfigurationError(
                f"{model.__name__} is registered with store {model._store.name!r}; "
                "migrate it with that store"
            )
        store.register_model(model)
    return store._tables[model]
