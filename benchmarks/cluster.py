"""Bulk insert and select-all on a three-master Redis Cluster, against a single Redis.

Runs, on servers of its own (loopback, no persistence), for N records of six fields:

* ours on one redis-server;
* ours on a cluster of three redis-server masters (no replicas);
* a hand-written floor on the same cluster: redis-py's cluster pipeline, one HSET per
  record and one HGETALL per record with pydantic validation, no index (it needs none,
  since it knows its keys): what any code using redis-py's cluster client pays at least.

Printed: records per second (median, min and max over the repetitions, after a warm-up)
and the calls each side sent for one insert and one select-all (script calls for ours,
commands for the floor).

    ./scripts/benchmark-cluster               # N = 100,000, 3 repetitions
    ./scripts/benchmark-cluster --n 10000 --repeat 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic
import redis
import redis.asyncio.cluster
from tests.servers import LocalCluster, RedisServer

from benchmarks.bench import Book, RefBook, book_fields, fmt, ref_load, ref_mapping
from benchmarks.queries import print_cluster_section
from pydantic_aioredis import RedisConfig, Store

Timings = dict[str, list[float]]


async def measure_ours(config: RedisConfig, books: list[Book], repeat: int) -> Timings:
    store = Store(name="bench", redis_config=config)
    store.register_model(Book)
    timings: Timings = {"insert": [], "select": []}
    try:
        for run in range(repeat + 1):  # the first run warms up
            await Book.delete()
            started = time.perf_counter()
            await Book.insert(books)
            inserted = time.perf_counter()
            found = await Book.select()
            selected = time.perf_counter()
            assert len(found or []) == len(books)
            del found
            if run:
                timings["insert"].append(len(books) / (inserted - started))
                timings["select"].append(len(books) / (selected - inserted))
        await Book.delete()
    finally:
        await store.close()
        store.unregister_model(Book)
    return timings


async def measure_floor(url: str, books: list[RefBook], repeat: int) -> Timings:
    client = redis.asyncio.cluster.RedisCluster.from_url(url, decode_responses=True)
    keys = [f"refbook:{book.title}" for book in books]
    timings: Timings = {"insert": [], "select": []}
    try:
        for run in range(repeat + 1):
            started = time.perf_counter()
            pipe = client.pipeline()
            for key, book in zip(keys, books):
                pipe.hset(key, mapping=ref_mapping(book))
            await pipe.execute()
            inserted = time.perf_counter()
            pipe = client.pipeline()
            for key in keys:
                pipe.hgetall(key)
            found = [ref_load(values) for values in await pipe.execute()]
            selected = time.perf_counter()
            assert len(found) == len(books)
            del found
            if run:
                timings["insert"].append(len(books) / (inserted - started))
                timings["select"].append(len(books) / (selected - inserted))
    finally:
        await client.aclose()
    return timings


def script_calls(ports: list[int]) -> Callable[[], int]:
    """A counter of the script calls (EVALSHA) the servers on these ports ran."""

    def total() -> int:
        count = 0
        for port in ports:
            with redis.Redis(port=port) as client:
                stats = client.info("commandstats")
            count += stats.get("cmdstat_evalsha", {"calls": 0})["calls"]
        return count

    return total


async def calls_of(count: Callable[[], int], work: Callable[[], Awaitable[Any]]) -> int:
    before = count()
    await work()
    return count() - before


async def one_of_each(config: RedisConfig, books: list[Book], count: Callable[[], int]) -> str:
    store = Store(name="bench", redis_config=config)
    store.register_model(Book)
    try:
        await Book.delete()
        inserts = await calls_of(count, lambda: Book.insert(books))
        selects = await calls_of(count, Book.select)
        await Book.delete()
    finally:
        await store.close()
        store.unregister_model(Book)
    return f"{inserts:,} / {selects:,}"


def row(name: str, timings: Timings, calls: str) -> str:
    cells = []
    for operation in ("insert", "select"):
        rates = timings[operation]
        cells.append(f"{fmt(statistics.median(rates))} ({fmt(min(rates))}-{fmt(max(rates))})")
    return f"| {name} | {cells[0]} | {cells[1]} | {calls} |"


async def main(args: argparse.Namespace) -> None:
    books = [Book(**book_fields(i)) for i in range(args.n)]
    ref_books = [RefBook(**book_fields(i)) for i in range(args.n)]
    with RedisServer() as single, LocalCluster(masters=3) as cluster:
        info = redis.Redis(port=single.port).info("server")
        print(
            f"# cluster benchmark: N = {args.n:,} six-field records, {args.repeat} "
            "repetitions after 1 warm-up"
        )
        print(
            f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, pydantic {pydantic.VERSION}, "
            f"redis-py {redis.__version__}, Redis {info['redis_version']}; all servers on "
            "this machine"
        )
        print()
        single_config = RedisConfig(port=single.port)
        cluster_config = RedisConfig(port=cluster.ports[0], cluster=True)
        results = {
            "ours, single Redis": (
                await measure_ours(single_config, books, args.repeat),
                await one_of_each(single_config, books, script_calls([single.port])),
            ),
            "ours, 3-master cluster": (
                await measure_ours(cluster_config, books, args.repeat),
                await one_of_each(cluster_config, books, script_calls(cluster.ports)),
            ),
            "redis-py cluster pipeline, no index (floor)": (
                await measure_floor(cluster.url, ref_books, args.repeat),
                f"{args.n:,} / {args.n:,}",
            ),
        }
        print("On the 3-master cluster:")
        await print_cluster_section(cluster.ports, args.n, args.repeat)
        print()
    print(
        "| setup | bulk insert, records/s (min-max) | select all, records/s (min-max) "
        "| calls sent, insert / select |"
    )
    print("|---|---|---|---|")
    for name, (timings, calls) in results.items():
        print(row(name, timings, calls))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="records")
    parser.add_argument("--repeat", type=int, default=3, help="measured repetitions")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
