import hashlib
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from connect import kinds
from connect.models.base import SealedSecrets, TeamScopedQuerySet, public_id_field, sealed_field


def verifier_digest(verifier: str) -> str:
    return hashlib.sha256(verifier.encode()).hexdigest()


class AuthorizationKind(models.TextChoices):
    """``connect.kinds.AuthorizationKind`` with labels (drivers import that one)."""

    INSTALL = kinds.AuthorizationKind.INSTALL.value, "Install"
    CONSENT = kinds.AuthorizationKind.CONSENT.value, "Consent"


class AuthorizationOutcome(models.TextChoices):
    PENDING = "pending", "Pending"
    COMPLETED = "completed", "Completed"
    DENIED = "denied", "Denied"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"


class AuthorizationRequestQuerySet(TeamScopedQuerySet):
    team_path = "connector__team"

    def lapsed(self, now: datetime) -> "AuthorizationRequestQuerySet":
        return self.filter(outcome=AuthorizationOutcome.PENDING, expires_at__lte=now)


class AuthorizationRequest(SealedSecrets):
    """A pending install or consent flow. Its state is single use and it lapses after its TTL."""

    Kind = AuthorizationKind
    Outcome = AuthorizationOutcome
    SEALED_FIELDS = ("pkce_verifier",)

    public_id = public_id_field("sca")
    kind = models.CharField(max_length=10, choices=AuthorizationKind.choices)
    connector = models.ForeignKey(
        "connect.Connector", on_delete=models.CASCADE, related_name="authorization_requests"
    )
    project = models.ForeignKey(
        "connect.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    environment = models.CharField(max_length=60, blank=True)
    subject_type = models.CharField(max_length=10, blank=True)
    subject_id = models.CharField(max_length=255, blank=True)
    issuer = models.CharField(max_length=255, blank=True)
    scopes = models.JSONField(default=list, blank=True)
    verifier_sha256 = models.CharField(max_length=64, unique=True, editable=False)
    state = models.CharField(max_length=64, unique=True, editable=False)
    pkce_verifier_sealed = sealed_field()
    return_url = models.URLField(max_length=2000, blank=True)
    tenant_hint = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField()
    outcome = models.CharField(
        max_length=10, choices=AuthorizationOutcome.choices, default=AuthorizationOutcome.PENDING
    )
    error = models.CharField(max_length=255, blank=True)
    consumed_at = models.DateTimeField(null=True, blank=True)
    installation = models.ForeignKey(
        "connect.Installation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = AuthorizationRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=AuthorizationKind.values),
                name="connect_authorizationrequest_kind_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(outcome__in=AuthorizationOutcome.values),
                name="connect_authorizationrequest_outcome_valid",
            ),
        ]
        indexes = [
            # The admin list and the Activity page, newest first, per connector too.
            models.Index(fields=["-created_at"], name="connect_authz_newest"),
            models.Index(fields=["connector", "-created_at"], name="connect_authz_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.public_id}"
