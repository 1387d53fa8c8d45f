"""The query parameters of the CRUD router's list route: filters on indexed fields, and
the order.

For each field of the model marked `Indexed` (say `author`, spelled as responses spell it):

| parameter            | records whose `author`...              | for              |
| -------------------- | -------------------------------------- | ---------------- |
| `author`             | equals the value                       | every type       |
| `author__in`         | equals one of the values, each given   | every type       |
|                      | as a parameter of its own (repeated)   |                  |
| `author__gt`, `__gte`, `__lt`, `__lte` | compares so with the value | ordered types    |
| `author__startswith` | starts with the text                   | str              |

and `order_by` takes `author` or `-author` (descending) for each ordered indexed field.
They are the conditions of `Model.select(where=..., order_by=...)`, ANDed, typed in the
OpenAPI document as the field (its constraints too; `__startswith` as a string). A query
string cannot say None, so no parameter selects None.

A parameter the route does not take, or a single-valued one given twice, is refused (422
at `["query", name]`) rather than ignored: a misspelt filter would otherwise answer every
record.
"""

import inspect
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from fastapi import Query, Request
from pydantic import Strict
from pydantic.fields import FieldInfo

from .._exceptions import ConfigurationError, InvalidInputError
from .._indexes import FieldIndex, Indexed
from .._model import Model, _table_of
from ._crud_input import unprocessable

__all__ = ["PAGE_PARAMETERS", "ListQuery"]

# The list route's own parameters: no filter may take their names.
PAGE_PARAMETERS = ("skip", "limit", "order_by")

_RANGES = {
    "gt": "is greater than this",
    "gte": "is greater than or equal to this",
    "lt": "is less than this",
    "lte": "is less than or equal to this",
}


@dataclass(frozen=True)
class Filter:
    """One filter parameter of the list route.

    Attributes:
        field: The field, as responses spell it: `author`.
        parameter: Its name in the query string: `author__gt`.
        condition: Its key in `select(where=...)`: the field's name and the operator.
        annotation: What FastAPI validates its value as (and the OpenAPI document shows).
        description: For the OpenAPI document.
        repeated: Whether it takes several values (`__in`), each as a parameter.
    """

    field: str
    parameter: str
    condition: str
    annotation: Any
    description: str
    repeated: bool = False


class ListQuery:
    """The filters and orders the list route of one model takes, and how to read them.

    Attributes:
        filters: The filter parameters, field by field.
        orders: `order_by` values (`-author`...) and the order each one asks `select` for.
    """

    def __init__(self, model: type[Model]) -> None:
        self.model = model
        indexes = _table_of(model).indexes
        self.filters = [
            item
            for name, index in indexes.items()
            for item in _filters(name, model.model_fields[name], index)
        ]
        self.orders: dict[str, str] = {}
        for name, index in indexes.items():
            if index.ordered:
                spelled = _spelling(name, model.model_fields[name])
                self.orders |= {spelled: name, f"-{spelled}": f"-{name}"}
        self._check_names()

    def _check_names(self) -> None:
        taken = [item.parameter for item in self.filters if item.parameter in PAGE_PARAMETERS]
        if taken:
            raise ConfigurationError(
                f"{self.model.__name__}: the list route's filter {taken[0]!r} has the name of "
                f"one of its own parameters ({', '.join(PAGE_PARAMETERS)}); give the "
                "indexed field another name or alias"
            )

    @property
    def description(self) -> str:
        """What the list route does with its filters, for the OpenAPI document."""
        text = "A page of records, in primary-key order unless order_by says otherwise."
        if not self.filters:
            return text
        return (
            f"{text} The filters select records by their indexed fields; all of them must "
            "hold. A `__in` filter takes one value per parameter, repeated "
            "(`?field__in=a&field__in=b`). No filter selects None."
        )

    def parameters(self) -> list[inspect.Parameter]:
        """The filters and `order_by`, as the parameters of an endpoint (for FastAPI)."""
        parameters = [
            inspect.Parameter(
                f"filter_{number}",
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[
                    item.annotation, Query(alias=item.parameter, description=item.description)
                ],
            )
            for number, item in enumerate(self.filters)
        ]
        if self.orders:
            values = Literal[tuple(self.orders)]  # type: ignore[valid-type]
            about = "The order of the records: an indexed field, or -field for descending order"
            parameters.append(
                inspect.Parameter(
                    "order_by",
                    inspect.Parameter.KEYWORD_ONLY,
                    default=None,
                    annotation=Annotated[values, Query(description=about)],
                )
            )
        return parameters

    def endpoint(self, default_limit: int, max_limit: int) -> Callable[..., Any]:
        """The list route's endpoint: a page of the records that meet the filters given,
        in the order asked."""

        async def list_records(
            request: Request, skip: int, limit: int, order_by: str | None = None, **filters: Any
        ) -> list[Any]:
            self.refuse_unknown(name for name, _ in request.query_params.multi_items())
            where = self.conditions(filters)
            order = None if order_by is None else self.orders[order_by]
            found = await self.model.select(
                skip=skip, limit=limit, where=where or None, order_by=order
            )
            return found or []

        # FastAPI reads an endpoint's parameters from its signature: the filters are known
        # only now, from the model's indexed fields.
        keyword = inspect.Parameter.KEYWORD_ONLY
        page = [
            inspect.Parameter("request", keyword, annotation=Request),
            inspect.Parameter("skip", keyword, default=0, annotation=Annotated[int, Query(ge=0)]),
            inspect.Parameter(
                "limit",
                keyword,
                default=default_limit,
                annotation=Annotated[int, Query(ge=1, le=max_limit)],
            ),
        ]
        signature = inspect.Signature([*page, *self.parameters()])
        list_records.__signature__ = signature  # type: ignore[attr-defined]
        return list_records

    def conditions(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The `where` of the filters given, from the endpoint's arguments (each checked
        alone, so that a value `select` refuses is a 422 naming its parameter)."""
        where: dict[str, Any] = {}
        for number, item in enumerate(self.filters):
            value = arguments.get(f"filter_{number}")
            if value is None:
                continue
            try:
                _table_of(self.model).plan({item.condition: value}, None)
            except InvalidInputError as exc:
                raise unprocessable(["query", item.parameter], str(exc)) from None
            where[item.condition] = value
        return where

    def refuse_unknown(self, names: Iterable[str]) -> None:
        """Refuse (422) a query string with a parameter the route does not take, or with a
        single-valued parameter given more than once.

        Args:
            names: The names of the query string's parameters, each as often as it comes.
        """
        known = {"skip", "limit", *(item.parameter for item in self.filters)}
        if self.orders:
            known.add("order_by")
        repeated = {item.parameter for item in self.filters if item.repeated}
        for name, count in Counter(names).items():
            if name not in known:
                raise unprocessable(["query", name], self._unknown(name))
            if count > 1 and name not in repeated:
                raise unprocessable(["query", name], f"given {count} times; it takes one value")

    def _unknown(self, name: str) -> str:
        indexed = list(dict.fromkeys(item.field for item in self.filters))
        fields = {_spelling(field, info) for field, info in self.model.model_fields.items()}
        field, _, operator = name.rpartition("__")
        base = name if name in fields else field
        if base not in fields:
            return "not a parameter of this route (skip, limit, order_by, filters); " + _about(
                indexed
            )
        if base not in indexed:
            return f"{base} is not an indexed field, so it cannot filter; " + _about(indexed)
        offered = [item.parameter for item in self.filters if item.field == base]
        return f"no operator {operator!r} for {base}; its filters are " + ", ".join(offered)


def _filters(name: str, info: FieldInfo, index: FieldIndex) -> list[Filter]:
    """The filter parameters of one indexed field."""
    spelled = _spelling(name, info)
    value = _value_type(info)
    filters = [
        Filter(spelled, spelled, name, value, f"Only records whose {spelled} equals this"),
        Filter(
            spelled,
            f"{spelled}__in",
            f"{name}__in",
            list[value],  # type: ignore[valid-type]
            f"Only records whose {spelled} is one of these: repeat the parameter for each",
            repeated=True,
        ),
    ]
    if index.ordered:
        filters += [
            Filter(
                spelled,
                f"{spelled}__{op}",
                f"{name}__{op}",
                value,
                f"Only records whose {spelled} {how}",
            )
            for op, how in _RANGES.items()
        ]
    if index.text:
        about = f"Only records whose {spelled} starts with this text"
        filters.append(Filter(spelled, f"{spelled}__startswith", f"{name}__startswith", str, about))
    return filters


def _spelling(name: str, info: FieldInfo) -> str:
    """How responses spell a field (FastAPI answers by alias)."""
    return info.serialization_alias or info.alias or name


def _value_type(info: FieldInfo) -> Any:
    """A field's type as a query parameter validates it: its constraints, without None (a
    query string cannot say None), without `Indexed` and without strict mode (a query
    string holds text)."""
    return _annotated(_without_none(info.annotation), info.metadata)


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) is Annotated:
        inner, *metadata = get_args(annotation)
        return _annotated(_without_none(inner), metadata)
    arguments = get_args(annotation)
    if type(None) in arguments:
        others = tuple(argument for argument in arguments if argument is not type(None))
        return _without_none(others[0]) if len(others) == 1 else Union[others]  # noqa: UP007
    return annotation


def _annotated(base: Any, metadata: list[Any]) -> Any:
    kept = [item for item in metadata if not isinstance(item, (Indexed, Strict))]
    annotated = (base, *kept)
    return Annotated[annotated] if kept else base


def _about(indexed: list[str]) -> str:
    if not indexed:
        return "the model has no indexed field to filter on"
    return "filters are on the indexed fields: " + ", ".join(indexed)
