"""Keyset pagination with opaque cursors, as Vercel's v2 lists page: ``limit`` (1 to 100) and
``cursor`` in, ``{"pagination": {"next": cursor | null}}`` out.

A cursor names the last row of a page by its sort key and primary key, so rows inserted while a
client pages (before or after its position) neither repeat nor push others off a page.
"""

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from rest_framework.request import Request

from connect import errors


@dataclass(frozen=True)
class Ordering:
    """A list's order: one field, then the primary key, the same way."""

    name: str
    field: str
    descending: bool = False


def newest(name: str) -> Ordering:
    """The list ``name`` newest first, by primary key (``/v1/connect/…``'s own resources)."""
    return Ordering(name, "pk", descending=True)


DEFAULT_LIMIT = 50
MAX_LIMIT = 100


def page_limit(request: Request, *, default: int = DEFAULT_LIMIT) -> int:
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise errors.InvalidRequest(f"limit: A whole number from 1 to {MAX_LIMIT}.")
    return int(raw)


def _encode(ordering: Ordering, value: Any, pk: int) -> str:
    if isinstance(value, datetime):
        value = {"t": value.isoformat()}
    raw = json.dumps([ordering.name, value, pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(ordering: Ordering, cursor: str) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, value, pk = json.loads(raw)
        if isinstance(value, dict):
            value = datetime.fromisoformat(value["t"])
        if name != ordering.name or not isinstance(pk, int):
            raise ValueError(name)
    except (ValueError, TypeError, KeyError):
        raise errors.InvalidRequest(
            "cursor: Not a cursor of this list (pass pagination.next as it came)."
        ) from None
    return value, pk


def keyset_page(
    queryset: QuerySet[Any],
    request: Request,
    *,
    ordering: Ordering,
    default_limit: int = DEFAULT_LIMIT,
) -> tuple[Sequence[Any], str | None]:
    """One page of ``queryset`` in ``ordering`` after the request's cursor, and the next
    cursor (None on the last page)."""
    limit = page_limit(request, default=default_limit)
    f, desc = ordering.field, ordering.descending
    cursor = request.query_params.get("cursor")
    if cursor:
        value, pk = _decode(ordering, cursor)
        after = "lt" if desc else "gt"
        beyond = Q(**{f"pk__{after}": pk})
        if f != "pk":
            beyond = Q(**{f"{f}__{after}": value}) | Q(**{f: value}) & beyond
        queryset = queryset.filter(beyond)
    sign = "-" if desc else ""
    rows = list(queryset.order_by(*dict.fromkeys((f"{sign}{f}", f"{sign}pk")))[: limit + 1])
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], _encode(ordering, getattr(last, f), int(last.pk))


def paginated(key: str, items: list[Any], next_cursor: str | None) -> dict[str, Any]:
    return {key: items, "pagination": {"next": next_cursor}}
