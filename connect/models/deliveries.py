from datetime import datetime

from django.db import models
from django.utils import timezone

from connect.ids import generate
from connect.models.base import TeamScopedQuerySet, log_team_field, public_id_field


class InboundEventQuerySet(TeamScopedQuerySet):
    team_path = "team"


class InboundEvent(models.Model):
    """A provider webhook as received: raw body, redacted headers, whether it verified."""

    public_id = public_id_field("trq")
    team = log_team_field()
    connector = models.ForeignKey(
        "connect.Connector", on_delete=models.CASCADE, related_name="inbound_events"
    )
    installation = models.ForeignKey(
        "connect.Installation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    provider_event_id = models.CharField(max_length=255, blank=True)
    event_type = models.CharField(max_length=120, blank=True)
    tenant_id = models.CharField(max_length=255, blank=True)
    headers = models.JSONField(default=dict)
    content_type = models.CharField(max_length=255, blank=True)
    body = models.BinaryField()
    #: Hex SHA-256 of the body. With the replay slots below it makes the same body on the same
    #: connector within the replay window a duplicate (``connect.services.triggers``).
    body_sha256 = models.CharField(max_length=64, blank=True, editable=False)
    replay_slot_even = models.BigIntegerField(null=True, blank=True, editable=False)
    replay_slot_odd = models.BigIntegerField(null=True, blank=True, editable=False)
    verified = models.BooleanField(default=False)
    #: Received and recorded, but not forwarded: the connector's ``events`` do not select its
    #: type. It has no deliveries (a replay sends it nowhere).
    skipped = models.BooleanField(default=False)
    received_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = InboundEventQuerySet.as_manager()

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["connector", "provider_event_id"],
                condition=~models.Q(provider_event_id=""),
                name="connect_inboundevent_unique_provider_event",
            ),
            # Unique, so two copies of one request racing each other cannot both be stored.
            models.UniqueConstraint(
                fields=["connector", "body_sha256", "replay_slot_even"],
                name="connect_inboundevent_unique_body_even_slot",
            ),
            models.UniqueConstraint(
                fields=["connector", "body_sha256", "replay_slot_odd"],
                name="connect_inboundevent_unique_body_odd_slot",
            ),
        ]
        indexes = [
            models.Index(fields=["connector", "-received_at"], name="connect_event_recent"),
            # Retention finds the oldest events across every connector by it.
            models.Index(fields=["received_at"], name="connect_event_received"),
            models.Index(fields=["team", "-received_at"], name="connect_event_team_recent"),
        ]

    def __str__(self) -> str:
        return self.public_id


class LifecycleEventType(models.TextChoices):
    """What happened to a connection, as the app's lifecycle destination is told."""

    INSTALLATION_CREATED = "installation.created"
    INSTALLATION_REMOVED = "installation.removed"
    GRANT_CREATED = "grant.created"
    GRANT_NEEDS_REAUTH = "grant.needs_reauth"
    GRANT_RECOVERED = "grant.recovered"
    GRANT_REVOKED = "grant.revoked"
    CONNECTOR_SECRET_FAILED = "connector.secret_failed"
    CONNECTOR_SECRET_RECOVERED = "connector.secret_recovered"


class LifecycleEventQuerySet(TeamScopedQuerySet):
    team_path = "connector__team"


class LifecycleEvent(models.Model):
    """A transition of an installation, a grant or a connector, as delivered: the JSON body is
    written once, with the transition, and sent as it is (its ``id`` is the webhook-id)."""

    Type = LifecycleEventType

    public_id = public_id_field("evt")
    connector = models.ForeignKey(
        "connect.Connector", on_delete=models.CASCADE, related_name="lifecycle_events"
    )
    type = models.CharField(max_length=40, choices=LifecycleEventType.choices)
    installation_public_id = models.CharField(max_length=40, blank=True)
    grant_public_id = models.CharField(max_length=40, blank=True)
    body = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = LifecycleEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["connector", "-created_at"], name="connect_lifecycle_recent"),
            models.Index(fields=["created_at"], name="connect_lifecycle_created"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.public_id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERING = "delivering", "Delivering"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


def new_webhook_id() -> str:
    return generate("msg")


class DeliveryQuerySet(TeamScopedQuerySet):
    team_path = "team"

    def due(self, now: datetime) -> "DeliveryQuerySet":
        """Rows a worker should take: pending and due, or delivering with a lapsed lease."""
        return self.filter(
            models.Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            | models.Q(status=DeliveryStatus.DELIVERING, lease_until__lte=now)
        )

    def claimable(self, now: datetime) -> "DeliveryQuerySet":
        """Due rows, less those of a slow destination a worker is already sending to: a slow
        receiver holds one worker at a time, and the others serve everyone else."""
        busy = Delivery.objects.filter(
            status=DeliveryStatus.DELIVERING, lease_until__gt=now
        ).values("destination_id")
        return self.due(now).exclude(destination__slow_until__gt=now, destination_id__in=busy)


class Delivery(models.Model):
    """The transactional outbox: one row per (event, destination), claimed under a lease. The
    event is an inbound one (a trigger) or a lifecycle one, never both."""

    Status = DeliveryStatus

    team = log_team_field()
    event = models.ForeignKey(
        InboundEvent, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    lifecycle_event = models.ForeignKey(
        LifecycleEvent, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    destination = models.ForeignKey(
        "connect.TriggerDestination", on_delete=models.CASCADE, related_name="deliveries"
    )
    #: Unique per destination: a lifecycle event goes to each destination under its own id.
    webhook_id = models.CharField(max_length=40, default=new_webhook_id, editable=False)
    status = models.CharField(
        max_length=12, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "destination"], name="connect_delivery_unique_destination"
            ),
            models.UniqueConstraint(
                fields=["lifecycle_event", "destination"],
                name="connect_delivery_unique_lifecycle_destination",
            ),
            models.UniqueConstraint(
                fields=["webhook_id", "destination"], name="connect_delivery_unique_webhook_id"
            ),
            models.CheckConstraint(
                condition=models.Q(event__isnull=False, lifecycle_event__isnull=True)
                | models.Q(event__isnull=True, lifecycle_event__isnull=False),
                name="connect_delivery_one_event",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=DeliveryStatus.values),
                name="connect_delivery_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="connect_delivery_due"),
            # The admin list's order, and its filters by status and destination.
            models.Index(fields=["-created_at"], name="connect_delivery_newest"),
            models.Index(fields=["team", "-created_at"], name="connect_delivery_team_recent"),
            models.Index(fields=["status", "-created_at"], name="connect_delivery_by_status"),
            models.Index(fields=["destination", "-created_at"], name="connect_delivery_by_dest"),
            # Search by the start of a webhook-id (LIKE 'msg_…%', PostgreSQL).
            models.Index(
                fields=["webhook_id"],
                opclasses=["varchar_pattern_ops"],
                name="connect_delivery_webhook_like",
            ),
        ]

    def __str__(self) -> str:
        return self.webhook_id

    @property
    def payload_public_id(self) -> str:
        """The public id of what this delivery carries: an inbound event or a lifecycle event."""
        payload = self.event if self.event_id is not None else self.lifecycle_event
        assert payload is not None  # a check constraint: exactly one of the two
        return payload.public_id


class DeliveryAttemptQuerySet(TeamScopedQuerySet):
    team_path = "team"


class DeliveryAttempt(models.Model):
    team = log_team_field()
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    started_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)

    objects = DeliveryAttemptQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        # Retention deletes the oldest by it; /metrics counts the last minutes' by it.
        indexes = [
            models.Index(fields=["started_at"], name="connect_attempt_started"),
            models.Index(fields=["team", "-started_at"], name="connect_attempt_team_recent"),
        ]

    def __str__(self) -> str:
        outcome = self.status_code if self.status_code is not None else (self.error or "no answer")
        return f"attempt at {self.started_at:%Y-%m-%d %H:%M:%S}: {outcome}"
