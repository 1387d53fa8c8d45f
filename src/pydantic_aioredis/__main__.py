"""The command line: `python -m pydantic_aioredis upgrade-1.4 ...` and `... build-indexes ...`.

    python -m pydantic_aioredis build-indexes --url redis://localhost:6379/0 \\
        --models myapp.models:Book,myapp.models:Library

Builds the secondary indexes of those models that do not cover every record yet (see
`Model.build_indexes` and docs/queries.md), and drops those no longer declared; prints what it
built. Exits with 0, or 2 on bad arguments or a failure.

    python -m pydantic_aioredis upgrade-1.4 --url redis://localhost:6379/0 \\
        --models myapp.models:Book,myapp.models:Library [--dry-run] \\
        [--json-fields Book.color,...] [--text-fields Book.note,...]

Migrates the records pydantic-aioredis 1.4 wrote for those models (see
`pydantic_aioredis.migrate` and docs/upgrading-from-1.4.md), showing its progress on
stderr and a summary on stdout. Exits with 0 when every record was converted, 1 when some
were left as they were (the summary names them), 2 on bad arguments or a failure.

A model that its module registers with a store of its own when imported (the usual layout
of an application) is taken from that store for the migration, which runs on the server
that `--url` names, and given back to it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from ._config import RedisConfig
from ._exceptions import PydanticAioredisError
from ._model import Model, store_of
from ._store import Store
from .migrate import CHUNK_SIZE, UpgradeReport, upgrade_from_1_4

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns its exit status."""
    args = _parser().parse_args(argv)
    if not args.url:
        print("error: give --url, or set REDIS_URL", file=sys.stderr)
        return 2
    try:
        models = [_import_model(name) for name in _names(args.models)]
        if not models:
            raise ValueError("--models names no model: give module:Class[,module:Class...]")
        if args.command == "build-indexes":
            for line in asyncio.run(_build_indexes(args.url, models)):
                print(line)
            return 0
        report = asyncio.run(_upgrade(args, models))
    except (PydanticAioredisError, ImportError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 1 if report.problems else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pydantic_aioredis")
    commands = parser.add_subparsers(dest="command", required=True)
    upgrade = commands.add_parser(
        "upgrade-1.4",
        help="migrate records written by pydantic-aioredis 1.4",
        description="Migrate the records pydantic-aioredis 1.4 wrote for the given models "
        "to today's layout. Safe to stop and run again.",
    )
    upgrade.add_argument(
        "--url",
        default=os.environ.get("REDIS_URL"),
        help="the Redis server holding the 1.4 data, e.g. redis://localhost:6379/0 "
        "(default: $REDIS_URL)",
    )
    upgrade.add_argument(
        "--models",
        required=True,
        help="the models, as they are declared today: module:Class[,module:Class...]",
    )
    upgrade.add_argument(
        "--dry-run", action="store_true", help="report what would be done; write nothing"
    )
    upgrade.add_argument(
        "--chunk-size", type=int, default=CHUNK_SIZE, help=f"records per call ({CHUNK_SIZE})"
    )
    upgrade.add_argument(
        "--json-fields",
        default="",
        metavar="MODEL.FIELD,...",
        help="fields 1.4 stored as JSON although they are typed str today (in 1.4: an Enum, "
        "UUID, date, Literal, constr...)",
    )
    upgrade.add_argument(
        "--text-fields",
        default="",
        metavar="MODEL.FIELD,...",
        help="fields 1.4 stored as their text (typed str, int or float in 1.4), whatever "
        "they are typed today or look like",
    )
    build = commands.add_parser(
        "build-indexes",
        help="build the indexes of models that have records written before they were indexed",
        description="Build the secondary indexes of the given models that do not cover every "
        "record yet, and drop those no longer declared. Safe to run while the application "
        "writes, and to stop and run again.",
    )
    build.add_argument(
        "--url",
        default=os.environ.get("REDIS_URL"),
        help="the Redis holding the records, e.g. redis://localhost:6379/0, or a "
        "redis+cluster:// URL (default: $REDIS_URL)",
    )
    build.add_argument("--models", required=True, help="the models: module:Class[,module:Class...]")
    return parser


async def _build_indexes(url: str, models: list[type[Model]]) -> list[str]:
    store = Store(name="build-indexes", redis_config=RedisConfig.from_url(url))
    lines = []
    with _borrowed(models, store):
        for model in models:
            store.register_model(model)
        async with store:
            for model in models:
                built = await model.build_indexes()
                done = ", ".join(f"{name} ({count:,} records)" for name, count in built.items())
                lines.append(f"{model.__name__}: {done or 'every index was complete already'}")
    return lines


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _import_model(name: str) -> type[Model]:
    """`myapp.models:Book` -> the class (`module.path:Outer.Inner` works too)."""
    module_name, _, attribute = name.strip().partition(":")
    if not module_name or not attribute:
        raise ValueError(f"--models takes module:Class, not {name.strip()!r}")
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError:
        raise
    except (Exception, SystemExit) as exc:  # the module's own code failed (a setting, say)
        raise ValueError(f"importing {module_name} failed: {type(exc).__name__}: {exc}") from exc
    for part in attribute.split("."):
        value = getattr(value, part, None)
        if value is None:
            raise ValueError(f"{module_name} has no {attribute!r}")
    if not (isinstance(value, type) and issubclass(value, Model)):
        raise ValueError(f"{name.strip()} is not a pydantic_aioredis Model")
    return value


async def _upgrade(args: argparse.Namespace, models: list[type[Model]]) -> UpgradeReport:
    store = Store(name="upgrade-1.4", redis_config=RedisConfig.from_url(args.url))
    with _borrowed(models, store):
        async with store:
            return await upgrade_from_1_4(
                store,
                models,
                dry_run=args.dry_run,
                chunk_size=args.chunk_size,
                progress=ProgressBar(),
                json_fields=_names(args.json_fields),
                text_fields=_names(args.text_fields),
            )


@contextmanager
def _borrowed(models: list[type[Model]], store: Store) -> Iterator[None]:
    """Register the models with `store` for the duration, taking each from the store its
    module registered it with (a model belongs to one store at a time), and give them back.

    That store's own settings (its URL may come from the application's environment) play no
    part: the migration runs where `--url` says.
    """
    lent: dict[type[Model], Store] = {}
    for model in models:
        owner = store_of(model)
        if owner is not None and owner is not store:
            owner.unregister_model(model)
            lent[model] = owner
    try:
        yield  # the migration registers the models with `store`
    finally:
        for model, owner in lent.items():
            if store_of(model) is store:
                store.unregister_model(model)
            owner.register_model(model)


class ProgressBar:
    """A progress line per model on a terminal (`Book [#####-----] 500/1,000`), redrawn at
    most ten times a second; elsewhere, one line when a model is done."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self._drawn = 0.0
        self._finished: set[str] = set()

    def __call__(self, model: str, done: int, total: int) -> None:
        if model in self._finished:
            return
        finished = done >= total
        now = time.monotonic()
        if finished:
            self._finished.add(model)
        elif not self.live or now - self._drawn < 0.1:
            return
        self._drawn = now
        if self.live:
            filled = 30 * done // total if total else 30
            bar = "#" * filled + "-" * (30 - filled)
            self.stream.write(f"\r{model} [{bar}] {done:,}/{total:,}" + "\n" * finished)
        else:
            self.stream.write(f"{model}: {total:,} records done\n")
        self.stream.flush()


if __name__ == "__main__":
    sys.exit(main())
