"""Migrating records written by pydantic-aioredis 1.4: records per second.

N records of the benchmark's six-field `Book` are written in the layout 1.4 wrote (a set of
record keys as the index; the date JSON-quoted, `true`/`false`, the float as `str()`, the
list as `json.dumps` made it, with spaces), then migrated with `upgrade_from_1_4`. Three
cases, each on fresh 1.4 data every repetition:

* a dry run (reads and converts in memory, writes nothing);
* a migration that keeps the keys (no prefix);
* a migration that moves every key (`_redis_prefix = "Shop"`, which 1.4 lower-cased).

Printed: records per second (median, min and max over the repetitions), the script calls
sent per 1,000 records, and how long the calls held the server (the server's SLOWLOG).
The 1.4 data is written by plain redis-py commands that follow 1.4's rules for these field
types; tests/test_upgrade_data.py checks the migration on data 1.4 itself wrote.

    python -m benchmarks.migrate                # N = 100,000, 3 repetitions
    python -m benchmarks.migrate --n 10000 --repeat 1

`./scripts/benchmark` prints this section at its end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import redis

from benchmarks.bench import Book, book_fields, fmt, start_server
from pydantic_aioredis import RedisConfig, Store
from pydantic_aioredis.migrate import upgrade_from_1_4

# The database the section uses on the benchmark's server (bench.py uses 0).
DB = 1


class ShopBook(Book):
    """The same records under a mixed-case prefix, which 1.4 lower-cased in its keys."""

    _redis_prefix: str = "Shop"
    _table_name: str = "book"


def legacy_hash(fields: dict[str, Any]) -> dict[str, str]:
    """A record as 1.4 stored it (see pydantic_aioredis._legacy_values)."""
    return {
        "title": fields["title"],
        "author": fields["author"],
        "published_on": json.dumps(fields["published_on"].isoformat()),
        "in_stock": json.dumps(fields["in_stock"]),
        "price": str(fields["price"]),
        "tags": json.dumps(fields["tags"]),
    }


def write_1_4(raw: redis.Redis, namespace: str, n: int) -> None:
    """N records and their index, as 1.4 wrote them under `namespace`."""
    for start in range(0, n, 10_000):
        with raw.pipeline(transaction=False) as pipe:
            keys = []
            for i in range(start, min(n, start + 10_000)):
                fields = book_fields(i)
                key = namespace + fields["title"]
                pipe.hset(key, mapping=legacy_hash(fields))
                keys.append(key)
            pipe.sadd(namespace + "__index", *keys)
            pipe.execute()


async def migrate_once(url: str, model: type[Book], n: int, dry_run: bool) -> tuple[float, int]:
    """Seconds the migration of N fresh 1.4 records took, and the script calls it sent."""
    raw = redis.Redis.from_url(url)
    raw.flushdb()
    write_1_4(raw, "shop:book:" if model is ShopBook else "book:", n)
    store = Store(name="migrate", redis_config=RedisConfig.from_url(url))
    store.register_model(model)
    before = _script_calls(raw)
    started = time.perf_counter()
    report = await upgrade_from_1_4(store, [model], dry_run=dry_run)
    elapsed = time.perf_counter() - started
    calls = _script_calls(raw) - before
    await store.close()
    store.unregister_model(model)
    assert report.models[0].converted == n, report.summary()
    raw.close()
    return elapsed, calls


def _script_calls(raw: redis.Redis) -> int:
    return int(raw.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


async def call_durations(url: str, n: int) -> list[float]:
    """Milliseconds each script call of a migration (keys moving) held the server, by the
    server's SLOWLOG, in order."""
    raw = redis.Redis.from_url(url)
    raw.flushdb()
    write_1_4(raw, "shop:book:", n)
    # The commands a script runs are logged too, each well under the threshold.
    raw.config_set("slowlog-log-slower-than", 100)
    raw.config_set("slowlog-max-len", 100_000)
    raw.slowlog_reset()
    store = Store(name="migrate", redis_config=RedisConfig.from_url(url))
    store.register_model(ShopBook)
    await upgrade_from_1_4(store, [ShopBook])
    await store.close()
    store.unregister_model(ShopBook)
    entries = raw.slowlog_get(100_000)
    raw.config_set("slowlog-log-slower-than", 10_000)
    raw.close()
    return sorted(e["duration"] / 1000 for e in entries if e["command"].startswith(b"EVALSHA"))


async def print_section(url: str, n: int, repeat: int) -> None:
    """The migration table, on database DB of the server at `url`."""
    url = url.rsplit("/", 1)[0] + f"/{DB}"
    print(f"migration from 1.4 (upgrade_from_1_4), N = {n:,} six-field records:")
    print("| case | records/s median | min | max | script calls per 1,000 records |")
    print("|---|---|---|---|---|")
    for name, model, dry_run in (
        ("dry run", Book, True),
        ("keys stay", Book, False),
        ("every key moves (prefix case)", ShopBook, False),
    ):
        rates, calls = [], 0
        for _ in range(repeat):
            elapsed, calls = await migrate_once(url, model, n, dry_run)
            rates.append(n / elapsed)
        per_thousand = calls * 1000 / n
        print(
            f"| {name} | {fmt(statistics.median(rates))} | {fmt(min(rates))} | "
            f"{fmt(max(rates))} | {per_thousand:.1f} |"
        )
    durations = await call_durations(url, n)
    print(
        f"server-side calls of a migration (keys moving), ms: median "
        f"{statistics.median(durations):.2f}, 99th percentile "
        f"{durations[len(durations) * 99 // 100]:.2f}, longest {durations[-1]:.2f}"
    )
    redis.Redis.from_url(url).flushdb()


async def main(args: argparse.Namespace) -> None:
    url, server = start_server()
    try:
        await print_section(url, args.n, args.repeat)
    finally:
        if server is not None:
            server.cleanup()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="records migrated per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
