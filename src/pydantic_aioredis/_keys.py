"""Where a model's records live in Redis: the key layout.

A model owns a *namespace*, `{prefix}{sep}{table}{sep}` (no prefix part when none is set).
Each record is the hash `{namespace}{primary key}`; the model's index of primary keys is
the sorted set `{namespace}__index`, and the expiry times of records that have a TTL are
kept in the sorted set `{namespace}__expiry`.

On a Redis Cluster (see docs/cluster.md) the same keys are split into *buckets*, so
that a model's records spread over every master while each record still shares a slot
with its index entry. Bucket `b` of a model has the namespace `{namespace}{tag}{sep}`,
where `{tag}` is a Redis hash tag, so the bucket's record hash, index and expiry set all
hash to the tag's slot:

    book:{17.86}:The Hobbit     book:{17.86}:__index     book:{17.86}:__expiry

A record's bucket is `crc32(primary key) % buckets`. The tag is the bucket number and
a salt picked once so that bucket b's slot falls in the b-th of `buckets` equal parts
of the 16,384 slots: buckets then spread as evenly as a cluster spreads its slots.

A model with secondary indexes (see `_indexes`) has two more keys per indexed field in
each shard: the sorted set `{namespace}__index:{field}` of `encoding + primary key` members
and the hash `{namespace}__values:{field}` of each record's current encoding. A call that
must not be applied twice when redis-py re-sends it leaves its reply for a few minutes
under `{namespace}__write:{token}`.

Two rules keep every key unambiguous:

* primary keys that name the model's own keys (`__index`, `__expiry`, and any starting
  `__index:`, `__values:` or `__write:`) are refused;
* within one store, no model's namespace may be a prefix of another's
  (`book:` and `book:x:` would let the primary key `x:1` of `book` land on a key of the
  other model). `Store.register_model` enforces it with `KeySpace.overlaps`.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection
from dataclasses import dataclass
from functools import cache
from itertools import count, repeat

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from ._exceptions import ConfigurationError, InvalidInputError

__all__ = ["EXPIRY_SUFFIX", "INDEX_SUFFIX", "KeySpace", "Shard"]

INDEX_SUFFIX = "__index"
EXPIRY_SUFFIX = "__expiry"
VALUES_PREFIX = "__values:"
WRITE_PREFIX = "__write:"
_RESERVED_NAMES = frozenset({INDEX_SUFFIX, EXPIRY_SUFFIX})
_RESERVED_PREFIXES = (INDEX_SUFFIX + ":", VALUES_PREFIX, WRITE_PREFIX)

# A primary key becomes part of a Redis key and of a Lua argument; this bound keeps a
# runaway value (a whole document used as a key by mistake) from reaching the server.
MAX_PRIMARY_KEY_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class Shard:
    """One part of a model's keys with an index of its own: the whole model on a single
    server, one bucket on a cluster."""

    namespace: str
    index_key: str
    expiry_key: str
    # The first KEYS of every script call: index, expiry, then for each indexed field its
    # sorted set and its hash of current encodings (the scripts find them by position).
    keys: tuple[str, ...]
    indexed: tuple[str, ...]

    @classmethod
    def under(cls, namespace: str, indexed: tuple[str, ...] = ()) -> Shard:
        index, expiry = namespace + INDEX_SUFFIX, namespace + EXPIRY_SUFFIX
        keys: list[str] = [index, expiry]
        for name in indexed:
            keys += (f"{index}:{name}", f"{namespace}{VALUES_PREFIX}{name}")
        return cls(namespace, index, expiry, tuple(keys), indexed)

    def field_index_key(self, name: str) -> str:
        """The sorted set that indexes the field `name` in this shard."""
        return f"{self.index_key}:{name}"

    def write_key(self, token: str) -> str:
        """Where a call made with this write token leaves its reply (see `_scripts`)."""
        return f"{self.namespace}{WRITE_PREFIX}{token}"

    @property
    def probe_key(self) -> str:
        """A key of the shard's slot that never exists (tokens are never empty). A cluster
        call that reads records it cannot name in advance declares it: Redis refuses such
        a call (ASK, then TRYAGAIN) while the slot is half moved to another master, when
        some of those records could already be gone from this one."""
        return self.write_key("")


class KeySpace:
    """The Redis keys of one model.

    Args:
        buckets: None for a single server; on a cluster, the number of buckets the
            model's records are spread over.

    Example:
        >>> keys = KeySpace("Book", prefix=None, separator=":", table="book")
        >>> keys.record_key("The Hobbit"), keys.index_key
        ('book:The Hobbit', 'book:__index')
        >>> KeySpace("Book", prefix=None, separator=":", table="book", buckets=64).record_key(
        ...     "The Hobbit"
        ... )
        'book:{43.29}:The Hobbit'
    """

    __slots__ = (
        "buckets",
        "expiry_key",
        "index_key",
        "indexed",
        "model_name",
        "namespace",
        "shards",
    )

    def __init__(
        self,
        model_name: str,
        *,
        prefix: str | None,
        separator: str,
        table: str,
        buckets: int | None = None,
        indexed: tuple[str, ...] = (),
    ) -> None:
        self.model_name = model_name
        self.indexed = indexed
        parts = [prefix, table] if prefix else [table]
        self.namespace = separator.join(parts) + separator
        self.index_key = self.namespace + INDEX_SUFFIX
        self.expiry_key = self.namespace + EXPIRY_SUFFIX
        self.buckets = buckets
        if buckets is None:
            self.shards: tuple[Shard, ...] = (Shard.under(self.namespace, indexed),)
            return
        if "{" in self.namespace or "}" in self.namespace:
            raise ConfigurationError(
                f"{model_name}: on a cluster the key namespace {self.namespace!r} may not "
                "contain braces, which would change the keys' hash tag"
            )
        self.shards = tuple(
            Shard.under(f"{self.namespace}{{{tag}}}{separator}", indexed)
            for tag in bucket_tags(buckets)
        )

    def shard_index(self, primary_key: str) -> int:
        """Which of `shards` holds the record with this primary key."""
        if self.buckets is None:
            return 0
        return zlib.crc32(primary_key.encode("utf-8", "surrogatepass")) % self.buckets

    def record_key(self, primary_key: str) -> str:
        """The key of the hash that holds the record with this primary key."""
        return self.shards[self.shard_index(primary_key)].namespace + primary_key

    def check_primary_key(self, primary_key: str) -> str:
        """Return the primary key unchanged, or raise if it cannot name a record.

        Raises:
            InvalidInputError: The key is too long, names one of the model's own keys, or
                is text that UTF-8 cannot carry (a lone surrogate).
        """
        if len(primary_key) > MAX_PRIMARY_KEY_LENGTH:
            raise InvalidInputError(
                f"{self.model_name}: the primary key is {len(primary_key)} characters long; "
                f"the limit is {MAX_PRIMARY_KEY_LENGTH}"
            )
        if primary_key in _RESERVED_NAMES or primary_key.startswith(_RESERVED_PREFIXES):
            raise InvalidInputError(
                f"{self.model_name}: {primary_key!r} is reserved for the model's own keys "
                f"({', '.join(sorted(_RESERVED_NAMES))}, or starting with "
                f"{', '.join(_RESERVED_PREFIXES)}) and cannot be a primary key"
            )
        if not primary_key.isascii():
            try:
                primary_key.encode()
            except UnicodeEncodeError as exc:
                raise InvalidInputError(
                    f"{self.model_name}: the primary key {primary_key!r} cannot be stored: "
                    f"{exc.reason} at position {exc.start}"
                ) from None
        return primary_key

    def check_primary_keys(self, primary_keys: Collection[str]) -> None:
        """Raise as `check_primary_key` would for the first of these that cannot name a
        record.

        Written for speed: the keys are checked all at once with C-level calls (a Python
        call per key costs as much as reading the record), and one by one only to name a
        bad one.
        """
        joined = "".join(primary_keys)
        if (
            max(map(len, primary_keys), default=0) <= MAX_PRIMARY_KEY_LENGTH
            and _RESERVED_NAMES.isdisjoint(primary_keys)
            and not any(map(str.startswith, primary_keys, repeat(_RESERVED_PREFIXES)))
            and (joined.isascii() or _is_utf8_text(joined))
        ):
            return
        for primary_key in primary_keys:
            self.check_primary_key(primary_key)

    def overlaps(self, other: KeySpace) -> bool:
        """True when records of the two models could share a key."""
        return self.namespace.startswith(other.namespace) or other.namespace.startswith(
            self.namespace
        )

    def __repr__(self) -> str:
        buckets = "" if self.buckets is None else f", buckets={self.buckets}"
        return f"KeySpace({self.namespace!r}{buckets})"


def bucket_tags(buckets: int) -> tuple[str, ...]:
    """The hash tag of each bucket: `b.salt`, with the first salt that puts the tag's slot
    in the b-th of `buckets` equal ranges of the cluster's slots.

    Example:
        >>> [key_slot(tag.encode()) for tag in bucket_tags(4)]  # one per quarter
        [1598, 4428, 10334, 16172]
    """
    if type(buckets) is not int or not 0 < buckets <= REDIS_CLUSTER_HASH_SLOTS:
        raise ConfigurationError(
            f"_cluster_buckets must be a whole number from 1 to {REDIS_CLUSTER_HASH_SLOTS}, "
            f"not {buckets!r}"
        )
    return _bucket_tags(buckets)


@cache
def _bucket_tags(buckets: int) -> tuple[str, ...]:
    tags = []
    for bucket in range(buckets):
        low = bucket * REDIS_CLUSTER_HASH_SLOTS // buckets
        high = (bucket + 1) * REDIS_CLUSTER_HASH_SLOTS // buckets
        for salt in count():
            tag = f"{bucket}.{salt}"
            if low <= key_slot(tag.encode()) < high:
                tags.append(tag)
                break
    return tuple(tags)


def _is_utf8_text(text: str) -> bool:
    """False for text that UTF-8 cannot carry (a lone surrogate)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
