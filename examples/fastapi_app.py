"""A FastAPI app serving Book records, listed by author or date, and Stock records whose
writes check their version: `uvicorn examples.fastapi_app:app`.

It keeps its data in REDIS_URL (e.g. redis://localhost:6379/5) when that is set, and in the
embedded in-memory backend otherwise.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated

from fastapi import FastAPI

from pydantic_aioredis import Indexed, RedisConfig, Store
from pydantic_aioredis.ext.fastapi import CRUDRouter, FastAPIModel


class Book(FastAPIModel):
    _primary_key_field: str = "title"
    title: str
    author: Annotated[str, Indexed()]
    published_on: Annotated[date | None, Indexed()] = None
    in_stock: bool = True


store = Store(
    name="books", redis_config=RedisConfig.from_url(os.environ.get("REDIS_URL", "memory://"))
)
store.register_model(Book)


class Stock(FastAPIModel):
    """Copies in stock: two clerks may change it at once, so writes check its version."""

    _primary_key_field: str = "title"
    _version_field: str = "version"
    title: str
    copies: int = 0
    version: int = 0


store.register_model(Stock)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await store.close()


app = FastAPI(title="Books", lifespan=lifespan)
# GET/POST /book/, GET/PUT/PATCH/DELETE /book/{title}; the indexed fields filter and order
# the list: GET /book/?author=Charles%20Dickens&order_by=-published_on
app.include_router(CRUDRouter(Book, max_limit=100))
# The same for /stock/; PUT and PATCH take If-Match (the ETag of GET) or the version.
app.include_router(CRUDRouter(Stock, max_limit=100))


@app.get("/authors/{title}", responses={404: {"description": "No such book"}})
async def author_of(title: str) -> str:
    """The author of one book; 404 "Book not found" when there is no such book."""
    (book,) = await Book.select_or_404(ids=[title])
    return book.author
