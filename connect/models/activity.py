from django.db import models

from connect.models.base import TeamScopedQuerySet


class ActivityKind(models.TextChoices):
    """What an hourly counter counts; its ``label`` says which of it (see each comment)."""

    #: Token requests answered; label: the outcome ("ok" or the error code).
    TOKEN = "token", "Token requests"
    #: Token request latency; label: the bucket's upper bound in ms ("inf" for the last).
    LATENCY = "latency", "Token latency"
    #: Delivery attempts; label: succeeded, retrying or failed.
    DELIVERY = "delivery", "Deliveries"
    #: Installations; label: added, removed, or removed_upstream (by the provider).
    INSTALL = "install", "Installations"
    #: Consent flows finished; label: their outcome (completed, denied, failed, expired).
    CONSENT = "consent", "Consents"
    #: Errors answered by the provider; label: the error type (invalid_client …).
    PROVIDER_ERROR = "provider_error", "Provider errors"


class ActivityCountQuerySet(TeamScopedQuerySet):
    pass


class ActivityCount(models.Model):
    """How many of one thing happened on one connector in one hour.

    Written in batches by ``connect.services.activity`` (never by the token request itself),
    read by the charts and health; a week of one connector is a few thousand small rows.
    """

    Kind = ActivityKind

    team = models.ForeignKey("connect.Team", on_delete=models.CASCADE, related_name="+")
    connector = models.ForeignKey("connect.Connector", on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    kind = models.CharField(max_length=20, choices=ActivityKind.choices)
    label = models.CharField(max_length=40)
    count = models.BigIntegerField(default=0)

    objects = ActivityCountQuerySet.as_manager()

    class Meta:
        ordering = ["-hour"]
        constraints = [
            models.UniqueConstraint(
                fields=["connector", "hour", "kind", "label"], name="connect_activitycount_unique"
            ),
        ]
        indexes = [
            # The index's charts read a team's hours; retention finds the oldest by hour.
            models.Index(fields=["team", "hour"], name="connect_activity_team_hour"),
            models.Index(fields=["hour"], name="connect_activity_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.label} at {self.hour:%Y-%m-%d %H}:00 = {self.count}"
