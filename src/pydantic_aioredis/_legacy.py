"""Records that pydantic-aioredis 1.4 wrote: where they are, and keeping calls off them.

1.4 kept a model's index as a Redis *set* of full record keys, at
`{prefix}{sep}{table}{sep}__index` with the prefix and separator lower-cased
(`myapp:things:__index` for `_redis_prefix = "MyApp"`). We keep a sorted set of primary keys
at that name, with the prefix as written. Until `pydantic_aioredis.migrate` has converted a
model's records, no call may touch them: our scripts would fail on the set (WRONGTYPE) or,
where 1.4 lower-cased the prefix, see an empty model and write beside the old records.

So the store runs every call through `LegacyIndexCheck.guard`, which

* before the first call on a model over a connection, looks in one script call per model for
  a 1.4 index (under both prefixes) or a migration left unfinished, and raises
  `UnmigratedDataError` if it finds one; found nothing, the model is not looked at again on
  that connection (the check costs one round trip per model and connection);
* turns a WRONGTYPE error on a model that turns out to hold 1.4 data (written after the check
  passed) into the same `UnmigratedDataError`.

A migration renames the 1.4 index to `{namespace}__index:~upgrading_1.4` (the records still
to do) and lists the records it cannot convert in `{namespace}__index:~unconverted_1.4`. Both
names start with `__index:`, which no primary key may (see `_keys`), so no record can take
them. The migration's own calls are let through: they are what ends the refusal. On a
cluster there is nothing to look for: 1.4 could not write to one.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._connection import run_calls
from ._exceptions import RedisOperationError, UnmigratedDataError
from ._keys import INDEX_SUFFIX
from ._scripts import LuaScript, ScriptCall
from ._upgrade_scripts import MIGRATION_SCRIPTS

if TYPE_CHECKING:
    from ._connection import AsyncClient
    from ._model import Model
    from ._store import Store
    from ._table import ModelTable

__all__ = ["LegacyIndexCheck", "LegacyKeys", "upgrade_command"]

# Under the `__index:` prefix that primary keys may not take (and that `IndexState` uses
# too, for `__index:~state`): a field's index is `__index:{field}`, and no field name
# starts with `~`.
WORK_SUFFIX = "__index:~upgrading_1.4"
UNCONVERTED_SUFFIX = "__index:~unconverted_1.4"
# Where a 1.4 record whose key is one of the model's own keys now is moved, by its suffix.
ASIDE_PREFIX = "__index:~reserved_1.4:"

# KEYS: the places a model's 1.4 data can be (see LegacyKeys.checked). Returns the position
# of the first that holds a set, or 0.
_FIND_SETS = LuaScript(
    "find_1_4_index",
    """
for i = 1, #KEYS do
  if redis.call('TYPE', KEYS[i]).ok == 'set' then return i end
end
return 0
""",
)


@dataclass(frozen=True)
class LegacyKeys:
    """The keys of one model's 1.4 data, on a single server."""

    model_name: str
    namespace: str  # ours: `{prefix}{sep}{table}{sep}`
    legacy_namespace: str  # 1.4's: the same, with the prefix and separator lower-cased
    index: str  # our sorted set, where 1.4 kept its set when the namespaces are equal
    legacy_index: str  # where 1.4 kept its set
    work: str  # the 1.4 index while a migration runs: the records still to convert
    unconverted: str  # the records a migration could not convert, left as they were
    state: str  # the model's hash of index states (see `_index_state`)
    lock: str  # the lock of a build of the model's indexes (see `_index_state`)
    # The keys that the model's calls use besides its records and index (the expiry set,
    # the indexes of fields, their state, the two lists above): a 1.4 record at one of
    # them, which a primary key named so, would make every call fail.
    own: tuple[str, ...]

    @classmethod
    def of(cls, table: ModelTable[Any]) -> LegacyKeys:
        model, namespace = table.model, table.keys.namespace
        prefix, separator = model._redis_prefix or "", model._redis_separator.lower()
        legacy = f"{prefix.lower()}{separator}" * bool(prefix)
        legacy += f"{model._table_name or model.__name__.lower()}{separator}"
        work, unconverted = namespace + WORK_SUFFIX, namespace + UNCONVERTED_SUFFIX
        state, lock = table.index_state.key, table.index_state.lock_key
        own = (*table.shards[0].keys[1:], work, unconverted, state, lock)
        return cls(
            model.__name__,
            namespace,
            legacy,
            namespace + INDEX_SUFFIX,
            legacy + INDEX_SUFFIX,
            work,
            unconverted,
            state,
            lock,
            own,
        )

    @property
    def aside_prefix(self) -> str:
        """Where 1.4 records at one of the model's own keys (`own`) are moved, by suffix."""
        return self.namespace + ASIDE_PREFIX

    def aside(self, key: str) -> str:
        """Where the 1.4 record at `key`, one of the model's own keys, is moved."""
        return self.aside_prefix + key[len(self.namespace) :]

    @property
    def checked(self) -> tuple[str, ...]:
        """Where to look for 1.4 data, the unfinished migration first."""
        return tuple(dict.fromkeys((self.work, self.index, self.legacy_index)))


def upgrade_command(model: type[Model], url: str = "redis://...") -> str:
    """The command that migrates a model's 1.4 records."""
    return (
        f"python -m pydantic_aioredis upgrade-1.4 --url {url} "
        f"--models {model.__module__}:{model.__qualname__}"
    )


class LegacyIndexCheck:
    """Refuses calls on a store's models whose records are still as 1.4 wrote them."""

    def __init__(self, store: Store) -> None:
        self._store = store
        # Per client: the index keys of the models checked over it (and those of calls
        # that are not about a model, which need no check).
        self._checked: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
        self._by_index: dict[str, tuple[type[Model], LegacyKeys]] = {}

    def guard(self, client: AsyncClient, calls: Sequence[ScriptCall]) -> _Guard:
        """Wraps the sending of `calls`: `async with check.guard(client, calls): ...`."""
        return _Guard(self, client, calls)

    async def check(self, client: AsyncClient, calls: Sequence[ScriptCall]) -> None:
        """Raise UnmigratedDataError if a model these calls are about holds 1.4 data."""
        if self._store.cluster:
            return
        checked = self._checked.get(client)
        if checked is None:
            checked = self._checked[client] = set()
        todo = {call.keys[0] for call in _about_models(calls) if call.keys[0] not in checked}
        if todo:
            await self._refuse_legacy(client, todo)
            checked.update(todo)

    async def explain(
        self, client: AsyncClient, calls: Sequence[ScriptCall], error: RedisOperationError
    ) -> None:
        """After a WRONGTYPE error: raise UnmigratedDataError from it if 1.4 data caused it."""
        if self._store.cluster or "WRONGTYPE" not in str(error):
            return
        indexes = {call.keys[0] for call in _about_models(calls)}
        if not indexes:
            return
        self._checked.get(client, set()).difference_update(indexes)
        try:
            await self._refuse_legacy(client, indexes)
        except UnmigratedDataError as found:
            raise found from error

    async def _refuse_legacy(self, client: AsyncClient, indexes: set[str]) -> None:
        models = [self._model_of(index) for index in indexes]
        found = [model for model in models if model is not None]
        if not found:
            return
        calls = [ScriptCall(_FIND_SETS, keys.checked, ()) for _, keys in found]
        for (model, keys), position in zip(found, await run_calls(client, calls)):
            if position:
                key = keys.checked[int(position) - 1]
                raise UnmigratedDataError(
                    model.__name__, key, self._command(model), interrupted=key == keys.work
                )

    def _model_of(self, index: str) -> tuple[type[Model], LegacyKeys] | None:
        if index not in self._by_index:
            for model, table in self._store._tables.items():
                if table.shards[0].index_key == index:
                    self._by_index[index] = (model, LegacyKeys.of(table))
        return self._by_index.get(index)

    def _command(self, model: type[Model]) -> str:
        store = self._store
        if store._injected is not None:
            return upgrade_command(model)
        return upgrade_command(model, str(store.redis_config))


def _about_models(calls: Sequence[ScriptCall]) -> list[ScriptCall]:
    """The calls to check: all but the migration's own, which must reach the 1.4 data."""
    return [call for call in calls if call.script not in MIGRATION_SCRIPTS]


class _Guard:
    """`async with`: check before the calls are sent, explain a WRONGTYPE error after."""

    __slots__ = ("calls", "client", "owner")

    def __init__(
        self, owner: LegacyIndexCheck, client: AsyncClient, calls: Sequence[ScriptCall]
    ) -> None:
        self.owner, self.client, self.calls = owner, client, calls

    async def __aenter__(self) -> None:
        await self.owner.check(self.client, self.calls)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(exc, RedisOperationError):
            await self.owner.explain(self.client, self.calls, exc)
