import asyncio
import os
from datetime import date

from pydantic_aioredis import Model, RedisConfig, Store


# Models are pydantic models; the class options start with an underscore.
class Book(Model):
    _primary_key_field: str = "title"
    title: str
    author: str
    published_on: date
    in_stock: bool = True


# There are no relationships between models.
class Library(Model):
    _primary_key_field: str = "name"  # required
    name: str
    address: str


# REDIS_URL, e.g. redis://localhost:6379/5; without it, the embedded in-memory backend.
config = RedisConfig.from_url(os.environ.get("REDIS_URL", "memory://"))
store = Store(name="some_name", redis_config=config, life_span_in_seconds=3600)
store.register_model(Book)
store.register_model(Library)

books = [
    Book(
        title="Oliver Twist",
        author="Charles Dickens",
        published_on=date(1838, 4, 1),
        in_stock=False,
    ),
    Book(title="Great Expectations", author="Charles Dickens", published_on=date(1861, 8, 1)),
    Book(
        title="Jane Eyre",
        author="Charlotte Bronte",
        published_on=date(1847, 10, 16),
        in_stock=False,
    ),
    Book(title="Wuthering Heights", author="Emily Bronte", published_on=date(1847, 12, 1)),
]
libraries = [
    Library(name="The Grand Library", address="Kinogozi, Hoima, Uganda"),
    Library(name="Christian Library", address="Buhimba, Hoima, Uganda"),
]


async def work_with_orm() -> None:
    async with store:  # closes the connections at the end
        # One round trip for each list.
        await Book.insert(books)
        await Library.insert(libraries)

        # All books, as Book instances, in primary-key order.
        all_books = await Book.select()
        print(all_books)

        # Some books, by primary key.
        some_books = await Book.select(ids=["Oliver Twist", "Jane Eyre"])
        print(some_books)

        # Some columns: dicts, with values typed as the fields declare.
        books_with_few_fields = await Book.select(columns=["author", "in_stock"])
        print(books_with_few_fields)  # [{'author': 'Charles Dickens', 'in_stock': True}, ...]

        # A page of two, after the first one.
        print(await Book.select(skip=1, limit=2))

        this_book = Book(
            title="Moby Dick", author="Herman Melvill", published_on=date(1851, 10, 17)
        )
        await Book.insert(this_book)
        # Oops, a typo and a wrong date: fix both, written together when the block ends.
        async with this_book.update():
            this_book.author = "Herman Melville"
            this_book.published_on = date(1851, 10, 18)
        this_book_from_redis = await Book.select(ids=["Moby Dick"])
        assert this_book_from_redis is not None
        assert this_book_from_redis[0].author == "Herman Melville"
        assert this_book_from_redis[0].published_on == date(1851, 10, 18)

        # Delete some records, then all of a model.
        await Library.delete(ids=["The Grand Library"])
        print(await Library.select())
        print("deleted", await Book.delete(), "books")


if __name__ == "__main__":
    asyncio.run(work_with_orm())
