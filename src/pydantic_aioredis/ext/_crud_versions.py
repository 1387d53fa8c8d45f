"""Optimistic concurrency over HTTP: If-Match, and the `_version_field` of a model.

A client proves which version of a record it changes: by the `If-Match` header (the `ETag`
that GET answered, `"<version>"`) or by the version field in the body. The router checks
that against the stored record (412 for If-Match, 409 for the body, 428 when neither was
sent), then writes through the table's compare-and-set (`save_versioned`): the record is
written only if it still holds that version, and moves to the next one, in one atomic
step, so of two clients that read the same version only one can write.

The records of a model without a version field have no ETag, so that no If-Match but `*`
(the record exists) can hold for them (RFC 9110, 13.1.1): such a write is refused (412)
rather than done unchecked.
"""

import re
from typing import Any, TypeVar

from fastapi import HTTPException, Response, status
from pydantic import BaseModel

from .._exceptions import ConflictError
from .._model import Model, _table_of

__all__ = ["IF_MATCH_FAILS", "RecordVersions", "check_unversioned"]

M = TypeVar("M", bound=Model)

_ETAG_HEADER = {
    "ETag": {
        "description": 'The version of the record, quoted ("3"): send it back in If-Match',
        "schema": {"type": "string"},
    }
}
# An entity tag of an If-Match list (RFC 9110, 8.8.3): `"3"` or, weak, `W/"3"`. A tag holds
# no quote, so the tags of a list are found one after the other, left to right.
_ENTITY_TAG = re.compile(r'(W/)?"([^"]*)"')


class RecordVersions:
    """The version field of one model, as the router checks and reports it."""

    def __init__(self, model: type[Model], field: str) -> None:
        self.model = model
        self.field = field
        self.alias = model.model_fields[field].alias or field

    def tag(self, record: Model, response: Response) -> None:
        """Answer the record's version as its ETag."""
        response.headers["ETag"] = f'"{getattr(record, self.field)}"'

    def created(self, record: M) -> M:
        """The record a POST creates: at the version after the one sent, as `save()` moves
        a new record from 0 to 1."""
        return record.model_copy(update={self.field: getattr(record, self.field) + 1})

    def sent(self, body: BaseModel) -> int | None:
        """The version a PUT or PATCH body names; None when it names none."""
        return getattr(body, self.field) if self.field in body.model_fields_set else None

    async def stored(self, pk: Any) -> int | None:
        """The stored version of a record; None when there is no such record."""
        found = await self.model.select(columns=[self.field], ids=[pk])
        return found[0][self.field] if found else None

    def check(self, pk: Any, stored: int, if_match: str | None, sent: int | None) -> None:
        """Refuse a write that does not prove it was made on the stored version."""
        name = f"{self.model.__name__} {pk!r}"
        if if_match is not None and not _if_match_holds(if_match, stored):
            raise _failed(f'If-Match does not name the version of {name}: "{stored}"')
        if sent is not None and sent != stored:
            raise _conflict(f"{name} is at version {stored}, not {sent}")
        if if_match is None and sent is None:
            raise HTTPException(
                status.HTTP_428_PRECONDITION_REQUIRED,
                f"{self.model.__name__} is versioned: send If-Match with the ETag that GET "
                f"answered, or the version you read in the {self.alias!r} field",
            )

    async def check_delete(self, pk: Any, if_match: str) -> None:
        """Refuse a DELETE whose If-Match does not name the stored version (404 if there
        is no such record). The check and the delete are two steps, not one."""
        stored = await self.stored(pk)
        if stored is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{self.model.__name__} not found")
        self.check(pk, stored, if_match, None)

    async def save(self, record: Model, pk: Any, if_match: str | None) -> None:
        """Write the record if it still holds its version, and move it to the next one;
        404 if it was deleted meanwhile, 412 (If-Match sent) or 409 if it was changed."""
        try:
            await _table_of(self.model).save_versioned(record, self.field, None)
        except ConflictError:
            stored = await self.stored(pk)
            if stored is None:
                raise HTTPException(
                    status.HTTP_404_NOT_FOUND, f"{self.model.__name__} not found"
                ) from None
            message = f"{self.model.__name__} {pk!r} changed meanwhile: it is at version {stored}"
            raise (_failed(message) if if_match is not None else _conflict(message)) from None

    def responses(self, status_code: int, checked: bool) -> dict[int | str, dict[str, Any]]:
        """What versions add to a route's OpenAPI responses: the ETag of the record that
        it answers with `status_code`, and the answers of the checks if it makes them."""
        checks: dict[int | str, dict[str, Any]] = {
            409: {"description": f"The {self.alias!r} sent is not the stored version"},
            **IF_MATCH_FAILS,
            428: {"description": f"Neither If-Match nor {self.alias!r} was sent"},
        }
        return {status_code: {"headers": _ETAG_HEADER}, **(checks if checked else {})}


IF_MATCH_FAILS: dict[int | str, dict[str, Any]] = {
    412: {"description": "If-Match does not name the stored version"}
}


def check_unversioned(model: type[Model], if_match: str | None) -> None:
    """Refuse a write to a record without ETag whose If-Match is not `*`."""
    if if_match is not None and if_match.strip() != "*":
        raise _failed(
            f"{model.__name__} records have no ETag (the model has no _version_field): "
            "only If-Match: * can hold"
        )


def _failed(message: str) -> HTTPException:
    return HTTPException(status.HTTP_412_PRECONDITION_FAILED, message)


def _conflict(message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_409_CONFLICT, f"{message}: read it again and reapply your change"
    )


def _if_match_holds(header: str, version: int) -> bool:
    # RFC 9110: `*` matches any current record (this one exists); otherwise one of the
    # listed tags must be the record's, compared strongly: a weak tag never matches.
    if header.strip() == "*":
        return True
    return any(not weak and tag == str(version) for weak, tag in _ENTITY_TAG.findall(header))
