"""Whole-model reads and deletes on a Redis Cluster, where a model's keys are in buckets.

On a single server, a select walks the model's one index inside the read script. On a
cluster that would make a script touch record keys it did not declare, and Redis can only
keep a call away from a half-migrated slot if it sees every key the call touches. So a
cluster read takes two steps, each a round of calls sent to the nodes in parallel:

1. find the primary keys wanted from the buckets' indexes (`INDEX_PAGE`);
2. read those records by primary key (`READ_IDS`, every record key declared), a window of
   them at a time, the next window in flight while Python validates the last one.

Records come in primary-key order, as on a single server. A page (`skip`/`limit`) does
not read every bucket's keys up to the page: since records spread evenly over buckets,
each bucket's first `2 * (skip + limit) / buckets` keys nearly always hold the page, and
a second, bounded round fetches what a bucket holds below the page's end if not.
"""

from __future__ import annotations

import asyncio
import heapq
from typing import TYPE_CHECKING, Any

from ._scripts import DELETE_CHUNK, INDEX_PAGE, READ_CHUNK

if TYPE_CHECKING:
    from ._exceptions import CorruptRecordError
    from ._keys import Shard
    from ._table import ModelTable

__all__ = ["delete_sharded", "drop", "read_sharded"]

# Primary keys per index page. Measured here, a page of 5,000 keys of 13 characters takes
# the server about 1 ms, about what a write of 250 records takes.
_PK_PAGE = 5000
# Records per round trip when reading many (READ_IDS calls of up to 500 records of one
# bucket each, sent to the nodes in parallel). Measured here, select-all of 100,000 on the
# 3-master cluster, medians of five runs: 43,600 records/s with windows of 16,000 records,
# 52,700 with 32,000 (fewer, fuller calls).
_READ_WINDOW = 64 * READ_CHUNK


async def read_sharded(
    table: ModelTable[Any],
    fields: list[str],
    skip: int,
    limit: int | None,
    columns: list[str] | None,
    invalid: list[CorruptRecordError] | None,
) -> list[Any]:
    """Records skip..skip+limit (or all from skip), in primary-key order.

    A record that expires (or is deleted) between finding its key and reading it leaves a
    page short, or shifted when it was among the records skipped: the page is then found
    and read again (the read removed its stale entries), until no record went missing.
    """
    if limit == 0:
        return []
    wanted = None if limit is None else skip + limit
    while True:
        if wanted is not None and _first_page_size(wanted, len(table.shards)) <= _PK_PAGE:
            pks = await _smallest_primary_keys(table, wanted)
        else:
            pks = sorted(await _all_primary_keys(table))
        reported = len(invalid) if invalid is not None else 0
        found = await _read_in_order(table, pks[skip:wanted], fields, columns, invalid)
        if not skip and limit is None:
            return found  # every record: one that went missing is simply gone
        if invalid is not None:
            reported = len(invalid) - reported
        if len(found) + reported >= len(pks[skip:wanted]) or not pks[skip:wanted]:
            return found
        if invalid is not None:
            del invalid[len(invalid) - reported :]  # reported again by the next read


def _first_page_size(wanted: int, buckets: int) -> int:
    # Twice a bucket's expected share, and some, so that one round is nearly always enough.
    return min(wanted, 2 * wanted // buckets + 16)


async def _smallest_primary_keys(table: ModelTable[Any], wanted: int) -> list[str]:
    """The `wanted` smallest primary keys of the model, in order.

    Round one takes each bucket's first keys. Their `wanted`-th smallest, the threshold,
    is at least the true one; a bucket whose page was full and ended below the threshold
    is then asked for the rest of its keys up to it. After that, every key at or below
    the threshold is known, so the smallest `wanted` known keys are the answer.
    """
    size = _first_page_size(wanted, len(table.shards))
    pages = await _index_pages(table, [(shard, "rank", "0", size, "+") for shard in table.shards])
    known = [pk for page in pages for pk in page]
    threshold = heapq.nsmallest(wanted, known)[-1] if len(known) >= wanted else None
    more = [
        (shard, "lex", "(" + page[-1], wanted, "+" if threshold is None else "[" + threshold)
        for shard, page in zip(table.shards, pages)
        if len(page) == size and (threshold is None or page[-1] < threshold)
    ]
    if more:
        known += [pk for page in await _index_pages(table, more) for pk in page]
    return heapq.nsmallest(wanted, known)


async def _all_primary_keys(table: ModelTable[Any]) -> list[str]:
    """Every primary key of the model, a page per bucket per round trip."""
    found: list[str] = []
    todo = [(shard, "rank", "0", _PK_PAGE, "+") for shard in table.shards]
    while todo:
        pages = await _index_pages(table, todo)
        for page in pages:
            found += page
        # The next page of a bucket starts after the last key seen, which concurrent
        # inserts cannot shift.
        todo = [
            (shard, "lex", "(" + page[-1], _PK_PAGE, "+")
            for (shard, *_), page in zip(todo, pages)
            if len(page) == _PK_PAGE
        ]
    return found


async def _index_pages(
    table: ModelTable[Any], requests: list[tuple[Shard, str, str, int, str]]
) -> list[list[str]]:
    calls = [
        table.script_call(INDEX_PAGE, shard, (mode, start, count, end))
        for shard, mode, start, count, end in requests
    ]
    return await table.execute_exact(calls)


async def _read_in_order(
    table: ModelTable[Any],
    pks: list[str],
    fields: list[str],
    columns: list[str] | None,
    invalid: list[CorruptRecordError] | None,
) -> list[Any]:
    width = len(fields) + 1
    windows = [pks[i : i + _READ_WINDOW] for i in range(0, len(pks), _READ_WINDOW)]
    found: list[Any] = []
    request: asyncio.Future[list[Any]] | None = None
    try:
        for number, window in enumerate(windows):
            replies = await (request or table.store.execute(table.read_calls(window, fields)))
            request = None
            if number + 1 < len(windows):
                following = table.read_calls(windows[number + 1], fields)
                request = asyncio.ensure_future(table.store.execute(following))
                await asyncio.sleep(0)  # let the next window's calls reach the sockets
            rows = table.rows_in_order(window, replies, width, invalid)
            found += table.decode(columns, rows, invalid)
    finally:
        await drop(request)
    return found


async def drop(request: asyncio.Future[Any] | None) -> None:
    """Cancel a read still in flight (decoding failed) and wait until it is gone, so that
    no reply arrives for a select that already raised."""
    if request is not None:
        request.cancel()
        await asyncio.gather(request, return_exceptions=True)


async def delete_sharded(table: ModelTable[Any]) -> int:
    """Delete every record of a model whose keys are in buckets; how many there were."""
    deleted = 0
    first_pages = [(shard, "rank", "0", DELETE_CHUNK, "+") for shard in table.shards]
    while True:
        pages = await _index_pages(table, first_pages)
        calls = table.delete_calls([pk for page in pages for pk in page])
        if not calls:
            return deleted
        deleted += sum(await table.store.execute(calls))
