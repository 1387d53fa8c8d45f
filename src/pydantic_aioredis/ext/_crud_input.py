"""What the CRUD router takes in: the key in the path, the bodies, the records built
from them.

The key is the rest of the path (`/book/a/b` is the record `a/b`): the library stores keys
holding `/` and line breaks, which Starlette's `str` and `path` converters do not match.

POST takes the model itself (with a key that is not empty, and a version that is not
negative). PUT and PATCH take bodies made from the model's fields, spelled as the model
spells them (its aliases, and the field names too where its config allows them) or as GET
answers them (their serialization aliases), with the config of the model but
`extra="forbid"`. The key and the version field are optional there: the path names the
record, the stored record holds the version. Computed fields may be sent too, so that what
GET answered can be sent back: they are read-only, and ignored.

A record is then validated by the model itself, from its field *names* (`by_name=True`),
never from a dump: a dump would add computed fields and leave out `exclude=True` fields,
and `extra="forbid"` or a required excluded field would refuse it.
"""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

from annotated_types import Ge
from fastapi import HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
)
from pydantic.fields import ComputedFieldInfo, FieldInfo
from starlette.convertors import Convertor, register_url_convertor

from .._model import Model

__all__ = [
    "KEY_CONVERTOR",
    "as_model",
    "check_key",
    "differs",
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


def input_model(model: type[Model], pk_field: str, version: str | None) -> type[Model]:
    """The body of POST: the model, with a string primary key that is not empty and a
    version that is not negative.

    The library stores records under an empty key too, but a URL cannot address one
    (`/book/` is the collection), so the router refuses it, and its schema says so. A
    record created below version 1 could be written again, after a delete, by a PUT or
    PATCH naming its version (see `_crud_versions`).
    """
    info = model.model_fields[pk_field]
    fields: dict[str, Any] = {}
    if isinstance(info.annotation, type) and issubclass(info.annotation, str):
        fields[pk_field] = (Annotated[info.annotation, StringConstraints(min_length=1)], info)
    if version:
        version_info = model.model_fields[version]
        fields[version] = (Annotated[version_info.annotation, Ge(0)], version_info)
    if not fields:
        return model
    return create_model(f"{model.__name__}In", __base__=model, **fields)


def as_model(model: type[M], body: Model) -> M:
    """The POST body (validated as `{Model}In`) as a plain instance of the model."""
    if type(body) is model:
        return body
    return model.model_construct(body.model_fields_set, **dict(body))  # type: ignore[return-value]


def replace_model(model: type[Model], key: str, version: str | None) -> type[BaseModel]:
    """The body of PUT: the model's fields as it declares them, but the key and the
    version, which may be left out."""
    fields = {
        name: _body_field(name, info, _default(info)) for name, info in model.model_fields.items()
    }
    return _body_model(model, "Replace", fields, key, version)


def update_model(model: type[Model], key: str, version: str | None) -> type[BaseModel]:
    """The body of PATCH: every field of the model, each one optional (null only where
    the model allows None)."""
    fields = {name: _optional(name, info) for name, info in model.model_fields.items()}
    return _body_model(model, "Update", fields, key, version)


def _key(model: type[Model], key: str) -> tuple[Any, FieldInfo]:
    # `readOnly` in the schema: a client need not send the key, and tools that generate
    # requests from the schema (schemathesis) leave it out, since a value that is not the
    # path's is refused.
    return _optional(
        key,
        model.model_fields[key],
        json_schema_extra={"readOnly": True},
        description="The key comes from the path: a body may repeat it, not change it",
    )


def _computed(info: ComputedFieldInfo) -> tuple[Any, Any]:
    # Accepted so that the record GET answered can be sent back as it is, then ignored.
    about = "Computed from the other fields: answered by GET, ignored in bodies"
    return Any, Field(
        None,
        alias=info.alias,
        title=info.title,
        description=about,
        json_schema_extra={"readOnly": True},
    )


def _optional(name: str, info: FieldInfo, **override: Any) -> tuple[Any, FieldInfo]:
    # The default None stands for "not sent" (pydantic does not validate defaults).
    return _body_field(name, info, {"default": None}, **override)


def _default(info: FieldInfo) -> dict[str, Any]:
    """The model's default of a field, as `Field` takes it (none for a required field)."""
    if info.is_required():
        return {}
    if info.default_factory is not None:
        return {"default_factory": info.default_factory}
    return {"default": info.default}


def _body_field(
    name: str, info: FieldInfo, default: dict[str, Any], **override: Any
) -> tuple[Any, FieldInfo]:
    """A body field for the model's field `name`: its type and constraints, its
    documentation, and the spellings a body may use: those the model validates (its
    alias, or validation alias) and the serialization alias that GET answers with."""
    annotated = (info.annotation, *info.metadata)
    annotation = Annotated[annotated] if info.metadata else info.annotation
    copied: dict[str, Any] = {
        "alias": info.alias,
        "validation_alias": _spellings(name, info),
        "title": info.title,
        "description": info.description,
        "examples": info.examples,
        "discriminator": info.discriminator,
        "json_schema_extra": info.json_schema_extra,
    }
    kept = {k: v for k, v in copied.items() if v is not None}
    return annotation, Field(**default, **{**kept, **override})


def _spellings(name: str, info: FieldInfo) -> Any:
    accepted: Any = info.validation_alias or info.alias
    answered = info.serialization_alias
    if answered is None or answered == (accepted or name):
        return accepted
    choices = list(accepted.choices) if isinstance(accepted, AliasChoices) else [accepted or name]
    return AliasChoices(*choices, answered) if answered not in choices else accepted


def _body_model(
    model: type[Model], suffix: str, fields: dict[str, Any], key: str, version: str | None
) -> type[BaseModel]:
    """A body of the model's fields, the key optional and read-only, the version optional
    and not negative, and the computed fields accepted and ignored."""
    fields[key] = _key(model, key)
    if version:
        fields[version] = _optional(version, model.model_fields[version], ge=0)
    for name, info in model.model_computed_fields.items():
        fields[name] = _computed(info)
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
    return validate_record(model, {**_sent(model, body), **fixed})


def patched_record(model: type[M], stored: Model, body: BaseModel, fixed: dict[str, Any]) -> M:
    """The record a PATCH writes, validated whole: the stored record, the fields sent,
    and the `fixed` values (the key, the stored version)."""
    values = {name: getattr(stored, name) for name in model.model_fields}
    return validate_record(model, {**values, **_sent(model, body), **fixed})


def _sent(model: type[Model], body: BaseModel) -> dict[str, Any]:
    # The model's fields that the body holds (not the computed ones, which are ignored).
    return {
        name: getattr(body, name) for name in body.model_fields_set if name in model.model_fields
    }


def differs(stored: Model, record: Model) -> bool:
    """Whether a record holds, in some field, another value than the stored one."""
    return any(getattr(stored, name) != getattr(record, name) for name in type(record).model_fields)


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
