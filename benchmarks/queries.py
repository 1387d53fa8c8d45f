"""Queries on secondary indexes, beside `select()` + a Python filter and beside hand-written
redis-py indexes (a SET per value; a ZSET scored by the value), at N = 100,000 records with
two indexed fields. Run by ./scripts/benchmark (a section at the end), or on its own:

    python -m benchmarks.queries [--n 100000] [--repeat 3] [--url redis://...]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any, TypeVar

import redis
import redis.asyncio
import redis.asyncio.cluster
from pydantic import BaseModel

from pydantic_aioredis import Indexed, Model, RedisConfig, Store

T = TypeVar("T")

PER_AUTHOR = 100  # records per author: what an equality query finds
RANGE = 1_000  # records a range query returns
# Queries per timed run (each of another author, or another range): one query takes a few
# milliseconds, too short to time alone on a shared machine.
QUERIES = 20


class IndexedBook(Model):
    _primary_key_field: str = "title"
    _table_name: str = "ibook"
    title: str
    author: Annotated[str, Indexed()]
    published_on: date
    in_stock: bool = True
    rating: Annotated[float, Indexed()] = 0.0
    tags: list[str] = []


class PlainBook(Model):
    _primary_key_field: str = "title"
    _table_name: str = "pbook"
    title: str
    author: str
    published_on: date
    in_stock: bool = True
    rating: float = 0.0
    tags: list[str] = []


class RefBook(BaseModel):
    title: str
    author: str
    published_on: date
    in_stock: bool = True
    rating: float = 0.0
    tags: list[str] = []


def fields(i: int, n: int) -> dict[str, Any]:
    return {
        "title": f"title-{i:07d}",
        "author": f"author {i % _authors(n):04d}",
        "published_on": date(1800 + i % 200, 1 + i % 12, 1 + i % 28),
        "in_stock": i % 3 != 0,
        "rating": (i * 7919 % n) / n * 5,  # spread evenly over [0, 5)
        "tags": ["novel", f"t{i % 10}"],
    }


class Reference:
    """Hand-written indexes: a SET of titles per author, a ZSET of titles by rating."""

    def __init__(self, client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster) -> None:
        self.r = client

    async def insert(self, rows: list[dict[str, Any]]) -> None:
        for start in range(0, len(rows), 1_000):
            pipe = self.r.pipeline(transaction=False)
            for row in rows[start : start + 1_000]:
                pipe.hset(f"ref:{row['title']}", mapping=_mapping(row))
                pipe.sadd(f"ref:author:{row['author']}", row["title"])
                pipe.zadd("ref:rating", {row["title"]: row["rating"]})
            await pipe.execute()

    async def by_author(self, author: str) -> list[RefBook]:
        return await self._load(sorted(await self.r.smembers(f"ref:author:{author}")))

    async def by_rating(self, low: float, high: float) -> list[RefBook]:
        return await self._load(await self.r.zrangebyscore("ref:rating", low, f"({high}"))

    async def _load(self, titles: list[str]) -> list[RefBook]:
        pipe = self.r.pipeline(transaction=False)
        for title in titles:
            pipe.hgetall(f"ref:{title}")
        return [RefBook.model_validate(_parsed(values)) for values in await pipe.execute()]


def _authors(n: int) -> int:
    return max(1, n // PER_AUTHOR)


def _mapping(row: dict[str, Any]) -> dict[str, str]:
    return {
        **{k: str(row[k]) for k in ("title", "author", "published_on", "rating")},
        "in_stock": "1" if row["in_stock"] else "0",
        "tags": ",".join(row["tags"]),
    }


def _parsed(values: dict[str, str]) -> dict[str, Any]:
    return {**values, "in_stock": values["in_stock"] == "1", "tags": values["tags"].split(",")}


async def timed(work: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, Any]:
    """Median seconds of `repeat` runs (after one warm-up), and the last result."""
    (seconds, result), _ = await timed_pair(work, None, repeat)
    return seconds, result


async def timed_pair(
    ours: Callable[[], Awaitable[Any]],
    theirs: Callable[[], Awaitable[Any]] | None,
    repeat: int,
    setup: Callable[[], Awaitable[Any]] | None = None,
) -> tuple[tuple[float, Any], tuple[float, Any]]:
    """`timed` of both, their runs alternating, so that a slow spell of this shared machine
    falls on both sides alike; `setup` runs, untimed, before each run."""
    sides = [work for work in (ours, theirs) if work is not None]
    results = []
    for work in sides:
        if setup is not None:
            await setup()
        results.append(await work())
    times: list[list[float]] = [[] for _ in sides]
    for _ in range(repeat):
        for i, work in enumerate(sides):
            if setup is not None:
                await setup()
            started = time.perf_counter()
            results[i] = await work()
            times[i].append(time.perf_counter() - started)
    medians = [(statistics.median(spent), result) for spent, result in zip(times, results)]
    return medians[0], medians[-1]


Results = list[tuple[str, float, float, str, float]]


async def measure(
    config: RedisConfig,
    client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster,
    flush: Callable[[], None],
    n: int,
    repeat: int,
) -> Results:
    """The rows of the table, on the server (or cluster) that `config` and `client` reach."""
    flush()
    store = Store(name="queries", redis_config=config)
    store.register_model(IndexedBook)
    store.register_model(PlainBook)
    rows = [fields(i, n) for i in range(n)]
    indexed = [IndexedBook(**row) for row in rows]
    plain = [PlainBook(**row) for row in rows]
    reference = Reference(client)
    results = []
    try:

        async def delete_both() -> None:
            await IndexedBook.delete()
            await PlainBook.delete()

        # Into empty models, as the bulk insert of ./scripts/benchmark: writing the same
        # records again would leave every index entry where it is, the cheapest case.
        (insert_indexed, _), (insert_plain, _) = await timed_pair(
            lambda: IndexedBook.insert(indexed),
            lambda: PlainBook.insert(plain),
            repeat,
            setup=delete_both,
        )
        await IndexedBook.insert(indexed)
        results.append(
            ("bulk insert, 2 indexed fields", n / insert_indexed, n / insert_plain,
             "the same without indexes", 0.7)
        )  # fmt: skip
        await reference.insert(rows)

        authors = [f"author {k % _authors(n):04d}" for k in range(42, 42 + QUERIES)]
        (ours, found), (ref, ref_found) = await timed_pair(
            lambda: _each(authors, lambda author: IndexedBook.select(where={"author": author})),
            lambda: _each(authors, reference.by_author),
            repeat,
        )
        per_author = Counter(row["author"] for row in rows)
        count = sum(per_author[author] for author in authors)  # small N: authors repeat
        assert sum(len(books or []) for books in found) == count
        assert [[b.title for b in books or []] for books in found] == [
            [b.title for b in books] for books in ref_found
        ]
        scan, _ = await timed(lambda: _scan_and_filter(authors[0]), max(1, repeat // 3))
        results.append(
            ("equality query", count / ours, count / ref, "hand-written SET per value", 1.5)
        )
        per_query = count / len(authors)
        results.append(("equality query", count / ours, per_query / scan, "select() + filter", 50))

        spans = [(low, low + RANGE / n * 5) for low in (0.5, 1.5, 2.0, 3.0, 4.0)]

        def by_rating(span: tuple[float, float]) -> Awaitable[Any]:
            where = {"rating__gte": span[0], "rating__lt": span[1]}
            return IndexedBook.select(where=where, order_by="rating")

        (ours, found), (ref, ref_found) = await timed_pair(
            lambda: _each(spans, by_rating),
            lambda: _each(spans, lambda span: reference.by_rating(*span)),
            repeat,
        )
        assert [[b.title for b in books or []] for books in found] == [
            [b.title for b in books] for books in ref_found
        ]
        count = sum(len(books or []) for books in found)
        results.append(
            (f"range query, order_by ({count // len(spans):,} records)", count / ours,
             count / ref, "hand-written ZSET by score", 1.5)
        )  # fmt: skip
    finally:
        await store.close()
        store.unregister_model(IndexedBook)
        store.unregister_model(PlainBook)
        await reference.r.aclose()
        flush()
    return results


async def _each(items: list[T], query: Callable[[T], Awaitable[Any]]) -> list[Any]:
    """The answers of `query` for each item, one after the other."""
    return [await query(item) for item in items]


async def _scan_and_filter(author: str) -> list[IndexedBook]:
    return [book for book in await IndexedBook.select() or [] if book.author == author]


def print_results(n: int, results: list[tuple[str, float, float, str, float]]) -> None:
    print(f"queries, N = {n:,} records with two indexed fields (records/s):")
    print("| operation | ours | compared with | theirs | ratio | wanted | met |")
    print("|---|---|---|---|---|---|---|")
    for name, ours, theirs, other, wanted in results:
        met = "yes" if ours / theirs >= wanted else "NO"
        print(
            f"| {name} | {ours:,.0f} | {other} | {theirs:,.0f} | {ours / theirs:.2f}x "
            f"| >= {wanted}x | {met} |"
        )


async def print_section(url: str, n: int, repeat: int) -> None:
    """The table for the single server at `url`."""
    raw = redis.Redis.from_url(url)
    client = redis.asyncio.Redis.from_url(url, decode_responses=True)
    print_results(n, await measure(RedisConfig.from_url(url), client, raw.flushdb, n, repeat))
    raw.close()


async def print_cluster_section(ports: list[int], n: int, repeat: int) -> None:
    """The table for the cluster whose masters listen on `ports`."""

    def flush() -> None:
        for port in ports:
            with redis.Redis(port=port) as master:
                master.flushall()

    config = RedisConfig(host="127.0.0.1", port=ports[0], cluster=True)
    client = redis.asyncio.cluster.RedisCluster(
        host="127.0.0.1", port=ports[0], decode_responses=True
    )
    print_results(n, await measure(config, client, flush, n, repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", default=None, help="a Redis to use (default: start one)")
    args = parser.parse_args()
    if args.url:
        asyncio.run(print_section(args.url, args.n, args.repeat))
        return
    from tests.servers import RedisServer

    with RedisServer() as server:
        asyncio.run(print_section(server.url, args.n, args.repeat))


if __name__ == "__main__":
    main()
