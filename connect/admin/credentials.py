from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from connect.admin.scoping import TeamScopedAdmin
from connect.models import DeploymentCredential, TrustedIssuer
from connect.services import credentials


@admin.register(DeploymentCredential)
class DeploymentCredentialAdmin(TeamScopedAdmin):
    list_display = ["__str__", "project", "environment", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("project", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["project", "environment"]
    search_fields = ["name", "prefix", "public_id"]
    fields = [
        "project",
        "environment",
        "name",
        "prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    @method_decorator(sensitive_post_parameters())  # the add view answers with a new credential
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        return super().changeform_view(request, object_id, form_url, extra_context)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is not None:
            return [*self.readonly_fields, "project", "environment"]
        return self.readonly_fields

    @sensitive_variables("token")
    def save_model(
        self, request: HttpRequest, obj: DeploymentCredential, form: Any, change: bool
    ) -> None:
        if change:
            obj.save(update_fields=["name"])
            return
        token = credentials.deployment_credential_create(credential=obj, actor=request.user)
        messages.warning(
            request,
            f"Copy this credential now; it is not shown again: {token}",
        )

    @admin.action(description="Revoke selected credentials")
    def revoke(self, request: HttpRequest, queryset: QuerySet[DeploymentCredential]) -> None:
        count = credentials.deployment_credentials_revoke(
            credentials=queryset.active(),  # type: ignore[attr-defined]
            actor=request.user,
        )
        messages.success(request, f"Revoked {count} credential(s).")


@admin.register(TrustedIssuer)
class TrustedIssuerAdmin(TeamScopedAdmin):
    list_display = ["issuer", "audience", "project", "environment", "team"]
    list_select_related = ["project", "environment", "team"]
    search_fields = ["issuer", "audience"]
