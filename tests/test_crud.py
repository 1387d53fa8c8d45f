"""The documented API, on real Redis and on the embedded backend."""

from __future__ import annotations

import asyncio
import gc
import uuid
from datetime import date, datetime, timezone

import pytest
import redis
from pydantic import ConfigDict, ValidationInfo, field_validator

from pydantic_aioredis import (
    CorruptRecordError,
    InvalidInputError,
    Model,
    RedisOperationError,
    Store,
)
from tests.keys import key
from tests.models import Book, Library, books
from tests.models_extra import Counter


@pytest.fixture(autouse=True)
def _register(store: Store) -> None:
    store.register_model(Book)
    store.register_model(Library)


async def test_select_on_an_empty_model_returns_none() -> None:
    assert await Book.select() is None
    assert await Book.select(ids=["nothing"]) is None
    assert await Book.select(columns=["author"]) is None


async def test_insert_one_and_select_it_back() -> None:
    book = Book(title="The Hobbit", author="J.R.R. Tolkien", published_on=date(1937, 9, 21))
    assert await Book.insert(book) == 1
    assert await Book.select() == [book]
    assert await Book.select(ids=["The Hobbit"]) == [book]


async def test_insert_many_and_select_all_in_primary_key_order() -> None:
    inserted = books(2_345)  # more than one script call's worth
    assert await Book.insert(list(reversed(inserted))) == 2_345
    assert await Book.select() == inserted
    assert await Book.count() == 2_345


async def test_insert_of_a_primary_key_given_twice_writes_and_counts_its_last_record() -> None:
    first, second = books(2)
    again = first.model_copy(update={"author": "written last"})
    assert await Book.insert([first, second, again]) == 2
    assert await Book.select() == [again, second]


async def test_select_accepts_a_single_id() -> None:
    await Book.insert(books(3))
    found = await Book.select(ids="book-00001")
    assert found is not None
    assert [b.title for b in found] == ["book-00001"]


async def test_select_ids_returns_what_exists_in_the_order_asked() -> None:
    await Book.insert(books(5))
    found = await Book.select(ids=["book-00003", "missing", "book-00001", "book-00003"])
    assert found is not None
    assert [b.title for b in found] == ["book-00003", "book-00001"]


async def test_select_columns_returns_typed_dicts() -> None:
    await Book.insert(Book(title="A", author="B", published_on=date(1999, 2, 3), in_stock=False))
    rows = await Book.select(columns=["published_on", "in_stock", "price"])
    assert rows == [{"published_on": date(1999, 2, 3), "in_stock": False, "price": 9.99}]


async def test_select_columns_with_ids() -> None:
    await Book.insert(books(4))
    rows = await Book.select(columns=["author"], ids=["book-00002"])
    assert rows == [{"author": "author 2"}]


async def test_unknown_column_is_rejected_naming_it() -> None:
    with pytest.raises(InvalidInputError, match="'colour'"):
        await Book.select(columns=["author", "colour"])


@pytest.mark.parametrize(("skip", "limit"), [(0, 10), (5, 3), (1_000, 1_500), (2_990, 50)])
async def test_paging_returns_the_slice_of_the_full_order(skip: int, limit: int) -> None:
    inserted = books(3_000)
    await Book.insert(inserted)
    page = await Book.select(skip=skip, limit=limit)
    assert page == inserted[skip : skip + limit]


async def test_pages_neither_repeat_nor_skip_records() -> None:
    await Book.insert(books(95))
    seen: list[str] = []
    for skip in range(0, 100, 10):
        page = await Book.select(skip=skip, limit=10) or []
        seen += [b.title for b in page]
    assert seen == sorted({b.title for b in books(95)})


async def test_skip_alone_and_limit_alone() -> None:
    inserted = books(20)
    await Book.insert(inserted)
    assert await Book.select(skip=15) == inserted[15:]
    assert await Book.select(limit=4) == inserted[:4]
    assert await Book.select(skip=20) is None


@pytest.mark.parametrize("value", [-1, 1.5, "3"])
async def test_bad_paging_arguments_are_rejected(value: object) -> None:
    with pytest.raises(InvalidInputError, match="skip"):
        await Book.select(skip=value)  # type: ignore[arg-type]


async def test_delete_by_ids_and_all() -> None:
    await Book.insert(books(10))
    assert await Book.delete(ids=["book-00001", "book-00002", "missing"]) == 2
    assert await Book.count() == 8
    assert await Book.delete(ids="book-00003") == 1
    assert await Book.delete() == 7
    assert await Book.select() is None


async def test_delete_all_leaves_other_models_alone() -> None:
    await Book.insert(books(3))
    await Library.insert(Library(name="Grand", address="Hoima"))
    await Book.delete()
    assert await Library.select() == [Library(name="Grand", address="Hoima")]


async def test_save_writes_the_whole_record() -> None:
    book = Book(title="Moby Dick", author="Herman Melvill")
    await book.save()
    book.author = "Herman Melville"  # no automatic saving on a plain Model
    assert (await Book.select(ids=["Moby Dick"]) or [])[0].author == "Herman Melvill"
    await book.save()
    assert await Book.select(ids=["Moby Dick"]) == [book]


async def test_update_block_writes_changed_fields_once_at_the_end() -> None:
    book = Book(title="Moby Dick", author="Herman Melvill", published_on=date(1851, 10, 17))
    await Book.insert(book)
    async with book.update():
        book.author = "Herman Melville"
        book.published_on = date(1851, 10, 18)
    stored = await Book.select(ids=["Moby Dick"])
    assert stored == [book]


async def test_update_on_a_selected_instance() -> None:
    await Book.insert(books(1))
    (book,) = await Book.select() or []
    async with book.update():
        book.price = 1.25
    assert (await Book.select(columns=["price"])) == [{"price": 1.25}]


async def test_update_block_that_raises_writes_nothing() -> None:
    book = Book(title="A", author="B")
    await Book.insert(book)
    with pytest.raises(RuntimeError, match="boom"):  # noqa: PT012
        async with book.update():
            book.author = "C"
            raise RuntimeError("boom")
    assert (await Book.select(columns=["author"])) == [{"author": "B"}]


async def test_a_record_deleted_behind_the_library_drops_out_of_selects(
    raw: redis.Redis,
) -> None:
    await Book.insert(books(3))
    raw.delete(key("book:book-00001"))
    found = await Book.select() or []
    assert [b.title for b in found] == ["book-00000", "book-00002"]
    assert await Book.count() == 2  # the stale index entry was removed


async def test_non_str_primary_key(store: Store) -> None:
    store.register_model(Counter)
    await Counter.insert([Counter(id=i, value=str(i)) for i in (3, 1, 2)])
    assert await Counter.select(ids=[2]) == [Counter(id=2, value="2")]
    assert await Counter.select(ids=["3"]) == [Counter(id=3, value="3")]
    with pytest.raises(InvalidInputError, match=r"Counter\.id"):
        await Counter.select(ids=["x"])


@pytest.mark.onlynoncluster  # on a cluster only the bucket is atomic: test_cluster.py
async def test_a_batch_with_a_key_of_another_type_writes_nothing(raw: redis.Redis) -> None:
    raw.set(key("book:book-00002"), "written by another program")
    with pytest.raises(RedisOperationError, match=r"WRONGTYPE key book:book-00002") as caught:
        await Book.insert(books(5))
    assert isinstance(caught.value.__cause__, redis.ResponseError)
    assert raw.exists(key("book:book-00000"), "book:book-00004", "book:__index") == 0
    assert raw.get(key("book:book-00002")) == "written by another program"


async def test_select_leaves_the_garbage_collector_as_it_found_it(raw: redis.Redis) -> None:
    await Book.insert(books(1_200))
    assert gc.isenabled()
    await asyncio.gather(Book.select(), Book.select(ids=["book-00001"]), Book.select(limit=3))
    assert gc.isenabled()
    raw.hset(key("book:book-01100"), "price", '"cheap"')
    with pytest.raises(CorruptRecordError):
        await Book.select()
    assert gc.isenabled()
    gc.disable()  # the application's own choice is kept
    try:
        await Book.select(limit=5)
        assert not gc.isenabled()
    finally:
        gc.enable()


# Pages of nothing, and pages of ids.


async def test_limit_zero_is_nothing_on_every_backend() -> None:
    await Book.insert(books(5))
    assert await Book.select(limit=0) is None
    assert await Book.select(skip=2, limit=0, columns=["title"]) is None
    assert await Book.select(ids=["book-00001"], limit=0) is None


async def test_skip_and_limit_apply_to_ids_in_the_order_asked() -> None:
    await Book.insert(books(5))
    asked = ["book-00004", "missing", "book-00001", "book-00003", "book-00000"]
    found = await Book.select(ids=asked, skip=1, limit=2) or []
    assert [b.title for b in found] == ["book-00001", "book-00003"]
    rows = await Book.select(columns=["title"], ids=asked, skip=3) or []
    assert [row["title"] for row in rows] == ["book-00000"]


# Columns: the same answers as whole records, or a clear error.


async def test_columns_fill_the_default_of_a_field_missing_from_the_hash(
    raw: redis.Redis,
) -> None:
    await Book.insert(books(2))
    raw.hdel(key("book:book-00001"), "in_stock", "tags")  # fields added to the model later
    rows = await Book.select(columns=["title", "in_stock", "tags"]) or []
    assert rows[1] == {"title": "book-00001", "in_stock": True, "tags": []}
    assert [b.in_stock for b in await Book.select() or []] == [True, True]


async def test_columns_of_a_missing_required_field_name_the_record(raw: redis.Redis) -> None:
    await Book.insert(books(2))
    raw.hdel(key("book:book-00001"), "author")
    with pytest.raises(CorruptRecordError, match=r"author.*missing"):
        await Book.select(columns=["author"])


async def test_no_columns_at_all_is_a_clear_error() -> None:
    await Book.insert(books(2))
    with pytest.raises(InvalidInputError, match=r"columns=\[\]\) names no field"):
        await Book.select(columns=[])


async def test_a_column_whose_validator_reads_other_fields_is_a_clear_error(
    store: Store,
) -> None:
    class Range(Model):
        _primary_key_field: str = "id"
        id: str
        low: int
        high: int

        @field_validator("high")
        @classmethod
        def above_low(cls, value: int, info: ValidationInfo) -> int:
            if value < info.data["low"]:
                raise ValueError("high is below low")
            return value

    store.register_model(Range)
    await Range.insert(Range(id="r", low=1, high=5))
    assert await Range.select(columns=["low"]) == [{"low": 1}]
    with pytest.raises(InvalidInputError, match=r"Range\.high.*whole records"):
        await Range.select(columns=["high"])


# Ids are validated with the primary key's type, then written as stored.


async def test_ids_in_other_forms_find_their_records(store: Store) -> None:
    class Device(Model):
        _primary_key_field: str = "serial"
        serial: uuid.UUID
        name: str = ""

    class Reading(Model):
        model_config = ConfigDict(ser_json_temporal="milliseconds")
        _primary_key_field: str = "taken_at"
        taken_at: datetime
        value: float = 0.0

    class Tag(Model):
        model_config = ConfigDict(str_to_lower=True)
        _primary_key_field: str = "name"
        name: str

    for model in (Device, Reading, Tag):
        store.register_model(model)
    serial = uuid.UUID("6f1c0b8e-7d4c-4b8e-9a3e-0d2f5c1e9b7a")
    await Device.insert(Device(serial=serial))
    moment = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=timezone.utc)
    await Reading.insert(Reading(taken_at=moment))
    await Tag.insert(Tag(name="Fantasy"))
    for form in (serial, str(serial).upper(), serial.hex):
        assert [d.serial for d in await Device.select(ids=[form]) or []] == [serial]
    assert len(await Reading.select(ids=[moment]) or []) == 1
    assert len(await Reading.select(ids=["2024-05-06T07:08:09.123Z"]) or []) == 1
    assert [t.name for t in await Tag.select(ids="FANTASY") or []] == ["fantasy"]
    assert await Device.delete(ids=[str(serial).upper()]) == 1


async def test_integer_keys_come_in_the_stored_keys_order(store: Store) -> None:
    # Primary-key order is the order of the stored keys' text, as docs/serialization.md says.
    store.register_model(Counter)
    await Counter.insert([Counter(id=i, value="") for i in (-5, 1, 10, 100, 2)])
    assert [c.id for c in await Counter.select() or []] == [-5, 1, 10, 100, 2]


async def test_the_collector_is_never_left_off_across_awaits() -> None:
    await Book.insert(books(3_000))
    samples: list[bool] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            samples.append(gc.isenabled())  # what any other task sees when it runs
            await asyncio.sleep(0)

    async def select_loop() -> None:
        for _ in range(3):
            await Book.select()

    sampler = asyncio.create_task(sample())
    await asyncio.gather(select_loop(), select_loop())
    done.set()
    await sampler
    assert len(samples) > 20
    assert all(samples)
