"""What the CRUD router takes in: the key in the path, the bodies, the records built
from them.

The key is the rest of the path (`/book/a/b` is the record `a/b`): the library stores keys
holding `/` and line breaks, which Starlette's `str` and `path` converters do not match.

POST takes the model itself (with a key that is not empty). PUT and PATCH take bodies made
from the model's fields, spelled as the model spells them (its aliases, and the field names
too where its config allows them), with the config of the model but `extra="forbid"`. The
key and the version field are optional there: the path names the record, the stored
record holds the version.

A record is then validated by the model itself, from its field *names* (`by_name=True`),
never from a dump: a dump would add computed fields and leave out `exclude=True` fields,
and `extra="forbid"` or a required excluded field would refuse it.
"""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

from fastapi import HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, create_model
from pydantic.fields import FieldInfo
from starlette.convertors import Convertor, register_url_convertor

from .._model import Model

__all__ = [
    "KEY_CONVERTOR",
    "as_model",
    "check_key",
    "input_model",
    "patched_record",
    "printable_route",
    "replace_model",
    "replaced_record",
    "unprocessable",
    "update_model",
]

M = TypeVar("M", bound=Model)
Handler = Callable[[Request], Coroutine[Any, Any, Response]]

# Starlette renamed the constant (..._ENTITY -> ..._CONTENT); the number works everywhere.
UNPROCESSABLE = 422

# Config of the model that a body made of its fields must not take: its title and schema
# extras describe the model; the body has its own `extra`; aliases are copied field by
# field; validating the defaults would refuse the None that stands for "not sent".
_NOT_INHERITED = ("title", "json_schema_extra", "extra", "alias_generator", "validate_default")


class _KeyConvertor(Convertor[str]):
    """A record key in a path: the rest of the path, `/` and line breaks included.

    Starlette's default `str` stops at `/`, and its `path` at a line break, while the
    library stores keys holding either; an empty key is left to the collection route.
    """

    regex = "(?s:.+)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return str(value)


KEY_CONVERTOR = "pydantic_aioredis_key"
register_url_convertor(KEY_CONVERTOR, _KeyConvertor())


def input_model(model: type[Model], pk_field: str) -> type[Model]:
    """The body of POST: the model, with a string primary key that is not empty.

    The library stores records under an empty key too, but a URL cannot address one
    (`/book/` is the collection), so the router refuses it, and its schema says so.
    """
    info = model.model_fields[pk_field]
    if not (isinstance(info.annotation, type) and issubclass(info.annotation, str)):
        return model
    field = (Annotated[info.annotation, StringConstraints(min_length=1)], info)
    return create_model(f"{model.__name__}In", __base__=model, **{pk_field: field})  # type: ignore[call-overload, no-any-return]


def as_model(model: type[M], body: Model) -> M:
    """The POST body (validated as `{Model}In`) as a plain instance of the model."""
    if type(body) is model:
        return body
    return model.model_construct(body.model_fields_set, **dict(body))  # type: ignore[return-value]


def replace_model(model: type[Model], key: str, version: str | None) -> type[BaseModel]:
    """The body of PUT: the model's fields as it declares them, but the key and the
    version, which may be left out."""
    fields = {
        name: _optional(info) if name == version else (info.annotation, info)
        for name, info in model.model_fields.items()
    }
    return _body_model(model, "Replace", {**fields, key: _key(model, key)})


def update_model(model: type[Model], key: str) -> type[BaseModel]:
    """The body of PATCH: every field of the model, each one optional (null only where
    the model allows None)."""
    fields = {name: _optional(info) for name, info in model.model_fields.items()}
    return _body_model(model, "Update", {**fields, key: _key(model, key)})


def _key(model: type[Model], key: str) -> tuple[Any, FieldInfo]:
    # `readOnly` in the schema: a client need not send the key, and tools that generate
    # requests from the schema (schemathesis) leave it out, since a value that is not the
    # path's is refused.
    return _optional(
        model.model_fields[key],
        json_schema_extra={"readOnly": True},
        description="The key comes from the path: a body may repeat it, not change it",
    )


def _optional(info: FieldInfo, **override: Any) -> tuple[Any, FieldInfo]:
    # The field's type and constraints, its spelling and its documentation; the default
    # None stands for "not sent" (pydantic does not validate defaults).
    annotated = (info.annotation, *info.metadata)
    annotation = Annotated[annotated] if info.metadata else info.annotation
    copied: dict[str, Any] = {
        "alias": info.alias,
        "validation_alias": info.validation_alias,
        "title": info.title,
        "description": info.description,
        "examples": info.examples,
        "discriminator": info.discriminator,
        "json_schema_extra": info.json_schema_extra,
    }
    kept = {k: v for k, v in copied.items() if v is not None}
    return annotation, Field(None, **{**kept, **override})


def _body_model(model: type[Model], suffix: str, fields: dict[str, Any]) -> type[BaseModel]:
    kept = {k: v for k, v in model.model_config.items() if k not in _NOT_INHERITED}
    config = ConfigDict(**kept, extra="forbid")  # type: ignore[typeddict-item]
    return create_model(f"{model.__name__}{suffix}", __config__=config, **fields)


def check_key(body: BaseModel, pk_field: str, pk: Any) -> None:
    """Refuse (422) a body that names another key than the path does: the path alone
    names the record, so that PUT and PATCH cannot move it."""
    if pk_field in body.model_fields_set and getattr(body, pk_field) != pk:
        info = type(body).model_fields[pk_field]
        message = f"the key is {pk!r}, as the path says; the body cannot change it"
        raise unprocessable(["body", info.alias or pk_field], message)


def replaced_record(model: type[M], body: BaseModel, fixed: dict[str, Any]) -> M:
    """The record a PUT writes: the fields sent, the model's defaults for the others, and
    the `fixed` values (the key from the path, the stored version)."""
    sent = {name: getattr(body, name) for name in body.model_fields_set}
    return validate_record(model, {**sent, **fixed})


def patched_record(
    model: type[M], stored: Model, body: BaseModel, fixed: dict[str, Any]
) -> tuple[M, list[str]]:
    """The record a PATCH writes, validated whole, and the names of the fields it changes
    (those sent, but the `fixed` ones: the key and the version)."""
    changes = {name: getattr(body, name) for name in body.model_fields_set if name not in fixed}
    values = {name: getattr(stored, name) for name in type(stored).model_fields}
    return validate_record(model, {**values, **changes, **fixed}), list(changes)


def validate_record(model: type[M], data: dict[str, Any]) -> M:
    """The record, validated by the model from field names; 422 as FastAPI reports body
    errors when it does not validate."""
    try:
        return model.model_validate(data, by_alias=False, by_name=True)
    except ValidationError as exc:
        errors = [
            {**error, "loc": ["body", *error["loc"]]}
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise HTTPException(UNPROCESSABLE, jsonable_encoder(errors)) from None


def unprocessable(loc: list[str], message: str) -> HTTPException:
    """A 422 about one part of the request (`["body", "title"]`), shaped as FastAPI's own
    validation errors."""
    return HTTPException(UNPROCESSABLE, [{"type": "value_error", "loc": loc, "msg": message}])


def printable_route(route_class: type[APIRoute]) -> type[APIRoute]:
    """`route_class`, with validation errors that can always be written as JSON.

    Pydantic's errors carry the input, and JSON text may hold a lone UTF-16 surrogate
    (`"\\ud800"`), which FastAPI's handler cannot encode as UTF-8: the client got a 500
    for a bad request. Such text is escaped in the errors before the handler sees them.
    """

    class PrintableErrorsRoute(route_class):  # type: ignore[valid-type, misc]
        def get_route_handler(self) -> Handler:
            handle: Handler = super().get_route_handler()

            async def handle_printably(request: Request) -> Response:
                try:
                    return await handle(request)
                except RequestValidationError as exc:
                    errors, body = _printable(exc.errors()), _printable(exc.body)
                    raise RequestValidationError(errors, body=body) from None

            return handle_printably

    return PrintableErrorsRoute


def _printable(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_printable(k): _printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_printable(item) for item in value)
    return value
