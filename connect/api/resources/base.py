"""What every resource of ``/v1/connect/…`` shares: cursor pages, lookups in the token's team,
bodies parsed into the error envelope, and the OpenAPI pieces for all of that."""

import base64
import binascii
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request

from connect import errors
from connect.models.base import TeamScopedQuerySet

M = TypeVar("M", bound=models.Model)

DEFAULT_LIMIT = 50
MAX_LIMIT = 100


def millis(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def in_team(queryset: TeamScopedQuerySet, team_id: int, public_id: str, what: str) -> Any:
    """The row of that id in the token's team; another team's row is as absent as none."""
    found = queryset.for_team(team_id).filter(public_id=public_id).first()
    if found is None:
        raise errors.NotFound(f"No such {what} in this team.")
    return found


def by_ref(
    queryset: models.QuerySet[M], ref: str, *, prefix: str, or_field: str, missing: str
) -> M:
    """The row whose ``public_id`` is ``ref`` when it starts with ``prefix``, else the one whose
    ``or_field`` is (a slug, a uid); none answers not_found with ``missing``."""
    lookup = {"public_id": ref} if ref.startswith(prefix) else {or_field: ref}
    found = queryset.filter(**lookup).first()
    if found is None:
        raise errors.NotFound(missing)
    return found


def filtered(
    request: Request,
    queryset: models.QuerySet[M],
    *by: tuple[str, str] | tuple[str, str, Collection[str]],
) -> models.QuerySet[M]:
    """``queryset`` narrowed by each ``(parameter, field)`` the query string gives; with a
    third item, only a value among those narrows (another is ignored, as if absent)."""
    for parameter, field, *among in by:
        value = request.query_params.get(parameter)
        if value and (not among or value in among[0]):
            queryset = queryset.filter(**{field: value})
    return queryset


def parsed(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """The body validated by ``serializer_class``; its first problem as invalid_request."""
    if not isinstance(data, dict):
        raise errors.InvalidRequest("The body must be a JSON object.")
    body = serializer_class(data=data)
    body.is_valid(raise_exception=True)
    return dict(body.validated_data)


def model_errors(exc: DjangoValidationError) -> errors.ConnectError:
    """A model's ``clean()`` verdict (the admin's messages) as invalid_request."""
    if hasattr(exc, "message_dict"):
        field, messages = next(iter(exc.message_dict.items()))
        name = "" if field == "__all__" else f"{field}: "
        return errors.InvalidRequest(f"{name}{messages[0]}")
    return errors.InvalidRequest(exc.messages[0] if exc.messages else "Invalid.")


@contextmanager
def model_checked() -> Iterator[None]:
    """Run the block; a model's ``clean()`` verdict raised in it answers invalid_request."""
    try:
        yield
    except DjangoValidationError as exc:
        raise model_errors(exc) from exc


def _cursor_out(pk: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{pk}".encode()).decode().rstrip("=")


def _cursor_in(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, _, pk = raw.partition(":")
        if version != "v1":
            raise ValueError(cursor)
        return int(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise errors.InvalidRequest("cursor: Not a cursor this API gave out.") from None


def limit_of(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise errors.InvalidRequest(f"limit: A whole number from 1 to {MAX_LIMIT}.")
    return int(raw)


def page(
    request: Request,
    queryset: models.QuerySet[M],
    *,
    key: str,
    render: Callable[[M], dict[str, Any]],
) -> dict[str, Any]:
    """Newest first, by primary key: rows created while a client pages come before its
    cursor, so no page repeats or skips one. ``{key: [...], "pagination": {"next"}}``."""
    limit = limit_of(request)
    cursor = request.query_params.get("cursor")
    if cursor:
        queryset = queryset.filter(pk__lt=_cursor_in(cursor))
    rows = list(queryset.order_by("-pk")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        key: [render(row) for row in rows],
        "pagination": {"next": _cursor_out(rows[-1].pk) if more and rows else None},
    }


# OpenAPI


PAGE_PARAMETERS = [
    OpenApiParameter("limit", int, description=f"1 to {MAX_LIMIT}, default {DEFAULT_LIMIT}."),
    OpenApiParameter("cursor", str, description="The previous page's `pagination.next`."),
]

TEAM_PARAMETERS = [
    OpenApiParameter("teamId", str, description="The token's own team (`team_…`), or leave out."),
    OpenApiParameter("slug", str, description="The token's own team's slug, or leave out."),
]


class Pagination(serializers.Serializer):
    next = serializers.CharField(allow_null=True, help_text="null on the last page.")


def page_of(name: str, key: str, item: type[serializers.Serializer]) -> serializers.Serializer:
    """The schema of a page of ``item``s under ``key``."""
    return inline_serializer(
        name=name,
        fields={key: item(many=True), "pagination": Pagination()},
    )


def list_schema(
    *,
    operation_id: str,
    summary: str,
    page: tuple[str, str, type[serializers.Serializer]],
    filtered_by: Iterable[tuple[str, str] | tuple[str, str, Iterable[str]]] = (),
    description: str | None = None,
    example: dict[str, Any] | None = None,
) -> Any:
    """The schema of a list: paged, filtered by ``filtered_by``, of the token's team, answering
    ``page`` (its schema name, the key of its items and their serializer) with an example page
    of one ``example``."""
    name, key, item = page
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        description=description,
        parameters=[*PAGE_PARAMETERS, *filters(*filtered_by), *TEAM_PARAMETERS],
        responses={200: page_of(name, key, item)},
        examples=[
            OpenApiExample(
                "Page", value={key: [example], "pagination": {"next": None}}, response_only=True
            )
        ]
        if example is not None
        else None,
    )


def filters(*names: tuple[str, str] | tuple[str, str, Iterable[str]]) -> list[OpenApiParameter]:
    """Query filters: ``(name, description)`` or ``(name, description, enum)``."""
    return [
        OpenApiParameter(n[0], str, description=n[1], enum=list(n[2]) if len(n) > 2 else None)
        for n in names
    ]
