"""FastAPI integration: `FastAPIModel.select_or_404` and a CRUD router for a model.

Install with the `fastapi` extra: `pip install "pydantic-aioredis[fastapi]"`. Without it,
importing this module raises `MissingExtraError`, a `ModuleNotFoundError` that says so.

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
from typing import Annotated, Any, overload

from typing_extensions import Self

from .._exceptions import (
    ConfigurationError,
    IndexNotReadyError,
    InvalidInputError,
    SerializationError,
    UnmigratedDataError,
)
from .._model import Model, _table_of
from .._types import Ids


class MissingExtraError(ConfigurationError, ModuleNotFoundError):
    """FastAPI is not installed: `pip install 'pydantic-aioredis[fastapi]'`.

    A `ModuleNotFoundError` (so an `ImportError`), and a `ConfigurationError` of the library.
    """


try:
    from fastapi import (
        APIRouter,
        Body,
        Header,
        HTTPException,
        Path,
        Response,
        status,
    )
    from fastapi.responses import JSONResponse
    from fastapi.routing import APIRoute
    from pydantic import BaseModel

    from ._crud_filters import ListQuery
    from ._crud_input import (
        KEY_CONVERTOR,
        as_model,
        check_key,
        differs,
        input_model,
        patched_record,
        printable_route,
        replace_model,
        replaced_record,
        unprocessable,
        update_model,
    )
    from ._crud_versions import IF_MATCH_FAILS, RecordVersions, check_unversioned
except ModuleNotFoundError as exc:
    if (exc.name or "").partition(".")[0] not in ("fastapi", "starlette"):
        raise
    missing = MissingExtraError(
        "pydantic_aioredis.ext.fastapi needs FastAPI: pip install 'pydantic-aioredis[fastapi]'"
    )
    missing.name = exc.name
    raise missing from exc

__all__ = ["CRUDRouter", "FastAPIModel"]


class FastAPIModel(Model):
    """A `Model` with `select_or_404`, for FastAPI endpoints."""

    @overload
    @classmethod
    async def select_or_404(
        cls,
        columns: None = None,
        ids: Ids | None = None,
        custom_exception: Exception | None = None,
        skip: int | None = None,
        limit: int | None = None,
    ) -> list[Self]: ...

    @overload
    @classmethod
    async def select_or_404(
        cls,
        columns: Sequence[str],
        ids: Ids | None = None,
        custom_exception: Exception | None = None,
        skip: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]: ...

    @classmethod
    async def select_or_404(
        cls,
        columns: Sequence[str] | None = None,
        ids: Ids | None = None,
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


# The 503 answers: the detail (the library's error) says what to run.
_UNMIGRATED = "The records are still in the pydantic-aioredis 1.4 layout: migrate them"
_NOT_READY = (
    "An index that the filters or the order need is not built yet (build_indexes()), or "
    "the records are still in the pydantic-aioredis 1.4 layout"
)


class Deleted(BaseModel):
    """How many records a delete removed."""

    deleted: int


class CRUDRouter(APIRouter):
    """Routes that create, read, update and delete the records of a registered model.

    | route                  | does                              | status codes                  |
    | ---------------------- | --------------------------------- | ----------------------------- |
    | `GET {prefix}/`        | a page (`limit` ≤ `max_limit`),   | 200, 422                      |
    |                        | filtered and ordered              |                               |
    | `GET {prefix}/{pk}`    | one record                        | 200, 404                      |
    | `POST {prefix}/`       | create                            | 201, 409, 422                 |
    | `PUT {prefix}/{pk}`    | replace                           | 200, 404, 412, 422 (409, 428) |
    | `PATCH {prefix}/{pk}`  | change some fields                | 200, 404, 412, 422 (409, 428) |
    | `DELETE {prefix}/{pk}` | delete one                        | 204, 404, 412                 |
    | `DELETE {prefix}/`     | delete all (off unless asked for) | 200                           |

    Request bodies are validated by pydantic (422 with its details). The primary key is
    taken from the path, which holds the rest of the URL (`/book/a/b` is the record `a/b`):
    a key in a PUT or PATCH body must be the same, so it cannot be changed. A PATCH writes
    the record whole, as validated, and nothing if it equals the stored one.

    The list takes the model's indexed fields as filters and orders:
    `GET /book/?author=Jane%20Austen&published_on__gte=1811-01-01&order_by=-published_on`
    (operators `__in`, repeated, `__gt`, `__gte`, `__lt`, `__lte`, `__startswith`, as for
    `select(where=...)`); an unknown or invalid parameter is 422, an index not built yet
    503. Every route answers 503 while the model's records are in the 1.4 layout.

    For a model with a `_version_field`, GET, POST, PUT and PATCH answer the record's
    version as an `ETag`; PUT and PATCH write only if the version they name (in an
    `If-Match` header, or in the body) is the stored one, and move the record to the next
    version atomically: 412 for a failed If-Match, 409 for a stale version in the body,
    428 when neither is sent. Records of other models have no ETag: PUT, PATCH and DELETE
    refuse an If-Match other than `*` (412). See docs/fastapi.md.

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

    Raises:
        NotRegisteredError: The model is not registered with a store.
        ConfigurationError: An indexed field's filter would have the name of one of the
            list route's own parameters (`skip`, `limit`, `order_by`).

    Attributes:
        model: The model whose records the routes serve.
        pk_field: The name of its primary key field, the last part of the item routes' path.
        pk_alias: How request bodies spell the primary key field (its alias, if it has one).
        pk_type: The primary key field's annotation, which the path parameter is validated as.
        default_limit: The page size of `GET {prefix}/` without `limit` (at most `max_limit`).
        max_limit: The largest `limit` accepted.
        input_model: The body of `POST`: the model, with a string primary key that may not be
            empty (a URL cannot address the empty key), and a version that is not negative.
        replace_model: The body of `PUT`: every field but the primary key.
        update_model: The body of `PATCH`: every field but the primary key, each optional.
        list_query: The filters and orders the list route takes (from the indexed fields).
        versions: For a model with a `_version_field`, how the routes check and answer
            versions (ETag, If-Match, the version in the body); None for other models.
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
            route_class=printable_route(options.pop("route_class", APIRoute)),
            **options,
        )
        self.model = model
        self.pk_field = table.pk_field
        self.pk_type = model.model_fields[self.pk_field].annotation
        self.pk_alias = model.model_fields[self.pk_field].alias or self.pk_field
        version_field = model._version_field
        self.versions = RecordVersions(model, version_field) if version_field else None
        self.default_limit = min(default_limit, max_limit)
        self.max_limit = max_limit
        self.replace_model = replace_model(model, self.pk_field, version_field)
        self.update_model = update_model(model, self.pk_field, version_field)
        self.input_model = input_model(model, self.pk_field, version_field)
        self.list_query = ListQuery(model)
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

    def _route(
        self, path: str, endpoint: Callable[..., Any], method: str, key_in: str, **options: Any
    ) -> None:
        """Add a route whose bad-input errors from the library become 422 responses (a key
        it refuses, in the path or the body (`key_in`), a value it cannot store, a query it
        cannot run), and whose data not ready to use (an index to build, records to migrate
        from 1.4) is a 503 that says what to do."""
        key_name = {"path": self.pk_field, "body": self.pk_alias}.get(key_in)
        where = [key_in, key_name] if key_name else [key_in]

        @functools.wraps(endpoint)
        async def route(*args: Any, **kwargs: Any) -> Any:
            try:
                return await endpoint(*args, **kwargs)
            except InvalidInputError as exc:
                raise unprocessable(where, str(exc)) from None
            except SerializationError as exc:  # it names the field
                raise unprocessable(["body"], str(exc)) from None
            except (IndexNotReadyError, UnmigratedDataError) as exc:  # they say what to run
                raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None

        responses = options.pop("responses", {})
        if method in ("POST", "PUT", "PATCH"):
            responses[400] = {"description": "The body could not be read"}
        responses.setdefault(503, {"description": _UNMIGRATED})
        name = f"{endpoint.__name__}_{self.model.__name__}"
        self.add_api_route(path, route, methods=[method], responses=responses, name=name, **options)
        self._methods.setdefault(path, []).append(method)

    def _item_route(
        self, endpoint: Callable[..., Any], method: str, summary: str, **options: Any
    ) -> None:
        """A route on one record, `{prefix}/{pk}`: 404 when there is no such record."""
        options.setdefault("response_model", self.model)
        responses = {404: {"description": f"No such {self.model.__name__}"}}
        responses.update(options.pop("responses", {}))
        path = f"/{{{self.pk_field}:{KEY_CONVERTOR}}}"
        self._route(path, endpoint, method, "path", summary=summary, responses=responses, **options)

    def _versioned_responses(
        self, status_code: int, checked: bool
    ) -> dict[int | str, dict[str, Any]]:
        """The ETag of the record answered with `status_code`, and the answers of the
        version checks where the route makes them (412 for If-Match on any model)."""
        if self.versions:
            return self.versions.responses(status_code, checked)
        return dict(IF_MATCH_FAILS) if checked else {}

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

    @property
    def _if_match(self) -> Any:
        if self.versions:
            about = 'The ETag that GET answered ("3"): only if the record is at that version'
        else:
            about = "These records have no ETag: only * (the record exists) can hold"
        return Annotated[str | None, Header(alias="If-Match", description=about)]

    def _add_list(self) -> None:
        model = self.model
        self._route(
            "/",
            self.list_query.endpoint(self.default_limit, self.max_limit),
            "GET",
            "query",
            response_model=list[model],  # type: ignore[valid-type]
            summary=f"List {model.__name__} records",
            description=self.list_query.description,
            responses={503: {"description": _NOT_READY}},
        )

    async def _read(self, pk: Any) -> Any:
        found = await self.model.select(ids=[pk])
        if not found:
            raise self._not_found()
        return found[0]

    def _add_get(self) -> None:
        versions = self.versions

        async def get_record(pk: self._pk_path, response: Response) -> Any:  # type: ignore[name-defined]
            record = await self._read(pk)
            if versions:
                versions.tag(record, response)
            return record

        self._item_route(
            get_record,
            "GET",
            f"Get one {self.model.__name__}",
            responses=self._versioned_responses(200, checked=False),
        )

    def _add_create(self) -> None:
        model, versions, body_model = self.model, self.versions, self.input_model

        async def create_record(
            body: Annotated[body_model, Body()],  # type: ignore[valid-type]
            response: Response,
        ) -> Any:
            record = as_model(model, body)
            if versions:
                record = versions.created(record)
            if not await _table_of(model).create(record):
                raise HTTPException(
                    status.HTTP_409_CONFLICT,
                    f"{model.__name__} {getattr(record, self.pk_field)!r} already exists",
                )
            if versions:
                versions.tag(record, response)
            return record

        responses: dict[int | str, dict[str, Any]] = {
            409: {"description": f"The {model.__name__} exists already"}
        }
        self._route(
            "/",
            create_record,
            "POST",
            "body",
            response_model=model,
            status_code=status.HTTP_201_CREATED,
            responses={**responses, **self._versioned_responses(201, checked=False)},
            summary=f"Create a {model.__name__}",
        )

    def _add_replace(self) -> None:
        pk_field, versions, body_model = self.pk_field, self.versions, self.replace_model

        async def replace_record(
            pk: self._pk_path,  # type: ignore[name-defined]
            body: Annotated[body_model, Body()],  # type: ignore[valid-type]
            response: Response,
            if_match: self._if_match = None,  # type: ignore[name-defined]
        ) -> Any:
            check_key(body, pk_field, pk)
            if versions is None:
                return await self._replace(pk, body, if_match)
            record = await self._replace_versioned(versions, pk, body, if_match)
            versions.tag(record, response)
            return record

        self._item_route(
            replace_record,
            "PUT",
            f"Replace a {self.model.__name__}",
            responses=self._versioned_responses(200, checked=True),
        )

    async def _replace(self, pk: Any, body: BaseModel, if_match: str | None) -> Model:
        check_unversioned(self.model, if_match)
        record = replaced_record(self.model, body, {self.pk_field: pk})
        if not await _table_of(self.model).replace(record):
            raise self._not_found()
        return record

    async def _replace_versioned(
        self, versions: RecordVersions, pk: Any, body: BaseModel, if_match: str | None
    ) -> Model:
        stored = await versions.stored(pk)
        if stored is None:
            raise self._not_found()
        record = replaced_record(self.model, body, {self.pk_field: pk, versions.field: stored})
        versions.check(pk, stored, if_match, versions.sent(body))
        await versions.save(record, pk, if_match)
        return record

    def _add_update(self) -> None:
        pk_field, versions, body_model = self.pk_field, self.versions, self.update_model

        async def update_record(
            pk: self._pk_path,  # type: ignore[name-defined]
            changes: Annotated[body_model, Body()],  # type: ignore[valid-type]
            response: Response,
            if_match: self._if_match = None,  # type: ignore[name-defined]
        ) -> Any:
            check_key(changes, pk_field, pk)
            if versions is None:
                return await self._update(pk, changes, if_match)
            record = await self._update_versioned(versions, pk, changes, if_match)
            versions.tag(record, response)
            return record

        self._item_route(
            update_record,
            "PATCH",
            f"Change fields of a {self.model.__name__}",
            responses=self._versioned_responses(200, checked=True),
        )

    async def _update(self, pk: Any, changes: BaseModel, if_match: str | None) -> Model:
        check_unversioned(self.model, if_match)
        stored = await self._read(pk)
        updated = patched_record(self.model, stored, changes, {self.pk_field: pk})
        # Written whole, as it was validated: writing only the fields sent would combine
        # two concurrent PATCHes into a record that neither validated. The last one wins.
        if differs(stored, updated) and not await _table_of(self.model).replace(updated):
            raise self._not_found()  # deleted meanwhile
        return updated

    async def _update_versioned(
        self, versions: RecordVersions, pk: Any, changes: BaseModel, if_match: str | None
    ) -> Model:
        stored = await self._read(pk)
        version = getattr(stored, versions.field)
        fixed = {self.pk_field: pk, versions.field: version}
        updated = patched_record(self.model, stored, changes, fixed)
        versions.check(pk, version, if_match, versions.sent(changes))
        if differs(stored, updated):  # a PATCH that changes nothing keeps the version
            await versions.save(updated, pk, if_match)
        return updated

    def _add_delete_one(self) -> None:
        model, versions, not_found = self.model, self.versions, self._not_found

        async def delete_record(
            pk: self._pk_path,  # type: ignore[name-defined]
            if_match: self._if_match = None,  # type: ignore[name-defined]
        ) -> Response:
            if versions and if_match is not None:
                await versions.check_delete(pk, if_match)
            elif not versions:
                check_unversioned(model, if_match)
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
            responses=dict(IF_MATCH_FAILS),
        )

    def _add_delete_all(self) -> None:
        model = self.model

        async def delete_all_records() -> Deleted:
            return Deleted(deleted=await model.delete())

        self._route(
            "/",
            delete_all_records,
            "DELETE",
            "body",
            response_model=Deleted,
            summary=f"Delete every {model.__name__}",
        )
