from django.db import models
from django.utils import timezone

from connect.models.base import SealedSecrets, TeamScopedQuerySet, public_id_field, sealed_field

UID_PATTERN = r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$"
COLOR_PATTERN = r"^#[0-9a-fA-F]{6}$"


class ConnectorType(models.TextChoices):
    SLACK = "slack", "Slack"
    GITHUB = "github", "GitHub App"
    LINEAR = "linear", "Linear"
    MICROSOFT = "microsoft", "Microsoft Entra"
    SALESFORCE = "salesforce", "Salesforce"
    DISCORD = "discord", "Discord"
    OAUTH = "oauth", "Custom OAuth 2.0 / OIDC"
    API_KEY = "api-key", "API key"


# Types whose tenant is the connector itself: exactly one implicit installation.
SINGLE_ACCOUNT_TYPES = frozenset(
    {ConnectorType.SALESFORCE, ConnectorType.DISCORD, ConnectorType.OAUTH, ConnectorType.API_KEY}
)


class ConnectorQuerySet(TeamScopedQuerySet):
    def with_installation_counts(self) -> "ConnectorQuerySet":
        return self.annotate(
            # Distinct: the join with grants repeats each installation once per grant.
            installation_count=models.Count(
                "installations", filter=models.Q(installations__status="active"), distinct=True
            ),
            unhealthy_grant_count=models.Count(
                "installations__grants",
                filter=~models.Q(installations__grants__status="active"),
            ),
        )


class Connector(SealedSecrets):
    Type = ConnectorType
    SEALED_FIELDS = ("client_secret", "private_key", "api_key", "trigger_signing_secret")

    public_id = public_id_field("scl")
    team = models.ForeignKey("connect.Team", on_delete=models.CASCADE, related_name="connectors")
    uid = models.CharField(
        max_length=120, help_text="service/name, e.g. slack/acme-bot. Used by the SDKs."
    )
    type = models.CharField(max_length=20, choices=ConnectorType.choices)
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
                condition=models.Q(type__in=ConnectorType.values),
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
    def is_single_account(self) -> bool:
        return self.type in SINGLE_ACCOUNT_TYPES
