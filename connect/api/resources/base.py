"""What every resource of ``/v1/connect/…`` shares: cursor pages, lookups in the token's team,
bodies parsed into the error envelope, and the OpenAPI pieces for all of that."""

from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.request import Request

from connect import errors
from connect.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, keyset_page, newest, paginated
from connect.models.base import TeamScopedQuerySet

M = TypeVar("M", bound=models.Model)


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


def page(
    request: Request,
    queryset: models.QuerySet[M],
    *,
    key: str,
    render: Callable[[M], dict[str, Any]],
) -> dict[str, Any]:
    """Newest first, by primary key: rows created while a client pages come before its
    cursor, so no page repeats or skips one. ``{key: [...], "pagination": {"next"}}``."""
    # The cursor names its list: another list's is refused rather than read as a position.
    rows, next_cursor = keyset_page(queryset, request, ordering=newest(key))
    return paginated(key, [render(row) for row in rows], next_cursor)


# OpenAPI


def page_parameters(default: int = DEFAULT_LIMIT) -> list[OpenApiParameter]:
    return [
        OpenApiParameter("limit", int, description=f"1 to {MAX_LIMIT}, default {default}."),
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


def operation(
    operation_id: str,
    summary: str,
    *,
    responses: dict[int, Any],
    description: str | None = None,
    request: Any = empty,
    parameters: Iterable[OpenApiParameter] = (),
    sends: dict[str, Any] | None = None,
    answers: dict[str, Any] | None = None,
) -> Any:
    """The schema of an operation on the token's team (``teamId``/``slug`` may name it), with
    example requests ``sends`` and example answers ``answers`` (of the first of ``responses``),
    each by name."""
    first = str(next(iter(responses)))
    examples = [OpenApiExample(n, value=v, request_only=True) for n, v in (sends or {}).items()]
    examples += [
        OpenApiExample(n, value=v, response_only=True, status_codes=[first])
        for n, v in (answers or {}).items()
    ]
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        description=description,
        parameters=[*parameters, *TEAM_PARAMETERS],
        request=request,
        responses=responses,
        examples=examples or None,
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
    return operation(
        operation_id,
        summary,
        description=description,
        parameters=[*page_parameters(), *filters(*filtered_by)],
        responses={200: page_of(name, key, item)},
        answers=None
        if example is None
        else {"Page": {key: [example], "pagination": {"next": None}}},
    )


def filters(*names: tuple[str, str] | tuple[str, str, Iterable[str]]) -> list[OpenApiParameter]:
    """Query filters: ``(name, description)`` or ``(name, description, enum)``."""
    return [
        OpenApiParameter(n[0], str, description=n[1], enum=list(n[2]) if len(n) > 2 else None)
        for n in names
    ]
