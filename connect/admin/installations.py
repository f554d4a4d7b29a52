from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from connect.admin.filters import ExactIdSearch, TeamRelatedFilter
from connect.admin.scoping import ReadOnlyTeamScopedAdmin, TeamScopedAdmin, TeamScopedInline
from connect.models import Grant, Installation, TokenIssue
from connect.services import installations

GRANT_INLINE_FIELDS = (
    "subject_type",
    "subject_id",
    "issuer",
    "status",
    "access_expires_at",
    "scopes",
)
GRANT_FIELDS = (
    "public_id",
    "installation",
    "subject_type",
    "subject_id",
    "issuer",
    "project",
    "status",
    "scopes",
    "access_expires_at",
    "refresh_expires_at",
    "has_refresh_token",
    "version",
)


class GrantInline(TeamScopedInline, admin.TabularInline):
    model = Grant
    fields = GRANT_INLINE_FIELDS
    readonly_fields = GRANT_INLINE_FIELDS
    extra = 0
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Installation)
class InstallationAdmin(ExactIdSearch, TeamScopedAdmin):
    list_display = ["__str__", "connector", "tenant_id", "status", "is_default", "created_at"]
    list_filter = ["status", ("connector", TeamRelatedFilter)]
    list_select_related = ["connector"]
    exact_search = ("tenant_id", "public_id")
    # Newest first, by an index: 100,000 installations sorted by name spilled to disk.
    ordering = ["-created_at", "-pk"]
    readonly_fields = ["public_id", "connector", "tenant_id", "installed_by", "created_at"]
    fields = [
        "public_id",
        "connector",
        "tenant_id",
        "display_name",
        "status",
        "is_default",
        "metadata",
        "installed_by",
        "created_at",
    ]
    inlines = [GrantInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Installations come from install flows (or, for single-account types, the connector).
        return False

    def delete_model(self, request: HttpRequest, obj: Installation) -> None:
        installations.installation_remove(installation=obj, actor=request.user, delete=True)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Installation]) -> None:
        for installation in queryset.select_related("connector"):
            installations.installation_remove(
                installation=installation, actor=request.user, delete=True
            )


@admin.register(Grant)
class GrantAdmin(ExactIdSearch, TeamScopedAdmin):
    list_display = [
        "subject_type",
        "subject_id",
        "installation",
        "status",
        "access_expires_at",
        "has_refresh_token",
    ]
    list_filter = ["status", "subject_type"]
    list_select_related = ["installation"]
    exact_search = ("subject_id", "public_id", "installation__tenant_id")
    fields = GRANT_FIELDS
    readonly_fields = tuple(f for f in GRANT_FIELDS if f != "status")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(boolean=True, description="Refresh token")
    def has_refresh_token(self, obj: Grant) -> bool:
        return obj.has_secret("refresh_token")


@admin.register(TokenIssue)
class TokenIssueAdmin(ExactIdSearch, ReadOnlyTeamScopedAdmin):
    list_display = ["public_id", "grant", "project", "environment", "expires_at", "created_at"]
    # A grant's name is its subject on its installation.
    list_select_related = ["grant__installation", "project"]
    exact_search = ("public_id",)
    show_full_result_count = False
