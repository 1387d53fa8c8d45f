"""pydantic-aioredis against hand-written redis-py, side by side, in one process.

Every operation runs for the library ("ours") and for a hand-written reference: redis-py's
asyncio client with hiredis, one pipeline per operation, and pydantic v2 validation of each
record. The two alternate, repetition by repetition, after a warm-up. Both keep their records
in the same format (a hash per record, a sorted-set index), under different keys.

Printed per operation: records (or assignments) per second, median, min and max over the
repetitions, the ratio ours/reference of the medians, and the Redis commands each side sent
(INFO commandstats, per run). Then peak memory of select-all, the longest single server-side
call, a scaling run, select-all in a database holding a million unrelated keys, and the
migration from 1.4 (benchmarks/migrate.py).

The benchmark starts its own redis-server on a free loopback port (or uses BENCH_REDIS_URL).

    ./scripts/benchmark                  # N = 10,000, 5 repetitions
    ./scripts/benchmark --n 1000 --repeat 3 --quick
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from typing import Any

import pydantic
import redis
import redis.asyncio
from pydantic import BaseModel
from tests.servers import RedisServer

from pydantic_aioredis import Model, RedisConfig, Store

# -- the workload -----------------------------------------------------------------------------


class Book(Model):
    _primary_key_field: str = "title"
    title: str
    author: str
    published_on: date
    in_stock: bool
    price: float
    tags: list[str]


class RefBook(BaseModel):
    title: str
    author: str
    published_on: date
    in_stock: bool
    price: float
    tags: list[str]


def book_fields(i: int) -> dict[str, Any]:
    return {
        "title": f"title-{i:07d}",
        "author": f"author {i % 1000}",
        "published_on": date(1900 + i % 120, 1 + i % 12, 1 + i % 28),
        "in_stock": i % 2 == 0,
        "price": round(i * 0.37, 2),
        "tags": ["fiction", f"tag{i % 50}", "paper"],
    }


# -- the hand-written reference ---------------------------------------------------------------

REF_INDEX = "ref:__index"


def ref_mapping(book: RefBook) -> dict[str, str]:
    return {
        "title": book.title,
        "author": book.author,
        "published_on": book.published_on.isoformat(),
        "in_stock": "true" if book.in_stock else "false",
        "price": repr(book.price),
        "tags": json.dumps(book.tags),
    }


def ref_load(values: dict[str, str]) -> RefBook:
    return RefBook.model_validate({**values, "tags": json.loads(values["tags"])})


class Reference:
    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.r = client

    async def insert(self, books: list[RefBook]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for book in books:
            pipe.hset(f"ref:{book.title}", mapping=ref_mapping(book))
            pipe.zadd(REF_INDEX, {book.title: 0})
        await pipe.execute()

    async def select_all(self) -> list[RefBook]:
        titles = await self.r.zrange(REF_INDEX, 0, -1)
        pipe = self.r.pipeline(transaction=False)
        for title in titles:
            pipe.hgetall(f"ref:{title}")
        return [ref_load(values) for values in await pipe.execute()]

    async def select_ids(self, titles: list[str]) -> list[RefBook]:
        pipe = self.r.pipeline(transaction=False)
        for title in titles:
            pipe.hgetall(f"ref:{title}")
        return [ref_load(values) for values in await pipe.execute() if values]

    async def select_columns(self) -> list[dict[str, Any]]:
        titles = await self.r.zrange(REF_INDEX, 0, -1)
        pipe = self.r.pipeline(transaction=False)
        for title in titles:
            pipe.hmget(f"ref:{title}", ["author", "price"])
        return [{"author": a, "price": float(p)} for a, p in await pipe.execute()]

    async def save(self, book: RefBook) -> None:
        pipe = self.r.pipeline(transaction=False)
        pipe.hset(f"ref:{book.title}", mapping=ref_mapping(book))
        pipe.zadd(REF_INDEX, {book.title: 0})
        await pipe.execute()

    async def save_field(self, book: RefBook, name: str) -> None:
        await self.r.hset(f"ref:{book.title}", name, repr(getattr(book, name)))

    async def delete_all(self) -> None:
        titles = await self.r.zrange(REF_INDEX, 0, -1)
        pipe = self.r.pipeline(transaction=False)
        for start in range(0, len(titles), 1000):
            pipe.delete(*[f"ref:{t}" for t in titles[start : start + 1000]])
        pipe.delete(REF_INDEX)
        await pipe.execute()


# -- measuring --------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    unit: str
    count: int
    ours: list[float] = field(default_factory=list)
    ref: list[float] = field(default_factory=list)
    ours_commands: int = 0
    ref_commands: int = 0


def commands_sent(raw: redis.Redis) -> tuple[int, int]:
    """(scripts run, all commands run) so far, from INFO commandstats.

    Commands a script runs are counted by the server too; the library sends nothing but
    EVALSHA (and SCRIPT LOAD once), so its round-trip commands are the scripts it ran.
    """
    stats = raw.info("commandstats")
    scripts = sum(
        stats.get(f"cmdstat_{name}", {"calls": 0})["calls"]
        for name in ("evalsha", "eval", "script|load")
    )
    return scripts, sum(v["calls"] for v in stats.values())


class Bench:
    def __init__(self, url: str, args: argparse.Namespace) -> None:
        self.url, self.n, self.repeat = url, args.n, args.repeat
        self.saves, self.assignments = args.saves, args.assignments
        self.raw = redis.Redis.from_url(url)
        self.store = Store(name="bench", redis_config=RedisConfig.from_url(url))
        self.store.register_model(Book)
        self.reference = Reference(redis.asyncio.Redis.from_url(url, decode_responses=True))
        self.results: dict[str, Result] = {}

    async def measure(
        self,
        name: str,
        unit: str,
        count: int,
        ours: Callable[[], Awaitable[Any]],
        ref: Callable[[], Awaitable[Any]],
        setup: Callable[[], Awaitable[Any]] | None = None,
        record: bool = True,
    ) -> None:
        result = self.results.setdefault(name, Result(name, unit, count))
        for side, run in (("ours", ours), ("ref", ref)):
            if setup is not None:
                await setup()
            gc.collect()
            scripts_before, all_before = commands_sent(self.raw)
            start = time.perf_counter()
            await run()
            elapsed = time.perf_counter() - start
            scripts_after, all_after = commands_sent(self.raw)
            # ours: the scripts it sent; the reference: every command (minus our INFO)
            sent = scripts_after - scripts_before if side == "ours" else all_after - all_before - 1
            if record:
                getattr(result, side).append(count / elapsed)
                setattr(result, f"{side}_commands", sent)

    async def measure_blocks(
        self,
        name: str,
        unit: str,
        count: int,
        ours: Callable[[int, int], Awaitable[Any]],
        ref: Callable[[int, int], Awaitable[Any]],
        record: bool = True,
        blocks: int = 20,
    ) -> None:
        """The two sides alternate in `blocks` slices of the operations (each side runs
        `ours(start, stop)`), so that both see the same drift of this shared machine."""
        result = self.results.setdefault(name, Result(name, unit, count))
        spent = {"ours": 0.0, "ref": 0.0}
        sent = {"ours": 0, "ref": 0}
        size = max(1, count // blocks)
        gc.collect()
        for first in range(0, count, size):
            for side, run in (("ours", ours), ("ref", ref)):
                scripts_before, all_before = commands_sent(self.raw)
                start = time.perf_counter()
                await run(first, min(first + size, count))
                spent[side] += time.perf_counter() - start
                scripts_after, all_after = commands_sent(self.raw)
                sent[side] += (
                    scripts_after - scripts_before if side == "ours" else all_after - all_before - 1
                )
        if record:
            for side in ("ours", "ref"):
                getattr(result, side).append(count / spent[side])
                setattr(result, f"{side}_commands", sent[side])

    async def close(self) -> None:
        await self.store.close()
        await self.reference.r.aclose()
        self.raw.close()


async def run_operations(bench: Bench, record: bool) -> None:
    n, saves, assignments = bench.n, bench.saves, bench.assignments
    ours_books = [Book(**book_fields(i)) for i in range(n)]
    ref_books = [RefBook(**book_fields(i)) for i in range(n)]
    ids = [[f"title-{(j * 7919 + k * 101) % n:07d}" for k in range(100)] for j in range(100)]
    reference = bench.reference

    arguments = [book_fields(i) for i in range(n)]

    async def construct_ours(start: int, stop: int) -> None:
        for i in range(start, stop):
            Book(**arguments[i])

    async def construct_ref(start: int, stop: int) -> None:
        for i in range(start, stop):
            RefBook(**arguments[i])

    await bench.measure_blocks(
        "construct N models (no Redis)", "models", n, construct_ours, construct_ref, record=record
    )

    async def clear() -> None:
        bench.raw.flushdb()

    await bench.measure(
        "bulk insert N",
        "records",
        n,
        lambda: Book.insert(ours_books),
        lambda: reference.insert(ref_books),
        setup=clear,
        record=record,
    )
    await Book.insert(ours_books)
    await reference.insert(ref_books)
    await bench.measure(
        "select all N", "records", n, Book.select, reference.select_all, record=record
    )

    # 100 calls of 100 ids; the two sides take turns, five calls at a time, as the other
    # rows of calls do (`measure_blocks`): a single pass of each side moved the ratio by
    # a third from run to run on this shared machine.
    async def ids_ours(start: int, stop: int) -> None:
        for chunk in ids[start // 100 : stop // 100]:
            await Book.select(ids=chunk)

    async def ids_ref(start: int, stop: int) -> None:
        for chunk in ids[start // 100 : stop // 100]:
            await reference.select_ids(chunk)

    await bench.measure_blocks(
        "select 100 ids x 100", "records", 100 * 100, ids_ours, ids_ref, record=record
    )
    await bench.measure(
        "select 2 columns of N",
        "records",
        n,
        lambda: Book.select(columns=["author", "price"]),
        reference.select_columns,
        record=record,
    )

    one, ref_one = ours_books[0], ref_books[0]

    async def save_ours(start: int, stop: int) -> None:
        for i in range(start, stop):
            one.price = float(i)
            await one.save()

    async def save_ref(start: int, stop: int) -> None:
        for i in range(start, stop):
            ref_one.price = float(i)
            await reference.save(ref_one)

    await bench.measure_blocks(
        "sequential save()", "saves", saves, save_ours, save_ref, record=record, blocks=100
    )

    synced = Book(**book_fields(0))
    plain = RefBook(**book_fields(0))

    async def burst_ours() -> None:
        synced.set_auto_sync(True)
        for i in range(saves):
            synced.price = float(i)
        await bench.store.flush()
        synced.set_auto_sync(False)

    async def burst_ref() -> None:
        for i in range(saves):
            plain.price = float(i)
        await reference.save_field(plain, "price")

    await bench.measure(
        "auto-synced assignments + 1 flush",
        "assignments",
        saves,
        burst_ours,
        burst_ref,
        record=record,
    )

    # The reference persists a changed record the hand-written way: its save().
    async def pair_ours(start: int, stop: int) -> None:
        for i in range(start, stop):
            synced.price = float(i)
            await bench.store.flush()

    async def pair_ref(start: int, stop: int) -> None:
        for i in range(start, stop):
            plain.price = float(i)
            await reference.save(plain)

    synced.set_auto_sync(True)
    await bench.measure_blocks(
        "assignment + flush pairs", "pairs", saves, pair_ours, pair_ref, record=record, blocks=100
    )
    synced.set_auto_sync(False)

    quiet = Book(**book_fields(1))

    async def assign_ours(start: int, stop: int) -> None:
        for i in range(start, stop):
            quiet.price = i

    async def assign_ref(start: int, stop: int) -> None:
        for i in range(start, stop):
            plain.price = i

    await bench.measure_blocks(
        "assignment, automatic saving off",
        "assignments",
        assignments,
        assign_ours,
        assign_ref,
        record=record,
    )

    async def refill() -> None:
        await Book.insert(ours_books)
        await reference.insert(ref_books)

    await bench.measure(
        "delete all N", "records", n, Book.delete, reference.delete_all, setup=refill, record=record
    )


# -- extra measurements -----------------------------------------------------------------------


async def peak_memory(bench: Bench, n: int) -> tuple[int, int]:
    bench.raw.flushdb()
    await Book.insert([Book(**book_fields(i)) for i in range(n)])
    await bench.reference.insert([RefBook(**book_fields(i)) for i in range(n)])
    peaks = []
    for run in (Book.select, bench.reference.select_all):
        gc.collect()
        tracemalloc.start()
        found = await run()
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert found is not None
        assert len(found) == n
        del found
    bench.raw.flushdb()
    return peaks[0], peaks[1]


async def longest_server_call(bench: Bench) -> tuple[float, str]:
    """The slowest single command the library sent, by the server's own SLOWLOG."""
    bench.raw.flushdb()
    books = [Book(**book_fields(i)) for i in range(bench.n)]
    bench.raw.config_set("slowlog-log-slower-than", 0)
    bench.raw.config_set("slowlog-max-len", 100_000)
    bench.raw.slowlog_reset()
    await Book.insert(books)
    await Book.select()
    await Book.select(columns=["author", "price"])
    await Book.delete()
    entries = bench.raw.slowlog_get(100_000)
    bench.raw.config_set("slowlog-log-slower-than", 10_000)
    slowest = max(entries, key=lambda e: e["duration"])
    command = slowest["command"]
    name = command.split(b" ")[0].decode() if isinstance(command, bytes) else str(command)
    return slowest["duration"] / 1000, name


async def scaling(bench: Bench, sizes: list[int]) -> list[tuple[int, float, float, float, float]]:
    rows = []
    for n in sizes:
        bench.raw.flushdb()
        ours_books = [Book(**book_fields(i)) for i in range(n)]
        ref_books = [RefBook(**book_fields(i)) for i in range(n)]
        runs: list[Callable[[], Awaitable[Any]]] = [
            partial(Book.insert, ours_books),
            partial(bench.reference.insert, ref_books),
            Book.select,
            bench.reference.select_all,
        ]
        timings = []
        for run in runs:
            gc.collect()
            start = time.perf_counter()
            await run()
            timings.append((time.perf_counter() - start) / n * 1e6)
        rows.append((n, *timings))
    bench.raw.flushdb()
    return rows


class CrowdedBook(Book):
    """The same model, registered with a store on another database."""

    _table_name: str = "book"


async def crowded(bench: Bench, n: int, others: int) -> dict[str, float]:
    """select-all of the same records in two databases, one of which also holds `others`
    unrelated keys, for the library and the reference; all four alternate."""
    bench.raw.flushdb()
    crowded_url = bench.url.rsplit("/", 1)[0] + "/1"
    crowded_raw = redis.Redis.from_url(crowded_url)
    crowded_raw.flushdb()
    store = Store(name="crowded", redis_config=RedisConfig.from_url(crowded_url))
    store.register_model(CrowdedBook)
    crowded_ref = Reference(redis.asyncio.Redis.from_url(crowded_url, decode_responses=True))
    ref_books = [RefBook(**book_fields(i)) for i in range(n)]
    await Book.insert([Book(**book_fields(i)) for i in range(n)])
    await CrowdedBook.insert([CrowdedBook(**book_fields(i)) for i in range(n)])
    await bench.reference.insert(ref_books)
    await crowded_ref.insert(ref_books)
    crowded_raw.execute_command("DEBUG", "POPULATE", others, "unrelated")
    runs = {
        "ours alone": Book.select,
        "ours crowded": CrowdedBook.select,
        "ref alone": bench.reference.select_all,
        "ref crowded": crowded_ref.select_all,
    }
    samples: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(7):
        for label, select in runs.items():
            gc.collect()
            start = time.perf_counter()
            await select()
            samples[label].append(n / (time.perf_counter() - start))
    await store.close()
    await crowded_ref.r.aclose()
    crowded_raw.flushdb()
    crowded_raw.close()
    bench.raw.flushdb()
    return {label: statistics.median(values) for label, values in samples.items()}


# -- report -----------------------------------------------------------------------------------


def fmt(value: float) -> str:
    return f"{value:,.0f}"


def print_table(results: dict[str, Result]) -> None:
    header = (
        "operation",
        "unit/s",
        "ours median",
        "ours min",
        "ours max",
        "ref median",
        "ref min",
        "ref max",
        "ours/ref",
        "cmds ours",
        "cmds ref",
    )
    rows = []
    for r in results.values():
        ours_m, ref_m = statistics.median(r.ours), statistics.median(r.ref)
        rows.append(
            (
                r.name,
                r.unit,
                fmt(ours_m),
                fmt(min(r.ours)),
                fmt(max(r.ours)),
                fmt(ref_m),
                fmt(min(r.ref)),
                fmt(max(r.ref)),
                f"{ours_m / ref_m:.2f}x",
                fmt(r.ours_commands),
                fmt(r.ref_commands),
            )
        )
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def ratio(results: dict[str, Result], ours: str, ref: str | None = None) -> float:
    return statistics.median(results[ours].ours) / statistics.median(results[ref or ours].ref)


def print_targets(results: dict[str, Result]) -> None:
    """The targets of the benchmark issue, computed as it defines them."""
    rows = [
        ("bulk insert", ratio(results, "bulk insert N"), 1.3),
        ("select all", ratio(results, "select all N"), 1.8),
        ("select columns", ratio(results, "select 2 columns of N"), 1.8),
        ("select by ids", ratio(results, "select 100 ids x 100"), 2.5),
        ("save()", ratio(results, "sequential save()"), 0.9),
        (
            "model construction vs plain pydantic",
            ratio(results, "construct N models (no Redis)"),
            0.8,
        ),
        (
            "assignment, saving off, vs plain pydantic",
            ratio(results, "assignment, automatic saving off"),
            0.5,
        ),
        (
            "assignment+flush pairs vs the reference's save()",
            ratio(results, "assignment + flush pairs"),
            0.9,
        ),
        ("delete all", ratio(results, "delete all N"), 1.2),
    ]
    burst = statistics.median(results["auto-synced assignments + 1 flush"].ours)
    print("| target | measured | wanted | met |")
    print("|---|---|---|---|")
    for name, value, wanted in rows:
        print(f"| {name} | {value:.2f}x | >= {wanted}x | {'yes' if value >= wanted else 'NO'} |")
    print(
        f"| auto-synced burst (assignments + flush) | {fmt(burst)}/s | >= 100,000/s | "
        f"{'yes' if burst >= 100_000 else 'NO'} |"
    )


def start_server() -> tuple[str, RedisServer | None]:
    url = os.environ.get("BENCH_REDIS_URL")
    if url:
        return url, None
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed; set BENCH_REDIS_URL to a Redis to use")
    server = RedisServer(None, "--enable-debug-command", "local").start()
    return server.url, server


async def main(args: argparse.Namespace) -> None:
    url, server = start_server()
    bench = Bench(url, args)
    try:
        info = bench.raw.info("server")
        print(
            f"# pydantic-aioredis benchmark: N = {args.n:,}, {args.repeat} repetitions "
            "after 1 warm-up, ours and reference interleaved"
        )
        print(
            f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, pydantic {pydantic.VERSION}, "
            f"redis-py {redis.__version__}, Redis {info['redis_version']}"
        )
        print()
        await run_operations(bench, record=False)
        for _ in range(args.repeat):
            await run_operations(bench, record=True)
        print_table(bench.results)
        print()
        print_targets(bench.results)
        if args.quick:
            return
        print()
        big = args.big
        ours_peak, ref_peak = await peak_memory(bench, big)
        print(
            f"peak memory of select-all, N = {big:,}: ours {ours_peak / 2**20:.1f} MiB, "
            f"reference {ref_peak / 2**20:.1f} MiB, ratio {ours_peak / ref_peak:.2f}x"
        )
        millis, name = await longest_server_call(bench)
        print(
            f"longest single server-side call (insert, select, columns, delete of N): "
            f"{millis:.2f} ms ({name})"
        )
        print()
        print("scaling, microseconds per record:")
        print("| N | insert ours | insert ref | select-all ours | select-all ref |")
        print("|---|---|---|---|---|")
        for n, *timings in await scaling(bench, [big // 100, big // 10, big]):
            print(f"| {n:,} | " + " | ".join(f"{t:.1f}" for t in timings) + " |")
        print()
        rates = await crowded(bench, args.n, args.crowd)
        print(f"select-all of N = {args.n:,} beside {args.crowd:,} unrelated keys, records/s:")
        for side in ("ours", "ref"):
            alone, busy = rates[f"{side} alone"], rates[f"{side} crowded"]
            print(f"  {side}: {fmt(alone)} alone, {fmt(busy)} crowded ({busy / alone:.2f}x)")
        print()
        from benchmarks.migrate import print_section  # imports this module
        from benchmarks.queries import print_section as print_queries

        await print_section(url, big, min(args.repeat, 3))
        print()
        await print_queries(url, big, min(args.repeat, 5))
    finally:
        await bench.close()
        if server is not None:
            server.cleanup()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="records per operation")
    parser.add_argument("--repeat", type=int, default=5, help="measured repetitions")
    parser.add_argument("--big", type=int, default=100_000, help="N of the memory/scaling run")
    parser.add_argument("--saves", type=int, default=2_000, help="sequential saves and pairs")
    parser.add_argument(
        "--assignments", type=int, default=200_000, help="assignments with automatic saving off"
    )
    parser.add_argument(
        "--crowd",
        type=int,
        default=1_000_000,
        help="unrelated keys beside the records in the last run",
    )
    parser.add_argument("--quick", action="store_true", help="only the operations table")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
