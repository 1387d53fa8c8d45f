"""FastAPI integration: `FastAPIModel.select_or_404` and a CRUD router for a model.

Install with the `fastapi` extra: `pip install "pydantic-aioredis[fastapi]"`.

Example:
    ```python
    from fastapi import FastAPI
    from pydantic_aioredis.ext.fastapi import CRUDRouter, FastAPIModel

    class Book(FastAPIModel):
        _primary_key_field: str = "title"
        title: str
        author: str

    store.register_model(Book)
    app = FastAPI()
    app.include_router(CRUDRouter(Book))          # /book/, /book/{title}

    @app.get("/authors/{title}")
    async def author(title: str) -> str:
        (book,) = await Book.select_or_404(ids=[title])
        return book.author
    ```
"""

import functools
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar, overload

from fastapi import APIRouter, Body, HTTPException, Path, Query, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StringConstraints, ValidationError, create_model
from typing_extensions import Self

from .._exceptions import InvalidInputError, SerializationError
from .._model import Model, _table_of

__all__ = ["CRUDRouter", "FastAPIModel"]

# Starlette renamed the constant (..._ENTITY -> ..._CONTENT); the number works everywhere.
_UNPROCESSABLE = 422

M = TypeVar("M", bound=Model)


class FastAPIModel(Model):
    """A `Model` with `select_or_404`, for FastAPI endpoints."""

    @overload
    @classmethod
    async def select_or_404(
        cls,
        columns: None = None,
        ids: Any = None,
        custom_exception: Exception | None = None,
        skip: int | None = None,
        limit: int | None = None,
    ) -> list[Self]: ...

    @overload
    @classmethod
    async def select_or_404(
        cls,
        columns: Sequence[str],
        ids: Any = None,
        custom_exception: Exception | None = None,
        skip: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]: ...

    @classmethod
    async def select_or_404(
        cls,
        columns: Sequence[str] | None = None,
        ids: Any = None,
        custom_exception: Exception | None = None,
        skip: int | None = None,
        limit: int | None = None,
    ) -> list[Self] | list[dict[str, Any]]:
        """Like `select`, but raise a 404 `HTTPException` ("Book not found") when nothing
        matches, instead of returning None.

        Args:
            columns: As for `select`: dicts with only these fields instead of instances.
            ids: As for `select`.
            custom_exception: An exception to raise instead of the 404.
            skip: As for `select`.
            limit: As for `select`.

        Returns:
            The instances found (dicts with `columns`), never an empty list.
        """
        found: list[Self] | list[dict[str, Any]] | None
        if columns is None:
            found = await cls.select(None, ids, skip, limit)
        else:
            found = await cls.select(columns, ids, skip, limit)
        if found is None:
            raise custom_exception or HTTPException(
                status.HTTP_404_NOT_FOUND, f"{cls.__name__} not found"
            )
        return found


class Deleted(BaseModel):
    """How many records a delete removed."""

    deleted: int


class CRUDRouter(APIRouter):
    """Routes that create, read, update and delete the records of a registered model.

    | route                  | does                                   | status codes    |
    | ---------------------- | -------------------------------------- | --------------- |
    | `GET {prefix}/`        | a page (`skip`, `limit` ≤ `max_limit`) | 200             |
    | `GET {prefix}/{pk}`    | one record                             | 200, 404        |
    | `POST {prefix}/`       | create                                 | 201, 409        |
    | `PUT {prefix}/{pk}`    | replace (the body has no key field)    | 200, 404, 422   |
    | `PATCH {prefix}/{pk}`  | change some fields                     | 200, 404, 422   |
    | `DELETE {prefix}/{pk}` | delete one                             | 204, 404        |
    | `DELETE {prefix}/`     | delete all (off unless asked for)      | 200             |

    Request bodies are validated by pydantic (422 with its details). The primary key is
    taken from the path: PUT and PATCH bodies have no key field, so it cannot be changed.

    Args:
        model: A model registered with a store.
        prefix: URL prefix (default: `/` + the model's table name).
        tags: OpenAPI tags (default: the model's name).
        default_limit: Page size when `limit` is not given.
        max_limit: The largest `limit` accepted.
        list_route: False switches `GET {prefix}/` off.
        get_route: False switches `GET {prefix}/{pk}` off.
        create_route: False switches `POST {prefix}/` off.
        replace_route: False switches `PUT {prefix}/{pk}` off.
        update_route: False switches `PATCH {prefix}/{pk}` off.
        delete_one_route: False switches `DELETE {prefix}/{pk}` off.
        delete_all_route: True switches `DELETE {prefix}/` on (off by default).
        **options: Passed on to `APIRouter`.

    Attributes:
        model: The model whose records the routes serve.
        pk_field: The name of its primary key field, the last part of the item routes' path.
        pk_type: The primary key field's annotation, which the path parameter is validated as.
        default_limit: The page size of `GET {prefix}/` without `limit` (at most `max_limit`).
        max_limit: The largest `limit` accepted.
        input_model: The body of `POST`: the model, with a string primary key that may not be
            empty (a URL cannot address the empty key).
        replace_model: The body of `PUT`: every field but the primary key.
        update_model: The body of `PATCH`: every field but the primary key, each optional.
    """

    def __init__(
        self,
        model: type[Model],
        *,
        prefix: str | None = None,
        tags: list[str] | None = None,
        default_limit: int = 50,
        max_limit: int = 1000,
        list_route: bool = True,
        get_route: bool = True,
        create_route: bool = True,
        replace_route: bool = True,
        update_route: bool = True,
        delete_one_route: bool = True,
        delete_all_route: bool = False,
        **options: Any,
    ) -> None:
        table = _table_of(model)  # fails now, clearly, if the model is not registered
        table_name = model._table_name or model.__name__.lower()
        super().__init__(
            prefix=f"/{table_name}" if prefix is None else prefix,
            tags=list(tags) if tags is not None else [model.__name__],
            **options,
        )
        self.model = model
        self.pk_field = table.pk_field
        self.pk_type = model.model_fields[self.pk_field].annotation
        self.default_limit = min(default_limit, max_limit)
        self.max_limit = max_limit
        self.replace_model = _body_model(model, self.pk_field, "Replace", partial=False)
        self.update_model = _body_model(model, self.pk_field, "Update", partial=True)
        self.input_model = _input_model(model, self.pk_field)
        self._methods: dict[str, list[str]] = {}
        # Item routes first: Starlette's route patterns end in `$`, which also matches
        # before a final newline, so `/book/%0A` must meet `/book/{title}` before `/book/`.
        for enabled, add in (
            (get_route, self._add_get),
            (replace_route, self._add_replace),
            (update_route, self._add_update),
            (delete_one_route, self._add_delete_one),
            (list_route, self._add_list),
            (create_route, self._add_create),
            (delete_all_route, self._add_delete_all),
        ):
            if enabled:
                add()
        for path, methods in self._methods.items():
            self._add_method_not_allowed(path, methods)

    def _route(self, path: str, endpoint: Callable[..., Any], method: str, **options: Any) -> None:
        """Add a route whose bad-input errors from the library become 422 responses."""

        @functools.wraps(endpoint)
        async def route(*args: Any, **kwargs: Any) -> Any:
            try:
                return await endpoint(*args, **kwargs)
            except (InvalidInputError, SerializationError) as exc:
                raise _unprocessable(self.pk_field, str(exc)) from None

        responses = options.pop("responses", {})
        if method in ("POST", "PUT", "PATCH"):
            responses[400] = {"description": "The body could not be read"}
        name = f"{endpoint.__name__}_{self.model.__name__}"
        self.add_api_route(path, route, methods=[method], responses=responses, name=name, **options)
        self._methods.setdefault(path, []).append(method)

    def _item_route(
        self, endpoint: Callable[..., Any], method: str, summary: str, **options: Any
    ) -> None:
        """A route on one record, `{prefix}/{pk}`: 404 when there is no such record."""
        options.setdefault("response_model", self.model)
        missing = {404: {"description": f"No such {self.model.__name__}"}}
        self._route(f"/{{{self.pk_field}}}", endpoint, method, summary=summary,
                    responses=missing, **options)  # fmt: skip

    def _add_method_not_allowed(self, path: str, methods: list[str]) -> None:
        # Starlette answers 405 with the methods of the first route on the path only; one
        # route for all the other methods gives the full `Allow` header.
        allow = ", ".join(methods)
        every = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
        # HEAD goes with GET: Starlette answers it on every GET route.
        others = [m for m in every if m not in methods and not (m == "HEAD" and "GET" in methods)]

        async def method_not_allowed() -> Response:
            return JSONResponse(
                {"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": allow}
            )

        if others:
            self.add_api_route(path, method_not_allowed, methods=others, include_in_schema=False)

    def _not_found(self) -> HTTPException:
        return HTTPException(status.HTTP_404_NOT_FOUND, f"{self.model.__name__} not found")

    @property
    def _pk_path(self) -> Any:
        # A path segment cannot be empty: say so in the schema for string keys (a record
        # with the empty key is still listed by `GET /`).
        is_text = isinstance(self.pk_type, type) and issubclass(self.pk_type, str)
        return Annotated[self.pk_type, Path(alias=self.pk_field, min_length=1 if is_text else None)]

    def _add_list(self) -> None:
        model = self.model

        async def list_records(
            skip: Annotated[int, Query(ge=0)] = 0,
            limit: Annotated[int, Query(ge=1, le=self.max_limit)] = self.default_limit,
        ) -> list[Any]:
            return await model.select(skip=skip, limit=limit) or []

        self._route(
            "/",
            list_records,
            "GET",
            response_model=list[model],  # type: ignore[valid-type]
            summary=f"List {model.__name__} records",
        )

    def _add_get(self) -> None:
        model, not_found = self.model, self._not_found

        async def get_record(pk: self._pk_path) -> Any:  # type: ignore[name-defined]
            found = await model.select(ids=[pk])
            if not found:
                raise not_found()
            return found[0]

        self._item_route(get_record, "GET", f"Get one {model.__name__}")

    def _add_create(self) -> None:
        model = self.model

        input_model = self.input_model

        async def create_record(body: Annotated[input_model, Body()]) -> Any:  # type: ignore[valid-type]
            record = _as_model(model, body)
            if not await _table_of(model).create(record):
                raise HTTPException(
                    status.HTTP_409_CONFLICT,
                    f"{model.__name__} {getattr(record, self.pk_field)!r} already exists",
                )
            return record

        self._route(
            "/",
            create_record,
            "POST",
            response_model=model,
            status_code=status.HTTP_201_CREATED,
            responses={409: {"description": f"The {model.__name__} exists already"}},
            summary=f"Create a {model.__name__}",
        )

    def _add_replace(self) -> None:
        model, pk_field, not_found = self.model, self.pk_field, self._not_found
        replace_model = self.replace_model

        async def replace_record(
            pk: self._pk_path,  # type: ignore[name-defined]
            body: Annotated[replace_model, Body()],  # type: ignore[valid-type]
        ) -> Any:
            record = _validate_record(model, {**dict(body), pk_field: pk})
            if not await _table_of(model).replace(record):
                raise not_found()
            return record

        self._item_route(replace_record, "PUT", f"Replace a {model.__name__}")

    def _add_update(self) -> None:
        model, not_found = self.model, self._not_found
        update_model = self.update_model

        async def update_record(
            pk: self._pk_path,  # type: ignore[name-defined]
            changes: Annotated[update_model, Body()],  # type: ignore[valid-type]
        ) -> Any:
            found = await model.select(ids=[pk])
            if not found:
                raise not_found()
            patch: dict[str, Any] = changes.model_dump(exclude_unset=True)  # type: ignore[attr-defined]
            updated = _validate_record(model, {**found[0].model_dump(), **patch})
            if patch and not await _table_of(model).update_fields(updated, patch):
                raise not_found()  # deleted meanwhile
            return updated

        self._item_route(update_record, "PATCH", f"Change fields of a {model.__name__}")

    def _add_delete_one(self) -> None:
        model, not_found = self.model, self._not_found

        async def delete_record(pk: self._pk_path) -> Response:  # type: ignore[name-defined]
            if not await model.delete(ids=[pk]):
                raise not_found()
            return Response(status_code=status.HTTP_204_NO_CONTENT)

        self._item_route(
            delete_record,
            "DELETE",
            f"Delete a {model.__name__}",
            response_model=None,
            status_code=status.HTTP_204_NO_CONTENT,
            response_class=Response,
        )

    def _add_delete_all(self) -> None:
        model = self.model

        async def delete_all_records() -> Deleted:
            return Deleted(deleted=await model.delete())

        self._route(
            "/",
            delete_all_records,
            "DELETE",
            response_model=Deleted,
            summary=f"Delete every {model.__name__}",
        )


def _input_model(model: type[Model], pk_field: str) -> type[Model]:
    """The body of POST and PUT: the model, with a string primary key that is not empty.

    The library stores records under an empty key too, but a URL cannot address one
    (`/book/` is the collection), so the router refuses it, and its schema says so.
    """
    info = model.model_fields[pk_field]
    if not (isinstance(info.annotation, type) and issubclass(info.annotation, str)):
        return model
    field = (Annotated[info.annotation, StringConstraints(min_length=1)], info)
    return create_model(f"{model.__name__}In", __base__=model, **{pk_field: field})  # type: ignore[call-overload, no-any-return]


def _as_model(model: type[M], body: Model) -> M:
    # The body validated as `{Model}In`; the record is a plain instance of the model.
    if isinstance(body, model) and type(body) is model:
        return body
    return model.model_construct(body.model_fields_set, **dict(body))  # type: ignore[return-value]


def _body_model(model: type[Model], pk_field: str, suffix: str, partial: bool) -> type[BaseModel]:
    """A body for PUT (every field but the primary key, as the model declares them) or
    PATCH (the same, each one optional; null only where the model allows None).

    The key comes from the path alone: in a body it is an unknown field, refused. The
    whole record is then validated by the model itself, with its validators.
    """
    fields: dict[str, Any] = {
        name: (info.annotation, None if partial else info)
        for name, info in model.model_fields.items()
        if name != pk_field
    }
    return create_model(f"{model.__name__}{suffix}", __config__={"extra": "forbid"}, **fields)


def _validate_record(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:  # reported like FastAPI's own body errors
        errors = [
            {**error, "loc": ["body", *error["loc"]]}
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise HTTPException(_UNPROCESSABLE, jsonable_encoder(errors)) from None


def _unprocessable(field: str, message: str) -> HTTPException:
    return HTTPException(
        _UNPROCESSABLE,
        [{"type": "value_error", "loc": ["body", field], "msg": message}],
    )
