"""The documented API, on real Redis and on the embedded backend."""

from __future__ import annotations

import asyncio
import gc
from datetime import date

import pytest
import redis

from pydantic_aioredis import CorruptRecordError, InvalidInputError, RedisOperationError, Store
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
