from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters

from connect import charts, errors, presets
from connect.admin.forms import WriteOnlySecretField, WriteOnlySecretsForm
from connect.admin.one_time import OneTimeSecretsAdmin, keep_for_response
from connect.admin.scoping import TeamScopedAdmin, TeamScopedInline
from connect.kinds import AuthorizationKind
from connect.models import Connector, Installation, ProjectLink, TriggerDestination
from connect.providers import PROVIDERS, Provider, get_provider
from connect.services import authorizations, configuration, connectors, destinations, health
from connect.web_urls import web_url_or_empty

SECRET_LABELS = {
    "client_secret": "Client secret",
    "private_key": "Private key (PEM)",
    "api_key": "API key",
    "trigger_signing_secret": "Trigger signing secret",
}


def config_help(provider: Provider) -> str:
    """The configuration keys a type reads, for the JSON field's help (all optional unless
    noted)."""
    parts = [
        f"{f.key}{' (required)' if f.required else ''}: {f.help or f.label}"
        for f in provider.config_fields
        if f.data_name != ""  # not the values the app writes itself
    ]
    if provider.discovers_metadata:
        parts.append("or fill the endpoints by discovery below")
    return "; ".join(parts)


def secret_label(provider: Provider | None, name: str) -> str:
    """The provider's own name for a sealed secret."""
    declared = provider.secret_field(name) if provider else None
    return declared.label if declared else SECRET_LABELS[name]


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

    discovery_issuer = forms.URLField(
        required=False,
        label="Discover from issuer",
        help_text="oauth: an issuer URL; its RFC 8414 / OpenID metadata fills the endpoints.",
    )

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

    events_known = forms.MultipleChoiceField(
        required=False,
        label="Forward these events",
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked and no other types: every event is forwarded. A type also "
        "selects the types under it: issues selects issues.opened.",
    )
    events_other = forms.CharField(
        required=False,
        label="Other event types",
        help_text="Comma-separated, as the provider names them (e.g. issues.opened).",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        kind = str(self.data.get("type") or self.initial.get("type") or self.instance.type)
        provider = PROVIDERS.get(kind)
        for name in SECRET_LABELS:
            if name in self.fields:
                self.fields[name].label = secret_label(provider, name)
        if "config" in self.fields and provider is not None:
            self.fields["config"].help_text = config_help(provider)
        # Shown (and so written) only where the type's fieldsets show them: a form field the
        # page does not render posts nothing, which would read as "forward everything".
        self.events_shown = provider is not None and bool(
            provider.webhook_key or provider.secret_field("trigger_signing_secret")
        )
        known = list(provider.known_events) if provider is not None else []
        selected = self.instance.events if isinstance(self.instance.events, list) else []
        events_known = self.fields.get("events_known")
        if isinstance(events_known, forms.MultipleChoiceField):
            events_known.choices = [(e, e) for e in known]
            self.initial.setdefault("events_known", [e for e in selected if e in known])
        if "events_other" in self.fields:
            others = [str(e) for e in selected if e not in known]
            self.initial.setdefault("events_other", ", ".join(others))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.events_shown:
            # Checked by the model's rules (after this), with the message on the form.
            others = [e.strip() for e in (cleaned.get("events_other") or "").split(",")]
            chosen = [*(cleaned.get("events_known") or []), *(e for e in others if e)]
            self.instance.events = list(dict.fromkeys(chosen))
        issuer = cleaned.get("discovery_issuer")
        if issuer:
            try:
                discovered = connectors.connector_discover(issuer=issuer)
            except errors.ConnectError as exc:
                self.add_error("discovery_issuer", exc.message)
            else:
                cleaned["config"] = {**(cleaned.get("config") or {}), **discovered}
        return cleaned


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


class ChoicesReadOnce:
    """Every row of an inline offers the same projects and environments: read them once per
    page, not once per row (a connector with many destinations made a query per select)."""

    shared_choices: tuple[str, ...] = ("project", "environment")

    def formfield_for_foreignkey(
        self, db_field: Any, request: HttpRequest, **kwargs: Any
    ) -> forms.ModelChoiceField | None:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]
        if field is not None and db_field.name in self.shared_choices:
            if db_field.name == "environment":
                field.queryset = field.queryset.select_related("project")  # its name
            # Rendering reads this list; validation still asks the queryset.
            field.choices = list(field.choices)
        return field

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # Each row is titled by its project (and environment): loaded with the rows.
        queryset = super().get_queryset(request)  # type: ignore[misc]
        return queryset.select_related(*self.row_relations)

    row_relations: tuple[str, ...] = ("project",)


class ProjectLinkInline(ChoicesReadOnce, TeamScopedInline, admin.TabularInline):
    model = ProjectLink
    form = ProjectLinkForm
    extra = 0
    verbose_name = "project link"


class TriggerDestinationInline(ChoicesReadOnce, TeamScopedInline, admin.TabularInline):
    row_relations = ("project", "environment__project")
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


#: The connector page lists this many installations, the newest; the rest are one link away.
INSTALLATIONS_SHOWN = 20


class NewestInstallations(BaseInlineFormSet):
    """A connector with thousands of installations keeps a page of a few kilobytes."""

    def get_queryset(self) -> QuerySet[Installation]:
        if not hasattr(self, "_capped"):
            self._capped = (
                super().get_queryset().order_by("-created_at", "-pk")[:INSTALLATIONS_SHOWN]
            )
        return self._capped


class InstallationInline(TeamScopedInline, admin.TabularInline):
    model = Installation
    formset = NewestInstallations
    fields = INSTALLATION_INLINE_FIELDS
    readonly_fields = INSTALLATION_INLINE_FIELDS
    show_change_link = True
    extra = 0
    verbose_name_plural = f"installations (the newest {INSTALLATIONS_SHOWN})"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Connector)
class ConnectorAdmin(OneTimeSecretsAdmin, TeamScopedAdmin):
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
        ("Triggers", {"fields": ["triggers_enabled", "trigger_signing_secret", "events_other"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]

    change_form_template = "admin/connect/connector/change_form.html"
    change_list_template = "admin/connect/connector/change_list.html"

    @method_decorator(sensitive_post_parameters())  # the form posts the connector's secrets
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        return super().changeform_view(request, object_id, form_url, extra_context)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Connector]:
        return super().get_queryset(request).with_installation_counts()  # type: ignore[attr-defined]

    def _kind(self, request: HttpRequest, obj: Connector | None) -> str:
        if obj is not None:
            return obj.type
        kind = request.POST.get("type") or request.GET.get("type") or ""
        return kind if kind in PROVIDERS else ""

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        kind = self._kind(request, obj)
        if not kind:
            return self.fieldsets
        provider = get_provider(kind)
        secrets = [s.sealed for s in provider.secrets if s.sealed != "trigger_signing_secret"]
        settings_fields = [
            *(["client_id"] if provider.client_id_data_name else []),
            *secrets,
            "config",
            *(["discovery_issuer"] if provider.discovers_metadata else []),
            *(["default_scopes", "allowed_return_origins"] if provider.browser_flow else []),
        ]
        sets: list[Any] = [
            (None, {"fields": ["team", "type", "uid", "service", "name", "description"]}),
            (
                "Branding",
                {"fields": ["icon_url", "background_color", "accent_color", "branding_preview"]},
            ),
            (f"{provider.label} settings", {"fields": settings_fields}),
        ]
        events = ["events_known", "events_other"] if provider.known_events else ["events_other"]
        if provider.secret_field("trigger_signing_secret"):
            sets.append(
                ("Triggers", {"fields": ["triggers_enabled", "trigger_signing_secret", *events]})
            )
        elif provider.webhook_key:
            # Signed with the provider's own key (Discord's publicKey in the config): no secret.
            sets.append(("Triggers", {"fields": ["triggers_enabled", *events]}))
        if obj is not None:
            sets.append(
                ("Status", {"fields": ["public_id", "reconsent", "created_at", "updated_at"]})
            )
        return sets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [*self.readonly_fields, "reconsent"]

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        preset_id = request.GET.get("preset")
        if not preset_id:
            return initial
        try:
            preset = presets.preset_connector(
                preset_id, instance_url=request.GET.get("instance_url", "")
            )
        except presets.PresetError as exc:
            messages.error(request, str(exc))
            return initial
        return {
            **initial,
            "type": "oauth",
            "service": preset.service,
            "name": preset.name,
            "uid": f"{preset.service.replace('_', '-')}/default",
            "config": preset.config,
            "default_scopes": preset.default_scopes,
        }

    @admin.display(description="Must consent again")
    def reconsent(self, obj: Connector) -> str:
        stale = connectors.connector_reconsent_needed(connector=obj)
        if not stale:
            return "Nobody: every grant holds the connector's default scopes."
        names = ", ".join(f"{g.subject_type}:{g.subject_id or g.installation}" for g in stale[:20])
        more = f" and {len(stale) - 20} more" if len(stale) > 20 else ""
        return (
            f"{len(stale)} grant(s) predate the current default scopes and keep their old "
            f"scopes until they consent again: {names}{more}."
        )

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<path:object_id>/install-link/",
                self.admin_site.admin_view(self.install_link_view),
                name="connect_connector_install_link",
            ),
            path(
                "add-from-preset/",
                self.admin_site.admin_view(self.preset_view),
                name="connect_connector_preset",
            ),
            *super().get_urls(),
        ]

    def install_link_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """A fresh install link for a tenant (single use, 10 minutes), made by a member."""
        connector = self.get_object(request, object_id)
        if not self.has_change_permission(request, connector):
            raise PermissionDenied
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": connector,
            "title": f"Install link for {connector.name}",
        }
        if request.method == "POST":
            try:
                started = authorizations.authorization_start(
                    connector=connector,
                    kind=AuthorizationKind.INSTALL,
                    subject=None,
                    scopes=None,
                    tenant_hint=request.POST.get("tenant", "").strip(),
                    actor=request.user,
                )
            except errors.ConnectError as exc:
                messages.error(request, exc.message)
            else:
                context["link"] = started.url
                context["expires_at"] = started.flow.expires_at
        return TemplateResponse(request, "admin/connect/connector/install_link.html", context)

    def preset_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Add a connector from a preset",
            "presets": sorted(presets.PRESETS.values(), key=lambda p: p.name),
        }
        return TemplateResponse(request, "admin/connect/connector/preset.html", context)

    @admin.display(description="Installations", ordering="installation_count")
    def installations(self, obj: Connector) -> int:
        return getattr(obj, "installation_count", 0)

    @admin.display(description="Health")
    def health(self, obj: Connector) -> str:
        # Worked out for the whole page at once (``get_changelist_instance``).
        found = getattr(obj, "health", None)
        if found is None:
            found = health.connector_health(connector=obj)
        return render_to_string("admin/connect/health_badge.html", {"health": found})

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        found = health.connectors_health(connectors=changelist.result_list)
        for connector in changelist.result_list:
            connector.health = found[connector.pk]
        return changelist

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Connector | None = None,
    ) -> HttpResponse:
        if obj is not None and obj.pk is not None:
            context["connector_health"] = health.connector_health(connector=obj)
            context["activity_panels"] = charts.activity_panels(
                team_ids=[obj.team_id], connector_id=obj.pk
            )
            context["installations_shown"] = INSTALLATIONS_SHOWN
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description="Preview")
    def branding_preview(self, obj: Connector) -> str:
        # The colours come from the change form's nonce'd <style>: the policy allows no
        # style attribute.
        icon = web_url_or_empty(obj.icon_url)
        return format_html(
            '<div class="connect-brand">{}<strong>{}</strong></div>',
            format_html('<img src="{}" alt="" width="32" height="32">', icon) if icon else "",
            obj.name or "Connector name",
        )

    def save_model(self, request: HttpRequest, obj: Connector, form: Any, change: bool) -> None:
        if change and not form.has_changed():
            return  # nothing to save or audit; rows changed in the inlines record themselves
        entered = sorted(form.changed_secrets())
        held = {name: getattr(obj, obj.sealed_column(name)) for name in Connector.SEALED_FIELDS}
        connectors.connector_save(connector=obj, actor=request.user, changed_secrets=entered)
        replaced = [
            name
            for name, sealed in held.items()
            if sealed and name not in entered and getattr(obj, obj.sealed_column(name)) != sealed
        ]
        cleared = [name for name in replaced if not obj.has_secret(name)]
        if "private_key" in replaced and obj.has_secret("private_key"):
            messages.warning(
                request,
                "An address that receives its assertions changed, so the connector has a new "
                "client assertion key: "
                f"register {settings.PUBLIC_URL}/connect/connectors/{obj.public_id}/jwks.json "
                "(or its key) with the authorization server.",
            )
        if cleared:
            names = ", ".join(secret_label(obj.provider, n) for n in cleared)
            messages.warning(
                request,
                f"Cleared, because an address it is sent to changed: {names}. Enter it again; "
                "a secret is only sent where it was entered for.",
            )

    def save_formset(
        self, request: HttpRequest, form: forms.ModelForm, formset: BaseInlineFormSet, change: bool
    ) -> None:
        if formset.model is not TriggerDestination:
            super().save_formset(request, form, formset, change)
            return
        for destination in formset.save(commit=False):
            is_new = destination.pk is None
            destinations.destination_save(destination=destination, actor=request.user)
            if is_new:
                keep_for_response(
                    request,
                    f"Signing secret for {destination}",
                    destination.reveal("signing_secret"),
                )
        for destination in formset.deleted_objects:
            configuration.configuration_delete(obj=destination, actor=request.user)

    def response_add(
        self, request: HttpRequest, obj: Connector, post_url_continue: str | None = None
    ) -> HttpResponse:
        response = super().response_add(request, obj, post_url_continue)
        return self.with_kept_secrets(request, response, title="New destination signing secrets")

    def response_change(self, request: HttpRequest, obj: Connector) -> HttpResponse:
        response = super().response_change(request, obj)
        return self.with_kept_secrets(request, response, title="New destination signing secrets")
