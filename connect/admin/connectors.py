from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.widgets import RelatedFieldWidgetWrapper
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from connect import charts, errors, presets
from connect.admin import config_inputs
from connect.admin.config_inputs import LinesField
from connect.admin.forms import WriteOnlySecretField, WriteOnlySecretsForm, https_by_default
from connect.admin.one_time import OneTimeSecretsAdmin, keep_for_response
from connect.admin.scoping import ReadOnlyInline, TeamScopedAdmin, TeamScopedInline
from connect.kinds import AuthorizationKind
from connect.models import (
    Connector,
    Environment,
    Installation,
    LifecycleDestination,
    ProjectLink,
    TriggerDestination,
)
from connect.models.destinations import DestinationKind
from connect.providers import PROVIDERS, Provider, get_provider
from connect.services import (
    authorizations,
    connectors,
    destinations,
    dry_runs,
    health,
)
from connect.services.authorizations import redirect_uri
from connect.web_urls import is_web_url, web_url_or_empty

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
        assume_scheme="https",
        required=False,
        label="Discover from issuer",
        help_text="oauth: an issuer URL; its RFC 8414 / OpenID metadata fills the endpoints.",
    )

    class Meta:
        model = Connector
        formfield_callback = https_by_default
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
            "check_interval_seconds",
        ]
        widgets = {
            "background_color": forms.TextInput(attrs={"type": "color"}),
            "accent_color": forms.TextInput(attrs={"type": "color"}),
        }

    allowed_return_origins = LinesField(
        label="Allowed return origins",
        help_text="One origin per line, e.g. https://app.example.com: where a finished install "
        "or consent may send the browser back to.",
    )

    #: The type whose typed inputs this form class carries (``typed_connector_form``).
    provider: Provider | None = None

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
        if self.provider is not None:
            # A preset hands its configuration over whole; the inputs show it key by key.
            config = self.initial.get("config", self.instance.config)
            self.initial.update(config_inputs.initial_inputs(self.provider, config))
            scopes = self.initial.get("default_scopes", self.instance.default_scopes)
            for subject in scope_subjects(self.provider):
                if isinstance(scopes, dict) and scopes.get(subject):
                    self.initial[f"scopes_{subject}"] = scopes[subject]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.provider is not None and "config" not in self.fields:
            config, refused = config_inputs.config_from_inputs(
                self.provider, cleaned, self.instance.config
            )
            for name, message in refused.items():
                self.add_error(name, message)
            self.instance.config = config
            scopes = dict(self.instance.default_scopes or {})
            for subject in scope_subjects(self.provider):
                name = f"scopes_{subject}"
                if name in self.fields:
                    scopes[subject] = cleaned.get(name) or []
            self.instance.default_scopes = {k: v for k, v in scopes.items() if v}
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
                if "config" in self.fields:
                    cleaned["config"] = {**(cleaned.get("config") or {}), **discovered}
                else:
                    self.instance.config = {**self.instance.config, **discovered}
        return cleaned


def scope_subjects(provider: Provider) -> list[str]:
    """The subject types whose default scopes the form asks for."""
    if not provider.browser_flow:
        return []
    return [s for s in ("app", "user") if s in provider.subject_types]


def typed_connector_form(provider: Provider) -> type[ConnectorForm]:
    """The connector form for one type: an input per declared configuration key and a scope
    list per subject type, drawn from the registry."""
    attrs: dict[str, Any] = {"provider": provider, **config_inputs.config_formfields(provider)}
    for subject in scope_subjects(provider):
        attrs[f"scopes_{subject}"] = LinesField(
            label=f"Default scopes ({subject} tokens)",
            help_text="One scope per line; asked for when nothing else is named.",
        )
    return type(f"{provider.__class__.__name__}ConnectorForm", (ConnectorForm,), attrs)


class ProjectLinkForm(forms.ModelForm):
    environments = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        help_text="The environments whose deployments may use this connector.",
    )

    class Meta:
        model = ProjectLink
        fields = ["project", "environments"]

    def __init__(
        self,
        *args: Any,
        environments: "EnvironmentNames | None" = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # The project's environments; for a new row (no project yet) those of every project
        # the user may link, checked against the chosen project on save.
        project_id = self.instance.project_id if self.instance.pk else None
        if environments is None:
            environments = EnvironmentNames(self.fields["project"].queryset)  # type: ignore[attr-defined]
        names = environments.of(project_id)
        stored = list(self.instance.environments or []) if self.instance.pk else []
        for slug in stored:
            names.setdefault(slug, ["no longer in the project"])
        self.fields["environments"].choices = [  # type: ignore[attr-defined]
            (slug, slug if project_id else f"{slug} ({', '.join(owners)})")
            for slug, owners in sorted(names.items())
        ]
        if self.instance.pk:
            self.initial["environments"] = stored

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        project, slugs = self.cleaned_data.get("project"), self.cleaned_data.get("environments")
        if project is not None and slugs:
            known = set(project.environments.values_list("slug", flat=True))
            kept = set(self.instance.environments or []) if self.instance.pk else set()
            unknown = [s for s in slugs if s not in known and s not in kept]
            if unknown:
                self.add_error(
                    "environments",
                    f"{project.name} has no environment {', '.join(unknown)}.",
                )
        return cleaned

    def clean_environments(self) -> list[str]:
        slugs = self.cleaned_data["environments"]
        if not slugs:
            raise forms.ValidationError("Tick at least one environment.")
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
            # Rendering reads this list; validation still asks the queryset. Read once per
            # request for every inline that offers the same rows, through an iterator: ``list``
            # asks an iterable for its length first, a COUNT query.
            read: dict[str, list[Any]] = request.__dict__.setdefault("_connect_choices", {})
            query = field.queryset.query
            key = "" if query.is_empty() else str(query)  # the SQL names the rows offered
            if key not in read:
                read[key] = list(iter(field.choices))
            field.choices = read[key]
        return field

    def formfield_for_dbfield(
        self, db_field: Any, request: HttpRequest, **kwargs: Any
    ) -> forms.Field | None:
        field = super().formfield_for_dbfield(db_field, request, **kwargs)  # type: ignore[misc]
        # A plain select: a row of a table needs no add/change/view pop-up links, which took
        # most of each row's size and rendering time.
        if field is not None and isinstance(field.widget, RelatedFieldWidgetWrapper):
            field.widget = field.widget.widget
        return field

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # Each row is titled by its project (and environment): loaded with the rows.
        queryset = super().get_queryset(request)  # type: ignore[misc]
        return queryset.select_related(*self.row_relations)

    row_relations: tuple[str, ...] = ("project",)


class EnvironmentNames:
    """The environments of the projects a user may link, read once for a whole formset (each
    row, and each copy of the empty row the page draws, read them again): slug to the names of
    the projects that have it."""

    #: A new row offers at most this many (the first by slug); a linked row always its own.
    LIMIT = 200

    def __init__(self, projects: QuerySet[Any]) -> None:
        self.projects = projects
        self._rows: list[tuple[int, str, str]] | None = None

    def of(self, project_id: int | None) -> dict[str, list[str]]:
        """One project's environments, or every project's (a new row) when None."""
        if self._rows is None:
            self._rows = self._read(Environment.objects.filter(project__in=self.projects))
        rows = self._rows
        if project_id is not None and len(rows) == self.LIMIT:
            # Cut short: this project's may lie beyond the first ones.
            rows = self._read(Environment.objects.filter(project_id=project_id))
        names: dict[str, list[str]] = {}
        for owner, slug, project_name in rows:
            if project_id is None or owner == project_id:
                names.setdefault(slug, []).append(project_name)
        return names

    def _read(self, environments: QuerySet[Environment]) -> list[tuple[int, str, str]]:
        return list(
            environments.order_by("slug", "project__name").values_list(
                "project_id", "slug", "project__name"
            )[: self.LIMIT]
        )


class ProjectLinkFormSet(BaseInlineFormSet):
    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        kwargs = super().get_form_kwargs(index)
        if not hasattr(self, "_environments"):
            self._environments = EnvironmentNames(self.form.base_fields["project"].queryset)  # type: ignore[attr-defined]
        kwargs["environments"] = self._environments
        return kwargs


class ProjectLinkInline(ChoicesReadOnce, TeamScopedInline, admin.TabularInline):
    model = ProjectLink
    form = ProjectLinkForm
    formset = ProjectLinkFormSet
    fields = ["project", "environments"]  # declared: the admin builds no formset to find them
    extra = 0
    verbose_name = "project link"


class TriggerDestinationInline(ChoicesReadOnce, TeamScopedInline, admin.TabularInline):
    row_relations = ("project", "environment__project")
    model = TriggerDestination
    fields = ["project", "environment", "path", "enabled", "has_signing_secret"]
    readonly_fields = ["has_signing_secret"]
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[TriggerDestination]:
        return super().get_queryset(request).filter(kind=DestinationKind.TRIGGER)

    @admin.display(boolean=True, description="Signing secret set")
    def has_signing_secret(self, obj: TriggerDestination) -> bool:
        return obj.pk is not None and obj.has_secret("signing_secret")


class LifecycleDestinationFormSet(BaseInlineFormSet):
    @classmethod
    def get_default_prefix(cls) -> str:
        # Its own: the trigger destinations' inline has the relation's name.
        return "lifecycle_destinations"


class LifecycleDestinationInline(TriggerDestinationInline):
    """Where the app hears of installations and grants made, broken, recovered or removed:
    one path per project link and environment."""

    model = LifecycleDestination
    formset = LifecycleDestinationFormSet
    verbose_name = "lifecycle destination"
    verbose_name_plural = "lifecycle destinations (installation and grant events)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[TriggerDestination]:
        rows = super(TriggerDestinationInline, self).get_queryset(request)
        return rows.filter(kind=DestinationKind.LIFECYCLE)


INSTALLATION_INLINE_FIELDS = (
    "shown_name",
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


class InstallationInline(ReadOnlyInline, admin.TabularInline):
    model = Installation
    formset = NewestInstallations
    fields = INSTALLATION_INLINE_FIELDS
    readonly_fields = INSTALLATION_INLINE_FIELDS
    show_change_link = True
    extra = 0
    verbose_name_plural = f"installations (the newest {INSTALLATIONS_SHOWN})"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Installation]:
        return super().get_queryset(request).select_related("connector")

    @admin.display(description="Name")
    def shown_name(self, obj: Installation) -> str:
        return installation_name(obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def installation_name(installation: Installation) -> str:
    """An installation's name, and for a client-credentials type's own installation what it
    is: the connector is its own tenant, so the app made it when the connector was saved."""
    connector = installation.connector
    if connector.provider.single_account and installation.tenant_id == connector.public_id:
        return format_html(
            '<strong>Automatic installation</strong><div class="help">{}</div>',
            f"{connector.provider.label} connectors authenticate as the app itself (client "
            "credentials or a key): the connector is its own tenant, so this installation was "
            "made when it was saved and nobody installs it.",
        )
    return installation.display_name or "—"


@dataclass(frozen=True)
class SetupItem:
    label: str
    value: str
    help: str = ""


@dataclass(frozen=True)
class SetupPanel:
    """What to register at the provider for one connector (or type, before it is saved)."""

    items: list[SetupItem]
    links: list[tuple[str, str]]


def setup_panel(provider: Provider, connector: Connector | None) -> SetupPanel:
    """The "Set up at the provider" panel: the redirect URI, the trigger URL, the scopes to
    grant the app, and where the app's settings are."""
    items: list[SetupItem] = []
    if provider.browser_flow:
        items.append(
            SetupItem(
                "Redirect URI",
                redirect_uri(),
                "Register it as the app's redirect (callback) URL.",
            )
        )
    if provider.webhook_key is not None:
        if connector is not None and connector.public_id:
            url = f"{settings.PUBLIC_URL}/connect/trigger/{connector.public_id}"
            items.append(
                SetupItem("Trigger URL", url, "Where the provider sends its webhooks (events).")
            )
        else:
            items.append(SetupItem("Trigger URL", "", "Shown once the connector is saved."))
    scopes: list[str] = []
    if connector is not None:
        for value in (connector.default_scopes or {}).values():
            scopes.extend(value if isinstance(value, list) else [])
        for f in provider.config_fields:
            value = connector.config.get(f.key)
            if f.kind == "list" and f.key.endswith("Scopes") and isinstance(value, list):
                scopes.extend(value)
    if scopes:
        items.append(
            SetupItem(
                "Scopes",
                " ".join(dict.fromkeys(str(s) for s in scopes)),
                "Grant the app these scopes (the defaults asked for, and the app's own).",
            )
        )
    links = [(label, url) for label, url in provider.setup_links.items() if is_web_url(url)]
    return SetupPanel(items=items, links=links)


@admin.register(Connector)
class ConnectorAdmin(OneTimeSecretsAdmin, TeamScopedAdmin):
    form = ConnectorForm
    saved_secrets_title = "New destination signing secrets"
    list_display = ["name", "uid", "type", "team", "installations", "health", "triggers_enabled"]
    list_filter = ["type", "triggers_enabled", ("team", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["team"]
    search_fields = ["name", "uid", "public_id"]
    readonly_fields = ["public_id", "branding_preview", "created_at", "updated_at"]
    inlines = [
        ProjectLinkInline,
        TriggerDestinationInline,
        LifecycleDestinationInline,
        InstallationInline,
    ]
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

    def get_queryset(self, request: HttpRequest) -> QuerySet[Connector]:
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name == "connect_connector_changelist":
            # The list's column; a connector's own page counts nothing (thousands of rows).
            return queryset.with_installation_counts()  # type: ignore[attr-defined]
        return queryset

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[Any]:
        kind = self._kind(request, obj)
        if kind and not get_provider(kind).trigger_scheme:
            # A type that receives no webhooks (an API key, client credentials) is offered no
            # trigger destinations; ones made before (through the API) still show.
            has_some = (
                obj is not None
                and obj.pk is not None
                and obj.destinations.filter(kind=DestinationKind.TRIGGER).exists()
            )
            if not has_some:
                return [i for i in self.inlines if i is not TriggerDestinationInline]
        return list(self.inlines)

    def _kind(self, request: HttpRequest, obj: Connector | None) -> str:
        if obj is not None:
            return obj.type
        kind = request.POST.get("type") or request.GET.get("type") or ""
        return kind if kind in PROVIDERS else ""

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        kind = self._kind(request, obj)
        if not kind:
            # The type decides every other input: it is chosen first (links above the form).
            return [
                (None, {"fields": ["team", "type", "uid", "service", "name", "description"]}),
                ("Branding", {"fields": ["icon_url", "background_color", "accent_color"]}),
            ]
        provider = get_provider(kind)
        secrets = [s.sealed for s in provider.secrets if s.sealed != "trigger_signing_secret"]
        settings_fields = [
            *(["client_id"] if provider.client_id_data_name else []),
            *secrets,
            *(["discovery_issuer"] if provider.discovers_metadata else []),
            *config_inputs.config_formfields(provider),
            *(f"scopes_{subject}" for subject in scope_subjects(provider)),
            *(["allowed_return_origins"] if provider.browser_flow else []),
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
            # On the change page only: a new connector starts with the daily default.
            sets.append(
                ("Credential checks", {"fields": ["check_interval_seconds", "secret_health"]})
            )
            sets.append(
                ("Status", {"fields": ["public_id", "reconsent", "created_at", "updated_at"]})
            )
        return sets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [*self.readonly_fields, "reconsent", "secret_health"]

    @admin.display(description="Its own secret")
    def secret_health(self, obj: Connector) -> str:
        if obj.pk is None or (obj.next_check_at is None and obj.secret_failed_at is None):
            return "Not checked yet."
        if obj.secret_failed_at is not None:
            return (
                f"Failing since {obj.secret_failed_at:%Y-%m-%d %H:%M} UTC: "
                f"{obj.last_check_error or 'refused'}"
            )
        return f"Working; next check {obj.next_check_at:%Y-%m-%d %H:%M} UTC."

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        kind = self._kind(request, obj)
        if kind:
            kwargs["form"] = typed_connector_form(get_provider(kind))
        return super().get_form(request, obj, change, **kwargs)

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
        names = ", ".join(str(grant) for grant in stale[:20])
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
                "<path:object_id>/test/",
                self.admin_site.admin_view(self.test_view),
                name="connect_connector_test",
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

    def test_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The "Test" button: a dry run at the provider, by a member, its result as messages."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        connector = self.get_object(request, object_id)
        if not self.has_change_permission(request, connector):
            raise PermissionDenied
        checks = dry_runs.connector_dry_run(connector=connector)
        failed = [c for c in checks if c.ok is False]
        level = messages.ERROR if failed else messages.SUCCESS
        summary = (
            f"Test failed: {len(failed)} of the checks did not pass."
            if failed
            else "Test passed: the provider accepts these settings."
        )
        messages.add_message(request, level, summary)
        for check in checks:
            mark = {True: "✓", False: "✗", None: "-"}[check.ok]
            messages.add_message(
                request,
                messages.ERROR if check.ok is False else messages.INFO,
                f"{mark} {check.name}: {check.detail}",
            )
        return HttpResponseRedirect(reverse("admin:connect_connector_change", args=[connector.pk]))

    def preset_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Add a connector from a preset",
            "query": request.GET.get("q", "").strip(),
            "total": len(presets.all_presets()),
        }
        context["presets"] = presets.search(context["query"])
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
        connector = obj if obj is not None and obj.pk is not None else None
        kind = self._kind(request, connector)
        context["setup"] = setup_panel(get_provider(kind), connector) if kind else None
        context["can_test"] = connector is not None and self.has_change_permission(
            request, connector
        )
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
        if formset.model not in (TriggerDestination, LifecycleDestination):
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
            self.delete_inline(request, destination)
