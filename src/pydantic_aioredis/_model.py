"""`Model` and `AutoModel`: pydantic models that keep their records in a `Store`.

Class options are written as the 1.4 documents show (`_primary_key_field: str = 'title'`).
Pydantic v2 would turn such `_names` into private attributes, unreadable at class level;
the metaclass takes them out of the class body before pydantic sees it and sets them back
as plain class attributes, so `Book._primary_key_field == 'title'`.

Per-instance state (the automatic-saving flags, and the changes collected inside
`update()`) lives in `__slots__`, outside pydantic's fields and private attributes, so two
instances with equal field values compare equal whatever their flags.
"""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ClassVar, overload

from pydantic import BaseModel, ConfigDict
from pydantic._internal._model_construction import ModelMetaclass
from typing_extensions import Self

from ._exceptions import (
    ConfigurationError,
    ConflictError,
    CorruptRecordError,
    InvalidInputError,
    NotRegisteredError,
    UsageError,
)

if TYPE_CHECKING:
    from ._query import QueryPlan
    from ._store import Store
    from ._table import ModelTable
    from ._types import Ids

__all__ = ["AutoModel", "Model"]

# Class options, read as plain class attributes.
_CLASS_OPTIONS = (
    "_primary_key_field",
    "_redis_prefix",
    "_redis_separator",
    "_table_name",
    "_auto_save",
    "_auto_sync",
    "_version_field",
    "_cluster_buckets",
)
# Keyword arguments of the constructor that set per-instance flags (1.4 read the names
# without the underscore; the documents showed them with it: both work).
_FLAG_KWARG_NAMES = {
    "_auto_save": "auto_save",
    "_auto_sync": "auto_sync",
    "auto_save": "auto_save",
    "auto_sync": "auto_sync",
}
_FLAG_ATTRIBUTES = frozenset(("_auto_save", "_auto_sync"))

# Bits of an instance's `_pa_state` slot.
_SYNC = 1  # save each field assignment
_SAVE = 2  # saved on construction (kept for the `auto_save` property)
_BATCH = 4  # inside `update()` (its `_Batch` in `_pa_batch`): assignments are not queued
# In `_pa_default_state` only: the class has an `__init__` of its own, which pydantic calls
# when records are loaded too (see `loading_records`).
_OWN_INIT = 8
_base_setattr = BaseModel.__setattr__

# True while records read from Redis are being built: their `__init__` must not save them.
_loading: ContextVar[bool] = ContextVar("pydantic_aioredis_loading", default=False)


@contextmanager
def loading_records() -> Iterator[None]:
    """Build instances from stored records inside this block: a model's own `__init__`
    (which pydantic runs for loaded records too) then saves nothing, whatever the flags."""
    token = _loading.set(True)
    try:
        yield
    finally:
        _loading.reset(token)


class _ModelMetaclass(ModelMetaclass):
    def __new__(
        mcs,
        cls_name: str,
        bases: tuple[type[Any], ...],
        namespace: dict[str, Any],
        **kwargs: Any,
    ) -> type:
        annotations = namespace.get("__annotations__", {})
        options = {name: namespace.pop(name) for name in _CLASS_OPTIONS if name in namespace}
        for name in _CLASS_OPTIONS:
            annotations.pop(name, None)
        cls = super().__new__(mcs, cls_name, bases, namespace, **kwargs)
        for name, value in options.items():
            type.__setattr__(cls, name, value)
        flag_kwargs = {k: v for k, v in _FLAG_KWARG_NAMES.items() if k not in cls.model_fields}  # type: ignore[attr-defined]
        type.__setattr__(cls, "_flag_kwargs", flag_kwargs)
        _refresh_default_state(cls)
        return cls

    def __setattr__(cls, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in ("_auto_save", "_auto_sync"):  # `Book._auto_sync = True` at run time
            _refresh_default_state(cls)


def _refresh_default_state(cls: type) -> None:
    # The state bits a new instance starts with, cached so that __init__ reads one value.
    auto_save, auto_sync = getattr(cls, "_auto_save", False), getattr(cls, "_auto_sync", False)
    state = (_SAVE if auto_save else 0) | (_SYNC if auto_sync else 0)
    if not getattr(cls.__init__, "__pydantic_base_init__", False):  # type: ignore[misc]
        state |= _OWN_INIT
    type.__setattr__(cls, "_pa_default_state", state)
    subclass: type
    for subclass in cls.__subclasses__():
        _refresh_default_state(subclass)


# The table of each registered model. A subclass of a registered model is a different
# model, with keys of its own, and must be registered itself: hence a dict keyed by the
# exact class rather than an inherited class attribute.
_TABLES: dict[type[Any], ModelTable[Any]] = {}


def bind_table(model: type[Model], table: ModelTable[Any]) -> None:
    """Record that `model` keeps its records in `table` (called by `Store.register_model`)."""
    _TABLES[model] = table
    type.__setattr__(model, "_store", table.store)


def unbind_table(model: type[Model]) -> None:
    """Forget the model's table (called by `Store.unregister_model`)."""
    _TABLES.pop(model, None)
    type.__setattr__(model, "_store", None)


def store_of(model: type[Model]) -> Store | None:
    """The store the model is registered with, if any."""
    table = _TABLES.get(model)
    return None if table is None else table.store


def _table_of(cls: type[Model]) -> ModelTable[Any]:
    table = _TABLES.get(cls)
    if table is None:
        raise NotRegisteredError(cls.__name__)
    return table


class Model(BaseModel, metaclass=_ModelMetaclass):
    """A pydantic model whose records live in a Redis hash each.

    Class options (all optional but `_primary_key_field`):

    * `_primary_key_field`: the field whose value names the record.
    * `_redis_prefix`: a first part for every key of the model.
    * `_redis_separator`: what joins the key parts (default `:`).
    * `_table_name`: the model's part of the key (default: class name, lower-cased).
    * `_auto_save`: save each instance when it is constructed.
    * `_auto_sync`: save each change of a field when it is assigned.
    * `_version_field`: an int field that makes `save()` and `update()` check, atomically,
      that the record was not changed since it was read (optimistic concurrency).
    * `_cluster_buckets`: on a Redis Cluster, how many buckets (hash slots) the model's
      records are spread over (default 64; fixed once records exist, see docs/cluster.md).

    Example:
        ```python
        class Book(Model):
            _primary_key_field: str = "title"
            title: str
            author: str

        store.register_model(Book)
        await Book.insert(Book(title="The Hobbit", author="J.R.R. Tolkien"))
        books = await Book.select(ids=["The Hobbit"])
        ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    # `_pa_state` holds the bits below (absent on instances built by model_validate);
    # `_pa_batch` the open `update()` block, while one runs.
    __slots__ = ("_pa_batch", "_pa_state")

    # Declared without ClassVar so that subclasses can write them as the 1.4 documents
    # do (`_primary_key_field: str = "title"`); the metaclass keeps them class-level.
    # The options that are None until a subclass sets them are `Any` here: a subclass that
    # declares `_primary_key_field: str` would otherwise narrow `str | None`, which pyright
    # refuses for a mutable attribute (its type must stay the same), in every user's model.
    _primary_key_field: Any = None
    _redis_prefix: Any = None
    _redis_separator: str = ":"
    _table_name: Any = None
    _auto_save: bool = False
    _auto_sync: bool = False
    _version_field: Any = None
    _cluster_buckets: int = 64
    _store: ClassVar[Store | None] = None
    _flag_kwargs: ClassVar[dict[str, str]]
    _pa_default_state: ClassVar[int]

    if TYPE_CHECKING:
        _pa_state: ClassVar[int]
        _pa_batch: ClassVar[_Batch]

    def __init__(self, /, **data: Any) -> None:
        # The hot path reads options through `self` (an instance lookup is several times
        # cheaper than a lookup on a pydantic class) and sets one slot.
        if (
            "_auto_save" in data
            or "_auto_sync" in data
            or "auto_save" in data
            or "auto_sync" in data
        ):
            state = self._pop_flags(data)
        else:
            state = self._pa_default_state
            if state & _OWN_INIT:
                state = 0 if _loading.get() else state & ~_OWN_INIT
        self.__pydantic_validator__.validate_python(data, self_instance=self)
        _set_state(self, state)
        if state & _SAVE:
            table = self._automatic_table()
            table.store.pending.add_whole(table, table.primary_key(self), self)
            table.store.pending.schedule()

    # Tell pydantic this __init__ is the plain one: `model_validate` (and so `select`)
    # then builds instances without calling it, so loading never triggers automatic saving.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def _pop_flags(self, data: dict[str, Any]) -> int:
        flags = {"auto_save": self._auto_save, "auto_sync": self._auto_sync}
        for kwarg, flag in self._flag_kwargs.items():
            if kwarg in data:
                flags[flag] = bool(data.pop(kwarg))
        return (flags["auto_save"] and _SAVE) | (flags["auto_sync"] and _SYNC)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FLAG_ATTRIBUTES:  # `book._auto_sync = False`, per instance
            self._set_flag(_SAVE if name == "_auto_save" else _SYNC, value)
            return
        try:
            state = self._pa_state
        except AttributeError:  # built by model_validate or copied: no automatic saving
            _base_setattr(self, name, value)
            return
        # Inside update() nothing is queued: the block writes what differs when it ends.
        if not (state & _SYNC and not state & _BATCH and name in self.__pydantic_fields__):
            _base_setattr(self, name, value)
        elif name == self._primary_key_field:
            old = self.__dict__.get(name)
            _base_setattr(self, name, value)
            self._queue_key_change(old)
        else:
            _base_setattr(self, name, value)
            self._queue_changes((name,))

    def _automatic_table(self) -> ModelTable[Any]:
        """The table, for an automatic write; versioned models have none."""
        if self._version_field:
            raise ConfigurationError(
                f"{type(self).__name__} has a _version_field: its writes go through save() "
                "or update(), which check the version; automatic saving cannot"
            )
        return _table_of(type(self))

    def mark_changed(self, *fields: str) -> None:
        """Treat these fields as assigned: for changes made in place, which no assignment
        announces (`book.tags.append("new")`), so that automatic saving writes them.

        Example:
            ```py
            book.tags.append("classic")
            book.mark_changed("tags")  # with _auto_sync: queued like an assignment
            ```

        Raises:
            InvalidInputError: A name is not a field of the model.
        """
        unknown = [name for name in fields if name not in type(self).model_fields]
        if unknown:
            raise InvalidInputError(
                f"{type(self).__name__} has no field(s) {', '.join(map(repr, unknown))}"
            )
        state = self._get_state()
        if state & _SYNC and not state & _BATCH and fields:  # update() finds them itself
            self._queue_changes(fields)

    def _queue_changes(self, names: Collection[str]) -> None:
        table = self._automatic_table()
        table.store.pending.add_fields(table, table.primary_key(self), self, names)
        table.store.pending.schedule()

    def _queue_key_change(self, old_value: Any) -> None:
        """The primary key was assigned: the same key is a field update like any other (a
        record that is gone stays gone); a new key names a new record, written whole, and
        what is queued for the old one keeps the values it had until now."""
        table = self._automatic_table()
        pending = table.store.pending
        pk = table.primary_key(self)
        old_pk = table.key_of(old_value)
        if old_pk == pk:
            pending.add_fields(table, pk, self, (table.pk_field,))
        else:
            if old_pk is not None:
                pending.freeze(table, old_pk, self)
            pending.add_whole(table, pk, self)
        pending.schedule()

    # -- automatic-saving flags ----------------------------------------------------------

    @property
    def auto_save(self) -> bool:
        """Whether this instance was saved when it was constructed."""
        return bool(self._get_state() & _SAVE)

    @property
    def auto_sync(self) -> bool:
        """Whether each field assignment on this instance is saved."""
        return bool(self._get_state() & _SYNC)

    def set_auto_save(self, auto_save: bool = True) -> None:
        """Set this instance's auto-save flag (read by the `auto_save` property)."""
        self._set_flag(_SAVE, auto_save)

    def set_auto_sync(self, auto_sync: bool = True) -> None:
        """Turn saving of each field assignment on or off, for this instance only."""
        self._set_flag(_SYNC, auto_sync)

    def _get_state(self) -> int:
        try:
            return self._pa_state
        except AttributeError:  # built by model_validate (as select does) or copied
            return 0

    def _set_flag(self, bit: int, on: Any) -> None:
        state = self._get_state()
        _set_state(self, state | bit if on else state & ~bit)

    # -- the documented API --------------------------------------------------------------

    @classmethod
    def get_primary_key_field(cls) -> str | None:
        """The name of the primary key field (kept from 1.4)."""
        name: str | None = cls._primary_key_field
        return name

    @classmethod
    async def insert(
        cls, data: Self | Sequence[Self], life_span_seconds: float | None = None
    ) -> int:
        """Write one instance or many, in one round trip per thousand records.

        Each record is written whole, together with its index entry, atomically.

        Args:
            data: An instance or a list of instances of this model.
            life_span_seconds: TTL of these records; default: the store's life span.

        Returns:
            The number of records written (a primary key given twice is written once, from
            its last instance).

        Raises:
            SerializationError: A value cannot be stored (nothing is written).
            RedisOperationError: Redis failed.
        """
        if isinstance(data, Model):
            instances = [data]
        elif isinstance(data, Iterable) and not isinstance(data, (str, bytes, Mapping)):
            instances = list(data)
        else:
            raise InvalidInputError(
                f"{cls.__name__}.insert expects an instance or a list of them, "
                f"got {type(data).__name__}"
            )
        for instance in instances:
            if not isinstance(instance, cls):
                raise InvalidInputError(
                    f"{cls.__name__}.insert expects {cls.__name__} instances, "
                    f"got {type(instance).__name__}"
                )
        return await _table_of(cls).insert(instances, life_span_seconds)

    @overload
    @classmethod
    async def select(
        cls,
        columns: None = None,
        ids: Ids | None = None,
        skip: int | None = None,
        limit: int | None = None,
        invalid: list[CorruptRecordError] | None = None,
        *,
        where: Mapping[str, Any] | None = None,
        order_by: str | None = None,
    ) -> list[Self] | None: ...

    @overload
    @classmethod
    async def select(
        cls,
        columns: Sequence[str],
        ids: Ids | None = None,
        skip: int | None = None,
        limit: int | None = None,
        invalid: list[CorruptRecordError] | None = None,
        *,
        where: Mapping[str, Any] | None = None,
        order_by: str | None = None,
    ) -> list[dict[str, Any]] | None: ...

    @classmethod
    async def select(
        cls,
        columns: Sequence[str] | None = None,
        ids: Ids | None = None,
        skip: int | None = None,
        limit: int | None = None,
        invalid: list[CorruptRecordError] | None = None,
        *,
        where: Mapping[str, Any] | None = None,
        order_by: str | None = None,
    ) -> list[Self] | list[dict[str, Any]] | None:
        """Read records: all of them, some by primary key, those that meet conditions on
        indexed fields, or a page of any of these.

        Args:
            columns: Return dicts holding only these fields (typed as the fields declare)
                instead of model instances.
            ids: A primary key or an iterable of them (a `str`, `int`, `UUID`, `date`...,
                as the primary key field declares), in any form the primary key's type
                accepts (validated, then written as stored); records that do not exist are
                left out, the others come in the order asked.
            skip: Records to skip: in primary-key order, or with `ids` in the order asked.
            limit: At most this many records (`limit=0` gives None, as nothing matches).
            invalid: A list to collect the records that do not validate in: they are
                skipped, and a `CorruptRecordError` for each is appended to the list.
                Without it, the first such record raises.
            where: Conditions on indexed fields, all of which a record must meet:
                `{"author": "x", "rating__gte": 4}` (operators `__in`, `__gt`, `__gte`,
                `__lt`, `__lte`, `__startswith`; see docs/queries.md). Not with `ids`.
            order_by: An indexed field to order by (`"-field"`: descending; ties in
                primary-key order); default: primary-key order.

        Returns:
            The records found, or None when there are none (as in 1.4). Instances loaded
            here never save themselves automatically, whatever the model's flags.

        Raises:
            InvalidInputError: An unknown column, a bad id, a negative skip/limit, a
                condition on a field that is not indexed, an unknown operator, a value of
                the wrong type, or `ids` with `where`/`order_by`.
            IndexNotReadyError: An index the query needs is not built yet.
            CorruptRecordError: A stored record does not validate as this model.
        """
        _check_page(skip, limit)
        table = _table_of(cls)
        fields = table.columns(columns)
        plan = _plan(table, ids, where, order_by)
        if limit == 0:  # a page of nothing: nothing matches, on every backend
            return None
        if plan is None:
            found = await table.select(ids, fields, skip, limit, invalid)
        else:
            found = await table.query(plan, fields, skip or 0, limit, invalid)
        return found or None

    @classmethod
    async def delete(cls, ids: Ids | None = None, *, where: Mapping[str, Any] | None = None) -> int:
        """Delete records by primary key (one or a list), those that meet conditions on
        indexed fields, or every record of the model.

        Args:
            ids: A primary key or an iterable of them, as for `select`; None (without
                `where`) deletes every record of the model.
            where: Conditions on indexed fields, as for `select`: the records that meet
                them all are deleted (each checked again when it is deleted, so a record
                changed meanwhile so as not to meet them stays). Not with `ids`.

        Returns:
            How many records existed and were deleted.

        Raises:
            InvalidInputError: An id is not a valid value of the primary key field, or a
                condition is not valid (as for `select`).
            IndexNotReadyError: An index the conditions need is not built yet.
        """
        table = _table_of(cls)
        plan = _plan(table, ids, where, None)
        if plan is None or not plan.conditions:
            return await table.delete(ids)
        return await table.queries.delete(plan)

    @classmethod
    async def count(cls, *, where: Mapping[str, Any] | None = None) -> int:
        """The number of live records of this model (that meet `where`, if given).

        Args:
            where: Conditions on indexed fields, as for `select`.

        Raises:
            InvalidInputError: A condition is not valid (as for `select`).
            IndexNotReadyError: An index the conditions need is not built yet.
        """
        table = _table_of(cls)
        plan = _plan(table, None, where, None)
        if plan is None or not plan.conditions:
            return await table.count()
        return await table.queries.count(plan)

    @classmethod
    async def build_indexes(cls) -> dict[str, int]:
        """Build the indexes that do not cover every record yet, in bounded calls.

        Needed once after marking a field `Indexed` while its model already has records
        (or changing an indexed field's type); until then, queries on it raise
        `IndexNotReadyError`. Safe to run while the application writes, and to run again
        after an interruption. Indexes no longer declared have their keys dropped.
        `python -m pydantic_aioredis build-indexes` does the same from a shell.

        Returns:
            For each index built, how many records it was built for.
        """
        return await _table_of(cls).index_state.build()

    async def save(self, life_span_seconds: float | None = None) -> None:
        """Write this instance whole, after anything queued before it.

        Args:
            life_span_seconds: TTL of the record; default: the store's life span.
        """
        # The store sends what is queued first, so this write lands after earlier ones.
        table = _table_of(type(self))
        if self._version_field:
            await table.save_versioned(self, self._version_field, life_span_seconds)
        else:
            await table.insert([self], life_span_seconds)

    @asynccontextmanager
    async def update(self) -> AsyncIterator[Self]:
        """Make several changes and write them once, when the block ends.

        Nothing is written inside the block, even with `_auto_sync`; at its end every field
        whose stored form differs from the block's start is written, in one round trip:
        assigned fields and fields changed in place (`book.tags.append(...)`) alike. If
        the block raises, nothing is written and the exception propagates. A block nested
        in another (in the same task) writes nothing of its own: the outer one writes.

        Example:
            ```python
            async with book.update():
                book.author = "Herman Melville"
                book.published_on = date(1851, 10, 18)
            ```

        Raises:
            UsageError: Another task has an update() block open on this instance.
            ConflictError: The record is gone (expired, deleted) and so nothing was
                written (`save()` writes it whole), or, with a `_version_field`, it was
                changed since this instance was read.
            SerializationError: A value cannot be stored; nothing was written.
        """
        table = _table_of(type(self))  # fail before the block runs, not after
        if table.store.pending:  # queued writes read the instance when sent: not mid-block
            await table.store.flush()
        state = self._get_state()
        if state & _BATCH:
            if self._pa_batch.task is not asyncio.current_task():
                raise UsageError(
                    f"{type(self).__name__} {table.primary_key(self)!r}: another task has an "
                    "update() block open on this instance; its changes would mix with this "
                    "block's. Wait for it, or work on an instance of your own"
                )
            yield self  # nested in our own block: the outermost block writes
            return
        batch = _Batch(table.codec.snapshot(self))
        object.__setattr__(self, "_pa_batch", batch)
        _set_state(self, state | _BATCH)
        ended = False
        try:
            yield self
            ended = True
        finally:
            # A block that raises leaves the settings as they were before it (a
            # set_auto_sync() inside it is undone too); one that ends keeps its own.
            _set_state(self, self._get_state() & ~_BATCH if ended else state)
            object.__delattr__(self, "_pa_batch")
        changed = table.codec.changed_fields(self, batch.before)
        if changed and self._version_field:
            await self.save()  # checked against the version, written whole
        elif table.pk_field in changed:
            await table.insert([self], None)  # a new primary key names a new record
        elif changed and not await table.update_fields(self, changed):
            key = table.keys.record_key(table.primary_key(self))
            raise ConflictError(type(self).__name__, key, None)

    # -- 1.4 serialization hooks ---------------------------------------------------------

    @classmethod
    def json_default(cls, obj: Any) -> Any:
        """Override to store values of types pydantic cannot serialize.

        Return a JSON-compatible form of `obj` (a dict, say); pair it with
        `json_object_hook`, which turns that form back into the object.
        """
        raise TypeError(f"{type(obj).__name__} is not serializable; override json_default")

    @classmethod
    def json_object_hook(cls, obj: dict[str, Any]) -> Any:
        """Override to rebuild objects that `json_default` stored (see `json.loads`)."""
        return obj


class _Batch:
    """An open `update()` block: the task that opened it, and the stored form of each field
    when it opened (None if that could not be had)."""

    __slots__ = ("before", "task")

    def __init__(self, before: list[Any] | None) -> None:
        self.task = asyncio.current_task()
        self.before = before


def _check_page(skip: Any, limit: Any) -> None:
    for name, value in (("skip", skip), ("limit", limit)):
        if value is not None and (type(value) is not int or value < 0):
            raise InvalidInputError(f"{name} must be a non-negative integer, not {value!r}")


def _plan(table: ModelTable[Any], ids: Any, where: Any, order_by: Any) -> QueryPlan | None:
    """The query plan of `where`/`order_by`, None when neither is given."""
    if where is None and order_by is None:
        return None
    if ids is not None:
        raise InvalidInputError(
            f"{table.model.__name__}: ids= and where=/order_by= cannot be combined; "
            "select by ids, or by conditions on indexed fields"
        )
    return table.plan(where, order_by)


# Writes the state slot directly, past `__setattr__`.
_set_state: Callable[[Model, int], None] = Model.__dict__["_pa_state"].__set__


class AutoModel(Model):
    """A `Model` that saves itself when constructed and saves every field assignment.

    Example:
        ```python
        class Book(AutoModel):
            _primary_key_field: str = "title"
            title: str

        book = Book(title="The Hobbit")   # queued; in Redis before the next library call
        ```
    """

    _auto_save: bool = True
    _auto_sync: bool = True
