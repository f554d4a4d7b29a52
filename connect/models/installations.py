from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from connect.models.base import SealedSecrets, TeamScopedQuerySet, public_id_field, sealed_field


class InstallationStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    REVOKED = "revoked", "Revoked"


class InstallationQuerySet(TeamScopedQuerySet):
    team_path = "connector__team"


class Installation(models.Model):
    Status = InstallationStatus

    public_id = public_id_field("sci")
    connector = models.ForeignKey(
        "connect.Connector", on_delete=models.CASCADE, related_name="installations"
    )
    tenant_id = models.CharField(
        max_length=255,
        help_text="The provider's id: Slack team, GitHub installation, Entra tenant…",
    )
    display_name = models.CharField(max_length=255, blank=True)
    status = models.CharField(
        max_length=10, choices=InstallationStatus.choices, default=InstallationStatus.ACTIVE
    )
    is_default = models.BooleanField(default=False)
    metadata = models.JSONField(default=dict, blank=True)
    installed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = InstallationQuerySet.as_manager()

    class Meta:
        ordering = ["connector", "display_name", "tenant_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["connector", "tenant_id"], name="connect_installation_unique_tenant"
            ),
            models.UniqueConstraint(
                fields=["connector"],
                condition=models.Q(is_default=True),
                name="connect_installation_one_default",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=InstallationStatus.values),
                name="connect_installation_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name or self.tenant_id


class SubjectType(models.TextChoices):
    APP = "app", "App"
    USER = "user", "User"
    #: RFC 7523: a user asserted by the calling app, no consent screen (custom OAuth only).
    JWT_BEARER = "jwt-bearer", "JWT bearer"


class GrantStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    NEEDS_REAUTH = "needs_reauth", "Needs re-authorization"
    REVOKED = "revoked", "Revoked"


class GrantQuerySet(TeamScopedQuerySet):
    team_path = "installation__connector__team"

    def expiring_before(self, moment: datetime) -> "GrantQuerySet":
        return self.filter(status=GrantStatus.ACTIVE, access_expires_at__lt=moment).exclude(
            refresh_token_sealed=""
        )


class Grant(SealedSecrets):
    SubjectType = SubjectType
    Status = GrantStatus
    SEALED_FIELDS = ("access_token", "refresh_token")

    public_id = public_id_field("sgr")
    installation = models.ForeignKey(Installation, on_delete=models.CASCADE, related_name="grants")
    subject_type = models.CharField(max_length=10, choices=SubjectType.choices)
    subject_id = models.CharField(max_length=255, blank=True)
    issuer = models.CharField(
        max_length=255,
        blank=True,
        help_text="Whose user ids these are; a user grant defaults to the calling project's id.",
    )
    access_token_sealed = sealed_field()
    refresh_token_sealed = sealed_field()
    access_expires_at = models.DateTimeField(null=True, blank=True)
    refresh_expires_at = models.DateTimeField(null=True, blank=True)
    scopes = models.JSONField(default=list, blank=True)
    external_subject = models.CharField(
        max_length=255, blank=True, help_text="The provider's own id for the subject."
    )
    project = models.ForeignKey(
        "connect.Project",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The project whose consent or import made this grant; empty for the team's "
        "own (installs, app grants). An import never replaces another project's active grant.",
    )
    status = models.CharField(
        max_length=15, choices=GrantStatus.choices, default=GrantStatus.ACTIVE
    )
    version = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = GrantQuerySet.as_manager()

    class Meta:
        ordering = ["installation", "subject_type", "subject_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["installation", "subject_type", "subject_id", "issuer"],
                name="connect_grant_unique_subject",
            ),
            models.CheckConstraint(
                condition=models.Q(subject_type__in=SubjectType.values),
                name="connect_grant_subject_type_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=GrantStatus.values), name="connect_grant_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "access_expires_at"], name="connect_grant_expiry")
        ]

    def __str__(self) -> str:
        subject = (
            self.subject_type if not self.subject_id else f"{self.subject_type}:{self.subject_id}"
        )
        return f"{subject} on {self.installation_id and self.installation}"
