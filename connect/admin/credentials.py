from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.views.decorators.debug import sensitive_variables

from connect.admin.forms import https_by_default
from connect.admin.one_time import OneTimeSecretsAdmin, keep_for_response
from connect.admin.scoping import TeamScopedAdmin, TeamScopedInline
from connect.models import DeploymentCredential, Role, Team, TrustedIssuer, TrustedIssuerRule
from connect.services import configuration, credentials


@admin.register(DeploymentCredential)
class DeploymentCredentialAdmin(OneTimeSecretsAdmin, TeamScopedAdmin):
    saved_secrets_title = "New deployment credential"
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

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is not None:
            return [*self.readonly_fields, "project", "environment"]
        return self.readonly_fields

    @sensitive_variables("token")
    def save_model(
        self, request: HttpRequest, obj: DeploymentCredential, form: Any, change: bool
    ) -> None:
        if change:
            # Only its name: the API writes last_used_at meanwhile.
            configuration.configuration_save(
                obj=obj, actor=request.user, changed=form.changed_data, update_fields=["name"]
            )
            return
        token = credentials.deployment_credential_create(credential=obj, actor=request.user)
        label = f"Deployment credential {obj.name or obj.public_id} for {obj.environment}"
        keep_for_response(request, label, token)

    @admin.action(description="Revoke selected credentials", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[DeploymentCredential]) -> None:
        count = credentials.deployment_credentials_revoke(
            credentials=queryset.active(),  # type: ignore[attr-defined]
            actor=request.user,
        )
        messages.success(request, f"Revoked {count} credential(s).")


class TrustedIssuerForm(forms.ModelForm):
    audience = forms.CharField(max_length=255, required=False)
    #: The user's teams and their own audiences, set per request by the admin.
    audience_hint: ClassVar[str] = ""

    class Meta:
        model = TrustedIssuer
        formfield_callback = https_by_default
        fields = ["team", "issuer", "jwks_url", "audience"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "audience" in self.fields:
            self.fields["audience"].help_text = (
                "The exact `aud` your workloads request. Leave blank for your team's own "
                f"audience ({self.audience_hint}); another team can never use it."
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        team = cleaned.get("team") or (self.instance.team if self.instance.team_id else None)
        if not cleaned.get("audience") and isinstance(team, Team):
            cleaned["audience"] = team.workload_audience
            self.instance.audience = cleaned["audience"]
        return cleaned


class TrustedIssuerRuleInline(TeamScopedInline, admin.TabularInline):
    model = TrustedIssuerRule
    fields = ["required_claims", "project", "environment"]
    verbose_name = "rule"

    def get_extra(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> int:
        return 1 if obj is None else 0


@admin.register(TrustedIssuer)
class TrustedIssuerAdmin(TeamScopedAdmin):
    form = TrustedIssuerForm
    list_display = ["issuer", "audience", "team", "rule_count"]
    list_select_related = ["team"]
    search_fields = ["issuer", "audience"]
    inlines = [TrustedIssuerRuleInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[TrustedIssuer]:
        return super().get_queryset(request).annotate(rule_total=Count("rules"))

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = ["team", "issuer", "jwks_url", "audience"]
        return fields if obj is None else [*fields, "team_audience"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Rules name the team's projects: the issuer cannot move to another team.
        return [] if obj is None else ["team", "team_audience"]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        teams = [obj.team] if obj else Team.objects.for_user(request.user, min_role=Role.MEMBER)
        hint = "; ".join(f"{team.name}: {team.workload_audience}" for team in teams)
        return type(form.__name__, (form,), {"audience_hint": hint})

    @admin.display(description="Your team's audience")
    def team_audience(self, obj: TrustedIssuer) -> str:
        return obj.team.workload_audience

    @admin.display(description="Rules", ordering="rule_total")
    def rule_count(self, obj: TrustedIssuer) -> int:
        return getattr(obj, "rule_total", 0)
