"""A state-machine fuzz test: random sequences of insert, save, assignment, update() and
delete, run against the library and against a plain dict of the expected records; after
every step a select must agree with the dict.

Hostile steps mix in what users and other programs do: records that expire unread and are
written again, a key of another type left where a record would go, text UTF-8 cannot carry,
and bytes that are not UTF-8 written into a record. (Calls that redis-py sends twice after a
timeout are tested in tests/test_retries.py, which stalls a server of its own.)"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from pydantic_aioredis import (
    ConflictError,
    CorruptRecordError,
    Model,
    RedisConfig,
    RedisOperationError,
    SerializationError,
    Store,
)
from tests.keys import key, register_alone

TITLES = st.sampled_from(["a", "b", "c", "d:x", "e *?", ""])
AUTHORS = st.text(max_size=5)
COPIES = st.integers(-3, 3)


class Item(Model):
    _primary_key_field: str = "title"
    _auto_sync: bool = True  # assignments save themselves; construction does not
    title: str
    author: str = ""
    copies: int = 0
    note: str | None = None


def test_the_store_agrees_with_a_dict(config: RedisConfig) -> None:
    class Machine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.store = Store(name="fuzz", redis_config=config)
            register_alone(self.store, Item)
            self.run(Item.delete())
            self.expected: dict[str, dict[str, Any]] = {}
            self.objects: dict[str, Item] = {}  # the instance each title was last saved from
            self.raw = self.store.sync_client()
            self.cluster = config.cluster
            self.junk: set[str] = set()  # titles whose key another program filled
            self.spoiled: set[str] = set()  # records whose note holds bytes that are not UTF-8

        def run(self, coroutine: Any) -> Any:
            return self.loop.run_until_complete(coroutine)

        def teardown(self) -> None:
            self.store.pending.discard()
            for title in self.junk:
                self.raw.delete(key(f"item:{title}"))
            self.run(Item.delete())
            self.run(self.store.close())
            self.loop.close()

        def _written(self, item: Item) -> None:
            self.expected[item.title] = item.model_dump()
            self.objects[item.title] = item
            self.spoiled.discard(item.title)

        @rule(title=TITLES, author=AUTHORS, copies=COPIES, note=st.none() | AUTHORS)
        def insert(self, title: str, author: str, copies: int, note: str | None) -> None:
            item = Item(title=title, author=author, copies=copies, note=note)
            if title in self.junk:
                with pytest.raises(RedisOperationError, match="WRONGTYPE"):
                    self.run(Item.insert(item))
                return
            self.run(Item.insert(item))
            self._written(item)

        @rule(titles=st.lists(TITLES, max_size=4, unique=True), author=AUTHORS)
        def insert_many(self, titles: list[str], author: str) -> None:
            items = [Item(title=title, author=author) for title in titles]
            if self.junk & set(titles) and not self.cluster:
                with pytest.raises(RedisOperationError, match="WRONGTYPE"):
                    self.run(Item.insert(items))  # one call, refused whole
                return
            items = [item for item in items if item.title not in self.junk]
            self.run(Item.insert(items))
            for item in items:
                self._written(item)

        @rule(title=TITLES, copies=COPIES)
        def save(self, title: str, copies: int) -> None:
            item = self.objects.get(title) or Item(title=title)
            item.set_auto_sync(False)
            item.copies = copies
            item.set_auto_sync(True)
            if title in self.junk:
                with pytest.raises(RedisOperationError, match="WRONGTYPE"):
                    self.run(item.save())
                return
            self.run(item.save())
            self._written(item)

        def _changed(self, item: Item, **changes: Any) -> None:
            # A field update applies where the record exists; a record that is gone (or
            # was never written) stays gone.
            if item.title in self.expected:
                self.expected[item.title].update(changes)
                if "note" in changes:
                    self.spoiled.discard(item.title)

        @rule(title=TITLES, author=AUTHORS)
        def assign(self, title: str, author: str) -> None:
            item = self.objects.get(title)
            if item is None:
                return
            if title in self.junk:
                # Sent at once outside a loop: the key holds another type, never a record.
                with pytest.raises(RedisOperationError, match="WRONGTYPE"):
                    item.author = author
                return
            item.author = author  # queued; the next library call sends it
            self._changed(item, author=author)

        @rule(title=TITLES, copies=COPIES, note=st.none() | AUTHORS)
        def update_block(self, title: str, copies: int, note: str | None) -> None:
            item = self.objects.get(title)
            if item is None:
                return

            async def change() -> None:
                async with item.update():
                    item.copies = copies
                    item.note = note

            # update() writes the fields that differ from the instance's own values when
            # the block began: the others are left as Redis has them.
            changes = {
                name: value
                for name, value in (("copies", copies), ("note", note))
                if getattr(item, name) != value
            }
            if changes and title in self.junk:
                with pytest.raises(RedisOperationError, match="WRONGTYPE"):
                    self.run(change())
            elif changes and item.title not in self.expected:
                with pytest.raises(ConflictError, match="no longer exists"):
                    self.run(change())
            else:
                self.run(change())
            self._changed(item, **changes)

        @rule(titles=st.lists(TITLES, max_size=3))
        def delete(self, titles: list[str]) -> None:
            deleted = self.run(Item.delete(ids=titles))
            # A key another program filled is deleted too: it is where the record would be.
            assert deleted == len(set(titles) & (set(self.expected) | self.junk))
            for title in titles:
                self.expected.pop(title, None)
                self.spoiled.discard(title)
                self.junk.discard(title)

        @rule()
        def delete_all(self) -> None:
            assert self.run(Item.delete()) == len(self.expected)
            self.expected.clear()
            self.spoiled.clear()

        # -- hostile steps ------------------------------------------------------------

        @rule(title=TITLES, author=AUTHORS)
        def expire_then_write_again(self, title: str, author: str) -> None:
            if title in self.junk:
                return
            self.run(Item.insert(Item(title=title), life_span_seconds=0.001))
            time.sleep(0.005)  # expired, and nobody read it
            self.expected.pop(title, None)
            self.spoiled.discard(title)
            item = Item(title=title, author=author)
            self.run(Item.insert(item))  # permanent: the old expiry must not take it
            self._written(item)

        @rule(title=TITLES)
        def another_program_takes_a_key(self, title: str) -> None:
            if title in self.expected or title in self.junk:
                return
            self.raw.set(key(f"item:{title}"), "not a record")
            self.junk.add(title)

        @rule(title=TITLES)
        def assign_text_utf8_cannot_carry(self, title: str) -> None:
            item = self.objects.get(title)
            if item is None:
                return
            before = item.author
            # Outside a loop (as here) the write is sent at once, so the assignment raises;
            # inside one, the next library call would. Either way once, then never again.
            with pytest.raises(SerializationError, match=re.escape(f"Item {title!r}")):
                item.author = "bad \ud800"
            self.run(Item.count())
            item.set_auto_sync(False)
            item.author = before
            item.set_auto_sync(True)

        @rule(title=TITLES)
        def another_program_writes_bytes(self, title: str) -> None:
            if title not in self.expected:
                return
            self.raw.hset(key(f"item:{title}"), "note", b"\xff\xfe not text")
            self.spoiled.add(title)

        # -- what must hold after every step -----------------------------------------

        @invariant()
        def agrees(self) -> None:
            problems: list[CorruptRecordError] = []
            found = self.run(Item.select(invalid=problems)) or []
            good = sorted(set(self.expected) - self.spoiled)
            assert [item.model_dump() for item in found] == [self.expected[t] for t in good]
            assert sorted(p.key for p in problems) == sorted(key(f"item:{t}") for t in self.spoiled)
            if self.spoiled:
                with pytest.raises(CorruptRecordError, match="not UTF-8"):
                    self.run(Item.select())
            assert self.run(Item.count()) == len(self.expected)

        @invariant()
        def pages_agree(self) -> None:
            titles = sorted(self.expected)
            page = self.run(Item.select(columns=["title"], skip=1, limit=2)) or []
            assert [row["title"] for row in page] == titles[1:3]

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=60,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        ),
    )
