"""Running a query plan (see `_query`) as bounded script calls over the secondary indexes.

A query scans one indexed field's sorted set (the *driver*) along the plan's ranges for that
field, and keeps the records whose other index entries meet the other conditions (`QUERY`,
at most `SCAN_BUDGET` members a call; the next call goes on from the last member seen).

* The driver is the field with a condition that matches fewest records (`COUNT_RANGES`,
  when there is a choice), or the `order_by` field when scanning it in order is cheaper than
  sorting all matches: it finds the first page without reading the rest.
* When the scan already comes in the order asked (along the `order_by` field, or along one
  value of a field when the order is by primary key), a page stops the scan early. On a
  single server, ascending, the same call reads the records too: one round trip.
* On a cluster, without a page, each bucket's calls read the records they find too (with
  their entries in the `order_by` field's index), and Python merges them in order.
* Otherwise each shard gives its matches as index members (value + primary key), Python
  merges and sorts them (ties by primary key, also in descending order), takes the page and
  reads its records by primary key.

Results are exactly what a full scan with the same filter, order and page would give.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._exceptions import CorruptRecordError
from ._index_scripts import COUNT_RANGES, DELETE_MATCHING, QUERY
from ._indexes import after, primary_key_of
from ._query import QueryPlan
from ._scripts import DELETE_CHUNK, READ_CHUNK, write_token

if TYPE_CHECKING:
    from ._keys import Shard
    from ._table import ModelTable

__all__ = ["QueryRunner"]

# Index members one QUERY call scans at most: measured here, 2,000 members checked against
# one other condition take the server about 1.5 ms.
SCAN_BUDGET = 2000
_EVERYTHING = [("-", "+")]


class QueryRunner:
    """Runs query plans for one model's table."""

    def __init__(self, table: ModelTable[Any]) -> None:
        self.table = table

    # -- the three questions -----------------------------------------------------------

    async def select(
        self,
        plan: QueryPlan,
        skip: int,
        limit: int | None,
        columns: list[str] | None,
        invalid: list[CorruptRecordError] | None,
    ) -> list[Any]:
        if plan.never_matches or limit == 0 or not await self._ensure_ready(plan):
            return []
        fields = columns if columns is not None else list(self.table.codec.names)
        driver, in_order = await self._driver(plan, skip, limit)
        if in_order and not plan.descending and len(self.table.shards) == 1:
            return await self._read_along(plan, driver, skip, limit, fields, columns, invalid)
        if limit is None and len(self.table.shards) > 1:
            return await self._read_buckets(plan, driver, skip, fields, columns, invalid)
        want = skip + limit if in_order and limit is not None else 0
        found = await self._matches(plan, driver, want, in_order)
        members = _placed(self.table, found, plan.order_by, invalid)
        page = _sorted(members, plan)[skip : None if limit is None else skip + limit]
        # Read in another call than they were found in: checked again as they are read, and
        # left out if they moved in the order meanwhile.
        conditions = _condition_args(self.table, plan, exclude=None)
        placed = None
        pks = page
        if plan.order_by is not None:
            pks = [primary_key_of(member) for member in page]
            entries = {primary_key_of(m): m[: m.index("\x00") + 1] for m in page}
            placed = (plan.order_by, entries)
        calls = self.table.read_calls(pks, fields, conditions, placed)
        replies = await self._exact(plan, calls) if calls else []
        return self.table.records_read(pks, replies, fields, columns, invalid)

    async def count(self, plan: QueryPlan) -> int:
        if plan.never_matches or not await self._ensure_ready(plan):
            return 0
        if len(plan.conditions) == 1:
            (field,) = plan.conditions
            counts, _ = await self._counts(plan)
            return counts[field]
        driver, _ = await self._driver(plan, 0, None)
        return len(await self._matches(plan, driver, 0, False, give_keys=True))

    async def delete(self, plan: QueryPlan) -> int:
        if plan.never_matches or not await self._ensure_ready(plan):
            return 0
        driver, _ = await self._driver(plan, 0, None)
        pks = await self._matches(plan, driver, 0, False, give_keys=True)
        conditions = _condition_args(self.table, plan, exclude=None)
        calls = [
            self.table.script_call(
                DELETE_MATCHING, shard, (*conditions, *chunk), chunk, write_token()
            )
            for shard, group in self.table.by_shard(pks, str)
            for chunk in _chunks(group, DELETE_CHUNK)
        ]
        return sum(await self._exact(plan, calls)) if calls else 0

    # -- planning the scan -------------------------------------------------------------

    async def _ensure_ready(self, plan: QueryPlan) -> bool:
        """Raise unless the plan's indexes are complete; False: there is nothing to find."""
        store = self.table.store
        if store.pending:  # queued automatic writes first, as every call (`Store.execute`)
            await store.pending.flush()
        return await self.table.index_state.ensure(_indexed_fields(plan))

    async def _exact(self, plan: QueryPlan, calls: list[Any]) -> list[Any]:
        """The replies of a query's calls, sent with a read of its indexes' states in the
        same round trip: they must still be complete (see `IndexState.verify`)."""
        state = self.table.index_state
        state_reply, *replies = await self.table.execute_exact([state.state_call(), *calls])
        state.verify(_indexed_fields(plan), state_reply)
        return replies

    async def _driver(self, plan: QueryPlan, skip: int, limit: int | None) -> tuple[str, bool]:
        """The field to scan, and whether its scan comes in the order asked."""
        conditioned = list(plan.conditions)
        order = plan.order_by
        if not conditioned:
            assert order is not None  # a query without either is a plain select
            return order, True
        if len(conditioned) == 1 and order in (None, conditioned[0]):
            return conditioned[0], _in_order(plan, conditioned[0])
        counts, total = await self._counts(plan)
        best = min(conditioned, key=lambda name: counts[name])
        if order is not None and order != best and limit is not None:
            # Scanning the order field finds a page after about (skip + limit) * its size /
            # matches members; gathering every match of the best condition costs its count.
            along_order = (skip + limit) * counts.get(order, total) / max(counts[best], 1)
            if along_order < counts[best]:
                return order, True
        return best, _in_order(plan, best)

    async def _counts(self, plan: QueryPlan) -> tuple[dict[str, int], int]:
        """How many index members each condition's ranges hold, and how many records."""
        table = self.table
        args = _condition_args(table, plan, exclude=None)
        calls = [table.script_call(COUNT_RANGES, shard, args) for shard in table.shards]
        counts = dict.fromkeys(plan.conditions, 0)
        total = 0
        for reply in await self._exact(plan, calls):
            total += int(reply[0])
            for name, count in zip(plan.conditions, reply[1:]):
                counts[name] += int(count)
        return counts, total

    # -- scanning ----------------------------------------------------------------------

    async def _read_along(
        self,
        plan: QueryPlan,
        driver: str,
        skip: int,
        limit: int | None,
        fields: list[str],
        columns: list[str] | None,
        invalid: list[CorruptRecordError] | None,
    ) -> list[Any]:
        """Records in scan order, read by the scanning calls themselves (one shard)."""
        table, shard = self.table, self.table.shards[0]
        scan = _Scan(table, plan, driver, "asc", "")
        found: list[Any] = []
        seen: set[str] = set()  # a record moved ahead of the scan meanwhile comes once
        width = len(fields) + 1
        left = limit
        while True:
            want = READ_CHUNK if left is None else min(left, READ_CHUNK)
            (reply,) = await self._exact(plan, [scan.call(shard, skip, want, fields)])
            passed, given, bad, rows = scan.advance(reply)
            rows, again = _first_sightings(rows, width, seen)
            skip -= passed
            if left is not None:
                left -= given - again
            found += table.decode(columns, table.rows_of([None, None, bad, rows], invalid), invalid)
            if scan.exhausted or (left is not None and left <= 0):
                return found

    async def _read_buckets(
        self,
        plan: QueryPlan,
        driver: str,
        skip: int,
        fields: list[str],
        columns: list[str] | None,
        invalid: list[CorruptRecordError] | None,
    ) -> list[Any]:
        """Every match from `skip` on, in the order asked, read by the scanning calls
        themselves (a cluster): one round trip when no bucket has more than SCAN_BUDGET
        members to scan or READ_CHUNK matches, where finding the matches, then reading
        them, takes two. With `order_by`, each call gives its records' entries in that
        field's index, to sort by. Such a call reads records it does not name: see
        `probe_key`."""
        table = self.table
        order = plan.order_by
        scans = {shard: _Scan(table, plan, driver, "asc", "", order) for shard in table.shards}
        width = len(fields) + 1
        # By primary key, a record's place in the order: itself, or its entry in the order
        # field's index and itself. A record moved ahead of the scan meanwhile comes once,
        # in the place it had when it was last read.
        places: dict[str, str] = {}
        bad: dict[str, str] = {}  # keys that hold no hash: their error
        replies: list[Any] = []
        while scans:
            calls = [scan.call(shard, 0, READ_CHUNK, fields) for shard, scan in scans.items()]
            for (shard, scan), reply in zip(list(scans.items()), await self._exact(plan, calls)):
                _, _, errors, rows = scan.advance(reply)
                if order is None:
                    places.update((pk, pk) for pk in rows[::width])
                    places.update((pk, pk) for pk in errors[::2])
                else:
                    entries = scan.entries
                    places.update(
                        (pk, pk if entry is None else entry + pk)
                        for pk, entry in zip(entries[::2], entries[1::2])
                    )
                bad.update(zip(errors[::2], errors[1::2]))
                replies.append([None, None, [], rows])
                if scan.exhausted:  # else it stopped at READ_CHUNK records or its budget
                    del scans[shard]
        # A bad key has its place in the order, as in a full scan: it counts in `skip`, and
        # is reported only when it falls in the page.
        placed = _sorted(_placed(table, list(places.values()), order, invalid), plan)[skip:]
        page = placed if order is None else [primary_key_of(member) for member in placed]
        found = {pk for reply in replies for pk in reply[3][::width]}
        errors = [item for pk in page if pk in bad and pk not in found for item in (pk, bad[pk])]
        rows = table.rows_in_order(page, [[None, None, errors, []], *replies], width, invalid)
        step = READ_CHUNK * width  # decoded a chunk at a time, as a select of all does
        return [
            record
            for start in range(0, len(rows), step)
            for record in table.decode(columns, rows[start : start + step], invalid)
        ]

    async def _matches(
        self, plan: QueryPlan, driver: str, want: int, in_order: bool, give_keys: bool = False
    ) -> list[str]:
        """Every shard's matches (its first `want` when in order; 0: all), as members of the
        `order_by` field, or primary keys when the order is by key or `give_keys`."""
        direction = "desc" if in_order and plan.descending else "asc"
        group = "*" if direction == "desc" and want else ""
        order = None if give_keys else plan.order_by
        scans = {
            shard: _Scan(self.table, plan, driver, direction, group, order)
            for shard in self.table.shards
        }
        found: dict[str, str] = {}  # by primary key: a record moved during the scan, once
        while scans:
            calls = [
                scan.call(shard, 0, scan.still_wanted(want), []) for shard, scan in scans.items()
            ]
            replies = await self._exact(plan, calls)
            for (shard, scan), reply in zip(list(scans.items()), replies):
                *_, out = scan.advance(reply)
                scan.given += len(out)
                for member in out:
                    found[_key_of(member) if order else member] = member
                if scan.finished:
                    del scans[shard]
        return list(found.values())


class _Scan:
    """Where one shard's scan of the driver field stands, between QUERY calls."""

    def __init__(
        self,
        table: ModelTable[Any],
        plan: QueryPlan,
        driver: str,
        direction: str,
        group: str,
        order: str | None = None,
    ) -> None:
        self.table = table
        self.driver = driver
        self.direction = direction
        self.ranges = plan.conditions.get(driver) or _EVERYTHING
        self.conditions = _condition_args(table, plan, exclude=driver)
        self.given_field = table.index_position(order) if order else 0
        self.range = 1
        self.cursor = ""
        self.group = group
        self.finished = False
        self.given = 0
        self.entries: list[Any] = []  # of the last call: pk, entry in the order field...

    @property
    def exhausted(self) -> bool:
        return self.range > len(self.ranges)

    def still_wanted(self, want: int) -> int:
        if not want or self.group not in ("", "*"):
            return 0  # all of them, or the rest of a group of equal values
        return max(want - self.given, 1)

    def call(self, shard: Shard, skip: int, want: int, fields: list[str]) -> Any:
        args: list[Any] = [
            "rows" if fields else "keys",
            self.table.index_position(self.driver),
            self.direction,
            self.range,
            self.cursor,
            skip,
            want,
            self.group,
            SCAN_BUDGET,
            self.given_field,
            len(self.ranges),
            *[bound for span in self.ranges for bound in span],
            *self.conditions,
        ]
        if fields:  # 'rows': it reads records it does not name
            args += (len(fields), *fields)
        return self.table.script_call(QUERY, shard, args, probe=bool(fields))

    def advance(self, reply: list[Any]) -> tuple[int, int, list[Any], list[Any]]:
        """Take in a QUERY reply; what it passed over and gave, its bad keys and output."""
        self.range, cursor, finished, group, passed, given, bad, out, self.entries = reply
        self.cursor = cursor or ""
        self.finished = bool(finished) or self.exhausted
        if group:
            self.group = group
        return int(passed), int(given), bad, out


def _indexed_fields(plan: QueryPlan) -> list[str]:
    """The fields whose indexes a plan uses."""
    fields = list(plan.conditions)
    if plan.order_by and plan.order_by not in plan.conditions:
        fields.append(plan.order_by)
    return fields


def _chunks(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _in_order(plan: QueryPlan, driver: str) -> bool:
    """Whether scanning `driver` gives the order asked: along the order field, or, for the
    primary-key order, along one single value (whose members are sorted by key)."""
    if plan.order_by is not None:
        return plan.order_by == driver
    ranges = plan.conditions.get(driver, [])
    if len(ranges) != 1:
        return False
    low, high = ranges[0]
    return low.startswith("[") and low.endswith("\x00") and high == "(" + after(low[1:])


def _first_sightings(rows: list[Any], width: int, seen: set[str]) -> tuple[list[Any], int]:
    """The rows of records not seen before (and how many were), noting them as seen."""
    kept: list[Any] = []
    for start in range(0, len(rows), width):
        if rows[start] not in seen:
            seen.add(rows[start])
            kept += rows[start : start + width]
    return kept, (len(rows) - len(kept)) // width


def _key_of(member: str) -> str:
    # A member without NUL is a bare primary key: a record missing from the order's index.
    return primary_key_of(member) if "\x00" in member else member


def _placed(
    table: ModelTable[Any],
    members: list[str],
    order: str | None,
    invalid: list[CorruptRecordError] | None,
) -> list[str]:
    """The members that have a place in the order; a record without an entry in the order
    field's index (one that could not be read when the index was built) is reported."""
    if order is None:
        return members
    placed = [member for member in members if "\x00" in member]
    for pk in (member for member in members if "\x00" not in member):
        key = table.keys.record_key(pk)
        problem = f"it has no entry in the index of {order}: run build_indexes() again"
        error = CorruptRecordError(table.model.__name__, key, order, problem)
        if invalid is None:
            raise error
        invalid.append(error)
    return placed


def _sorted(members: list[str], plan: QueryPlan) -> list[str]:
    """Matches in the order asked: by key, or by the order field's value then key."""
    if plan.order_by is None or not plan.descending:
        return sorted(members)  # str order is code point order: the bytes' order in UTF-8
    by_key = sorted(members, key=primary_key_of)
    return sorted(by_key, key=lambda member: member[: member.index("\x00") + 1], reverse=True)


def _condition_args(table: ModelTable[Any], plan: QueryPlan, exclude: str | None) -> list[Any]:
    """The conditions as QUERY reads them: a count, then per field its position, a count of
    ranges and their bounds (`exclude`: the driver, whose ranges the scan keeps already)."""
    conditions = [(name, ranges) for name, ranges in plan.conditions.items() if name != exclude]
    args: list[Any] = [len(conditions)]
    for name, ranges in conditions:
        args += (table.index_position(name), len(ranges))
        args += [bound for span in ranges for bound in span]
    return args
