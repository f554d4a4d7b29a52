"""Team API tokens in the admin: owners create them (the secret shown once), see when each was
last used, and revoke them."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.forms import ModelChoiceField
from django.http import HttpRequest
from django.views.decorators.debug import sensitive_variables

from connect import errors
from connect.admin.one_time import OneTimeSecretsAdmin, keep_for_response
from connect.admin.scoping import TeamScopedAdmin, may
from connect.models import Role, Team, TeamApiToken
from connect.permissions import Action
from connect.services import api_tokens


class TeamApiTokenForm(forms.ModelForm):
    class Meta:
        model = TeamApiToken
        fields = ["team", "name", "role", "expires_at"]
        help_texts = {
            "role": "What scripts using it may do; never more than your own role in the team.",
        }


@admin.register(TeamApiToken)
class TeamApiTokenAdmin(OneTimeSecretsAdmin, TeamScopedAdmin):
    form = TeamApiTokenForm
    saved_secrets_title = "New team API token"
    list_display = [
        "name",
        "team",
        "role",
        "prefix",
        "created_by",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["role", ("team", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["team", "created_by"]
    search_fields = ["name", "prefix", "public_id"]
    readonly_fields = [
        "public_id",
        "prefix",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    actions = ["revoke"]
    one_time_action = Action.MANAGE_TOKENS

    # Tokens are the owners' business: nobody else sees the page at all.

    def has_module_permission(self, request: HttpRequest) -> bool:
        return may(request, Action.MANAGE_TOKENS)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, Action.MANAGE_TOKENS, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return may(request, Action.MANAGE_TOKENS)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, Action.MANAGE_TOKENS, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoked, never deleted: the audit log names them

    def get_queryset(self, request: HttpRequest) -> QuerySet[TeamApiToken]:
        queryset = super().get_queryset(request)
        return queryset.for_user(request.user, min_role=Role.OWNER)  # type: ignore[attr-defined]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["team", "name", "role", "expires_at"]
        return ["name", "team", "role", "expires_at", *self.readonly_fields]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        # A token is what it was made as: make another rather than widen one.
        return ["team", "role", "expires_at", *self.readonly_fields]

    def formfield_for_foreignkey(
        self, db_field: models.ForeignKey, request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        if db_field.name == "team":
            kwargs["queryset"] = Team.objects.for_user(request.user, min_role=Role.OWNER)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @sensitive_variables("secret")
    def save_model(self, request: HttpRequest, obj: TeamApiToken, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        if not may(request, Action.MANAGE_TOKENS, obj.team_id):
            raise PermissionDenied
        try:
            secret = api_tokens.api_token_create(
                token=obj,
                created_by=request.user,  # type: ignore[arg-type]
                actor=request.user,
            )
        except errors.ConnectError as exc:
            raise PermissionDenied(exc.message) from exc
        keep_for_response(request, f"Team API token {obj.name}", secret)

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[TeamApiToken]) -> None:
        count = api_tokens.api_tokens_revoke(tokens=queryset, actor=request.user)
        messages.success(request, f"Revoked {count} token(s).")
