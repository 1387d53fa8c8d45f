"""Types of the public API's arguments.

`Model.select` and `Model.delete` take one primary key or several; these aliases say so to a
type checker, instead of `Any`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import TypeAlias
from uuid import UUID

__all__ = ["Ids", "PrimaryKey"]

# The value types a primary key field commonly has (`datetime` is a `date`, `bool` an `int`,
# `StrEnum` and `IntEnum` are `Enum`s). At run time any value the field validates works;
# `typing.cast` one of another type.
PrimaryKey: TypeAlias = str | int | float | Decimal | UUID | date | time | timedelta | Enum | bytes

# One primary key, or any iterable of them (a str or bytes value is always one key).
Ids: TypeAlias = PrimaryKey | Iterable[PrimaryKey]
