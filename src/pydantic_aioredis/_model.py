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

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar, overload

from pydantic import BaseModel, ConfigDict
from pydantic._internal._model_construction import ModelMetaclass
from typing_extensions import Self

from ._exceptions import InvalidInputError, NotRegisteredError

if TYPE_CHECKING:
    from ._store import Store
    from ._table import ModelTable

__all__ = ["AutoModel", "Model"]

# Class options, read as plain class attributes.
_CLASS_OPTIONS = (
    "_primary_key_field",
    "_redis_prefix",
    "_redis_separator",
    "_table_name",
    "_auto_save",
    "_auto_sync",
)
# Keyword arguments of the constructor that set per-instance flags (1.4 read the names
# without the underscore; the documents showed them with it: both work).
_FLAG_KWARGS = {
    "_auto_save": "auto_save",
    "_auto_sync": "auto_sync",
    "auto_save": "auto_save",
    "auto_sync": "auto_sync",
}


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
        flag_kwargs = {k: v for k, v in _FLAG_KWARGS.items() if k not in cls.model_fields}  # type: ignore[attr-defined]
        type.__setattr__(cls, "_flag_kwargs", flag_kwargs)
        return cls


def _table_of(cls: type[Model]) -> ModelTable[Any]:
    # Looked up in the class's own namespace: a subclass of a registered model is a
    # different model, with keys of its own, and must be registered itself.
    table = cls.__dict__.get("_redis_table")
    if table is None:
        raise NotRegisteredError(cls.__name__)
    return table  # type: ignore[no-any-return]


class Model(BaseModel, metaclass=_ModelMetaclass):
    """A pydantic model whose records live in a Redis hash each.

    Class options (all optional but `_primary_key_field`):

    * `_primary_key_field`: the field whose value names the record.
    * `_redis_prefix`: a first part for every key of the model.
    * `_redis_separator`: what joins the key parts (default `:`).
    * `_table_name`: the model's part of the key (default: class name, lower-cased).
    * `_auto_save`: save each instance when it is constructed.
    * `_auto_sync`: save each change of a field when it is assigned.

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
    __slots__ = ("_pa_auto_save", "_pa_auto_sync", "_pa_batch")

    # Declared without ClassVar so that subclasses can write them as the 1.4 documents
    # do (`_primary_key_field: str = "title"`); the metaclass keeps them class-level.
    _primary_key_field: str | None = None
    _redis_prefix: str | None = None
    _redis_separator: str = ":"
    _table_name: str | None = None
    _auto_save: bool = False
    _auto_sync: bool = False
    _store: ClassVar[Store | None] = None
    _flag_kwargs: ClassVar[dict[str, str]]

    if TYPE_CHECKING:  # slots, set by __init__; absent on instances built by model_validate
        _pa_auto_save: ClassVar[bool]
        _pa_auto_sync: ClassVar[bool]
        _pa_batch: ClassVar[set[str] | None]

    def __init__(self, /, **data: Any) -> None:
        cls = type(self)
        auto_save, auto_sync = cls._auto_save, cls._auto_sync
        if not cls._flag_kwargs.keys().isdisjoint(data):
            for kwarg, flag in cls._flag_kwargs.items():
                if kwarg in data:
                    if flag == "auto_save":
                        auto_save = bool(data.pop(kwarg))
                    else:
                        auto_sync = bool(data.pop(kwarg))
        self.__pydantic_validator__.validate_python(data, self_instance=self)
        object.__setattr__(self, "_pa_auto_save", auto_save)
        object.__setattr__(self, "_pa_auto_sync", auto_sync)
        object.__setattr__(self, "_pa_batch", None)
        if auto_save:
            table = _table_of(cls)
            table.store.pending.add_whole(table, table.primary_key(self), self)
            table.store.pending.schedule()

    # Tell pydantic this __init__ is the plain one: `model_validate` (and so `select`)
    # then builds instances without calling it, so loading never triggers automatic saving.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("_auto_save", "_auto_sync"):
            self._init_state()
            object.__setattr__(self, "_pa" + name, bool(value))
            return
        super().__setattr__(name, value)
        try:
            batch = self._pa_batch
            sync = self._pa_auto_sync
        except AttributeError:  # built by model_validate or copied: no automatic saving
            return
        if batch is not None:
            if name in type(self).model_fields:
                batch.add(name)
        elif sync and name in type(self).model_fields:
            self._queue_changes((name,))

    def _queue_changes(self, names: Sequence[str] | set[str]) -> None:
        table = _table_of(type(self))
        pending = table.store.pending
        pk = table.primary_key(self)
        if table.pk_field in names:
            pending.add_whole(table, pk, self)  # a new primary key names a new record
        else:
            pending.add_fields(table, pk, self, names)
        pending.schedule()

    # -- automatic-saving flags ----------------------------------------------------------

    @property
    def auto_save(self) -> bool:
        """Whether this instance was saved when it was constructed."""
        return bool(getattr(self, "_pa_auto_save", False))

    @property
    def auto_sync(self) -> bool:
        """Whether each field assignment on this instance is saved."""
        return bool(getattr(self, "_pa_auto_sync", False))

    def set_auto_save(self, auto_save: bool = True) -> None:
        """Set this instance's auto-save flag (read by the `auto_save` property)."""
        self._init_state()
        object.__setattr__(self, "_pa_auto_save", bool(auto_save))

    def set_auto_sync(self, auto_sync: bool = True) -> None:
        """Turn saving of each field assignment on or off, for this instance only."""
        self._init_state()
        object.__setattr__(self, "_pa_auto_sync", bool(auto_sync))

    def _init_state(self) -> None:
        # Instances built by model_validate (as select does) or copied start without the
        # slots; give them the state of an instance with automatic saving off.
        try:
            self._pa_batch  # noqa: B018
        except AttributeError:
            object.__setattr__(self, "_pa_auto_save", False)
            object.__setattr__(self, "_pa_auto_sync", False)
            object.__setattr__(self, "_pa_batch", None)

    # -- the documented API --------------------------------------------------------------

    @classmethod
    def get_primary_key_field(cls) -> str | None:
        """The name of the primary key field (kept from 1.4)."""
        return cls._primary_key_field

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
            The number of records written.

        Raises:
            SerializationError: A value cannot be stored (nothing is written).
            RedisOperationError: Redis failed.
        """
        instances = [data] if isinstance(data, Model) else list(data)
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
        ids: Any = None,
        skip: int | None = None,
        limit: int | None = None,
    ) -> list[Self] | None: ...

    @overload
    @classmethod
    async def select(
        cls,
        columns: Sequence[str],
        ids: Any = None,
        skip: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]] | None: ...

    @classmethod
    async def select(
        cls,
        columns: Sequence[str] | None = None,
        ids: Any = None,
        skip: int | None = None,
        limit: int | None = None,
    ) -> list[Self] | list[dict[str, Any]] | None:
        """Read records: all of them, some by primary key, or a page.

        Args:
            columns: Return dicts holding only these fields (typed as the fields declare)
                instead of model instances.
            ids: A primary key or a list of them; records that do not exist are left out.
            skip: Records to skip, in primary-key order (ignored with `ids`).
            limit: At most this many records (ignored with `ids`).

        Returns:
            The records found, or None when there are none (as in 1.4). Instances loaded
            here never save themselves automatically, whatever the model's flags.

        Raises:
            InvalidInputError: An unknown column, a bad id, or a negative skip/limit.
            CorruptRecordError: A stored record does not validate as this model.
        """
        for name, value in (("skip", skip), ("limit", limit)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise InvalidInputError(f"{name} must be a non-negative integer, not {value!r}")
        table = _table_of(cls)
        found = await table.select(ids, table.columns(columns), skip, limit)
        return found or None

    @classmethod
    async def delete(cls, ids: Any = None) -> int:
        """Delete records by primary key (one or a list), or every record of the model.

        Returns:
            How many records existed and were deleted.
        """
        return await _table_of(cls).delete(ids)

    @classmethod
    async def count(cls) -> int:
        """The number of live records of this model."""
        return await _table_of(cls).count()

    async def save(self, life_span_seconds: float | None = None) -> None:
        """Write this instance whole, after anything queued before it.

        Args:
            life_span_seconds: TTL of the record; default: the store's life span.
        """
        table = _table_of(type(self))
        if life_span_seconds is None:
            table.store.pending.add_whole(table, table.primary_key(self), self)
            await table.store.flush()
        else:
            await table.insert([self], life_span_seconds)

    @asynccontextmanager
    async def update(self) -> AsyncIterator[Self]:
        """Make several changes and write them once, when the block ends.

        Nothing is written inside the block, even with `_auto_sync`; at its end the
        changed fields are written in one round trip. If the block raises, nothing is
        written and the exception propagates.

        Example:
            ```python
            async with book.update():
                book.author = "Herman Melville"
                book.published_on = date(1851, 10, 18)
            ```
        """
        _table_of(type(self))  # fail before the block runs, not after
        self._init_state()
        outer = self._pa_batch
        if outer is not None:  # nested: the outermost block writes
            yield self
            return
        changes: set[str] = set()
        object.__setattr__(self, "_pa_batch", changes)
        try:
            yield self
        finally:
            object.__setattr__(self, "_pa_batch", None)
        if changes:
            self._queue_changes(changes)
            await _table_of(type(self)).store.flush()

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
