from typing import Any, ClassVar

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

from connect.models.base import TeamScopedQuerySet


class TeamRelatedFilter(admin.RelatedFieldListFilter):
    """Choices are the related rows of the user's teams — never another team's, and never a
    DISTINCT over a million-row log to find them."""

    def field_choices(  # type: ignore[override]
        self, field: Any, request: HttpRequest, model_admin: admin.ModelAdmin
    ) -> list[tuple[str, str]]:
        related = field.remote_field.model._default_manager.all()
        if isinstance(related, TeamScopedQuerySet):
            related = related.for_user(request.user)
        ordering = self.field_admin_ordering(field, request, model_admin)
        return [(str(obj.pk), str(obj)) for obj in related.order_by(*ordering)[:200]]


class DestinationFilter(TeamRelatedFilter):
    """A destination's name walks to its environment and project: loaded with the choices,
    not one query per choice."""

    def field_choices(  # type: ignore[override]
        self, field: Any, request: HttpRequest, model_admin: admin.ModelAdmin
    ) -> list[tuple[str, str]]:
        related = field.remote_field.model._default_manager.for_user(request.user)
        chosen = related.select_related("environment__project").order_by("connector", "path")
        return [(str(obj.pk), str(obj)) for obj in chosen[:200]]


class StatusCodeFilter(admin.SimpleListFilter):
    """Classes of HTTP status, fixed: never a DISTINCT over every attempt to find the codes."""

    title = "answer"
    parameter_name = "answer"
    CLASSES: ClassVar[dict[str, tuple[int, int]]] = {
        "2xx": (200, 300),
        "3xx": (300, 400),
        "4xx": (400, 500),
        "5xx": (500, 600),
    }

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [*((name, name) for name in self.CLASSES), ("none", "no answer")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == "none":
            return queryset.filter(status_code__isnull=True)
        if value in self.CLASSES:
            low, high = self.CLASSES[value]
            return queryset.filter(status_code__gte=low, status_code__lt=high)
        return queryset


class CappedPaginator(Paginator):
    """Counts stop at ``CAP``: a team-scoped list of a million rows answers "10,000+" at the
    cost of reading 10,001 index entries, never the whole table."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        head = self.object_list[: self.CAP + 1]
        return head.count() if isinstance(head, QuerySet) else len(head)

    @property
    def capped(self) -> bool:
        return self.count > self.CAP


class ExactIdSearch:
    """Search by ids as they are stored: each term matched exactly (``exact_search``) or as a
    prefix (``prefix_search``), case as typed — so a unique or pattern index answers, where
    Django's ``=field`` would compare UPPER() of every row."""

    exact_search: ClassVar[tuple[str, ...]] = ()
    prefix_search: ClassVar[tuple[str, ...]] = ()

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        matches = Q()
        for name in self.exact_search:
            matches |= Q(**{name: term})
        for name in self.prefix_search:
            matches |= Q(**{f"{name}__startswith": term})
        return queryset.filter(matches), False

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        # Non-empty, so the admin shows its search box.
        return (*self.exact_search, *self.prefix_search)
