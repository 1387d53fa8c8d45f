"""A state-machine fuzz test: random sequences of insert, save, assignment, update() and
delete, run against the library and against a plain dict of the expected records; after
every step a select must agree with the dict."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from pydantic_aioredis import ConflictError, Model, RedisConfig, Store
from tests.keys import register_alone

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

        def run(self, coroutine: Any) -> Any:
            return self.loop.run_until_complete(coroutine)

        def teardown(self) -> None:
            self.run(Item.delete())
            self.run(self.store.close())
            self.loop.close()

        @rule(title=TITLES, author=AUTHORS, copies=COPIES, note=st.none() | AUTHORS)
        def insert(self, title: str, author: str, copies: int, note: str | None) -> None:
            item = Item(title=title, author=author, copies=copies, note=note)
            self.run(Item.insert(item))
            self.expected[title] = item.model_dump()
            self.objects[title] = item

        @rule(titles=st.lists(TITLES, max_size=4, unique=True), author=AUTHORS)
        def insert_many(self, titles: list[str], author: str) -> None:
            items = [Item(title=title, author=author) for title in titles]
            self.run(Item.insert(items))
            for item in items:
                self.expected[item.title] = item.model_dump()
                self.objects[item.title] = item

        @rule(title=TITLES, copies=COPIES)
        def save(self, title: str, copies: int) -> None:
            item = self.objects.get(title) or Item(title=title)
            item.set_auto_sync(False)
            item.copies = copies
            item.set_auto_sync(True)
            self.run(item.save())
            self.expected[title] = item.model_dump()
            self.objects[title] = item

        def _changed(self, item: Item, **changes: Any) -> None:
            # A field update applies where the record exists; a record that is gone (or
            # was never written) stays gone.
            if item.title in self.expected:
                self.expected[item.title].update(changes)

        @rule(title=TITLES, author=AUTHORS)
        def assign(self, title: str, author: str) -> None:
            item = self.objects.get(title)
            if item is None:
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

            differs = (item.copies, item.note) != (copies, note)
            if differs and item.title not in self.expected:
                with pytest.raises(ConflictError, match="no longer exists"):
                    self.run(change())
            else:
                self.run(change())
            self._changed(item, copies=copies, note=note)

        @rule(titles=st.lists(TITLES, max_size=3))
        def delete(self, titles: list[str]) -> None:
            deleted = self.run(Item.delete(ids=titles))
            assert deleted == len(set(titles) & set(self.expected))
            for title in titles:
                self.expected.pop(title, None)

        @rule()
        def delete_all(self) -> None:
            assert self.run(Item.delete()) == len(self.expected)
            self.expected.clear()

        @invariant()
        def agrees(self) -> None:
            found = self.run(Item.select()) or []
            assert [item.model_dump() for item in found] == [
                self.expected[title] for title in sorted(self.expected)
            ]
            assert self.run(Item.count()) == len(self.expected)

        @invariant()
        def pages_agree(self) -> None:
            titles = sorted(self.expected)
            page = self.run(Item.select(columns=["title"], skip=1, limit=2)) or []
            assert [row["title"] for row in page] == titles[1:3]

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        ),
    )
