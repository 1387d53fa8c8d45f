"""pydantic-aioredis: pydantic v2 models stored in Redis hashes, used as an async ORM.

Example:
    ```python
    from pydantic_aioredis import Model, RedisConfig, Store

    class Book(Model):
        _primary_key_field: str = "title"
        title: str
        author: str

    store = Store(name="shop", redis_config=RedisConfig(db=5))
    store.register_model(Book)

    await Book.insert(Book(title="The Hobbit", author="J.R.R. Tolkien"))
    books = await Book.select(ids=["The Hobbit"])
    ```
"""

from ._config import RedisConfig
from ._exceptions import (
    AutoSaveError,
    ConfigurationError,
    ConflictError,
    CorruptRecordError,
    IndexNotReadyError,
    InvalidInputError,
    NotRegisteredError,
    PrimaryKeyError,
    PydanticAioredisError,
    RedisOperationError,
    SerializationError,
    UnmigratedDataError,
    UsageError,
)
from ._indexes import Indexed
from ._model import AutoModel, Model
from ._store import Store

__version__ = "2.0.0.dev0"

__all__ = [
    "AutoModel",
    "AutoSaveError",
    "ConfigurationError",
    "ConflictError",
    "CorruptRecordError",
    "IndexNotReadyError",
    "Indexed",
    "InvalidInputError",
    "Model",
    "NotRegisteredError",
    "PrimaryKeyError",
    "PydanticAioredisError",
    "RedisConfig",
    "RedisOperationError",
    "SerializationError",
    "Store",
    "UnmigratedDataError",
    "UsageError",
    "__version__",
]
