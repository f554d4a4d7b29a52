import base64
import secrets
from typing import Any, ClassVar, cast

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from connect.models.base import SealedSecrets, TeamScopedQuerySet, public_id_field, sealed_field
from connect.models.projects import check_environment_of_project


def new_signing_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def no_base_url_message(environment: Any) -> str:
    """Why a destination on ``environment`` is refused (or its deliveries fail): nowhere to send."""
    return (
        f"The environment {environment} has no base URL, so deliveries would have nowhere to "
        "go: set its base URL first."
    )


class TriggerDestinationQuerySet(TeamScopedQuerySet):
    team_path = "connector__team"


class DisabledReason(models.TextChoices):
    """Why the app turned a destination off by itself (a member can turn it back on)."""

    GONE = "gone", "The receiver answered 410 Gone"
    FAILING = "failing", "Every attempt failed for 5 days"


class DestinationKind(models.TextChoices):
    """What a destination receives: the connector's inbound events, or the lifecycle of its
    connections (at most one per project link and environment)."""

    TRIGGER = "trigger", "Trigger events"
    LIFECYCLE = "lifecycle", "Lifecycle events"


class TriggerDestination(SealedSecrets):
    SEALED_FIELDS = ("signing_secret", "previous_signing_secret")

    public_id = public_id_field("dst")
    connector = models.ForeignKey(
        "connect.Connector", on_delete=models.CASCADE, related_name="destinations"
    )
    project = models.ForeignKey("connect.Project", on_delete=models.CASCADE, related_name="+")
    environment = models.ForeignKey(
        "connect.Environment", on_delete=models.CASCADE, related_name="destinations"
    )
    path = models.CharField(max_length=500, default="/", help_text="Appended to the base URL.")
    kind = models.CharField(
        max_length=10, choices=DestinationKind.choices, default=DestinationKind.TRIGGER
    )
    enabled = models.BooleanField(default=True)
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(
        max_length=20, blank=True, choices=DisabledReason.choices, editable=False
    )
    #: The start of the first failed attempt since the last success: five days of nothing but
    #: failures disable the destination.
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    #: Until then the receiver counts as slow (it let an attempt run into its deadline, or
    #: answered late): one worker at a time sends to it, so it cannot hold them all.
    slow_until = models.DateTimeField(null=True, blank=True, editable=False)
    signing_secret_sealed = sealed_field()
    previous_signing_secret_sealed = sealed_field()
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TriggerDestinationQuerySet.as_manager()

    class Meta:
        ordering = ["connector", "project", "environment", "path"]
        constraints = [
            models.UniqueConstraint(
                fields=["connector", "project", "environment", "path"],
                condition=models.Q(kind="trigger"),
                name="connect_triggerdestination_unique_target",
            ),
            models.UniqueConstraint(
                fields=["connector", "project", "environment"],
                condition=models.Q(kind="lifecycle"),
                name="connect_triggerdestination_one_lifecycle",
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=DestinationKind.values),
                name="connect_triggerdestination_kind_valid",
            ),
            # Whatever the app disabled says why.
            models.CheckConstraint(
                condition=models.Q(disabled_at__isnull=True)
                | models.Q(disabled_reason__in=DisabledReason.values),
                name="connect_triggerdestination_disabled_reason_valid",
            ),
            # Last (see migration 0006): SQLite introspection misreads literals after its ESCAPE.
            models.CheckConstraint(
                condition=models.Q(path__startswith="/"),
                name="connect_triggerdestination_path_absolute",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.environment_id and self.environment}{self.path}"

    def mark_enabled(self) -> None:
        """On again, by a member's choice: the record of why it was off goes with it."""
        self.enabled = True
        self.disabled_at = None
        self.disabled_reason = ""
        self.failing_since = None
        self.slow_until = None

    def clean(self) -> None:
        # On the add page the connector is not saved yet: the inline holds it unsaved.
        has_connector = self.connector_id or TriggerDestination.connector.is_cached(self)
        if has_connector and self.project_id and self.connector.team_id != self.project.team_id:
            raise ValidationError({"project": "Pick a project of the connector's team."})
        check_environment_of_project(self)
        if self.enabled and self.environment_id and not self.environment.base_url:
            raise ValidationError({"environment": no_base_url_message(self.environment)})


_TriggerDestinationManager = models.Manager.from_queryset(TriggerDestinationQuerySet)


class LifecycleDestinationManager(_TriggerDestinationManager):
    """Lifecycle rows only: saving a trigger destination through the proxy would turn it into
    a lifecycle one (``save`` sets the kind)."""

    def get_queryset(self) -> TriggerDestinationQuerySet:
        return cast(
            TriggerDestinationQuerySet,
            super().get_queryset().filter(kind=DestinationKind.LIFECYCLE),
        )


class LifecycleDestination(TriggerDestination):
    """A project link's lifecycle destination in one environment, as the admin edits it: the
    same row (and outbox) as a trigger destination, of the lifecycle kind."""

    objects: ClassVar[LifecycleDestinationManager] = LifecycleDestinationManager()

    class Meta:
        proxy = True
        verbose_name = "lifecycle destination"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.kind = DestinationKind.LIFECYCLE
        super().save(*args, **kwargs)
