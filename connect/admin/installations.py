from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from connect import errors
from connect.admin.filters import ExactIdSearch, TeamRelatedFilter
from connect.admin.scoping import ReadOnlyInline, ReadOnlyTeamScopedAdmin, TeamScopedAdmin
from connect.kinds import AuthorizationKind, Subject
from connect.models import Grant, Installation, TokenIssue
from connect.models.installations import GrantStatus, SubjectType
from connect.services import authorizations, installations

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


class ReconnectAdmin(TeamScopedAdmin):
    """A "Reconnect" link on a row in ``needs_reauth``: a member makes a single-use link that
    re-authorizes it in place (same ids), to send to the tenant or user."""

    def _grant_of(self, obj: Any) -> Grant | None:
        raise NotImplementedError

    def get_urls(self) -> list[Any]:
        name = f"connect_{self.opts.model_name}_reconnect"
        return [
            path(
                "<path:object_id>/reconnect/",
                self.admin_site.admin_view(self.reconnect_view),
                name=name,
            ),
            *super().get_urls(),
        ]

    @admin.display(description="Reconnect")
    def reconnect(self, obj: Any) -> str:
        grant = self._grant_of(obj) if obj.pk else None
        if grant is None or grant.status != GrantStatus.NEEDS_REAUTH:
            return "Not needed: nothing here needs re-authorization."
        url = reverse(f"admin:connect_{self.opts.model_name}_reconnect", args=[obj.pk])
        return format_html('<a class="button" href="{}">Reconnect</a> {}', url, grant.last_error)

    def reconnect_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404("No such object in your teams.")
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        grant = self._grant_of(obj)
        if grant is None or grant.status != GrantStatus.NEEDS_REAUTH:
            raise Http404("Nothing here needs re-authorization.")
        extra: dict[str, Any] = {}
        if request.method == "POST":
            installation = grant.installation
            user = grant.subject_type == SubjectType.USER
            subject = (
                Subject.parse(type=grant.subject_type, id=grant.subject_id, issuer=grant.issuer)
                if user
                else None
            )
            try:
                started = authorizations.authorization_start(
                    connector=installation.connector,
                    kind=AuthorizationKind.CONSENT if user else AuthorizationKind.INSTALL,
                    subject=subject,
                    scopes=tuple(grant.scopes) if grant.scopes else None,
                    installation_ref=installation.public_id,
                    project_id=grant.project_id,
                    actor=request.user,
                )
            except errors.ConnectError as exc:
                messages.error(request, exc.message)
            else:
                extra = {"link": started.url, "expires_at": started.flow.expires_at}
        context = {**self.admin_site.each_context(request), **self._context(obj, grant), **extra}
        return TemplateResponse(request, "admin/connect/grant/reconnect_link.html", context)

    def _context(self, obj: Any, grant: Grant | None) -> dict[str, Any]:
        model = self.opts.model_name
        return {
            "opts": self.opts,
            "original": obj,
            "title": f"Reconnect {obj}",
            "changelist_url": f"admin:connect_{model}_changelist",
            "change_url": f"admin:connect_{model}_change",
            "connector": grant.installation.connector if grant else None,
            "who": str(grant) if grant else "",
            "error": grant.last_error if grant else "",
        }


class GrantInline(ReadOnlyInline, admin.TabularInline):
    model = Grant
    fields = GRANT_INLINE_FIELDS
    readonly_fields = GRANT_INLINE_FIELDS
    extra = 0
    show_change_link = True


@admin.register(Installation)
class InstallationAdmin(ExactIdSearch, ReconnectAdmin):
    list_display = ["__str__", "connector", "tenant_id", "status", "is_default", "created_at"]
    list_filter = ["status", ("connector", TeamRelatedFilter)]
    list_select_related = ["connector"]
    exact_search = ("tenant_id", "public_id")
    # Newest first, by an index: 100,000 installations sorted by name spilled to disk.
    ordering = ["-created_at", "-pk"]
    readonly_fields = [
        "public_id",
        "connector",
        "tenant_id",
        "installed_by",
        "created_at",
        "reconnect",
    ]
    fields = [
        "public_id",
        "connector",
        "tenant_id",
        "display_name",
        "status",
        "reconnect",
        "is_default",
        "metadata",
        "installed_by",
        "created_at",
    ]
    inlines = [GrantInline]

    def _grant_of(self, obj: Installation) -> Grant | None:
        """The installation's own (app) grant: the one an install flow re-authorizes."""
        return obj.grants.filter(subject_type=SubjectType.APP).first()

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Installations come from install flows (or, for single-account types, the connector).
        return False

    def breadcrumb_parents(self, obj: Installation) -> list[models.Model]:
        return [obj.connector]

    def delete_model(self, request: HttpRequest, obj: Installation) -> None:
        installations.installation_remove(installation=obj, actor=request.user, delete=True)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Installation]) -> None:
        for installation in queryset.select_related("connector"):
            installations.installation_remove(
                installation=installation, actor=request.user, delete=True
            )

    def delete_inline(self, request: HttpRequest, obj: Any) -> None:
        """A grant ticked for deletion ends as any grant does (revoked at the provider, the app
        told) before its row goes."""
        installations.grant_revoke(grant=obj, actor=request.user, delete=True)


@admin.register(Grant)
class GrantAdmin(ExactIdSearch, ReconnectAdmin):
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
    # Newest first, by the primary key: the model's order (installation, then its connector's
    # team and name) sorted 100,000 grants through four joins.
    ordering = ["-pk"]
    fields = (*GRANT_FIELDS, "last_error", "next_check_at", "reconnect")
    readonly_fields = (
        *(f for f in GRANT_FIELDS if f != "status"),
        "last_error",
        "next_check_at",
        "reconnect",
    )

    def _grant_of(self, obj: Grant) -> Grant | None:
        return obj

    def save_model(self, request: HttpRequest, obj: Grant, form: Any, change: bool) -> None:
        """Setting the status to revoked ends the grant the one way (``grant_revoke``): its
        tokens revoked at the provider and cleared, the app told."""
        if change and "status" in form.changed_data and obj.status == GrantStatus.REVOKED:
            obj.status = form.initial["status"]  # what it was, as grant_revoke must see it
            installations.grant_revoke(grant=obj, actor=request.user)
            return
        super().save_model(request, obj, form, change)

    def delete_model(self, request: HttpRequest, obj: Grant) -> None:
        installations.grant_revoke(grant=obj, actor=request.user, delete=True)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Grant]) -> None:
        for grant in queryset.select_related("installation__connector"):
            installations.grant_revoke(grant=grant, actor=request.user, delete=True)

    def breadcrumb_parents(self, obj: Grant) -> list[models.Model]:
        return [obj.installation.connector, obj.installation]

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
