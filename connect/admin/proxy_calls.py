"""Calls through the authenticated proxy: read only, like every log the system writes."""

from django.contrib import admin

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
        "outcome",
        "error_code",
        "retried",
        "latency_ms",
        "project",
        "environment",
    ]
    list_filter = ["outcome", "method", "retried"]
    list_select_related = ["connector", "project"]
    search_fields = ["public_id", "path"]
    show_full_result_count = False
