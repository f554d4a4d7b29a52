"""One row per call through the authenticated proxy: who called what, and how it went."""

from django.db import models
from django.utils import timezone

from connect.models.base import TeamScopedQuerySet, public_id_field


class ProxyOutcome(models.TextChoices):
    #: The provider answered (any status: its 4xx and 5xx are its answer, passed through).
    ANSWERED = "answered", "Answered by the provider"
    #: Connect refused the call before the provider saw it (auth, path, size, limits, grant).
    REFUSED = "refused", "Refused by Connect"
    #: The provider did not answer in time, or could not be reached.
    FAILED = "failed", "Provider unreachable or too slow"


class ProxyCallQuerySet(TeamScopedQuerySet):
    team_path = "team"


class ProxyCall(models.Model):
    """A proxied call; neither token nor body is ever stored, and the path without its query.

    ``status`` is what the caller was answered (the provider's, or ours when refused);
    ``retried`` says the first answer was a 401 and the grant was refreshed for a second try.
    """

    Outcome = ProxyOutcome

    public_id = public_id_field("spx")
    team = models.ForeignKey("connect.Team", on_delete=models.CASCADE, related_name="+")
    connector = models.ForeignKey(
        "connect.Connector", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    grant = models.ForeignKey(
        "connect.Grant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    project = models.ForeignKey("connect.Project", on_delete=models.CASCADE, related_name="+")
    environment = models.CharField(max_length=60)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=512)
    outcome = models.CharField(max_length=10, choices=ProxyOutcome.choices)
    status = models.PositiveSmallIntegerField()
    #: Our error code when Connect answered (``invalid_request``, ``payload_too_large`` …).
    error_code = models.CharField(max_length=60, blank=True)
    retried = models.BooleanField(default=False)
    latency_ms = models.PositiveIntegerField()
    request_bytes = models.PositiveBigIntegerField(default=0)
    response_bytes = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    objects = ProxyCallQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["team", "-created_at"], name="connect_proxycall_team")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(outcome__in=ProxyOutcome.values),
                name="connect_proxycall_outcome_valid",
            )
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} → {self.status}"
