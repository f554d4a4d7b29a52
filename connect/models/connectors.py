import hashlib
import json
import re

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Coalesce
from django.utils import timezone

from connect.models.base import SealedSecrets, TeamScopedQuerySet, public_id_field, sealed_field
from connect.models.installations import Installation, InstallationStatus
from connect.providers import PROVIDERS, Provider, get_provider
from connect.providers.base import GRANT_TOKENS, ProviderCredentials
from connect.providers.schema import ConfigInvalid
from connect.web_urls import UnsafeURL, check_web_origin, check_web_url

UID_PATTERN = r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$"
COLOR_PATTERN = r"^#[0-9a-fA-F]{6}$"
#: An Ed25519 public key as Discord shows it: 32 bytes in hex.
PUBLIC_KEY_PATTERN = re.compile(r"[0-9a-fA-F]{64}")
#: A provider event type as an admin or the API may select it (``issues``, ``message.im``,
#: ``ENTITLEMENT_CREATE``): visible characters, not ending in the separator.
EVENT_TYPE_PATTERN = re.compile(r"[!-~]{0,119}[!-\-/-~]")
MAX_SELECTED_EVENTS = 200


def event_selected(selection: object, event_type: str) -> bool:
    """Whether ``event_type`` passes a connector's ``events`` selection: an empty selection
    passes everything; an entry passes itself and the types under it (``issues`` passes
    ``issues.opened``, not ``issues_comment``). Case as the provider spells it."""
    if not selection or not isinstance(selection, list):
        return True
    return any(
        isinstance(entry, str)
        and entry
        and (event_type == entry or event_type.startswith(entry + "."))
        for entry in selection
    )


def connector_type_choices() -> list[tuple[str, str]]:
    """The stored types with their labels, from the registry (read when a form is built, so a
    type registered later, as a test's, is offered too)."""
    return [(key, provider.label) for key, provider in PROVIDERS.items()]


#: The stored types as an enum (``ConnectorType.GITHUB``), built from the registry.
ConnectorType = models.TextChoices(  # type: ignore[call-overload]
    "ConnectorType",
    [(key.upper().replace("-", "_"), (key, p.label)) for key, p in PROVIDERS.items()],
)


class ConnectorQuerySet(TeamScopedQuerySet):
    def with_installation_counts(self) -> "ConnectorQuerySet":
        """Each connector's active installations, counted by a subquery on the (connector,
        status) index: no join that multiplies rows, no GROUP BY over the connectors."""

        active = (
            Installation.objects.filter(
                connector=models.OuterRef("pk"), status=InstallationStatus.ACTIVE
            )
            .order_by()
            .values("connector")
            .annotate(n=models.Count("pk"))
            .values("n")
        )
        return self.annotate(
            installation_count=Coalesce(
                models.Subquery(active, output_field=models.IntegerField()), 0
            )
        )


class Connector(SealedSecrets):
    Type = ConnectorType
    SEALED_FIELDS = ("client_secret", "private_key", "api_key", "trigger_signing_secret")

    public_id = public_id_field("scl")
    team = models.ForeignKey("connect.Team", on_delete=models.CASCADE, related_name="connectors")
    uid = models.CharField(
        max_length=120, help_text="service/name, e.g. slack/acme-bot. Used by the SDKs."
    )
    type = models.CharField(max_length=20, choices=connector_type_choices)
    service = models.CharField(
        max_length=60, help_text="The provider behind it: slack, github, google, notion…"
    )
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    icon_url = models.URLField(blank=True)
    background_color = models.CharField(max_length=7, default="#ffffff")
    accent_color = models.CharField(max_length=7, default="#111827")
    client_id = models.CharField(max_length=255, blank=True)
    config = models.JSONField(
        default=dict, blank=True, help_text="Public provider configuration: endpoints, app ids…"
    )
    default_scopes = models.JSONField(
        default=dict, blank=True, help_text='Per subject type, e.g. {"app": [...], "user": [...]}'
    )
    allowed_return_origins = models.JSONField(default=list, blank=True)
    triggers_enabled = models.BooleanField(default=False)
    #: Vercel's ``events``: the provider event types forwarded to destinations; empty, all of
    #: them. ``issues`` also selects ``issues.opened`` (see ``event_selected``).
    events = models.JSONField(default=list, blank=True)
    client_secret_sealed = sealed_field()
    private_key_sealed = sealed_field()
    api_key_sealed = sealed_field()
    trigger_signing_secret_sealed = sealed_field()
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = ConnectorQuerySet.as_manager()

    class Meta:
        ordering = ["team", "uid"]
        constraints = [
            models.UniqueConstraint(fields=["team", "uid"], name="connect_connector_unique_uid"),
            models.CheckConstraint(
                condition=models.Q(uid__regex=UID_PATTERN), name="connect_connector_uid_format"
            ),
            models.CheckConstraint(
                # A new type needs a migration for this list (``makemigrations`` writes it).
                condition=models.Q(type__in=list(PROVIDERS)),
                name="connect_connector_type_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(background_color__regex=COLOR_PATTERN)
                & models.Q(accent_color__regex=COLOR_PATTERN),
                name="connect_connector_colors_hex",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.uid})"

    @property
    def provider(self) -> Provider:
        """The driver of this connector's type (raises UnknownConnectorType)."""
        return get_provider(self.type)

    @property
    def is_single_account(self) -> bool:
        """The connector is its own tenant: exactly one implicit installation."""
        return self.provider.single_account

    def clean(self) -> None:
        problems: dict[str, list[str]] = {}
        problems_found = [*self._url_problems(), *self._trigger_problems(), *self._event_problems()]
        for field, message in problems_found:
            problems.setdefault(field, []).append(message)
        if problems:
            raise ValidationError(problems)

    def url_config_keys(self) -> dict[str, frozenset[str]]:
        """The keys of ``config`` that hold URLs, with what each receives (see the driver)."""
        if self.type not in PROVIDERS:
            return {}  # refused by the type's choices; nothing to check against
        return self.provider.url_config_keys

    def grant_endpoints_digest(self) -> str:
        """A digest of where grants' tokens are sent: the type and the URLs that receive them.
        Grants remember it when it changes (``Grant.tokens_belong_to``)."""
        config = self.config if isinstance(self.config, dict) else {}
        receivers = sorted(k for k, to in self.url_config_keys().items() if GRANT_TOKENS in to)
        material = json.dumps([self.type, [[k, str(config.get(k) or "")] for k in receivers]])
        return hashlib.sha256(material.encode()).hexdigest()

    def provider_credentials(self) -> ProviderCredentials:
        """The configuration with its secrets opened, for one provider call (never stored)."""
        return ProviderCredentials(
            type=self.type,
            client_id=self.client_id,
            config=self.config,
            client_secret=self.reveal("client_secret"),
            private_key=self.reveal("private_key"),
            api_key=self.reveal("api_key"),
            key_id=str(self.config.get("clientAssertionKeyId", "")),
        )

    def _url_problems(self) -> list[tuple[str, str]]:
        problems = []
        if self.icon_url:
            try:
                check_web_url(self.icon_url)
            except UnsafeURL as exc:
                problems.append(("icon_url", f"The icon URL {exc}."))
        if not isinstance(self.config, dict):
            problems.append(("config", "The configuration must be a JSON object."))
        elif self.type in PROVIDERS:
            try:
                self.provider.validate_config(self.config)
            except ConfigInvalid as exc:
                problems.extend(("config", m) for messages in exc.errors.values() for m in messages)
        origins = self.allowed_return_origins
        if not isinstance(origins, list):
            problems.append(("allowed_return_origins", "A JSON list of origins."))
        else:
            for origin in origins:
                try:
                    check_web_origin(origin)
                except UnsafeURL as exc:
                    problems.append(("allowed_return_origins", f"{origin!r} {exc}."))
        return problems

    def event_selected(self, event_type: str) -> bool:
        """Whether an inbound event of this type is forwarded: every type when ``events`` is
        empty, else a listed type or one under it (``issues`` selects ``issues.opened``)."""
        return event_selected(self.events, event_type)

    def _event_problems(self) -> list[tuple[str, str]]:
        events = self.events
        if not isinstance(events, list):
            return [("events", "A JSON list of provider event types.")]
        if len(events) > MAX_SELECTED_EVENTS:
            return [("events", f"At most {MAX_SELECTED_EVENTS} event types.")]
        problems = []
        for entry in events:
            if not isinstance(entry, str) or not EVENT_TYPE_PATTERN.fullmatch(entry):
                problems.append(
                    (
                        "events",
                        f"{entry!r} is not an event type: up to 120 visible characters, "
                        "no spaces, not ending in a dot.",
                    )
                )
        if len(set(map(str, events))) != len(events):
            problems.append(("events", "Each event type once."))
        return problems

    def _trigger_problems(self) -> list[tuple[str, str]]:
        """Triggers only with what verifies them: an empty key would let anyone sign."""
        if not self.triggers_enabled:
            return []
        if self.type not in PROVIDERS:
            return []  # refused by the type's choices
        key = self.provider.webhook_key
        if key is None:
            return [
                ("triggers_enabled", f"{self.provider.label} connectors do not receive webhooks.")
            ]
        where, name = key
        if where == "config":
            value = self.config.get(name) if isinstance(self.config, dict) else None
            if not isinstance(value, str) or not PUBLIC_KEY_PATTERN.fullmatch(value):
                return [
                    (
                        "triggers_enabled",
                        f"Set {name} in the configuration (the application's Ed25519 public "
                        "key, 64 hex characters) before enabling triggers.",
                    )
                ]
        elif not self.has_secret(name):
            return [
                (
                    "triggers_enabled",
                    "Set the webhook signing secret before enabling triggers: without it no "
                    "webhook can be verified.",
                )
            ]
        return []
