"""Where a model's records live in Redis: the key layout.

A model owns a *namespace*, `{prefix}{sep}{table}{sep}` (no prefix part when none is set).
Each record is the hash `{namespace}{primary key}`; the model's index of primary keys is
the sorted set `{namespace}__index`, and the expiry times of records that have a TTL are
kept in the sorted set `{namespace}__expiry`.

Two rules keep every key unambiguous:

* the two index names are reserved: no primary key may equal them;
* within one store, no model's namespace may be a prefix of another's
  (`book:` and `book:x:` would let the primary key `x:1` of `book` land on a key of the
  other model). `Store.register_model` enforces it with `KeySpace.overlaps`.
"""

from __future__ import annotations

from ._exceptions import InvalidInputError

__all__ = ["EXPIRY_SUFFIX", "INDEX_SUFFIX", "KeySpace"]

INDEX_SUFFIX = "__index"
EXPIRY_SUFFIX = "__expiry"
_RESERVED = frozenset({INDEX_SUFFIX, EXPIRY_SUFFIX})

# A primary key becomes part of a Redis key and of a Lua argument; this bound keeps a
# runaway value (a whole document used as a key by mistake) from reaching the server.
MAX_PRIMARY_KEY_LENGTH = 4096


class KeySpace:
    """The Redis keys of one model.

    Example:
        >>> keys = KeySpace("Book", prefix=None, separator=":", table="book")
        >>> keys.record_key("The Hobbit"), keys.index_key
        ('book:The Hobbit', 'book:__index')
    """

    __slots__ = ("expiry_key", "index_key", "model_name", "namespace")

    def __init__(self, model_name: str, *, prefix: str | None, separator: str, table: str) -> None:
        self.model_name = model_name
        parts = [prefix, table] if prefix else [table]
        self.namespace = separator.join(parts) + separator
        self.index_key = self.namespace + INDEX_SUFFIX
        self.expiry_key = self.namespace + EXPIRY_SUFFIX

    def record_key(self, primary_key: str) -> str:
        """The key of the hash that holds the record with this primary key."""
        return self.namespace + primary_key

    def check_primary_key(self, primary_key: str) -> str:
        """Return the primary key unchanged, or raise if it cannot name a record.

        Raises:
            InvalidInputError: The key is too long, or a reserved index name.
        """
        if len(primary_key) > MAX_PRIMARY_KEY_LENGTH:
            raise InvalidInputError(
                f"{self.model_name}: the primary key is {len(primary_key)} characters long; "
                f"the limit is {MAX_PRIMARY_KEY_LENGTH}"
            )
        if primary_key in _RESERVED:
            raise InvalidInputError(
                f"{self.model_name}: {primary_key!r} is reserved for the model's index "
                "and cannot be a primary key"
            )
        return primary_key

    def overlaps(self, other: KeySpace) -> bool:
        """True when records of the two models could share a key."""
        return self.namespace.startswith(other.namespace) or other.namespace.startswith(
            self.namespace
        )

    def __repr__(self) -> str:
        return f"KeySpace({self.namespace!r})"
