"""Calls through the authenticated proxy: read only, like every log the system writes."""

from typing import Any

from django.contrib import admin

from connect.admin import lists
from connect.admin.scoping import ReadOnlyTeamScopedAdmin
from connect.models import ProxyCall


@admin.register(ProxyCall)
class ProxyCallAdmin(ReadOnlyTeamScopedAdmin):
    list_display = [
        "created_at",
        "connector",
        "method",
        "path",
        "status",
        "outcome_shown",
        "retried",
        "latency_ms",
        "deployment",
    ]
    # Fixed choices only: a filter over distinct values would scan the whole log.
    list_filter = ["outcome", "retried"]
    list_select_related = ["connector", "project"]
    search_fields = ["=public_id"]  # an exact id: no LIKE scan over a log table
    show_full_result_count = False

    @admin.display(description="Outcome", ordering="outcome")
    def outcome_shown(self, obj: ProxyCall) -> Any:
        """The outcome with Connect's error code when it refused: one column, not two."""
        shown = obj.get_outcome_display()
        return f"{shown} ({obj.error_code})" if obj.error_code else shown

    @admin.display(description="Deployment", ordering="project")
    def deployment(self, obj: ProxyCall) -> Any:
        """project/environment in one column: two columns pushed the list past 1280 px."""
        return lists.cut(f"{obj.project.slug}/{obj.environment}")
