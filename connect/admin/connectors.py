from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet
from django.http import HttpRequest
from django.utils.html import format_html

from connect.admin.forms import WriteOnlySecretField, WriteOnlySecretsForm
from connect.admin.scoping import TeamScopedAdmin, TeamScopedInline
from connect.models import Connector, Installation, ProjectLink, TriggerDestination
from connect.services import connectors, destinations


class ConnectorForm(WriteOnlySecretsForm):
    client_secret = WriteOnlySecretField()
    private_key = WriteOnlySecretField(multiline=True)
    api_key = WriteOnlySecretField()
    trigger_signing_secret = WriteOnlySecretField()
    sealed_inputs = {
        "client_secret": "client_secret",
        "private_key": "private_key",
        "api_key": "api_key",
        "trigger_signing_secret": "trigger_signing_secret",
    }

    class Meta:
        model = Connector
        fields = [
            "team",
            "type",
            "uid",
            "service",
            "name",
            "description",
            "icon_url",
            "background_color",
            "accent_color",
            "client_id",
            "config",
            "default_scopes",
            "allowed_return_origins",
            "triggers_enabled",
        ]
        widgets = {
            "background_color": forms.TextInput(attrs={"type": "color"}),
            "accent_color": forms.TextInput(attrs={"type": "color"}),
        }


class ProjectLinkForm(forms.ModelForm):
    environments = forms.CharField(
        help_text="Comma-separated environment slugs, e.g. production, preview"
    )

    class Meta:
        model = ProjectLink
        fields = ["project", "environments"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["environments"] = ", ".join(self.instance.environments)

    def clean_environments(self) -> list[str]:
        slugs = [s.strip() for s in self.cleaned_data["environments"].split(",") if s.strip()]
        if not slugs:
            raise forms.ValidationError("Name at least one environment.")
        return list(dict.fromkeys(slugs))


class ProjectLinkInline(TeamScopedInline, admin.TabularInline):
    model = ProjectLink
    form = ProjectLinkForm
    extra = 0
    verbose_name = "project link"


class TriggerDestinationInline(TeamScopedInline, admin.TabularInline):
    model = TriggerDestination
    fields = ["project", "environment", "path", "enabled", "has_signing_secret"]
    readonly_fields = ["has_signing_secret"]
    extra = 0

    @admin.display(boolean=True, description="Signing secret set")
    def has_signing_secret(self, obj: TriggerDestination) -> bool:
        return obj.pk is not None and obj.has_secret("signing_secret")


INSTALLATION_INLINE_FIELDS = (
    "display_name",
    "tenant_id",
    "status",
    "is_default",
    "created_at",
)


class InstallationInline(TeamScopedInline, admin.TabularInline):
    model = Installation
    fields = INSTALLATION_INLINE_FIELDS
    readonly_fields = INSTALLATION_INLINE_FIELDS
    show_change_link = True
    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Connector)
class ConnectorAdmin(TeamScopedAdmin):
    form = ConnectorForm
    list_display = ["name", "uid", "type", "team", "installations", "health", "triggers_enabled"]
    list_filter = ["type", "triggers_enabled", ("team", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["team"]
    search_fields = ["name", "uid", "public_id"]
    readonly_fields = ["public_id", "branding_preview", "created_at", "updated_at"]
    inlines = [ProjectLinkInline, TriggerDestinationInline, InstallationInline]
    fieldsets = [
        (None, {"fields": ["team", "type", "uid", "service", "name", "description", "public_id"]}),
        (
            "Branding",
            {"fields": ["icon_url", "background_color", "accent_color", "branding_preview"]},
        ),
        (
            "Provider",
            {
                "fields": [
                    "client_id",
                    "client_secret",
                    "private_key",
                    "api_key",
                    "config",
                    "default_scopes",
                    "allowed_return_origins",
                ]
            },
        ),
        ("Triggers", {"fields": ["triggers_enabled", "trigger_signing_secret"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Connector]:
        return super().get_queryset(request).with_installation_counts()  # type: ignore[attr-defined]

    @admin.display(description="Installations", ordering="installation_count")
    def installations(self, obj: Connector) -> int:
        return getattr(obj, "installation_count", 0)

    @admin.display(description="Health")
    def health(self, obj: Connector) -> str:
        return connectors.connector_health(
            connector=obj, unhealthy_grants=getattr(obj, "unhealthy_grant_count", 0)
        )

    @admin.display(description="Preview")
    def branding_preview(self, obj: Connector) -> str:
        return format_html(
            '<div class="connect-brand" style="background:{};color:{}">{}<strong>{}</strong></div>',
            obj.background_color,
            obj.accent_color,
            format_html('<img src="{}" alt="" width="32" height="32">', obj.icon_url)
            if obj.icon_url
            else "",
            obj.name or "Connector name",
        )

    def save_model(self, request: HttpRequest, obj: Connector, form: Any, change: bool) -> None:
        connectors.connector_save(
            connector=obj, actor=request.user, changed_secrets=sorted(form.changed_secrets())
        )

    def save_formset(
        self, request: HttpRequest, form: forms.ModelForm, formset: BaseInlineFormSet, change: bool
    ) -> None:
        if formset.model is not TriggerDestination:
            super().save_formset(request, form, formset, change)
            return
        for destination in formset.save(commit=False):
            destinations.destination_save(destination=destination, actor=request.user)
        for destination in formset.deleted_objects:
            destination.delete()
